"""The slate clip: made once by ffmpeg into the cache, read back by the next cache, and
fed in a loop with continuous timestamps."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from pathlib import Path

import pytest
from tests.mediatools import FFMPEG

from golive.formats import MediaTag, TagType, parse_audio_tag, parse_video_tag
from golive.media.slate import SlateCache, SlateRun, SlateSpec

SPEC = SlateSpec(width=320, height=180, frame_rate=30.0, gop_frames=15, sample_rate=48000)


async def test_made_once_then_read_from_the_cache(tmp_path: Path) -> None:
    cache = SlateCache(FFMPEG, tmp_path)
    first, again = await asyncio.gather(cache.clip(SPEC), cache.clip(SPEC))
    assert first is again and cache.generated == 1
    assert await asyncio.to_thread(lambda: [p.name for p in tmp_path.iterdir()]) == [
        SPEC.cache_name()]

    later = SlateCache(FFMPEG, tmp_path)  # the next run of the node
    clip = await later.clip(SPEC)
    assert later.generated == 0 and clip == first
    video = [t for t in clip.media if t.type is TagType.VIDEO]
    keyframes = [t.timestamp for t in video if parse_video_tag(t.body).is_keyframe]
    assert len(video) % SPEC.gop_frames == 0 and len(keyframes) == len(video) // 15
    assert clip.duration_ms >= 4000
    audio = [t for t in clip.media if t.type is TagType.AUDIO]
    assert audio and all(t.timestamp < clip.duration_ms for t in audio)
    configs = [t for t in clip.headers if t.type is TagType.AUDIO]
    assert configs and parse_audio_tag(configs[0].body).is_sequence_header


async def test_the_loop_continues_its_timestamps(tmp_path: Path) -> None:
    cache = SlateCache(FFMPEG, tmp_path)
    clip = await cache.clip(SPEC)
    got: list[MediaTag] = []
    twice = 2 * len(clip.media) + len(clip.headers) + 1
    done = asyncio.Event()

    def push(tag: MediaTag) -> None:
        got.append(tag)
        if len(got) >= twice:
            done.set()

    now = 0.0

    def clock() -> float:  # time runs ahead on its own: every tag is due at once
        nonlocal now
        now += 10.0
        return now

    run = SlateRun(cache, SPEC, push, on_error=lambda reason: pytest.fail(reason), clock=clock)
    await asyncio.wait_for(done.wait(), 30)
    run.stop()
    assert run.loops >= 2
    video = [t.timestamp for t in got[len(clip.headers):] if t.type is TagType.VIDEO]
    assert all(b > a for a, b in itertools.pairwise(video))
    step = video[1] - video[0]
    assert max(b - a for a, b in itertools.pairwise(video)) <= step + 1


async def test_a_profile_image_is_shown(tmp_path: Path) -> None:
    image = tmp_path / "card.png"
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=green:s=64x36", "-frames:v", "1", str(image)], check=True)
    spec = SlateSpec(width=320, height=180, frame_rate=25.0, gop_frames=25, sample_rate=0,
                     image=str(image))
    clip = await SlateCache(FFMPEG, tmp_path / "cache").clip(spec)
    assert not [t for t in clip.media if t.type is TagType.AUDIO]
    flv = tmp_path / "cache" / spec.cache_name()
    decoded = subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-i", str(flv), "-frames:v", "1",
         "-vf", "scale=1:1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True, check=True, timeout=30,
    ).stdout
    r, g, b = decoded[:3]
    assert g > 2 * r and g > 2 * b


async def test_a_missing_image_is_reported(tmp_path: Path) -> None:
    spec = SlateSpec(width=320, height=180, frame_rate=25.0, gop_frames=25, sample_rate=0,
                     image=str(tmp_path / "nope.png"))
    reasons: list[str] = []
    failed = asyncio.Event()

    def on_error(reason: str) -> None:
        reasons.append(reason)
        failed.set()

    SlateRun(SlateCache(FFMPEG, tmp_path / "cache"), spec, lambda tag: None, on_error=on_error)
    await asyncio.wait_for(failed.wait(), 30)
    assert "ffmpeg could not make the slate" in reasons[0]
    # Nothing half-made left behind.
    assert not await asyncio.to_thread(lambda: list((tmp_path / "cache").iterdir()))
