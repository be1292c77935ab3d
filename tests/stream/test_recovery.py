"""A node killed mid-broadcast: the next start ends the broadcast when its media stopped.

Node one runs a broadcast (the hub driven directly, as a protocol server would). The
state a kill -9 leaves behind is what its database holds at that instant, so the test
copies the live SQLite file with SQLite's own online backup, and starts node two on
the copy: it must close the broadcast at its last media (not at the restart), set
the stream idle and record `disconnected` and `idle`, marked as recovered.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.conftest import node_settings

from golive.app import Golive
from golive.core.events import EventType
from golive.formats.tag import MediaTag, TagType
from golive.store import Store

VIDEO = MediaTag(TagType.VIDEO, 0, b"\x17\x01\x00\x00\x00")
TIMEOUT = 30


def copy_database(source: Path, target: Path) -> None:
    """Everything committed in `source` right now (WAL included): what a kill leaves."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


async def test_broadcast_left_open_by_a_killed_node_ends_at_its_last_media(
    tmp_path: Path,
) -> None:
    one = Golive(node_settings(tmp_path / "one", transcode=False, srt_port=None))
    await one.start()
    try:
        assert one.store is not None and one.hub is not None and one._recorder is not None
        record, key = await one.store.create_stream(name="show", reconnect_window=30)
        publisher = await one.hub.open_publisher(key, protocol="rtmp",
                                                 remote_address="192.0.2.1:4000")
        before_media = datetime.now(UTC)
        publisher.push(VIDEO)
        after_media = datetime.now(UTC)
        await asyncio.wait_for(one.hub.flush(), TIMEOUT)
        await asyncio.wait_for(one._recorder.wait_recorded(2), TIMEOUT)  # connected, active
        copy_database(tmp_path / "one/data/golive.db", tmp_path / "two/data/golive.db")
    finally:
        await one.stop()

    restarted_at = datetime.now(UTC)
    two = Golive(node_settings(tmp_path / "two", transcode=False, srt_port=None))
    await two.start()
    try:
        assert two.store is not None and two._recorder is not None
        await asyncio.wait_for(two._recorder.wait_recorded(2), TIMEOUT)  # disconnected, idle
        await check_recovered(two.store, record.id, publisher.broadcast_id,
                              (before_media, after_media), restarted_at)
    finally:
        await two.stop()


async def check_recovered(store: Store, stream_id: str, broadcast_id: str,
                          media: tuple[datetime, datetime], restarted_at: datetime) -> None:
    [broadcast] = await store.list_broadcasts(stream_id)
    assert broadcast.id == broadcast_id
    assert broadcast.ended_at is not None and broadcast.ended_at == broadcast.last_media_at
    assert media[0] <= broadcast.ended_at <= media[1] < restarted_at

    stream = await store.get_stream(stream_id)
    assert stream is not None and (stream.status, stream.active_broadcast_id) == ("idle", None)

    events = list(reversed(await store.list_events(stream_id)))
    assert [(e.type, e.broadcast_id) for e in events] == [
        (EventType.LIVE_STREAM_CONNECTED, broadcast_id),
        (EventType.LIVE_STREAM_ACTIVE, broadcast_id),
        (EventType.LIVE_STREAM_DISCONNECTED, broadcast_id),
        (EventType.LIVE_STREAM_IDLE, broadcast_id),
    ]
    for event in events[2:]:
        assert event.data == {"reason": "node restarted", "recovered": True}
        assert event.at == broadcast.ended_at
    assert events[-1].at - events[0].at < timedelta(seconds=TIMEOUT)
