"""Hostile and broken RTMP clients: none of them may disturb a publisher that is streaming."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import (
    ADMIN,
    create_stream,
    eventually,
    get_stream,
    ipv6_loopback,
    node_settings,
    wait_status,
)
from tests.httpserver.test_tls_handshake import Hostile
from tests.ingest.attacks import partial_rtmp_messages
from tests.ingest.rtmp.rtmpclient import C0C1, SocketClient
from tests.mediatools import ffmpeg_publish, stop
from tests.tlscerts import make_server_certificate

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
    # The certificate makes the HTTP port speak HTTPS too: the API client trusts it.
    async with Golive(settings) as node, httpx.AsyncClient(
        base_url=f"{node.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"},
        verify=ssl.create_default_context(cafile=str(cert)),
    ) as api:
        assert node.http_url.startswith("https://")
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


RTMPS_HANDSHAKE_TIMEOUT = 3.0
RTMPS_MAX_HANDSHAKES = 8


async def test_rtmps_handshakes_are_bounded_in_time_and_number_while_a_publisher_streams(
    tmp_path: Path, source_flv: Path
) -> None:
    """Half-open TLS on the RTMPS port: silent clients are cut off after the handshake
    timeout, and past `tls_max_handshakes` new connections are reset unread, while a
    publisher that completed its handshake keeps streaming."""
    certificate = make_server_certificate(tmp_path / "tls")
    settings = node_settings(tmp_path, rtmps_port=0, tls_cert=certificate.cert,
                             tls_key=certificate.key, tls_max_handshakes=RTMPS_MAX_HANDSHAKES,
                             rtmp_handshake_timeout=RTMPS_HANDSHAKE_TIMEOUT)
    async with Golive(settings) as node, httpx.AsyncClient(
        base_url=f"{node.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"},
        verify=ssl.create_default_context(cafile=str(certificate.ca)),
    ) as api:
        assert node.rtmps is not None and node.rtmps.tls is not None
        gate, port = node.rtmps.tls, node.rtmps.port
        stream = await create_stream(api)
        url = f"rtmps://127.0.0.1:{port}/live/{stream['stream_key']}"
        proc = ffmpeg_publish(source_flv, url, loop=True, extra=["-ca_file", str(certificate.ca)])
        held: list[Hostile] = []
        holding: list[asyncio.Task[None]] = []
        try:
            await wait_status(api, stream["id"], "active")
            held = [await Hostile.connect(port) for _ in range(RTMPS_MAX_HANDSHAKES)]
            holding = [asyncio.create_task(h.wait_closed()) for h in held]

            async def limit_reached() -> bool:
                return gate.pending == RTMPS_MAX_HANDSHAKES

            await eventually(limit_reached, what="the handshake limit reached")
            flood = [await Hostile.connect(port) for _ in range(20)]
            await asyncio.wait_for(asyncio.gather(*(h.wait_closed() for h in flood)), 20)
            assert gate.dropped == 20 and all(h.received == b"" for h in flood)
            assert not any(task.done() for task in holding)
            await asyncio.wait_for(asyncio.gather(*holding), 20)
            for hostile in held:
                assert hostile.closed is not None and hostile.received == b""
                assert hostile.closed - hostile.opened >= RTMPS_HANDSHAKE_TIMEOUT - 0.1

            async def drained() -> bool:
                return gate.pending == 0

            await eventually(drained, what="no handshake left in progress")
            # The publisher never noticed.
            assert proc.poll() is None
            assert (await get_stream(api, stream["id"]))["status"] == "active"
            assert gate.failed >= RTMPS_MAX_HANDSHAKES and gate.completed >= 1
        finally:
            for task in holding:
                task.cancel()
            await asyncio.gather(*holding, return_exceptions=True)
            stop(proc)


def rss_bytes() -> int:
    """Resident memory of this process, where the node under test runs."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_unauthenticated_peers_cannot_make_the_server_hold_large_messages(
    node: Golive, api: httpx.AsyncClient, source_flv: Path
) -> None:
    stream = await create_stream(api)
    proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
    try:
        await wait_status(api, stream["id"], "active")
        before = rss_bytes()
        # Before `connect`: on 64 chunk streams, a message announced at 16 MiB ...
        big = await SocketClient.connect(node.rtmp_port)
        await big.send(b"\x04\x00\x00\x00\xff\xff\x00\x14\x00\x00\x00\x00" + bytes(128))
        assert await big.closed_by_server()
        # ... or many 60 KiB messages left partly sent, one per chunk stream.
        closed = await partial_rtmp_messages(
            node.rtmp_port, sources=[f"127.0.2.{i + 1}" for i in range(10)], streams=61,
            length=60_000)
        assert closed == 10
        grown = rss_bytes() - before
        assert grown < 50 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"
        after = await get_stream(api, stream["id"])
        assert after["status"] == "active" and after["live"]["reconnects"] == 0
    finally:
        stop(proc)


