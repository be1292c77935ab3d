"""Simulcast wiring: a `Forwarder` per enabled destination of each live broadcast (stage: media).

`DestinationRelay` is a `BroadcastObserver`. When a broadcast starts it asks `load`
for the stream's enabled destinations and attaches one forwarder to each: a destination
of the source as a sink of the broadcast (headers replayed), one of a ladder rendition
as a tap of that rendition's output (`Renditions`, the live pipeline); when the
broadcast ends it stops them. `sync(stream_id)`
is called after a destination is added or removed while live: it starts the new and
stops the removed ones, touching no other. Each forwarder's state (with the time it
was entered) is kept for the API, and an `errored` state becomes a
`live_stream.warning` with code `destination_errored` and data
`{"destination", "state", "reason"}`. While a broadcast lasts its destinations are
read again every `resync_interval` seconds, so a change made elsewhere (the command
line, another node's API) takes effect live too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from golive.core import Backoff, Event, EventBus, EventType
from golive.media.destinations import (
    SOURCE,
    DestinationState,
    Forwarder,
    ForwarderStatus,
    RenditionForwarder,
    redact_url,
)
from golive.media.pipeline import RenditionTap
from golive.stream import Broadcast

log = logging.getLogger(__name__)

__all__ = ["DestinationRelay", "DestinationTarget", "DestinationView", "Renditions"]


@dataclass(frozen=True, slots=True)
class DestinationTarget:
    """One enabled destination as the relay needs it: its id, full URL (with secret), and
    `source` or the ladder rendition it gets."""

    id: str
    url: str
    rendition: str = SOURCE


class Renditions(Protocol):
    """Where a rendition's encoded output is tapped (`LivePipeline`)."""

    def tap_rendition(self, stream_id: str, tap: RenditionTap) -> bool: ...

    def untap_rendition(self, stream_id: str, tap: RenditionTap) -> None: ...


@dataclass(frozen=True, slots=True)
class DestinationView:
    """A live destination's state as the API shows it."""

    state: DestinationState
    reason: str | None
    since: datetime
    attempts: int
    dropped_frames: int


@dataclass(eq=False)
class _Live:
    broadcast: Broadcast
    forwarders: dict[str, Forwarder] = field(default_factory=dict)
    views: dict[str, DestinationView] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ended: bool = False
    follow: asyncio.Task[None] | None = None


