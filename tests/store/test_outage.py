"""A full disk loses nothing: broadcast rows and events wait in memory and land in order.

A real Store (SQLite and PostgreSQL), the real hub and event recorder; `DiskFull` fails every write
inside the engine while it is set, as the database does when its disk fills.
"""

from __future__ import annotations

import asyncio

from tests.store.faults import DiskFull

from golive.core import Backoff
from golive.core.events import Event, EventBus, EventType
from golive.formats.tag import MediaTag, TagType
from golive.store import EventRecorder, Store, StoreStreamDirectory
from golive.stream import BroadcastHub

VIDEO = MediaTag(TagType.VIDEO, 0, b"\x17\x01\x00\x00\x00")
TIMEOUT = 30


async def test_broadcasts_and_events_written_while_the_disk_is_full_land_later(
    store: Store,
) -> None:
    disk = DiskFull(store.engine)
    bus = EventBus()
    recorder = EventRecorder(store, bus, backoff=Backoff(first=0.01, longest=0.05))
    recorder.start()
    hub = BroadcastHub(StoreStreamDirectory(store), bus, retry_delay=0.01, max_retry_delay=0.05)
    await hub.start()
    try:
        record, key = await store.create_stream(name="show", reconnect_window=0)
        disk.full = True
        first = await hub.open_publisher(key, protocol="rtmp", remote_address="192.0.2.1:1")
        first.push(VIDEO)
        first.close("eof")  # no reconnect window: connected, active, disconnected, idle
        second = await hub.open_publisher(key, protocol="srt", remote_address="192.0.2.1:2")
        second.push(VIDEO)  # connected, active
        # Both writers met the full disk and kept going back to it.
        await asyncio.wait_for(disk.refusals(10), TIMEOUT)
        assert hub.retried_writes > 0 and recorder.retries > 0
        assert await store.list_broadcasts(record.id) == []
        assert await store.list_events(record.id) == []

        disk.full = False
        await asyncio.wait_for(hub.flush(), TIMEOUT)
        await asyncio.wait_for(recorder.wait_recorded(6), TIMEOUT)

        newest_first = await store.list_broadcasts(record.id)
        assert [(b.id, b.protocol, b.ended_at is None) for b in newest_first] == [
            (second.broadcast_id, "srt", True),
            (first.broadcast_id, "rtmp", False),
        ]
        assert all(b.last_media_at is not None for b in newest_first)
        live = await store.get_stream(record.id)
        assert live is not None
        assert (live.status, live.active_broadcast_id) == ("active", second.broadcast_id)
        events = list(reversed(await store.list_events(record.id)))
        assert [(e.type, e.broadcast_id) for e in events] == [
            (EventType.LIVE_STREAM_CONNECTED, first.broadcast_id),
            (EventType.LIVE_STREAM_ACTIVE, first.broadcast_id),
            (EventType.LIVE_STREAM_DISCONNECTED, first.broadcast_id),
            (EventType.LIVE_STREAM_IDLE, first.broadcast_id),
            (EventType.LIVE_STREAM_CONNECTED, second.broadcast_id),
            (EventType.LIVE_STREAM_ACTIVE, second.broadcast_id),
        ]
        assert [e.at for e in events] == sorted(e.at for e in events)
        assert hub.dropped_writes == 0 and recorder.dropped == 0
    finally:
        disk.full = False
        await hub.close()
        await recorder.stop()


async def test_events_past_the_backlog_drop_the_oldest_and_count_them(store: Store) -> None:
    disk = DiskFull(store.engine)
    bus = EventBus()
    recorder = EventRecorder(store, bus, backlog=3, backoff=Backoff(first=0.01, longest=0.05))
    recorder.start()
    try:
        record, _ = await store.create_stream(name="show")
        disk.full = True
        def announce(n: int) -> None:
            bus.publish(Event(type=EventType.LIVE_STREAM_WARNING, stream_id=record.id,
                              data={"n": n}))

        announce(0)
        await asyncio.wait_for(disk.refusals(1), TIMEOUT)  # event 0 is being retried
        for n in range(1, 6):  # 1..5 wait; the inbox holds three, so 1 and 2 give way
            announce(n)
        disk.full = False
        await asyncio.wait_for(recorder.wait_recorded(4), TIMEOUT)
        events = list(reversed(await store.list_events(record.id)))
        assert [e.data["n"] for e in events] == [0, 3, 4, 5]
        assert recorder.dropped == 2
    finally:
        disk.full = False
        await recorder.stop()
