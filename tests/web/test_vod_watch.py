"""A recorded asset's watch page in real Chromium: hls.js plays the VOD playlist and seeks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import (
    create_stream,
    wait_process,
    wait_ready_asset,
    wait_status,
)
from tests.mediatools import ffmpeg_publish, make_source
from tests.web.helpers import ConsoleLog, wait_advancing, wait_playing

from golive.app import Golive

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def source_12s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s of 854x480 H.264 + AAC: the default profile records a 480p + 360p ladder."""
    return make_source(tmp_path_factory.mktemp("media") / "source-12s.flv", seconds=12,
                       size="854x480", video_kbps=1500)


async def test_asset_watch_page_plays_and_seeks_to_the_middle(
    node: Golive, api: httpx.AsyncClient, source_12s: Path, browser: Any, artifacts: Path
) -> None:
    stream = await create_stream(api, name="show", recording=True, reconnect_window=1)
    proc = ffmpeg_publish(source_12s, node.rtmp_url(stream["stream_key"]))
    await wait_status(api, stream["id"], "active")
    assert await wait_process(proc) == 0

    asset = await wait_ready_asset(api, stream["id"])
    assert len(asset["renditions"]) == 2, asset
    pid = asset["playback_ids"][0]["id"]

    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    console = ConsoleLog(page)
    qoe_posts: list[str] = []
    page.on("request", lambda r: qoe_posts.append(r.url) if "/qoe/" in r.url else None)
    await page.goto(f"{node.http_url}/watch/{pid}")
    assert await page.inner_text("#title") == "show (recording)"
    assert await page.inner_text("#chat-state") == "replay"  # the chat replays beside it
    await wait_playing(page)
    # hls.js plays it (MSE), not a browser's own HLS.
    assert await page.evaluate("() => Boolean(window.Hls && window.Hls.isSupported())")
    assert await page.evaluate("() => document.querySelector('video').src.startsWith('blob:')")
    await wait_advancing(page, 1.0)
    duration = await page.evaluate("() => document.querySelector('video').duration")
    assert abs(duration - asset["duration"]) <= 1.0, (duration, asset["duration"])
    assert not await page.is_visible(".badge-live")

    # The player's own bar, not the browser's controls (which it would cover): a seek bar
    # over the whole recording and where playback is.
    assert not await page.evaluate("() => document.querySelector('video').controls")
    assert await page.is_visible(".player-seek")
    total = f"{int(asset['duration']) // 60}:{int(asset['duration']) % 60:02d}"
    assert re.fullmatch(rf"0:\d\d / {total}", await page.inner_text(".player-delay"))

    # Hovering the seek bar shows where a click would go: the time and a still of it.
    stills: list[str] = []
    page.on("response", lambda r: stills.append(f"{r.status} {r.url}")
            if "/thumbnail/" in r.url else None)
    seek = await page.locator(".player-seek").bounding_box()
    assert seek is not None
    await page.mouse.move(seek["x"] + seek["width"] * 0.75, seek["y"] + seek["height"] / 2)
    preview = page.locator(".player-preview")
    await preview.wait_for(state="visible", timeout=10_000)
    await page.wait_for_function(
        "() => { const i = document.querySelector('.player-preview img');"
        " return i.complete && i.naturalWidth === 160 && !i.hidden; }", timeout=30_000)
    shown = await page.inner_text(".player-preview-time")
    bar_max = float(await page.get_attribute(".player-seek", "max") or 0)
    assert abs(int(shown.split(":")[1]) - bar_max * 0.75) <= 1, (shown, bar_max)
    # A still at a whole step (2 s here) of the recording, at most one per step asked for.
    asked = [url for url in stills if "time=" in url]
    assert asked and all(url.startswith("200 ") for url in asked), stills
    assert re.search(r"time=(\d+)\.0&width=160", asked[-1])
    moments = {re.search(r"time=([\d.]+)", url)[1] for url in asked}  # type: ignore[index]
    assert all(float(t) % 2 == 0 and float(t) <= bar_max for t in moments), moments
    # Where it stands: over the pointer, inside the player.
    box = await preview.bounding_box()
    player = await page.locator("#player").bounding_box()
    assert box is not None and player is not None
    assert box["x"] <= seek["x"] + seek["width"] * 0.75 <= box["x"] + box["width"]
    assert player["x"] <= box["x"] and box["x"] + box["width"] <= player["x"] + player["width"]
    assert box["y"] + box["height"] <= seek["y"]
    await page.screenshot(path=str(artifacts / "vod-seek-preview.png"))
    await page.mouse.move(player["x"] + 10, player["y"] + 10)  # off the bar: it goes
    await preview.wait_for(state="hidden", timeout=10_000)

    middle = asset["duration"] / 2
    await page.locator(".player-seek").fill(f"{middle:.1f}")  # as a drag to the middle would
    await page.wait_for_function(
        f"() => {{ const v = document.querySelector('video');"
        f" return !v.seeking && v.currentTime >= {middle} && v.readyState >= 3; }}",
        timeout=30_000, polling=200)
    await wait_advancing(page, 1.0)  # frames decode after the seek
    position = await page.evaluate("() => document.querySelector('video').currentTime")
    assert middle <= position < asset["duration"], (position, middle)
    await page.screenshot(path=str(artifacts / "vod-watch-page.png"))

    # Pause and play from the bar and from the keyboard; the arrows step back and on.
    await page.click(".player-play")
    await page.wait_for_function("() => document.querySelector('video').paused")
    await page.locator('.player-play[aria-label="Play"]').wait_for()  # its event comes after
    paused_at = await page.evaluate("() => document.querySelector('video').currentTime")
    await page.keyboard.press("ArrowLeft")  # focus is on the play button, in the player
    await page.wait_for_function(
        f"() => Math.abs(document.querySelector('video').currentTime - {paused_at - 5}) < 0.2")
    assert await page.evaluate("() => document.querySelector('video').paused")  # still paused
    await page.keyboard.press("k")
    await page.wait_for_function("() => !document.querySelector('video').paused")
    await page.locator('.player-play[aria-label="Pause"]').wait_for()  # its event comes after
    await page.keyboard.press("m")
    await page.wait_for_function("() => !document.querySelector('video').muted")
    # The volume: the down arrow lowers it a step, the slider to 0 mutes; it is remembered.
    await page.keyboard.press("ArrowDown")
    await page.wait_for_function("() => document.querySelector('video').volume === 0.9")
    await page.locator('.player-volume[aria-valuetext="90%"]').wait_for()
    assert await page.evaluate("() => localStorage.getItem('golive.volume')") == "0.9"
    await page.locator(".player-volume").fill("0")
    await page.locator('.player-mute[aria-pressed="true"]').wait_for()
    assert await page.evaluate("() => document.querySelector('video').muted")
    # A recording's page posts no QoE: the intake stores views per live stream (it
    # answered 404 to every batch, 10 s into a view). Leaving the page is when a reporter
    # sends what it holds (sendBeacon); a request after it shows the page went on.
    async with page.expect_request(lambda r: r.url.endswith("/healthz")):
        await page.evaluate("() => { dispatchEvent(new Event('pagehide'));"
                            " fetch('/healthz').catch(() => {}); }")
    assert qoe_posts == []
    assert not console.errors, console.errors
