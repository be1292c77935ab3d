"""A signed stream's watch page in Chromium: with its tokens it plays LL-HLS, WHEP and joins chat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import create_stream, eventually, wait_status
from tests.mediatools import ffmpeg_publish, stop
from tests.web.helpers import ConsoleLog, wait_playing
from tests.web.test_realtime import REALTIME_PLAYING, api, node  # noqa: F401  (fixtures)

from golive.app import Golive
from golive.delivery import mint_playback_token

pytestmark = pytest.mark.slow


async def test_signed_watch_page_plays_hls_and_whep_with_its_token(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any  # noqa: F811
) -> None:
    key = (await api.post("/signing-keys", json={"algorithm": "ES256"})).json()["data"]
    stream = await create_stream(api, name="signed", playback_policy="signed",
                                 webrtc_playback=True)
    pid = stream["playback_ids"][0]["id"]

    def token(aud: str) -> str:
        assert aud in ("v", "c")
        return mint_playback_token(key["private_key"], key_id=key["id"], playback_id=pid,
                                   audience="v" if aud == "v" else "c", expires_in=600)

    proc = ffmpeg_publish(source_480p, node.rtmp_url(stream["stream_key"]), loop=True)
    try:
        await wait_status(api, stream["id"], "active")
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            async def ready() -> bool | None:
                status = await http.get(f"/watch/{pid}/status", params={"token": token("v")})
                feed = node.pipeline.webrtc_feed(pid) if node.pipeline else None
                return True if status.json()["live"] and feed and feed.video_packets else None

            await eventually(ready, timeout=60, what="LL-HLS and the WebRTC output")
            # WHEP refuses a signed playback id without its token, saying why.
            refused = await http.post(f"/whep/{pid}", content="v=0\r\n",
                                      headers={"Content-Type": "application/sdp"})
            assert refused.status_code == 403 and "token is required" in refused.text

        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        console = ConsoleLog(page)
        await page.goto(f"{node.http_url}/watch/{pid}?token={token('v')}"
                        f"&chat_token={token('c')}")
        await wait_playing(page)  # LL-HLS: every playlist, init and part carries the token
        await page.wait_for_function(
            "() => document.getElementById('chat-state').textContent === ''", timeout=15_000)
        await page.fill("#chat-name", "ann")
        await page.click("#chat-join button")
        await page.fill("#chat-text", "hello from a signed page")
        await page.click("#chat-send button")
        await page.wait_for_selector("#chat-log >> text=hello from a signed page",
                                     timeout=15_000)

        await page.locator(".player-realtime").click()
        await page.wait_for_function(REALTIME_PLAYING, timeout=30_000, polling=200)
        assert node.whep is not None and len(node.whep.sessions) == 1
        assert console.errors == []
    finally:
        stop(proc)
