"""The broadcast hub: who may publish, and each stream's broadcast (stream).

The `BroadcastHub` is the one `PublishTarget` every protocol server talks to. It
checks the stream key against a `StreamDirectory`, admits one publisher per
stream (and one hot standby on the stream's other key: the backup key when the primary
feeds it, or the reverse, which takes over at once when the active one drops, goes silent
or collapses to under a quarter of its recent frame rate or bitrate for the broadcast's
`failover_after`), keeps a broadcast alive for the stream's reconnect window after its
publisher drops (a publisher that returns in time continues the same broadcast; a slate
fills the gap when the media stage offers one), splices every input that takes over at
once onto the broadcast's one timeline (`splice`: the transcoder keeps running),
measures live ingest facts, and fans each media tag out to the broadcast's sinks.

Lifecycle writes go to the directory in order through one writer task, so ingest
never waits on the database after the key check. A write the directory cannot make
yet (`DirectoryUnavailable`: disk full, database away) stays at the head of that
queue and is retried with backoff; the queue holds at most `max_pending_writes`
and drops its oldest, counted and logged, past that. While media flows the hub
tells the directory every `media_seen_interval` seconds, so that after a crash
`start()` can close each broadcast a killed node left open when its media
stopped, and announce its end (`disconnected`, `idle`, marked `recovered`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from golive.core import (
    Backoff,
    Event,
    EventBus,
    EventType,
    RepeatedLog,
    hash_stream_key,
    random_id,
    utcnow,
)
from golive.formats import MediaTag, TagType
from golive.stream.broadcast import (
    Broadcast,
    BroadcastObserver,
    BroadcastState,
    SlateFeed,
    SlateSource,
)
from golive.stream.clock import Clock, LoopClock, Timer
from golive.stream.collapse import RateWatch
from golive.stream.directory import (
    BroadcastStart,
    DirectoryUnavailable,
    RecoveredBroadcast,
    StreamDirectory,
)
from golive.stream.publish import Disconnect, PublishRefused, RefusalReason
from golive.stream.standby import StandbyBuffer

log = logging.getLogger(__name__)

# What the `disconnected` and `idle` events of a broadcast closed at startup say.
RECOVERED_REASON = "node restarted"


class _PublisherHandle:
    """The `Publisher` a protocol server holds for one connection (and the broadcast's
    `PublisherConnection`)."""

    def __init__(
        self,
        hub: BroadcastHub,
        broadcast: Broadcast,
        protocol: str,
        remote_address: str,
        disconnect: Disconnect | None,
        stream_key: str,
        stream_key_hash: str,
        role: str,
    ) -> None:
        self._hub = hub
        self.role = role  # "primary" or "backup": which of the stream's keys it used
        # Set while it is its broadcast's standby: its media is held here, not fanned out.
        self.standby: StandbyBuffer | None = None
        self.last_media_at = hub._clock.now()  # the hub's clock; since connecting if none yet
        self.sending_since = self.last_media_at  # start of its media without a gap
        self.rates = RateWatch()  # its recent frame rate and bitrate, for a collapse
        self.stream_key = stream_key
        self.stream_key_hash = stream_key_hash
        self._broadcast = broadcast
        self.protocol = protocol
        self.remote_address = remote_address
        self.connected_at: datetime = utcnow()
        self._disconnect = disconnect
        self._closed = False

    @property
    def stream_id(self) -> str:
        return self._broadcast.stream_id

    @property
    def broadcast_id(self) -> str:
        return self._broadcast.id

    @property
    def webrtc_playback(self) -> bool:
        return self._broadcast.policy.webrtc_playback

    def push(self, tag: MediaTag) -> None:
        if self._closed:
            return
        if tag.type is not TagType.SCRIPT:
            now = self._hub._clock.now()
            if now - self.last_media_at >= self._hub.failover_after(self._broadcast):
                self.sending_since = now
            self.last_media_at = now
            self.rates.add(now, len(tag.body), video=tag.type is TagType.VIDEO)
        if self.standby is not None:
            self.standby.add(tag)
        else:
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
        directory: StreamDirectory,
        bus: EventBus,
        *,
        max_publishers: int = 100,
        clock: Clock | None = None,
        media_seen_interval: float = 5.0,
        max_pending_writes: int = 10_000,
        retry_delay: float = 0.5,
        max_retry_delay: float = 30.0,
        failover_after: float = 1.0,
        failover_return_after: float = 0.0,
    ) -> None:
        if media_seen_interval <= 0 or max_pending_writes < 1:
            raise ValueError("media_seen_interval must be > 0 and max_pending_writes >= 1")
        if failover_after <= 0 or failover_return_after < 0:
            raise ValueError("failover_after must be > 0 and failover_return_after >= 0")
        if retry_delay <= 0 or max_retry_delay < retry_delay:
            raise ValueError("retry delays need 0 < retry_delay <= max_retry_delay")
        self._directory = directory
        self._bus = bus
        self._max_publishers = max_publishers
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._media_seen_interval = media_seen_interval
        self._max_pending_writes = max_pending_writes
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._broadcasts: dict[str, Broadcast] = {}  # by stream id, until ended
        self._reconnect_timers: dict[str, Timer] = {}  # by broadcast id, while reconnecting
        # Seconds the active publisher may send nothing while a ready standby sends.
        self._failover_after = failover_after
        # Seconds of steady media from a standby primary before it takes over again (0: never).
        self._failover_return_after = failover_return_after
        self._failover_timers: dict[str, Timer] = {}  # by broadcast id, while a standby waits
        # What feeds a broadcast while nobody publishes inside its reconnect window.
        self._slate_source: SlateSource | None = None
        self._slates: dict[str, SlateFeed] = {}  # by broadcast id, while a slate feeds it
        # By broadcast id: when media may next be reported to the directory.
        self._observers: list[BroadcastObserver] = []
        self._writes: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._warnings = RepeatedLog(log)
        self.dropped_writes = 0  # lifecycle writes given up because the queue was full
        self.retried_writes = 0  # attempts that found the directory unavailable
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False

    # Lifecycle -----------------------------------------------------------------------

    async def start(self, *, sweep_interval: float = 5.0) -> list[RecoveredBroadcast]:
        """Close what a killed node left open and announce it, then start the writer.

        Returns the broadcasts recovered that way.
        """
        recovered = list(await self._directory.recover_broadcasts())
        for gone in recovered:
            data = {"reason": RECOVERED_REASON, "recovered": True}
            if gone.publisher_connected:
                self._bus.publish(Event(
                    type=EventType.LIVE_STREAM_DISCONNECTED, stream_id=gone.stream_id,
                    broadcast_id=gone.broadcast_id, at=gone.ended_at, data=data,
                ))
            self._bus.publish(Event(
                type=EventType.LIVE_STREAM_IDLE, stream_id=gone.stream_id,
                broadcast_id=gone.broadcast_id, at=gone.ended_at, data=data,
            ))
            log.warning(
                "broadcast left open by a previous run closed stream_id=%s broadcast_id=%s "
                "ended_at=%s", gone.stream_id, gone.broadcast_id, gone.ended_at.isoformat(),
            )
        self._writer = asyncio.create_task(self._write_loop(), name="broadcast-store-writer")
        self._sweeper = asyncio.create_task(
            self._sweep_loop(sweep_interval), name="broadcast-key-sweeper"
        )
        return recovered

    async def close(self) -> None:
        """End every broadcast now (server shutdown) and flush pending directory writes."""
        self._closing = True
        for broadcast in list(self._broadcasts.values()):
            for publisher in (broadcast.standby, broadcast.publisher):
                if publisher is not None:
                    publisher.kick("server shutting down")
            self._end(broadcast, "shutdown")
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._writer is not None:
            await self._writes.put(None)
            try:
                await asyncio.wait_for(self._writer, timeout=10)
            except TimeoutError:
                self._writer.cancel()
                # The next start closes these broadcasts when their media stopped.
                log.warning("broadcast state writes not made at shutdown count=%d",
                            self._writes.qsize())

    async def flush(self) -> None:
        """Wait until every lifecycle write queued so far has reached the directory."""
        if self._writer is None or self._writer.done():
            raise RuntimeError("the hub's writer is not running; call start() first")
        await self._writes.join()

    def add_observer(self, observer: BroadcastObserver) -> None:
        self._observers.append(observer)

    def use_slate(self, source: SlateSource | None) -> None:
        """Feed broadcasts whose publisher is gone (no standby) from `source`'s slates
        until a publisher returns or the reconnect window ends them (None: no slates)."""
        self._slate_source = source

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
        key_hash = hash_stream_key(stream_key)
        policy = await self._directory.policy_for_key_hash(key_hash)
        if policy is None:
            raise PublishRefused(RefusalReason.UNKNOWN_KEY, "unknown stream key")
        if not policy.enabled:
            raise PublishRefused(RefusalReason.DISABLED, "live stream is disabled")
        broadcast = self._broadcasts.get(policy.stream_id)
        active = broadcast.publisher if broadcast is not None else None
        # The other key may join a live broadcast once, as its standby; the same key never.
        if active is not None and (
            broadcast is None or broadcast.standby is not None
            or active.stream_key_hash == key_hash
        ):
            raise PublishRefused(
                RefusalReason.ALREADY_LIVE, "a publisher is already live on this stream key"
            )
        if self.publisher_count >= self._max_publishers:
            raise PublishRefused(
                RefusalReason.TOO_MANY_PUBLISHERS, "server has reached its publisher limit"
            )
        states = await self._directory.key_states([policy.stream_id])
        state = states.get(policy.stream_id)
        role = "backup" if state is not None and state.backup_stream_key_hash == key_hash \
            else "primary"
        if broadcast is not None and active is not None:
            return self._admit_standby(
                broadcast, protocol, remote_address, disconnect, stream_key, key_hash, role
            )

        resumed = broadcast is not None
        if broadcast is None:
            broadcast = Broadcast(id=random_id("bc"), policy=policy, started_at=utcnow())
            self._broadcasts[policy.stream_id] = broadcast
        else:
            broadcast.policy = policy
            self._cancel_reconnect(broadcast)
            if broadcast.id in self._slates:
                # It takes over from the slate at once: continue the slate's timeline.
                self._stop_slate(broadcast)
                broadcast.splice.switch()
            else:  # back after a gap: its own timeline (the transcoder starts anew)
                broadcast.splice.restart()
            broadcast.move_to(BroadcastState.CONNECTED)
            broadcast.meter.new_publisher()
        handle = _PublisherHandle(
            self, broadcast, protocol, remote_address, disconnect, stream_key, key_hash, role
        )
        broadcast.publisher = handle
        broadcast.publisher_count += 1
        log.info(
            "publisher connected stream_id=%s broadcast_id=%s protocol=%s remote=%s resumed=%s",
            policy.stream_id,
            broadcast.id,
            protocol,
            remote_address,
            resumed,
        )
        if not resumed:
            start = BroadcastStart(
                stream_id=policy.stream_id,
                broadcast_id=broadcast.id,
                protocol=protocol,
                remote_address=remote_address,
                started_at=broadcast.started_at,
            )
            self._write(lambda: self._directory.broadcast_started(start))
        self._emit(
            EventType.LIVE_STREAM_CONNECTED,
            broadcast,
            protocol=protocol,
            remote_address=remote_address,
            resumed=resumed,
            role=role,
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
        facts: dict[str, Any] = broadcast.meter.snapshot(self._clock.now()).as_dict()
        facts["broadcast_id"] = broadcast.id
        facts["state"] = str(broadcast.state)
        facts["started_at"] = broadcast.started_at.isoformat()
        publisher = broadcast.publisher
        facts["connected"] = publisher is not None
        facts["protocol"] = publisher.protocol if publisher else None
        facts["remote_address"] = publisher.remote_address if publisher else None
        facts["connected_since"] = publisher.connected_at.isoformat() if publisher else None
        facts["reconnects"] = max(0, broadcast.publisher_count - 1)
        facts["role"] = publisher.role if isinstance(publisher, _PublisherHandle) else (
            "slate" if broadcast.id in self._slates else None)
        standby = broadcast.standby
        facts["standby"] = None if not isinstance(standby, _PublisherHandle) else {
            "role": standby.role,
            "protocol": standby.protocol,
            "remote_address": standby.remote_address,
            "connected_since": standby.connected_at.isoformat(),
            "ready": standby.standby is not None and standby.standby.ready,
        }
        return facts

    async def stream_changed(self, stream_id: str) -> None:
        """Re-check a live stream after it changed; drop a publisher no longer allowed."""
        broadcast = self._broadcasts.get(stream_id)
        if broadcast is None:
            return
        policy = await self._directory.policy(stream_id)
        if policy is None or not policy.enabled:
            reason = "stream deleted" if policy is None else "stream disabled"
            # The standby first: dropping the active publisher would hand it the broadcast.
            for publisher in (broadcast.standby, broadcast.publisher):
                if publisher is not None:
                    publisher.kick(reason)
            self._end(broadcast, reason)
            return
        for publisher in (broadcast.standby, broadcast.publisher):
            if publisher is not None:
                current = await self._directory.policy_for_key_hash(publisher.stream_key_hash)
                if current is None or current.stream_id != stream_id:
                    publisher.kick("stream key reset")
        broadcast.policy = policy

    async def recheck(self) -> None:
        """Notice streams changed by another process (the CLI on the same database): one
        lookup for every live stream, a full re-check only where one changed."""
        states = await self._directory.key_states(list(self._broadcasts))
        for stream_id, broadcast in list(self._broadcasts.items()):
            state = states.get(stream_id)
            publishers = [p for p in (broadcast.publisher, broadcast.standby) if p is not None]
            if (
                state is not None
                and state.enabled
                and all(state.admits(p.stream_key_hash) for p in publishers)
            ):
                continue
            try:
                await self.stream_changed(stream_id)
            except Exception:
                log.exception("stream re-check failed stream_id=%s", stream_id)

    def broadcast(self, stream_id: str) -> Broadcast | None:
        return self._broadcasts.get(stream_id)

    @property
    def broadcasts(self) -> list[Broadcast]:
        return list(self._broadcasts.values())

    def now(self) -> float:
        """The hub's clock, the one ingest facts are measured on."""
        return self._clock.now()

    def failover_after(self, broadcast: Broadcast) -> float:
        """The broadcast's failover threshold: its profile's, else the node's."""
        return broadcast.failover_after or self._failover_after

    @property
    def publisher_count(self) -> int:
        return sum((b.publisher is not None) + (b.standby is not None)
                   for b in self._broadcasts.values())

    # Internals ------------------------------------------------------------------------

    def _on_media(self, broadcast: Broadcast, tag: MediaTag) -> None:
        spliced = broadcast.splice.rewrite(tag)
        if spliced is None:
            return  # a new input's tags before its first keyframe
        tag = spliced
        now = self._clock.now()
        broadcast.meter.observe(tag, now)
        if now >= broadcast.media_seen_due:
            # Not per tag: one small write per broadcast every few seconds bounds how
            # much of a broadcast a crash can misplace.
            broadcast.media_seen_due = now + self._media_seen_interval
            stream_id, broadcast_id, seen_at = broadcast.stream_id, broadcast.id, utcnow()
            self._write(lambda: self._directory.media_seen(stream_id, broadcast_id, seen_at))
        if broadcast.state is BroadcastState.CONNECTED and tag.type is not TagType.SCRIPT:
            broadcast.move_to(BroadcastState.ACTIVE)
            # A returning publisher continues a broadcast that went active already.
            if not broadcast.went_active:
                broadcast.went_active = True
                stream_id, broadcast_id = broadcast.stream_id, broadcast.id
                self._write(lambda: self._directory.broadcast_active(stream_id, broadcast_id))
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

    def _admit_standby(
        self, broadcast: Broadcast, protocol: str, remote_address: str,
        disconnect: Disconnect | None, stream_key: str, key_hash: str, role: str,
    ) -> _PublisherHandle:
        handle = _PublisherHandle(
            self, broadcast, protocol, remote_address, disconnect, stream_key, key_hash, role
        )
        handle.standby = StandbyBuffer()
        broadcast.standby = handle
        self._watch_later(broadcast)
        # No connected/disconnected events for a standby: those tell of the publisher
        # feeding the broadcast (and a node restart reads the last of them).
        log.info("standby publisher connected stream_id=%s broadcast_id=%s role=%s "
                 "protocol=%s remote=%s", broadcast.stream_id, broadcast.id, role, protocol,
                 remote_address)
        return handle

    def _watch_later(self, broadcast: Broadcast) -> None:
        """Check the active publisher again soon: a few times per `failover_after` (for a
        collapse), and exactly when its silence would reach `failover_after`, so that a
        failover is not late by up to a check interval."""
        self._cancel_watch(broadcast)
        now, threshold = self._clock.now(), self.failover_after(broadcast)
        at = now + threshold / 4
        active = broadcast.publisher
        if isinstance(active, _PublisherHandle) and active.last_media_at + threshold > now:
            at = min(at, active.last_media_at + threshold)
        self._failover_timers[broadcast.id] = self._clock.call_at(
            at, lambda: self._watch(broadcast)
        )

    def _cancel_watch(self, broadcast: Broadcast) -> None:
        timer = self._failover_timers.pop(broadcast.id, None)
        if timer is not None:
            timer.cancel()

    def _watch(self, broadcast: Broadcast) -> None:
        """A connected active publisher that went silent, or whose frame rate or bitrate
        collapsed, hands over to a standby that sends steadily."""
        self._failover_timers.pop(broadcast.id, None)
        active, standby = broadcast.publisher, broadcast.standby
        if (broadcast.state is BroadcastState.ENDED or not isinstance(active, _PublisherHandle)
                or not isinstance(standby, _PublisherHandle) or standby.standby is None):
            return
        now = self._clock.now()
        threshold = self.failover_after(broadcast)
        silent = now - active.last_media_at
        sending = standby.standby.ready and now - standby.last_media_at < threshold
        # A standby that is collapsing itself is no better than what it would replace.
        healthy = sending and standby.rates.collapse(now, threshold) is None
        steady = now - standby.sending_since
        # Still trickling (a frame in the last half window): a silence is not a collapse,
        # though its first 0.8 s would also look like a fifth of the rate before.
        trickling = healthy and silent < threshold / 2
        collapsed = active.rates.collapse(now, threshold) if trickling else None
        if sending and silent >= threshold:
            self._fail_over(broadcast, active, f"no media for {silent:.1f} s", keep=True)
        elif collapsed is not None:
            self._fail_over(broadcast, active, f"input collapsed: {collapsed}", keep=True)
        elif (healthy and self._failover_return_after > 0 and active.role == "backup"
              and standby.role == "primary" and steady >= self._failover_return_after):
            self._fail_over(broadcast, active, f"primary steady for {steady:.1f} s", keep=True)
        self._watch_later(broadcast)

    def _fail_over(self, broadcast: Broadcast, gone: _PublisherHandle, reason: str, *,
                   keep: bool = False) -> None:
        """The standby feeds the broadcast from its newest keyframe on, now; `keep`: the
        publisher it replaces is still connected (silent) and becomes the standby."""
        standby = broadcast.standby
        assert isinstance(standby, _PublisherHandle) and standby.standby is not None
        held, standby.standby = standby.standby.take(), None
        broadcast.standby = None
        if keep:
            # It sent its metadata and codec configuration long ago: keep them for when
            # it takes over again (the meter still describes it here).
            gone.standby = StandbyBuffer()
            gone.standby.metadata = broadcast.meter.metadata
            gone.standby.video_config = broadcast.meter.video_sequence_header
            gone.standby.audio_config = broadcast.meter.audio_sequence_header
            broadcast.standby = gone
        else:
            self._cancel_watch(broadcast)
        broadcast.move_to(BroadcastState.RECONNECTING)
        broadcast.move_to(BroadcastState.CONNECTED)
        broadcast.meter.new_publisher()
        broadcast.splice.switch()  # its newest keyframe continues the broadcast's timeline
        broadcast.publisher = standby
        broadcast.publisher_count += 1
        log.info("failover stream_id=%s broadcast_id=%s from=%s to=%s reason=%s held_tags=%d",
                 broadcast.stream_id, broadcast.id, gone.role, standby.role, reason, len(held))
        if not keep:  # else the stream never lost its publisher connection
            self._emit(EventType.LIVE_STREAM_CONNECTED, broadcast, protocol=standby.protocol,
                       remote_address=standby.remote_address, resumed=True, role=standby.role)
        self._emit(EventType.LIVE_STREAM_FAILOVER, broadcast,
                   **{"from": gone.role, "to": standby.role, "reason": reason})
        for observer in self._observers:
            if keep:
                self._notify(observer.publisher_lost, broadcast)
            self._notify(observer.publisher_resumed, broadcast)
        for tag in held:
            self._on_media(broadcast, tag)

    def _on_publisher_gone(
        self, broadcast: Broadcast, handle: _PublisherHandle, reason: str
    ) -> None:
        if broadcast.standby is handle:
            broadcast.standby = None
            self._cancel_watch(broadcast)
            log.info("standby publisher gone stream_id=%s broadcast_id=%s reason=%s",
                     broadcast.stream_id, broadcast.id, reason)
            return
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
        if broadcast.standby is not None and not self._closing:
            self._fail_over(broadcast, handle, reason)
            return
        window = broadcast.policy.reconnect_window
        if window <= 0 or self._closing:
            self._end(broadcast, reason)
            return
        broadcast.move_to(BroadcastState.RECONNECTING)
        self._reconnect_timers[broadcast.id] = self._clock.call_at(
            self._clock.now() + window, lambda: self._end(broadcast, "reconnect window elapsed")
        )
        self._start_slate(broadcast)

    def _start_slate(self, broadcast: Broadcast) -> None:
        """A slate takes over the reconnecting broadcast at once, spliced onto its
        timeline like a standby (the transcoder goes on); it stops when a publisher
        returns, which continues the slate's timeline the same way."""
        source = self._slate_source
        if source is None:
            return
        feed: SlateFeed | None = None

        def push(tag: MediaTag) -> None:
            if feed is not None and self._slates.get(broadcast.id) is feed:
                self._on_media(broadcast, tag)

        broadcast.splice.switch()  # the slate continues the timeline from its first keyframe
        try:
            feed = source.slate(broadcast, push)
        except Exception:
            log.exception("slate failed to start stream_id=%s", broadcast.stream_id)
            feed = None
        if feed is None:
            broadcast.splice.restart()
            return
        self._slates[broadcast.id] = feed
        broadcast.on_slate = True
        broadcast.meter.new_publisher()
        log.info("slate feeding stream_id=%s broadcast_id=%s", broadcast.stream_id, broadcast.id)
        self._emit(EventType.LIVE_STREAM_WARNING, broadcast, code="slate", reason="slate",
                   message="no publisher: the slate is on the air until one returns")
        for observer in self._observers:
            self._notify(observer.publisher_resumed, broadcast)

    def _stop_slate(self, broadcast: Broadcast, *, notify: bool = True) -> None:
        feed = self._slates.pop(broadcast.id, None)
        if feed is None:
            return
        feed.stop()
        broadcast.on_slate = False
        log.info("slate stopped stream_id=%s broadcast_id=%s", broadcast.stream_id, broadcast.id)
        if not notify:
            return
        # Whoever comes next takes over from the slate (`open_publisher`).
        for observer in self._observers:
            self._notify(observer.publisher_lost, broadcast)

    def _cancel_reconnect(self, broadcast: Broadcast) -> None:
        timer = self._reconnect_timers.pop(broadcast.id, None)
        if timer is not None:
            timer.cancel()

    def _end(self, broadcast: Broadcast, reason: str) -> None:
        if broadcast.state is BroadcastState.ENDED:
            return
        broadcast.move_to(BroadcastState.ENDED)
        self._cancel_reconnect(broadcast)
        self._cancel_watch(broadcast)
        self._stop_slate(broadcast, notify=False)  # the observers hear it ended
        if self._broadcasts.get(broadcast.stream_id) is broadcast:
            del self._broadcasts[broadcast.stream_id]
        ended_at = utcnow()
        stream_id, broadcast_id = broadcast.stream_id, broadcast.id
        self._write(lambda: self._directory.broadcast_ended(stream_id, broadcast_id, ended_at))
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
        # Never while closing: the writer's stop mark must not be the one given up.
        if not self._closing and self._writes.qsize() >= self._max_pending_writes:
            # The directory has been away for long: the oldest write gives way.
            self._writes.get_nowait()
            self._writes.task_done()
            self.dropped_writes += 1
            self._warnings.warning(
                "dropped", self._clock.now(),
                "broadcast state write dropped, %d pending already; dropped so far=%d",
                self._max_pending_writes, self.dropped_writes,
            )
        self._writes.put_nowait(op)

    async def _write_loop(self) -> None:
        while True:
            op = await self._writes.get()
            try:
                if op is None:
                    return
                await self._write_until_done(op)
            finally:
                self._writes.task_done()

    async def _write_until_done(self, op: Callable[[], Awaitable[None]]) -> None:
        """Make one write, retrying while the directory is unavailable: writes stay in order."""
        backoff = Backoff(self._retry_delay, self._max_retry_delay)
        while True:
            delay = backoff.next_delay()
            try:
                await op()
                return
            except DirectoryUnavailable as exc:
                self.retried_writes += 1
                self._warnings.warning(
                    "unavailable", self._clock.now(),
                    "broadcast state write deferred: %s; retrying in %.1f s, pending=%d",
                    exc, delay, self._writes.qsize() + 1,
                )
            except Exception:
                log.exception("broadcast state write failed")
                return
            await asyncio.sleep(delay)

    async def _sweep_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.recheck()
            except Exception:
                log.exception("live stream re-check failed")
