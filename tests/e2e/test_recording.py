"""Recording end to end: RTMP in, segments to storage as they complete, an asset that plays.

A real S3-compatible server (moto) is started by the tests; players are m3u8 (parse),
ffprobe (decode) and, in tests/web, Chromium with hls.js.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import (
    ADMIN,
    create_stream,
    eventually,
    node_settings,
    wait_process,
    wait_status,
)
from tests.llhls_rules import check_media_playlist, check_multivariant
from tests.mediatools import FFPROBE, ffmpeg_publish, make_source, stop
from tests.s3server import S3Server, s3_server

from golive.app import Golive

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
async def s3_node(tmp_path: Path, s3: S3Server) -> AsyncIterator[Golive]:
    settings = node_settings(tmp_path, storage_timeout=2.0,
                             **s3.storage_settings(prefix=tmp_path.name))
    async with Golive(settings) as node:
        yield node


async def api_client(node: Golive) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{node.http_url}/api/v1",
                             headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)


async def wait_asset(api: httpx.AsyncClient, stream_id: str, *, timeout: float = 60
                     ) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        response = await api.get("/assets", params={"live_stream_id": stream_id})
        assert response.status_code == 200, response.text
        assets = response.json()["data"]
        done = [a for a in assets if a["status"] != "preparing"]
        return done[0] if done else None

    asset: dict[str, Any] = await eventually(ready, timeout=timeout, what="the asset")
    return asset


def probe_duration(path: Path) -> float:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
         str(path)], capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return float(out.stdout.strip())


def decode_frames(path: Path) -> int:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().split(",")[0])


async def check_vod(node_url: str, playback_id: str, tmp_path: Path) -> dict[str, float]:
    """Fetch the asset's playlists and every segment; each decodes. Returns seconds per rendition."""
    durations: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=f"{node_url}/vod/", timeout=30) as vod:
        response = await vod.get(f"{playback_id}.m3u8")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
        multivariant = check_multivariant(response.text)
        for variant in multivariant.playlists:
            assert variant.stream_info.bandwidth and variant.stream_info.codecs
            response = await vod.get(variant.uri)
            assert response.status_code == 200, response.text
            text = response.text
            assert "max-age=" in response.headers["cache-control"]
            playlist = check_media_playlist(text, low_latency=False)
            assert playlist.playlist_type == "vod" and playlist.is_endlist
            assert "#EXT-X-PROGRAM-DATE-TIME:" in text
            assert playlist.segments and playlist.segment_map
            assert playlist.target_duration >= max(s.duration for s in playlist.segments) - 0.5
            base = variant.uri.rsplit("/", 1)[0]
            inits: dict[str, bytes] = {}
            name = variant.uri.rsplit("/", 1)[1].removesuffix(".m3u8")
            for index, segment in enumerate(playlist.segments):
                init_uri = segment.init_section.uri
                if init_uri not in inits:
                    got = await vod.get(f"{base}/{init_uri}")
                    assert got.status_code == 200
                    assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
                    inits[init_uri] = got.content
                got = await vod.get(f"{base}/{segment.uri}")
                assert got.status_code == 200, segment.uri
                path = tmp_path / f"{name}-{index}.mp4"
                path.write_bytes(inits[init_uri] + got.content)
                assert decode_frames(path) >= 1, f"{segment.uri} does not decode"
            durations[name] = sum(s.duration for s in playlist.segments)
    return durations


async def test_a_recorded_broadcast_lands_in_s3_and_plays_as_an_asset(
    s3_node: Golive, s3: S3Server, source_flv: Path, tmp_path: Path
) -> None:
    node = s3_node
    api = await api_client(node)
    try:
        stream = await create_stream(api, name="recorded", recording=True, reconnect_window=1)
        proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]))
        await wait_status(api, stream["id"], "active")
        assert await wait_process(proc) == 0
        await wait_status(api, stream["id"], "idle", timeout=30)
        asset = await wait_asset(api, stream["id"])
        assert asset["status"] == "ready", asset
        assert asset["live_stream_id"] == stream["id"]
        assert asset["broadcast_id"]
        assert asset["renditions"] and asset["bytes"] > 0
        # 6 s were published; the asset holds them to within a segment.
        assert 4.5 <= asset["duration"] <= 7.5, asset

        keys = s3.keys(f"{node.settings.storage_url.split('/', 3)[3]}/{asset['id']}/")
        segments = [k for k in keys if re.search(r"/seg-\d+\.m4s$", k)]
        inits = [k for k in keys if k.endswith(".mp4")]
        assert len(inits) >= len(asset["renditions"]) and segments, keys

        playback_id = asset["playback_ids"][0]["id"]
        durations = await check_vod(node.http_url, playback_id, tmp_path)
        for seconds in durations.values():
            assert abs(seconds - asset["duration"]) <= 1.1, (durations, asset)

        # The events a webhook consumer would see.
        events = (await api.get(f"/live-streams/{stream['id']}/events")).json()["data"]
        types = {e["type"] for e in events}
        assert {"recording.ready", "asset.ready"} <= types, types

        # Deleting removes every object it owns, and the asset stops playing.
        response = await api.delete(f"/assets/{asset['id']}")
        assert response.status_code == 204
        assert s3.keys(f"{node.settings.storage_url.split('/', 3)[3]}/{asset['id']}/") == []
        assert (await api.get(f"/assets/{asset['id']}")).status_code == 404

        async def deleted_event() -> bool:
            events = (await api.get(f"/live-streams/{stream['id']}/events")).json()["data"]
            return any(e["type"] == "asset.deleted" for e in events)

        await eventually(deleted_event, what="asset.deleted recorded")
    finally:
        await api.aclose()


