"""`golive streams` (control plane): create, list, show, reset the key of, enable, disable
and delete live streams in the database; `show` also asks a running node for live facts.
`streams destinations add|list|set|remove` manage a stream's simulcast targets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from pydantic import BaseModel

from golive.cli.config import command_settings
from golive.cli.database import with_store
from golive.cli.node import node_api_url, node_token
from golive.cli.output import cli_actor, echo_json, json_option, key_values, table, when
from golive.settings import Settings

if TYPE_CHECKING:
    from golive.store import Store


@click.group()
def streams() -> None:
    """Create and manage live streams."""


def _stream_json(
    settings: Settings, record: Any, key: str | None = None, backup_key: str | None = None
) -> BaseModel:
    from golive.api import live_stream_out

    return live_stream_out(record, settings=settings, host=settings.advertised_host, key=key,
                           backup_key=backup_key)


def _print_stream(
    settings: Settings, record: Any, key: str | None = None, backup_key: str | None = None
) -> None:
    from golive.api import ingest_urls

    ingest = ingest_urls(settings, settings.advertised_host, key)
    rows: list[tuple[str, Any]] = [
        ("id", record.id),
        ("name", record.name),
        ("status", record.status),
        ("latency mode", record.latency_mode),
        ("reconnect window", f"{record.reconnect_window:g} s"),
        ("profile", record.profile_label),
        ("recording", "yes" if record.recording else "no"),
        ("real-time (WHEP)", "yes" if record.webrtc_playback else "no"),
        ("DVR window", f"{record.dvr_window} s" if record.dvr_window else "off"),
        ("stream key", key if key else f"{record.stream_key_prefix}... (hidden)"),
        ("backup key", backup_key if backup_key
         else f"{record.backup_stream_key_prefix}... (hidden)"
         if record.backup_stream_key_prefix else "none (see reset-backup-key)"),
        ("RTMP URL", ingest.rtmp_url or f"{ingest.rtmp}/STREAM_KEY"),
    ]
    if ingest.srt:
        rows.append(("SRT URL", ingest.srt if key else f"{ingest.srt}?streamid=STREAM_KEY"))
    if ingest.rtmps:
        rows.append(("RTMPS URL", ingest.rtmps_url or f"{ingest.rtmps}/STREAM_KEY"))
    base = f"{settings.http_scheme}://{settings.advertised_host}:{settings.http_port}"
    for p in record.playback_ids:
        rows.append(("playback", f"{base}/live/{p.id}.m3u8  ({p.policy})"))
    rows += [("created", when(record.created_at)), ("updated", when(record.updated_at))]
    key_values(rows)


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
@click.option("--profile", default="default", show_default=True,
              help="Release profile to pin: NAME (its newest version) or NAME@VERSION.")
@click.option("--recording/--no-recording", default=False, show_default=True)
@click.option(
    "--recording-retention-days",
    type=click.IntRange(1, 36500),
    help="Days this stream's recordings are kept (default: the node's setting).",
)
@click.option(
    "--playback-policy",
    type=click.Choice(["public", "signed"]),
    default="public",
    show_default=True,
)
@click.option(
    "--webrtc-playback/--no-webrtc-playback",
    default=None,
    help="Real-time (WHEP) playback: one more encode per broadcast "
    "(default: server setting webrtc_playback).",
)
@click.option(
    "--dvr-window", type=click.IntRange(0, 21600),
    help="Seconds viewers can seek back in a live broadcast (0: off, up to 6 h); "
    "needs --recording: older segments are served from the recording.",
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
    recording_retention_days: int | None,
    playback_policy: str,
    webrtc_playback: bool | None,
    dvr_window: int | None,
    as_json: bool,
) -> None:
    """Create a live stream and print its stream key and backup key (shown only this once)."""
    from golive.core import new_stream_key
    from golive.media import ProfileError
    from golive.ops import ProfileCatalog

    settings = command_settings(ctx)
    window = settings.default_reconnect_window if reconnect_window is None else reconnect_window
    backup_key = new_stream_key()

    async def create(s: Store) -> tuple[Any, str]:
        try:
            pinned = await ProfileCatalog(s, settings.resolved_profiles_dir).resolve(profile)
        except ProfileError as exc:
            raise click.BadParameter(str(exc), param_hint="'--profile'") from None
        return await s.create_stream(
            name=name,
            latency_mode=latency_mode,
            reconnect_window=window,
            profile=pinned.name,
            profile_version=pinned.version,
            pinned_by=cli_actor().name,
            recording=recording,
            recording_retention_days=recording_retention_days,
            playback_policy=playback_policy,
            webrtc_playback=settings.webrtc_playback if webrtc_playback is None else webrtc_playback,
            dvr_window=dvr_window or 0,
            backup_stream_key=backup_key,
        )

    record, key = with_store(settings, create)
    if as_json:
        echo_json(_stream_json(settings, record, key, backup_key))
        return
    click.echo(f"Created live stream {record.id}. "
               "The stream key and backup key are shown only now:\n")
    _print_stream(settings, record, key, backup_key)


@streams.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--after", help="Id of the last stream of the previous page.")
@json_option
@click.pass_context
def streams_list(ctx: click.Context, limit: int, after: str | None, as_json: bool) -> None:
    """List live streams, oldest first."""
    settings = command_settings(ctx)
    records = with_store(settings, lambda s: s.list_streams(limit=limit, after=after))
    if as_json:
        echo_json([_stream_json(settings, r) for r in records])
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
            when(r.created_at),
        )
        for r in records
    ]
    click.echo(table(["id", "name", "status", "latency", "playback ids", "created"], rows))


_LIVE_FACTS = (
    "state", "protocol", "remote_address", "connected_since", "video_codec", "width", "height",
    "frame_rate", "video_bitrate_kbps", "audio_codec", "audio_bitrate_kbps",
    "keyframe_interval_s", "reconnects",
)


@streams.command("show")
@click.argument("stream_id")
@json_option
@click.pass_context
def streams_show(ctx: click.Context, stream_id: str, as_json: bool) -> None:
    """Show one live stream (the stream key stays hidden; see reset-key).

    Live ingest facts live in the running server's memory: they are fetched from it
    when an API token is at hand (GOLIVE_TOKEN, or GOLIVE_ADMIN_TOKEN).
    """
    settings = command_settings(ctx)
    record = with_store(settings, lambda s: s.get_stream(stream_id))
    if record is None:
        raise _missing_stream(stream_id)
    live = _live_facts(settings, stream_id)
    if as_json:
        data = _stream_json(settings, record).model_dump(mode="json")
        if live is not None:
            data["live"] = live
        echo_json(data)
        return
    _print_stream(settings, record)
    if live:
        click.echo("\nlive")
        for key in _LIVE_FACTS:
            if live.get(key) is not None:
                click.echo(f"  {key.replace('_', ' '):20} {live[key]}")
    elif record.status == "active" and live is None:
        click.echo("\n(live facts: set GOLIVE_TOKEN to an API token to read them from the server)")


def _live_facts(settings: Settings, stream_id: str) -> dict[str, Any] | None:
    """The running server's live facts for a stream, or None when it cannot be asked."""
    token = node_token(settings)
    if not token:
        return None
    import httpx

    url = f"{node_api_url(settings)}/live-streams/{stream_id}"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=2)
        response.raise_for_status()
        live: dict[str, Any] | None = response.json()["data"].get("live")
        return live
    except (httpx.HTTPError, ValueError, KeyError):
        return None


