"""The `golive` command line: run a node, manage streams and API tokens, print a config.

Management commands talk to the database directly through `Store` (the same SQLite
file a running server uses; WAL mode makes that safe). Human-readable tables by
default, `--json` for scripts. Errors print one clear line and exit 1 (or 2 for bad
usage/configuration), never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import textwrap
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import BaseModel, SecretStr, ValidationError

from golive import __version__
from golive.settings import Settings

if TYPE_CHECKING:
    from golive.store.repository import Store

T = TypeVar("T")


# Settings and store ---------------------------------------------------------------------


@contextlib.contextmanager
def _config_env(config: Path | None) -> Iterator[None]:
    """Point Settings at `config` (it reads GOLIVE_CONFIG) for the duration of the block."""
    if config is None:
        yield
        return
    old = os.environ.get("GOLIVE_CONFIG")
    os.environ["GOLIVE_CONFIG"] = str(config)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("GOLIVE_CONFIG", None)
        else:
            os.environ["GOLIVE_CONFIG"] = old


def _settings_error(exc: ValidationError) -> click.UsageError:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
    )
    return click.UsageError(f"invalid settings: {problems}")


def build_settings(config: Path | None = None, **overrides: Any) -> Settings:
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        with _config_env(config):
            return Settings(**clean)
    except ValidationError as exc:
        raise _settings_error(exc) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML file
        raise click.UsageError(f"cannot read settings: {exc}") from None


def _settings(ctx: click.Context) -> Settings:
    obj = ctx.find_root().ensure_object(dict)
    settings = obj.get("settings")
    if settings is None:
        settings = build_settings(obj.get("config"), data_dir=obj.get("data_dir"))
        obj["settings"] = settings
    assert isinstance(settings, Settings)
    return settings


def with_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store, run `action`, close it; store errors become one-line messages."""

    async def go() -> T:
        from golive.store.repository import Store

        if not settings.database_url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = await Store.open(
            settings.resolved_database_url, event_history=settings.event_history
        )
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except click.ClickException:
        raise
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        raise click.ClickException(f"database error ({type(exc).__name__}): {exc}") from None


# Output ---------------------------------------------------------------------------------


def _echo_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    click.echo(json.dumps(value, indent=2))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _when(value: Any) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


# Root -----------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="golive")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file (default: ./golive.toml, or $GOLIVE_CONFIG).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory (default: $GOLIVE_DATA_DIR or ./golive-data).",
)
@click.pass_context
def cli(ctx: click.Context, config: Path | None, data_dir: Path | None) -> None:
    """golive: self-hosted live streaming (RTMP/SRT/WHIP in, LL-HLS and WebRTC out)."""
    ctx.ensure_object(dict).update(config=config, data_dir=data_dir)


