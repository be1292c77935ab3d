"""A whole golive node started in-process on free ports, plus helpers to drive it."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from tests.mediatools import FFMPEG, make_source

from golive.app import Golive
from golive.formats.flv import encode_header, encode_tag
from golive.formats.tag import MediaTag, TagType
from golive.settings import Settings
from golive.stream import Broadcast

ADMIN = "test-admin-token"
T = TypeVar("T")

# Seconds a test node gives an SRT caller's stream key check, and its callers wait for the
# answer. libsrt's caller gives up after 3 s and golive answers "try again" after 3 s
# (`srt_check_timeout`): on a loaded test machine one stalled check failed a test about
# something else (CI, 2026-12-07). A guard against hangs, not a timing assertion.
SRT_CHECK_WAIT = 30


def ipv6_loopback() -> bool:
    """Whether this machine can bind ::1 (some containers have no IPv6 at all)."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def srt_caller(url: str) -> str:
    """`url` for ffmpeg's libsrt caller, waiting for the node's answer as long as it may
    take (`SRT_CHECK_WAIT`; ffmpeg's option is in milliseconds)."""
    return f"{url}{'&' if '?' in url else '?'}connect_timeout={SRT_CHECK_WAIT * 1000}"


def node_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "host": "127.0.0.1",
        "http_port": 0,
        "rtmp_port": 0,
        "srt_port": 0,
        "admin_token": ADMIN,
        "default_reconnect_window": 2.0,
        "srt_check_timeout": SRT_CHECK_WAIT,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Golive]:
    async with Golive(node_settings(tmp_path)) as n:
        yield n


@pytest.fixture
async def api(node: Golive) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"{node.http_url}/api/v1",
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ) as client:
        yield client


@pytest.fixture(scope="session")
def source_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of 640x360 30 fps H.264 + AAC, keyframe every second."""
    return make_source(tmp_path_factory.mktemp("media") / "source.flv")


@pytest.fixture(scope="session")
def source_480p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of 854x480 30 fps H.264 + AAC: the default profile makes a 480p + 360p ladder."""
    return make_source(tmp_path_factory.mktemp("media") / "source-480p.flv", size="854x480",
                       video_kbps=1500)


@pytest.fixture(scope="session")
def source_720p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of 1280x720 30 fps H.264 + AAC: the default profile makes 720p, 480p, 360p."""
    return make_source(tmp_path_factory.mktemp("media") / "source-720p.flv", size="1280x720",
                       video_kbps=2500)


async def create_stream(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await api.post("/live-streams", json={"name": "test", **body})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def get_stream(api: httpx.AsyncClient, stream_id: str) -> dict[str, Any]:
    response = await api.get(f"/live-streams/{stream_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = 20, what: str = "condition"
) -> T:
    """Poll `check` until it returns something truthy; a generous guard against hangs."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


async def wait_status(api: httpx.AsyncClient, stream_id: str, status: str,
                      timeout: float = 20) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        data = await get_stream(api, stream_id)
        return data if data["status"] == status else None

    return await eventually(check, timeout=timeout, what=f"status {status}")


async def wait_ready_asset(api: httpx.AsyncClient, stream_id: str,
                           timeout: float = 60) -> dict[str, Any]:
    """The first ready asset a stream's recording became (waits for it)."""
    async def ready() -> dict[str, Any] | None:
        assets = (await api.get("/assets", params={"live_stream_id": stream_id})).json()
        done = [a for a in assets["data"] if a["status"] == "ready"]
        return done[0] if done else None

    asset: dict[str, Any] = await eventually(ready, timeout=timeout, what="the asset")
    return asset


async def wait_process(proc: Any, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("process did not exit in time")
        await asyncio.sleep(0.1)
    code: int = proc.returncode
    return code


class FlvDump:
    """A media sink that writes a broadcast's tags to an FLV file (the transcoder's view)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tags = 0
        self._file = path.open("wb")
        self._file.write(encode_header(audio=True, video=True))

    def push(self, tag: MediaTag) -> None:
        self._file.write(encode_tag(tag))
        self.tags += 1

    def close(self) -> None:
        self._file.close()


class _PublishersOnly:
    """A sink passing on what publishers send, not the slate that fills their absence."""

    def __init__(self, broadcast: Broadcast, sink: FlvDump) -> None:
        self._broadcast = broadcast
        self._sink = sink

    def push(self, tag: MediaTag) -> None:
        if not self._broadcast.on_slate:
            self._sink.push(tag)


class DumpObserver:
    """Attaches an FlvDump to every broadcast that starts on the node."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.dumps: dict[str, FlvDump] = {}
        self.events: list[tuple[str, str]] = []

    def broadcast_started(self, broadcast: Broadcast) -> None:
        dump = FlvDump(self.directory / f"{broadcast.stream_id}.flv")
        self.dumps[broadcast.stream_id] = dump
        broadcast.add_sink(_PublishersOnly(broadcast, dump))
        self.events.append(("started", broadcast.id))

    def publisher_resumed(self, broadcast: Broadcast) -> None:
        self.events.append(("resumed", broadcast.id))

    def publisher_lost(self, broadcast: Broadcast) -> None:
        self.events.append(("lost", broadcast.id))

    def broadcast_ended(self, broadcast: Broadcast) -> None:
        self.events.append(("ended", broadcast.id))
        dump = self.dumps.get(broadcast.stream_id)
        if dump is not None:
            dump.close()


class KeyframeClock:
    """A broadcast sink noting when the first video keyframe arrives once armed."""

    def __init__(self) -> None:
        self.armed = False
        self.at: float | None = None  # time.monotonic()

    def push(self, tag: MediaTag) -> None:
        body = tag.body
        if self.armed and self.at is None and tag.type is TagType.VIDEO and len(body) > 1:
            # A keyframe's coded frame (legacy AVC/HEVC: packet type 1), not its configuration.
            if body[0] >> 4 == 1 and body[1] == 1:
                self.at = time.monotonic()


async def segment_rgb(hls: httpx.AsyncClient, uri: str, *, after_discontinuity: bool,
                      newest: bool) -> tuple[int, int, int] | None:
    """The mean colour (r, g, b) of the first frame of one whole segment of the media
    playlist `uri`: the newest or the first one, of those after the playlist's last
    discontinuity when asked (None while there is none)."""
    text = (await hls.get(uri)).text
    listed = text
    if after_discontinuity:
        before, _, listed = text.rpartition("#EXT-X-DISCONTINUITY\n")
        if not before:
            return None
    segments = re.findall(r"^(?!#)(\S+\.m4s)$", listed, re.M)
    maps = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)
    if not maps or not segments:
        return None
    base = uri.rsplit("/", 1)[0]
    media = (await hls.get(f"{base}/{maps[-1]}")).content
    media += (await hls.get(f"{base}/{segments[-1 if newest else 0]}")).content
    decoded = await asyncio.to_thread(
        subprocess.run,
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-i", "pipe:0", "-frames:v", "1",
         "-vf", "scale=1:1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        input=media, capture_output=True, timeout=30, check=True,
    )
    r, g, b = decoded.stdout[:3]
    return r, g, b
