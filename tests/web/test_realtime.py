"""The watch page's "Real-time" toggle in Chromium: WHEP playback, fallback and the way back.

The node plays WHEP (`webrtc_playback`) and gathers ICE on 127.0.0.1 only; Chromium reaches
that candidate with no STUN or TURN server (as in the WHIP Chromium test).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, eventually, node_settings, wait_status
from tests.mediatools import ffmpeg_publish, stop
from tests.web.helpers import ConsoleLog, current_time, wait_playing
from tests.webrtc_client import rtc_config

from golive.app import Golive

pytestmark = pytest.mark.slow

# Wraps RTCPeerConnection so the test can read the page's getStats without player internals.
RECORD_PEER_CONNECTIONS = """
window.__pcs = [];
const Native = window.RTCPeerConnection;
window.RTCPeerConnection = class extends Native {
  constructor(...args) { super(...args); window.__pcs.push(this); }
};
"""
FRAMES_DECODED = """async () => {
  const pc = window.__pcs[window.__pcs.length - 1];
  if (!pc) return 0;
  let frames = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded || 0;
  });
  return frames;
}"""
REALTIME_PLAYING = """() => {
  const p = document.getElementById('player'), v = document.querySelector('video');
  return p.dataset.mode === 'realtime' && p.dataset.state === 'playing'
    && v.srcObject instanceof MediaStream && v.currentTime > 0.3;
}"""
HLS_PLAYING = """() => {
  const p = document.getElementById('player'), v = document.querySelector('video');
  return !p.dataset.mode && p.dataset.state === 'playing' && v.srcObject === null
    && v.src.startsWith('blob:') && v.currentTime > 0.3;
}"""


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Golive]:
    settings = node_settings(tmp_path, webrtc_playback=True, whep_max_viewers=1, **rtc_config())
    async with Golive(settings) as n:
        yield n


@pytest.fixture
async def api(node: Golive) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1",
                                 headers={"Authorization": f"Bearer {ADMIN}"},
                                 timeout=10) as client:
        yield client


async def _live_with_webrtc(node: Golive, api: httpx.AsyncClient,
                            source: Path) -> tuple[dict[str, Any], Any]:
    stream = await create_stream(api, name="realtime")
    proc = ffmpeg_publish(source, node.rtmp_url(stream["stream_key"]), loop=True)
    await wait_status(api, stream["id"], "active")
    pid = stream["playback_ids"][0]["id"]

    async def ready() -> bool | None:
        feed = node.pipeline.webrtc_feed(pid) if node.pipeline else None
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
            live = (await client.get(f"/watch/{pid}/status")).json()["live"]
        return True if live and feed and feed.video_packets > 0 else None

    await eventually(ready, timeout=60, what="LL-HLS and the WebRTC output")
    return stream, proc


def _page_config(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="golive-config">(.*?)</script>',
                      html, re.S)
    assert match is not None
    config: dict[str, Any] = json.loads(match.group(1))
    return config


async def test_realtime_toggle_plays_over_whep_falls_back_and_returns_to_hls(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any, artifacts: Path
) -> None:
    stream, proc = await _live_with_webrtc(node, api, source_480p)
    pid = stream["playback_ids"][0]["id"]
    assert node.whep is not None
    try:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as site:
            config = _page_config((await site.get(f"/watch/{pid}")).text)
        assert config["realtime"] == {"whepUrl": f"/whep/{pid}", "iceServers": []}

        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        await page.add_init_script(RECORD_PEER_CONNECTIONS)
        console = ConsoleLog(page)
        await page.goto(f"{node.http_url}/watch/{pid}")
        await wait_playing(page)  # LL-HLS first
        toggle = page.locator(".player-realtime")
        assert await toggle.is_visible()
        assert await toggle.get_attribute("aria-pressed") == "false"

        await toggle.click()
        await page.wait_for_function(REALTIME_PLAYING, timeout=20_000, polling=200)
        assert await toggle.get_attribute("aria-pressed") == "true"
        assert len(node.whep.sessions) == 1
        first = await current_time(page)
        await asyncio.sleep(3)
        assert await current_time(page) > first + 1.5, "currentTime must advance over WebRTC"
        frames = await page.evaluate(FRAMES_DECODED)
        assert frames > 30, f"frames decoded over WebRTC: {frames}"
        readout = await page.inner_text(".player-delay")
        assert readout.startswith("real-time"), readout
        assert await page.evaluate("window.__pcs.length") == 1
        assert await page.is_hidden(".player-quality")
        await page.screenshot(path=str(artifacts / "watch-realtime.png"))

        # A second viewer past whep_max_viewers=1: told in words, and plays LL-HLS instead.
        other = await browser.new_page()
        other_console = ConsoleLog(other)
        await other.goto(f"{node.http_url}/watch/{pid}")
        await wait_playing(other)
        await other.locator(".player-realtime").click()
        await other.wait_for_selector(".player-notice", state="visible", timeout=15_000)
        notice = await other.inner_text(".player-notice")
        assert "viewer limit" in notice and "LL-HLS" in notice, notice
        await other.wait_for_function(HLS_PLAYING, timeout=30_000, polling=200)
        assert await other.locator(".player-realtime").get_attribute("aria-pressed") == "false"
        assert len(node.whep.sessions) == 1
        # The refused POST is the only console error (Chromium logs the 503 response).
        assert all("503" in e for e in other_console.errors), other_console.errors
        await other.close()

        # Leaving real-time ends the WHEP session (DELETE) and goes back to hls.js.
        await toggle.click()
        await page.wait_for_function(HLS_PLAYING, timeout=30_000, polling=200)
        assert await toggle.get_attribute("aria-pressed") == "false"

        async def session_gone() -> bool | None:
            return True if not node.whep or not node.whep.sessions else None

        await eventually(session_gone, timeout=10, what="the WHEP session to be deleted")
        await page.wait_for_function("window.__pcs[0].connectionState === 'closed'",
                                     timeout=5000)
        first = await current_time(page)
        await asyncio.sleep(2)
        assert await current_time(page) > first + 1.0
        assert re.fullmatch(r"\d+\.\d s behind", await page.inner_text(".player-delay"))
        assert console.errors == []
    finally:
        stop(proc)