@cli.command()
@click.option("--host", help="Address every listener binds to.")
@click.option("--public-host", help="Host name shown in ingest and playback URLs.")
@click.option("--http-port", type=int, help="HTTP port (API, playback, pages).")
@click.option("--rtmp-port", type=int, help="RTMP ingest port.")
@click.option("--rtmps-port", type=int, help="RTMPS ingest port (needs --tls-cert/--tls-key).")
@click.option("--srt-port", type=int, help="SRT ingest port (UDP).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), help="PEM cert.")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), help="PEM key.")
@click.option(
    "--data-dir",
    "serve_data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory.",
)
@click.option(
    "--config",
    "serve_config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file.",
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="Log level."
)
@click.pass_context
def serve(
    ctx: click.Context,
    /,
    serve_data_dir: Path | None,
    serve_config: Path | None,
    **options: Any,
) -> None:
    """Run a golive node until interrupted."""
    obj = ctx.find_root().ensure_object(dict)
    settings = build_settings(
        serve_config or obj.get("config"),
        data_dir=serve_data_dir or obj.get("data_dir"),
        **options,
    )
    from golive.app import run_server

    run_server(settings)


# Streams --------------------------------------------------------------------------------


@cli.group()
def streams() -> None:
    """Create and manage live streams."""


def _stream_json(settings: Settings, record: Any, key: str | None = None) -> BaseModel:
    from golive.api.schemas import live_stream_out

    return live_stream_out(record, settings=settings, host=settings.advertised_host, key=key)


def _print_stream(settings: Settings, record: Any, key: str | None = None) -> None:
    from golive.api.schemas import ingest_urls

    ingest = ingest_urls(settings, settings.advertised_host, key)
    rows: list[tuple[str, Any]] = [
        ("id", record.id),
        ("name", record.name),
        ("status", record.status),
        ("latency mode", record.latency_mode),
        ("reconnect window", f"{record.reconnect_window:g} s"),
        ("profile", record.profile),
        ("recording", "yes" if record.recording else "no"),
        ("stream key", key if key else f"{record.stream_key_prefix}... (hidden)"),
        ("RTMP URL", ingest.rtmp_url or f"{ingest.rtmp}/STREAM_KEY"),
    ]
    if ingest.srt:
        rows.append(("SRT URL", ingest.srt if key else f"{ingest.srt}?streamid=STREAM_KEY"))
    if ingest.rtmps:
        rows.append(("RTMPS URL", ingest.rtmps_url or f"{ingest.rtmps}/STREAM_KEY"))
    base = f"http://{settings.advertised_host}:{settings.http_port}"
    for p in record.playback_ids:
        rows.append(("playback", f"{base}/live/{p.id}.m3u8  ({p.policy})"))
    rows += [("created", _when(record.created_at)), ("updated", _when(record.updated_at))]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k.ljust(width)}  {v}")


def _missing_stream(stream_id: str) -> click.ClickException:
    return click.ClickException(f"no live stream with id {stream_id!r}")


@streams.command("create")
@click.option("--name", required=True, help="Name of the stream.")
@click.option(
    "--latency-mode", type=click.Choice(["low", "standard"]), default="low", show_default=True
)
@click.option(
    "--reconnect-window",
    type=click.FloatRange(0, 1800),
    help="Seconds to wait for a dropped publisher (default: server setting).",
)
@click.option("--profile", default="default", show_default=True, help="Stream profile.")
@click.option("--recording/--no-recording", default=False, show_default=True)
@click.option(
    "--playback-policy",
    type=click.Choice(["public", "signed"]),
    default="public",
    show_default=True,
)
@json_option
@click.pass_context
def streams_create(
    ctx: click.Context,
    name: str,
    latency_mode: str,
    reconnect_window: float | None,
    profile: str,
    recording: bool,
    playback_policy: str,
    as_json: bool,
) -> None:
    """Create a live stream and print its stream key (shown only this once)."""
    settings = _settings(ctx)
    window = settings.default_reconnect_window if reconnect_window is None else reconnect_window
    record, key = with_store(
        settings,
        lambda s: s.create_stream(
            name=name,
            latency_mode=latency_mode,
            reconnect_window=window,
            profile=profile,
            recording=recording,
            playback_policy=playback_policy,
        ),
    )
    if as_json:
        _echo_json(_stream_json(settings, record, key))
        return
    click.echo(f"Created live stream {record.id}. The stream key is shown only now:\n")
    _print_stream(settings, record, key)


@streams.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--after", help="Id of the last stream of the previous page.")
@json_option
@click.pass_context
def streams_list(ctx: click.Context, limit: int, after: str | None, as_json: bool) -> None:
    """List live streams, oldest first."""
    settings = _settings(ctx)
    records = with_store(settings, lambda s: s.list_streams(limit=limit, after=after))
    if as_json:
        _echo_json([_stream_json(settings, r) for r in records])
        return
    if not records:
        click.echo("No live streams yet. Create one: golive streams create --name 'My show'")
        return
    rows = [
        (
            r.id,
            r.name,
            r.status,
            r.latency_mode,
            ", ".join(p.id for p in r.playback_ids),
            _when(r.created_at),
        )
        for r in records
    ]
    click.echo(_table(["id", "name", "status", "latency", "playback ids", "created"], rows))


