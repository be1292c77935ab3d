"""The alert lifecycle (pending, firing, resolving, resolved) and the engine over a real
broadcast's ingest meter fed with a real ffmpeg FLV on a hand-driven clock."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from datetime import UTC, datetime

import pytest
from tests.mediatools import FFMPEG

from golive.core import Event, EventBus, EventType
from golive.formats.flv import FlvReader
from golive.formats.tag import MediaTag
from golive.health import (
    RULES,
    TRANSITIONS,
    Alert,
    AlertBook,
    AlertEngine,
    AlertState,
    Diagnosis,
    Finding,
)
from golive.health.alerts import RECENT_PER_STREAM
from golive.media import AlertSpec, PipelineFacts
from golive.stream import Broadcast, BroadcastState, PlaybackId, StreamPolicy

SPEC = AlertSpec(for_seconds=2, resolve_after_seconds=3)
FOUND = (Finding(8.0, 2.0, "s", "a keyframe every 8.0 s"), Diagnosis("cause", "fix"))


def test_an_alert_fires_only_after_holding_for_seconds() -> None:
    book = AlertBook()
    assert book.observe(0.0, "ls_1", "bc_1", "keyframe_interval", FOUND, SPEC) is None
    assert [a.state for a in book.active("ls_1")] == [AlertState.PENDING]
    assert book.observe(1.9, "ls_1", "bc_1", "keyframe_interval", FOUND, SPEC) is None
    fired = book.observe(2.0, "ls_1", "bc_1", "keyframe_interval", FOUND, SPEC)
    assert fired is not None and fired.state is AlertState.FIRING
    assert fired.event_data()["cause"] == "cause" and fired.event_data()["value"] == 8.0


def test_a_pending_alert_that_clears_is_forgotten() -> None:
    book = AlertBook()
    book.observe(0.0, "ls_1", "bc_1", "keyframe_interval", FOUND, SPEC)
    assert book.observe(1.0, "ls_1", "bc_1", "keyframe_interval", None, SPEC) is None
    assert book.active("ls_1") == [] and book.recent("ls_1") == []
    # It starts over: another `for_seconds` before it fires.
    book.observe(5.0, "ls_1", "bc_1", "keyframe_interval", FOUND, SPEC)
    assert book.observe(6.0, "ls_1", "bc_1", "keyframe_interval", FOUND, SPEC) is None


def state(alert: Alert) -> AlertState:
    return alert.state  # read afresh: mypy would narrow a repeated `alert.state` check


def test_resolves_after_the_hold_and_a_flap_inside_it_is_the_same_alert() -> None:
    book = AlertBook()
    book.observe(0.0, "ls_1", "bc_1", "ingest_slow", FOUND, SPEC)
    fired = book.observe(2.0, "ls_1", "bc_1", "ingest_slow", FOUND, SPEC)
    assert fired is not None
    assert book.observe(3.0, "ls_1", "bc_1", "ingest_slow", None, SPEC) is None
    assert state(fired) is AlertState.RESOLVING
    # Back within the hold: the same alert keeps firing, no second event.
    assert book.observe(4.0, "ls_1", "bc_1", "ingest_slow", FOUND, SPEC) is None
    assert state(fired) is AlertState.FIRING and book.active("ls_1") == [fired]
    assert book.observe(5.0, "ls_1", "bc_1", "ingest_slow", None, SPEC) is None
    assert book.observe(7.9, "ls_1", "bc_1", "ingest_slow", None, SPEC) is None
    resolved = book.observe(8.0, "ls_1", "bc_1", "ingest_slow", None, SPEC)
    assert resolved is fired and resolved.state is AlertState.RESOLVED
    assert resolved.event_data()["reason"] == "condition cleared"
    assert book.active("ls_1") == [] and book.recent("ls_1") == [fired]
    assert fired.as_dict()["state"] == "resolved"


def test_dedup_is_per_stream_and_rule() -> None:
    book = AlertBook()
    for stream, rule in (("ls_1", "a"), ("ls_1", "b"), ("ls_2", "a"), ("ls_1", "a")):
        book.observe(0.0, stream, "bc", rule, FOUND, SPEC)
    assert sorted(a.rule for a in book.active("ls_1")) == ["a", "b"]
    assert len(book.active("ls_2")) == 1


def test_the_peak_is_the_value_farthest_past_the_threshold() -> None:
    book = AlertBook()
    for value in (0.7, 0.4, 0.8):  # a speed under 0.9: lower is worse
        found = (Finding(value, 0.9, "x", ""), Diagnosis("c", "f"))
        book.observe(0.0, "ls_1", "bc", "ingest_slow", found, SPEC)
    assert book.active("ls_1")[0].peak == 0.4


def test_ending_a_stream_resolves_firing_alerts_and_drops_pending_ones() -> None:
    book = AlertBook()
    book.observe(0.0, "ls_1", "bc", "a", FOUND, SPEC)
    book.observe(2.0, "ls_1", "bc", "a", FOUND, SPEC)
    book.observe(2.0, "ls_1", "bc", "b", FOUND, SPEC)
    resolved = book.end_stream("ls_1", "broadcast ended")
    assert [(a.rule, a.resolved_reason) for a in resolved] == [("a", "broadcast ended")]
    assert book.active("ls_1") == []


def test_transitions_are_a_table_and_resolved_is_final() -> None:
    assert TRANSITIONS[AlertState.RESOLVED] == frozenset()
    book = AlertBook()
    book.observe(0.0, "ls_1", "bc", "a", FOUND, SPEC)
    alert = book.active("ls_1")[0]
    with pytest.raises(RuntimeError):
        alert.move_to(AlertState.RESOLVED)  # pending never fired: it cannot resolve


def test_recent_alerts_are_bounded() -> None:
    book = AlertBook()
    now = 0.0
    for _ in range(RECENT_PER_STREAM + 5):
        book.observe(now, "ls_1", "bc", "a", FOUND, SPEC)
        book.observe(now + 2, "ls_1", "bc", "a", FOUND, SPEC)
        book.observe(now + 3, "ls_1", "bc", "a", None, SPEC)
        book.observe(now + 6, "ls_1", "bc", "a", None, SPEC)
        now += 10
    assert len(book.recent("ls_1")) == RECENT_PER_STREAM


# The engine -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tags(tmp_path_factory: pytest.TempPathFactory) -> list[MediaTag]:
    """8 s of H.264 + AAC with a keyframe every 4 s (-g 120 at 30 fps)."""
    path = tmp_path_factory.mktemp("engine") / "gop4.flv"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=s=320x180:r=30", "-f", "lavfi", "-i", "sine",
         "-t", "9", "-c:v", "libx264", "-preset", "ultrafast", "-g", "120",
         "-keyint_min", "120", "-sc_threshold", "0", "-b:v", "400k", "-c:a", "aac",
         "-f", "flv", str(path)],
        check=True, timeout=120,
    )
    return FlvReader().feed(path.read_bytes())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def broadcast(stream_id: str = "ls_1") -> Broadcast:
    policy = StreamPolicy(stream_id=stream_id, enabled=True,
                          playback_ids=(PlaybackId(id="pb_1", signed=False),),
                          profile="default", latency_mode="low", reconnect_window=2,
                          recording=False)
    b = Broadcast(id="bc_1", policy=policy, started_at=datetime.now(UTC))
    b.move_to(BroadcastState.ACTIVE)
    return b


def alert_events(sub: object) -> list[Event]:
    out = []
    while (event := sub.get_nowait()) is not None:  # type: ignore[attr-defined]
        if event.type in (EventType.ALERT_FIRING, EventType.ALERT_RESOLVED):
            out.append(event)
    return out


async def started_engine(bus: EventBus, clock: Clock, **kwargs: object) -> AlertEngine:
    async def load(policy: StreamPolicy) -> AlertSpec:
        assert policy.profile == "default"
        return AlertSpec(for_seconds=1, resolve_after_seconds=2, stall_seconds=1.5)

    engine = AlertEngine(bus, load_spec=load, clock=clock, **kwargs)  # type: ignore[arg-type]
    return engine


async def test_engine_fires_on_a_long_gop_and_a_stall_then_resolves(tags: list[MediaTag]) -> None:
    bus, clock = EventBus(), Clock()
    sub = bus.subscribe()
    engine = await started_engine(bus, clock)
    b = broadcast()
    engine.broadcast_started(b)
    await asyncio.sleep(0)  # the profile's thresholds load
    await asyncio.sleep(0)
    start = clock.now
    fed = 0
    # Feed 8.5 s of media at real time, evaluating every second.
    while fed < len(tags) and tags[fed].timestamp <= 8500:
        clock.now = start + tags[fed].timestamp / 1000
        b.meter.observe(tags[fed], clock.now)
        fed += 1
        if fed % 30 == 0:
            engine.evaluate(clock.now)
    events = alert_events(sub)
    assert [(e.type, e.data["rule"]) for e in events] == [
        (EventType.ALERT_FIRING, "keyframe_interval")]
    firing = events[0]
    assert firing.stream_id == "ls_1" and firing.broadcast_id == "bc_1"
    assert firing.data["value"] == pytest.approx(4.0, abs=0.1)
    assert firing.data["threshold"] == 2.0
    assert "Keyframe Interval" in firing.data["fix"]
    # The publisher stalls: no media for 1.5 s opens ingest_stalled, 1 s later it fires.
    for _ in range(3):
        clock.now += 1
        engine.evaluate(clock.now)
    events = alert_events(sub)
    assert [(e.type, e.data["rule"]) for e in events] == [
        (EventType.ALERT_FIRING, "ingest_stalled")]
    # No publisher is attached in this test: the diagnosis says it is gone.
    assert "disconnected" in events[0].data["cause"]
    assert events[0].data["related"]["connected"] is False
    active = engine.alerts("ls_1")["active"]
    assert {a["rule"] for a in active} >= {"keyframe_interval", "ingest_stalled"}
    # The broadcast ends: what fired resolves with that reason.
    engine.broadcast_ended(b)
    resolved = alert_events(sub)
    assert {e.data["rule"] for e in resolved} >= {"keyframe_interval", "ingest_stalled"}
    assert all(e.type is EventType.ALERT_RESOLVED and e.data["reason"] == "broadcast ended"
               for e in resolved)
    assert engine.alerts("ls_1")["active"] == []
    await engine.close()


class Pipeline:
    """The live pipeline's read-only facts for one stream (what the engine reads)."""

    def facts(self, stream_id: str) -> PipelineFacts | None:
        return PipelineFacts(profile="default@1", renditions=("720p", "360p"),
                             latency_mode="low")


