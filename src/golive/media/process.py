"""One ffmpeg process of a transcoder: spawn, pipes, readers, termination (stage: media).

Each rendition gets its own pipe, passed to ffmpeg as an inherited descriptor
(`pass_fds`) and read by an asyncio task that splits it into init segments and
fragments. stdin is written from an `InputFeed`; stdout carries `-progress`
reports; stderr is logged, rate limited, and its last lines explain a death.
The supervisor (`transcoder`) decides when to start and restart; this module
only runs one process to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from golive.core import TokenBucket
from golive.formats import Fragment, FragmentReader, InitSegment, PartJoiner
from golive.media.command import WEBRTC_OUTPUT
from golive.media.feed import InputFeed
from golive.media.levels import LevelParser, Reading
from golive.media.progress import EncodeProgress, ProgressParser

__all__ = ["FfmpegRun", "LogLimiter", "RunCallbacks", "spawn"]

log = logging.getLogger(__name__)

_READ_CHUNK = 256 * 1024
_PIPE_SIZE = 1024 * 1024  # fits a big keyframe fragment, so ffmpeg rarely waits on us
_STDERR_LINE = 2048
_STDERR_TAIL = 8
DRAIN_TIMEOUT = 2.0  # seconds to finish reading outputs after ffmpeg exits
_LOG_BURST = 20  # stderr lines per stream before rate limiting
_LOG_RATE = 1.0  # lines per second after the burst


class LogLimiter:
    """ffmpeg's stderr lines through a token bucket: a chatty encoder must not flood the log."""

    def __init__(self, now: float) -> None:
        self._bucket = TokenBucket(_LOG_RATE, _LOG_BURST, now)
        self.suppressed = 0

    def allow(self, now: float) -> bool:
        if self._bucket.take(now):
            return True
        self.suppressed += 1
        return False


@dataclass(frozen=True, slots=True)
class RunCallbacks:
    """Where a run's output goes; called on the event loop, must not raise or block."""

    on_init: Callable[[str, InitSegment], None]
    on_fragment: Callable[[str, Fragment, float | None], None]
    """(rendition, fragment, the run's ingest clock: `InputFeed.origin`)"""
    on_progress: Callable[[EncodeProgress], None]
    monotonic: Callable[[], float]  # for the stderr rate limit
    on_levels: Callable[[list[Reading]], None] | None = None  # the analysis output's