@pytest.fixture(scope="module")
def source_25s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """25 s of 640x360 30 fps H.264 + AAC, keyframe every second."""
    return make_source(tmp_path_factory.mktemp("media") / "source-25s.flv", seconds=25)


class LiveWatcher:
    """Plays one rendition of a live stream like a player: reloads its playlist and fetches
    every new segment, noting the segment numbers, their durations and any failed fetch."""

    def __init__(self, base: str, playback_id: str) -> None:
        self._client = httpx.AsyncClient(base_url=f"{base}/live/", timeout=10)
        self._pid = playback_id
        self.durations: dict[int, float] = {}
        self.failures: list[str] = []
        self.longest_wait = 0.0  # seconds between two new segments
        self.rendition = ""

    def segments_seen(self, count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return len(self.durations) >= count

        return check

    async def run(self) -> None:
        multivariant = ""
        while "#EXT-X-STREAM-INF" not in multivariant:
            response = await self._client.get(f"{self._pid}.m3u8")
            multivariant = response.text if response.status_code == 200 else ""
            await asyncio.sleep(0.2)
        uri = next(line for line in multivariant.splitlines() if line and line[0] != "#")
        self.rendition = uri.rsplit("/", 1)[1].removesuffix(".m3u8")
        last_new = time.monotonic()
        while True:
            response = await self._client.get(uri)
            if response.status_code == 200:
                lines = response.text.splitlines()
                for index, line in enumerate(lines):
                    found = re.fullmatch(r"(\S+/seg-(\d+)\.m4s)", line)
                    if found is None or int(found[2]) in self.durations:
                        continue
                    duration = float(lines[index - 1].removeprefix("#EXTINF:").rstrip(","))
                    got = await self._client.get(f"{self._pid}/{found[1]}")
                    if got.status_code != 200:
                        self.failures.append(f"{got.status_code} {found[1]}")
                    self.durations[int(found[2])] = duration
                    now = time.monotonic()
                    self.longest_wait = max(self.longest_wait, now - last_new)
                    last_new = now
                if "#EXT-X-ENDLIST" in response.text:
                    return
            await asyncio.sleep(0.3)

    def gaps(self) -> list[int]:
        numbers = sorted(self.durations)
        return [n for n in range(numbers[0], numbers[-1] + 1) if n not in self.durations]

    async def aclose(self) -> None:
        await self._client.aclose()


async def vod_playlist(node: Golive, asset: dict[str, Any], rendition: str) -> str:
    return await vod_playlist_at(node.http_url, asset, rendition)


async def vod_playlist_at(base: str, asset: dict[str, Any], rendition: str) -> str:
    playback_id = asset["playback_ids"][0]["id"]
    async with httpx.AsyncClient(base_url=f"{base}/vod/", timeout=10) as vod:
        response = await vod.get(f"{playback_id}/{rendition}.m3u8")
    assert response.status_code == 200, response.text
    return response.text


def vod_numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"seg-(\d+)\.m4s", text)]


async def test_storage_outage_keeps_live_playback_whole_and_the_asset_complete(
    tmp_path: Path, s3: S3Server, source_25s: Path
) -> None:
    # While storage fails, what waits goes to the spool on disk, however short the queue.
    settings = node_settings(tmp_path, storage_timeout=1.0, recording_queue_segments=64,
                             **s3.storage_settings(prefix=tmp_path.name))
    async with Golive(settings) as node:
        api = await api_client(node)
        stream = await create_stream(api, name="outage", recording=True, reconnect_window=1)
        watcher = LiveWatcher(node.http_url, stream["playback_ids"][0]["id"])
        proc = ffmpeg_publish(source_25s, node.rtmp_url(stream["stream_key"]))
        watching = asyncio.create_task(watcher.run())
        try:
            await wait_status(api, stream["id"], "active")
            await eventually(watcher.segments_seen(3), timeout=30, what="live segments")
            assert node.recorder is not None
            stored_before = node.recorder.stats().stored
            with s3.paused():
                await asyncio.sleep(10)
                during = node.recorder.stats()
            assert await wait_process(proc, timeout=90) == 0
            await asyncio.wait_for(watching, timeout=60)
            asset = await wait_asset(api, stream["id"], timeout=120)
        finally:
            stop(proc)
            watching.cancel()
            await watcher.aclose()
        assert during.storage_failures > 0 and during.stored <= stored_before + 8, during
        assert during.spooled > 0, during  # the outage's segments waited on disk
        # Live viewers saw nothing of it: every segment, none missing, none failed.
        assert not watcher.failures and not watcher.gaps(), (watcher.failures, watcher.gaps())
        assert watcher.longest_wait < 4.0, watcher.longest_wait
        # The asset holds every segment the live playlist had, in order, once.
        assert asset["status"] == "ready", asset
        text = await vod_playlist(node, asset, watcher.rendition)
        numbers = vod_numbers(text)
        assert numbers == sorted(set(numbers))
        assert set(watcher.durations) <= set(numbers), sorted(set(watcher.durations) - set(numbers))
        assert abs(asset["duration"] - sum(watcher.durations.values())) <= 1.5
        events = (await api.get(f"/live-streams/{stream['id']}/events")).json()["data"]
        codes = {e["data"].get("code") for e in events if e["type"] == "live_stream.warning"}
        assert "recording_storage_unavailable" in codes, codes
        await api.aclose()