class DestinationRelay:
    """Forwards each live broadcast to its stream's enabled destinations."""

    def __init__(
        self,
        *,
        load: Callable[[str], Awaitable[Sequence[DestinationTarget]]],
        bus: EventBus,
        ffmpeg: str,
        queue_bytes: int,
        allow_private: bool,
        retry_first: float = 1.0,
        retry_longest: float = 30.0,
        resync_interval: float = 5.0,
        renditions: Renditions | None = None,
    ) -> None:
        """`renditions`: where destinations on a rendition read it (None: no ladder, such
        destinations are errored)."""
        self._load = load
        self._renditions = renditions
        self._bus = bus
        self._ffmpeg = ffmpeg
        self._queue_bytes = queue_bytes
        self._allow_private = allow_private
        self._retry_first = retry_first
        self._retry_longest = retry_longest
        self._resync_interval = resync_interval
        self._live: dict[str, _Live] = {}  # by stream id
        self._tasks: set[asyncio.Task[None]] = set()

    # BroadcastObserver -----------------------------------------------------------------

    def broadcast_started(self, broadcast: Broadcast) -> None:
        live = _Live(broadcast)
        self._live[broadcast.stream_id] = live
        live.follow = asyncio.get_running_loop().create_task(self._follow(live))

    def publisher_resumed(self, broadcast: Broadcast) -> None:
        pass  # forwarders keep running across a reconnect; a clock jump restarts their run

    def publisher_lost(self, broadcast: Broadcast) -> None:
        pass

    def broadcast_ended(self, broadcast: Broadcast) -> None:
        live = self._live.get(broadcast.stream_id)
        if live is None or live.broadcast is not broadcast:
            return
        del self._live[broadcast.stream_id]
        live.ended = True
        if live.follow is not None:
            live.follow.cancel()
        self._spawn(self._stop_all(live))

    # For the API -----------------------------------------------------------------------

    def sync(self, stream_id: str) -> None:
        """Start destinations added and stop those removed while the stream is live."""
        live = self._live.get(stream_id)
        if live is not None:
            self._spawn(self._sync(live))

    def status(self, stream_id: str) -> dict[str, DestinationView]:
        """The state of each destination forwarding the stream's live broadcast."""
        live = self._live.get(stream_id)
        return dict(live.views) if live is not None else {}

    async def close(self) -> None:
        for live in list(self._live.values()):
            await self._stop_all(live)
        self._live.clear()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)

    # Internals ------------------------------------------------------------------------

    async def _follow(self, live: _Live) -> None:
        while not live.ended:
            await self._sync(live)
            await asyncio.sleep(self._resync_interval)

    async def _sync(self, live: _Live) -> None:
        async with live.lock:
            try:
                targets = {t.id: t for t in await self._load(live.broadcast.stream_id)}
            except Exception:  # a store outage: keep what runs, the next sync retries
                log.exception("destinations of stream %s could not be loaded",
                              live.broadcast.stream_id)
                return
            if live.ended:
                return
            for dest_id in [d for d in live.forwarders if d not in targets]:
                await self._stop_one(live, dest_id)
            for dest_id, target in targets.items():
                current = live.forwarders.get(dest_id)
                if (current is not None and current.url == target.url
                        and current.rendition == target.rendition):
                    continue
                if current is not None:
                    await self._stop_one(live, dest_id)
                self._start_one(live, target)

    def _start_one(self, live: _Live, target: DestinationTarget) -> None:
        broadcast = live.broadcast

        def on_state(status: ForwarderStatus) -> None:
            self._changed(live, target, status)

        backoff = Backoff(first=self._retry_first, longest=self._retry_longest, jitter=0.2)
        if target.rendition != SOURCE:
            tap = RenditionForwarder(
                target.url, target.rendition, ffmpeg=self._ffmpeg,
                queue_bytes=self._queue_bytes, allow_private=self._allow_private,
                backoff=backoff, on_state=on_state)
            live.forwarders[target.id] = tap
            live.views[target.id] = _view(tap.status)
            renditions = self._renditions
            if renditions is None or not renditions.tap_rendition(broadcast.stream_id, tap):
                tap.status.state = DestinationState.ERRORED
                tap.status.reason = (f"rendition {target.rendition!r} is not being made: "
                                     "the node does not transcode this broadcast")
                on_state(tap.status)
                return
            tap.start()
        else:
            forwarder = Forwarder(
                target.url, ffmpeg=self._ffmpeg, queue_bytes=self._queue_bytes,
                # The FLV header announces audio; a source without any sends no audio tags
                # and ffmpeg maps only the video it finds.
                has_audio=True, allow_private=self._allow_private, backoff=backoff,
                on_state=on_state,
            )
            live.forwarders[target.id] = forwarder
            live.views[target.id] = _view(forwarder.status)
            broadcast.add_sink(forwarder)
            broadcast.replay_headers(forwarder)
            forwarder.start()
        log.info("destination started stream_id=%s destination=%s rendition=%s url=%s",
                 broadcast.stream_id, target.id, target.rendition, redact_url(target.url))

    async def _stop_one(self, live: _Live, dest_id: str) -> None:
        forwarder = live.forwarders.pop(dest_id)
        live.views.pop(dest_id, None)
        if isinstance(forwarder, RenditionForwarder):
            if self._renditions is not None:
                self._renditions.untap_rendition(live.broadcast.stream_id, forwarder)
        else:
            live.broadcast.remove_sink(forwarder)
        await forwarder.stop()

    async def _stop_all(self, live: _Live) -> None:
        live.ended = True
        if live.follow is not None:
            live.follow.cancel()
        async with live.lock:
            for dest_id in list(live.forwarders):
                await self._stop_one(live, dest_id)

    def _changed(self, live: _Live, target: DestinationTarget, status: ForwarderStatus) -> None:
        if live.forwarders.get(target.id) is None:
            return
        live.views[target.id] = _view(status)
        if status.state is DestinationState.ERRORED:
            broadcast = live.broadcast
            log.warning("destination errored stream_id=%s destination=%s reason=%s",
                        broadcast.stream_id, target.id, status.reason)
            self._bus.publish(Event(
                type=EventType.LIVE_STREAM_WARNING, stream_id=broadcast.stream_id,
                broadcast_id=broadcast.id,
                data={"code": "destination_errored",
                      "message": f"destination {target.id} failed: {status.reason}",
                      "destination": target.id, "state": status.state.value,
                      "reason": status.reason},
            ))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _view(status: ForwarderStatus) -> DestinationView:
    return DestinationView(state=status.state, reason=status.reason, since=datetime.now(UTC),
                           attempts=status.attempts, dropped_frames=status.dropped_frames)


