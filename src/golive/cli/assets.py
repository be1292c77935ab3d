"""`golive assets` (control plane): list, show and delete recorded assets.

Commands read the same database a running server uses; `delete` removes the
asset's objects from the configured storage first, then its index, and records
`asset.deleted` in its stream's event log.
"""

from __future__ import annotations

import click

from golive.cli.config import command_settings
from golive.cli.database import with_store
from golive.cli.output import echo_json, json_option, key_values, table, when
from golive.settings import Settings
from golive.store import AssetRecord, Store


@click.group()
def assets() -> None:
    """List, show and delete recorded assets."""


def _missing(asset_id: str) -> click.ClickException:
    return click.ClickException(f"no asset with id {asset_id!r}")


def _status(record: AssetRecord) -> str:
    from golive.api import asset_out

    return asset_out(record).status


def _vod_url(settings: Settings, record: AssetRecord) -> str:
    return (f"{settings.http_scheme}://{settings.advertised_host}:{settings.http_port}"
            f"/vod/{record.playback_id}.m3u8")


@assets.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--after", help="Id of the last asset of the previous page.")
@click.option("--stream", "stream_id", help="Only this live stream's assets.")
@json_option
@click.pass_context
def assets_list(
    ctx: click.Context, limit: int, after: str | None, stream_id: str | None, as_json: bool
) -> None:
    """List assets, oldest first."""
    from golive.api import asset_out
    from golive.store import AssetStore

    settings = command_settings(ctx)

    async def action(store: Store) -> list[AssetRecord]:
        return await AssetStore(store.engine).list_assets(
            limit=limit, after=after, stream_id=stream_id
        )

    records = with_store(settings, action)
    if as_json:
        echo_json([asset_out(r) for r in records])
        return
    if not records:
        click.echo("No assets yet. Record a stream: golive streams create --name show --recording")
        return
    rows = [
        (r.id, r.stream_id, _status(r), f"{r.duration:.1f} s", r.playback_id, when(r.created_at))
        for r in records
    ]
    click.echo(table(["id", "live stream", "status", "duration", "playback id", "created"], rows))


@assets.command("get")
@click.argument("asset_id")
@json_option
@click.pass_context
def assets_get(ctx: click.Context, asset_id: str, as_json: bool) -> None:
    """Show one asset."""
    from golive.api import asset_out
    from golive.store import AssetStore

    settings = command_settings(ctx)

    async def action(store: Store) -> AssetRecord | None:
        return await AssetStore(store.engine).get(asset_id)

    record = with_store(settings, action)
    if record is None:
        raise _missing(asset_id)
    if as_json:
        echo_json(asset_out(record))
        return
    key_values([
        ("id", record.id),
        ("status", _status(record)),
        ("live stream", record.stream_id),
        ("broadcast", record.broadcast_id),
        ("duration", f"{record.duration:.3f} s"),
        ("bytes", record.bytes),
        ("renditions", ", ".join(f"{r.name} ({r.width}x{r.height})" if r.width
                                 else f"{r.name} (audio only)" for r in record.renditions)),
        ("playback", f"{_vod_url(settings, record)}  ({record.playback_policy})"),
        ("created", when(record.created_at)),
        ("ended", when(record.ended_at)),
        ("expires", when(record.expires_at) or "never"),
    ])


@assets.command("delete")
@click.argument("asset_id")
@json_option
@click.pass_context
def assets_delete(ctx: click.Context, asset_id: str, as_json: bool) -> None:
    """Delete an asset: every object it owns in storage, then its index."""
    from golive.core import EventBus
    from golive.recording import RecordingLibrary, StorageError, open_storage
    from golive.store import AssetStore

    settings = command_settings(ctx)

    async def action(store: Store) -> bool:
        bus = EventBus()
        events = bus.subscribe()
        storage = open_storage(settings)
        library = RecordingLibrary(AssetStore(store.engine), storage, bus)
        record = await library.asset(asset_id)
        if record is None:
            return False
        if record.status == "recording":
            raise click.ClickException(
                "the asset is still recording; delete it once its broadcast ends"
            )
        try:
            await library.delete(asset_id)
        except StorageError as exc:
            raise click.ClickException(f"storage could not delete the asset's media: {exc}") \
                from None
        finally:
            await storage.close()
        while (event := events.get_nowait()) is not None:
            await store.record_event(event)  # the running server's recorder does not see it
        return True

    if not with_store(settings, action):
        raise _missing(asset_id)
    if as_json:
        echo_json({"id": asset_id, "deleted": True})
        return
    click.echo(f"Deleted asset {asset_id} and its media.")
