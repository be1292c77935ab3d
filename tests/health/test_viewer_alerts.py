"""Viewer-side rules (rebuffering, startup, live latency, playback failures) judged against
the profile's [slo], each diagnosis branch picked by the ingest and encoder signals of the
same moment; the QoE stage (`measure`) on hand-made beacons; and the engine's schedule of
QoE computations."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.health.test_alerts import Clock, alert_events, broadcast
from tests.health.test_diagnosis import SPEC, facts, signals

from golive.core import EventBus, EventType
from golive.health import (
    RULES,
    AlertEngine,
    EncoderSignals,
    Finding,
    QoeSummary,
    Rule,
    SrtSignals,
    StreamSignals,
    ViewerGroup,
    ViewerSignals,
    ViewLag,
)
from golive.health.alerts import VIEWER_READS
from golive.health.viewers import measure
from golive.media import AlertSpec, SloSpec
from golive.store import PlaybackEventRecord, PlaybackViewRecord
from golive.stream import StreamPolicy

RULE: dict[str, Rule] = {rule.name: rule for rule in RULES}
SLO = SloSpec(startup_p95_seconds=3, rebuffer_percentage=1, latency_p95_seconds=5,
              playback_failure_percentage=2)
VIEWER_RULES = ("rebuffer", "startup_time", "live_latency", "playback_failures")


def summary(**changes: Any) -> QoeSummary:
    base = QoeSummary(
        views=10, started_views=10, failed_views=0, playback_failure_percentage=0.0,
        exits_before_video_start_percentage=0.0, startup_time_p50_s=0.8,
        startup_time_p95_s=1.5, watch_time_s=1200.0, rebuffer_percentage=0.2,
        rebuffer_frequency_per_minute=0.05, rebuffer_duration_s=0.2, rebuffer_count=1,
        live_latency_p50_s=2.0, live_latency_p95_s=3.0)
    return dataclasses.replace(base, **changes)


def viewers(**changes: Any) -> ViewerSignals:
    by_player = changes.pop("by_player", {"hls.js": summary(views=10)})
    rebuffering = changes.pop("rebuffering", ())
    return ViewerSignals(summary=summary(**changes), slo=SLO, window_s=120.0,
                         by_player=by_player, rebuffering=rebuffering)


def with_viewers(v: ViewerSignals, **changes: Any) -> StreamSignals:
    return signals(viewers=v, **changes)


def fired(s: StreamSignals) -> set[str]:
    return {name for name in VIEWER_RULES if RULE[name].evaluate(s, SPEC) is not None}


def diagnose(name: str, s: StreamSignals) -> tuple[Finding, str, str, dict[str, Any]]:
    finding = RULE[name].evaluate(s, SPEC)
    assert finding is not None, name
    d = RULE[name].diagnose(finding, s)
    return finding, d.cause, d.fix, d.related


SLOW_INGEST = {"ingest_speed": 0.6}
SRT_RETRANSMITS = {"protocol": "srt", "srt": SrtSignals(rtt_ms=80, loss_ratio=0.01,
                                                         retransmit_ratio=0.08, dropped=0,
                                                         latency_ms=120)}
ENCODER_SLOW = {"encoder": EncoderSignals(degrade_step=2, speed=0.7, exhausted=False,
                                          restarts=0, renditions=("360p",))}


def test_viewer_rules_are_quiet_without_views_or_within_the_slo() -> None:
    assert fired(signals()) == set()  # no viewer window (no views)
    assert fired(with_viewers(viewers())) == set()
    # Exactly at the target is met (SloResult's `value <= target`).
    assert fired(with_viewers(viewers(rebuffer_percentage=1.0, startup_time_p95_s=3.0,
                                      live_latency_p95_s=5.0,
                                      playback_failure_percentage=2.0))) == set()
    # A metric no view gave (None) judges nothing.
    assert fired(with_viewers(viewers(rebuffer_percentage=None, startup_time_p95_s=None,
                                      live_latency_p95_s=None,
                                      playback_failure_percentage=None))) == set()


@pytest.mark.parametrize(("rule", "change", "value", "threshold", "unit"), [
    ("rebuffer", {"rebuffer_percentage": 4.5}, 4.5, 1.0, "%"),
    ("startup_time", {"startup_time_p95_s": 7.25}, 7.25, 3.0, "s"),
    ("live_latency", {"live_latency_p95_s": 11.0}, 11.0, 5.0, "s"),
    ("playback_failures", {"playback_failure_percentage": 20.0}, 20.0, 2.0, "%"),
])
def test_each_viewer_rule_fires_over_its_slo(rule: str, change: dict[str, float], value: float,
                                             threshold: float, unit: str) -> None:
    s = with_viewers(viewers(**change))
    assert fired(s) == {rule}
    finding = RULE[rule].evaluate(s, SPEC)
    assert finding is not None
    assert (finding.value, finding.threshold, finding.unit) == (value, threshold, unit)
    assert "10 views" in finding.summary and "120 s" in finding.summary


def test_thresholds_come_from_the_profiles_slo() -> None:
    loose = dataclasses.replace(viewers(rebuffer_percentage=4.5),
                                slo=SloSpec(rebuffer_percentage=5))
    assert fired(with_viewers(loose)) == set()


# Rebuffering: uplink, encoder, or player/cache ---------------------------------------


def test_rebuffering_with_a_slow_ingest_is_the_uplink() -> None:
    _, cause, fix, related = diagnose("rebuffer", with_viewers(viewers(rebuffer_percentage=6),
                                                                **SLOW_INGEST))
    assert cause.startswith("the uplink cannot carry the bitrate")
    assert "0.60x real time" in cause
    assert "lower the encoder's bitrate" in fix and "SRT" in fix
    assert related["ingest_speed"] == 0.6 and related["rebuffer_percentage"] == 6


def test_rebuffering_with_srt_retransmits_climbing_is_the_uplink() -> None:
    _, cause, _, related = diagnose("rebuffer", with_viewers(viewers(rebuffer_percentage=6),
                                                             **SRT_RETRANSMITS))
    assert cause.startswith("the uplink cannot carry the bitrate")
    assert "SRT retransmits climb (8.0%" in cause
    assert related["srt_retransmit_ratio"] == 0.08


def test_rebuffering_while_the_ingest_stalls_is_upstream() -> None:
    _, cause, _, _ = diagnose("rebuffer", with_viewers(viewers(rebuffer_percentage=6),
                                                       media_gap_s=4.0))
    assert "the ingest stalled" in cause


def test_rebuffering_with_a_slow_encoder_blames_the_encoder() -> None:
    _, cause, fix, _ = diagnose("rebuffer", with_viewers(viewers(rebuffer_percentage=6),
                                                         **ENCODER_SLOW))
    assert "encoder runs slower than real time at 0.70x" in cause
    assert "lower the ladder" in fix


def test_rebuffering_with_a_healthy_ingest_is_player_or_cache() -> None:
    v = viewers(rebuffer_percentage=6, by_player={
        "hls.js": summary(views=8, rebuffer_percentage=0.5),
        "native": summary(views=2, rebuffer_percentage=25.0)})
    _, cause, fix, related = diagnose("rebuffer", with_viewers(v))
    assert cause.startswith("player or cache")
    assert "worst on native (25.00)" in cause
    assert "stale playlists" in fix and "Cache-Control" in fix
    assert related["by_player"]["native"]["rebuffer_percentage"] == 25.0
    # Which viewers: the kinds that rebuffered, most first, in the cause and the signals.
    v = viewers(rebuffer_percentage=6, rebuffering=(
        ViewerGroup("native", "safari", "ios", 2, 2, 25.0),
        ViewerGroup("hls.js", "chrome", "windows", 1, 8, 0.6)))
    _, cause, _, related = diagnose("rebuffer", with_viewers(v))
    assert cause.endswith("; rebuffering: 2 of 2 native views on safari/ios (25.0 % "
                          "rebuffering); 1 of 8 hls.js views on chrome/windows (0.6 % "
                          "rebuffering)")
    assert related["rebuffering"][0] == {"player": "native", "browser": "safari", "os": "ios",
                                         "rebuffering_views": 2, "views": 2,
                                         "rebuffer_percentage": 25.0}
    # The same symptom is the uplink as soon as the ingest says so.
    _, cause, _, _ = diagnose("rebuffer", with_viewers(v, ingest_speed=0.5))
    assert cause.startswith("the uplink")


# Startup ------------------------------------------------------------------------------


def test_slow_startup_diagnoses() -> None:
    v = viewers(startup_time_p95_s=8.0)
    _, cause, _, _ = diagnose("startup_time", with_viewers(v, **SLOW_INGEST))
    assert "0.60x real time" in cause
    _, cause, fix, _ = diagnose("startup_time",
                                with_viewers(v, ingest=facts(keyframe_interval_s=6.0)))
    assert "keyframe only every 6.0 s" in cause and "Keyframe Interval" in fix
    _, cause, _, _ = diagnose("startup_time", with_viewers(v, **ENCODER_SLOW))
    assert "encoder runs slower than real time" in cause
    _, cause, fix, _ = diagnose("startup_time", with_viewers(v))
    assert cause.startswith("player or cache")
    assert "time to first byte" in fix


# Latency ------------------------------------------------------------------------------


def test_growing_latency_with_a_slow_encoder_is_the_encoder() -> None:
    _, cause, fix, _ = diagnose("live_latency", with_viewers(viewers(live_latency_p95_s=12),
                                                             **ENCODER_SLOW))
    assert "encoder runs slower than real time" in cause
    assert "every viewer falls further behind" in cause and "lower the ladder" in fix


def test_growing_latency_with_a_healthy_encoder_names_the_drifting_players() -> None:
    behind = (ViewLag("view-far", "native", "safari", 14.0, 9.0),
              ViewLag("view-stuck", "hls.js", "firefox", 9.0, 0.0),  # far, not drifting
              ViewLag("view-near", "hls.js", "chrome", 3.0, 0.5))
    v = dataclasses.replace(viewers(live_latency_p95_s=12), behind=behind)
    _, cause, fix, related = diagnose("live_latency", with_viewers(v))
    assert cause.startswith("players drifting from the live edge")
    assert "view-far (native/safari, 14.0 s, +9.0 s)" in cause
    assert "view-stuck" not in cause and "view-near" not in cause
    assert "maxLiveSyncPlaybackRate" in fix
    assert [b["view_id"] for b in related["behind"]] == ["view-far", "view-stuck", "view-near"]
    # Nobody drifting: far from the edge from the start.
    still = dataclasses.replace(v, behind=behind[1:])
    _, cause, _, _ = diagnose("live_latency", with_viewers(still))
    assert cause.startswith("players sit far from the live edge")


# Failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(("codes", "expected"), [
    ((("manifestLoadError", 7), ("fragLoadError", 1)), "players cannot load the playlists"),
    ((("fragLoadTimeOut", 3),), "players cannot load segments or parts"),
    ((("bufferIncompatibleCodecsError", 4),), "the browsers cannot decode the stream"),
    ((("weirdThing", 2),), "players fail with errors golive has no diagnosis for"),
    ((), "views fail without naming an error code"),
])
def test_failures_are_diagnosed_by_the_error_codes_seen_most(
        codes: tuple[tuple[str, int], ...], expected: str) -> None:
    v = dataclasses.replace(viewers(playback_failure_percentage=30.0), error_codes=codes)
    _, cause, _, related = diagnose("playback_failures", with_viewers(v))
    assert cause.startswith(expected)
    assert related["error_codes"] == dict(codes)
    if codes:
        assert f"{codes[0][0]} x{codes[0][1]}" in cause


def test_whep_only_failures_point_at_webrtc_reachability() -> None:
    v = dataclasses.replace(viewers(playback_failure_percentage=30.0,
                                    by_player={"whep": summary(views=10)}),
                            error_codes=(("whepNegotiationFailed", 3),))
    _, cause, fix, _ = diagnose("playback_failures", with_viewers(v))
    assert cause.startswith("WebRTC playback fails") and "TURN" in fix


# The QoE stage ------------------------------------------------------------------------

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
Beacon = tuple[float, str, dict[str, Any]]


def rows(views: dict[str, tuple[str, list[Beacon]]]
         ) -> list[tuple[PlaybackViewRecord, list[PlaybackEventRecord]]]:
    out = []
    for number, (view_id, (player, beacons)) in enumerate(views.items()):
        start = (0.0, "start", {"muted": True, "native": player == "native",
                                "rendition": "360p", "protocol": "hls", "player": player})
        events = [PlaybackEventRecord(id=number * 100 + i, view_id=view_id, type=kind,
                                      at=T0 + timedelta(seconds=s), data=data)
                  for i, (s, kind, data) in enumerate([start, *beacons])]
        out.append((PlaybackViewRecord(id=view_id, playback_id="pid", stream_id="sid",
                                       started_at=T0, last_seen_at=events[-1].at,
                                       user_agent="Mozilla/5.0 (X11; Linux x86_64) "
                                                  "Chrome/120.0 Safari/537.36"), events))
    return out


def test_measure_gives_the_summary_per_player_the_error_codes_and_who_is_behind() -> None:
    window = rows({
        "view-a": ("hls.js", [(1, "first_frame", {"ms": 1000}), (10, "latency", {"seconds": 2}),
                              (60, "latency", {"seconds": 2.5})]),
        "view-b": ("native", [(1, "first_frame", {"ms": 2000}), (10, "latency", {"seconds": 3}),
                              (30, "stall", {"ms": 6000}), (60, "latency", {"seconds": 9})]),
        "view-c": ("hls.js", [(2, "error", {"code": "manifestLoadError", "fatal": True,
                                            "message": ""})]),
        "view-d": ("hls.js", [(3, "error", {"code": "manifestLoadError", "fatal": True,
                                            "message": ""})]),
        "view-e": ("hls.js", [(3, "error", {"code": "fragLoadError", "fatal": True,
                                            "message": ""}),
                              (4, "error", {"code": "levelLoadError", "fatal": False,
                                            "message": ""})]),
    })
    v = measure(window, T0, T0 + timedelta(seconds=120), SLO)
    assert v.window_s == 120 and v.slo is SLO
    assert v.summary.views == 5 and v.summary.failed_views == 3
    assert v.summary.playback_failure_percentage == 60.0
    assert sorted(v.by_player) == ["hls.js", "native"]
    assert v.by_player["native"].rebuffer_count == 1
    # Who rebuffered: the one native view (Chrome's user agent), named by kind.
    native = v.by_player["native"].rebuffer_percentage
    assert native is not None
    assert v.rebuffering == (ViewerGroup("native", "chrome", "linux", 1, 1, native),)
    # Fatal errors only, most frequent first.
    assert v.error_codes == (("manifestLoadError", 2), ("fragLoadError", 1))
    assert [(b.view_id, b.latency_s, b.growth_s) for b in v.behind] == [
        ("view-b", 9.0, 6.0), ("view-a", 2.5, 0.5)]
    # Errors before the window only set a view's state; they are not counted again.
    later = measure(window, T0 + timedelta(seconds=5), T0 + timedelta(seconds=120), SLO)
    assert later.error_codes == ()


# The engine's QoE schedule --------------------------------------------------------------


class Windows:
    """A `ViewerSource` that answers a set summary and records the windows asked for."""

    def __init__(self, answer: ViewerSignals | None) -> None:
        self.answer = answer
        self.asked: list[tuple[str, datetime, datetime, SloSpec]] = []
        self.done = asyncio.Event()

    async def __call__(self, stream_id: str, start: datetime, end: datetime,
                       slo: SloSpec) -> ViewerSignals | None:
        self.asked.append((stream_id, start, end, slo))
        self.done.set()
        return self.answer


async def _settle(windows: Windows) -> None:
    await asyncio.wait_for(windows.done.wait(), 10)
    windows.done.clear()
    for _ in range(3):
        await asyncio.sleep(0)  # the task stores its answer


async def test_the_engine_recomputes_the_viewer_window_at_most_every_interval() -> None:
    bus, clock = EventBus(), Clock()
    sub = bus.subscribe(maxsize=100)
    spec = AlertSpec(for_seconds=1, resolve_after_seconds=2, qoe_window_seconds=60,
                     qoe_interval_seconds=5, min_qoe_views=3)
    slo = SloSpec(rebuffer_percentage=2)
    windows = Windows(ViewerSignals(summary(rebuffer_percentage=9.0), slo, 60.0))

    async def load(policy: StreamPolicy) -> AlertSpec:
        return spec

    async def load_slo(policy: StreamPolicy) -> SloSpec:
        return slo

    engine = AlertEngine(bus, load_spec=load, load_slo=load_slo, viewers=windows, clock=clock)
    b = broadcast()
    engine.broadcast_started(b)
    await asyncio.sleep(0.05)  # the profile's thresholds load
    engine.evaluate(clock.now)  # starts the first computation; nothing to judge yet
    await _settle(windows)
    for _ in range(3):
        clock.now += 1
        engine.evaluate(clock.now)
        await asyncio.sleep(0)
    assert len(windows.asked) == 1  # not again within 5 s
    stream_id, start, end, asked_slo = windows.asked[0]
    assert stream_id == "ls_1" and asked_slo == slo
    # The window starts at the broadcast's start when that is later than 60 s ago.
    assert start == b.started_at and end > start
    fired = [e for e in alert_events(sub) if e.type is EventType.ALERT_FIRING]
    assert [e.data["rule"] for e in fired] == ["rebuffer"]
    assert fired[0].data["value"] == 9.0 and fired[0].data["threshold"] == 2.0
    assert fired[0].data["cause"].startswith("player or cache")
    # Fewer views than min_qoe_views, or none at all: nothing to judge, the alert resolves.
    windows.answer = ViewerSignals(summary(views=2, rebuffer_percentage=9.0), slo, 60.0)
    clock.now += 5
    engine.evaluate(clock.now)
    await _settle(windows)
    for _ in range(4):
        clock.now += 1
        engine.evaluate(clock.now)
    resolved = [e for e in alert_events(sub) if e.type is EventType.ALERT_RESOLVED]
    assert [e.data["rule"] for e in resolved] == ["rebuffer"]
    assert len(windows.asked) == 2
    await engine.close()


class SlowWindows:
    """A `ViewerSource` that holds every read until released, counting those at once."""

    def __init__(self, expected: int) -> None:
        self.running = 0
        self.most = 0
        self.asked: list[str] = []
        self.release = asyncio.Event()
        self.expected = expected
        self.all_read = asyncio.Event()  # `expected` reads answered

    async def __call__(self, stream_id: str, start: datetime, end: datetime,
                       slo: SloSpec) -> ViewerSignals | None:
        self.asked.append(stream_id)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        if len(self.asked) == self.expected and not self.running:
            self.all_read.set()
        return None


async def test_the_engine_reads_few_viewer_windows_at_once() -> None:
    """Every stream's window comes due in the same second: they queue (VIEWER_READS at a
    time) instead of taking a pooled database connection each, and all are read."""
    bus, clock = EventBus(), Clock()
    spec = AlertSpec(for_seconds=1, resolve_after_seconds=2, qoe_interval_seconds=5)

    async def load(policy: StreamPolicy) -> AlertSpec:
        return spec

    streams = [f"ls_{i}" for i in range(VIEWER_READS + 4)]
    windows = SlowWindows(len(streams))
    engine = AlertEngine(bus, load_spec=load, viewers=windows, clock=clock)
    for stream_id in streams:
        engine.broadcast_started(broadcast(stream_id))
    await asyncio.sleep(0.05)  # the profiles' thresholds load
    engine.evaluate(clock.now)  # every stream's computation is due
    for _ in range(20):
        await asyncio.sleep(0)
    assert windows.running == VIEWER_READS and len(windows.asked) == VIEWER_READS
    windows.release.set()
    await asyncio.wait_for(windows.all_read.wait(), 10)
    assert sorted(windows.asked) == sorted(streams) and windows.most == VIEWER_READS
    await engine.close()
