"""The recorder: segments stored and indexed as they complete, assets finished, nothing lost
to a storage outage or a restart, retention and deletion (local disk storage, real SQLite)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from tests.e2e.conftest import eventually
from tests.recording.helpers import INIT, START, record, segment

from golive.core import EventBus, EventType
from golive.recording import (
    LocalStorage,
    Recorder,
    RecordingLibrary,
    RetentionSweeper,
    StorageError,
    segment_key,
)
from golive.store import AssetStore, Store


class FlakyStorage(LocalStorage):
    """Local disk that can be switched off: every write fails while `down`."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.down = False

    async def put(self, key: str, data: bytes) -> None:
        if self.down:
            raise StorageError("storage is down (test)")
        await super().put(key, data)

    async def delete(self, keys: Sequence[str]) -> None:
        await super().delete(keys)


def make_recorder(store: Store, storage: LocalStorage, bus: EventBus, tmp_path: Path,
                  **options: int) -> Recorder:
    return Recorder(store=store, assets=AssetStore(store.engine), storage=storage, bus=bus,
                    spool_dir=tmp_path / "spool", **options)  # type: ignore[arg-type]


async def broadcast(store: Store, recorder: Recorder, count: int, *, end: bool = True) -> str:
    stream, _ = await store.create_stream(name="show", recording=True)
    session = recorder.begin(stream_id=stream.id, broadcast_id="br_test1", signed=False)
    record(session, count, end=end)
    return session.asset_id


async def test_a_recording_becomes_a_ready_asset_with_its_index_and_events(
    store: Store, tmp_path: Path
) -> None:
    bus = EventBus()
    events = bus.subscribe()
    storage = LocalStorage(tmp_path / "recordings")
    recorder = make_recorder(store, storage, bus, tmp_path)
    await recorder.start()
    asset_id = await broadcast(store, recorder, 5)
    await recorder.wait_idle()
    library = RecordingLibrary(AssetStore(store.engine), storage, bus)
    asset = await library.asset(asset_id)
    assert asset is not None and asset.status == "ready"
    assert asset.duration == 5.0 and asset.bytes == 5 * 100 + len(INIT.data)
    assert [r.name for r in asset.renditions] == ["360p"]
    assert asset.renditions[0].width == 640 and asset.renditions[0].codecs == "avc1.42c01e"
    # What its segments measure (100 bytes a second), not what the live plan expected.
    assert (asset.renditions[0].bandwidth, asset.renditions[0].average_bandwidth) == (800, 800)
    segments = await library.segments(asset_id, "360p")
    assert [s.msn for s in segments] == list(range(1000, 1005))
    assert segments[0].key == segment_key(asset_id, "360p", 1000)
    assert await library.segment_bytes(asset_id, "360p", 1002) == bytes([1002 % 256]) * 100
    assert await library.init_bytes(asset_id, "360p", 0) == INIT.data
    assert await library.segment_bytes(asset_id, "360p", 999) is None
    types = []
    while (event := events.get_nowait()) is not None:
        types.append(event.type)
    assert EventType.RECORDING_READY in types and EventType.ASSET_READY in types
    stats = recorder.stats()
    assert stats.stored == 6 and stats.dropped == 0 and stats.lag_p99 is not None
    await recorder.close()


async def test_an_outage_spools_to_disk_and_a_restart_uploads_and_finishes(
    store: Store, tmp_path: Path
) -> None:
    bus = EventBus()
    events = bus.subscribe()
    storage = FlakyStorage(tmp_path / "recordings")
    storage.down = True
    recorder = make_recorder(store, storage, bus, tmp_path, writers=1)
    await recorder.start()
    asset_id = await broadcast(store, recorder, 6, end=False)

    async def spooled() -> bool:
        return recorder.stats().spooled >= 5

    await eventually(spooled, timeout=10, what="segments in the spool")
    # The node stops while storage is still down: what never reached it stays spooled.
    await recorder.close(drain_timeout=0.1)
    assert len(list((tmp_path / "spool").glob("*.spool"))) == 7  # six segments and the init
    warnings = []
    while (event := events.get_nowait()) is not None:
        if event.type == EventType.LIVE_STREAM_WARNING:
            warnings.append(event.data["code"])
    assert "recording_storage_unavailable" in warnings

    storage.down = False
    again = make_recorder(store, storage, bus, tmp_path)
    await again.start()  # the asset left `recording` is finished once its spool is stored
    await again.wait_idle()
    asset = await AssetStore(store.engine).get(asset_id)
    assert asset is not None and asset.status == "ready" and asset.duration == 6.0
    assert asset.ended_at == START + timedelta(seconds=6)  # the media's end, not the restart
    assert not list((tmp_path / "spool").glob("*.spool"))
    await again.close()


async def test_captions_are_kept_by_a_recording_a_crash_left_open(
    store: Store, tmp_path: Path
) -> None:
    bus = EventBus()
    storage = LocalStorage(tmp_path / "recordings")
    recorder = make_recorder(store, storage, bus, tmp_path)
    await recorder.start()
    stream, _ = await store.create_stream(name="show", recording=True)
    session = recorder.begin(stream_id=stream.id, broadcast_id="br_test1", signed=False)
    record(session, 3, end=False)
    session.captions_found({"CC1"})
    session.captions_found({"CC1", "CC3"})  # a second channel found later
    assets = AssetStore(store.engine)

    async def marked() -> bool:
        asset = await assets.get(session.asset_id)
        return asset is not None and asset.captions and asset.caption_channels == ("CC3",)

    await eventually(marked, timeout=10, what="the captions stored")  # before the end
    await recorder.close(drain_timeout=0.1)  # the node dies mid-broadcast
    again = make_recorder(store, storage, bus, tmp_path)
    await again.start()
    await again.wait_idle()
    asset = await assets.get(session.asset_id)
    assert asset is not None and asset.status == "ready" and asset.captions
    assert asset.caption_channels == ("CC3",)  # CC1 goes without saying
    await again.close()


