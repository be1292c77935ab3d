"""A viewer-side alert on a real node: a healthy RTMP publisher (ffmpeg, real time), one
view posting the player's beacons to `POST /qoe/PID` with long stalls, then only good
reports. The `rebuffer` alert fires with the "player or cache" diagnosis (the ingest is
healthy) and resolves once the stalls leave the QoE window."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, wait_status
from tests.health.quick import quick_alert_settings
from tests.health.test_alerts_live import alert_event, alerts, running
from tests.mediatools import ffmpeg_publish

from golive.app import Golive

pytestmark = pytest.mark.slow

# Short times: the QoE window is its minimum (10 s), recomputed every second.
PROFILE = """
name = "quickqoe"
version = 1
[[renditions]]
name = "360p"
height = 360
video_bitrate_kbps = 800
[alerts]
for_seconds = 1
resolve_after_seconds = 2
qoe_window_seconds = 10
qoe_interval_seconds = 1
[slo]
rebuffer_percentage = 5
"""
VIEW = "qoealertsview0123456"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 " \
     "Safari/537.36"


class Player:
    """Posts a view's beacons every 2 s (the per-view rate limit allows one per 2 s):
    a stall of 1.8 s in each batch while `stalling`, else a latency sample."""

    def __init__(self, web: httpx.AsyncClient, playback_id: str) -> None:
        self._web, self._pid = web, playback_id
        self._epoch = time.monotonic()
        self.stalling = True
        self.posted = 0

    def _ms(self) -> float:
        return (time.monotonic() - self._epoch) * 1000

    async def run(self) -> None:
        now = self._ms()
        first: list[dict[str, Any]] = [
            {"type": "start", "t": now, "muted": True, "native": False, "rendition": "360p",
             "protocol": "hls", "player": "hls.js"},
            {"type": "first_frame", "t": now, "ms": 600}]
        while True:
            now = self._ms()
            if first:  # the first batch only starts the view
                events = []
            elif self.stalling:
                events = [{"type": "stall", "t": now, "ms": 1800}]
            else:
                events = [{"type": "latency", "t": now, "seconds": 1.5}]
            r = await self._web.post(f"/qoe/{self._pid}", json={
                "view_id": VIEW, "sent": now, "events": first + events})
            assert r.status_code == 204, r.text
            first = []
            self.posted += 1
            await asyncio.sleep(2.05)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Golive]:
    settings = quick_alert_settings(tmp_path)
    (settings.resolved_profiles_dir / "quickqoe.toml").write_text(PROFILE)
    async with Golive(settings) as n:
        yield n


@pytest.mark.timeout(180)
async def test_viewers_rebuffering_behind_a_healthy_ingest_is_player_or_cache(
        node: Golive, source_flv: Path) -> None:
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as api, \
            httpx.AsyncClient(base_url=node.http_url, timeout=10,
                              headers={"User-Agent": UA}) as web:
        stream = await create_stream(api, name="viewers", profile="quickqoe")
        sid, pid = stream["id"], stream["playback_ids"][0]["id"]
        with running(ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]),
                                    loop=True)):
            await wait_status(api, sid, "active", timeout=30)
            player = Player(web, pid)
            task = asyncio.create_task(player.run())
            try:
                firing = (await alert_event(api, sid, "alert.firing", "rebuffer"))["data"]
                assert firing["threshold"] == 5.0 and firing["unit"] == "%"
                assert "over 1 view in the last" in firing["summary"]
                assert 50 < firing["value"] <= 100  # 1.8 s of every ~2 s
                assert firing["cause"].startswith("player or cache"), firing["cause"]
                assert "stale playlists" in firing["fix"]
                assert "Cache-Control" in firing["fix"]
                related = firing["related"]
                assert related["views"] == 1 and related["protocol"] == "rtmp"
                assert 0 < related["window_s"] <= 10  # from the broadcast's start at first
                assert set(related["by_player"]) == {"hls.js"}
                # The ingest is healthy: no ingest alert stands beside it.
                active = {a["rule"] for a in (await alerts(api, sid))["active"]}
                assert "rebuffer" in active
                assert not active & {"ingest_stalled", "ingest_slow", "ingest_bitrate"}
                # Good reports follow; once the stalls leave the 10 s window it resolves.
                player.stalling = False
                resolved = (await alert_event(api, sid, "alert.resolved", "rebuffer",
                                              timeout=60))["data"]
                assert resolved["alert_id"] == firing["alert_id"]
                assert resolved["reason"] == "condition cleared"
                assert resolved["peak"] >= firing["value"]
                recent = (await alerts(api, sid))["recent"]
                assert [a["rule"] for a in recent] == ["rebuffer"]
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
