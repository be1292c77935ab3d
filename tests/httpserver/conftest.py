"""One golive node with a live publisher and an LL-HLS viewer, shared by a module's attacks."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from tests.delivery.test_origin import Directory, Feed, make_feed
from tests.e2e.conftest import (
    ADMIN,
    create_stream,
    eventually,
    node_settings,
    source_flv,  # noqa: F401  (the session fixture, for this directory)
    wait_status,
)
from tests.mediatools import ffmpeg_publish, stop

from golive.app import Golive


@pytest.fixture
def feed() -> Feed:
    """A low-latency presentation ("p1": video and low) with ten parts, for the fast path's
    tests (test_fast, test_repeat_heads)."""
    f = make_feed()
    f.add(10)
    return f


@pytest.fixture
def directory(feed: Feed) -> Directory:
    d = Directory()
    d.presentations["p1"] = feed.presentation
    return d


HEAD_TIMEOUT = 2.0  # the node's http_head_timeout here, so slow-head tests stay short
BODY_TIMEOUT = 2.0  # and its http_body_timeout, for the slow-body tests


class PlaylistWatcher:
    """An LL-HLS viewer reloading one media playlist; notes each time it advances."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url
        self.advances: list[float] = []
        self.errors = 0
        self._last = ""
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            try:
                response = await self.client.get(self.url)
                parts = re.findall(r'#EXT-X-PART:.*URI="([^"]+)"', response.text)
                newest = parts[-1] if parts else ""
                if response.status_code == 200 and newest and newest != self._last:
                    self._last = newest
                    self.advances.append(time.monotonic())
                    self._changed.set()
            except httpx.HTTPError:
                self.errors += 1
            await asyncio.sleep(0.1)  # a player reloads about once per part

    async def advanced(self, times: int, timeout: float = 30.0) -> None:
        """Wait until the playlist has moved on `times` more parts than now."""
        goal = len(self.advances) + times
        deadline = time.monotonic() + timeout
        while len(self.advances) < goal:
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the viewer's playlist stopped advancing "
                                     f"({len(self.advances)} of {goal} parts)")
            await asyncio.wait_for(self._changed.wait(), left)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@dataclass
class Live:
    node: Golive
    playback_id: str
    viewer: PlaylistWatcher

    @property
    def port(self) -> int:
        return self.node.http_port


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory,
               source_flv: Path) -> AsyncIterator[Live]:  # noqa: F811
    tmp = tmp_path_factory.mktemp("hostile")
    # webrtc_playback mounts /whep/, a route that reads whole bodies, for the attacks.
    settings = node_settings(tmp, http_head_timeout=HEAD_TIMEOUT, http_body_timeout=BODY_TIMEOUT,
                             webrtc_playback=True)
    async with Golive(settings) as node, httpx.AsyncClient(
        base_url=f"{node.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ) as api, httpx.AsyncClient(base_url=node.http_url, timeout=30) as hls:
        stream = await create_stream(api, name="hostile")
        publisher = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, stream["id"], "active")
            pid = stream["playback_ids"][0]["id"]

            async def rendition() -> str | None:
                response = await hls.get(f"/live/{pid}.m3u8")
                uris = [line for line in response.text.splitlines()
                        if line and not line.startswith("#")]
                return f"/live/{uris[0]}" if response.status_code == 200 and uris else None

            viewer = PlaylistWatcher(hls, await eventually(rendition, timeout=60,
                                                           what="a multivariant playlist"))
            try:
                await viewer.advanced(3, timeout=60)
                yield Live(node, pid, viewer)
            finally:
                await viewer.close()
        finally:
            stop(publisher)
