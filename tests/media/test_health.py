"""Encode health with a hand-driven clock: slow encodes, dropped frames, the bitrate floor, NVENC."""

from __future__ import annotations

import pytest

from golive.core import Cooldown
from golive.media.command import CPU_ONLY, EncoderCapabilities
from golive.media.health import (
    CounterWindow,
    EncodeHealth,
    EncodeSample,
    NvencFallback,
    SlowEncodeDetector,
    slow_encode_action,
)
from golive.media.ladder import LadderPlan, SourceInfo, plan_ladder
from golive.media.profiles import AlertSpec, StreamProfile, load_profile

TICK = 0.5  # the transcoder's health check interval


def plan_720p(**fallback: object) -> LadderPlan:
    base = load_profile("default").model_dump()
    base["fallback"].update(fallback)
    profile = StreamProfile.model_validate(base)
    return plan_ladder(profile, SourceInfo(1280, 720, 29.97, "h264", True), "low")


def sample(
    *,
    input_s: float | None = None,
    output_s: float | None = None,
    frames: int = 0,
    dropped: int = 0,
    input_bytes: int = 0,
) -> EncodeSample:
    return EncodeSample(input_s, output_s, frames, dropped, input_bytes)


def test_slow_encode_detector() -> None:
    detector = SlowEncodeDetector(min_speed=1.0, window=10)
    # Keeping up: output trails the input by a constant.
    assert all(
        not detector.is_slow(detector.sample(now, now, now - 0.8))
        for now in [1 + i * 0.5 for i in range(60)]
    )
    assert detector.sample(31.5, 31.5, 30.7) == pytest.approx(1.0)
    detector.reset()
    speeds = [detector.sample(i * 0.5, i * 0.5, i * 0.5 * 0.8) for i in range(30)]
    assert speeds[:20] == [None] * 20  # needs a full window
    assert speeds[-1] == pytest.approx(0.8) and detector.is_slow(speeds[-1])
    detector.reset()
    # The publisher stalled: the encoder is not to blame.
    assert all(detector.sample(i * 0.5, 1.0, 1.0) is None for i in range(40))
    # Just under 1.0 is a live encoder's normal state, not slowness.
    assert not detector.is_slow(0.96) and detector.is_slow(0.94) and not detector.is_slow(None)


def test_counter_window_needs_a_full_span() -> None:
    window = CounterWindow(10)
    assert [window.add(t, t * 3) for t in (0, 5, 9.9)] == [None, None, None]
    assert window.add(10, 30) == (10, 30)
    assert window.add(16, 60) == (11, 45)  # the oldest point still covering the span is kept


def test_slow_encode_is_reported_once_per_window() -> None:
    health = EncodeHealth(AlertSpec(slow_encode_seconds=5, min_ingest_bitrate_kbps=0))
    reports = []
    for i in range(40):
        now = 100 + i * TICK
        reports.append(health.check(now, sample(input_s=i * TICK, output_s=i * TICK * 0.7)))
    slow = [(i, r.slow_speed) for i, r in enumerate(reports) if r.slow_speed is not None]
    # Slow once a full 5 s window is covered; then a fresh window before saying it again.
    assert [i for i, _ in slow] == [10, 21, 32]
    assert all(speed == pytest.approx(0.7) for _, speed in slow)
    assert all(not r.warnings for r in reports)


def test_no_speed_without_a_run_on_the_current_timeline() -> None:
    health = EncodeHealth(AlertSpec(slow_encode_seconds=1, min_ingest_bitrate_kbps=0))
    for i in range(20):  # no output time: starting, stopping or restarting
        assert health.check(i * TICK, sample(input_s=i * TICK)).slow_speed is None


def test_dropped_frames_over_the_ratio_warn() -> None:
    health = EncodeHealth(AlertSpec(max_dropped_frames_ratio=0.02, min_ingest_bitrate_kbps=0))
    # 30 fps in, 1 frame in 100 dropped: under the ratio.
    quiet = [
        health.check(i * TICK, sample(frames=i * 15, dropped=i * 15 // 100)) for i in range(30)
    ]
    assert all(not r.warnings for r in quiet)
    health = EncodeHealth(AlertSpec(max_dropped_frames_ratio=0.02, min_ingest_bitrate_kbps=0))
    loud = [health.check(i * TICK, sample(frames=i * 15, dropped=i)) for i in range(30)]
    warned = [i for i, r in enumerate(loud) if r.warnings]
    assert warned[0] == 20  # a full 10 s window first
    warning = loud[20].warnings[0]
    assert warning.code == "dropped_frames" and warning.limited  # the transcoder rate limits it
    assert warning.data == {"ratio": pytest.approx(1 / 15, abs=1e-4)}


def test_low_ingest_bitrate_warns_once_per_crossing() -> None:
    health = EncodeHealth(AlertSpec(min_ingest_bitrate_kbps=150, ingest_bitrate_seconds=2))
    total, codes = 0.0, []
    # 100 kbit/s for 5 s, 400 kbit/s for 5 s, then 100 kbit/s again.
    for i in range(45):
        kbps = 400 if 10 <= i < 20 else 100
        total += kbps * 1000 // 8 * TICK
        report = health.check(i * TICK, sample(input_bytes=int(total)))
        codes += [(i, w.code, w.limited) for w in report.warnings]
    assert [c for _, c, _ in codes] == ["low_ingest_bitrate", "low_ingest_bitrate"]
    assert codes[0][0] == 4 and codes[1][0] > 20 and not codes[0][2]


def test_slow_encode_drops_the_most_expensive_rendition() -> None:
    plan = plan_720p()
    action = slow_encode_action(plan, 0.71)
    assert action.dropped == "720p" and action.reduced is not None
    assert "720p" not in action.reduced.names and len(action.reduced.names) == len(plan.names) - 1
    assert action.warning.code == "slow_encode" and not action.warning.limited
    assert action.warning.data == {
        "speed": 0.71, "dropped": "720p", "renditions": list(action.reduced.names),
    }  # fmt: skip


def test_slow_encode_only_warns_when_nothing_may_be_dropped() -> None:
    for plan in (plan_720p(drop_top_rendition_on_slow_encode=False), plan_720p(min_renditions=3)):
        action = slow_encode_action(plan, 0.5)
        assert action.reduced is None and action.dropped is None
        assert "no rendition can be dropped" in action.warning.message and action.warning.limited


def test_warning_cooldown_is_per_code() -> None:
    cooldown = Cooldown(60)
    assert cooldown.allow("a", 0) and not cooldown.allow("a", 59.9) and cooldown.allow("b", 1)
    assert cooldown.allow("a", 60)


def test_nvenc_is_given_up_after_repeated_rapid_failures() -> None:
    gpu = EncoderCapabilities(libx264=True, h264_nvenc=True)
    fallback = NvencFallback(give_up_after=2)
    assert not fallback.rapid_failure(gpu)
    assert fallback.rapid_failure(gpu)
    # Only NVENC failures count; without libx264 there is nothing to fall back to.
    assert not NvencFallback(give_up_after=1).rapid_failure(CPU_ONLY)
    gpu_only = EncoderCapabilities(libx264=False, h264_nvenc=True)
    stuck = NvencFallback(give_up_after=1)
    assert not stuck.rapid_failure(gpu_only) and stuck.failures == 1
