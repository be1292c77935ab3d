"""Thumbnails: one CMAF segment decoded to a JPEG by ffmpeg, cached (media).

`Thumbnailer.jpeg` takes a segment's init + media bytes and a width and returns the
JPEG of its first frame (a segment starts with a keyframe, so only that one frame is
decoded), or of the frame `offset` seconds into it (decoding up to there). ffmpeg runs
as a subprocess, never on the event loop, at a lower CPU priority than the transcoders
(`nice`: a flood of thumbnail requests must not slow a live ladder below real time); at
most `concurrency` run at once, and callers asking for the same key share one run.
Callers waiting for a run are bounded in number and in the media bytes they hold
(`max_waiting`, `max_waiting_bytes`): past them `ThumbnailBusy`, at once. Results are
kept in an LRU cache bounded by entries and bytes, keyed by whatever identifies the
segment (playback id, segment, width).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["MAX_WIDTH", "MIN_WIDTH", "SegmentMedia", "ThumbnailBusy", "ThumbnailError",
           "Thumbnailer"]

log = logging.getLogger(__name__)

MIN_WIDTH = 16
MAX_WIDTH = 1920
MAX_INPUT_BYTES = 64 * 1024 * 1024
"""A segment larger than this is not decoded (a 4 s 1080p segment is a few MB)."""
MAX_JPEG_BYTES = 4 * 1024 * 1024
NICENESS = 10  # added to ffmpeg's: the transcoders (at the node's own) come first


class ThumbnailError(Exception):
    """The segment could not be turned into a thumbnail (bad media, ffmpeg failed or timed out)."""


class ThumbnailBusy(ThumbnailError):
    """Too many thumbnails are waiting to be made: ask again later."""

    REASON = "too many thumbnails are being made"


@dataclass(frozen=True, slots=True)
class SegmentMedia:
    """What a thumbnail is decoded from: an init segment and one media segment after it."""

    init: bytes
    data: bytes
    width: int | None = None  # the rendition's picture width, when known
    offset: float = 0.0  # seconds into the segment; 0: its first frame, a keyframe


class Thumbnailer:
    """Decodes segments to JPEGs with ffmpeg: bounded concurrency, shared runs, LRU cache."""

    def __init__(self, ffmpeg: str, *, concurrency: int = 2, cache_entries: int = 512,
                 cache_bytes: int = 32 * 1024 * 1024, timeout: float = 20.0,
                 max_waiting: int = 32, max_waiting_bytes: int = 128 * 1024 * 1024) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        nice = shutil.which("nice")
        self._command = [nice, "-n", str(NICENESS), ffmpeg] if nice else [ffmpeg]
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._max_waiting = max_waiting
        self._max_waiting_bytes = max_waiting_bytes
        self._queued = 0  # runs waiting for a slot or in one
        self._queued_bytes = 0
        self._timeout = timeout
        self._cache: OrderedDict[Hashable, bytes] = OrderedDict()
        self._cache_entries = cache_entries
        self._cache_bytes = cache_bytes
        self._cached_bytes = 0
        self._running: dict[Hashable, asyncio.Future[bytes]] = {}
        self.decodes = 0
        """ffmpeg runs started (cache misses that were not shared)."""
        self.refused = 0
        """Decodes refused as busy (`ThumbnailBusy`), by `jpeg` or by a caller's `busy`."""

    @property
    def queued(self) -> int:
        """Decodes running or waiting for a slot."""
        return self._queued

    @property
    def busy(self) -> bool:
        """Whether a decode asked for now would be refused: callers check before reading a
        segment from storage for one (and count the refusal, `refuse`)."""
        return self._queued >= self._concurrency + self._max_waiting

    def refuse(self) -> None:
        """A caller turned a request away because the thumbnailer was `busy`."""
        self.refused += 1

    def cached(self, key: Hashable) -> bytes | None:
        jpeg = self._cache.get(key)
        if jpeg is not None:
            self._cache.move_to_end(key)
        return jpeg

    async def jpeg(self, key: Hashable, media: SegmentMedia, width: int) -> bytes:
        """The JPEG of `media`'s first frame, `width` pixels wide (height keeps the aspect)."""
        if not MIN_WIDTH <= width <= MAX_WIDTH:
            raise ValueError(f"width must be from {MIN_WIDTH} to {MAX_WIDTH}")
        cached = self.cached(key)
        if cached is not None:
            return cached
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            jpeg = await self._decode(media, width)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc if isinstance(exc, Exception)
                                     else ThumbnailError("cancelled"))
                future.exception()  # retrieved: sharers may be gone
            raise
        finally:
            self._running.pop(key, None)
        future.set_result(jpeg)
        self._remember(key, jpeg)
        return jpeg

    def _remember(self, key: Hashable, jpeg: bytes) -> None:
        if len(jpeg) > self._cache_bytes:
            return
        self._cache[key] = jpeg
        self._cached_bytes += len(jpeg)
        while len(self._cache) > self._cache_entries or self._cached_bytes > self._cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= len(old)

    async def _decode(self, media: SegmentMedia, width: int) -> bytes:
        size = len(media.init) + len(media.data)
        if size > MAX_INPUT_BYTES:
            raise ThumbnailError("segment too large to decode")
        if self.busy or (self._queued >= self._concurrency
                         and self._queued_bytes + size > self._max_waiting_bytes):
            self.refused += 1
            raise ThumbnailBusy(ThumbnailBusy.REASON)
        self._queued += 1
        self._queued_bytes += size
        try:
            async with self._slots:
                self.decodes += 1
                return await self._run(media.init + media.data, width, media.offset)
        finally:
            self._queued -= 1
            self._queued_bytes -= size

    async def _run(self, data: bytes, width: int, offset: float) -> bytes:
        # Output-side -ss: frames before the offset are decoded and dropped (a segment is
        # a GOP or two), which finds the exact frame rather than the keyframe before it.
        seek = ["-ss", f"{offset:.3f}"] if offset > 0 else []
        proc = await asyncio.create_subprocess_exec(
            *self._command, "-hide_banner", "-loglevel", "error", "-nostdin",
            "-threads", "1", "-f", "mp4", "-i", "pipe:0", *seek,
            "-map", "0:v:0", "-frames:v", "1", "-vf", f"scale={width}:-2",
            "-q:v", "4", "-f", "image2pipe", "-c:v", "mjpeg", "pipe:1",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(self._exchange(proc, data), self._timeout)
        except TimeoutError as exc:
            raise ThumbnailError("ffmpeg took too long") from exc
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.returncode != 0 or not out.startswith(b"\xff\xd8"):
            reason = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no frame"]
            log.info("thumbnail decode failed rc=%s reason=%s", proc.returncode, reason[0])
            raise ThumbnailError("the segment did not decode")
        return out

    @staticmethod
    async def _exchange(proc: asyncio.subprocess.Process, data: bytes) -> tuple[bytes, bytes]:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

        async def write() -> None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(data)
                await proc.stdin.drain()
                proc.stdin.close()

        async def read_bounded(stream: asyncio.StreamReader, limit: int) -> bytes:
            out = bytearray()
            while chunk := await stream.read(65536):
                out += chunk
                if len(out) > limit:
                    raise ThumbnailError("ffmpeg wrote more than a thumbnail")
            return bytes(out)

        _, out, err = await asyncio.gather(write(), read_bounded(proc.stdout, MAX_JPEG_BYTES),
                                           read_bounded(proc.stderr, 64 * 1024))
        await proc.wait()
        return out, err
