"""Sources, FLV reading and a recording `TranscoderEvents` for the media tests."""

from __future__ import annotations

import asyncio
import stat
import struct
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.mediatools import FFMPEG

from golive.formats.isobmff import Fragment, InitSegment
from golive.formats.tag import MediaTag, TagType
from golive.media.progress import EncodeProgress


def encode_source(
    path: Path, *, seconds: float, size: str, rate: str, gop: int, sample_rate: int
) -> Path:
    """testsrc2 + sine as H.264/AAC FLV, like a publisher's `-c copy` stream."""
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={sample_rate}",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
         "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "0",
         "-b:v", "1000k", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "96k", "-ar", str(sample_rate), "-ac", "2",
         "-f", "flv", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


@pytest.fixture(scope="session")
def source_360p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of 640x360 at 30 fps, keyframe every second, 48 kHz audio."""
    return encode_source(
        tmp_path_factory.mktemp("media") / "360p.flv",
        seconds=6, size="640x360", rate="30", gop=30, sample_rate=48000,
    )  # fmt: skip


@pytest.fixture(scope="session")
def source_720p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of 1280x720 at 29.97 fps with a 2 s publisher GOP, 44.1 kHz audio."""
    return encode_source(
        tmp_path_factory.mktemp("media") / "720p.flv",
        seconds=4, size="1280x720", rate="30000/1001", gop=60, sample_rate=44100,
    )  # fmt: skip


def read_flv(path: Path) -> list[MediaTag]:
    """FLV file to tags (test-only reader: header, then tag + previous-tag-size pairs)."""
    return parse_flv(path.read_bytes())


def parse_flv(data: bytes) -> list[MediaTag]:
    """FLV bytes to tags (see `read_flv`)."""
    assert data[:3] == b"FLV"
    offset = struct.unpack(">I", data[5:9])[0] + 4
    tags = []
    while offset + 11 <= len(data):
        kind = data[offset]
        size = int.from_bytes(data[offset + 1 : offset + 4], "big")
        ts = int.from_bytes(data[offset + 4 : offset + 7], "big") | (data[offset + 7] << 24)
        tags.append(MediaTag(TagType(kind), ts, data[offset + 11 : offset + 11 + size]))
        offset += 11 + size + 4
    return tags


async def feed(
    push: Callable[[MediaTag], None],
    tags: Iterable[MediaTag],
    *,
    pace: float = 0,
    offset_ms: int = 0,
) -> None:
    """Push tags, at `pace` x real time by their timestamps (0: as fast as possible)."""
    start = time.monotonic()
    first: int | None = None
    for tag in tags:
        if first is None:
            first = tag.timestamp
        if pace:
            delay = start + (tag.timestamp - first) / 1000 / pace - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        push(MediaTag(tag.type, tag.timestamp + offset_ms, tag.body) if offset_ms else tag)
    await asyncio.sleep(0)


@dataclass
class Recorder:
    """TranscoderEvents that keeps everything, split by ffmpeg run (a restart starts a new one)."""

    run: int = 0
    inits: dict[tuple[int, str], InitSegment] = field(default_factory=dict)
    fragments: dict[tuple[int, str], list[Fragment]] = field(default_factory=dict)
    restarts: list[tuple[float, int, str]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    progress: list[EncodeProgress] = field(default_factory=list)
    warnings: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    order_errors: list[str] = field(default_factory=list)

    def on_init(self, rendition: str, init: InitSegment) -> None:
        self.inits[(self.run, rendition)] = init

    def on_fragment(self, rendition: str, fragment: Fragment, origin: float | None) -> None:
        if origin is None:
            self.order_errors.append(f"fragment without an ingest date: run {self.run} {rendition}")
        if (self.run, rendition) not in self.inits:
            self.order_errors.append(f"fragment before init: run {self.run} {rendition}")
        self.fragments.setdefault((self.run, rendition), []).append(fragment)

    def on_restart(self, attempt: int, reason: str) -> None:
        self.restarts.append((time.monotonic(), attempt, reason))
        self.run += 1

    def on_rendition_dropped(self, rendition: str, reason: str) -> None:
        self.dropped.append((rendition, reason))

    def on_rendition_restored(self, rendition: str) -> None:
        self.restored.append(rendition)

    def on_progress(self, progress: EncodeProgress) -> None:
        self.progress.append(progress)

    def on_warning(self, code: str, message: str, data: dict[str, Any]) -> None:
        self.warnings.append((code, message, data))

    def count(self, run: int | None = None) -> int:
        return sum(len(v) for (r, _), v in self.fragments.items() if run is None or r == run)


async def until(check: Callable[[], bool], *, limit: float = 30, what: str = "condition") -> None:
    """Wait for `check()`; `limit` (seconds) is only a guard against hangs."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def pid_alive(pid: int) -> bool:
    """True while the pid exists at all, zombies included."""
    return Path(f"/proc/{pid}").exists()


def fake_ffmpeg(tmp_path: Path, script: str, name: str = "ffmpeg") -> str:
    """An executable shell script standing in for ffmpeg (a failure no real build gives on cue)."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)
