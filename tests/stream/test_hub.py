"""BroadcastHub against an in-memory StreamDirectory, a real EventBus and a hand-driven clock.

No sockets and no sleeps: the reconnect window closes when the test moves the
fake clock past it, and directory writes are awaited with `hub.flush()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from golive.core.events import Event, EventBus, EventType, Subscription
from golive.core.secrets import hash_stream_key
from golive.formats.tag import MediaTag, TagType
from golive.stream import (
    Broadcast,
    BroadcastHub,
    BroadcastStart,
    BroadcastState,
    DirectoryUnavailable,
    KeyState,
    PlaybackId,
    PublishRefused,
    RecoveredBroadcast,
    RefusalReason,
    StreamPolicy,
)
from golive.stream.standby import StandbyBuffer

KEY = "sk_live_key_one"
OTHER_KEY = "sk_live_key_two"
START = 1000.0


# Fakes ---------------------------------------------------------------------------------


@dataclass
class FakeTimer:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeClock:
    """Monotonic time that moves only when `advance` is called, running timers that fall due."""

    time: float = START
    timers: list[FakeTimer] = field(default_factory=list)

    def now(self) -> float:
        return self.time

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(when, callback)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]

    def advance(self, seconds: float) -> None:
        self.time += seconds
        for timer in sorted(self.pending(), key=lambda t: t.when):
            if timer.when <= self.time and not timer.cancelled:
                self.timers.remove(timer)
                timer.callback()


def policy(stream_id: str = "ls_1", *, enabled: bool = True,
           reconnect_window: float = 30.0) -> StreamPolicy:
    return StreamPolicy(
        stream_id=stream_id,
        enabled=enabled,
        playback_ids=(PlaybackId(id=f"pb_{stream_id}", signed=False),),
        profile="default",
        latency_mode="low",
        reconnect_window=reconnect_window,
        recording=False,
    )


@dataclass
class FakeDirectory:
    """Streams by key hash, and every lifecycle write the hub makes, in order.

    `lifecycle` leaves out the media-seen writes; the next `failures` write attempts
    raise `DirectoryUnavailable` (a full disk), and `tried` is set on every attempt;
    `left_open` is what a killed node left for `recover_broadcasts`.
    """

    by_key_hash: dict[str, StreamPolicy] = field(default_factory=dict)
    writes: list[tuple[Any, ...]] = field(default_factory=list)
    failures: int = 0
    attempts: int = 0
    tried: asyncio.Event = field(default_factory=asyncio.Event)
    left_open: list[RecoveredBroadcast] = field(default_factory=list)
    backup_hashes: dict[str, str] = field(default_factory=dict)  # stream id -> backup key hash

    @property
    def lifecycle(self) -> list[tuple[Any, ...]]:
        return [w for w in self.writes if w[0] != "media"]

    def _attempt(self) -> None:
        self.attempts += 1
        self.tried.set()
        if self.failures > 0:
            self.failures -= 1
            raise DirectoryUnavailable("database or disk is full")

    def add(self, key: str, stream: StreamPolicy) -> None:
        self.by_key_hash[hash_stream_key(key)] = stream

    def add_backup(self, key: str, stream: StreamPolicy) -> None:
        self.add(key, stream)
        self.backup_hashes[stream.stream_id] = hash_stream_key(key)

    def replace_stream(self, stream: StreamPolicy) -> None:
        for key_hash, current in list(self.by_key_hash.items()):
            if current.stream_id == stream.stream_id:
                self.by_key_hash[key_hash] = stream

    async def policy_for_key_hash(self, stream_key_hash: str) -> StreamPolicy | None:
        return self.by_key_hash.get(stream_key_hash)

    async def policy(self, stream_id: str) -> StreamPolicy | None:
        for current in self.by_key_hash.values():
            if current.stream_id == stream_id:
                return current
        return None

    async def key_states(self, stream_ids: Sequence[str]) -> Mapping[str, KeyState]:
        return {
            current.stream_id: KeyState(
                enabled=current.enabled, stream_key_hash=key_hash,
                backup_stream_key_hash=self.backup_hashes.get(current.stream_id),
            )
            for key_hash, current in self.by_key_hash.items()
            if current.stream_id in stream_ids
            and key_hash != self.backup_hashes.get(current.stream_id)
        }

    async def broadcast_started(self, start: BroadcastStart) -> None:
        self._attempt()
        self.writes.append(("started", start.stream_id, start.broadcast_id, start.protocol))

    async def broadcast_active(self, stream_id: str, broadcast_id: str) -> None:
        self._attempt()
        self.writes.append(("active", stream_id, broadcast_id))

    async def broadcast_ended(self, stream_id: str, broadcast_id: str, ended_at: datetime) -> None:
        self._attempt()
        self.writes.append(("ended", stream_id, broadcast_id))

    async def media_seen(self, stream_id: str, broadcast_id: str, at: datetime) -> None:
        self._attempt()
        self.writes.append(("media", stream_id, broadcast_id, at))

    async def recover_broadcasts(self) -> Sequence[RecoveredBroadcast]:
        left, self.left_open = self.left_open, []
        return left


@dataclass
class RecordingObserver:
    calls: list[tuple[str, str]] = field(default_factory=list)

    def broadcast_started(self, broadcast: Broadcast) -> None:
        self.calls.append(("started", broadcast.id))

    def publisher_resumed(self, broadcast: Broadcast) -> None:
        self.calls.append(("resumed", broadcast.id))

    def publisher_lost(self, broadcast: Broadcast) -> None:
        self.calls.append(("lost", broadcast.id))

    def broadcast_ended(self, broadcast: Broadcast) -> None:
        self.calls.append(("ended", broadcast.id))


@dataclass
class Node:
    hub: BroadcastHub
    directory: FakeDirectory
    clock: FakeClock
    events: Subscription
    observer: RecordingObserver

    def drain(self) -> list[Event]:
        out = []
        while (event := self.events.get_nowait()) is not None:
            out.append(event)
        return out


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    async with start_node() as started:
        yield started


@asynccontextmanager
async def start_node(*, left_open: Sequence[RecoveredBroadcast] = (),
                     **options: Any) -> AsyncIterator[Node]:
    directory = FakeDirectory(left_open=list(left_open))
    directory.add(KEY, policy())
    clock = FakeClock()
    bus = EventBus()
    events = bus.subscribe()
    options.setdefault("retry_delay", 0.001)
    hub = BroadcastHub(directory, bus, max_publishers=2, clock=clock, **options)
    observer = RecordingObserver()
    hub.add_observer(observer)
    await hub.start()
    try:
        yield Node(hub, directory, clock, events, observer)
    finally:
        directory.failures = 0
        await hub.close()
        events.close()


VIDEO = MediaTag(TagType.VIDEO, 0, b"\x17\x01\x00\x00\x00")
SCRIPT = MediaTag(TagType.SCRIPT, 0, b"\x02\x00\x0aonMetaData")


async def publish(hub: BroadcastHub, key: str = KEY, *, kicked: list[str] | None = None) -> Any:
    return await hub.open_publisher(
        key, protocol="rtmp", remote_address="192.0.2.1:50000",
        disconnect=kicked.append if kicked is not None else None,
    )


def state_of(broadcast: Broadcast) -> BroadcastState:
    # A call, so that mypy does not keep an earlier assert's narrowing of `.state`.
    return broadcast.state


# Key check -----------------------------------------------------------------------------


async def test_unknown_key_is_refused(node: Node) -> None:
    with pytest.raises(PublishRefused) as refused:
        await publish(node.hub, "sk_nobody_has_this")
    assert refused.value.reason is RefusalReason.UNKNOWN_KEY
    assert node.hub.broadcasts == []
    assert node.drain() == []


async def test_disabled_stream_is_refused(node: Node) -> None:
    node.directory.add(OTHER_KEY, policy("ls_2", enabled=False))
    with pytest.raises(PublishRefused) as refused:
        await publish(node.hub, OTHER_KEY)
    assert refused.value.reason is RefusalReason.DISABLED
    assert node.hub.broadcast("ls_2") is None


# One publisher per stream --------------------------------------------------------------


async def test_second_publisher_on_a_live_stream_is_refused(node: Node) -> None:
    first = await publish(node.hub)
    with pytest.raises(PublishRefused) as refused:
        await publish(node.hub)
    assert refused.value.reason is RefusalReason.ALREADY_LIVE
    broadcast = node.hub.broadcast("ls_1")
    assert broadcast is not None and broadcast.publisher is first
    assert node.hub.publisher_count == 1


async def test_publisher_limit_counts_every_stream(node: Node) -> None:
    node.directory.add(OTHER_KEY, policy("ls_2"))
    node.directory.add("sk_third", policy("ls_3"))
    await publish(node.hub)
    await publish(node.hub, OTHER_KEY)
    with pytest.raises(PublishRefused) as refused:
        await publish(node.hub, "sk_third")
    assert refused.value.reason is RefusalReason.TOO_MANY_PUBLISHERS


# Reconnect window ----------------------------------------------------------------------


async def test_publisher_back_inside_the_window_continues_the_broadcast(node: Node) -> None:
    first = await publish(node.hub)
    first.push(VIDEO)
    first.close("eof")
    broadcast = node.hub.broadcast("ls_1")
    assert broadcast is not None and state_of(broadcast) is BroadcastState.RECONNECTING

    node.clock.advance(29.0)
    second = await publish(node.hub)
    assert second.broadcast_id == first.broadcast_id
    assert state_of(broadcast) is BroadcastState.CONNECTED
    second.push(VIDEO)
    assert state_of(broadcast) is BroadcastState.ACTIVE
    assert node.clock.pending() == []  # the window's timer was called off

    node.clock.advance(60.0)  # long past the first window: nothing ends
    assert node.hub.broadcast("ls_1") is broadcast
    facts = node.hub.ingest_facts("ls_1")
    assert facts is not None and facts["reconnects"] == 1 and facts["connected"] is True


async def test_publisher_back_after_the_window_starts_a_new_broadcast(node: Node) -> None:
    first = await publish(node.hub)
    first.push(VIDEO)
    first.close("eof")
    node.clock.advance(29.9)
    assert node.hub.broadcast("ls_1") is not None

    node.clock.advance(0.1)
    assert node.hub.broadcast("ls_1") is None
    assert node.hub.ingest_facts("ls_1") is None

    second = await publish(node.hub)
    assert second.broadcast_id != first.broadcast_id
    await node.hub.flush()
    assert node.directory.lifecycle == [
        ("started", "ls_1", first.broadcast_id, "rtmp"),
        ("active", "ls_1", first.broadcast_id),
        ("ended", "ls_1", first.broadcast_id),
        ("started", "ls_1", second.broadcast_id, "rtmp"),
    ]


async def test_no_reconnect_window_ends_the_broadcast_with_its_publisher(node: Node) -> None:
    node.directory.replace_stream(policy(reconnect_window=0))
    publisher = await publish(node.hub)
    publisher.close("eof")
    assert node.hub.broadcast("ls_1") is None
    assert node.clock.pending() == []


async def test_window_follows_the_policy_of_the_latest_connection(node: Node) -> None:
    first = await publish(node.hub)
    first.close("eof")
    node.directory.replace_stream(policy(reconnect_window=5.0))
    second = await publish(node.hub)
    second.close("eof")
    node.clock.advance(5.0)
    assert node.hub.broadcast("ls_1") is None


# Events and observers ------------------------------------------------------------------


async def test_events_and_observer_calls_in_order(node: Node) -> None:
    first = await publish(node.hub)
    first.push(SCRIPT)  # metadata alone is not media: the stream is not active yet
    broadcast = node.hub.broadcast("ls_1")
    assert broadcast is not None and broadcast.state is BroadcastState.CONNECTED
    first.push(VIDEO)
    first.push(VIDEO)
    first.close("eof")
    second = await publish(node.hub)
    second.push(VIDEO)
    second.close("unpublish")
    node.clock.advance(30.0)

    events = node.drain()
    assert [(e.type, e.data.get("reason"), e.data.get("resumed")) for e in events] == [
        (EventType.LIVE_STREAM_CONNECTED, None, False),
        (EventType.LIVE_STREAM_ACTIVE, None, None),
        (EventType.LIVE_STREAM_DISCONNECTED, "eof", None),
        (EventType.LIVE_STREAM_CONNECTED, None, True),
        (EventType.LIVE_STREAM_DISCONNECTED, "unpublish", None),
        (EventType.LIVE_STREAM_IDLE, "reconnect window elapsed", None),
    ]
    assert {(e.stream_id, e.broadcast_id) for e in events} == {("ls_1", first.broadcast_id)}
    bc = first.broadcast_id
    assert node.observer.calls == [
        ("started", bc), ("lost", bc), ("resumed", bc), ("lost", bc), ("ended", bc),
    ]
    await node.hub.flush()
    assert [w[0] for w in node.directory.lifecycle] == ["started", "active", "ended"]


async def test_a_publisher_after_one_that_sent_no_media_makes_the_stream_active(
    node: Node,
) -> None:
    # The first publisher connected but sent nothing usable (an encoder whose keyframes
    # never arrived) and went; its fixed encoder came back inside the window. The stream
    # stayed "connected" for ever, with no live_stream.active, whatever came next.
    first = await publish(node.hub)
    first.push(SCRIPT)
    first.close("timeout: no media")
    second = await publish(node.hub)
    second.push(VIDEO)
    second.push(VIDEO)
    second.close("eof")
    third = await publish(node.hub)
    third.push(VIDEO)
    types = [e.type for e in node.drain()]
    assert types.count(EventType.LIVE_STREAM_ACTIVE) == 1
    assert types.index(EventType.LIVE_STREAM_ACTIVE) == 3  # connected, gone, connected
    await node.hub.flush()
    assert [w[0] for w in node.directory.lifecycle] == ["started", "active"]


async def test_a_returning_publisher_is_described_afresh(node: Node) -> None:
    first = await publish(node.hub)
    first.push(VIDEO)
    facts = node.hub.ingest_facts("ls_1")
    assert facts is not None and facts["video_codec"] == "h264"
    first.close("eof")
    await publish(node.hub)
    facts = node.hub.ingest_facts("ls_1")
    # Nothing the first publisher said describes the second; the totals are the broadcast's.
    assert facts is not None and facts["video_codec"] is None
    assert facts["bytes_received"] == len(VIDEO.body) and facts["reconnects"] == 1


async def test_sinks_get_media_and_a_failing_sink_is_detached(node: Node) -> None:
    publisher = await publish(node.hub)
    broadcast = node.hub.broadcast("ls_1")
    assert broadcast is not None
    got: list[MediaTag] = []

    class Broken:
        def push(self, tag: MediaTag) -> None:
            raise RuntimeError("sink bug")

    @dataclass
    class Collect:
        def push(self, tag: MediaTag) -> None:
            got.append(tag)

    broken, collect = Broken(), Collect()
    broadcast.add_sink(broken)
    broadcast.add_sink(collect)
    publisher.push(VIDEO)
    publisher.push(VIDEO)
    assert got == [VIDEO, VIDEO]
    assert broadcast.sinks == [collect]


# A backup publisher as hot standby ------------------------------------------------------

BACKUP_KEY = "sk_live_key_backup"
CONFIG = MediaTag(TagType.VIDEO, 0, b"\x17\x00\x00\x00\x00")
INTER = MediaTag(TagType.VIDEO, 33, b"\x27\x01\x00\x00\x00")
KEYFRAME = MediaTag(TagType.VIDEO, 66, b"\x17\x01\x00\x00\x00")
LATER = MediaTag(TagType.VIDEO, 99, b"\x27\x01\x00\x00\x00")


def at(tag: MediaTag, timestamp: int) -> MediaTag:
    """`tag` as the hub's splice hands it on: the same body on the broadcast's timeline."""
    return MediaTag(tag.type, timestamp, tag.body)


@dataclass
class Collect:
    got: list[MediaTag] = field(default_factory=list)

    def push(self, tag: MediaTag) -> None:
        self.got.append(tag)


async def test_backup_is_held_as_standby_and_takes_over_from_its_keyframe(node: Node) -> None:
    node.directory.add_backup(BACKUP_KEY, policy())
    primary = await publish(node.hub)
    primary.push(VIDEO)
    broadcast = node.hub.broadcast("ls_1")
    assert broadcast is not None
    sink = Collect()
    broadcast.add_sink(sink)
    backup = await publish(node.hub, BACKUP_KEY)
    assert (broadcast.publisher, broadcast.standby) == (primary, backup)
    for tag in (SCRIPT, CONFIG, INTER, KEYFRAME, LATER):  # INTER: before its first keyframe
        backup.push(tag)
    assert sink.got == []  # held, not fanned out
    facts = node.hub.ingest_facts("ls_1")
    assert facts is not None and facts["role"] == "primary"
    assert facts["standby"]["role"] == "backup" and facts["standby"]["ready"] is True
    assert node.hub.publisher_count == 2
    for key in (KEY, BACKUP_KEY):  # one active and one standby, whichever the keys
        with pytest.raises(PublishRefused) as refused:
            await publish(node.hub, key)
        assert refused.value.reason is RefusalReason.ALREADY_LIVE
    node.drain()

    primary.close("eof")
    assert (broadcast.publisher, broadcast.standby) == (backup, None)
    # Spliced on: its configuration at the splice point, its keyframe one frame after
    # the primary's last video (0 ms), its later frames at their own spacing.
    assert sink.got == [SCRIPT, at(CONFIG, 1), at(KEYFRAME, 33), at(LATER, 66)]
    events = node.drain()
    assert [(e.type, e.data.get("role")) for e in events] == [
        (EventType.LIVE_STREAM_DISCONNECTED, None),
        (EventType.LIVE_STREAM_CONNECTED, "backup"),
        (EventType.LIVE_STREAM_FAILOVER, None),
    ]
    assert dict(events[-1].data) == {"from": "primary", "to": "backup", "reason": "eof"}
    bc = broadcast.id
    assert node.observer.calls == [("started", bc), ("lost", bc), ("resumed", bc)]
    backup.push(INTER)
    assert sink.got[-1] == at(INTER, 0)  # the backup's own clock, moved by the splice
    facts = node.hub.ingest_facts("ls_1")
    assert facts is not None and facts["role"] == "backup" and facts["standby"] is None
    assert facts["reconnects"] == 1
    node.clock.advance(60.0)  # no reconnect window was opened
    assert node.hub.broadcast("ls_1") is broadcast and state_of(broadcast) is BroadcastState.ACTIVE
    # The primary returning now becomes the standby.
    again = await publish(node.hub)
    assert (broadcast.publisher, broadcast.standby) == (backup, again)


async def test_a_standby_leaving_is_quiet_and_the_window_works_as_before(node: Node) -> None:
    node.directory.add_backup(BACKUP_KEY, policy())
    primary = await publish(node.hub)
    primary.push(VIDEO)
    backup = await publish(node.hub, BACKUP_KEY)
    node.drain()
    backup.close("eof")
    broadcast = node.hub.broadcast("ls_1")
    assert broadcast is not None and broadcast.standby is None and node.drain() == []
    primary.close("eof")
    assert state_of(broadcast) is BroadcastState.RECONNECTING
    node.clock.advance(30.0)
    assert node.hub.broadcast("ls_1") is None


async def test_disabling_kicks_the_standby_too_without_a_failover(node: Node) -> None:
    node.directory.add_backup(BACKUP_KEY, policy())
    kicked: list[str] = []
    primary = await publish(node.hub, kicked=kicked)
    primary.push(VIDEO)
    await publish(node.hub, BACKUP_KEY, kicked=kicked)
    node.directory.replace_stream(policy(enabled=False))
    await node.hub.recheck()
    assert kicked == ["stream disabled", "stream disabled"]
    assert node.hub.broadcast("ls_1") is None
    assert EventType.LIVE_STREAM_FAILOVER not in [e.type for e in node.drain()]


async def test_a_silent_primary_hands_over_to_a_sending_standby(node: Node) -> None:
    node.directory.add_backup(BACKUP_KEY, policy())
    primary = await publish(node.hub)
    primary.push(CONFIG)
    primary.push(VIDEO)
    broadcast = node.hub.broadcast("ls_1")
    assert broadcast is not None
    sink = Collect()
    broadcast.add_sink(sink)
    backup = await publish(node.hub, BACKUP_KEY)
    backup.push(CONFIG)
    backup.push(KEYFRAME)
    node.drain()
    # The primary stays connected but sends nothing; the backup keeps sending.
    for _ in range(3):
        node.clock.advance(0.3)
        backup.push(LATER)
    assert (broadcast.publisher, sink.got) == (primary, [])  # 0.9 s: not yet
    node.clock.advance(0.3)
    backup.push(LATER)
    node.clock.advance(0.3)  # the next check sees 1.2 s of silence
    assert (broadcast.publisher, broadcast.standby) == (backup, primary)
    assert sink.got[:2] == [at(CONFIG, 1), at(KEYFRAME, 33)] and len(sink.got) == 6
    [event] = node.drain()  # the stream never lost its publisher: no (dis)connected events
    assert event.type is EventType.LIVE_STREAM_FAILOVER
    assert (event.data["from"], event.data["to"]) == ("primary", "backup")
    assert str(event.data["reason"]).startswith("no media for 1.")
    bc = broadcast.id
    assert node.observer.calls[-2:] == [("lost", bc), ("resumed", bc)]
    # The demoted primary is held like any standby; a silent standby never takes over.
    node.clock.advance(5.0)
    assert broadcast.publisher == backup
    assert [e.type for e in node.drain()] == []
    # It keeps its codec configuration from before: taking over again starts decodable.
    primary.push(KEYFRAME)
    backup.close("eof")
    assert broadcast.publisher == primary
    assert sink.got[-2:] == [at(CONFIG, 67), at(KEYFRAME, 99)]  # after the backup's 66


async def test_return_after_switches_back_to_a_steady_primary() -> None:
    async with start_node(failover_return_after=3.0) as node:
        node.directory.add_backup(BACKUP_KEY, policy())
        primary = await publish(node.hub)
        primary.push(CONFIG)
        primary.push(VIDEO)
        backup = await publish(node.hub, BACKUP_KEY)
        backup.push(CONFIG)
        backup.push(KEYFRAME)
        primary.close("eof")  # the backup takes over; the primary's encoder comes back
        primary = await publish(node.hub)
        broadcast = node.hub.broadcast("ls_1")
        assert broadcast is not None and broadcast.standby == primary
        node.drain()

        def both_send(seconds: float) -> None:
            for _ in range(round(seconds / 0.25)):
                node.clock.advance(0.25)
                primary.push(LATER)
                backup.push(LATER)

        primary.push(CONFIG)
        primary.push(KEYFRAME)
        both_send(2.0)
        # A gap longer than failover_after: its steady time starts over.
        for _ in range(5):
            node.clock.advance(0.25)
            backup.push(LATER)
        both_send(2.5)
        assert broadcast.publisher == backup and node.drain() == []
        both_send(1.0)
        assert (broadcast.publisher, broadcast.standby) == (primary, backup)
        [event] = node.drain()
        assert (event.data["from"], event.data["to"]) == ("backup", "primary")
        assert str(event.data["reason"]).startswith("primary steady for 3.")
        # The backup never switches back by itself: only on the primary's failure.
        both_send(10.0)
        assert broadcast.publisher == primary and node.drain() == []


def test_standby_buffer_drops_a_gop_past_its_bound() -> None:
    held = StandbyBuffer(max_bytes=12)
    held.add(CONFIG)
    held.add(KEYFRAME)
    assert held.ready
    held.add(LATER)
    held.add(LATER)  # 15 bytes of GOP: given up until the next keyframe
    assert not held.ready and held.dropped_gops == 1
    held.add(LATER)
    assert not held.ready
    held.add(KEYFRAME)
    assert held.take() == [CONFIG, KEYFRAME]
    assert not held.ready and held.take() == [CONFIG]


# Streams that change while live --------------------------------------------------------


async def test_disabling_a_live_stream_kicks_and_ends(node: Node) -> None:
    kicked: list[str] = []
    publisher = await publish(node.hub, kicked=kicked)
    publisher.push(VIDEO)
    node.directory.replace_stream(policy(enabled=False))
    await node.hub.recheck()
    assert kicked == ["stream disabled"]
    assert node.hub.broadcast("ls_1") is None
    types = [e.type for e in node.drain()]
    assert types[-2:] == [EventType.LIVE_STREAM_DISCONNECTED, EventType.LIVE_STREAM_IDLE]


async def test_key_reset_kicks_the_publisher_but_keeps_the_window(node: Node) -> None:
    kicked: list[str] = []
    first = await publish(node.hub, kicked=kicked)
    node.directory.by_key_hash = {hash_stream_key(OTHER_KEY): policy()}
    await node.hub.recheck()
    assert kicked == ["stream key reset"]
    # The new key may continue the broadcast inside the window.
    second = await publish(node.hub, OTHER_KEY)
    assert second.broadcast_id == first.broadcast_id


async def test_recheck_leaves_unchanged_streams_alone(node: Node) -> None:
    kicked: list[str] = []
    await publish(node.hub, kicked=kicked)
    await node.hub.recheck()
    assert kicked == []
    assert node.hub.publisher_count == 1


async def test_stream_changed_picks_up_the_new_policy(node: Node) -> None:
    await publish(node.hub)
    node.directory.replace_stream(replace(policy(), profile="sports"))
    await node.hub.stream_changed("ls_1")
    broadcast = node.hub.broadcast("ls_1")
    assert broadcast is not None and broadcast.policy.profile == "sports"


async def test_close_ends_everything_and_refuses_new_publishers(node: Node) -> None:
    kicked: list[str] = []
    await publish(node.hub, kicked=kicked)
    await node.hub.close()
    assert kicked == ["server shutting down"]
    assert node.hub.broadcasts == []
    assert ("ended", "ls_1") == node.directory.writes[-1][:2]
    with pytest.raises(PublishRefused) as refused:
        await publish(node.hub)
    assert refused.value.reason is RefusalReason.SHUTTING_DOWN


# Crash recovery and directory outages --------------------------------------------------


async def test_media_reaches_the_directory_once_per_interval(node: Node) -> None:
    publisher = await publish(node.hub)
    for _ in range(50):
        publisher.push(VIDEO)
    node.clock.advance(4.9)
    publisher.push(VIDEO)
    node.clock.advance(0.1)
    publisher.push(VIDEO)
    publisher.push(VIDEO)
    await node.hub.flush()
    assert [w[0] for w in node.directory.writes] == ["started", "media", "active", "media"]
    first, second = (w for w in node.directory.writes if w[0] == "media")
    assert first[1:3] == second[1:3] == ("ls_1", publisher.broadcast_id)
    assert first[3] <= second[3]


async def test_start_announces_broadcasts_a_killed_node_left_open() -> None:
    last_media = datetime(2025, 3, 1, 20, 42, tzinfo=UTC)
    left_open = [
        RecoveredBroadcast("ls_1", "bc_live", last_media, publisher_connected=True),
        # Its publisher had gone already (the node died inside the reconnect window).
        RecoveredBroadcast("ls_2", "bc_waiting", last_media, publisher_connected=False),
    ]
    async with start_node(left_open=left_open) as n:
        events = n.drain()
        assert [(e.type, e.stream_id, e.broadcast_id, e.at) for e in events] == [
            (EventType.LIVE_STREAM_DISCONNECTED, "ls_1", "bc_live", last_media),
            (EventType.LIVE_STREAM_IDLE, "ls_1", "bc_live", last_media),
            (EventType.LIVE_STREAM_IDLE, "ls_2", "bc_waiting", last_media),
        ]
        assert all(dict(e.data) == {"reason": "node restarted", "recovered": True}
                   for e in events)
        assert n.hub.broadcasts == []


async def test_writes_wait_out_an_unavailable_directory_and_land_in_order(node: Node) -> None:
    node.directory.failures = 7  # the disk is full for seven attempts, then space returns
    first = await publish(node.hub)
    first.push(VIDEO)
    first.close("eof")
    node.clock.advance(30.0)
    second = await publish(node.hub)
    await node.hub.flush()
    assert node.directory.lifecycle == [
        ("started", "ls_1", first.broadcast_id, "rtmp"),
        ("active", "ls_1", first.broadcast_id),
        ("ended", "ls_1", first.broadcast_id),
        ("started", "ls_1", second.broadcast_id, "rtmp"),
    ]
    assert node.hub.retried_writes == 7
    assert node.hub.dropped_writes == 0


async def test_pending_writes_are_bounded_and_the_oldest_give_way() -> None:
    async with start_node(max_pending_writes=3) as n:
        n.directory.failures = 10**9
        first = await publish(n.hub)
        await n.directory.tried.wait()  # the first write is being retried: the rest queue
        first.push(VIDEO)  # media seen, active
        first.close("eof")
        n.clock.advance(30.0)  # ended
        second = await publish(n.hub)  # started: four waiting, one too many
        assert n.hub.dropped_writes == 1
        n.directory.failures = 0
        await n.hub.flush()
        assert n.directory.writes == [
            ("started", "ls_1", first.broadcast_id, "rtmp"),
            ("active", "ls_1", first.broadcast_id),
            ("ended", "ls_1", first.broadcast_id),
            ("started", "ls_1", second.broadcast_id, "rtmp"),
        ]


# A slate while nobody publishes ----------------------------------------------------------


@dataclass
class ScriptedSlate:
    """A slate source whose feeds push only what the test hands them."""

    offer: bool = True
    feeds: list[ScriptedFeed] = field(default_factory=list)

    def slate(self, broadcast: Broadcast, push: Callable[[MediaTag], None]) -> ScriptedFeed | None:
        if not self.offer:
            return None
        feed = ScriptedFeed(push)
        self.feeds.append(feed)
        return feed


@dataclass
class ScriptedFeed:
    push: Callable[[MediaTag], None]
    stopped: bool = False

    def stop(self) -> None:
        self.stopped = True


async def test_a_slate_feeds_the_window_and_a_returning_publisher_takes_over(
    node: Node,
) -> None:
    slates = ScriptedSlate()
    node.hub.use_slate(slates)
    first = await publish(node.hub)
    first.push(VIDEO)
    broadcast = node.hub.broadcast("ls_1")
    assert broadcast is not None
    sink = Collect()
    broadcast.add_sink(sink)
    node.drain()
    first.close("eof")
    [feed] = slates.feeds
    events = node.drain()
    assert [(e.type, e.data.get("reason")) for e in events] == [
        (EventType.LIVE_STREAM_DISCONNECTED, "eof"), (EventType.LIVE_STREAM_WARNING, "slate"),
    ]
    facts = node.hub.ingest_facts("ls_1")
    assert facts is not None and facts["role"] == "slate" and facts["connected"] is False
    assert state_of(broadcast) is BroadcastState.RECONNECTING
    feed.push(VIDEO)  # the slate's media reaches the sinks like a publisher's,
    assert sink.got == [at(VIDEO, 33)]  # spliced on one frame after the publisher's

    second = await publish(node.hub)
    assert feed.stopped and second.broadcast_id == first.broadcast_id
    assert broadcast.splice.continuing  # the returning publisher continues the slate's
    feed.push(VIDEO)  # a stopped slate's late tag goes nowhere
    assert sink.got == [at(VIDEO, 33)]
    second.push(VIDEO)
    assert sink.got[-1] == at(VIDEO, 66)
    facts = node.hub.ingest_facts("ls_1")
    assert facts is not None and facts["role"] == "primary"
    bc = broadcast.id
    # The slate came in as a publisher returning and left as one leaving.
    assert node.observer.calls == [
        ("started", bc), ("lost", bc), ("resumed", bc), ("lost", bc), ("resumed", bc),
    ]

    second.close("eof")
    [_, again] = slates.feeds
    node.clock.advance(30.0)  # nobody returns: the window ends the broadcast and its slate
    assert again.stopped and state_of(broadcast) is BroadcastState.ENDED
    assert node.observer.calls[-1] == ("ended", bc)


async def test_no_slate_offered_keeps_the_old_wait(node: Node) -> None:
    node.hub.use_slate(ScriptedSlate(offer=False))
    first = await publish(node.hub)
    first.push(VIDEO)
    node.drain()
    first.close("eof")
    assert [e.type for e in node.drain()] == [EventType.LIVE_STREAM_DISCONNECTED]
    facts = node.hub.ingest_facts("ls_1")
    assert facts is not None and facts["role"] is None


async def test_a_collapsed_frame_rate_hands_over_to_a_steady_standby(node: Node) -> None:
    node.directory.add_backup(BACKUP_KEY, policy())
    primary = await publish(node.hub)
    primary.push(CONFIG)
    broadcast = node.hub.broadcast("ls_1")
    assert broadcast is not None
    backup = await publish(node.hub, BACKUP_KEY)
    backup.push(CONFIG)
    backup.push(KEYFRAME)
    node.drain()

    def second(fps: int) -> None:
        """One second of the hub's clock: the primary at `fps`, the backup at 30 fps."""
        for frame in range(30):
            node.clock.advance(1 / 30)
            backup.push(LATER)
            if frame % (30 // fps) == 0:
                primary.push(VIDEO)

    for _ in range(3):
        second(30)
    assert broadcast.publisher is primary
    second(3)  # a tenth of its rate, never silent for a whole failover_after
    second(3)
    assert (broadcast.publisher, broadcast.standby) == (backup, primary)
    [event] = node.drain()
    assert event.type is EventType.LIVE_STREAM_FAILOVER
    assert str(event.data["reason"]).startswith("input collapsed: frame rate 3.")


async def test_the_profile_s_failover_after_replaces_the_node_s(node: Node) -> None:
    node.directory.add_backup(BACKUP_KEY, policy())
    primary = await publish(node.hub)
    primary.push(CONFIG)
    primary.push(VIDEO)
    broadcast = node.hub.broadcast("ls_1")
    assert broadcast is not None
    broadcast.failover_after = 3.0  # what the media stage sets from [fallback]
    backup = await publish(node.hub, BACKUP_KEY)
    backup.push(CONFIG)
    backup.push(KEYFRAME)
    for _ in range(10):  # 2.5 s of silence: more than the node's 1 s, less than 3 s
        node.clock.advance(0.25)
        backup.push(LATER)
    assert broadcast.publisher is primary
    for _ in range(3):
        node.clock.advance(0.25)
        backup.push(LATER)
    assert broadcast.publisher is backup


async def test_a_failover_comes_when_the_silence_reaches_failover_after_not_later(
    node: Node,
) -> None:
    node.directory.add_backup(BACKUP_KEY, policy())
    primary = await publish(node.hub)
    primary.push(CONFIG)
    broadcast = node.hub.broadcast("ls_1")
    assert broadcast is not None
    backup = await publish(node.hub, BACKUP_KEY)
    backup.push(CONFIG)
    backup.push(KEYFRAME)
    node.clock.advance(0.1)
    primary.push(VIDEO)  # its last packet, 0.1 s after the checks' rhythm began
    for _ in range(9):
        node.clock.advance(0.1)
        backup.push(LATER)
    node.clock.advance(0.099)
    assert broadcast.publisher is primary  # 0.999 s of silence
    node.clock.advance(0.002)
    assert broadcast.publisher is backup  # 1.001 s: no waiting for the next 0.25 s check


async def test_a_silence_is_not_taken_for_a_collapse_before_failover_after(node: Node) -> None:
    node.directory.add_backup(BACKUP_KEY, policy())
    primary = await publish(node.hub)
    primary.push(CONFIG)
    broadcast = node.hub.broadcast("ls_1")
    assert broadcast is not None
    backup = await publish(node.hub, BACKUP_KEY)
    backup.push(CONFIG)
    backup.push(KEYFRAME)
    for _ in range(90):  # 3 s at 30 fps from both
        node.clock.advance(1 / 30)
        primary.push(VIDEO)
        backup.push(LATER)
    for _ in range(29):  # then the primary stops dead: 0.97 s, a fifth of a window's rate
        node.clock.advance(1 / 30)
        backup.push(LATER)
    assert broadcast.publisher is primary
    for _ in range(3):
        node.clock.advance(1 / 30)
        backup.push(LATER)
    assert broadcast.publisher is backup
    [event] = [e for e in node.drain() if e.type is EventType.LIVE_STREAM_FAILOVER]
    assert str(event.data["reason"]).startswith("no media for 1.0")
