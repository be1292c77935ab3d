"""Encode health: is the encoder keeping up, and what to do when it is not (stage: media).

Pure decisions over numbers the transcoder samples; every call takes `now`
(monotonic seconds), so tests drive time by hand. `EncodeHealth` watches encode
speed against the ingest, dropped frames and the publisher's bitrate floor;
`DegradePolicy` walks the `degrade_steps` (faster preset, lower frame rates, fewer
renditions) down while the encoder is slow and back up when it keeps up;
`NvencFallback` decides when the GPU encoder has failed often enough to encode with
libx264 instead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from golive.media.command import EncoderCapabilities
from golive.media.ladder import LadderPlan
from golive.media.profiles import AlertSpec, X264Preset

__all__ = [
    "DROP_WINDOW",
    "CounterWindow",
    "DegradeChange",
    "DegradePolicy",
    "DegradeStep",
    "EncodeHealth",
    "EncodeSample",
    "HealthReport",
    "HealthWarning",
    "NvencFallback",
    "SlowEncodeDetector",
    "degrade_steps",
]

DROP_WINDOW = 10.0  # seconds over which dropped frames are compared with ingested ones
WARNING_COOLDOWN = 60.0  # seconds between two warnings of the same code
SPEED_SLACK = 0.05  # a live encoder's speed hovers just under 1.0
NVENC_GIVE_UP = 2  # rapid failures with NVENC (out of sessions, driver trouble) before libx264


@dataclass(frozen=True, slots=True)
class HealthWarning:
    """A `live_stream.warning` the transcoder should raise."""

    code: str
    message: str
    data: dict[str, Any]
    limited: bool = True
    """At most once per `WARNING_COOLDOWN` per code; False for warnings that carry their own
    on/off state and fire once per crossing."""


class SlowEncodeDetector:
    """Encode speed over a sliding window: output media seconds per ingested media second.

    A live encoder can never run faster than its input, so ffmpeg's own `speed`
    (output time / wall time since start) creeps up to 1.0 and says little. What
    matters is whether the output keeps pace with what arrived: when it falls
    behind, latency grows by (1 - speed) seconds every second.
    """

    def __init__(self, *, min_speed: float, window: float) -> None:
        self.min_speed = min_speed
        self.window = window
        self._samples: deque[tuple[float, float, float]] = deque()

    def reset(self) -> None:
        self._samples.clear()

    def sample(self, now: float, input_s: float, output_s: float) -> float | None:
        """Record an observation; the windowed speed once a full window is covered."""
        self._samples.append((now, input_s, output_s))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()
        then, input_then, output_then = self._samples[0]
        if now - then < self.window:
            return None
        arrived = input_s - input_then
        if arrived < 0.25 * (now - then):  # the publisher stalled: not the encoder's fault
            return None
        return (output_s - output_then) / arrived

    def is_slow(self, speed: float | None) -> bool:
        return speed is not None and speed < self.min_speed - SPEED_SLACK


class CounterWindow:
    """Differences of a cumulative counter over the last `span` seconds."""

    def __init__(self, span: float) -> None:
        self.span = span
        self._points: deque[tuple[float, float]] = deque()

    def add(self, now: float, total: float) -> tuple[float, float] | None:
        """(elapsed, increase) over a full window, else None."""
        self._points.append((now, total))
        while len(self._points) > 2 and self._points[1][0] <= now - self.span:
            self._points.popleft()
        then, total_then = self._points[0]
        if now - then < self.span:
            return None
        return now - then, total - total_then


@dataclass(frozen=True, slots=True)
class EncodeSample:
    """What the transcoder knows at one health check."""

    input_seconds: float | None
    """Video media seconds fed to the running ffmpeg on the current timeline; None when
    no run is encoding the current timeline (starting, stopping, restarting)."""
    output_seconds: float | None
    """ffmpeg's `out_time` for that run, when it has reported one."""
    video_frames: int  # ingested so far, cumulative
    dropped_frames: int  # ours and ffmpeg's, cumulative
    input_bytes: int  # ingested so far, cumulative
    from_publisher: bool = True
    """Whether a publisher feeds the input (not the slate, whose bytes say nothing of it)."""


