"""Encode health with a hand-driven clock: slow encodes, dropped frames, the bitrate floor, NVENC."""

from __future__ import annotations

import pytest

from golive.core import Cooldown
from golive.media.command import CPU_ONLY, EncoderCapabilities
from golive.media.health import (
    MAX_RECOVER_AFTER,
    CounterWindow,
    DegradePolicy,
    EncodeHealth,
    EncodeSample,
    NvencFallback,
    SlowEncodeDetector,
    degrade_steps,
    keeping_frame_rates,
)
from golive.media.ladder import LadderPlan, SourceInfo, plan_ladder
from golive.media.profiles import AlertSpec, StreamProfile, load_profile

TICK = 0.5  # the transcoder's health check interval


def plan_720p(rate: float = 29.97, **fallback: object) -> LadderPlan:
    base = load_profile("default").model_dump()
    base["fallback"].update(fallback)
    profile = StreamProfile.model_validate(base)
    return plan_ladder(profile, SourceInfo(1280, 720, rate, "h264", True), "low")


def sample(
    *,
    input_s: float | None = None,
    output_s: float | None = None,
    frames: int = 0,
    dropped: int = 0,
    input_bytes: int = 0,
    from_publisher: bool = True,
) -> EncodeSample:
    return EncodeSample(input_s, output_s, frames, dropped, input_bytes, from_publisher)


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


def test_the_slates_bytes_are_no_publishers_bitrate() -> None:
    # 400 kbit/s from the publisher for 5 s; it drops and the slate (a still picture at
    # 100 kbit/s) feeds the encoder for 10 s; a publisher returns at 400 kbit/s.
    health = EncodeHealth(AlertSpec(min_ingest_bitrate_kbps=150, ingest_bitrate_seconds=2))
    total, codes = 0.0, []
    for i in range(40):
        slate = 10 <= i < 30
        total += (100 if slate else 400) * 1000 // 8 * TICK
        report = health.check(i * TICK, sample(input_bytes=int(total), from_publisher=not slate))
        codes += [w.code for w in report.warnings]
    assert codes == []
    # A publisher that sends 100 kbit/s itself is warned of.
    health = EncodeHealth(AlertSpec(min_ingest_bitrate_kbps=150, ingest_bitrate_seconds=2))
    total = 0.0
    for i in range(10):
        total += 100 * 1000 // 8 * TICK
        codes += [w.code for w in health.check(i * TICK, sample(input_bytes=int(total))).warnings]
    assert codes == ["low_ingest_bitrate"]


def test_an_audio_only_ladder_has_no_step_to_take() -> None:
    radio = plan_ladder(load_profile("default"), SourceInfo(0, 0, 0, "unknown", True), "low")
    assert [(s.level, s.action) for s in degrade_steps(radio, libx264=True)] == [(0, "full")]


def test_degrade_steps_cheapen_before_they_drop() -> None:
    plan = plan_720p(30)
    steps = degrade_steps(plan, libx264=True)
    assert [(s.level, s.action) for s in steps] == [
        (0, "full"), (1, "preset"), (2, "frame_rate"), (3, "drop"), (4, "drop"),
    ]  # fmt: skip
    assert steps[0].apply(plan) is plan
    faster = steps[1].apply(plan)
    assert faster.x264_preset == "superfast" and faster.renditions == plan.renditions
    slower = steps[2].apply(plan)
    # The lower rungs at half rate, with whole frames per part and GOP at the new rate.
    assert [(r.name, r.frame_rate, r.gop_frames, r.part_frames) for r in slower.renditions] == [
        ("720p", 30.0, 30, 6), ("480p", 15.0, 15, 3), ("360p", 15.0, 15, 3),
    ]  # fmt: skip
    assert slower.part_target == plan.part_target and slower.gop_duration == plan.gop_duration
    assert steps[3].apply(plan).names == ("480p", "360p")
    last = steps[4].apply(plan)
    assert last.names == ("360p",) and last.rendition("360p").frame_rate == 15.0
    assert last.x264_preset == "superfast"


def test_degrade_steps_keep_parts_whole() -> None:
    # 29.97 fps: five-frame parts cannot be halved, so no frame rate step.
    assert [s.action for s in degrade_steps(plan_720p(), libx264=True)] == [
        "full", "preset", "drop", "drop",
    ]  # fmt: skip
    # NVENC has no faster preset than p1; a profile may forbid dropping.
    assert [s.action for s in degrade_steps(plan_720p(30), libx264=False)] == [
        "full", "frame_rate", "drop", "drop",
    ]  # fmt: skip
    no_drop = plan_720p(30, drop_top_rendition_on_slow_encode=False)
    assert [s.action for s in degrade_steps(no_drop, libx264=True)] == [
        "full", "preset", "frame_rate",
    ]  # fmt: skip
    assert len(degrade_steps(plan_720p(30, min_renditions=3), libx264=True)) == 3


def test_a_source_with_captions_keeps_every_rungs_frame_rate() -> None:
    """A rung at half the rate loses the caption data of every other picture: with
    captions the frame-rate step is left out, and drops keep full rates."""
    plan = plan_720p(30)
    steps = degrade_steps(plan, libx264=True, captions=True)
    assert [(s.level, s.action) for s in steps] == [
        (0, "full"), (1, "preset"), (2, "drop"), (3, "drop")]
    assert all(r.frame_rate == 30.0 for s in steps for r in s.apply(plan).renditions)


