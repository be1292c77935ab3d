"""Hostile and broken RTMP clients: none of them may disturb a publisher that is streaming."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, get_stream, node_settings, wait_status
from tests.ingest.rtmp.rtmpclient import C0C1, SocketClient
from tests.mediatools import ffmpeg_publish, stop

from golive.app import Golive

pytestmark = pytest.mark.slow


async def test_refusals_reach_the_client_as_netstream_status(
    node: Golive, api: httpx.AsyncClient
) -> None:
    client = await SocketClient.connect(node.rtmp_port)
    await client.send(*client.codec.publish_sequence("sk_not_a_key"))
    assert await client.wait_status() == "NetStream.Publish.BadName"
    assert await client.closed_by_server()

    stream = await create_stream(api)
    first = await SocketClient.connect(node.rtmp_port)
    await first.send(*first.codec.publish_sequence(stream["stream_key"]))
    assert await first.wait_status() == "NetStream.Publish.Start"
    second = await SocketClient.connect(node.rtmp_port)
    await second.send(*second.codec.publish_sequence(stream["stream_key"]))
    assert await second.wait_status() == "NetStream.Publish.BadName"
    first.close()
    second.close()


async def test_garbage_and_silent_clients_do_not_disturb_a_live_publisher(
    tmp_path: Path, source_flv: Path
) -> None:
    settings = node_settings(tmp_path, rtmp_handshake_timeout=1.0, rtmp_idle_timeout=2.0)
    async with Golive(settings) as node, httpx.AsyncClient(
        base_url=f"{node.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"}
    ) as api:
        stream = await create_stream(api)
        proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, stream["id"], "active")
            before = (await get_stream(api, stream["id"]))["live"]["bytes_received"]

            # Random bytes before and after a valid handshake; a bad version byte.
            for payload in (os.urandom(5000), C0C1 + bytes(1536) + os.urandom(5000),
                            b"\x06" + os.urandom(1536)):
                reader, writer = await asyncio.open_connection("127.0.0.1", node.rtmp_port)
                writer.write(payload)
                await writer.drain()
                await asyncio.wait_for(reader.read(), 10)  # the server closes it
                writer.close()
            # A chunk announcing a message over the size limit.
            client = await SocketClient.connect(node.rtmp_port)
            await client.send(b"\x04\x00\x00\x00\xff\xff\xff\x09\x01\x00\x00\x00")
            assert await client.closed_by_server()
            # Half-open: connects and says nothing; dropped after the handshake timeout.
            silent = await asyncio.open_connection("127.0.0.1", node.rtmp_port)
            assert await asyncio.wait_for(silent[0].read(), 10) == b""
            silent[1].close()

            after = (await get_stream(api, stream["id"]))
            assert after["status"] == "active"
            assert after["live"]["bytes_received"] > before
            assert after["live"]["reconnects"] == 0
        finally:
            stop(proc)


async def test_rtmps_publish(tmp_path: Path, source_flv: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    settings = node_settings(tmp_path, rtmps_port=0, tls_cert=cert, tls_key=key)
    async with Golive(settings) as node, httpx.AsyncClient(
        base_url=f"{node.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"}
    ) as api:
        assert node.rtmps is not None
        stream = await create_stream(api)
        # A TLS client that sends junk after the handshake is dropped, not the server.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection("127.0.0.1", node.rtmps.port, ssl=context)
        writer.write(b"\x07" * 2000)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()

        url = f"rtmps://127.0.0.1:{node.rtmps.port}/live/{stream['stream_key']}"
        # ffmpeg verifies the server certificate: trust the test's self-signed one.
        proc = ffmpeg_publish(source_flv, url, loop=True, extra=["-ca_file", str(cert)])
        try:
            live = await wait_status(api, stream["id"], "active")
            assert live["live"]["protocol"] == "rtmps"
        finally:
            stop(proc)
