"""A live stream with a DVR window in real Chromium with hls.js: delta playlist updates, a seek
60 s back with the seek bar (segments past memory from the recording), the seek bar's
preview of where it would go, and back to live with the "Go live" button."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import create_stream, eventually, wait_status
from tests.mediatools import ffmpeg_publish, stop
from tests.web.helpers import ConsoleLog, wait_advancing, wait_playing
from tests.web.test_watch import QOE_SPY

from golive.app import Golive

pytestmark = pytest.mark.slow

BACK = 60.0
DELAY = "Number(document.getElementById('player').dataset.delay)"
SEEKABLE = """() => { const s = document.querySelector('video').seekable;
  return s.length ? s.end(s.length - 1) - s.start(0) : 0; }"""


async def test_seek_back_in_the_dvr_window_and_go_live(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any, artifacts: Path
) -> None:
    stream = await create_stream(api, recording=True, dvr_window=120)
    proc = ffmpeg_publish(source_480p, node.rtmp_url(stream["stream_key"]), loop=True)
    try:
        await wait_status(api, stream["id"], "active")
        pid = stream["playback_ids"][0]["id"]

        async def live() -> bool:
            async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
                return bool((await client.get(f"/watch/{pid}/status")).json()["live"])

        await eventually(live, timeout=30, what="the stream to be live")
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        console = ConsoleLog(page)
        requested: list[str] = []  # every URL the page asked for, in order
        page.on("request", lambda request: requested.append(request.url))
        await page.add_init_script(QOE_SPY)  # what the player reports (window.__qoe)
        await page.goto(f"{node.http_url}/watch/{pid}")
        await wait_playing(page)
        # Near live, with the seek bar shown and no "Go live" button.
        await page.wait_for_function(f"() => {DELAY} > 0 && {DELAY} < 6", timeout=30_000)
        assert await page.is_visible(".player-seek")
        assert not await page.is_visible(".player-golive")

        # hls.js reloads with delta updates (CAN-SKIP-UNTIL) and still keeps the whole
        # window seekable: the skipped segments are the ones it already had.
        async def delta_updates() -> bool:
            return any("_HLS_skip=YES" in url for url in requested)

        await eventually(delta_updates, timeout=30, what="a delta playlist update")
        # Enough broadcast for a seek 60 s back (the publisher runs in real time).
        await page.wait_for_function(SEEKABLE, timeout=(BACK + 60) * 1000, polling=1000)
        await page.wait_for_function(f"() => ({SEEKABLE})() > {BACK + 6}",
                                     timeout=(BACK + 60) * 1000, polling=1000)
        await wait_advancing(page, 0.5)

        before = await page.evaluate("document.querySelector('video').currentTime")
        delay_before = await page.evaluate(DELAY)
        seek_started = len(requested)
        seeks: list[tuple[float, float]] = []  # page times: the viewer's seek, its playing
        began = await page.evaluate("performance.now()")
        # The viewer drags the seek bar 60 s back (fill sets it and fires input + change).
        await page.locator(".player-seek").fill(f"{before - BACK:.1f}")
        await page.wait_for_function(
            "(t) => { const v = document.querySelector('video');"
            " return v.currentTime < t && v.readyState >= 3; }",
            arg=before - BACK + 5, timeout=30_000)
        await wait_advancing(page, 1.0)
        seeks.append((began, await page.evaluate("performance.now()")))
        after = await page.evaluate("document.querySelector('video').currentTime")
        assert before - BACK - 2 < after < before - BACK + 8, (before, after)
        # The date on screen (EXT-X-PROGRAM-DATE-TIME) is about 60 s further behind.
        delay = await page.evaluate(DELAY)
        assert BACK - 5 < delay - delay_before < BACK + 10, (delay_before, delay)
        await page.wait_for_selector(".player-golive", state="visible", timeout=10_000)
        # What it played came from the recording: segments the rendition window no longer holds.
        fetched = requested[seek_started:]
        presentation = node.pipeline.presentation(pid) if node.pipeline else None
        assert presentation is not None
        archived = [
            path for path in fetched
            if (match := re.search(r"/([\w-]+)/seg-(\d+)\.m4s(?:\?|$)", path))
            and (window := presentation.renditions.get(match[1])) is not None
            and window.archived(int(match[2]))
        ]
        assert archived, fetched

        # Hovering the seek bar previews where it would go: how far behind live, and the
        # first picture of the segment there, past memory too (from the recording).
        box = await page.locator(".player-seek").bounding_box()
        assert box is not None
        shown: list[tuple[int, str]] = []
        for share in (0.02, 0.97):
            # (The seek above, made by setting the bar, previewed the thumb's place.)
            before_src = await page.evaluate(
                "() => document.querySelector('.player-preview img')?.src || ''")
            await page.mouse.move(box["x"] + box["width"] * share, box["y"] + box["height"] / 2)
            await page.wait_for_function(
                "(before) => { const i = document.querySelector('.player-preview img');"
                " return i && i.src !== before && /[?&]segment=\\d+/.test(i.src)"
                " && i.complete && i.naturalWidth === 160 && !i.hidden; }",
                arg=before_src, timeout=30_000)
            src = await page.get_attribute(".player-preview img", "src") or ""
            label = await page.inner_text(".player-preview-time")
            segment = re.search(r"[?&]segment=(\d+)", src)
            assert segment is not None and "width=160" in src, src
            shown.append((int(segment[1]), label))
        (oldest, oldest_label), (newest, newest_label) = shown
        assert oldest < newest, shown
        assert re.fullmatch(r"-\d+:\d\d", oldest_label), oldest_label  # a minute or so back
        assert newest_label == "Live" or re.fullmatch(r"-0:\d\d", newest_label), newest_label
        assert any(w.archived(oldest) for w in presentation.renditions.values()), oldest
        await page.screenshot(path=str(artifacts / "watch-dvr-preview.png"))
        await page.mouse.move(box["x"] + box["width"] / 2, box["y"] - 200)  # off the bar
        await page.wait_for_selector(".player-preview", state="hidden", timeout=10_000)
        await page.screenshot(path=str(artifacts / "watch-dvr.png"))

        began = await page.evaluate("performance.now()")
        await page.click(".player-golive")
        await page.wait_for_function(f"() => {DELAY} > 0 && {DELAY} < 8", timeout=30_000)
        await wait_advancing(page, 0.5)
        seeks.append((began, await page.evaluate("performance.now()")))
        assert await page.evaluate("document.querySelector('video').currentTime") > before
        await page.wait_for_selector(".player-golive", state="hidden", timeout=10_000)
        assert not [e for e in console.errors if "seg-" in e or "init-" in e], console.errors
        # Loading where the viewer sought to is no rebuffering: no stall the player reports
        # began while one of those seeks loaded (each is reported when it ends, with its
        # length). The reporter sends in order: once it sent an event added after the
        # last seek (a short pause, reported as it ends), it sent every stall of them
        # (leaving the page sends what it holds).
        await page.evaluate("() => { const v = document.querySelector('video'); v.pause();"
                            " return v.play(); }")
        await page.evaluate("() => dispatchEvent(new Event('pagehide'))")
        await page.wait_for_function(
            "(end) => window.__qoe.some((e) => e.type === 'pause' && e.t > end)",
            arg=seeks[-1][1], timeout=30_000)
        stalls = [(e["t"] - e["ms"], e["t"]) for e in await page.evaluate("window.__qoe")
                  if e["type"] == "stall"]
        during = [stall for stall in stalls
                  if any(start <= stall[0] <= end for start, end in seeks)]
        assert not during, (during, seeks)
        await page.close()
    finally:
        stop(proc)