async def test_encoder_degrade_warnings_open_and_close_encoder_slow(tags: list[MediaTag]) -> None:
    bus, clock = EventBus(), Clock()
    sub = bus.subscribe()
    engine = await started_engine(bus, clock, pipeline=Pipeline())
    engine.start()
    b = broadcast()
    engine.broadcast_started(b)

    def warn(code: str, step: int, speed: float) -> None:  # shaped like DegradePolicy's
        bus.publish(Event(type=EventType.LIVE_STREAM_WARNING, stream_id="ls_1",
                          broadcast_id="bc_1",
                          data={"code": code, "speed": speed, "step": step}))

    def feed_second() -> None:  # media keeps flowing so the ingest rules stay quiet
        base = (clock.now - 1000) * 1000
        for tag in tags[:60]:
            b.meter.observe(MediaTag(tag.type, int(base) + tag.timestamp % 1000, tag.body),
                            clock.now)

    warn("slow_encode", 1, 0.62)
    for _ in range(50):
        await asyncio.sleep(0)
    for _ in range(2):
        clock.now += 1
        feed_second()
        engine.evaluate(clock.now)
    events = [e for e in alert_events(sub) if e.data["rule"] == "encoder_slow"]
    assert [e.type for e in events] == [EventType.ALERT_FIRING]
    assert events[0].data["value"] == 0.62 and "overloaded" in events[0].data["cause"]
    assert events[0].data["related"]["renditions"] == ["720p", "360p"]
    warn("encode_recovered", 0, 1.0)
    for _ in range(50):
        await asyncio.sleep(0)
    for _ in range(3):
        clock.now += 1
        feed_second()
        engine.evaluate(clock.now)
    events = [e for e in alert_events(sub) if e.data["rule"] == "encoder_slow"]
    assert [e.type for e in events] == [EventType.ALERT_RESOLVED]
    await engine.close()


