"""One supervised ffmpeg per broadcast: FLV in on stdin, a CMAF stream per rendition out (media).

`Transcoder.push` never blocks ingest: tags become FLV bytes in a bounded buffer,
and when ffmpeg cannot take them fast enough whole GOPs are dropped (everything
until the next keyframe). Each rendition's pipe is read by an asyncio task that
splits the bytes into init segments and fragments (`packaging.isobmff`) and hands
them to `TranscoderEvents`. When ffmpeg dies it is restarted within a second on a
fresh timeline (FLV header, metadata and codec configuration first, then the next
keyframe) and `on_restart` tells the packager to mark a discontinuity. When it
cannot keep up with real time, the most expensive rendition is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import functools
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from golive.formats.flv import encode_header, encode_tag
from golive.formats.isobmff import Fragment, FragmentReader, InitSegment
from golive.formats.tag import MediaTag, TagType
from golive.media.command import (
    CPU_ONLY,
    WEBRTC_OUTPUT,
    EncoderCapabilities,
    WebRtcRendition,
    build_command,
)
from golive.media.ladder import LadderError, LadderPlan
from golive.media.progress import EncodeProgress, ProgressParser

__all__ = [
    "EncoderCapabilities",
    "SlowEncodeDetector",
    "Transcoder",
    "TranscoderEvents",
    "TranscoderStats",
    "detect_capabilities",
]

log = logging.getLogger(__name__)

_READ_CHUNK = 256 * 1024
_WRITE_CHUNK = 256 * 1024
_PIPE_SIZE = 1024 * 1024  # fits a big keyframe fragment, so ffmpeg rarely waits on us
_STDERR_LINE = 2048
_STDERR_TAIL = 8
_STOP_GRACE = 1.5  # seconds ffmpeg gets to flush after stdin closes
_RESTART_GRACE = 0.5
_DRAIN_TIMEOUT = 2.0  # seconds to finish reading outputs after ffmpeg exits
_HEALTHY_RUN = 10.0  # a run shorter than this (or without output) is a rapid failure
_MAX_RAPID_FAILURES = 8
_BACKOFF_FIRST = 0.1
_BACKOFF_CAP = 1.0
_MONITOR_INTERVAL = 0.5
_DROP_WINDOW = 10.0
_WARNING_COOLDOWN = 60.0
_SPEED_SLACK = 0.05  # a live encoder's speed hovers just under 1.0
_MAX_BACKWARDS_MS = 1000  # video timestamps going back further start a new timeline
_NVENC_GIVE_UP = 2  # rapid failures with NVENC (out of sessions, driver trouble) before libx264
_LOG_BURST = 20  # stderr lines per stream before rate limiting
_LOG_RATE = 1.0  # lines per second after the burst


class TranscoderEvents(Protocol):
    """What a transcoder reports; called on the event loop, must not block."""

    def on_init(self, rendition: str, init: InitSegment) -> None: ...

    def on_fragment(self, rendition: str, fragment: Fragment) -> None: ...

    def on_restart(self, attempt: int, reason: str) -> None: ...

    def on_rendition_dropped(self, rendition: str, reason: str) -> None: ...

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


# Capabilities -----------------------------------------------------------------------

_capabilities_cache: dict[str, EncoderCapabilities] = {}
# A few frames through NVENC: fails fast where the encoder is compiled in but no GPU is usable.
_NVENC_TEST = (
    "-hide_banner", "-loglevel", "error",
    "-f", "lavfi", "-i", "color=black:s=256x144:r=30:d=0.2",
    "-c:v", "h264_nvenc", "-f", "null", "-",
)  # fmt: skip


async def detect_capabilities(ffmpeg: str, *, refresh: bool = False) -> EncoderCapabilities:
    """Ask `ffmpeg -encoders`, then try a tiny NVENC encode: listed is not the same as usable."""
    if not refresh and ffmpeg in _capabilities_cache:
        return _capabilities_cache[ffmpeg]
    rc, out = await _run_quietly([ffmpeg, "-hide_banner", "-encoders"], limit=15)
    names = {line.split()[1] for line in out.splitlines() if len(line.split()) > 1}
    nvenc = False
    if rc == 0 and "h264_nvenc" in names:
        rc_test, _ = await _run_quietly([ffmpeg, *_NVENC_TEST], limit=15)
        nvenc = rc_test == 0
    caps = EncoderCapabilities(libx264=rc != 0 or "libx264" in names, h264_nvenc=nvenc)
    log.info("ffmpeg encoders ffmpeg=%s libx264=%s h264_nvenc=%s", ffmpeg, caps.libx264, nvenc)
    _capabilities_cache[ffmpeg] = caps
    return caps


async def _run_quietly(argv: list[str], *, limit: float) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError as exc:
        return -1, str(exc)
    try:
        async with asyncio.timeout(limit):
            out, _ = await proc.communicate()
    except TimeoutError:
        out = b""
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode if proc.returncode is not None else -1, out.decode("utf-8", "replace")


# Input ------------------------------------------------------------------------------


class _Kind(enum.Enum):
    METADATA = enum.auto()
    VIDEO_CONFIG = enum.auto()
    AUDIO_CONFIG = enum.auto()
    KEYFRAME = enum.auto()
    VIDEO = enum.auto()
    AUDIO = enum.auto()
    OTHER = enum.auto()


def _classify(tag: MediaTag) -> _Kind:
    """What a tag is to the transcoder, from the first bytes of its FLV body."""
    body = tag.body
    if not body:
        return _Kind.OTHER
    first = body[0]
    if tag.type is TagType.VIDEO:
        if first & 0x80:  # enhanced RTMP: frame type in bits 4-6, packet type in 0-3
            frame_type, packet_type = (first >> 4) & 0x07, first & 0x0F
            if packet_type == 0:
                return _Kind.VIDEO_CONFIG
            if packet_type in (1, 3):
                return _Kind.KEYFRAME if frame_type == 1 else _Kind.VIDEO
            return _Kind.OTHER
        frame_type, codec = first >> 4, first & 0x0F
        if frame_type == 5:  # video info / command frame
            return _Kind.OTHER
        if codec in (7, 12):  # AVC, HEVC: a packet-type byte follows
            if len(body) < 2 or body[1] == 2:  # end of sequence
                return _Kind.OTHER
            if body[1] == 0:
                return _Kind.VIDEO_CONFIG
        return _Kind.KEYFRAME if frame_type == 1 else _Kind.VIDEO
    if tag.type is TagType.AUDIO:
        sound_format = first >> 4
        if sound_format == 10:  # AAC: a packet-type byte follows
            if len(body) < 2:
                return _Kind.OTHER
            return _Kind.AUDIO_CONFIG if body[1] == 0 else _Kind.AUDIO
        if sound_format == 9:  # enhanced audio
            packet_type = first & 0x0F
            if packet_type == 0:
                return _Kind.AUDIO_CONFIG
            return _Kind.AUDIO if packet_type == 1 else _Kind.OTHER
        return _Kind.AUDIO
    if tag.type is TagType.SCRIPT and b"onMetaData" in body[:32]:
        return _Kind.METADATA
    return _Kind.OTHER


class _InputFeed:
    """FLV bytes for one ffmpeg timeline: starts at a keyframe, bounded, drops whole GOPs."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.started = False
        self.audio_started = False
        self.first_ts = 0
        self.last_video_ts = 0
        self.dropping = False
        self.closed = False
        self._wakeup = asyncio.Event()

    @property
    def media_seconds(self) -> float:
        """Video media time accepted so far on this timeline."""
        return ((self.last_video_ts - self.first_ts) & 0xFFFFFFFF) / 1000 if self.started else 0.0

    def append(self, data: bytes) -> None:
        if self.closed:  # its ffmpeg is gone; the next timeline starts at a keyframe
            return
        self.chunks.append(data)
        self.size += len(data)
        self._wakeup.set()

    def close(self) -> None:
        self.closed = True
        self.chunks.clear()
        self.size = 0
        self._wakeup.set()

    async def take(self) -> bytes | None:
        """Up to `_WRITE_CHUNK` bytes for stdin; None once closed."""
        while not self.chunks:
            if self.closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        if self.closed:
            return None
        parts = [self.chunks.popleft()]
        taken = len(parts[0])
        while self.chunks and taken + len(self.chunks[0]) <= _WRITE_CHUNK:
            parts.append(self.chunks.popleft())
            taken += len(parts[-1])
        self.size -= taken
        return b"".join(parts)


