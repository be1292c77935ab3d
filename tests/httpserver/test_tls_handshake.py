"""TLS handshakes on the HTTPS port are bounded in time and in number (golive.httpserver.tls).

Real sockets against a real node: clients that open TCP and send nothing, clients that
dribble a real ClientHello a byte at a time, and a flood past the limit, while a real TLS
client (httpx trusting the test CA) keeps getting answers.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvloop
from tests.e2e.conftest import eventually, node_settings
from tests.tlscerts import ServerCertificate, make_server_certificate

from golive.app import Golive
from golive.httpserver import HandshakeGate

HANDSHAKE_TIMEOUT = 3.0  # the node's tls_handshake_timeout here
MAX_HANDSHAKES = 16  # and its tls_max_handshakes
HANG = 20.0  # far past the handshake timeout, far short of the 60 s a loop allows by default
DRIBBLE_PAUSE = 0.05  # between the bytes of a dribbled ClientHello (~25 s for all of it)


@pytest.fixture
def certificate(tmp_path: Path) -> ServerCertificate:
    return make_server_certificate(tmp_path / "tls")


@asynccontextmanager
async def tls_node(tmp_path: Path, certificate: ServerCertificate) -> AsyncIterator[Golive]:
    settings = node_settings(tmp_path, tls_cert=certificate.cert, tls_key=certificate.key,
                             tls_handshake_timeout=HANDSHAKE_TIMEOUT,
                             tls_max_handshakes=MAX_HANDSHAKES)
    async with Golive(settings) as node:
        yield node


def on_uvloop(test: Callable[[Golive, ServerCertificate], Awaitable[None]], tmp_path: Path,
              certificate: ServerCertificate) -> None:
    """Run `test` against a TLS node on uvloop, as `golive serve` runs (the HTTPS tests
    elsewhere run on asyncio's loop, so both loops' TLS layers are covered)."""

    async def main() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        async with tls_node(tmp_path, certificate) as node:
            await test(node, certificate)

    uvloop.run(main())


def client_hello(certificate: ServerCertificate) -> bytes:
    """The first flight a real TLS client sends (Python's ssl, as httpx uses)."""
    context = ssl.create_default_context(cafile=str(certificate.ca))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > 100  # a handshake record
    return hello


class Hostile:
    """One TCP connection that never completes a handshake; `closed` is when the server
    ended it (EOF or reset), `sent` what it had sent of its hello by then."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.opened = time.monotonic()
        self.sent = 0
        self.closed: float | None = None
        self.received = b""

    @classmethod
    async def connect(cls, port: int) -> Hostile:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def dribble(self, hello: bytes) -> None:
        """Send all but the last byte of `hello`, one byte per pause, until cut off."""
        try:
            for byte in hello[:-1]:
                self.writer.write(bytes((byte,)))
                await self.writer.drain()
                self.sent += 1
                await asyncio.sleep(DRIBBLE_PAUSE)
        except ConnectionError:
            return

    async def wait_closed(self) -> None:
        """Read until the server ends the connection (anything it sends is kept)."""
        try:
            while data := await self.reader.read(4096):
                self.received += data
        except ConnectionError:
            pass
        self.closed = time.monotonic()
        self.writer.close()


def pending_is(gate: HandshakeGate, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return gate.pending == count

    return check


async def healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200


def test_silent_and_dribbling_handshakes_are_cut_off_while_tls_clients_are_served(
    tmp_path: Path, certificate: ServerCertificate
) -> None:
    on_uvloop(silent_and_dribbling, tmp_path, certificate)


async def silent_and_dribbling(node: Golive, certificate: ServerCertificate) -> None:
    gate = node.tls_gate
    assert isinstance(gate, HandshakeGate)
    trust = ssl.create_default_context(cafile=str(certificate.ca))
    hello = client_hello(certificate)
    silent = [await Hostile.connect(node.http_port) for _ in range(6)]
    dribblers = [await Hostile.connect(node.http_port) for _ in range(6)]
    dribbling = [asyncio.create_task(d.dribble(hello)) for d in dribblers]
    closing = [asyncio.create_task(h.wait_closed()) for h in silent + dribblers]
    try:
        await eventually(pending_is(gate, 12), what="twelve handshakes in progress")
        # Meanwhile a real client completes its handshake and is answered, again and again
        # (new connections, so new handshakes), while the twelve hang.
        for _ in range(3):
            async with httpx.AsyncClient(base_url=node.http_url, verify=trust, timeout=10) as c:
                await healthz(c)
        assert not any(task.done() for task in closing)
        await asyncio.wait_for(asyncio.gather(*closing), HANG)
    finally:
        for task in dribbling + closing:
            task.cancel()
        await asyncio.gather(*dribbling, *closing, return_exceptions=True)
    for hostile in silent + dribblers:
        assert hostile.closed is not None and hostile.received == b""
        # Not before the timeout (nothing was wrong but the time), and not much after it.
        assert hostile.closed - hostile.opened >= HANDSHAKE_TIMEOUT - 0.1
    # The dribblers were cut off mid-hello: the clock runs from the connection, not the
    # last byte, so a client cannot keep a handshake alive by trickling it.
    assert all(0 < d.sent < len(hello) - 1 for d in dribblers)
    await eventually(pending_is(gate, 0), what="no handshake left in progress")
    assert gate.failed >= 12 and gate.completed >= 3 and gate.dropped == 0


def test_handshakes_past_the_limit_are_dropped_at_once(
    tmp_path: Path, certificate: ServerCertificate
) -> None:
    on_uvloop(past_the_limit, tmp_path, certificate)


async def past_the_limit(node: Golive, certificate: ServerCertificate) -> None:
    gate = node.tls_gate
    assert isinstance(gate, HandshakeGate)
    trust = ssl.create_default_context(cafile=str(certificate.ca))
    held = [await Hostile.connect(node.http_port) for _ in range(MAX_HANDSHAKES)]
    holding = [asyncio.create_task(h.wait_closed()) for h in held]
    try:
        await eventually(pending_is(gate, MAX_HANDSHAKES), what="the limit reached")
        flood = [await Hostile.connect(node.http_port) for _ in range(40)]
        # Each of the flood is reset unread, long before the held ones time out.
        await asyncio.wait_for(asyncio.gather(*(h.wait_closed() for h in flood)), HANG)
        assert not any(task.done() for task in holding)
        assert gate.dropped == 40 and gate.pending == MAX_HANDSHAKES
        assert all(h.received == b"" for h in flood)
        # A real client arriving now is turned away too (the limit is the limit) ...
        async with httpx.AsyncClient(base_url=node.http_url, verify=trust, timeout=10) as c:
            with pytest.raises(httpx.TransportError):
                await c.get("/healthz")
        # ... and served once the held handshakes have timed out and freed their places.
        await asyncio.wait_for(asyncio.gather(*holding), HANG)
        await eventually(pending_is(gate, 0), what="the held handshakes timed out")
        async with httpx.AsyncClient(base_url=node.http_url, verify=trust, timeout=10) as c:
            await healthz(c)
    finally:
        for task in holding:
            task.cancel()
        await asyncio.gather(*holding, return_exceptions=True)
