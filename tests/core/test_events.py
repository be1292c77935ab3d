"""The event bus: typed events, bounded inboxes, a slow subscriber never blocks publishing."""

from __future__ import annotations

import asyncio

import pytest

from golive.core.events import Event, EventBus, EventType


def _event(n: int = 0) -> Event:
    return Event(type=EventType.LIVE_STREAM_ACTIVE, stream_id=f"ls_{n}", data={"n": n})


async def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    a, b = bus.subscribe(), bus.subscribe()
    for i in range(5):
        bus.publish(_event(i))
    assert [(await a.get()).data["n"] for _ in range(5)] == list(range(5))
    assert [(await b.get()).data["n"] for _ in range(5)] == list(range(5))


async def test_slow_subscriber_loses_oldest_and_never_blocks() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=10)
    for i in range(1000):  # synchronous: would deadlock if publish awaited the subscriber
        bus.publish(_event(i))
    assert slow.dropped == 990
    assert (await slow.get()).data["n"] == 990


async def test_filter_and_close() -> None:
    bus = EventBus()
    only_one = bus.subscribe(accept=lambda e: e.stream_id == "ls_1")
    bus.publish(_event(0))
    bus.publish(_event(1))
    assert (await only_one.get()).stream_id == "ls_1"
    assert only_one.get_nowait() is None
    only_one.close()
    assert bus.subscriber_count == 0


async def test_waiting_subscriber_wakes_and_close_ends_iteration() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    received: list[str] = []

    async def consume() -> None:
        async for event in sub:
            received.append(event.stream_id)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    bus.publish(_event(7))
    await asyncio.sleep(0)
    sub.close()
    await asyncio.wait_for(task, timeout=5)
    assert received == ["ls_7"]


def test_event_data_is_read_only_and_serialisable() -> None:
    event = _event(3)
    with pytest.raises(TypeError):
        event.data["n"] = 4  # type: ignore[index]
    as_dict = event.as_dict()
    assert as_dict["type"] == "live_stream.active"
    assert as_dict["data"] == {"n": 3}
