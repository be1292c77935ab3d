"""The studio's preflight button in real Chromium: open a session, publish with real ffmpeg
(and a backup encoder), see GO and every check; nothing goes on the air."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, get_stream
from tests.mediatools import ffmpeg_publish, stop
from tests.web.helpers import ConsoleLog

from golive.app import Golive

pytestmark = pytest.mark.slow

EVENT = """name = "event"
version = 1
owner = "ops on call"
[[renditions]]
name = "360p"
height = 360
video_bitrate_kbps = 700
[input]
min_video_bitrate_kbps = 300
"""


async def test_studio_runs_a_preflight(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any, artifacts: Path
) -> None:
    profiles = node.settings.resolved_profiles_dir
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "event.toml").write_text(EVENT)
    stream = await create_stream(api, name="Event", profile="event")
    base = node.http_url
    context = await browser.new_context(viewport={"width": 1400, "height": 1200})
    page = await context.new_page()
    console = ConsoleLog(page)
    await page.goto(f"{base}/studio/login")
    await page.fill("#token", ADMIN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/studio", timeout=10_000)
    await page.goto(f"{base}/studio/streams/{stream['id']}")
    await page.fill("#preflight-duration", "3")
    await page.click("#preflight-start")
    state = page.locator("#preflight-state")
    await page.wait_for_function(
        "document.getElementById('preflight-state').dataset.verdict === 'waiting'",
        timeout=15_000)
    # The backup encoder on the backup key: the session fails over to it and back.
    backup = ffmpeg_publish(source_480p, node.rtmp_url(stream["backup_stream_key"]), loop=True)
    proc = ffmpeg_publish(source_480p, node.rtmp_url(stream["stream_key"]), loop=True)
    try:
        await page.wait_for_function(
            "['go', 'no_go', 'failed', 'expired'].includes("
            "document.getElementById('preflight-state').dataset.verdict)", timeout=60_000)
    finally:
        stop(proc)
        stop(backup)
    assert (await state.text_content() or "").startswith("GO"), await state.text_content()
    rows = page.locator("#preflight-checks tbody tr")
    names = [await r.get_attribute("data-check") for r in await rows.all()]
    assert {"keyframe_interval", "loudness", "true_peak", "video_bitrate", "av_sync",
            "tcp_round_trip", "backup_ingest", "failover"} <= set(names)
    assert await page.locator("#preflight-checks tr.preflight-fail").count() == 0
    await page.screenshot(path=str(artifacts / "studio-preflight.png"), full_page=True)
    assert (await get_stream(api, stream["id"]))["status"] == "idle"
    assert console.errors == []
    await context.close()
