"""The studio shows a stream's alerts with cause and fix, live, in a real browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, wait_status
from tests.health.quick import quick_alert_settings
from tests.mediatools import ffmpeg_publish, make_source, stop
from tests.web.helpers import ConsoleLog

from golive.app import Golive


@pytest.fixture
async def alert_node(tmp_path: Path) -> AsyncIterator[Golive]:
    async with Golive(quick_alert_settings(tmp_path)) as n:
        yield n


@pytest.mark.slow
async def test_studio_shows_a_firing_alert_then_it_resolves(
    alert_node: Golive, browser: Any, tmp_path: Path, artifacts: Path
) -> None:
    node = alert_node
    # A keyframe every 4 s (-g 240 at 60 fps).
    source = make_source(tmp_path / "gop240.flv", seconds=12, size="320x180", fps=60, gop=240,
                         video_kbps=300)
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        stream = await create_stream(api, name="GOP show", profile="quickalerts")
        page = await (await browser.new_context(viewport={"width": 1400, "height": 1000})) \
            .new_page()
        console = ConsoleLog(page)
        await page.goto(f"{node.http_url}/studio/login")
        await page.fill("#token", ADMIN)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{node.http_url}/studio", timeout=10_000)
        await page.goto(f"{node.http_url}/studio/streams/{stream['id']}")
        await page.locator("#alert-list").get_by_text("No alerts.").wait_for(timeout=10_000)

        publisher = ffmpeg_publish(source, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, stream["id"], "active")
            firing = page.locator('#alert-list .alert-firing[data-rule="keyframe_interval"]')
            await firing.wait_for(timeout=40_000)
            text = await firing.inner_text()
            assert "a keyframe every 4.0 s" in text
            assert "Keyframe Interval" in text and "Likely cause" in text
            await page.screenshot(path=str(artifacts / "studio-alert-firing.png"))
        finally:
            stop(publisher)
        # The broadcast ends (reconnect window), and the alert moves to the resolved list.
        await wait_status(api, stream["id"], "idle", timeout=30)
        resolved = page.locator('#alert-recent [data-rule="keyframe_interval"]')
        await resolved.wait_for(state="attached", timeout=20_000)
        await page.locator("#alert-list").get_by_text("No alerts.").wait_for(timeout=10_000)
    assert not [e for e in console.errors if e.startswith("pageerror")], console.errors