@streams.command("update")
@click.argument("stream_id")
@click.option("--name", help="New name.")
@click.option("--latency-mode", type=click.Choice(["low", "standard"]))
@click.option("--reconnect-window", type=click.FloatRange(0, 1800),
              help="Seconds to wait for a dropped publisher.")
@click.option("--profile", help="Pin another release profile version (NAME or NAME@VERSION); "
              "refused while live: see `golive profiles pin --force-reason`.")
@click.option("--recording/--no-recording", default=None)
@click.option("--webrtc-playback/--no-webrtc-playback", default=None,
              help="Real-time (WHEP) playback; a live broadcast keeps what it started with.")
@click.option(
    "--dvr-window", type=click.IntRange(0, 21600),
    help="Seconds viewers can seek back in a live broadcast (0: off, up to 6 h); "
    "needs --recording: older segments are served from the recording.",
)
@json_option
@click.pass_context
def streams_update(
    ctx: click.Context,
    stream_id: str,
    name: str | None,
    latency_mode: str | None,
    reconnect_window: float | None,
    profile: str | None,
    recording: bool | None,
    webrtc_playback: bool | None,
    dvr_window: int | None,
    as_json: bool,
) -> None:
    """Change a stream's settings; only the options given change."""
    settings = command_settings(ctx)
    changes: dict[str, Any] = {
        key: value
        for key, value in (
            ("name", name), ("latency_mode", latency_mode),
            ("reconnect_window", reconnect_window),
            ("recording", recording), ("webrtc_playback", webrtc_playback),
            ("dvr_window", dvr_window),
        )
        if value is not None
    }
    if not changes and profile is None:
        raise click.UsageError("nothing to change: give at least one option")
    record: Any = None
    if profile is not None:
        from golive.cli.profiles import run_pin

        record = run_pin(settings, stream_id, profile, None).stream
    if changes:
        record = with_store(settings, lambda s: s.update_stream(stream_id, **changes))
    if record is None:
        raise _missing_stream(stream_id)
    if as_json:
        echo_json(_stream_json(settings, record))
        return
    click.echo(f"Updated live stream {record.id}:\n")
    _print_stream(settings, record)


