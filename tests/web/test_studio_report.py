"""The post-event report from the API and the studio: a real broadcast (an ffmpeg RTMP
publisher, passthrough profile) watched by an LL-HLS view and a WHEP view that post the
player's QoE beacons while it is live. While live, its report is refused (409); once it
ended, the API lists it with its peak viewers, answers its report as JSON (with viewers
by protocol) and as the self-contained page under a strict Content-Security-Policy, and
the studio lists it with a "Report" link that opens the page in Chromium (screenshot:
test-artifacts/studio-report.png)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, source_flv, wait_process, wait_status  # noqa: F401
from tests.mediatools import ffmpeg_publish
from tests.web.helpers import ConsoleLog

from golive.app import Golive

pytestmark = pytest.mark.slow

HLS_VIEW = "studioreport-hls-0001"
WHEP_VIEW = "studioreport-whep-002"


def batch(view_id: str, sent: float, *, first: bool, protocol: str) -> dict[str, Any]:
    events: list[dict[str, Any]] = [{"type": "latency", "t": sent, "seconds": 2.0}]
    if first:
        player = "hls.js" if protocol == "hls" else "whep"
        events = [{"type": "start", "t": sent - 900, "muted": True, "protocol": protocol,
                   "player": player, "rendition": "source"},
                  {"type": "first_frame", "t": sent - 100, "ms": 800.0}, *events]
    return {"view_id": view_id, "sent": sent, "events": events}


async def test_studio_lists_a_past_broadcast_and_opens_its_report(
    node: Golive, api: httpx.AsyncClient, source_flv: Path,  # noqa: F811
    browser: Any, artifacts: Path
) -> None:
    stream = await create_stream(api, name="Report show", profile="passthrough",
                                 reconnect_window=1)
    pid = stream["playback_ids"][0]["id"]
    proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]))
    await wait_status(api, stream["id"], "active", timeout=30)
    [live] = (await api.get(f"/live-streams/{stream['id']}/broadcasts")).json()["data"]
    assert live["ended_at"] is None and live["report_available"] is False
    refused = await api.get(f"/broadcasts/{live['id']}/report")
    assert refused.status_code == 409, refused.text
    assert "still live" in refused.text

    # Two viewers, each posting two batches, so their views overlap in time.
    assert node.http is not None
    transport = httpx.ASGITransport(app=node.http, client=("192.0.2.30", 40_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as web:
        for sent, first in ((3000.0, True), (4000.0, False)):
            for view_id, protocol in ((HLS_VIEW, "hls"), (WHEP_VIEW, "whep")):
                answer = await web.post(f"/qoe/{pid}", json=batch(
                    view_id, sent, first=first, protocol=protocol))
                assert answer.status_code == 204, answer.text
    assert await wait_process(proc) == 0
    await wait_status(api, stream["id"], "idle", timeout=30)

    # The API: the list, the JSON report, the page with its headers.
    [past] = (await api.get(f"/live-streams/{stream['id']}/broadcasts")).json()["data"]
    assert past["id"] == live["id"] and past["ended_at"] is not None
    assert (past["protocol"], past["peak_viewers"], past["peak_viewers_truncated"],
            past["report_available"]) == ("rtmp", 2, False, True)
    assert past["duration_s"] > 0
    report = (await api.get(f"/broadcasts/{past['id']}/report")).json()["data"]
    assert report["broadcast"]["id"] == past["id"]
    assert report["broadcast"]["peak_views"] == 2
    by_protocol: dict[str, int] = {}
    for entry in report["timeline"]:
        if entry["kind"] == "qoe":
            for name, views in entry["views_by_protocol"].items():
                by_protocol[name] = max(by_protocol.get(name, 0), views)
    assert by_protocol == {"hls": 1, "whep": 1}
    page = await api.get(f"/broadcasts/{past['id']}/report.html")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "<script" not in page.text
    assert (await api.get("/broadcasts/bc_nope/report.html")).status_code == 404
    assert (await api.get("/live-streams/nope/broadcasts")).status_code == 404
    assert (await api.get(f"/live-streams/{stream['id']}/broadcasts",
                          params={"limit": 1000})).status_code == 422
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1") as anonymous:
        assert (await anonymous.get(f"/broadcasts/{past['id']}/report")).status_code == 401

    # The studio: the past broadcast with its Report link, which opens the page.
    base = node.http_url
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page_ = await context.new_page()
    console = ConsoleLog(page_)
    await page_.goto(f"{base}/studio/login")
    await page_.fill("#token", ADMIN)
    await page_.click("button[type=submit]")
    await page_.wait_for_url(f"{base}/studio", timeout=10_000)
    await page_.goto(f"{base}/studio/streams/{stream['id']}")
    row = page_.locator(f'.broadcast-row[data-id="{past["id"]}"]')
    await row.wait_for(timeout=15_000)
    assert "2 viewers at peak" in await row.inner_text()
    link = row.locator(".broadcast-report")
    assert await link.get_attribute("href") == f"/studio/broadcasts/{past['id']}/report"
    async with context.expect_page(timeout=15_000) as opened:
        await link.click()
    report_page = await opened.value
    await report_page.wait_for_load_state()
    assert await report_page.locator("h1").inner_text() == "Broadcast report"
    assert await report_page.locator("svg.viewers polyline.series").count() == 3
    legend = await report_page.locator("svg.viewers").text_content() or ""
    assert "hls views" in legend and "whep views" in legend
    await report_page.screenshot(path=str(artifacts / "studio-report.png"), full_page=True)
    await page_.screenshot(path=str(artifacts / "studio-broadcasts.png"), full_page=True)
    assert console.errors == []
    await context.close()