@pytest.mark.parametrize(("level", "kept_level", "dropped"), [
    (0, 0, ()), (1, 1, ()),  # before the frame-rate step: where it is
    (2, 1, ()),  # on it: the preset step, every rung back at full rate
    (3, 2, ("720p",)), (4, 3, ("720p", "480p")),  # a drop step: the same drops, full rates
])
def test_captions_that_begin_under_load_bring_the_frame_rates_back(
        level: int, kept_level: int, dropped: tuple[str, ...]) -> None:
    plan = plan_720p(30)
    policy = DegradePolicy(plan, degrade_steps(plan, libx264=True), recover_after=45)
    policy.level = level
    kept = keeping_frame_rates(policy, libx264=True)
    assert kept is not None
    assert (kept.level, kept.step.dropped, kept.step.frame_rate_divisors) == (
        kept_level, dropped, ())
    assert kept.recover_after == 45
    assert "frame_rate" not in [s.action for s in kept.steps]
    assert keeping_frame_rates(kept, libx264=True) is None  # nothing more to leave out


def walk(
    policy: DegradePolicy, start: float, seconds: float, speed: float | None
) -> list[tuple[float, str, int]]:
    """Health checks every TICK for `seconds`; a measured speed under 0.95 is slow."""
    changes = []
    for i in range(round(seconds / TICK)):
        now = start + i * TICK
        slow = speed is not None and speed < 0.95
        change = policy.observe(now, speed, slow=slow)
        if change is not None:
            changes.append((now, change.warning.code, policy.level))
    return changes


def test_policy_steps_down_once_per_slow_window_with_the_numbers() -> None:
    plan = plan_720p(30)
    policy = DegradePolicy(plan, degrade_steps(plan, libx264=True))
    changes = []
    for level in range(1, 6):  # the detector reports a slow window every 10 s
        change = policy.observe(level * 10.0, 0.82, slow=True)
        assert change is not None
        changes.append(change)
    assert [c.step.level if c.step else None for c in changes] == [1, 2, 3, 4, None]
    assert [c.warning.code for c in changes] == ["slow_encode"] * 5
    assert [c.warning.limited for c in changes] == [False, False, False, False, True]
    assert changes[0].warning.data == {
        "speed": 0.82, "step": 1, "action": "preset", "preset": "superfast",
        "fps": {"720p": 30.0, "480p": 30.0, "360p": 30.0}, "rendition": None,
        "renditions": ["720p", "480p", "360p"],
    }  # fmt: skip
    assert changes[1].warning.data["fps"] == {"720p": 30.0, "480p": 15.0, "360p": 15.0}
    assert changes[2].warning.data["rendition"] == "720p"
    assert changes[2].warning.data["renditions"] == ["480p", "360p"]
    assert changes[3].warning.data["rendition"] == "480p"
    assert "no cheaper step" in changes[4].warning.message and policy.level == 4


def test_policy_recovers_with_hysteresis() -> None:
    plan = plan_720p(30)
    policy = DegradePolicy(plan, degrade_steps(plan, libx264=True), recover_after=30)
    policy.observe(0, 0.8, slow=True)
    policy.observe(10, 0.8, slow=True)
    policy.observe(20, 0.8, slow=True)
    assert policy.level == 3
    # Keeping up: one step back every 30 s, the rendition named as it comes back.
    ups = walk(policy, 30, 65, 1.0)
    assert [(now - 30, code, level) for now, code, level in ups] == [
        (30.0, "encode_recovered", 2), (60.5, "encode_recovered", 1),
    ]  # fmt: skip
    # Slow again soon after the step up: it was one step too many; wait twice as long.
    change = policy.observe(96, 0.9, slow=True)
    assert change is not None and policy.level == 2 and policy.recover_after == 60
    assert walk(policy, 97, 59, 1.0) == []
    assert walk(policy, 156, 5, 1.0) == [(157.0, "encode_recovered", 1)]
    # Unknown speed (a restart, a stalled publisher) is not keeping up: the wait starts over.
    assert walk(policy, 161, 50, 1.0) == []
    walk(policy, 211, 1, None)
    assert walk(policy, 212, 59, 1.0) == []
    assert walk(policy, 271, 2, 1.0) == [(272.0, "encode_recovered", 0)]
    # The wait is capped.
    t = 1000.0
    for _ in range(8):
        assert policy.observe(t, 0.5, slow=True) is not None  # down one step...
        t += 1
        assert walk(policy, t, policy.recover_after + 1, 1.0)  # ...up again, and soon down
        t += policy.recover_after + 1
    assert policy.recover_after == MAX_RECOVER_AFTER


def test_policy_recovery_names_the_rendition_it_brings_back() -> None:
    plan = plan_720p(30)
    policy = DegradePolicy(plan, degrade_steps(plan, libx264=True), recover_after=10)
    for t in (0, 10, 20):
        policy.observe(t, 0.7, slow=True)
    ups = [policy.observe(30 + i * TICK, 1.0, slow=False) for i in range(22)]
    change = next(c for c in ups if c is not None)
    assert change.step is not None and change.step.level == 2
    assert change.warning.data["rendition"] == "720p" and change.warning.data["action"] == "drop"
    assert change.warning.data["renditions"] == ["720p", "480p", "360p"]


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