@streams.command("reset-key")
@click.argument("stream_id")
@json_option
@click.pass_context
def streams_reset_key(ctx: click.Context, stream_id: str, as_json: bool) -> None:
    """Replace a stream's key and backup key; the old ones stop working for new
    connections (reset-backup-key replaces only the backup key)."""
    from golive.core import new_stream_key

    settings = command_settings(ctx)
    backup_key = new_stream_key()
    result = with_store(settings,
                        lambda s: s.reset_stream_key(stream_id, backup_stream_key=backup_key))
    if result is None:
        raise _missing_stream(stream_id)
    record, key = result
    if as_json:
        echo_json(_stream_json(settings, record, key, backup_key))
        return
    click.echo(f"New stream key and backup key for {record.id} (shown only now):\n")
    _print_stream(settings, record, key, backup_key)


@streams.command("reset-backup-key")
@click.argument("stream_id")
@json_option
@click.pass_context
def streams_reset_backup_key(ctx: click.Context, stream_id: str, as_json: bool) -> None:
    """Make or replace a stream's backup key: a second encoder publishes with it exactly
    like with the stream key. A replaced backup key stops working."""
    settings = command_settings(ctx)
    result = with_store(settings, lambda s: s.reset_backup_stream_key(stream_id))
    if result is None:
        raise _missing_stream(stream_id)
    record, key = result
    if as_json:
        echo_json(_stream_json(settings, record, backup_key=key))
        return
    click.echo(f"New backup stream key for {record.id} (shown only now):\n")
    _print_stream(settings, record, backup_key=key)


def _set_enabled(ctx: click.Context, stream_id: str, enabled: bool, as_json: bool) -> None:
    settings = command_settings(ctx)
    record = with_store(settings, lambda s: s.set_enabled(stream_id, enabled))
    if record is None:
        raise _missing_stream(stream_id)
    if as_json:
        echo_json(_stream_json(settings, record))
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
    settings = command_settings(ctx)
    if not yes:
        click.confirm(f"Delete live stream {stream_id}?", abort=True)
    deleted = with_store(settings, lambda s: s.delete_stream(stream_id))
    if not deleted:
        raise _missing_stream(stream_id)
    if as_json:
        echo_json({"deleted": stream_id})
    else:
        click.echo(f"Deleted live stream {stream_id}.")