def test_every_rule_has_a_distinct_name() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(("backup_key", "cause"), [
    (False, "no backup ingest"), (True, "no backup encoder has published"),
])
async def test_a_publisher_that_keeps_reconnecting_points_at_the_missing_backup(
    tags: list[MediaTag], backup_key: bool, cause: str,
) -> None:
    bus, clock = EventBus(), Clock()
    sub = bus.subscribe()
    engine = await started_engine(bus, clock)
    b = broadcast()
    # The stream's policy says whether it has a backup key (the store sets it).
    b.policy = dataclasses.replace(b.policy, backup_key=backup_key)
    engine.broadcast_started(b)
    await asyncio.sleep(0)  # the profile's thresholds load
    await asyncio.sleep(0)
    for _ in range(3):  # the hub calls this when a publisher returns in the window
        engine.publisher_resumed(b)
    b.meter.observe(tags[0], clock.now)
    for _ in range(2):
        clock.now += 1
        engine.evaluate(clock.now)
    fired = [e for e in alert_events(sub) if e.data["rule"] == "reconnects"]
    assert [e.type for e in fired] == [EventType.ALERT_FIRING]
    assert fired[0].data["value"] == 3 and cause in fired[0].data["cause"]
    assert fired[0].data["related"]["backup_key"] is backup_key
    # Reconnects age out of the profile's period (300 s): the alert resolves after the hold.
    clock.now += 300
    b.meter.observe(tags[1], clock.now)
    for _ in range(3):
        clock.now += 1
        engine.evaluate(clock.now)
    resolved = [e for e in alert_events(sub) if e.data["rule"] == "reconnects"]
    assert [e.type for e in resolved] == [EventType.ALERT_RESOLVED]
    await engine.close()


