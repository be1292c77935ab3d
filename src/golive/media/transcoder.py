"""One supervised ffmpeg per broadcast: FLV in on stdin, a CMAF stream per rendition out (media).

`Transcoder.push` never blocks ingest: tags go to a bounded `FlvInput` (`feed`),
which drops whole GOPs when ffmpeg cannot keep up. Each ffmpeg run (`process`)
reads its outputs into init segments and fragments and hands them to
`TranscoderEvents`. When ffmpeg dies it is restarted within a second on a fresh
timeline and `on_restart` tells the packager to mark a discontinuity. When it
cannot keep up with real time it degrades step by step (`health.DegradePolicy`: a
faster preset, lower frame rates on the lower rungs, then renditions given up, each
reported with `on_rendition_dropped` so the packager marks them as gaps) and climbs
back when it keeps up again; NVENC that keeps failing is swapped for libx264.

A preset step restarts ffmpeg (x264 cannot change it mid-stream). A frame-rate step,
giving a rung up or bringing it back does not: every run's graph has gates per rung
(`command.gate_commands`), set over ZeroMQ to let every frame, one frame in two, or
none through from the next keyframe instant, so the renditions go on without a
discontinuity. The packager hears of a given-up rung once its output reached that
instant, so its last segment is whole. Should a command not be answered, the step
falls back to a restart. (An ffmpeg without ZeroMQ restarts at every step.)
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any, Protocol

import zmq
import zmq.asyncio

from golive.core import Cooldown
from golive.formats import Fragment, InitSegment, MediaTag
from golive.media.capabilities import detect_capabilities
from golive.media.command import (
    ANALYSIS_OUTPUT,
    CPU_ONLY,
    WEBRTC_OUTPUT,
    EncoderCapabilities,
    GateState,
    WebRtcRendition,
    build_command,
    degraded_webrtc,
    gate_commands,
    next_keyframe_time,
    webrtc_rate_gated,
)
from golive.media.feed import FlvInput
from golive.media.health import (
    WARNING_COOLDOWN,
    DegradePolicy,
    DegradeStep,
    EncodeHealth,
    EncodeSample,
    HealthWarning,
    NvencFallback,
    SlowEncodeDetector,
    degrade_steps,
    keeping_frame_rates,
)
from golive.media.ladder import LadderPlan
from golive.media.levels import LevelFacts, LevelMeter, Reading
from golive.media.process import FfmpegRun, LogLimiter, RunCallbacks, spawn
from golive.media.progress import EncodeProgress

__all__ = [
    "EncoderCapabilities",
    "SlowEncodeDetector",
    "Transcoder",
    "TranscoderEvents",
    "TranscoderStats",
    "detect_capabilities",
]

log = logging.getLogger(__name__)

_STOP_GRACE = 1.5  # seconds ffmpeg gets to flush after stdin closes
_RESTART_GRACE = 0.5
_HEALTHY_RUN = 10.0  # a run shorter than this (or without output) is a rapid failure
_MAX_RAPID_FAILURES = 8
_BACKOFF_FIRST = 0.1
_BACKOFF_CAP = 1.0
_MONITOR_INTERVAL = 0.5
_STALE_PROGRESS = 2.0  # seconds without a progress report (ffmpeg sends one every 0.5 s)
_GATE_MARGIN = 1.0  # media seconds between ffmpeg's output and the keyframe a gate acts at
_GATE_MARGIN_LOOKAHEAD = 3.0  # the same with x264's lookahead (standard latency): frames
# pass the gate up to rc-lookahead frames before they come out
_GATE_REPLY = 3.0  # seconds ffmpeg gets at least to answer a gate command
_GATE_REPLY_FRAMES = 8  # or this many input frames' time at its measured speed
_GATE_REPLY_CAP = 30.0  # but never longer: then the gates are given up for a restart
_GATE_POLL = 0.25  # how often a wait for a gate's answer looks for signs of life


def gate_reply_seconds(speed: float | None, frame_rate: float) -> float:
    """How long ffmpeg gets to answer one gate command before the step restarts it.

    The `zmq` filter reads commands only as a frame passes it, so the answer takes a
    frame's time at the encoder's speed: a few milliseconds in a healthy encoder, over
    3 s in one starved to a hundredth of real time at 30 fps, which is exactly when the
    degrade steps send gates. A fixed 3 s turned such steps into restarts (and
    discontinuities) that the gates exist to avoid. `speed` is the health check's
    measured speed (None before one: the cap); `frame_rate` the frames per media second
    reaching the filter."""
    if speed is None or speed <= 0 or frame_rate <= 0:
        return _GATE_REPLY_CAP
    return min(_GATE_REPLY_CAP, max(_GATE_REPLY, _GATE_REPLY_FRAMES / (frame_rate * speed)))


async def await_gate_reply(socket: zmq.asyncio.Socket, life: Callable[[], object],
                           reply_s: float, cap: float = _GATE_REPLY_CAP) -> bool:
    """True once `socket` holds ffmpeg's answer to a gate command; False when the encoder
    went `reply_s` (`gate_reply_seconds`) without a sign of life, or `cap` passed.

    `life()` returns something that changes with each sign of life (more frames or bytes
    in ffmpeg's progress report, a new fragment). The measured speed is an average: an
    encoder starved harder than it says, or just restarted, can take longer than
    `reply_s` over a frame while it still works, and restarting it for that is the
    discontinuity the gates avoid. One that stopped working (hung) gives up after
    `reply_s` as before."""
    loop = asyncio.get_running_loop()
    start = last = loop.time()
    seen = life()
    while True:
        now = loop.time()
        left = min(start + cap, last + reply_s) - now
        if left <= 0:
            return False
        if await socket.poll(max(1, int(min(left, _GATE_POLL) * 1000))):
            return True
        sign = life()
        if sign != seen:
            seen, last = sign, loop.time()


class TranscoderEvents(Protocol):
    """What a transcoder reports; called on the event loop, must not block."""

    def on_init(self, rendition: str, init: InitSegment) -> None: ...

    def on_fragment(self, rendition: str, fragment: Fragment, origin: float | None) -> None:
        """`origin`: when the input for the run's media time 0 reached golive (Unix
        seconds; `InputFeed.origin`), so `origin + fragment.decode_time` dates it."""

    def on_restart(self, attempt: int, reason: str) -> None: ...

    def on_rendition_dropped(self, rendition: str, reason: str) -> None: ...

    def on_rendition_restored(self, rendition: str) -> None: ...

    def on_progress(self, progress: EncodeProgress) -> None: ...

    def on_warning(self, code: str, message: str, data: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class TranscoderStats:
    restarts: int
    renditions: tuple[str, ...]
    encoder: str
    running: bool
    failed: bool
    pid: int | None
    input_bytes: int
    dropped_input_bytes: int
    dropped_video_frames: int
    last_progress: EncodeProgress | None
    # Output media seconds per ingested media second over the health window (1.0 keeps up);
    # None until a window is covered.
    speed: float | None = None
    # The ingest's audio level and picture, measured in ffmpeg's graph (`media.levels`).
    levels: LevelFacts | None = None
    # How much later than its program date the newest input arrived (`InputFeed.date_lag`).
    input_date_lag: float | None = None


class Transcoder:
    """Runs and supervises the ffmpeg ladder of one broadcast."""

    def __init__(
        self,
        *,
        ffmpeg: str,
        plan: LadderPlan,
        events: TranscoderEvents,
        stream_id: str,
        capabilities: EncoderCapabilities | None = None,
        max_input_buffer: int = 8 * 1024 * 1024,
        webrtc: WebRtcRendition | None = None,
        from_publisher: Callable[[], bool] | None = None,
        captions: Callable[[], bool] | None = None,
    ) -> None:
        """`from_publisher` says whether a publisher feeds the input now (not the slate):
        the publisher's bitrate floor is judged only then. `captions` says whether the
        source's pictures carry captions: then no rung's frame rate is lowered under load
        (`degrade_steps`); tell `captions_began` when they begin."""
        if max_input_buffer < 64 * 1024:
            raise ValueError("max_input_buffer must be at least 64 KiB")
        self._ffmpeg = ffmpeg
        self._full_plan = plan  # the ladder the broadcast was planned with
        self._plan = plan  # the ladder being produced: `_full_plan` at the degrade step
        # What ffmpeg runs: `_plan` with its given-up rungs still in the graph, gated off,
        # and (with gates) every rung at its full frame rate, lowered by its gate
        # (`_rate_divisors`).
        self._encode_plan = plan
        self._gated: frozenset[str] = frozenset()
        self._rate_divisors: dict[str, int] = {}  # rendition or WEBRTC_OUTPUT -> divisor
        # The running ffmpeg may have re-made its graph for a spliced input: its gates
        # count frames from an unknown point, so the next step restarts it instead.
        self._gates_lost = False
        self._control_dir: Path | None = None
        self._zmq: zmq.asyncio.Context | None = None
        self._gate_task: asyncio.Task[None] | None = None
        # Rungs whose gates close at a keyframe instant: told to the packager once their
        # output got there, so their playlist keeps every real part up to it.
        self._pending_drops: dict[str, tuple[float, str]] = {}  # name -> (instant, reason)
        self._captions = captions
        self._degrade = DegradePolicy(
            plan,
            degrade_steps(plan, libx264=False, captions=self._carries_captions()),
            recover_after=plan.profile.fallback.recover_after_seconds,
        )
        self._events = events
        self.stream_id = stream_id
        self._capabilities = capabilities
        self._from_publisher = from_publisher
        # WHEP playback's extra output, reported as WEBRTC_OUTPUT: as planned, and as the
        # degrade step being encoded makes it (`degraded_webrtc`).
        self._full_webrtc = self._webrtc = webrtc
        if webrtc is not None and plan.audio_only:
            raise ValueError("an audio-only ladder has no WebRTC output")
        self._input = FlvInput(limit=max_input_buffer, has_audio=plan.has_audio,
                               has_video=not plan.audio_only, align_start=True,
                               fill_silence=True)
        self._run: FfmpegRun | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._starting: asyncio.Future[None] | None = None
        self._started = False
        self._closing = False
        self._failed = False
        self._restarts = 0
        self._rapid_failures = 0
        self._encoder_dropped_frames = 0  # ffmpeg's own, from its progress reports
        self._last_progress: EncodeProgress | None = None
        self._speed: float | None = None  # the health check's latest measured windowed speed
        # (run, when, input seconds, output seconds) at the newest progress report
        self._speed_sample: tuple[FfmpegRun, float, float, float] | None = None
        alerts = plan.profile.alerts
        if plan.audio_only:
            # The ingest floor is a picture's (150 kbit/s by default): a voice at 64 kbit/s
            # is no fault. Silence and stalls are watched for all the same.
            alerts = alerts.model_copy(update={"min_ingest_bitrate_kbps": 0})
        self._health = EncodeHealth(alerts)
        self._levels = LevelMeter(silence_dbfs=alerts.audio_silence_dbfs,
                                  clip_window=alerts.audio_clipping_seconds)
        self._nvenc = NvencFallback()
        self._cooldown = Cooldown(WARNING_COOLDOWN)
        self._log_limiter = LogLimiter(time.monotonic())
        self._callbacks = RunCallbacks(
            on_init=functools.partial(self._call, self._events.on_init),
            on_fragment=self._fragment,
            on_progress=self._progress,
            monotonic=time.monotonic,
            on_levels=self._on_levels,
        )

    # Public -------------------------------------------------------------------------

    @property
    def plan(self) -> LadderPlan:
        """The ladder now being produced (cheaper than the first one while degraded)."""
        return self._plan

    @property
    def degrade_level(self) -> int:
        """The degrade step encoded now: 0 for the full ladder."""
        return self._degrade.level

    @property
    def pid(self) -> int | None:
        return self._run.pid if self._run is not None else None

    @property
    def publisher_feeding(self) -> bool:
        """Whether a publisher feeds the input now (not the slate): the ingest bitrate
        floor is judged only then."""
        return self._from_publisher() if self._from_publisher is not None else True

    @property
    def stats(self) -> TranscoderStats:
        caps = self._capabilities or CPU_ONLY
        return TranscoderStats(
            restarts=self._restarts,
            renditions=self._plan.names,
            encoder=caps.video_encoder if caps.libx264 or caps.h264_nvenc else "none",
            running=self.pid is not None,
            failed=self._failed,
            pid=self.pid,
            input_bytes=self._input.input_bytes,
            dropped_input_bytes=self._input.dropped_bytes,
            dropped_video_frames=self._dropped_frames,
            last_progress=self._last_progress,
            speed=self._speed,
            levels=self._levels.facts(time.monotonic()),
            input_date_lag=self._input.feed.date_lag,
        )

    async def start(self) -> None:
        """Start ffmpeg; raises if it cannot be started at all (missing binary, bad plan).
        A launch that `stop` cuts short is no failure, whatever tearing it down raised."""
        if self._started or self._closing:
            return
        self._started = True
        self._starting = asyncio.ensure_future(self._start())
        try:
            await self._starting
        except Exception as exc:
            if not self._closing:
                raise
            log.info("ffmpeg launch ended by the stop stream_id=%s error=%r",
                     self.stream_id, exc)

    def push(self, tag: MediaTag) -> None:
        """Queue one tag for ffmpeg; never blocks, drops whole GOPs when ffmpeg falls behind."""
        if self._closing or self._failed:
            return
        result = self._input.push(tag, time.time())
        if result.silence_began:
            log.info("the source's sound stopped while its picture goes on: filling silence "
                     "stream_id=%s after_ms=%d", self.stream_id, self._input.fill_after_ms)
        if result.timestamps_went_back:
            self._end_current("the publisher's timestamps went back")
        if result.overflow:
            self._warn(HealthWarning(
                "input_overflow",
                "the encoder is not reading its input fast enough; dropping "
                + ("audio" if self._full_plan.audio_only else "video until the next keyframe"),
                {"buffered_bytes": self._input.feed.size},
            ))  # fmt: skip

    @property
    def fills_silence(self) -> bool:
        """Whether the input fills gaps in the source's sound with silence (AAC with an LC
        core, MPEG audio, Opus, AC-3, E-AC-3: `golive.formats.flv_silence`)."""
        return self._input.fills_silence

    def sound_gone(self) -> None:
        """A spliced input sends no sound: silence fills it from its first picture on."""
        self._input.sound_gone()

    def input_reconfigured(self) -> None:
        """A spliced input brings a new picture or sound configuration: ffmpeg may re-make
        its filter graph for it, and a re-made graph counts frames from 0 again."""
        self._gates_lost = True

    def restart(self, reason: str = "reconnect") -> None:
        """Start a fresh ffmpeg timeline from the next keyframe (e.g. after a publisher reconnect)."""
        if self._closing or self._failed:
            return
        self._input.new_timeline()
        self._end_current(reason)

    async def stop(self) -> None:
        """Close stdin, give ffmpeg a moment to flush, then kill it; idempotent and cancel-safe."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    # Supervision --------------------------------------------------------------------

    @property
    def _dropped_frames(self) -> int:
        return self._input.dropped_frames + self._encoder_dropped_frames

    async def _start(self) -> None:
        try:
            if self._capabilities is None:
                self._capabilities = await detect_capabilities(self._ffmpeg)
            if self._closing:
                return
            self._reset_degrade()
            self._run = await self._launch()
        except BaseException:
            self._failed = not self._closing
            raise
        self._supervisor = asyncio.create_task(
            self._supervise(), name=f"transcoder-{self.stream_id}"
        )
        self._monitor = asyncio.create_task(
            self._watch_health(), name=f"transcoder-health-{self.stream_id}"
        )

    @property
    def gated_rungs(self) -> frozenset[str]:
        """The rungs whose gates in the running ffmpeg are not open: given up (still in its
        graph), or at a lowered frame rate."""
        lowered = {name for name, d in self._rate_divisors.items() if d > 1}
        return self._gated | (lowered - {WEBRTC_OUTPUT})

    @property
    def _control(self) -> str | None:
        """The runs' gate command address (an ipc:// socket in a private directory)."""
        if self._control_dir is None:
            return None
        return f"ipc://{self._control_dir}/gates"

    async def _launch(self) -> FfmpegRun:
        caps = self._capabilities or CPU_ONLY
        # Without gates a given-up rung is left out of the command (a restart each step).
        plan = self._encode_plan if caps.rung_gates else self._plan
        webrtc, gated = self._webrtc, self._gated
        divisors = dict(self._rate_divisors) if caps.rung_gates else None
        self._gates_lost = False
        if self._control_dir is None and caps.rung_gates:
            self._control_dir = Path(tempfile.mkdtemp(prefix="golive-gates-"))
        control = self._control if caps.rung_gates else None

        def command(output_fds: Mapping[str, int]) -> list[str]:
            return build_command(
                plan, ffmpeg=self._ffmpeg, output_fds=dict(output_fds), capabilities=caps,
                webrtc=webrtc, control=control, gated=gated, rate_divisors=divisors,
            )  # fmt: skip

        log.info(
            "ffmpeg starting stream_id=%s renditions=%s encoder=%s",
            self.stream_id,
            ",".join(plan.names),
            "aac" if plan.audio_only else caps.video_encoder,
        )
        run = await spawn(
            command=command,
            outputs=[*plan.names, *([WEBRTC_OUTPUT] if webrtc is not None else []),
                     ANALYSIS_OUTPUT],
            feed=self._input.feed,
            stream_id=self.stream_id,
            callbacks=self._callbacks,
            log_limiter=self._log_limiter,
            analysis=ANALYSIS_OUTPUT,
        )
        self._health.speed.reset()
        return run

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            run = self._run
            assert run is not None
            await run.wait()
            if self._closing:
                return
            if run.stop_reason is not None:
                reason, delay = run.stop_reason, 0.0
                self._rapid_failures = 0
            else:
                reason = run.exit_reason()
                lived = loop.time() - run.started_at
                rapid = lived < _HEALTHY_RUN or run.fragments == 0
                self._rapid_failures = self._rapid_failures + 1 if rapid else 1
                log.warning(
                    "ffmpeg died stream_id=%s reason=%s lived=%.1fs failures=%d",
                    self.stream_id,
                    reason,
                    lived,
                    self._rapid_failures,
                )
                if self._rapid_failures > _MAX_RAPID_FAILURES:
                    self._give_up(reason)
                    return
                if rapid:
                    self._maybe_leave_nvenc(reason)
                delay = min(_BACKOFF_CAP, _BACKOFF_FIRST * 2 ** (self._rapid_failures - 1))
                if run.feed is self._input.feed:  # the old timeline is over: restart at a keyframe
                    self._input.new_timeline()
            self._run = None
            self._drop_pending()
            while True:
                if delay:
                    await asyncio.sleep(delay)
                if self._closing:
                    return
                try:
                    self._run = await self._launch()
                    break
                except Exception as exc:  # the supervisor must outlive a failed launch
                    log.error("ffmpeg launch failed stream_id=%s error=%r", self.stream_id, exc)
                    self._rapid_failures += 1
                    if self._rapid_failures > _MAX_RAPID_FAILURES:
                        self._give_up(f"cannot start ffmpeg: {exc}")
                        return
                    delay = _BACKOFF_CAP
            self._restarts += 1
            log.info(
                "ffmpeg restarted stream_id=%s attempt=%d reason=%s",
                self.stream_id,
                self._restarts,
                reason,
            )
            self._call(self._events.on_restart, self._restarts, reason)

    def _end_current(self, reason: str) -> None:
        self._drop_pending()  # a new run encodes them gated from its first frame on
        if self._run is not None:
            self._run.end(reason, grace=_RESTART_GRACE)

    def _maybe_leave_nvenc(self, reason: str) -> None:
        caps = self._capabilities
        if caps is None or not self._nvenc.rapid_failure(caps):
            return
        self._capabilities = dc_replace(CPU_ONLY, rung_gates=caps.rung_gates)
        self._reset_degrade()
        self._call(
            self._events.on_warning,
            "nvenc_unavailable",
            f"the GPU encoder keeps failing ({reason}); encoding with libx264 instead",
            {"reason": reason},
        )

    def _give_up(self, reason: str) -> None:
        self._failed = True
        self._input.feed.close()
        log.error("ffmpeg keeps failing, giving up stream_id=%s reason=%s", self.stream_id, reason)
        self._call(
            self._events.on_warning,
            "transcoder_failed",
            f"the encoder failed {self._rapid_failures} times in a row and was stopped: {reason}",
            {"reason": reason, "failures": self._rapid_failures},
        )

    async def _stop(self) -> None:
        self._closing = True
        self._input.feed.close()
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()  # a launch in flight kills its process on the way out
            await asyncio.gather(self._starting, return_exceptions=True)
        for task in (self._monitor, self._supervisor):
            if task is not None:
                task.cancel()
        run = self._run
        try:
            if run is not None:
                run.end("stopped", grace=_STOP_GRACE)
                await run.wait()
        finally:
            if run is not None:  # cancelled half-way
                run.kill()
            for task in (self._monitor, self._supervisor):
                if task is not None:
                    await asyncio.gather(task, return_exceptions=True)
            if self._gate_task is not None:
                self._gate_task.cancel()
                await asyncio.gather(self._gate_task, return_exceptions=True)
            if self._zmq is not None:
                self._zmq.destroy(linger=0)
            if self._control_dir is not None:
                shutil.rmtree(self._control_dir, ignore_errors=True)
            log.info("transcoder stopped stream_id=%s restarts=%d", self.stream_id, self._restarts)

    # Health -------------------------------------------------------------------------

    def _progress(self, report: EncodeProgress) -> None:
        self._last_progress = report
        run = self._run
        if run is not None and run.last_progress is report and report.out_time is not None:
            # The input that had arrived when ffmpeg said how far it got: the two times of
            # one instant. Pairing `out_time` with the input at the next health check
            # instead would err by up to a progress period (0.5 s) per sample.
            self._speed_sample = (run, time.monotonic(), run.feed.media_seconds, report.out_time)
        self._call(self._events.on_progress, report)

    def _on_levels(self, readings: list[Reading]) -> None:
        now = time.monotonic()
        for reading in readings:
            self._levels.add(now, reading)

    async def _watch_health(self) -> None:
        while not self._closing:
            await asyncio.sleep(_MONITOR_INTERVAL)
            self._check_health(time.monotonic())

    def _check_health(self, now: float) -> None:
        if self._failed:
            return
        run = self._run
        input_s = output_s = None
        if run is not None and run.stop_reason is None and run.feed is self._input.feed:
            sample = self._speed_sample
            if sample is not None and sample[0] is run:
                _, when, input_s, output_s = sample
                if now - when > _STALE_PROGRESS:  # ffmpeg stopped reporting: it is stuck
                    input_s = run.feed.media_seconds
            elif now - run.started_at >= self._health.speed.window:
                # A speed window since it started and not one output time yet: a run
                # starved from its start (a restart on a saturated machine) has encoded
                # nothing, and says so by saying nothing. Without this it never counted
                # as slow, and the degrade steps stopped at the step that restarted it.
                input_s, output_s = run.feed.media_seconds, 0.0
        progress = run.last_progress if run is not None and run.stop_reason is None else None
        if run is not None and progress is not None:
            if progress.drop_frames > run.drop_frames:
                self._encoder_dropped_frames += progress.drop_frames - run.drop_frames
                run.drop_frames = progress.drop_frames
        report = self._health.check(now, EncodeSample(
            input_seconds=input_s,
            output_seconds=output_s,
            video_frames=self._input.video_frames,
            dropped_frames=self._dropped_frames,
            input_bytes=self._input.input_bytes,
            from_publisher=self.publisher_feeding,
        ))  # fmt: skip
        if report.speed is not None:  # None while a fresh window fills (after a reset)
            self._speed = report.speed
        before = self._degrade.step
        change = self._degrade.observe(now, report.speed, slow=report.slow_speed is not None)
        if change is not None:
            if change.step is not None:
                self._degrade_to(before, change.step, change.warning)
            else:
                self._warn(change.warning)
        for warning in report.warnings:
            self._warn(warning)

    def _reset_degrade(self) -> None:
        """Degrade steps for the encoder in use, from the full ladder (a new encoder: step 0)."""
        libx264 = (self._capabilities or CPU_ONLY).video_encoder == "libx264"
        plan = self._full_plan
        self._degrade = DegradePolicy(
            plan,
            degrade_steps(plan, libx264=libx264, captions=self._carries_captions()),
            recover_after=plan.profile.fallback.recover_after_seconds,
        )
        self._plan = self._encode_plan = self._full_plan
        self._gated = frozenset()
        self._rate_divisors = {}
        self._webrtc = self._full_webrtc

    def _carries_captions(self) -> bool:
        return self._captions is not None and self._captions()

    def captions_began(self) -> None:
        """The source's pictures began to carry captions: the frame-rate step is left out
        from now on, and a rung running at a lower rate goes back to its full one."""
        libx264 = (self._capabilities or CPU_ONLY).video_encoder == "libx264"
        kept = keeping_frame_rates(self._degrade, libx264=libx264)
        if kept is None:
            return
        before = self._degrade.step
        self._degrade = kept
        step = kept.step
        if step.frame_rate_divisors == before.frame_rate_divisors:
            return
        plan = step.apply(self._full_plan)
        self._degrade_to(before, step, HealthWarning(
            "captions_frame_rate",
            "the source's pictures carry captions: every rung goes back to its full frame "
            "rate (at half the rate a rung loses half of the caption data); step "
            f"{step.level}: {step.describe()}",
            {"step": step.level, "action": "frame_rate", "preset": plan.x264_preset,
             "fps": {r.name: r.frame_rate for r in plan.renditions},
             "renditions": list(plan.names)},
            limited=False))

    def _degrade_to(self, previous: DegradeStep, step: DegradeStep, warning: HealthWarning) -> None:
        """Encode `step` from the next keyframe on; renditions it lacks become gaps.

        A step that keeps the preset sets the gates of the running ffmpeg (a rung given
        up or brought back, a frame rate lowered or restored); a preset step restarts it
        with the new settings, its gates starting as the step has them.
        """
        gates = (self._capabilities or CPU_ONLY).rung_gates
        plan = step.apply(self._full_plan)
        # With gates ffmpeg runs every rung at its full rate, and the gates lower it.
        encode = dc_replace(
            step, dropped=(), frame_rate_divisors=() if gates else step.frame_rate_divisors
        ).apply(self._full_plan)
        before, after = set(self._plan.names), set(plan.names)
        log.warning(
            "encoder degrade stream_id=%s step=%d renditions=%s preset=%s",
            self.stream_id,
            self._degrade.level,
            ",".join(plan.names),
            plan.x264_preset,
        )
        gates_only = (
            previous.preset == step.preset
            and gates
            and self._run is not None
            and self._run.stop_reason is None
            and self._control_dir is not None
            and not self._gates_lost
        )
        was_gated, was_divided = self._gated, self._rate_divisors
        self._plan, self._encode_plan = plan, encode
        self._gated = frozenset(step.dropped)
        if self._full_webrtc is not None and not gates_only:
            # A restart for this step: the WHEP output takes its cheaper settings too
            # (without gates, its rung's lower frame rate as well).
            self._webrtc = degraded_webrtc(self._full_webrtc, encode)
        self._rate_divisors = self._divisors_for(step) if gates else {}
        run = self._run
        at = 0.0
        if gates_only:
            assert run is not None
            # From where ffmpeg is, not where its input is: a slow encoder lags its input,
            # and the rung should stop costing as soon as it can.
            progress = run.last_progress
            where = progress.out_time if progress is not None else None
            at = next_keyframe_time(
                encode,
                where if where is not None else run.feed.media_seconds,
                margin=_GATE_MARGIN if encode.latency_mode == "low" else _GATE_MARGIN_LOOKAHEAD,
            )
        for name in self._full_plan.names:
            if name in before - after:
                if gates_only:
                    self._pending_drops[name] = (at, warning.message)
                else:
                    self._call(self._events.on_rendition_dropped, name, warning.message)
            elif name in after - before:
                if self._pending_drops.pop(name, None) is None:
                    self._call(self._events.on_rendition_restored, name)
        self._warn(warning)
        reason = f"{warning.code}: step {self._degrade.level}"
        if not gates_only:
            self.restart(reason)
            return
        assert run is not None
        commands = [
            command
            for name in [*(r.name for r in encode.renditions if not r.passthrough),
                         *([WEBRTC_OUTPUT] if WEBRTC_OUTPUT in self._rate_divisors
                           or WEBRTC_OUTPUT in was_divided else [])]
            for command in gate_commands(
                encode, name, at=at, webrtc=self._webrtc,
                before=GateState(name in was_gated, was_divided.get(name, 1)),
                after=GateState(name in self._gated, self._rate_divisors.get(name, 1)),
            )
        ]  # fmt: skip
        self._gate_task = asyncio.create_task(
            self._send_gates(run, commands, reason, after=self._gate_task),
            name=f"transcoder-gates-{self.stream_id}",
        )

    def _divisors_for(self, step: DegradeStep) -> dict[str, int]:
        """The gates' frame-rate divisors at `step`: its rungs', and the WebRTC output's
        when it copies one of them (`degraded_webrtc`: it degrades with its rung)."""
        divisors = {name: d for name, d in step.frame_rate_divisors if d > 1}
        webrtc = self._webrtc
        if (
            webrtc is not None
            and webrtc.follows in divisors
            and webrtc_rate_gated(self._encode_plan, webrtc)
        ):
            divisors[WEBRTC_OUTPUT] = divisors[webrtc.follows]
        return divisors

    def _fragment(self, rendition: str, fragment: Fragment, origin: float | None) -> None:
        self._call(self._events.on_fragment, rendition, fragment, origin)
        for name, (at, reason) in list(self._pending_drops.items()):
            if name == rendition:
                done = fragment.decode_time + fragment.duration >= at - 0.001
            else:  # a late command closed it later: the others are a GOP past the instant
                done = fragment.decode_time >= at + self._encode_plan.gop_duration
            if done:
                del self._pending_drops[name]
                self._call(self._events.on_rendition_dropped, name, reason)

    def _drop_pending(self) -> None:
        pending, self._pending_drops = self._pending_drops, {}
        for name, (_, reason) in pending.items():
            self._call(self._events.on_rendition_dropped, name, reason)

    async def _send_gates(
        self,
        run: FfmpegRun,
        commands: list[str],
        reason: str,
        *,
        after: asyncio.Task[None] | None,
    ) -> None:
        """Send gate commands to `run`; restart it (the old way) if it does not take them.

        One step's commands go after the previous step's (one REQ socket at a time)."""
        try:
            if after is not None:
                await asyncio.gather(after, return_exceptions=True)
            taken = (self._run is run and run.stop_reason is None
                     and await self._gate(run, commands))
        finally:
            if self._gate_task is asyncio.current_task():
                self._gate_task = None
        if taken:
            log.info(
                "encoder gates stream_id=%s commands=%s", self.stream_id, "; ".join(commands)
            )
        elif self._run is run and not self._closing:
            log.warning("encoder gates not taken, restarting stream_id=%s", self.stream_id)
            self.restart(reason)

    async def _gate(self, run: FfmpegRun, commands: list[str]) -> bool:
        control = self._control
        if control is None:
            return False
        if self._zmq is None:
            self._zmq = zmq.asyncio.Context()
        socket = self._zmq.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        try:
            socket.connect(control)
            # The ladder's highest rate: the source's (which the filter at the graph's
            # head sees) is that or more, so this errs towards waiting longer.
            frame_rate = max(
                (r.frame_rate_num / r.frame_rate_den for r in self._full_plan.renditions),
                default=0.0,
            )
            def life() -> tuple[int, int | None, int | None, int]:
                # What the run has output so far: it grows while the encoder works.
                report = run.last_progress
                if report is None:
                    return 0, None, None, run.fragments
                return report.frame, report.total_size, report.out_time_us, run.fragments

            for command in commands:
                await socket.send_string(command)
                reply_s = gate_reply_seconds(self._speed, frame_rate)
                sent = time.monotonic()
                answered = await await_gate_reply(socket, life, reply_s)
                waited = time.monotonic() - sent
                if not answered:
                    log.warning(
                        "encoder gate not answered stream_id=%s command=%s seconds=%.1f "
                        "speed=%s", self.stream_id, command, waited, self._speed,
                    )  # fmt: skip
                    return False
                if waited > reply_s:
                    log.info(
                        "encoder gate answered late stream_id=%s command=%s seconds=%.1f "
                        "speed=%s", self.stream_id, command, waited, self._speed,
                    )  # fmt: skip
                reply = await socket.recv_string()
                if not reply.startswith("0 "):
                    log.warning(
                        "encoder gate refused stream_id=%s command=%s reply=%s",
                        self.stream_id, command, reply,
                    )  # fmt: skip
                    return False
            return True
        except zmq.ZMQError as exc:
            log.warning("encoder gate failed stream_id=%s error=%r", self.stream_id, exc)
            return False
        finally:
            socket.close()

    def _warn(self, warning: HealthWarning) -> None:
        """Raise a warning; a `limited` one at most once a minute per code."""
        if warning.limited:
            if not self._cooldown.allow(warning.code, time.monotonic()):
                return
            log.warning(
                "transcoder warning stream_id=%s code=%s %s",
                self.stream_id,
                warning.code,
                warning.message,
            )
        self._call(self._events.on_warning, warning.code, warning.message, warning.data)

    def _call(self, handler: Callable[..., None], *args: Any) -> None:
        try:
            handler(*args)
        except Exception:
            log.exception(
                "transcoder event handler failed stream_id=%s handler=%s",
                self.stream_id,
                getattr(handler, "__name__", handler),
            )
