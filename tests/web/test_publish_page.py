"""/publish: going live from a browser, in real Chromium with its fake camera and microphone.

The page captures, offers over WHIP with the stream key as its bearer token, and ends
the broadcast with a DELETE when the publisher presses Stop; a wrong key is said in words.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright import async_api as playwright_api
from tests.e2e.conftest import create_stream, eventually, node_settings, wait_status
from tests.web.conftest import CHROMIUM_FLAGS
from tests.web.helpers import ConsoleLog

from golive.app import Golive

pytestmark = pytest.mark.slow


@pytest.fixture
async def capturing_browser(chromium: str) -> AsyncIterator[Any]:
    """Chromium whose camera and microphone are its built-in test pattern and tone,
    granted without a prompt."""
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium,
            args=[*CHROMIUM_FLAGS, "--use-fake-device-for-media-stream",
                  "--use-fake-ui-for-media-stream"])
        try:
            yield browser
        finally:
            await browser.close()


def ingest(node: Golive, stream_id: str) -> dict[str, Any] | None:
    assert node.hub is not None
    return node.hub.ingest_facts(stream_id)


async def test_the_publish_page_goes_live_with_camera_and_microphone_and_stops(
    node: Golive, api: httpx.AsyncClient, capturing_browser: Any
) -> None:
    stream = await create_stream(api, name="from the browser")
    page = await capturing_browser.new_page()
    console = ConsoleLog(page)
    # The key in the fragment (never sent to a server); the page takes it out of the URL.
    await page.goto(f"{node.http_url}/publish#key={stream['stream_key']}")
    assert page.url == f"{node.http_url}/publish"
    assert await page.input_value("#publish-key") == stream["stream_key"]
    await page.click("#publish-start")
    await wait_status(api, stream["id"], "active", timeout=30)
    await page.wait_for_function(
        "document.getElementById('publish-state').textContent === 'Live.'", timeout=30_000)

    async def both_tracks() -> dict[str, Any] | None:
        facts = ingest(node, stream["id"])
        return facts if facts and facts["video_codec"] and facts["audio_codec"] else None

    facts = await eventually(both_tracks, timeout=30, what="video and audio from the page")
    # H.264 asked for first: passed through as the browser encoded it, not re-encoded.
    assert facts["video_codec"] == "h264" and facts["audio_codec"] == "aac"
    assert facts["protocol"] == "whip"
    assert await page.is_visible("#publish-preview")

    await page.click("#publish-stop")  # a DELETE: the broadcast ends now, no reconnect wait
    await wait_status(api, stream["id"], "idle", timeout=30)
    assert await page.inner_text("#publish-state") == "Not live."
    assert await page.is_visible("#publish-start")
    assert not console.errors, console.errors


async def test_the_publish_page_goes_live_with_a_microphone_alone(
    node: Golive, api: httpx.AsyncClient, capturing_browser: Any
) -> None:
    stream = await create_stream(api, name="radio from the browser")
    pid = stream["playback_ids"][0]["id"]
    page = await capturing_browser.new_page()
    await page.goto(f"{node.http_url}/publish")
    await page.fill("#publish-key", stream["stream_key"])
    await page.select_option("#publish-video", "none")
    assert not await page.is_visible("#publish-camera")
    await page.click("#publish-start")
    await wait_status(api, stream["id"], "active", timeout=30)
    async with httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30) as hls:

        async def sound_alone() -> str | None:
            response = await hls.get(f"{pid}.m3u8")
            return response.text if response.status_code == 200 else None

        multivariant = await eventually(sound_alone, timeout=60, what="the audio rendition")
    assert 'CODECS="mp4a.40.2"' in multivariant and "RESOLUTION" not in multivariant
    assert not await page.is_visible("#publish-preview")
    await page.click("#publish-stop")
    await wait_status(api, stream["id"], "idle", timeout=30)


@pytest.fixture
async def turn_node(tmp_path: Path) -> AsyncIterator[Golive]:
    """A node with a TURN server configured (never reached here: the page only gets it)."""
    settings = node_settings(tmp_path, webrtc_ice_servers=["turn:turn.example.net:3478"],
                             webrtc_ice_username="golive", webrtc_ice_credential="secret")
    async with Golive(settings) as n:
        yield n


async def test_the_page_gets_the_nodes_ice_servers(turn_node: Golive) -> None:
    # A browser behind NAT relays through the node's TURN server, as WHEP players do.
    async with httpx.AsyncClient() as client:
        page = (await client.get(f"{turn_node.http_url}/publish")).text
    found = re.search(r'<script type="application/json" id="golive-config">(.*?)</script>',
                      page, re.S)
    assert found is not None
    assert json.loads(found[1]) == {"iceServers": [{
        "urls": "turn:turn.example.net:3478", "username": "golive", "credential": "secret"}]}


async def test_a_wrong_key_is_said_and_nothing_goes_live(
    node: Golive, api: httpx.AsyncClient, capturing_browser: Any
) -> None:
    stream = await create_stream(api, name="wrong key")
    page = await capturing_browser.new_page()
    await page.goto(f"{node.http_url}/publish")
    await page.fill("#publish-key", "sk_" + "x" * 32)
    await page.click("#publish-start")
    await page.wait_for_function(
        "document.getElementById('publish-state').classList.contains('is-error')",
        timeout=30_000)
    assert (await page.inner_text("#publish-state")).startswith("The stream key was refused")
    assert await page.is_visible("#publish-start") and not await page.is_visible("#publish-stop")
    assert (await api.get(f"/live-streams/{stream['id']}")).json()["data"]["status"] == "idle"
    # The page's own headers: capture for itself only, never inside another site's frame.
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{node.http_url}/publish")
    assert response.headers["x-frame-options"] == "DENY"
    assert "camera=(self)" in response.headers["permissions-policy"]