async def test_the_slate_is_not_the_input_the_stall_fires_and_no_reconnect_counts(
        tags: list[MediaTag]) -> None:
    bus, clock = EventBus(), Clock()
    sub = bus.subscribe()
    engine = await started_engine(bus, clock)
    b = broadcast()
    engine.broadcast_started(b)
    await asyncio.sleep(0)  # the profile's thresholds load
    await asyncio.sleep(0)
    b.meter.observe(tags[0], clock.now)
    engine.evaluate(clock.now)
    # The publisher leaves; the hub puts the slate on, which feeds media like a publisher.
    engine.publisher_lost(b)
    b.on_slate = True
    engine.publisher_resumed(b)
    start, fed = clock.now, 1
    for _ in range(4):
        clock.now += 1
        while fed < len(tags) and tags[fed].timestamp <= (clock.now - start) * 1000:
            b.meter.observe(tags[fed], clock.now)  # the slate's media keeps arriving
            fed += 1
        engine.evaluate(clock.now)
    fired = alert_events(sub)
    assert [(e.type, e.data["rule"]) for e in fired] == [
        (EventType.ALERT_FIRING, "ingest_stalled")]
    assert not [a for a in engine.alerts("ls_1")["active"] if a["rule"] == "reconnects"]
    await engine.close()