SERVE_TOKEN = "kill-nine-test-admin-token-0123456789abcdef"


class ServeProcess:
    """`python -m golive serve` as a subprocess on fixed free ports, over one data dir."""

    def __init__(self, tmp: Path, data_dir: Path) -> None:
        from tests.nginxedge import free_port

        self.http_port = free_port()
        self.rtmp_port = free_port()
        self.tmp = tmp
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GOLIVE_")}
        self.env.update(
            GOLIVE_DATA_DIR=str(data_dir), GOLIVE_HOST="127.0.0.1",
            GOLIVE_HTTP_PORT=str(self.http_port), GOLIVE_RTMP_PORT=str(self.rtmp_port),
            GOLIVE_SRT_PORT="0", GOLIVE_ADMIN_TOKEN=SERVE_TOKEN,
            PYTHONPATH=os.pathsep.join(sys.path),
        )
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def launch(self) -> None:
        self.runs += 1
        with (self.tmp / f"serve-{self.runs}.log").open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "golive", "serve"],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)

    async def start(self) -> None:
        self.launch()

        async def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError((self.tmp / f"serve-{self.runs}.log").read_text())
            try:
                async with httpx.AsyncClient(timeout=1) as client:
                    return (await client.get(f"{self.url}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(up, timeout=60, what="golive serve up")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


async def test_kill_9_mid_broadcast_leaves_an_asset_that_plays(
    tmp_path: Path, source_flv: Path
) -> None:
    server = ServeProcess(tmp_path, tmp_path / "data")
    await server.start()
    publisher: subprocess.Popen[bytes] | None = None
    watcher: LiveWatcher | None = None
    watching: asyncio.Task[None] | None = None
    try:
        async with httpx.AsyncClient(base_url=f"{server.url}/api/v1", timeout=10,
                                     headers={"Authorization": f"Bearer {SERVE_TOKEN}"}) as api:
            stream = await create_stream(api, name="killed", recording=True, reconnect_window=2)
            publisher = ffmpeg_publish(
                source_flv, f"rtmp://127.0.0.1:{server.rtmp_port}/live/{stream['stream_key']}",
                loop=True)
            await wait_status(api, stream["id"], "active")
            watcher = LiveWatcher(server.url, stream["playback_ids"][0]["id"])
            watching = asyncio.create_task(watcher.run())
            await asyncio.sleep(20)
            server.kill()
            published = dict(watcher.durations)  # what a live viewer had seen complete
            watching.cancel()
            stop(publisher)

        await server.start()  # same data dir: finishes what the killed run recorded
        async with httpx.AsyncClient(base_url=f"{server.url}/api/v1", timeout=10,
                                     headers={"Authorization": f"Bearer {SERVE_TOKEN}"}) as api:
            asset = await wait_asset(api, stream["id"], timeout=60)
            assert asset["status"] == "ready", asset
            longest = max(published.values())
            seen = sum(published.values())
            # At most the segment in flight is lost; at most one completed after the
            # viewer's last reload.
            assert seen - longest - 0.1 <= asset["duration"] <= seen + longest + 0.1, (
                asset["duration"], seen)
            # It plays: every segment of every rendition decodes.
            playback_id = asset["playback_ids"][0]["id"]
            durations = await check_vod(server.url, playback_id, tmp_path)
            assert durations and all(abs(d - asset["duration"]) <= longest + 0.1
                                     for d in durations.values()), durations
            numbers = vod_numbers(await vod_playlist_at(server.url, asset, watcher.rendition))
            missing = sorted(set(published) - set(numbers))
            assert len(missing) <= 1, missing  # the one in flight at most
    finally:
        if watching is not None:
            watching.cancel()
        if watcher is not None:
            await watcher.aclose()
        if publisher is not None:
            stop(publisher)
        server.stop()
