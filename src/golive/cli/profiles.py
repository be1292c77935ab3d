"""`golive profiles` (control plane): published profile versions, their differences,
validation of profile files, and a stream's pin, history and rollback.

Every command first publishes what the profile files hold (`ProfileCatalog.sync`),
exactly as a running node does before it answers. Pins made here are refused while
the stream is live unless forced (`--force-reason` with each `--field` the change
touches); they are written to the audit log and the stream's events.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from golive.cli.config import command_settings
from golive.cli.database import with_store
from golive.cli.output import cli_actor, echo_json, json_option, key_values, table, when

if TYPE_CHECKING:
    from golive.ops import PinOutcome, ProfileCatalog
    from golive.settings import Settings
    from golive.store import Store


@click.group()
def profiles() -> None:
    """Release profiles: versions, validation, diffs, and the profile a stream pins."""


def _catalog(settings: Settings, store: Store) -> ProfileCatalog:
    from golive.ops import ProfileCatalog

    return ProfileCatalog(store, settings.resolved_profiles_dir)


def _warn_problems(problems: list[Any]) -> None:
    for p in problems:
        click.echo(f"warning: not published: {p.message}", err=True)


@profiles.command("list")
@json_option
@click.pass_context
def profiles_list(ctx: click.Context, as_json: bool) -> None:
    """The newest published version of every profile."""
    from golive.api import profile_version_out

    settings = command_settings(ctx)

    async def go(store: Store) -> tuple[list[Any], list[Any]]:
        problems = await _catalog(settings, store).sync()
        return await store.list_latest_profiles(), problems

    records, problems = with_store(settings, go)
    _warn_problems(problems)
    if as_json:
        echo_json([profile_version_out(r) for r in records])
        return
    rows = [(o.label, o.owner or None, o.author, when(o.created_at), o.description)
            for o in (profile_version_out(r) for r in records)]
    click.echo(table(["profile", "owner", "author", "published", "description"], rows))


@profiles.command("show")
@click.argument("spec")
@json_option
@click.pass_context
def profiles_show(ctx: click.Context, spec: str, as_json: bool) -> None:
    """One published version (SPEC: NAME for the newest, or NAME@VERSION)."""
    from golive.api import profile_version_detail

    settings = command_settings(ctx)
    record = with_store(settings, lambda s: _catalog(settings, s).resolve(spec))
    out = profile_version_detail(record)
    if as_json:
        echo_json(out)
        return
    key_values([("profile", out.label), ("owner", out.owner or "-"), ("author", out.author),
                ("source", out.source), ("published", when(out.created_at)),
                ("sha256", out.content_hash)])
    click.echo("")
    click.echo(record.document.rstrip())


@profiles.command("validate")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def profiles_validate(files: tuple[Path, ...], as_json: bool) -> None:
    """Check profile files without publishing them; exit 1 when any is invalid."""
    from golive.api import validate_document

    results: list[dict[str, Any]] = []
    for path in files:
        try:
            if path.stat().st_size > 64 * 1024:
                raise click.ClickException(f"{path}: over 64 KiB; not a profile file")
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.ClickException(f"{path}: cannot read: {exc}") from None
        result = validate_document(text, path.stem)
        results.append({"file": str(path), **result.model_dump(mode="json")})
    if as_json:
        echo_json(results)
    else:
        for r in results:
            if r["valid"]:
                click.echo(f"{r['file']}: ok ({r['label']})")
            for error in r["errors"]:
                click.echo(f"{r['file']}: {error}")
    if not all(r["valid"] for r in results):
        ctx = click.get_current_context()
        ctx.exit(1)


@profiles.command("diff")
@click.argument("old")
@click.argument("new")
@json_option
@click.pass_context
def profiles_diff(ctx: click.Context, old: str, new: str, as_json: bool) -> None:
    """What changes from OLD to NEW (each NAME or NAME@VERSION)."""
    from golive.ops import document_profile, profile_diff

    settings = command_settings(ctx)

    async def go(store: Store) -> tuple[Any, Any]:
        catalog = _catalog(settings, store)
        return await catalog.resolve(old), await catalog.resolve(new)

    a, b = with_store(settings, go)
    changes = profile_diff(document_profile(a), document_profile(b))
    if as_json:
        echo_json({"from": a.label, "to": b.label, "changes": [c.as_dict() for c in changes]})
        return
    if not changes:
        click.echo(f"{a.label} and {b.label} have the same settings.")
        return
    click.echo(f"{a.label} -> {b.label}")
    click.echo(table(["field", "old", "new"], [(c.path, c.old, c.new) for c in changes]))


@profiles.command("history")
@click.argument("name")
@click.option("--stream", "is_stream", is_flag=True,
              help="NAME is a live stream id: show its pins instead, newest first.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@json_option
@click.pass_context
def profiles_history(ctx: click.Context, name: str, is_stream: bool, limit: int,
                     as_json: bool) -> None:
    """A profile's published versions, newest first (or a stream's pins with --stream)."""
    from golive.api import profile_pin_out, profile_version_out

    settings = command_settings(ctx)
    if is_stream:
        async def pins(store: Store) -> list[Any]:
            if await store.get_stream(name) is None:
                raise click.ClickException(f"no live stream with id {name!r}")
            return await store.list_profile_pins(name, limit=limit)

        pin_records = [profile_pin_out(p) for p in with_store(settings, pins)]
        if as_json:
            echo_json(pin_records)
            return
        click.echo(table(["profile", "pinned", "by", "forced", "reason"], [
            (p.profile, when(p.pinned_at), p.pinned_by, "yes" if p.forced else "no", p.reason)
            for p in pin_records]))
        return

    async def versions(store: Store) -> list[Any]:
        await _catalog(settings, store).resolve(name)  # publishes, and names an unknown one
        return await store.list_profile_versions(name, limit=limit)

    outs = [profile_version_out(r) for r in with_store(settings, versions)]
    if as_json:
        echo_json(outs)
        return
    click.echo(table(["profile", "published", "author", "sha256", "source"], [
        (o.label, when(o.created_at), o.author, o.content_hash[:12], o.source) for o in outs]))


_force_options = [
    click.option("--force-reason", help="Change a live stream's profile anyway, and say why."),
    click.option("--field", "fields", multiple=True,
                 help="A field the forced change touches (repeat; TOML paths such as "
                 "renditions[0].video_bitrate_kbps or a table: alerts)."),
]


def force_options(f: Any) -> Any:
    for option in reversed(_force_options):
        f = option(f)
    return f


def forced(reason: str | None, fields: tuple[str, ...]) -> Any:
    from golive.ops import ForcedChange

    if reason is None:
        if fields:
            raise click.UsageError("--field needs --force-reason")
        return None
    return ForcedChange(reason=reason, fields=fields)


def run_pin(settings: Settings, stream_id: str, spec: str | None, force: Any) -> PinOutcome:
    """Pin (spec) or roll back (None) a stream; record the event and the audit entry."""
    from golive.ops import ProfileFrozen, pin_details, pin_event

    actor = cli_actor()

    async def go(store: Store) -> PinOutcome:
        record = await store.get_stream(stream_id)
        if record is None:
            raise click.ClickException(f"no live stream with id {stream_id!r}")
        catalog = _catalog(settings, store)
        try:
            if spec is None:
                outcome = await catalog.rollback(record, by=actor.name, force=force)
            else:
                outcome = await catalog.pin(record, spec, by=actor.name, force=force)
        except ProfileFrozen as exc:
            raise click.ClickException(f"{exc} (--force-reason, --field)") from None
        if outcome.previous != outcome.current or outcome.forced is not None:
            # The running node's recorder does not see this process's bus: store it here.
            await store.record_event(pin_event(outcome, actor.name))
            await store.record_audit(
                actor, "live_stream.profile_rollback" if spec is None
                else "live_stream.profile_pin", "live_stream", stream_id,
                {"broadcast_id": outcome.broadcast_id, **pin_details(outcome)})
        return outcome

    return with_store(settings, go)


def _print_outcome(settings: Settings, outcome: PinOutcome, as_json: bool) -> None:
    if as_json:
        from golive.api import live_stream_out

        echo_json(live_stream_out(outcome.stream, settings=settings,
                                  host=settings.advertised_host))
        return
    note = " (forced while live)" if outcome.forced is not None else ""
    click.echo(f"Live stream {outcome.stream.id}: profile {outcome.previous} -> "
               f"{outcome.current}{note}.")


@profiles.command("pin")
@click.argument("stream_id")
@click.argument("spec")
@force_options
@json_option
@click.pass_context
def profiles_pin(ctx: click.Context, stream_id: str, spec: str, force_reason: str | None,
                 fields: tuple[str, ...], as_json: bool) -> None:
    """Pin a stream to SPEC (NAME for the newest version, or NAME@VERSION)."""
    settings = command_settings(ctx)
    _print_outcome(settings, run_pin(settings, stream_id, spec, forced(force_reason, fields)),
                   as_json)


@profiles.command("rollback")
@click.argument("stream_id")
@force_options
@json_option
@click.pass_context
def profiles_rollback(ctx: click.Context, stream_id: str, force_reason: str | None,
                      fields: tuple[str, ...], as_json: bool) -> None:
    """Pin the profile version the stream had before its current one."""
    settings = command_settings(ctx)
    _print_outcome(settings, run_pin(settings, stream_id, None, forced(force_reason, fields)),
                   as_json)
