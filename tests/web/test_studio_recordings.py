"""The studio lists a stream's recordings with play, download (the progressive MP4) and
delete, in real Chromium against a node that recorded a real ffmpeg broadcast."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import (
    ADMIN,
    create_stream,
    eventually,
    wait_process,
    wait_ready_asset,
    wait_status,
)
from tests.mediatools import FFPROBE, ffmpeg_publish
from tests.web.helpers import ConsoleLog

from golive.app import Golive

pytestmark = pytest.mark.slow


async def test_studio_plays_downloads_and_deletes_a_recording(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any, artifacts: Path
) -> None:
    stream = await create_stream(api, name="Studio show", recording=True, reconnect_window=1)
    proc = ffmpeg_publish(source_480p, node.rtmp_url(stream["stream_key"]))
    await wait_status(api, stream["id"], "active")
    assert await wait_process(proc) == 0

    asset = await wait_ready_asset(api, stream["id"])
    pid = asset["playback_ids"][0]["id"]
    base = node.http_url
    context = await browser.new_context(accept_downloads=True,
                                        viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    console = ConsoleLog(page)
    await page.goto(f"{base}/studio/login")
    await page.fill("#token", ADMIN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/studio", timeout=10_000)
    await page.goto(f"{base}/studio/streams/{stream['id']}")
    row = page.locator(f'.recording-row[data-id="{asset["id"]}"]')
    await row.wait_for(timeout=15_000)
    assert await row.locator(".recording-play").get_attribute("href") == f"/watch/{pid}"
    await page.screenshot(path=str(artifacts / "studio-recordings.png"), full_page=True)

    async with page.expect_download(timeout=30_000) as download_info:
        await row.locator(".recording-download").click()
    download = await download_info.value
    assert download.suggested_filename.endswith(f"-{asset['id']}.mp4")
    saved = Path(await download.path())
    out = await asyncio.to_thread(subprocess.run, [
        FFPROBE, "-v", "error", "-print_format", "json", "-show_format", str(saved)],
        check=True, capture_output=True, timeout=60)
    assert abs(float(json.loads(out.stdout)["format"]["duration"]) - asset["duration"]) < 0.5

    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await row.locator(".recording-delete").click()
    await row.wait_for(state="detached", timeout=15_000)
    assert (await api.get(f"/assets/{asset['id']}")).status_code == 404
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:

        async def gone() -> bool:
            return (await http.get(f"/vod/{pid}.m3u8")).status_code == 404

        await eventually(gone, timeout=15, what="the asset to stop playing")
    assert console.errors == []
    await context.close()
