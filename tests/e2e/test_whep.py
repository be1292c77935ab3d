"""WHEP playback end to end: RTMP in, the transcoder's WebRTC output, aiortc viewers out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, eventually, node_settings, wait_status
from tests.mediatools import ffmpeg_publish, stop
from tests.webrtc_client import WhipRefused, rtc_config, whep_play

from golive.app import Golive

pytestmark = pytest.mark.slow


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Golive]:
    settings = node_settings(tmp_path, webrtc_playback=True, whep_max_viewers=1, **rtc_config())
    async with Golive(settings) as n:
        yield n


@pytest.fixture
async def api(node: Golive) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1",
                                 headers={"Authorization": f"Bearer {ADMIN}"},
                                 timeout=10) as client:
        yield client


async def test_whep_viewer_gets_video_and_audio(
    node: Golive, api: httpx.AsyncClient, source_480p: Path
) -> None:
    stream = await create_stream(api, name="whep")
    pid = stream["playback_ids"][0]["id"]
    proc = ffmpeg_publish(source_480p, node.rtmp_url(stream["stream_key"]), loop=True)
    viewers: list[Any] = []
    try:
        await wait_status(api, stream["id"], "active")
        assert node.pipeline is not None

        async def feed_ready() -> Any:
            facts = node.pipeline.facts(stream["id"]) if node.pipeline else None
            feed = node.pipeline.webrtc_feed(pid) if node.pipeline else None
            webrtc = facts.webrtc if facts else None
            return webrtc if webrtc and feed and feed.video_packets > 0 else None

        webrtc = await eventually(feed_ready, timeout=60, what="the WebRTC output")
        facts = node.pipeline.facts(stream["id"])
        assert facts is not None and "webrtc" not in facts.renditions
        # A 480p source makes 480p + 360p; WebRTC gets the lowest, and HLS never lists it.
        assert (webrtc.width, webrtc.height) == (640, 360), webrtc
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            multivariant = (await http.get(f"/live/{pid}.m3u8")).text
        assert "webrtc" not in multivariant and multivariant.count("#EXT-X-STREAM-INF") == 2

        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            unknown = await http.post("/whep/nope", content="v=0\r\n",
                                      headers={"Content-Type": "application/sdp"})
            assert unknown.status_code == 404

        viewer = await whep_play(node.http_url, pid)
        viewers.append(viewer)
        assert viewer.location.startswith(f"/whep/{pid}/")

        async def enough() -> bool | None:
            return True if len(viewer.video_frames) >= 30 and viewer.audio_frames >= 20 else None

        await eventually(enough, timeout=30, what="30 decoded video frames and audio")
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            metrics = (await http.get("/metrics")).text
        assert f'golive_whep_viewers{{stream_id="{stream["id"]}"}} 1.0' in metrics
        assert f'golive_whep_connecting{{stream_id="{stream["id"]}"}} 0.0' in metrics
        assert f'golive_webrtc_video_frames_total{{stream_id="{stream["id"]}"}} ' in metrics
        assert f'golive_whep_backlog_frames{{stream_id="{stream["id"]}"}} ' in metrics
        await asyncio.sleep(2.0)  # a steady rate, not just a burst at the start
        span = viewer.video_frames[-1][0] - viewer.video_frames[0][0]
        rate = (len(viewer.video_frames) - 1) / span
        assert 20 <= rate <= 40, rate  # 30 fps, with slack for a loaded machine
        first_at, width, height = viewer.video_frames[0]
        assert (width, height) == (webrtc.width, webrtc.height)
        assert all((w, h) == (width, height) for _, w, h in viewer.video_frames)
        print(f"WHEP: {webrtc}; first frame after {first_at:.2f}s, "
              f"{len(viewer.video_frames)} video frames at {rate:.1f}/s, "
              f"{viewer.audio_frames} audio frames")

        # The viewer limit (1 here): the next player is pointed to LL-HLS.
        with pytest.raises(WhipRefused) as refused:
            await whep_play(node.http_url, pid)
        assert refused.value.response.status_code == 503
        body = refused.value.response.json()
        assert body["error"]["reason"] == "viewer_limit"
        assert body["error"]["fallback"]["protocol"] == "ll-hls"

        deleted = await viewer.delete()
        assert deleted.status_code == 200
        assert node.whep is not None and not node.whep.sessions
        count = len(viewer.video_frames)
        await asyncio.sleep(1.0)
        assert len(viewer.video_frames) <= count + 5  # nothing flows after DELETE
        again = await viewer.client.delete(viewer.location)
        assert again.status_code == 404

        # The slot is free again.
        second = await whep_play(node.http_url, pid)
        viewers.append(second)
        start = time.monotonic()

        async def some() -> bool | None:
            return True if len(second.video_frames) >= 5 else None

        await eventually(some, timeout=20, what="frames for a second viewer")
        print(f"WHEP: second viewer's first 5 frames after {time.monotonic() - start:.2f}s")

        # The end of the broadcast ends its viewers' sessions.
        stop(proc)
        whep = node.whep

        async def ended() -> bool | None:
            return True if not whep.sessions else None

        await eventually(ended, timeout=30, what="WHEP sessions to end with the broadcast")
    finally:
        for v in viewers:
            await v.close()
        stop(proc)


@pytest.fixture
async def mixed_node(tmp_path: Path) -> AsyncIterator[Golive]:
    """A node whose streams default to no WebRTC playback (the setting's default)."""
    async with Golive(node_settings(tmp_path, **rtc_config())) as n:
        yield n


def _ffmpeg_argv(node: Golive, stream_id: str) -> list[str]:
    assert node.pipeline is not None
    pipeline = node.pipeline.for_stream(stream_id)
    assert pipeline is not None and pipeline.transcoder is not None
    pid = pipeline.transcoder.stats.pid
    assert pid is not None
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


async def test_only_streams_with_webrtc_playback_get_a_webrtc_output(
    mixed_node: Golive, source_flv: Path
) -> None:
    """Two broadcasts live at once: one stream has webrtc_playback, the other does not."""
    node = mixed_node
    assert node.pipeline is not None and node.rtmp is not None
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1",
                                 headers={"Authorization": f"Bearer {ADMIN}"},
                                 timeout=10) as api:
        realtime = await create_stream(api, name="interactive", webrtc_playback=True)
        plain = await create_stream(api, name="plain")
        assert (realtime["webrtc_playback"], plain["webrtc_playback"]) == (True, False)
        rt_pid, plain_pid = realtime["playback_ids"][0]["id"], plain["playback_ids"][0]["id"]
        procs = [ffmpeg_publish(source_flv, node.rtmp_url(s["stream_key"]), loop=True)
                 for s in (realtime, plain)]
        viewers: list[Any] = []
        try:
            await wait_status(api, realtime["id"], "active")
            await wait_status(api, plain["id"], "active")
            pipeline = node.pipeline

            async def both_encoding() -> bool | None:
                feed = pipeline.webrtc_feed(rt_pid)
                other = pipeline.for_stream(plain["id"])
                return True if (feed is not None and feed.video_packets > 0 and other is not None
                                and other.transcoder is not None
                                and other.transcoder.stats.pid is not None) else None

            await eventually(both_encoding, timeout=60, what="both ladders and the WebRTC output")

            # ffmpeg's outputs: one more (the WebRTC-safe one) only for the realtime stream.
            rt_argv, plain_argv = _ffmpeg_argv(node, realtime["id"]), _ffmpeg_argv(node, plain["id"])
            rt_outputs = [a for a in rt_argv if a.startswith("pipe:")]
            plain_outputs = [a for a in plain_argv if a.startswith("pipe:")]
            assert len(rt_outputs) == len(plain_outputs) + 1, (rt_argv, plain_argv)
            assert "baseline" in rt_argv and "baseline" not in plain_argv
            rt_facts, plain_facts = (pipeline.facts(realtime["id"]), pipeline.facts(plain["id"]))
            assert rt_facts is not None and rt_facts.webrtc is not None
            assert plain_facts is not None and plain_facts.webrtc is None
            assert pipeline.webrtc_feed(plain_pid) is None

            # Ingest batches reads only for the stream without WebRTC viewers.
            batching = {c.publisher.stream_id: c.publisher.webrtc_playback
                        for c in node.rtmp.connections if c.publisher is not None}
            assert batching == {realtime["id"]: True, plain["id"]: False}
            assert (node.rtmp.webrtc_read_batch, node.rtmp.read_batch) == (0.0, 0.040)

            async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
                refused = await http.post(f"/whep/{plain_pid}", content="v=0\r\n",
                                          headers={"Content-Type": "application/sdp"})
                unknown = await http.post("/whep/nope", content="v=0\r\n",
                                          headers={"Content-Type": "application/sdp"})
            assert refused.status_code == 404, refused.text
            error = refused.json()["error"]
            assert error["reason"] == "webrtc_playback_off"
            assert error["fallback"] == {"protocol": "ll-hls", "url": f"/live/{plain_pid}.m3u8"}
            assert unknown.status_code == 404
            assert unknown.json()["error"]["reason"] == "unknown_playback_id"

            viewer = await whep_play(node.http_url, rt_pid)
            viewers.append(viewer)

            async def frames() -> bool | None:
                return True if len(viewer.video_frames) >= 10 else None

            await eventually(frames, timeout=30, what="WHEP video of the realtime stream")
        finally:
            for v in viewers:
                await v.close()
            for proc in procs:
                stop(proc)
