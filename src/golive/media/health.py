"""Encode health: is the encoder keeping up, and what to do when it is not (stage: media).

Pure decisions over numbers the transcoder samples; every call takes `now`
(monotonic seconds), so tests drive time by hand. `EncodeHealth` watches encode
speed against the ingest, dropped frames and the publisher's bitrate floor;
`slow_encode_action` picks the rendition to give up; `NvencFallback` decides when
the GPU encoder has failed often enough to encode with libx264 instead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from golive.media.command import EncoderCapabilities
from golive.media.ladder import LadderPlan
from golive.media.profiles import AlertSpec

__all__ = [
    "DROP_WINDOW",
    "CounterWindow",
    "EncodeHealth",
    "EncodeSample",
    "HealthReport",
    "HealthWarning",
    "NvencFallback",
    "SlowEncodeAction",
    "SlowEncodeDetector",
    "slow_encode_action",
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


@dataclass(frozen=True, slots=True)
class HealthReport:
    slow_speed: float | None = None
    """The windowed encode speed, when it is too slow to keep latency (act on it)."""
    warnings: tuple[HealthWarning, ...] = ()


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
        # The publisher's bitrate floor: one warning per drop below it.
        if alerts.min_ingest_bitrate_kbps > 0:
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
        return HealthReport(slow, tuple(warnings))


@dataclass(frozen=True, slots=True)
class SlowEncodeAction:
    """What to do about an encoder that cannot keep up."""

    warning: HealthWarning
    reduced: LadderPlan | None = None  # the ladder to restart with; None: keep the ladder
    dropped: str | None = None  # the rendition given up


def slow_encode_action(plan: LadderPlan, speed: float) -> SlowEncodeAction:
    """Drop the most expensive rendition when the profile allows it, else only warn."""
    if not plan.profile.fallback.drop_top_rendition_on_slow_encode or not plan.can_drop_rendition():
        return SlowEncodeAction(HealthWarning(
            "slow_encode",
            f"the encoder runs at {speed:.2f}x real time and latency is growing; "
            "no rendition can be dropped",
            {"speed": round(speed, 3)},
        ))  # fmt: skip
    reduced, victim = plan.without_top_rendition()
    warning = HealthWarning(
        "slow_encode",
        f"the encoder runs at {speed:.2f}x real time; dropped {victim.name} to keep latency",
        {"speed": round(speed, 3), "dropped": victim.name, "renditions": list(reduced.names)},
        limited=False,  # each drop is news, however soon after the last one
    )
    return SlowEncodeAction(warning, reduced, victim.name)


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
