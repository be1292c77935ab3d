"""hls.js in Chromium plays through the slate: the publisher vanishes, `currentTime` keeps
advancing on the slate, and the show resumes when it returns, in the same page."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.mediatools import ffmpeg_publish, stop
from tests.web.test_players import (  # noqa: F401  (the players fixture)
    Sample,
    go_live,
    page_url,
    players,
    wait_first_frame,
    wait_played,
)

from golive.app import Golive

pytestmark = pytest.mark.slow


async def test_hlsjs_keeps_playing_the_slate_and_resumes_without_a_reload(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any,
    players: str,  # noqa: F811
) -> None:
    stream, proc, manifest = await go_live(node, api, source_480p, reconnect_window=60)
    sid = stream["id"]
    slates = node.bus.subscribe(accept=lambda e: e.stream_id == sid
                                and e.type == "live_stream.warning"
                                and e.data.get("reason") == "slate")
    resumed = node.bus.subscribe(accept=lambda e: e.stream_id == sid
                                 and e.type == "live_stream.connected")
    try:
        page = await browser.new_page()
        await page.goto(page_url(players, "hlsjs", manifest))
        await wait_first_frame(page)
        await wait_played(page, (await Sample.take(page)).current_time, 2, timeout=60)
        await page.evaluate("window.sameDocument = true")
        proc.kill()  # the publisher vanishes
        proc.wait()
        await asyncio.wait_for(slates.__anext__(), 30)
        # Past everything the publisher sent: the player plays the slate.
        at = (await Sample.take(page)).current_time
        await wait_played(page, at, 12, timeout=90)
        on_slate = await Sample.take(page)
        assert on_slate.fatal == [], on_slate.fatal

        proc = ffmpeg_publish(source_480p, node.rtmp_url(stream["stream_key"]), loop=True)
        await asyncio.wait_for(resumed.__anext__(), 30)
        await wait_played(page, on_slate.current_time, 8, timeout=90)
        after = await Sample.take(page)
        assert after.fatal == [], after.fatal
        assert await page.evaluate("window.sameDocument === true"), "the page was reloaded"
        print(f"\nhls.js {after.version}: played {on_slate.current_time - at:.1f} s of slate, "
              f"stalls {after.stalls}")
    finally:
        slates.close()
        resumed.close()
        stop(proc)
