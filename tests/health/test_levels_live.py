"""Sound and picture faults on a real transcoding node, each induced for real by an ffmpeg
publisher over RTMP, three at once: black video with silent audio (`color=black`, the
sine at -200 dB), a clipping one (the sine amplified +30 dB, testsrc2), and a healthy one
(testsrc2 + the sine at its normal level) whose encoder is killed twice, watched by a
player posting beacons whose latency keeps growing. Each gives its alert with the
measured value and the diagnosis; the healthy source gives none of the sound and picture
alerts, its restarts give `transcoder_restarts` naming the kill, and its drifting viewer
`viewer_latency_drift` naming the player and browser."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, eventually, node_settings, wait_status
from tests.health.test_alerts_live import alert_event, alerts, running
from tests.mediatools import ffmpeg_publish, make_source
from tests.starvation import transcoder_pid

from golive.app import Golive

pytestmark = pytest.mark.slow

PROFILE = """
name = "quicklevels"
version = 1
[[renditions]]
name = "180p"
height = 180
video_bitrate_kbps = 250
[alerts]
for_seconds = 1
resolve_after_seconds = 2
min_ingest_bitrate_kbps = 0
audio_silence_seconds = 2
video_black_seconds = 2
audio_clipping_seconds = 3
max_transcoder_restarts = 2
max_latency_growth_seconds = 3
qoe_window_seconds = 10
qoe_interval_seconds = 1
"""
LEVEL_RULES = {"audio_silent", "audio_clipping", "video_black"}
VIEW = "driftingview01234567"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 " \
     "Safari/537.36"


async def drifting_player(web: httpx.AsyncClient, playback_id: str) -> None:
    """One hls.js view whose latency sample grows 1 s per second (a beacon every 2 s:
    the per-view rate limit)."""
    epoch = time.monotonic()
    first = True
    while True:
        now = (time.monotonic() - epoch) * 1000
        events = [{"type": "latency", "t": now, "seconds": 2 + now / 1000}]
        if first:
            events[:0] = [{"type": "start", "t": now, "muted": True, "native": False,
                           "rendition": "180p", "protocol": "hls", "player": "hls.js"},
                          {"type": "first_frame", "t": now, "ms": 700}]
        r = await web.post(f"/qoe/{playback_id}", json={"view_id": VIEW, "sent": now,
                                                        "events": events})
        assert r.status_code == 204, r.text
        first = False
        await asyncio.sleep(2.05)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Golive]:
    settings = node_settings(tmp_path)
    profiles = settings.resolved_profiles_dir
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "quicklevels.toml").write_text(PROFILE)
    async with Golive(settings) as n:
        yield n


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("levels")
    small = {"seconds": 4, "size": "320x180", "video_kbps": 250}
    return {
        "dark": make_source(folder / "dark.flv", video="color=c=black", volume_db=-200,
                            **small),  # type: ignore[arg-type]
        "loud": make_source(folder / "loud.flv", volume_db=30, **small),  # type: ignore[arg-type]
        "healthy": make_source(folder / "healthy.flv", **small),  # type: ignore[arg-type]
    }


@pytest.mark.timeout(240)
async def test_silent_clipping_and_black_sources_fire_their_alerts_a_healthy_one_none(
    node: Golive, sources: dict[str, Path]
) -> None:
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as api, \
            httpx.AsyncClient(base_url=node.http_url, timeout=10,
                              headers={"User-Agent": UA}) as web:
        streams = {name: await create_stream(api, name=name, profile="quicklevels")
                   for name in sources}
        ids = {name: s["id"] for name, s in streams.items()}
        async with contextlib.AsyncExitStack() as publishers:
            for name, source in sources.items():
                publishers.enter_context(running(ffmpeg_publish(
                    source, node.rtmp_url(streams[name]["stream_key"]), loop=True)))
            for sid in ids.values():
                await wait_status(api, sid, "active", timeout=30)
            player = asyncio.create_task(drifting_player(
                web, streams["healthy"]["playback_ids"][0]["id"]))
            publishers.push_async_callback(_cancel, player)

            black = (await alert_event(api, ids["dark"], "alert.firing", "video_black"))["data"]
            assert black["threshold"] == 2.0 and black["unit"] == "s" and black["value"] >= 2
            assert "black for" in black["summary"]
            # Silent too: the diagnosis says the scene is empty, not just a lost camera.
            assert "empty scene" in black["cause"] and "program scene" in black["fix"]
            assert black["related"]["luma_high"] <= 20

            silent = (await alert_event(api, ids["dark"], "alert.firing", "audio_silent"))["data"]
            assert silent["value"] >= 2 and "under -60 dBFS" in silent["summary"]
            assert silent["related"]["audio_rms_dbfs"] <= -100
            assert "digital silence" in silent["cause"] and "Audio Mixer" in silent["fix"]

            clip = (await alert_event(api, ids["loud"], "alert.firing", "audio_clipping"))["data"]
            assert clip["value"] >= 0.9 and clip["threshold"] == 0.2 and clip["unit"] == "ratio"
            # +30 dB over a -18 dBFS sine saturates the publisher's 16-bit samples; its
            # AAC comes out with the flat tops rounded, a few tenths under full scale.
            assert clip["related"]["audio_peak_dbfs"] > -1
            assert "clipped" in clip["cause"] and "lower the gain" in clip["fix"]
            assert "limiter" in clip["fix"]

            # The healthy stream's encoder dies twice (killed): transcoder_restarts.
            for attempt in (1, 2):
                pid = await eventually(lambda: _pid(node, ids["healthy"]), timeout=30,
                                       what="the healthy stream's transcoder")
                os.kill(pid, signal.SIGKILL)
                await eventually(lambda p=pid: _restarted(node, ids["healthy"], p),  # type: ignore[misc]
                                 timeout=30, what=f"restart {attempt}")
            restarts = (await alert_event(api, ids["healthy"], "alert.firing",
                                          "transcoder_restarts"))["data"]
            assert restarts["value"] == 2 and "restarted 2 times" in restarts["summary"]
            assert "killed from outside" in restarts["cause"] and "killed x2" in restarts["cause"]

            drift = (await alert_event(api, ids["healthy"], "alert.firing",
                                       "viewer_latency_drift"))["data"]
            assert drift["value"] > 3 and drift["threshold"] == 3.0
            assert "1 view(s) fell up to" in drift["summary"]
            assert [d["view_id"] for d in drift["related"]["drifting"]] == [VIEW]
            speed = drift["related"]["encoder_live_speed"]
            if speed is not None and speed < 0.95:  # this machine starved the encoder
                assert "encoder is slower than real time" in drift["cause"]
            else:
                assert drift["cause"].startswith("players drifting from the live edge")
                assert "hls.js/chrome x1" in drift["cause"].lower()
                assert "maxLiveSyncPlaybackRate" in drift["fix"]

            # None of the sound and picture rules fired where their fault is absent.
            for name, allowed in (("dark", {"video_black", "audio_silent"}),
                                  ("loud", {"audio_clipping"}), ("healthy", set())):
                listed = await alerts(api, ids[name])
                seen = {a["rule"] for a in listed["active"] + listed["recent"]}
                assert seen & LEVEL_RULES == allowed, (name, seen)
            # The level shows on /metrics while the streams are live.
            text = (await api.get(f"{node.http_url}/metrics")).text
            assert f'golive_ingest_audio_level_dbfs{{kind="rms",stream_id="{ids["healthy"]}"}}' \
                in text
            assert f'golive_ingest_video_black_seconds{{stream_id="{ids["dark"]}"}}' in text


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _pid(node: Golive, stream_id: str) -> int | None:
    return transcoder_pid(node, stream_id)


async def _restarted(node: Golive, stream_id: str, old: int) -> bool | None:
    pid = transcoder_pid(node, stream_id)
    return True if pid is not None and pid != old else None