@streams.group("destinations")
def streams_destinations() -> None:
    """A stream's destinations (simulcast): outside RTMP(S)/SRT targets it is forwarded to
    while live. A running node picks up a change within seconds, live too."""


def _node_destination_states(settings: Settings, stream_id: str) -> dict[str, dict[str, Any]]:
    """The running node's state of each destination, when it can be asked (an API token)."""
    token = node_token(settings)
    if not token:
        return {}
    import httpx

    url = f"{node_api_url(settings)}/live-streams/{stream_id}/destinations"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=2)
        response.raise_for_status()
        return {d["id"]: d for d in response.json()["data"]}
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return {}


@streams_destinations.command("add")
@click.argument("stream_id")
@click.option("--name", required=True, help="A label.")
@click.option("--url", required=True,
              help="rtmp://, rtmps:// or srt:// URL without the key (srt: mode=caller).")
@click.option("--key", help="RTMP(S): the stream key, appended to the URL; SRT: the "
              "passphrase. Stored; only ever shown masked.")
@click.option("--disabled", is_flag=True, help="Create it switched off.")
@click.option("--rendition", help="`source`, or a rendition of the stream's ladder (default: "
              "the profile's destination class's, else source).")
@json_option
@click.pass_context
def destinations_add(ctx: click.Context, stream_id: str, name: str, url: str, key: str | None,
                     disabled: bool, rendition: str | None, as_json: bool) -> None:
    """Add a destination to a stream (its URL, and the profile's destination policy,
    checked as the API checks them)."""
    from golive.api import destination_out
    from golive.media import DestinationRefused, check_destination_url
    from golive.store import DestinationStore

    settings = command_settings(ctx)

    async def add(store: Store) -> Any:
        if "passphrase=" in url.partition("?")[2]:
            raise click.BadParameter("put the SRT passphrase in --key", param_hint="'--url'")
        try:
            await check_destination_url(
                url, allow_private=settings.destination_allow_private_targets)
        except DestinationRefused as exc:
            raise click.BadParameter(str(exc), param_hint="'--url'") from None
        chosen = await _admitted(settings, store, stream_id, url, rendition)
        record = await DestinationStore(store.engine).create_destination(
            stream_id, name=name, url=url, secret=key, enabled=not disabled, rendition=chosen)
        if record is None:
            raise _missing_stream(stream_id)
        await store.record_audit(cli_actor(), "live_stream.destination.create", "live_stream",
                                 stream_id, {"destination": record.id, "name": name,
                                             "url": url})
        return record

    record = with_store(settings, add)
    out = destination_out(record, None)
    if as_json:
        echo_json(out)
        return
    click.echo(f"Added destination {record.id} ({name}) to live stream {stream_id}: "
               f"{record.url}" + (f"  key {out.key}" if out.key else ""))


async def _admitted(settings: Settings, store: Store, stream_id: str, url: str,
                    rendition: str | None, ignore: str | None = None) -> str:
    """The rendition the stream's pinned profile gives a destination of `url` (see
    `golive.media.admit_destination`); a click error naming the option otherwise."""
    from golive.media import DestinationNotAdmitted, admit_destination
    from golive.ops import ProfileCatalog, document_profile
    from golive.store import DestinationStore

    stream = await store.get_stream(stream_id)
    if stream is None:
        raise _missing_stream(stream_id)
    pinned = await ProfileCatalog(store, settings.resolved_profiles_dir).current(stream)
    others = [d.url for d in await DestinationStore(store.engine).list_destinations(stream_id)
              if d.id != ignore]
    try:
        return admit_destination(document_profile(pinned), url, rendition, others)
    except DestinationNotAdmitted as exc:
        if exc.field is None:
            raise click.ClickException(str(exc)) from None
        raise click.BadParameter(str(exc).partition(": ")[2],
                                 param_hint=f"'--{exc.field}'") from None


@streams_destinations.command("set")
@click.argument("stream_id")
@click.argument("destination_id")
@click.option("--enable/--disable", "enabled", default=None,
              help="Forward it while live, or not (a live broadcast follows within seconds).")
