"""`host = "::"` listens on every address, IPv4 included, on every port; WebRTC (WHIP and
WHEP) works over IPv6."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import (
    ADMIN,
    create_stream,
    eventually,
    ipv6_loopback,
    node_settings,
    wait_status,
)
from tests.ingest.rtmp.rtmpclient import SocketClient
from tests.ingest.srt.srtpeers import RawCaller, induction_datagram
from tests.webrtc_client import whep_play, whip_publish

from golive.app import Golive
from golive.ingest.srt.handshake import Handshake, HandshakeType

HANG = 30.0


async def srt_induction_answered(host: str, port: int) -> bool:
    loop = asyncio.get_running_loop()
    transport, caller = await loop.create_datagram_endpoint(RawCaller, remote_addr=(host, port))
    try:
        transport.sendto(induction_datagram(0x4242))
        answer = await asyncio.wait_for(caller.queue.get(), HANG)
        return Handshake.decode(answer[16:]).type == HandshakeType.INDUCTION
    finally:
        transport.close()


async def test_all_addresses_take_ipv4_and_ipv6_on_http_rtmp_and_srt(tmp_path: Path) -> None:
    if not ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    async with Golive(node_settings(tmp_path, host="::")) as node, \
            httpx.AsyncClient(timeout=HANG) as client:
        assert node.srt is not None
        for host, url_host in (("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")):
            response = await client.get(f"http://{url_host}:{node.http_port}/healthz")
            assert response.status_code == 200, host
            rtmp = await SocketClient.connect(node.rtmp_port, host=host)  # the handshake done
            rtmp.close()
            assert await srt_induction_answered(host, node.srt.port), host


async def test_whip_and_whep_over_ipv6(tmp_path: Path) -> None:
    # An IPv6-only network (or a viewer on one): the offer, the answer's candidates, ICE,
    # DTLS and media all over IPv6, the HTTP requests to [::1].
    if not ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    settings = node_settings(tmp_path, host="::", webrtc_playback=True,
                             webrtc_host_addresses=["::1"])
    async with Golive(settings) as node, \
            httpx.AsyncClient(base_url=f"http://[::1]:{node.http_port}/api/v1", timeout=HANG,
                              headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        base = f"http://[::1]:{node.http_port}"
        stream = await create_stream(api)
        pid = stream["playback_ids"][0]["id"]
        publisher = await whip_publish(base, stream["stream_key"], addresses=("::1",))
        try:
            assert "::1" in publisher.answer and "127.0.0.1" not in publisher.answer
            await wait_status(api, stream["id"], "active", timeout=HANG)

            async def feed_ready() -> bool:
                feed = node.pipeline.webrtc_feed(pid) if node.pipeline else None
                return feed is not None and feed.video_packets > 0

            await eventually(feed_ready, timeout=60, what="the WebRTC output")
            viewer = await whep_play(base, pid, audio=False, addresses=("::1",))
            try:
                async def frames() -> bool:
                    return len(viewer.video_frames) >= 30

                await eventually(frames, timeout=HANG, what="30 video frames over WHEP")
            finally:
                await viewer.close()
        finally:
            await publisher.close()
