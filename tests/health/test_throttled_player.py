"""A viewer-side fault induced for real: hls.js in Chromium watches a healthy broadcast
(an ffmpeg RTMP publisher in real time, passthrough profile) through an HTTP proxy whose
downlink is then capped below the stream's bitrate. The player rebuffers, its own QoE
beacons (qoe.js, through the same proxy) reach golive, and the `rebuffer` alert fires
with the diagnosis that the ingest and origin are healthy, so the player's side is the
cause, naming the kind of viewer that rebuffers (hls.js on chrome/linux)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, node_settings, wait_status
from tests.health.capped_proxy import CappedProxy
from tests.health.test_alerts_live import alert_event, running
from tests.mediatools import ffmpeg_publish, make_source
from tests.web.conftest import artifacts, browser, chromium  # noqa: F401  (fixtures)
from tests.web.helpers import wait_playing

from golive.app import Golive

pytestmark = pytest.mark.slow

# The publisher's H.264 copied (no encoder): ~800 kbit/s video + 128 kbit/s audio. The
# QoE window is its minimum (10 s), judged every second, with a 5 % rebuffering SLO.
PROFILE = """
name = "throttled"
version = 1
[[renditions]]
name = "source"
passthrough = true
video_bitrate_kbps = 800
[alerts]
for_seconds = 1
resolve_after_seconds = 2
qoe_window_seconds = 10
qoe_interval_seconds = 1
[slo]
rebuffer_percentage = 5
"""
DOWNLINK_KBPS = 350  # well under the stream's ~930 kbit/s: the player runs dry


@pytest.mark.timeout(240)
async def test_a_player_behind_a_throttled_downlink_fires_the_rebuffer_alert(
        tmp_path: Path, browser: Any, artifacts: Path) -> None:  # noqa: F811
    settings = node_settings(tmp_path)
    settings.resolved_profiles_dir.mkdir(parents=True, exist_ok=True)
    (settings.resolved_profiles_dir / "throttled.toml").write_text(PROFILE)
    source = make_source(tmp_path / "source.flv", seconds=8, gop=30)
    async with Golive(settings) as node, httpx.AsyncClient(
            base_url=f"{node.http_url}/api/v1", timeout=10,
            headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        stream = await create_stream(api, name="throttled", profile="throttled")
        pid = stream["playback_ids"][0]["id"]
        with running(ffmpeg_publish(source, node.rtmp_url(stream["stream_key"]), loop=True)):
            await wait_status(api, stream["id"], "active", timeout=30)
            async with CappedProxy(node.http_port, None, direction="down") as proxy:
                page = await browser.new_page(viewport={"width": 960, "height": 640})
                try:
                    # The page, hls.js and the first seconds arrive at full speed.
                    await page.goto(f"http://127.0.0.1:{proxy.port}/watch/{pid}")
                    await wait_playing(page, timeout=60)
                    proxy.cap(DOWNLINK_KBPS)
                    fired = await alert_event(api, stream["id"], "alert.firing", "rebuffer",
                                              timeout=120)
                    await page.screenshot(path=str(artifacts / "throttled-player.png"))
                finally:
                    await page.close()
            # Nothing upstream moved: no ingest or encoder alert fired meanwhile.
            events = (await api.get(f"/live-streams/{stream['id']}/events")).json()["data"]
            others = {e["data"]["rule"] for e in events
                      if e["type"] == "alert.firing" and e["data"]["rule"] != "rebuffer"}
            assert not others & {"ingest_slow", "ingest_stalled", "encoder_slow"}, others

    data = fired["data"]
    assert data["value"] > data["threshold"] == 5
    assert data["cause"].startswith("player or cache: the ingest and the encoder are healthy")
    assert "rebuffering: 1 of 1 hls.js view on chrome/linux" in data["cause"]
    assert "Cache-Control" in data["fix"]
    related = data["related"]
    assert related["protocol"] == "rtmp" and related["views"] == 1
    assert related["rebuffering"][0]["player"] == "hls.js"
    assert related["rebuffering"][0]["browser"] == "chrome"
    assert proxy.forwarded > 0  # the media came through the capped link