@dataclass(eq=False)
class FfmpegRun:
    """One ffmpeg process and the tasks that feed and read it."""

    proc: asyncio.subprocess.Process
    feed: InputFeed
    started_at: float  # event loop time
    stream_id: str
    callbacks: RunCallbacks
    log_limiter: LogLimiter
    readers: list[asyncio.Task[None]] = field(default_factory=list)  # end at EOF
    writer: asyncio.Task[None] | None = None
    transports: list[asyncio.BaseTransport] = field(default_factory=list)
    fragments: int = 0
    stop_reason: str | None = None  # set when we end it on purpose
    stopper: asyncio.Task[None] | None = None
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=_STDERR_TAIL))
    last_progress: EncodeProgress | None = None
    drop_frames: int = 0  # ffmpeg's dropped frames already counted by the supervisor

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc.returncode is None else None

    def exit_reason(self) -> str:
        rc = self.proc.returncode
        reason = f"ffmpeg exited with code {rc}"
        if rc is not None and rc < 0:
            reason = f"ffmpeg was killed by signal {-rc}"
        if self.stderr_tail:
            reason += f": {self.stderr_tail[-1]}"
        return reason

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def wait(self) -> None:
        """Until the process exits and everything it wrote has been read."""
        await self.proc.wait()
        self.feed.close()
        if self.writer is not None:
            self.writer.cancel()
        _, pending = await asyncio.wait(self.readers, timeout=DRAIN_TIMEOUT)
        for task in pending:
            task.cancel()
        tasks = [*self.readers, *([self.writer] if self.writer is not None else [])]
        await asyncio.gather(*tasks, return_exceptions=True)
        for transport in self.transports:
            transport.close()
        if self.stopper is not None:
            await asyncio.gather(self.stopper, return_exceptions=True)

    def end(self, reason: str, *, grace: float) -> None:
        """Ask the run to end: close stdin now, kill it if it has not exited after `grace`."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.stopper is None:
            self.stopper = asyncio.ensure_future(self._terminate(grace))

    async def _terminate(self, grace: float) -> None:
        self.feed.close()
        stdin = self.proc.stdin
        if stdin is not None:
            stdin.close()
        try:
            async with asyncio.timeout(grace):
                await self.proc.wait()
        except TimeoutError:
            pass
        finally:
            self.kill()
        await self.proc.wait()

    # Tasks ------------------------------------------------------------------------------

    def start_tasks(
        self,
        outputs: Mapping[str, asyncio.StreamReader],
        analysis: asyncio.StreamReader | None = None,
    ) -> None:
        for name, reader in outputs.items():
            self.readers.append(asyncio.create_task(self._read_output(name, reader)))
        if analysis is not None:
            self.readers.append(asyncio.create_task(self._read_levels(analysis)))
        self.readers.append(asyncio.create_task(self._read_progress()))
        self.readers.append(asyncio.create_task(self._read_stderr()))
        self.writer = asyncio.create_task(self._write_input())

    async def _write_input(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            while True:
                data = await self.feed.take()
                if data is None:
                    break
                stdin.write(data)
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return  # ffmpeg is gone; the supervisor handles it
        finally:
            if self.feed.closed and not stdin.is_closing():
                stdin.close()

    async def _read_output(self, name: str, reader: asyncio.StreamReader) -> None:
        splitter = FragmentReader()
        # Renditions are listed as parts timed by their picture; WebRTC takes each packet
        # as it comes.
        joiner = PartJoiner() if name != WEBRTC_OUTPUT else None
        while True:
            data = await reader.read(_READ_CHUNK)
            if not data:
                if joiner is not None:
                    for fragment in joiner.flush():
                        self._emit(name, fragment)
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
                self.stderr_tail.append(f"unreadable {name} output: {exc}")
                self.kill()
                return
            for item in items:
                if isinstance(item, InitSegment):
                    for fragment in joiner.flush() if joiner is not None else ():
                        self._emit(name, fragment)
                    self.callbacks.on_init(name, item)
                elif joiner is None:
                    self._emit(name, item)
                else:
                    for fragment in joiner.push(item):
                        self._emit(name, fragment)

    def _emit(self, name: str, fragment: Fragment) -> None:
        self.fragments += 1
        self.callbacks.on_fragment(name, fragment, self.feed.origin)

    async def _read_levels(self, reader: asyncio.StreamReader) -> None:
        parser = LevelParser()
        on_levels = self.callbacks.on_levels
        while True:
            data = await reader.read(_READ_CHUNK)
            if not data:
                return
            readings = parser.feed(data)
            if readings and on_levels is not None:
                on_levels(readings)

    async def _read_progress(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        parser = ProgressParser()
        while True:
            data = await stdout.read(4096)
            if not data:
                return
            for report in parser.feed(data):
                self.last_progress = report
                self.callbacks.on_progress(report)

    async def _read_stderr(self) -> None:
        stderr = self.proc.stderr
        assert stderr is not None
        partial = b""
        while True:
            data = await stderr.read(4096)
            if not data:
                if partial:
                    self._log_line(partial)
                return
            lines = (partial + data).split(b"\n")
            partial = lines.pop()[-_STDERR_LINE:]
            for line in lines:
                self._log_line(line)

    def _log_line(self, raw: bytes) -> None:
        line = raw[:_STDERR_LINE].decode("utf-8", "replace").strip()
        if not line:
            return
        self.stderr_tail.append(line)
        limiter = self.log_limiter
        if limiter.allow(self.callbacks.monotonic()):
            suppressed, limiter.suppressed = limiter.suppressed, 0
            log.warning(
                "ffmpeg stream_id=%s pid=%d line=%s%s",
                self.stream_id,
                self.proc.pid,
                line,
                f" suppressed={suppressed}" if suppressed else "",
            )


async def spawn(
    *,
    command: Callable[[Mapping[str, int]], list[str]],
    outputs: Sequence[str],
    feed: InputFeed,
    stream_id: str,
    callbacks: RunCallbacks,
    log_limiter: LogLimiter,
    analysis: str | None = None,
) -> FfmpegRun:
    """Start ffmpeg with one pipe per output; `command` builds its argv from their fds.

    The output named `analysis` (one of `outputs`) carries text, the audio level and
    picture measurements, read into `callbacks.on_levels` instead of media.

    On any failure (or cancellation) half-way, every pipe is closed and a started
    process is killed before the error propagates.
    """
    loop = asyncio.get_running_loop()
    pipes: dict[str, tuple[int, int]] = {}
    run: FfmpegRun | None = None
    try:
        for name in outputs:
            pipes[name] = os.pipe()
            with contextlib.suppress(OSError):
                fcntl.fcntl(pipes[name][1], fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        argv = command({name: w for name, (_, w) in pipes.items()})
        log.debug("ffmpeg argv stream_id=%s argv=%s", stream_id, argv)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=[w for _, w in pipes.values()],
            start_new_session=True,  # a terminal's Ctrl-C is ours to handle, not ffmpeg's
        )
        run = FfmpegRun(
            proc=proc,
            feed=feed,
            started_at=loop.time(),
            stream_id=stream_id,
            callbacks=callbacks,
            log_limiter=log_limiter,
        )
        readers: dict[str, asyncio.StreamReader] = {}
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
            readers[name] = reader
    except BaseException:
        for r, w in pipes.values():
            for fd in (r, w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        if run is not None:
            for opened in run.transports:
                opened.close()
            run.kill()
        raise
    text = readers.pop(analysis) if analysis is not None and analysis in readers else None
    run.start_tasks(readers, text)
    return run
