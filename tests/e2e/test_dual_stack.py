"""`host = "::"` listens on every address, IPv4 included, on every port."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import ipv6_loopback, node_settings
from tests.ingest.rtmp.rtmpclient import SocketClient
from tests.ingest.srt.srtpeers import RawCaller, induction_datagram

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