@dataclass(frozen=True, slots=True)
class HealthReport:
    slow_speed: float | None = None
    """The windowed encode speed, when it is too slow to keep latency (act on it)."""
    warnings: tuple[HealthWarning, ...] = ()
    speed: float | None = None
    """The windowed encode speed whenever a full window is covered, slow or not."""


class EncodeHealth:
    """The transcoder's health checks against the profile's alert rules."""

    def __init__(self, alerts: AlertSpec) -> None:
        self.alerts = alerts
        self.speed = SlowEncodeDetector(
            min_speed=alerts.min_encode_speed, window=alerts.slow_encode_seconds
        )
        self._frames = CounterWindow(DROP_WINDOW)
        self._drops = CounterWindow(DROP_WINDOW)
        self._ingest = CounterWindow(alerts.ingest_bitrate_seconds)
        self._low_ingest = False

    def check(self, now: float, sample: EncodeSample) -> HealthReport:
        alerts = self.alerts
        slow: float | None = None
        speed: float | None = None
        warnings: list[HealthWarning] = []
        # Encode speed against the ingest, on the current timeline only.
        if sample.input_seconds is not None and sample.output_seconds is not None:
            speed = self.speed.sample(now, sample.input_seconds, sample.output_seconds)
            if self.speed.is_slow(speed):
                slow = speed
                self.speed.reset()  # a fresh window for whatever the transcoder does about it
        # Dropped frames, ours and ffmpeg's, against the frames that came in.
        frames = self._frames.add(now, sample.video_frames)
        drops = self._drops.add(now, sample.dropped_frames)
        if frames is not None and drops is not None and frames[1] > 0:
            ratio = drops[1] / frames[1]
            if ratio > alerts.max_dropped_frames_ratio:
                warnings.append(HealthWarning(
                    "dropped_frames",
                    f"{ratio:.1%} of the video frames were dropped in the last "
                    f"{DROP_WINDOW:.0f} s",
                    {"ratio": round(ratio, 4)},
                ))  # fmt: skip
        # The publisher's bitrate floor: one warning per drop below it, judged over a window
        # a publisher fed from its start (the slate's still picture is no publisher's).
        if not sample.from_publisher:
            self._ingest = CounterWindow(alerts.ingest_bitrate_seconds)
            self._low_ingest = False
        elif alerts.min_ingest_bitrate_kbps > 0:
            ingest = self._ingest.add(now, sample.input_bytes)
            if ingest is not None:
                kbps = ingest[1] * 8 / 1000 / ingest[0]
                if kbps < alerts.min_ingest_bitrate_kbps and not self._low_ingest:
                    self._low_ingest = True
                    warnings.append(HealthWarning(
                        "low_ingest_bitrate",
                        f"the publisher sends {kbps:.0f} kbit/s, under the profile's floor "
                        f"of {alerts.min_ingest_bitrate_kbps} kbit/s",
                        {"kbps": round(kbps), "floor_kbps": alerts.min_ingest_bitrate_kbps},
                        limited=False,
                    ))  # fmt: skip
                elif kbps >= alerts.min_ingest_bitrate_kbps:
                    self._low_ingest = False
        return HealthReport(slow, tuple(warnings), speed)


# Degrading ---------------------------------------------------------------------------

RECOVER_AFTER = 30.0
"""Seconds of keeping up at a degraded step before trying the next better one."""
MAX_RECOVER_AFTER = 600.0
RELAPSE_SECONDS = 120.0
"""Slow again this soon after a step up: that step was too much; wait twice as long next time."""

DegradeAction = Literal["full", "preset", "frame_rate", "drop"]

