"""The slate: a synthetic input that keeps a broadcast on the air while nobody publishes (media).

While a broadcast waits inside its reconnect window for a publisher, the hub lets a
slate feed it as if it were one: a short FLV clip (a "We'll be right back" card or the
profile's image, silent AAC, keyframes every GOP of the ladder) is generated once per
(size, frame rate, GOP, audio rate, image) by ffmpeg into a cache file, then fed in a
loop with continuous timestamps, paced at real time. Generating runs in an ffmpeg
subprocess and reading the clip in a thread, so the event loop never waits on either.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from golive.formats import (
    CodecError,
    FlvError,
    FlvReader,
    MediaTag,
    TagType,
    parse_audio_tag,
    parse_video_tag,
)

__all__ = ["SlateCache", "SlateClip", "SlateError", "SlateRun", "SlateSpec"]

log = logging.getLogger(__name__)

CARD_TEXT = "We'll be right back"
CARD_COLOUR = "0x1d2633"
MAX_CLIP_BYTES = 32 * 1024 * 1024  # a few seconds of a still picture; far less in practice
MIN_CLIP_SECONDS = 4.0  # whole GOPs of at least this long make one loop
GENERATE_TIMEOUT = 120.0
MAX_BEHIND = 1.0  # seconds the feed may run late before it stops catching up


class SlateError(RuntimeError):
    """The slate clip could not be made or read."""


@dataclass(frozen=True, slots=True)
class SlateSpec:
    """What one slate clip looks like; equal specs share one cache file."""

    width: int
    height: int
    frame_rate: float
    gop_frames: int
    sample_rate: int  # 0: no audio track (the ladder has none)
    image: str = ""  # a picture file to show instead of the built-in card

    def __post_init__(self) -> None:
        if not (16 <= self.width <= 7680 and 16 <= self.height <= 4320):
            raise ValueError(f"slate size {self.width}x{self.height} out of range")
        if not 1 <= self.frame_rate <= 240 or not 1 <= self.gop_frames <= 2400:
            raise ValueError("slate frame rate or GOP out of range")
        if self.sample_rate not in (0, 44100, 48000):
            raise ValueError(f"slate sample rate {self.sample_rate} not supported")

    @property
    def even_size(self) -> tuple[int, int]:
        return self.width // 2 * 2, self.height // 2 * 2

    def cache_name(self) -> str:
        image_key = ""
        if self.image:
            try:
                st = os.stat(self.image)
                image_key = f"{self.image}:{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                image_key = self.image
        digest = hashlib.sha256(image_key.encode()).hexdigest()[:12]
        w, h = self.even_size
        return (f"slate-{w}x{h}-{self.frame_rate:.3f}fps-g{self.gop_frames}"
                f"-a{self.sample_rate}-{digest}.flv")


@dataclass(frozen=True, slots=True)
class SlateClip:
    """One loop of the slate: headers once, then media tags with their loop length."""

    headers: tuple[MediaTag, ...]
    media: tuple[MediaTag, ...]
    duration_ms: int

    @classmethod
    def parse(cls, data: bytes) -> SlateClip:
        try:
            tags = FlvReader().feed(data)
        except FlvError as exc:
            raise SlateError(f"slate clip is not valid FLV: {exc}") from exc
        headers: list[MediaTag] = []
        media: list[MediaTag] = []
        frame_ms: list[int] = []
        audio_ms: list[int] = []
        for tag in tags:
            try:
                if tag.type is TagType.SCRIPT:
                    headers.append(tag)
                elif tag.type is TagType.VIDEO:
                    info = parse_video_tag(tag.body)
                    if info.is_sequence_header:
                        headers.append(tag)
                    elif info.is_frame:
                        media.append(tag)
                        frame_ms.append(tag.timestamp)
                elif tag.type is TagType.AUDIO:
                    audio = parse_audio_tag(tag.body)
                    if audio.is_sequence_header:
                        headers.append(tag)
                    else:
                        media.append(tag)
                        audio_ms.append(tag.timestamp)
            except CodecError as exc:
                raise SlateError(f"slate clip has a malformed tag: {exc}") from exc
        if len(frame_ms) < 2:
            raise SlateError("slate clip has fewer than two video frames")
        # One loop lasts as long as its video: its frames times the frame interval.
        step = (frame_ms[-1] - frame_ms[0]) / (len(frame_ms) - 1)
        duration = max(1, round(len(frame_ms) * step))
        # Audio frames ending past the loop would overlap the next loop's first samples.
        audio_step = (audio_ms[-1] - audio_ms[0]) / (len(audio_ms) - 1) \
            if len(audio_ms) > 1 else 0.0
        kept = tuple(t for t in media
                     if t.type is TagType.VIDEO or t.timestamp + audio_step <= duration)
        return cls(tuple(headers), kept, duration)


class SlateCache:
    """Slate clips on disk under `directory`, made on first use; one ffmpeg per spec at once."""

    def __init__(self, ffmpeg: str, directory: Path) -> None:
        self._ffmpeg = ffmpeg
        self._dir = directory
        self._making: dict[SlateSpec, asyncio.Future[SlateClip]] = {}
        self._clips: dict[SlateSpec, SlateClip] = {}  # a handful: one per ladder in use
        self.generated = 0  # clips made by ffmpeg (not found in the cache)

    async def clip(self, spec: SlateSpec) -> SlateClip:
        """The clip of `spec`: from memory, the cache file, or made now."""
        clip = self._clips.get(spec)
        if clip is not None:
            return clip
        making = self._making.get(spec)
        if making is None:
            making = asyncio.ensure_future(self._load_or_make(spec))
            self._making[spec] = making
            making.add_done_callback(lambda _: self._making.pop(spec, None))
        clip = await asyncio.shield(making)
        self._clips[spec] = clip
        return clip

    async def _load_or_make(self, spec: SlateSpec) -> SlateClip:
        path = self._dir / spec.cache_name()
        if not await asyncio.to_thread(path.is_file):
            await self._make(spec, path)
            self.generated += 1
        data = await asyncio.to_thread(_read_bounded, path)
        return SlateClip.parse(data)

    async def _make(self, spec: SlateSpec, path: Path) -> None:
        await asyncio.to_thread(self._dir.mkdir, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        text = path.with_name(f".{path.name}.{os.getpid()}.txt")
        await asyncio.to_thread(text.write_text, CARD_TEXT, encoding="utf-8")
        try:
            args = self._command(spec, tmp, text)
            proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                _, err = await asyncio.wait_for(proc.communicate(), GENERATE_TIMEOUT)
            except (TimeoutError, asyncio.CancelledError):
                proc.kill()
                await proc.wait()
                raise
            if proc.returncode != 0:
                tail = err.decode(errors="replace").strip()[-500:]
                raise SlateError(f"ffmpeg could not make the slate (exit {proc.returncode}): "
                                 f"{tail}")
            await asyncio.to_thread(os.replace, tmp, path)
            log.info("slate made path=%s", path)
        finally:
            for leftover in (tmp, text):
                await asyncio.to_thread(leftover.unlink, missing_ok=True)

    def _command(self, spec: SlateSpec, out: Path, text: Path) -> list[str]:
        w, h = spec.even_size
        rate = f"{spec.frame_rate:.6g}"
        gops = max(1, -(-int(MIN_CLIP_SECONDS * spec.frame_rate) // spec.gop_frames))
        frames = gops * spec.gop_frames
        seconds = f"{frames / spec.frame_rate:.6f}"  # both tracks end together
        args = [self._ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        if spec.image:
            args += ["-loop", "1", "-framerate", rate, "-t", seconds, "-i", spec.image]
            picture = (f"[0:v]scale={w}:{h}:force_original_aspect_ratio=decrease,"
                       f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color={CARD_COLOUR},"
                       f"fps={rate},format=yuv420p[v]")
        else:
            args += ["-f", "lavfi", "-i", f"color=c={CARD_COLOUR}:s={w}x{h}:r={rate}:d={seconds}"]
            picture = (f"[0:v]drawtext=textfile='{text}':fontcolor=white:fontsize=h/12:"
                       "x=(w-tw)/2:y=(h-th)/2,format=yuv420p[v]")
        if spec.sample_rate:
            args += ["-f", "lavfi", "-i", f"anullsrc=r={spec.sample_rate}:cl=stereo:d={seconds}"]
        args += ["-filter_complex", picture, "-map", "[v]"]
        if spec.sample_rate:
            args += ["-map", "1:a", "-c:a", "aac", "-b:a", "64k", "-ar", str(spec.sample_rate)]
        args += [
            "-c:v", "libx264", "-preset", "veryfast",
            "-tune", "stillimage", "-profile:v", "high", "-bf", "0",
            "-g", str(spec.gop_frames), "-keyint_min", str(spec.gop_frames),
            "-sc_threshold", "0", "-b:v", "300k", "-maxrate", "600k", "-bufsize", "1200k",
        ]
        args += ["-f", "flv", str(out)]
        return args


def _read_bounded(path: Path) -> bytes:
    with path.open("rb") as f:
        data = f.read(MAX_CLIP_BYTES + 1)
    if len(data) > MAX_CLIP_BYTES:
        raise SlateError(f"slate clip {path} is larger than {MAX_CLIP_BYTES} bytes")
    return data


class SlateRun:
    """Feeds one broadcast from the slate until stopped: headers, then the clip in a loop,
    each tag when its time has come (real time), timestamps continuing across loops."""

    def __init__(
        self,
        cache: SlateCache,
        spec: SlateSpec,
        push: Callable[[MediaTag], None],
        *,
        on_error: Callable[[str], None],
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._cache = cache
        self._spec = spec
        self._push = push
        self._on_error = on_error
        self._clock = clock or asyncio.get_running_loop().time
        self.loops = 0
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        self._task.cancel()

    @property
    def running(self) -> bool:
        return not self._task.done()

    async def _run(self) -> None:
        try:
            clip = await self._cache.clip(self._spec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("slate unavailable: %s", exc)
            self._on_error(str(exc))
            return
        for tag in clip.headers:
            self._push(MediaTag(tag.type, 0, tag.body))
        started = self._clock()
        offset = 0
        while True:
            for tag in clip.media:
                at = offset + tag.timestamp
                delay = started + at / 1000 - self._clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -MAX_BEHIND:
                    # The loop was held up: go on from now instead of a burst of catch-up.
                    started -= delay
                self._push(MediaTag(tag.type, at & 0xFFFFFFFF, tag.body))
            offset += clip.duration_ms
            self.loops += 1
            await asyncio.sleep(0)  # never a loop without a pause, however late it runs
