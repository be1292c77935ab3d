"""Broadcasts: what a stream key's publishers feed, and its lifecycle (ingest).

The `BroadcastHub` is the one `PublishTarget` every protocol server talks to. It
checks the stream key, refuses a second publisher, keeps a broadcast alive for the
stream's reconnect window after its publisher drops (a publisher that returns in
time continues the same broadcast), measures live ingest facts, and fans each
media tag out to the broadcast's sinks (transcoder, recorder, tests).

State changes are written to the store in order by one writer task, so ingest
never waits on the database after the key check.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from golive.core.events import Event, EventBus, EventType, utcnow
from golive.core.secrets import hash_stream_key, random_id
from golive.formats.tag import MediaTag, TagType
from golive.store.repository import Store, StreamRecord
from golive.stream.facts import IngestMeter
from golive.stream.publish import Disconnect, PublishRefused, RefusalReason

log = logging.getLogger(__name__)


class MediaSink(Protocol):
    """Something downstream of a broadcast that takes its media (transcoder, recorder)."""

    def push(self, tag: MediaTag) -> None: ...


class BroadcastObserver(Protocol):
    """Pipeline stages that attach to broadcasts. Called on the event loop; must not block."""

    def broadcast_started(self, broadcast: Broadcast) -> None: ...

    def publisher_resumed(self, broadcast: Broadcast) -> None: ...

    def publisher_lost(self, broadcast: Broadcast) -> None: ...

    def broadcast_ended(self, broadcast: Broadcast) -> None: ...


class BroadcastState(enum.StrEnum):
    CONNECTED = "connected"  # a publisher is connected, no media yet
    ACTIVE = "active"  # media is flowing
    RECONNECTING = "reconnecting"  # publisher gone, inside the reconnect window
    ENDED = "ended"


@dataclass(eq=False)
class Broadcast:
    """One continuous live session of a stream, across publisher reconnects."""

    id: str
    stream: StreamRecord
    started_at: datetime
    state: BroadcastState = BroadcastState.CONNECTED
    meter: IngestMeter = field(default_factory=IngestMeter)
    sinks: list[MediaSink] = field(default_factory=list)
    publisher: _PublisherHandle | None = None
    publisher_count: int = 0
    _idle_timer: asyncio.TimerHandle | None = None

    @property
    def stream_id(self) -> str:
        return self.stream.id

    def add_sink(self, sink: MediaSink) -> None:
        self.sinks.append(sink)

    def remove_sink(self, sink: MediaSink) -> None:
        if sink in self.sinks:
            self.sinks.remove(sink)

    def replay_headers(self, sink: MediaSink) -> None:
        """Give a sink that attaches mid-broadcast the metadata and codec configuration."""
        for tag in (
            self.meter.metadata,
            self.meter.video_sequence_header,
            self.meter.audio_sequence_header,
        ):
            if tag is not None:
                sink.push(tag)


class _PublisherHandle:
    """The `Publisher` a protocol server holds for one connection."""

    def __init__(
        self,
        hub: BroadcastHub,
        broadcast: Broadcast,
        protocol: str,
        remote_address: str,
        disconnect: Disconnect | None,
        stream_key: str,
    ) -> None:
        self._hub = hub
        # Kept in memory only, to notice a key reset while this publisher is live.
        self.stream_key = stream_key
        self.stream_key_hash = hash_stream_key(stream_key)
        self._broadcast = broadcast
        self.protocol = protocol
        self.remote_address = remote_address
        self.connected_at = utcnow()
        self._disconnect = disconnect
        self._closed = False

    @property
    def stream_id(self) -> str:
        return self._broadcast.stream_id

    @property
    def broadcast_id(self) -> str:
        return self._broadcast.id

    def push(self, tag: MediaTag) -> None:
        if not self._closed:
            self._hub._on_media(self._broadcast, tag)

    def close(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._hub._on_publisher_gone(self._broadcast, self, reason)

    def kick(self, reason: str) -> None:
        """Ask the protocol server to drop this connection (key reset, stream disabled)."""
        if self._disconnect is not None and not self._closed:
            self._disconnect(reason)
        self.close(f"kicked: {reason}")


class BroadcastHub:
    """Authenticates publishers and owns every broadcast on this node."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        *,
        max_publishers: int = 100,
        default_reconnect_window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._bus = bus
        self._max_publishers = max_publishers
        self._default_window = default_reconnect_window
        self._clock = clock
        self._broadcasts: dict[str, Broadcast] = {}  # by stream id, until ended
        self._observers: list[BroadcastObserver] = []
        self._writes: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False

    # Lifecycle -----------------------------------------------------------------------

    async def start(self, *, sweep_interval: float = 5.0) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="broadcast-store-writer")
        self._sweeper = asyncio.create_task(
            self._sweep_loop(sweep_interval), name="broadcast-key-sweeper"
        )

    async def close(self) -> None:
        """End every broadcast now (server shutdown) and flush pending store writes."""
        self._closing = True
        for broadcast in list(self._broadcasts.values()):
            if broadcast.publisher is not None:
                broadcast.publisher.kick("server shutting down")
            self._end(broadcast, "shutdown")
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._writer is not None:
            await self._writes.put(None)
            try:
                await asyncio.wait_for(self._writer, timeout=10)
            except TimeoutError:
                self._writer.cancel()

    def add_observer(self, observer: BroadcastObserver) -> None:
        self._observers.append(observer)

    # PublishTarget --------------------------------------------------------------------

    async def open_publisher(
        self,
        stream_key: str,
        *,
        protocol: str,
        remote_address: str,
        disconnect: Disconnect | None = None,
    ) -> _PublisherHandle:
        if self._closing:
            raise PublishRefused(RefusalReason.SHUTTING_DOWN, "server is shutting down")
        record = await self._store.find_stream_by_key(stream_key)
        if record is None:
            raise PublishRefused(RefusalReason.UNKNOWN_KEY, "unknown stream key")
        if record.status == "disabled":
            raise PublishRefused(RefusalReason.DISABLED, "live stream is disabled")
        broadcast = self._broadcasts.get(record.id)
        if broadcast is not None and broadcast.publisher is not None:
            raise PublishRefused(
                RefusalReason.ALREADY_LIVE, "a publisher is already live on this stream key"
            )
        if self.publisher_count >= self._max_publishers:
            raise PublishRefused(
                RefusalReason.TOO_MANY_PUBLISHERS, "server has reached its publisher limit"
            )

        resumed = broadcast is not None
        if broadcast is None:
            broadcast = Broadcast(id=random_id("bc"), stream=record, started_at=utcnow())
            self._broadcasts[record.id] = broadcast
        else:
            broadcast.stream = record
            if broadcast._idle_timer is not None:
                broadcast._idle_timer.cancel()
                broadcast._idle_timer = None
            broadcast.state = BroadcastState.CONNECTED
        handle = _PublisherHandle(
            self, broadcast, protocol, remote_address, disconnect, stream_key
        )
        broadcast.publisher = handle
        broadcast.publisher_count += 1
        log.info(
            "publisher connected stream_id=%s broadcast_id=%s protocol=%s remote=%s resumed=%s",
            record.id,
            broadcast.id,
            protocol,
            remote_address,
            resumed,
        )
        if not resumed:
            bc = broadcast
            self._write(
                lambda: self._store.start_broadcast(
                    record.id, bc.id, protocol, remote_address, bc.started_at
                )
            )
        self._emit(
            EventType.LIVE_STREAM_CONNECTED,
            broadcast,
            protocol=protocol,
            remote_address=remote_address,
            resumed=resumed,
        )
        for observer in self._observers:
            self._notify(observer.publisher_resumed if resumed else observer.broadcast_started,
                         broadcast)
        return handle

    # BroadcastView (used by the API) -------------------------------------------------

    def ingest_facts(self, stream_id: str) -> dict[str, Any] | None:
        broadcast = self._broadcasts.get(stream_id)
        if broadcast is None:
            return None
        facts: dict[str, Any] = broadcast.meter.snapshot(self._clock()).as_dict()
        facts["broadcast_id"] = broadcast.id
        facts["state"] = str(broadcast.state)
        facts["started_at"] = broadcast.started_at.isoformat()
        publisher = broadcast.publisher
        facts["connected"] = publisher is not None
        facts["protocol"] = publisher.protocol if publisher else None
        facts["remote_address"] = publisher.remote_address if publisher else None
        facts["connected_since"] = publisher.connected_at.isoformat() if publisher else None
        facts["reconnects"] = max(0, broadcast.publisher_count - 1)
        return facts

    async def stream_changed(self, stream_id: str) -> None:
        """Re-check a live stream after its record changed; drop a publisher no longer allowed."""
        broadcast = self._broadcasts.get(stream_id)
        if broadcast is None:
            return
        record = await self._store.get_stream(stream_id)
        if record is None or record.status == "disabled":
            reason = "stream deleted" if record is None else "stream disabled"
            if broadcast.publisher is not None:
                broadcast.publisher.kick(reason)
            self._end(broadcast, reason)
            return
        publisher = broadcast.publisher
        if publisher is not None:
            current = await self._store.find_stream_by_key(publisher.stream_key)
            if current is None or current.id != stream_id:
                publisher.kick("stream key reset")
        broadcast.stream = record

    def broadcast(self, stream_id: str) -> Broadcast | None:
        return self._broadcasts.get(stream_id)

    @property
    def broadcasts(self) -> list[Broadcast]:
        return list(self._broadcasts.values())

    @property
    def publisher_count(self) -> int:
        return sum(1 for b in self._broadcasts.values() if b.publisher is not None)

    # Internals ------------------------------------------------------------------------

    def _on_media(self, broadcast: Broadcast, tag: MediaTag) -> None:
        broadcast.meter.observe(tag, self._clock())
        if broadcast.state is BroadcastState.CONNECTED and tag.type is not TagType.SCRIPT:
            first = broadcast.publisher_count == 1
            broadcast.state = BroadcastState.ACTIVE
            if first:
                self._write(
                    lambda: self._store.set_stream_status(broadcast.stream_id, "active", broadcast.id)
                )
                self._emit(EventType.LIVE_STREAM_ACTIVE, broadcast)
        for sink in list(broadcast.sinks):
            try:
                sink.push(tag)
            except Exception:
                log.exception(
                    "media sink failed, detaching it stream_id=%s sink=%r",
                    broadcast.stream_id,
                    sink,
                )
                broadcast.remove_sink(sink)

    def _on_publisher_gone(
        self, broadcast: Broadcast, handle: _PublisherHandle, reason: str
    ) -> None:
        if broadcast.publisher is not handle:
            return
        broadcast.publisher = None
        log.info(
            "publisher gone stream_id=%s broadcast_id=%s reason=%s",
            broadcast.stream_id,
            broadcast.id,
            reason,
        )
        self._emit(EventType.LIVE_STREAM_DISCONNECTED, broadcast, reason=reason)
        if broadcast.state is BroadcastState.ENDED:
            return
        for observer in self._observers:
            self._notify(observer.publisher_lost, broadcast)
        window = broadcast.stream.reconnect_window
        if window <= 0 or self._closing:
            self._end(broadcast, reason)
            return
        broadcast.state = BroadcastState.RECONNECTING
        loop = asyncio.get_running_loop()
        broadcast._idle_timer = loop.call_later(
            window, self._end, broadcast, "reconnect window elapsed"
        )

    def _end(self, broadcast: Broadcast, reason: str) -> None:
        if broadcast.state is BroadcastState.ENDED:
            return
        broadcast.state = BroadcastState.ENDED
        if broadcast._idle_timer is not None:
            broadcast._idle_timer.cancel()
            broadcast._idle_timer = None
        if self._broadcasts.get(broadcast.stream_id) is broadcast:
            del self._broadcasts[broadcast.stream_id]
        ended_at = utcnow()
        stream_id = broadcast.stream_id

        async def persist() -> None:
            await self._store.end_broadcast(broadcast.id, ended_at)
            record = await self._store.get_stream(stream_id)
            if record is not None and record.status == "active":
                await self._store.set_stream_status(stream_id, "idle", None)

        self._write(persist)
        self._emit(EventType.LIVE_STREAM_IDLE, broadcast, reason=reason)
        for observer in self._observers:
            self._notify(observer.broadcast_ended, broadcast)
        broadcast.sinks.clear()

    def _emit(self, type_: EventType, broadcast: Broadcast, **data: Any) -> None:
        self._bus.publish(
            Event(type=type_, stream_id=broadcast.stream_id, broadcast_id=broadcast.id, data=data)
        )

    def _notify(self, callback: Callable[[Broadcast], None], broadcast: Broadcast) -> None:
        try:
            callback(broadcast)
        except Exception:
            log.exception("broadcast observer failed stream_id=%s", broadcast.stream_id)

    def _write(self, op: Callable[[], Awaitable[None]]) -> None:
        self._writes.put_nowait(op)

    async def _write_loop(self) -> None:
        while True:
            op = await self._writes.get()
            if op is None:
                return
            try:
                await op()
            except Exception:
                log.exception("broadcast state write failed")

    async def _sweep_loop(self, interval: float) -> None:
        # Streams changed by another process (the CLI on the same database) are noticed
        # here: one query for every live stream, a full re-check only where it changed.
        while True:
            await asyncio.sleep(interval)
            try:
                states = await self._store.publish_states(list(self._broadcasts))
            except Exception:
                log.exception("live stream re-check failed")
                continue
            for stream_id, broadcast in list(self._broadcasts.items()):
                state = states.get(stream_id)
                publisher = broadcast.publisher
                if (
                    state is not None
                    and state[0] != "disabled"
                    and (publisher is None or publisher.stream_key_hash == state[1])
                ):
                    continue
                try:
                    await self.stream_changed(stream_id)
                except Exception:
                    log.exception("stream re-check failed stream_id=%s", stream_id)