_FASTER_PRESET: dict[str, X264Preset] = {
    "veryslow": "superfast", "slower": "superfast", "slow": "superfast", "medium": "superfast",
    "fast": "superfast", "faster": "superfast", "veryfast": "superfast", "superfast": "ultrafast",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DegradeStep:
    """One step of making the ladder cheaper to encode, cumulative over the steps before it.

    Like a broadcast encoder: first a faster x264 preset (same ladder, a little less
    quality per bit), then a lower frame rate on the lower rungs, and only then one
    rendition after another given up, most expensive first.
    """

    level: int
    action: DegradeAction
    preset: X264Preset | None  # the faster libx264 preset; None: the profile's own
    frame_rate_divisors: tuple[tuple[str, int], ...] = ()
    dropped: tuple[str, ...] = ()

    def apply(self, plan: LadderPlan) -> LadderPlan:
        """`plan` (the full ladder) as this step encodes it."""
        if self.level == 0:
            return plan
        return plan.degraded(
            preset=self.preset,
            frame_rate_divisors=dict(self.frame_rate_divisors),
            dropped=self.dropped,
        )

    def describe(self) -> str:
        if self.action == "preset":
            return f"x264 preset {self.preset}"
        if self.action == "frame_rate":
            rungs = ", ".join(f"{name} /{divisor}" for name, divisor in self.frame_rate_divisors)
            return f"lower frame rate on {rungs}"
        if self.action == "drop":
            return f"{self.dropped[-1]} given up"
        return "the full ladder"


def degrade_steps(plan: LadderPlan, *, libx264: bool,
                  captions: bool = False) -> tuple[DegradeStep, ...]:
    """Every step from the full ladder (level 0) to the cheapest one the profile allows.

    `captions`: the source's pictures carry CEA-608 captions, so no rung's frame rate is
    lowered: the encoder writes each kept picture's caption data, and a rung at half the
    rate would lose the data of every other picture (garbled captions)."""
    steps = [DegradeStep(0, "full", None)]
    if plan.audio_only:
        return tuple(steps)  # one AAC encode: nothing to make cheaper
    preset: X264Preset | None = None
    if libx264 and plan.x264_preset in _FASTER_PRESET:
        preset = _FASTER_PRESET[plan.x264_preset]
        steps.append(DegradeStep(len(steps), "preset", preset))
    encoded = sorted(
        (r for r in plan.renditions if not r.passthrough), key=lambda r: r.pixel_rate, reverse=True
    )
    divisors = () if captions else tuple(
        (r.name, d) for r in encoded[1:] if (d := plan.frame_rate_divisor(r.name)) > 1
    )
    if divisors:
        steps.append(DegradeStep(len(steps), "frame_rate", preset, divisors))
    if plan.profile.fallback.drop_top_rendition_on_slow_encode:
        current = plan
        dropped: tuple[str, ...] = ()
        while current.can_drop_rendition():
            current, victim = current.without_top_rendition()
            dropped = (*dropped, victim.name)
            steps.append(DegradeStep(len(steps), "drop", preset, divisors, dropped))
    return tuple(steps)


@dataclass(frozen=True, slots=True)
class DegradeChange:
    """What the policy decided at one measurement: a new step, or a warning alone."""

    warning: HealthWarning
    step: DegradeStep | None = None  # the step to encode at now; None: keep the current one


class DegradePolicy:
    """Walks the degrade steps down when the encoder is slow, and back up when it keeps up.

    Down one step per slow window (the detector starts a fresh window after each
    change, so a step has a full window to show its effect). Up one step after
    `recover_after` seconds of keeping up; a step up followed by slowness within
    `RELAPSE_SECONDS` doubles that wait (up to `MAX_RECOVER_AFTER`), so a machine
    that is just short of the better step does not flap between the two.
    Pure: every call takes `now`.

    Each change is a `live_stream.warning`: code `slow_encode` (a step down) or
    `encode_recovered` (a step up), data `speed`, `step` (0 is the full ladder),
    `action` (preset, frame_rate or drop: what was done or undone), `preset`, `fps`
    (frame rate per rendition encoded now), `rendition` (the one given up or brought
    back, else None) and `renditions` (those encoded now).
    """

    def __init__(
        self,
        plan: LadderPlan,
        steps: tuple[DegradeStep, ...],
        *,
        recover_after: float = RECOVER_AFTER,
    ) -> None:
        if not steps or steps[0].level != 0:
            raise ValueError("the steps start with the full ladder")
        self.plan = plan
        self.steps = steps
        self.level = 0
        self.recover_after = recover_after
        self._good_since: float | None = None
        self._last_up: float | None = None

    @property
    def step(self) -> DegradeStep:
        return self.steps[self.level]

    def observe(self, now: float, speed: float | None, *, slow: bool) -> DegradeChange | None:
        """One health check: `speed` is the windowed encode speed (None while unknown)."""
        if slow and speed is not None:
            self._good_since = None
            if self.level + 1 >= len(self.steps):
                return DegradeChange(HealthWarning(
                    "slow_encode",
                    f"the encoder runs at {speed:.2f}x real time and latency is growing; "
                    "no cheaper step is left",
                    {"speed": round(speed, 3), "step": self.level},
                ))  # fmt: skip
            if self._last_up is not None and now - self._last_up < RELAPSE_SECONDS:
                self.recover_after = min(MAX_RECOVER_AFTER, self.recover_after * 2)
            self.level += 1
            return self._change("slow_encode", speed)
        if speed is None:
            self._good_since = None  # starting, restarting, or the publisher stalled
            return None
        if self._good_since is None:
            self._good_since = now
            return None
        if self.level > 0 and now - self._good_since >= self.recover_after:
            self.level -= 1
            self._last_up = now
            self._good_since = None
            return self._change("encode_recovered", speed)
        return None

    def _change(self, code: str, speed: float) -> DegradeChange:
        step = self.step
        plan = step.apply(self.plan)
        before = self.steps[self.level - 1 if code == "slow_encode" else self.level + 1]
        if code == "slow_encode":
            what = f"step {step.level}: {step.describe()}"
            message = f"the encoder runs at {speed:.2f}x real time; {what} to keep latency"
        else:
            what = f"back to step {step.level} ({step.describe()})"
            message = f"the encoder kept up at {speed:.2f}x real time; {what}"
        changed = set(before.dropped) ^ set(step.dropped)
        data: dict[str, Any] = {
            "speed": round(speed, 3),
            "step": step.level,
            "action": (step if code == "slow_encode" else before).action,
            "preset": plan.x264_preset,
            "fps": {r.name: r.frame_rate for r in plan.renditions},
            "rendition": next(iter(changed), None),
            "renditions": list(plan.names),
        }
        # Each step is news, however soon after the last one.
        return DegradeChange(HealthWarning(code, message, data, limited=False), step)


def keeping_frame_rates(policy: DegradePolicy, *, libx264: bool) -> DegradePolicy | None:
    """`policy` without its frame-rate step, for a source whose captions began while it runs
    (see `degrade_steps`), at the step that encodes what the current one does with every
    rung at its full rate; None when `policy` has no frame-rate step."""
    if not any(step.action == "frame_rate" for step in policy.steps):
        return None
    steps = degrade_steps(policy.plan, libx264=libx264, captions=True)
    now = policy.step
    same = [s for s in steps if (s.preset, s.dropped) == (now.preset, now.dropped)]
    kept = DegradePolicy(policy.plan, steps, recover_after=policy.recover_after)
    kept.level = same[0].level if same else min(policy.level, len(steps) - 1)
    return kept


class NvencFallback:
    """Counts NVENC runs that die young; says when to give up the GPU for libx264.

    NVENC that fails to start (no free encoder session, driver trouble) keeps failing,
    while libx264 on the same machine would work.
    """

    def __init__(self, give_up_after: int = NVENC_GIVE_UP) -> None:
        self.give_up_after = give_up_after
        self.failures = 0

    def rapid_failure(self, capabilities: EncoderCapabilities) -> bool:
        """Count one rapid failure of a run; True when it is time to encode with libx264."""
        if not capabilities.h264_nvenc:
            return False
        self.failures += 1
        return self.failures >= self.give_up_after and capabilities.libx264