# Monitoring -------------------------------------------------------------------------


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
        return speed is not None and speed < self.min_speed - _SPEED_SLACK


class _Window:
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


class _LogLimiter:
    def __init__(self) -> None:
        self.tokens = float(_LOG_BURST)
        self.at = time.monotonic()
        self.suppressed = 0

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(_LOG_BURST), self.tokens + (now - self.at) * _LOG_RATE)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.suppressed += 1
        return False


# One ffmpeg process ------------------------------------------------------------------


@dataclass(eq=False)
class _Run:
    proc: asyncio.subprocess.Process
    plan: LadderPlan
    feed: _InputFeed
    started_at: float
    readers: list[asyncio.Task[None]] = field(default_factory=list)  # end at EOF
    writer: asyncio.Task[None] | None = None
    transports: list[asyncio.BaseTransport] = field(default_factory=list)
    fragments: int = 0
    stop_reason: str | None = None  # set when we end it on purpose
    stopper: asyncio.Task[None] | None = None
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=_STDERR_TAIL))
    last_progress: EncodeProgress | None = None
    drop_frames: int = 0


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
    ) -> None:
        if max_input_buffer < 64 * 1024:
            raise ValueError("max_input_buffer must be at least 64 KiB")
        self._ffmpeg = ffmpeg
        self._plan = plan
        self._events = events
        self.stream_id = stream_id
        self._capabilities = capabilities
        self._max_input = max_input_buffer
        self._webrtc = webrtc  # WHEP playback's extra output, reported as WEBRTC_OUTPUT
        self._feed = _InputFeed(max_input_buffer)
        self._metadata: MediaTag | None = None
        self._video_config: MediaTag | None = None
        self._audio_config: MediaTag | None = None
        self._run: _Run | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._nvenc_failures = 0
        self._started = False
        self._closing = False
        self._failed = False
        self._restarts = 0
        self._rapid_failures = 0
        self._input_bytes = 0
        self._video_frames = 0
        self._dropped_bytes = 0
        self._dropped_frames = 0
        self._last_progress: EncodeProgress | None = None
        self._starting: asyncio.Future[None] | None = None
        alerts = plan.profile.alerts
        self._speed = SlowEncodeDetector(
            min_speed=alerts.min_encode_speed, window=alerts.slow_encode_seconds
        )
        self._ingest_window = _Window(alerts.ingest_bitrate_seconds)
        self._frames_window = _Window(_DROP_WINDOW)
        self._drops_window = _Window(_DROP_WINDOW)
        self._warned_at: dict[str, float] = {}
        self._low_ingest = False
        self._log_limiter = _LogLimiter()

    # Public -------------------------------------------------------------------------

    @property
    def plan(self) -> LadderPlan:
        """The ladder now being produced (smaller than the first one after a fallback)."""
        return self._plan

    @property
    def pid(self) -> int | None:
        run = self._run
        return run.proc.pid if run is not None and run.proc.returncode is None else None

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
            input_bytes=self._input_bytes,
            dropped_input_bytes=self._dropped_bytes,
            dropped_video_frames=self._dropped_frames,
            last_progress=self._last_progress,
        )

    def stats_dict(self) -> dict[str, Any]:
        data = asdict(self.stats)
        data["renditions"] = list(self._plan.names)
        return data

    async def start(self) -> None:
        """Start ffmpeg; raises if it cannot be started at all (missing binary, bad plan)."""
        if self._started or self._closing:
            return
        self._started = True
        self._starting = asyncio.ensure_future(self._start())
        await self._starting

    async def _start(self) -> None:
        try:
            if self._capabilities is None:
                self._capabilities = await detect_capabilities(self._ffmpeg)
            if self._closing:
                return
            self._run = await self._launch()
        except BaseException:
            self._failed = True
            raise
        self._supervisor = asyncio.create_task(
            self._supervise(), name=f"transcoder-{self.stream_id}"
        )
        self._monitor = asyncio.create_task(
            self._watch_health(), name=f"transcoder-health-{self.stream_id}"
        )

    def push(self, tag: MediaTag) -> None:
        """Queue one tag for ffmpeg; never blocks, drops whole GOPs when ffmpeg falls behind."""
        if self._closing or self._failed:
            return
        self._input_bytes += len(tag.body)
        kind = _classify(tag)
        if kind is _Kind.METADATA:
            self._metadata = tag
            return
        if kind is _Kind.OTHER:
            return
        if kind in (_Kind.AUDIO, _Kind.AUDIO_CONFIG) and not self._plan.has_audio:
            return
        feed = self._feed
        if kind is _Kind.VIDEO_CONFIG or kind is _Kind.AUDIO_CONFIG:
            if kind is _Kind.VIDEO_CONFIG:
                self._video_config = tag
            else:
                self._audio_config = tag
            if feed.started and not feed.dropping:  # a mid-stream change of settings
                self._queue(feed, encode_tag(tag))
            return
        if kind in (_Kind.KEYFRAME, _Kind.VIDEO):
            self._video_frames += 1
            if feed.started and _ts_before(tag.timestamp, feed.last_video_ts - _MAX_BACKWARDS_MS):
                # The publisher's clock went back without a reconnect: ffmpeg needs a
                # fresh timeline, as after a reconnect.
                self.restart("the publisher's timestamps went back")
                feed = self._feed
        if not feed.started:
            if kind is not _Kind.KEYFRAME:
                return  # a timeline starts at a keyframe
            feed.started = True
            feed.first_ts = feed.last_video_ts = tag.timestamp
            feed.append(self._preamble(tag.timestamp))
        if kind is _Kind.AUDIO:
            # Audio from before the first keyframe would start the timeline early.
            if not feed.audio_started and _ts_before(tag.timestamp, feed.first_ts):
                return
            feed.audio_started = True
        data = encode_tag(tag)
        video = kind is not _Kind.AUDIO
        if feed.dropping:
            if kind is _Kind.KEYFRAME and feed.size + len(data) <= feed.limit // 2:
                feed.dropping = False
            else:
                self._drop(data, video=video)
                return
        if feed.size + len(data) > feed.limit:
            feed.dropping = True
            self._drop(data, video=video)
            self._warn(
                "input_overflow",
                "the encoder is not reading its input fast enough; dropping video until "
                "the next keyframe",
                buffered_bytes=feed.size,
            )
            return
        if video:
            feed.last_video_ts = tag.timestamp
        self._queue(feed, data)

    def restart(self, reason: str = "reconnect") -> None:
        """Start a fresh ffmpeg timeline from the next keyframe (e.g. after a publisher reconnect)."""
        if self._closing or self._failed:
            return
        self._feed = _InputFeed(self._max_input)
        run = self._run
        if run is not None:
            self._end_run(run, reason, grace=_RESTART_GRACE)

    async def stop(self) -> None:
        """Close stdin, give ffmpeg a moment to flush, then kill it; idempotent and cancel-safe."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    # Input --------------------------------------------------------------------------

    def _preamble(self, timestamp: int) -> bytes:
        """What a fresh ffmpeg needs before the first keyframe.

        The codec configuration is stamped at the keyframe's time; the metadata at 0,
        because ffmpeg's FLV reader turns metadata at any other time into a stream.
        """
        parts = [encode_header(audio=self._plan.has_audio, video=True)]
        if self._metadata is not None:
            parts.append(encode_tag(MediaTag(TagType.SCRIPT, 0, self._metadata.body)))
        for tag in (self._video_config, self._audio_config):
            if tag is not None:
                parts.append(encode_tag(MediaTag(tag.type, timestamp, tag.body)))
        return b"".join(parts)

    def _queue(self, feed: _InputFeed, data: bytes) -> None:
        feed.append(data)

    def _drop(self, data: bytes, *, video: bool) -> None:
        self._dropped_bytes += len(data)
        if video:
            self._dropped_frames += 1

    # Process lifecycle --------------------------------------------------------------

    async def _launch(self) -> _Run:
        plan = self._plan
        caps = self._capabilities or CPU_ONLY
        loop = asyncio.get_running_loop()
        pipes: dict[str, tuple[int, int]] = {}
        run: _Run | None = None
        try:
            names = [*plan.names, *([WEBRTC_OUTPUT] if self._webrtc is not None else [])]
            for name in names:
                pipes[name] = os.pipe()
                with contextlib.suppress(OSError):
                    fcntl.fcntl(pipes[name][1], fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
            argv = build_command(
                plan,
                ffmpeg=self._ffmpeg,
                output_fds={name: w for name, (_, w) in pipes.items()},
                capabilities=caps,
                webrtc=self._webrtc,
            )
            log.info(
                "ffmpeg starting stream_id=%s renditions=%s encoder=%s",
                self.stream_id,
                ",".join(plan.names),
                caps.video_encoder,
            )
            log.debug("ffmpeg argv stream_id=%s argv=%s", self.stream_id, argv)
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=[w for _, w in pipes.values()],
                start_new_session=True,  # a terminal's Ctrl-C is ours to handle, not ffmpeg's
            )
            run = _Run(proc=proc, plan=plan, feed=self._feed, started_at=loop.time())
            outputs: dict[str, asyncio.StreamReader] = {}
            for name in list(pipes):
                r, w = pipes.pop(name)
                os.close(w)  # the child has it; keeping ours open would hide EOF
                pipe = os.fdopen(r, "rb", buffering=0)
                reader = asyncio.StreamReader(limit=_READ_CHUNK)
                try:
                    transport, _ = await loop.connect_read_pipe(
                        functools.partial(asyncio.StreamReaderProtocol, reader), pipe
                    )
                except BaseException:
                    pipe.close()
                    raise
                run.transports.append(transport)
                outputs[name] = reader
        except BaseException:
            for r, w in pipes.values():
                for fd in (r, w):
                    with contextlib.suppress(OSError):
                        os.close(fd)
            if run is not None:
                for opened in run.transports:
                    opened.close()
                if run.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        run.proc.kill()
            raise
        self._speed.reset()
        for name, reader in outputs.items():
            run.readers.append(asyncio.create_task(self._read_rendition(run, name, reader)))
        run.readers.append(asyncio.create_task(self._read_progress(run)))
        run.readers.append(asyncio.create_task(self._read_stderr(run)))
        run.writer = asyncio.create_task(self._write_input(run))
        return run

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            run = self._run
            assert run is not None
            await self._wait_run(run)
            if self._closing:
                return
            if run.stop_reason is not None:
                reason, delay = run.stop_reason, 0.0
                self._rapid_failures = 0
            else:
                reason = _exit_reason(run)
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
                if run.feed is self._feed:  # the old timeline is over: restart at a keyframe
                    self._feed = _InputFeed(self._max_input)
            self._run = None
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

    async def _wait_run(self, run: _Run) -> None:
        """Until the process exits and everything it wrote has been read."""
        await run.proc.wait()
        run.feed.close()
        if run.writer is not None:
            run.writer.cancel()
        _, pending = await asyncio.wait(run.readers, timeout=_DRAIN_TIMEOUT)
        for task in pending:
            task.cancel()
        tasks = [*run.readers, *([run.writer] if run.writer is not None else [])]
        await asyncio.gather(*tasks, return_exceptions=True)
        for transport in run.transports:
            transport.close()
        if run.stopper is not None:
            await asyncio.gather(run.stopper, return_exceptions=True)

    def _end_run(self, run: _Run, reason: str, *, grace: float) -> None:
        """Ask a run to end: close stdin now, kill it if it has not exited after `grace`."""
        if run.stop_reason is None:
            run.stop_reason = reason
        if run.stopper is None:
            run.stopper = asyncio.ensure_future(self._terminate(run, grace))

    async def _terminate(self, run: _Run, grace: float) -> None:
        run.feed.close()
        stdin = run.proc.stdin
        if stdin is not None:
            stdin.close()
        try:
            async with asyncio.timeout(grace):
                await run.proc.wait()
        except TimeoutError:
            pass
        finally:
            if run.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    run.proc.kill()
        await run.proc.wait()

    def _maybe_leave_nvenc(self, reason: str) -> None:
        """NVENC that fails to start (no free session, driver trouble) is swapped for libx264."""
        caps = self._capabilities
        if caps is None or not caps.h264_nvenc:
            return
        self._nvenc_failures += 1
        if self._nvenc_failures < _NVENC_GIVE_UP or not caps.libx264:
            return
        self._capabilities = CPU_ONLY
        self._call(
            self._events.on_warning,
            "nvenc_unavailable",
            f"the GPU encoder keeps failing ({reason}); encoding with libx264 instead",
            {"reason": reason},
        )

    def _give_up(self, reason: str) -> None:
        self._failed = True
        self._feed.close()
        log.error("ffmpeg keeps failing, giving up stream_id=%s reason=%s", self.stream_id, reason)
        self._call(
            self._events.on_warning,
            "transcoder_failed",
            f"the encoder failed {self._rapid_failures} times in a row and was stopped: {reason}",
            {"reason": reason, "failures": self._rapid_failures},
        )

    async def _stop(self) -> None:
        self._closing = True
        self._feed.close()
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()  # a launch in flight kills its process on the way out
            await asyncio.gather(self._starting, return_exceptions=True)
        for task in (self._monitor, self._supervisor):
            if task is not None:
                task.cancel()
        run = self._run
        try:
            if run is not None:
                self._end_run(run, "stopped", grace=_STOP_GRACE)
                await self._wait_run(run)
        finally:
            if run is not None and run.proc.returncode is None:  # cancelled half-way
                with contextlib.suppress(ProcessLookupError):
                    run.proc.kill()
            for task in (self._monitor, self._supervisor):
                if task is not None:
                    await asyncio.gather(task, return_exceptions=True)
            log.info("transcoder stopped stream_id=%s restarts=%d", self.stream_id, self._restarts)

    # Per-run tasks --------------------------------------------------------------------

    async def _write_input(self, run: _Run) -> None:
        stdin = run.proc.stdin
        assert stdin is not None
        try:
            while True:
                data = await run.feed.take()
                if data is None:
                    break
                stdin.write(data)
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return  # ffmpeg is gone; the supervisor handles it
        finally:
            if run.feed.closed and not stdin.is_closing():
                stdin.close()

    async def _read_rendition(self, run: _Run, name: str, reader: asyncio.StreamReader) -> None:
        splitter = FragmentReader()
        while True:
            data = await reader.read(_READ_CHUNK)
            if not data:
                return
            try:
                items = splitter.feed(data)
            except Exception as exc:  # a broken box stream: this run's output is unusable
                log.error(
                    "unreadable ffmpeg output stream_id=%s rendition=%s error=%s",
                    self.stream_id,
                    name,
                    exc,
                )
                run.stderr_tail.append(f"unreadable {name} output: {exc}")
                with contextlib.suppress(ProcessLookupError):
                    run.proc.kill()
                return
            for item in items:
                if isinstance(item, InitSegment):
                    self._call(self._events.on_init, name, item)
                else:
                    run.fragments += 1
                    self._call(self._events.on_fragment, name, item)

    async def _read_progress(self, run: _Run) -> None:
        stdout = run.proc.stdout
        assert stdout is not None
        parser = ProgressParser()
        while True:
            data = await stdout.read(4096)
            if not data:
                return
            for report in parser.feed(data):
                run.last_progress = self._last_progress = report
                self._call(self._events.on_progress, report)

    async def _read_stderr(self, run: _Run) -> None:
        stderr = run.proc.stderr
        assert stderr is not None
        partial = b""
        while True:
            data = await stderr.read(4096)
            if not data:
                if partial:
                    self._log_ffmpeg(run, partial)
                return
            lines = (partial + data).split(b"\n")
            partial = lines.pop()[-_STDERR_LINE:]
            for line in lines:
                self._log_ffmpeg(run, line)

    def _log_ffmpeg(self, run: _Run, raw: bytes) -> None:
        line = raw[:_STDERR_LINE].decode("utf-8", "replace").strip()
        if not line:
            return
        run.stderr_tail.append(line)
        if self._log_limiter.allow():
            suppressed, self._log_limiter.suppressed = self._log_limiter.suppressed, 0
            log.warning(
                "ffmpeg stream_id=%s pid=%d line=%s%s",
                self.stream_id,
                run.proc.pid,
                line,
                f" suppressed={suppressed}" if suppressed else "",
            )

    # Health -------------------------------------------------------------------------

    async def _watch_health(self) -> None:
        while not self._closing:
            await asyncio.sleep(_MONITOR_INTERVAL)
            self._check_health(time.monotonic())

    def _check_health(self, now: float) -> None:
        if self._failed:
            return
        alerts = self._plan.profile.alerts
        run = self._run
        # Encode speed against the ingest, on the current timeline only.
        if run is not None and run.stop_reason is None and run.last_progress is not None:
            out_time = run.last_progress.out_time
            if out_time is not None and run.feed is self._feed:
                speed = self._speed.sample(now, run.feed.media_seconds, out_time)
                if self._speed.is_slow(speed):
                    assert speed is not None
                    self._slow_encode(speed)
            if run.last_progress.drop_frames > run.drop_frames:
                self._dropped_frames += run.last_progress.drop_frames - run.drop_frames
                run.drop_frames = run.last_progress.drop_frames
        # Dropped frames, ours and ffmpeg's, against the frames that came in.
        frames = self._frames_window.add(now, self._video_frames)
        drops = self._drops_window.add(now, self._dropped_frames)
        if frames is not None and drops is not None and frames[1] > 0:
            ratio = drops[1] / frames[1]
            if ratio > alerts.max_dropped_frames_ratio:
                self._warn(
                    "dropped_frames",
                    f"{ratio:.1%} of the video frames were dropped in the last "
                    f"{_DROP_WINDOW:.0f} s",
                    ratio=round(ratio, 4),
                )
        # The publisher's bitrate floor.
        if alerts.min_ingest_bitrate_kbps > 0:
            ingest = self._ingest_window.add(now, self._input_bytes)
            if ingest is not None:
                kbps = ingest[1] * 8 / 1000 / ingest[0]
                if kbps < alerts.min_ingest_bitrate_kbps and not self._low_ingest:
                    self._low_ingest = True
                    self._call(
                        self._events.on_warning,
                        "low_ingest_bitrate",
                        f"the publisher sends {kbps:.0f} kbit/s, under the profile's floor "
                        f"of {alerts.min_ingest_bitrate_kbps} kbit/s",
                        {"kbps": round(kbps), "floor_kbps": alerts.min_ingest_bitrate_kbps},
                    )
                elif kbps >= alerts.min_ingest_bitrate_kbps:
                    self._low_ingest = False

    def _slow_encode(self, speed: float) -> None:
        plan = self._plan
        fallback = plan.profile.fallback
        self._speed.reset()
        if not fallback.drop_top_rendition_on_slow_encode or not plan.can_drop_rendition():
            self._warn(
                "slow_encode",
                f"the encoder runs at {speed:.2f}x real time and latency is growing; "
                "no rendition can be dropped",
                speed=round(speed, 3),
            )
            return
        try:
            reduced, victim = plan.without_top_rendition()
        except LadderError:  # pragma: no cover - checked by can_drop_rendition
            return
        reason = f"encoder at {speed:.2f}x real time"
        log.warning(
            "slow encode, dropping rendition stream_id=%s rendition=%s speed=%.2f",
            self.stream_id,
            victim.name,
            speed,
        )
        self._plan = reduced
        self._call(self._events.on_rendition_dropped, victim.name, reason)
        self._call(
            self._events.on_warning,
            "slow_encode",
            f"the encoder runs at {speed:.2f}x real time; dropped {victim.name} to keep latency",
            {"speed": round(speed, 3), "dropped": victim.name, "renditions": list(reduced.names)},
        )
        self.restart(f"slow encode: dropped {victim.name}")

    def _warn(self, code: str, message: str, **data: Any) -> None:
        """A warning at most once a minute per code."""
        now = time.monotonic()
        last = self._warned_at.get(code)
        if last is not None and now - last < _WARNING_COOLDOWN:
            return
        self._warned_at[code] = now
        log.warning("transcoder warning stream_id=%s code=%s %s", self.stream_id, code, message)
        self._call(self._events.on_warning, code, message, data)

    def _call(self, handler: Callable[..., None], *args: Any) -> None:
        try:
            handler(*args)
        except Exception:
            log.exception(
                "transcoder event handler failed stream_id=%s handler=%s",
                self.stream_id,
                getattr(handler, "__name__", handler),
            )


def _ts_before(ts: int, reference: int) -> bool:
    """`ts` is earlier than `reference` on the 32-bit millisecond clock."""
    return ((reference - ts) & 0xFFFFFFFF) < 0x80000000 and ts != reference


def _exit_reason(run: _Run) -> str:
    rc = run.proc.returncode
    reason = f"ffmpeg exited with code {rc}"
    if rc is not None and rc < 0:
        reason = f"ffmpeg was killed by signal {-rc}"
    if run.stderr_tail:
        reason += f": {run.stderr_tail[-1]}"
    return reason
