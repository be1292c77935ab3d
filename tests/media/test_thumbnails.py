"""Thumbnails: a real CMAF segment decoded by real ffmpeg; cache, shared runs, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from tests.formats.test_progressive import encode
from tests.mediatools import FFMPEG, FFPROBE

from golive.media import SegmentMedia, ThumbnailBusy, Thumbnailer, ThumbnailError


@pytest.fixture(scope="module")
def segment() -> SegmentMedia:
    init, fragments = encode(2)
    return SegmentMedia(init, b"".join(fragments[:5]), 320)  # the first second: one GOP


def picture(jpeg: bytes, tmp_path: Path) -> tuple[str, int, int]:
    path = tmp_path / "thumb.jpg"
    path.write_bytes(jpeg)
    stream = json.loads(subprocess.run(
        [FFPROBE, "-v", "error", "-print_format", "json", "-show_streams", str(path)],
        check=True, capture_output=True, timeout=60,
    ).stdout)["streams"][0]  # fmt: skip
    return stream["codec_name"], stream["width"], stream["height"]


async def test_first_frame_becomes_a_jpeg_of_the_asked_width(
    segment: SegmentMedia, tmp_path: Path
) -> None:
    thumbnailer = Thumbnailer(FFMPEG)
    jpeg = await thumbnailer.jpeg(("pid", 1, 160), segment, 160)
    assert picture(jpeg, tmp_path) == ("mjpeg", 160, 90)


async def test_cache_and_shared_runs_decode_once(segment: SegmentMedia) -> None:
    thumbnailer = Thumbnailer(FFMPEG, concurrency=1)
    results = await asyncio.gather(*(thumbnailer.jpeg("same", segment, 96) for _ in range(5)))
    assert len(set(results)) == 1 and thumbnailer.decodes == 1
    assert await thumbnailer.jpeg("same", segment, 96) == results[0]
    assert thumbnailer.decodes == 1
    await thumbnailer.jpeg("other", segment, 96)
    assert thumbnailer.decodes == 2


async def test_cache_is_bounded_by_entries(segment: SegmentMedia) -> None:
    thumbnailer = Thumbnailer(FFMPEG, cache_entries=2)
    for key in ("a", "b", "c"):
        await thumbnailer.jpeg(key, segment, 64)
    assert thumbnailer.cached("a") is None
    assert thumbnailer.cached("b") is not None and thumbnailer.cached("c") is not None


async def test_bad_media_is_a_thumbnail_error(segment: SegmentMedia) -> None:
    thumbnailer = Thumbnailer(FFMPEG)
    with pytest.raises(ThumbnailError):
        await thumbnailer.jpeg("junk", SegmentMedia(b"\x00" * 64, b"junk" * 100), 64)
    with pytest.raises(ThumbnailError):  # media without its init
        await thumbnailer.jpeg("no-init", SegmentMedia(b"", segment.data), 64)
    assert thumbnailer.cached("junk") is None


async def test_width_is_bounded(segment: SegmentMedia) -> None:
    thumbnailer = Thumbnailer(FFMPEG)
    for width in (0, 15, 1921):
        with pytest.raises(ValueError):
            await thumbnailer.jpeg("w", segment, width)
    assert thumbnailer.decodes == 0


async def test_offset_picks_a_later_frame(segment: SegmentMedia) -> None:
    thumbnailer = Thumbnailer(FFMPEG)
    first = await thumbnailer.jpeg("first", segment, 160)
    later = await thumbnailer.jpeg("later", replace(segment, offset=0.5), 160)
    assert first != later  # testsrc2 moves every frame
    with pytest.raises(ThumbnailError):  # past the end of the segment: no frame
        await thumbnailer.jpeg("past", replace(segment, offset=30), 160)


async def turns_until(condition: Callable[[], bool]) -> None:
    """Let the loop run until `condition` holds (tasks that only await each other)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def test_waiting_decodes_are_bounded_in_number_and_bytes(
    segment: SegmentMedia, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A flood of distinct thumbnail requests (every width, every segment) must not queue
    # without end, each holding its segment's bytes: past the bounds, busy at once.
    thumbnailer = Thumbnailer(FFMPEG, concurrency=1, max_waiting=2)
    release = asyncio.Event()
    started: list[int] = []

    async def held_run(data: bytes, width: int, offset: float) -> bytes:
        started.append(width)
        await release.wait()
        return b"\xff\xd8" + bytes([width])

    monkeypatch.setattr(thumbnailer, "_run", held_run)
    tasks = [asyncio.create_task(thumbnailer.jpeg(key, segment, 64 + key)) for key in range(3)]
    await turns_until(lambda: started == [64] and thumbnailer._queued == 3)
    with pytest.raises(ThumbnailBusy):
        await thumbnailer.jpeg(99, segment, 64)
    assert thumbnailer.busy and thumbnailer.refused == 1 and thumbnailer.queued == 3
    release.set()
    assert len(await asyncio.gather(*tasks)) == 3 and started == [64, 65, 66]
    assert await thumbnailer.jpeg(99, segment, 64) == b"\xff\xd8\x40"  # room again

    size = len(segment.init) + len(segment.data)
    by_bytes = Thumbnailer(FFMPEG, concurrency=1, max_waiting=10,
                           max_waiting_bytes=2 * size + size // 2)
    release.clear()
    started.clear()
    monkeypatch.setattr(by_bytes, "_run", held_run)
    tasks = [asyncio.create_task(by_bytes.jpeg(key, segment, 64 + key)) for key in range(2)]
    await turns_until(lambda: by_bytes._queued == 2)
    with pytest.raises(ThumbnailBusy):  # a third segment's bytes would pass the bound
        await by_bytes.jpeg(99, segment, 64)
    release.set()
    await asyncio.gather(*tasks)


async def test_ffmpeg_runs_at_a_lower_priority_than_the_node(
    segment: SegmentMedia, tmp_path: Path
) -> None:
    # The transcoders run at the node's own priority; a decode waits for them.
    report = tmp_path / "niceness"
    fake = tmp_path / "ffmpeg"
    fake.write_text(f"#!/bin/sh\nnice > {report}\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(ThumbnailError):
        await Thumbnailer(str(fake)).jpeg("k", segment, 64)
    assert int(report.read_text()) == os.nice(0) + 10