async def test_a_full_spool_drops_segments_with_a_warning_never_blocking(
    store: Store, tmp_path: Path
) -> None:
    bus = EventBus()
    events = bus.subscribe()
    storage = FlakyStorage(tmp_path / "recordings")
    storage.down = True
    recorder = make_recorder(store, storage, bus, tmp_path, writers=1, queue_segments=2,
                             spool_bytes=250)
    await recorder.start()
    await broadcast(store, recorder, 20, end=False)

    async def dropped() -> bool:
        return recorder.stats().dropped >= 10

    await eventually(dropped, timeout=10, what="dropped segments")
    stats = recorder.stats()
    assert stats.spool_bytes <= 250 and stats.queued <= 4
    codes = set()
    while (event := events.get_nowait()) is not None:
        codes.add(event.data.get("code"))
    assert "recording_segment_dropped" in codes
    await recorder.close(drain_timeout=0.1)


async def test_retention_and_delete_remove_every_object_and_row(
    store: Store, tmp_path: Path
) -> None:
    bus = EventBus()
    events = bus.subscribe()
    storage = LocalStorage(tmp_path / "recordings")
    now = [START]
    recorder = Recorder(store=store, assets=AssetStore(store.engine), storage=storage, bus=bus,
                        spool_dir=tmp_path / "spool", retention_days=7, clock=lambda: now[0])
    await recorder.start()
    kept = await broadcast(store, recorder, 2)
    stream, _ = await store.create_stream(name="long", recording=True,
                                          recording_retention_days=30)
    session = recorder.begin(stream_id=stream.id, broadcast_id="br_test2", signed=False)
    session.segment_completed(segment(2000))
    session.presentation_ended()
    await recorder.wait_idle()
    assets = AssetStore(store.engine)
    first = await assets.get(kept)
    assert first is not None and first.expires_at == START + timedelta(days=7)
    longer = await assets.get(session.asset_id)
    assert longer is not None and longer.expires_at == START + timedelta(days=30)

    library = RecordingLibrary(assets, storage, bus)
    sweeper = RetentionSweeper(library, interval=3600, clock=lambda: START + timedelta(days=8))
    assert await sweeper.sweep() == 1
    assert await assets.get(kept) is None and await assets.segments(kept, "360p") == []
    assert not (tmp_path / "recordings" / kept).exists()
    assert await assets.get(session.asset_id) is not None  # 30 days: not yet
    assert (tmp_path / "recordings" / session.asset_id).exists()
    deleted = []
    while (event := events.get_nowait()) is not None:
        if event.type == EventType.ASSET_DELETED:
            deleted.append(event.data["asset_id"])
    assert deleted == [kept]
    await recorder.close()


async def test_nothing_stored_makes_an_errored_asset(store: Store, tmp_path: Path) -> None:
    bus = EventBus()
    recorder = make_recorder(store, LocalStorage(tmp_path / "recordings"), bus, tmp_path)
    await recorder.start()
    stream, _ = await store.create_stream(name="empty", recording=True)
    session = recorder.begin(stream_id=stream.id, broadcast_id="br_empty", signed=True)
    session.presentation_ended()
    await recorder.wait_idle()
    asset = await AssetStore(store.engine).get(session.asset_id)
    assert asset is not None and asset.status == "errored" and asset.error
    assert asset.playback_policy == "signed"
    await recorder.close()


@pytest.mark.parametrize("rendition", ["../x", "a/b", ""])
async def test_hostile_rendition_names_never_become_keys(rendition: str) -> None:
    with pytest.raises(ValueError):
        segment_key("as_1", rendition, 1)


async def test_a_recording_whose_asset_cannot_be_written_stores_nothing(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = EventBus()
    events = bus.subscribe()
    storage = LocalStorage(tmp_path / "recordings")
    recorder = make_recorder(store, storage, bus, tmp_path)
    await recorder.start()
    stream, _ = await store.create_stream(name="twice", recording=True)
    # Two presentations of one broadcast (a publisher came back with another track set)
    # are two assets.
    first = recorder.begin(stream_id=stream.id, broadcast_id="br_same", signed=False)
    record(first, 2)
    await recorder.wait_idle()
    second = recorder.begin(stream_id=stream.id, broadcast_id="br_same", signed=False)
    record(second, 2)
    await recorder.wait_idle()
    assert await AssetStore(store.engine).get(second.asset_id) is not None

    # An asset row the database refuses for good (not an outage): no retrying forever,
    # no objects that no index names.
    async def refuse(*args: object, **kwargs: object) -> None:
        raise IntegrityError("INSERT INTO assets", {}, Exception("constraint failed"))

    monkeypatch.setattr(recorder.assets, "create_asset", refuse)
    third = recorder.begin(stream_id=stream.id, broadcast_id="br_other", signed=False)
    record(third, 2)
    await recorder.wait_idle()
    assert not (tmp_path / "recordings" / third.asset_id).exists()
    assert await AssetStore(store.engine).get(third.asset_id) is None
    codes = {e.data.get("code") for e in iter(events.get_nowait, None)}
    assert "recording_failed" in codes
    await recorder.close()
