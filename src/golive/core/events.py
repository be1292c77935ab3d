"""Typed events and the in-process event bus (core).

Publishing never blocks and never awaits: each subscriber owns a bounded queue,
and a subscriber that falls behind loses its oldest events (counted in
`Subscription.dropped`) instead of slowing ingest down.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

log = logging.getLogger(__name__)


class EventType(enum.StrEnum):
    """Event names; webhooks use the same strings."""

    LIVE_STREAM_CREATED = "live_stream.created"
    LIVE_STREAM_UPDATED = "live_stream.updated"
    LIVE_STREAM_DELETED = "live_stream.deleted"
    LIVE_STREAM_ENABLED = "live_stream.enabled"
    LIVE_STREAM_DISABLED = "live_stream.disabled"
    LIVE_STREAM_CONNECTED = "live_stream.connected"
    LIVE_STREAM_ACTIVE = "live_stream.active"
    LIVE_STREAM_DISCONNECTED = "live_stream.disconnected"
    LIVE_STREAM_IDLE = "live_stream.idle"
    LIVE_STREAM_WARNING = "live_stream.warning"
    # The standby publisher took over: data {from, to, reason}, roles "primary"/"backup".
    LIVE_STREAM_FAILOVER = "live_stream.failover"
    RECORDING_READY = "recording.ready"
    ASSET_READY = "asset.ready"
    ASSET_DELETED = "asset.deleted"
    ALERT_FIRING = "alert.firing"
    ALERT_RESOLVED = "alert.resolved"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a live stream. `data` is read-only and JSON-safe."""

    type: EventType
    stream_id: str
    at: datetime = field(default_factory=utcnow)
    broadcast_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not isinstance(self.data, MappingProxyType):
            object.__setattr__(self, "data", MappingProxyType(dict(self.data)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": str(self.type),
            "stream_id": self.stream_id,
            "broadcast_id": self.broadcast_id,
            "at": self.at.isoformat(),
            "data": dict(self.data),
        }


class Subscription:
    """A subscriber's bounded inbox. Iterate it with `async for`; close it when done."""

    def __init__(
        self,
        bus: EventBus,
        maxsize: int,
        accept: Callable[[Event], bool] | None,
    ) -> None:
        self._bus = bus
        self._queue: deque[Event] = deque()
        self._maxsize = maxsize
        self._accept = accept
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if self._closed or (self._accept is not None and not self._accept(event)):
            return
        if len(self._queue) >= self._maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Event:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def get_nowait(self) -> Event | None:
        return self._queue.popleft() if self._queue else None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bus._remove(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """In-process publish/subscribe. `publish` is synchronous and O(subscribers)."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []

    def subscribe(
        self, *, maxsize: int = 1000, accept: Callable[[Event], bool] | None = None
    ) -> Subscription:
        sub = Subscription(self, maxsize, accept)
        self._subscriptions.append(sub)
        return sub

    def publish(self, event: Event) -> None:
        log.info(
            "event type=%s stream_id=%s broadcast_id=%s",
            event.type,
            event.stream_id,
            event.broadcast_id,
        )
        for sub in list(self._subscriptions):
            try:
                sub._offer(event)
            except Exception:  # a broken filter must not break ingest
                log.exception("event subscriber filter failed")

    def _remove(self, sub: Subscription) -> None:
        try:
            self._subscriptions.remove(sub)
        except ValueError:
            pass

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)