@click.option("--rendition", help="`source`, or a rendition of the stream's ladder.")
@json_option
@click.pass_context
def destinations_set(ctx: click.Context, stream_id: str, destination_id: str,
                     enabled: bool | None, rendition: str | None, as_json: bool) -> None:
    """Turn a destination on or off, or change the rendition it gets."""
    from golive.api import destination_out
    from golive.store import DestinationStore

    if enabled is None and rendition is None:
        raise click.UsageError("give --enable, --disable or --rendition")
    settings = command_settings(ctx)

    async def update(store: Store) -> Any:
        destinations = DestinationStore(store.engine)
        current = await destinations.get_destination(stream_id, destination_id)
        if current is None:
            raise click.ClickException(
                f"no destination {destination_id!r} on live stream {stream_id!r}")
        if rendition is not None:
            await _admitted(settings, store, stream_id, current.url, rendition,
                            ignore=destination_id)
        record = await destinations.update_destination(
            stream_id, destination_id, enabled=enabled, rendition=rendition)
        assert record is not None
        changes: dict[str, Any] = {"destination": destination_id}
        changes.update({k: v for k, v in (("enabled", enabled), ("rendition", rendition))
                        if v is not None})
        await store.record_audit(cli_actor(), "live_stream.destination.update", "live_stream",
                                 stream_id, changes)
        return record

    record = with_store(settings, update)
    if as_json:
        echo_json(destination_out(record, None))
        return
    click.echo(f"Destination {record.id} of live stream {stream_id}: "
               f"{'enabled' if record.enabled else 'disabled'}, rendition {record.rendition}.")


@streams_destinations.command("list")
@click.argument("stream_id")
@json_option
@click.pass_context
def destinations_list(ctx: click.Context, stream_id: str, as_json: bool) -> None:
    """List a stream's destinations (keys masked); with an API token at hand (GOLIVE_TOKEN),
    each one's live state as the running node sees it."""
    from golive.api import destination_out
    from golive.store import DestinationStore

    settings = command_settings(ctx)

    async def read(store: Store) -> Any:
        if await store.get_stream(stream_id) is None:
            raise _missing_stream(stream_id)
        return await DestinationStore(store.engine).list_destinations(stream_id)

    records = with_store(settings, read)
    states = _node_destination_states(settings, stream_id)
    outs = []
    for record in records:
        out = destination_out(record, None).model_dump(mode="json")
        live = states.get(record.id)
        if live is not None:
            out.update({k: live[k] for k in ("status", "reason", "since", "attempts")
                        if k in live})
        outs.append(out)
    if as_json:
        echo_json(outs)
        return
    if not outs:
        click.echo(f"No destinations. Add one: golive streams destinations add {stream_id} "
                   "--name NAME --url URL --key KEY")
        return
    rows = [(o["id"], o["name"], o["url"], o["key"], o["rendition"],
             "yes" if o["enabled"] else "no", o["status"], o["reason"]) for o in outs]
    click.echo(table(["id", "name", "url", "key", "rendition", "enabled", "status", "reason"],
                     rows))


@streams_destinations.command("remove")
@click.argument("stream_id")
@click.argument("destination_id")
@json_option
@click.pass_context
def destinations_remove(ctx: click.Context, stream_id: str, destination_id: str,
                        as_json: bool) -> None:
    """Remove a destination; a live broadcast stops forwarding to it within seconds."""
    from golive.store import DestinationStore

    settings = command_settings(ctx)

    async def remove(store: Store) -> bool:
        removed = await DestinationStore(store.engine).delete_destination(
            stream_id, destination_id)
        if removed:
            await store.record_audit(cli_actor(), "live_stream.destination.delete",
                                     "live_stream", stream_id, {"destination": destination_id})
        return removed

    if not with_store(settings, remove):
        raise click.ClickException(
            f"no destination {destination_id!r} on live stream {stream_id!r}")
    if as_json:
        echo_json({"deleted": destination_id})
    else:
        click.echo(f"Removed destination {destination_id} from live stream {stream_id}.")