@streams.command("show")
@click.argument("stream_id")
@json_option
@click.pass_context
def streams_show(ctx: click.Context, stream_id: str, as_json: bool) -> None:
    """Show one live stream (the stream key stays hidden; see reset-key).

    Live ingest facts live in the running server's memory: they are fetched from it
    when an API token is at hand (GOLIVE_TOKEN, or GOLIVE_ADMIN_TOKEN).
    """
    settings = _settings(ctx)
    record = with_store(settings, lambda s: s.get_stream(stream_id))
    if record is None:
        raise _missing_stream(stream_id)
    live = _live_facts(settings, stream_id)
    if as_json:
        data = _stream_json(settings, record).model_dump(mode="json")
        if live is not None:
            data["live"] = live
        _echo_json(data)
        return
    _print_stream(settings, record)
    if live:
        click.echo("\nlive")
        for key in ("state", "protocol", "remote_address", "connected_since", "video_codec",
                    "width", "height", "frame_rate", "video_bitrate_kbps", "audio_codec",
                    "audio_bitrate_kbps", "keyframe_interval_s", "reconnects"):
            if live.get(key) is not None:
                click.echo(f"  {key.replace('_', ' '):20} {live[key]}")
    elif record.status == "active" and live is None:
        click.echo("\n(live facts: set GOLIVE_TOKEN to an API token to read them from the server)")


def _live_facts(settings: Settings, stream_id: str) -> dict[str, Any] | None:
    """The running server's live facts for a stream, or None when it cannot be asked."""
    token = os.environ.get("GOLIVE_TOKEN") or (
        settings.admin_token.get_secret_value() if settings.admin_token else None
    )
    if not token:
        return None
    import httpx

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = f"http://{host}:{settings.http_port}/api/v1/live-streams/{stream_id}"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=2)
        response.raise_for_status()
        live: dict[str, Any] | None = response.json()["data"].get("live")
        return live
    except (httpx.HTTPError, ValueError, KeyError):
        return None


@streams.command("reset-key")
@click.argument("stream_id")
@json_option
@click.pass_context
def streams_reset_key(ctx: click.Context, stream_id: str, as_json: bool) -> None:
    """Replace a stream's key; the old one stops working for new connections."""
    settings = _settings(ctx)
    result = with_store(settings, lambda s: s.reset_stream_key(stream_id))
    if result is None:
        raise _missing_stream(stream_id)
    record, key = result
    if as_json:
        _echo_json(_stream_json(settings, record, key))
        return
    click.echo(f"New stream key for {record.id} (shown only now):\n")
    _print_stream(settings, record, key)


def _set_enabled(ctx: click.Context, stream_id: str, enabled: bool, as_json: bool) -> None:
    settings = _settings(ctx)
    record = with_store(settings, lambda s: s.set_enabled(stream_id, enabled))
    if record is None:
        raise _missing_stream(stream_id)
    if as_json:
        _echo_json(_stream_json(settings, record))
    else:
        click.echo(f"Live stream {record.id} is now {record.status}.")


@streams.command("enable")
@click.argument("stream_id")
@json_option
@click.pass_context
def streams_enable(ctx: click.Context, stream_id: str, as_json: bool) -> None:
    """Allow publishing to a disabled stream again."""
    _set_enabled(ctx, stream_id, True, as_json)


@streams.command("disable")
@click.argument("stream_id")
@json_option
@click.pass_context
def streams_disable(ctx: click.Context, stream_id: str, as_json: bool) -> None:
    """Refuse new publishers on a stream."""
    _set_enabled(ctx, stream_id, False, as_json)