async def test_idle_sockets_from_other_addresses_cannot_lock_out_a_publisher(
    node: Golive, api: httpx.AsyncClient, source_flv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert node.rtmp is not None
    idle: list[asyncio.StreamWriter] = []
    try:
        # 205 idle connections from one address, and a handful from forty more.
        for i in range(205 + 40 * 5):
            source = "127.0.0.2" if i < 205 else f"127.0.1.{(i - 205) // 5 + 1}"
            try:
                _reader, writer = await asyncio.open_connection(
                    "127.0.0.1", node.rtmp_port, local_addr=(source, 0))
            except OSError:
                continue
            idle.append(writer)
        server = node.rtmp
        # Past the connection cap the flood's oldest sockets make room for newer ones.
        await eventually(lambda: _true(server.evicted >= 100), what="evictions", timeout=30)
        assert len(server.connections) <= server.max_connections

        stream = await create_stream(api)
        proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, stream["id"], "active")
        finally:
            stop(proc)
        lines = [r for r in caplog.records if "unauthorised connection dropped" in r.getMessage()]
        assert len(lines) <= 5, "evictions must be logged once per interval, not per socket"
    finally:
        for writer in idle:
            writer.close()


async def guess_keys(port: int, *, source: str | None = None,
                     host: str = "127.0.0.1") -> list[str]:
    """Publish to 14 wrong keys, each on a new connection: the status each got."""
    codes = []
    for i in range(14):
        client = await SocketClient.connect(port, source=source, host=host)
        await client.send(*client.codec.publish_sequence(f"sk_guess_{i}"))
        codes.append(await client.wait_status())
        client.close()
    return codes


async def test_wrong_keys_are_throttled_per_address_and_others_still_publish(
    node: Golive, api: httpx.AsyncClient
) -> None:
    codes = await guess_keys(node.rtmp_port, source="127.0.0.3")
    assert codes[0] == "NetStream.Publish.BadName"
    assert codes[-1] == "NetStream.Publish.Rejected"  # throttled before any key lookup
    # A publisher elsewhere is not affected.
    stream = await create_stream(api)
    client = await SocketClient.connect(node.rtmp_port, source="127.0.0.4")
    await client.send(*client.codec.publish_sequence(stream["stream_key"]))
    assert await client.wait_status() == "NetStream.Publish.Start"
    client.close()


async def test_wrong_keys_over_ipv6_are_throttled_whatever_the_port(tmp_path: Path) -> None:
    # Each guess comes from a new port of [::1]: the throttle counts the address, not the
    # connection (its "remote" once read the port as part of an IPv6 address).
    if not ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    async with Golive(node_settings(tmp_path, host="::")) as node:
        codes = await guess_keys(node.rtmp_port, host="::1")
        assert codes[0] == "NetStream.Publish.BadName"
        assert codes[-1] == "NetStream.Publish.Rejected"


async def _true(value: bool) -> bool:
    return value