@streams.command("delete")
@click.argument("stream_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_context
def streams_delete(ctx: click.Context, stream_id: str, yes: bool, as_json: bool) -> None:
    """Delete a live stream, its playback ids and its events."""
    settings = _settings(ctx)
    if not yes:
        click.confirm(f"Delete live stream {stream_id}?", abort=True)
    deleted = with_store(settings, lambda s: s.delete_stream(stream_id))
    if not deleted:
        raise _missing_stream(stream_id)
    if as_json:
        _echo_json({"deleted": stream_id})
    else:
        click.echo(f"Deleted live stream {stream_id}.")


# Tokens ---------------------------------------------------------------------------------


@cli.group()
def tokens() -> None:
    """Create and revoke API tokens."""


def _token_json(record: Any, secret: str | None = None) -> BaseModel:
    from golive.api.schemas import token_out

    return token_out(record, secret)


@tokens.command("create")
@click.option("--name", required=True, help="What the token is for.")
@click.option("--scope", type=click.Choice(["admin", "read"]), default="admin", show_default=True)
@json_option
@click.pass_context
def tokens_create(ctx: click.Context, name: str, scope: str, as_json: bool) -> None:
    """Create an API token and print it (shown only this once)."""
    settings = _settings(ctx)
    record, secret = with_store(settings, lambda s: s.create_api_token(name=name, scope=scope))
    if as_json:
        _echo_json(_token_json(record, secret))
        return
    click.echo(f"Created {record.scope} API token {record.id} ({record.name}).")
    click.echo("The token is shown only now; use it as `Authorization: Bearer TOKEN`:\n")
    click.echo(f"  {secret}")


@tokens.command("list")
@json_option
@click.pass_context
def tokens_list(ctx: click.Context, as_json: bool) -> None:
    """List API tokens (never the tokens themselves)."""
    records = with_store(_settings(ctx), lambda s: s.list_api_tokens())
    if as_json:
        _echo_json([_token_json(r) for r in records])
        return
    if not records:
        click.echo("No API tokens yet. Create one: golive tokens create --name admin")
        return
    rows = [
        (
            r.id,
            r.name,
            r.scope,
            f"{r.token_prefix}...",
            _when(r.created_at),
            _when(r.last_used_at),
            _when(r.revoked_at),
        )
        for r in records
    ]
    headers = ["id", "name", "scope", "prefix", "created", "last used", "revoked"]
    click.echo(_table(headers, rows))


@tokens.command("revoke")
@click.argument("token_id")
@json_option
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: str, as_json: bool) -> None:
    """Revoke an API token; requests using it get 401 from now on."""
    if not with_store(_settings(ctx), lambda s: s.revoke_api_token(token_id)):
        raise click.ClickException(f"no API token with id {token_id!r}")
    if as_json:
        _echo_json({"revoked": token_id})
    else:
        click.echo(f"Revoked API token {token_id}.")


# Config ---------------------------------------------------------------------------------


@cli.group()
def config() -> None:
    """Settings helpers."""


def _toml_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):  # e.g. the webrtc_* address lists
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # JSON string escapes are valid TOML basic strings


def sample_config() -> str:
    """A commented golive.toml with every setting at its default value."""
    lines = [
        f"# golive.toml: settings of a golive node (golive {__version__}).",
        "# Every setting can also come from the environment as GOLIVE_<NAME> (for example",
        "# GOLIVE_HTTP_PORT=8081), which overrides this file; `golive serve` flags override both.",
        "# Values below are the defaults; settings without a default are commented out.",
    ]
    for name, field in Settings.model_fields.items():
        lines.append("")
        for para in (field.description or name).splitlines():
            lines += [f"# {line}" for line in textwrap.wrap(para, 86)]
        default = field.get_default(call_default_factory=True)
        if default is None:
            lines.append(f"# {name} =")
        else:
            lines.append(f"{name} = {_toml_value(default)}")
    return "\n".join(lines) + "\n"


@config.command("sample")
def config_sample() -> None:
    """Print a sample golive.toml with every setting, its description and default."""
    click.echo(sample_config(), nl=False)


def main() -> None:
    """Console-script entry point (`golive`)."""
    cli.main(prog_name="golive")
