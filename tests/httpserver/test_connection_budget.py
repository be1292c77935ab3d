"""Connections on the HTTP port: at most so many from one address, and in all, the idle ones
giving way first (golive.httpserver.budget)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import websockets
from tests.e2e.conftest import ADMIN, create_stream, eventually, node_settings
from tests.httpserver.test_keep_alive import get

from golive.app import Golive
from golive.core import client_key
from golive.httpserver import ConnectionBudget

HANG = 30.0
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class FakeConnection:
    def __init__(self, budget: ConnectionBudget, name: str) -> None:
        self.budget = budget
        self.name = name
        self.closed = False

    def close_idle(self) -> None:
        self.closed = True
        self.budget.release(self, self)


def test_a_client_is_an_ipv4_address_or_an_ipv6_64() -> None:
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("[2001:db8:1:2::1]:443") == "2001:db8:1:2::/64"  # "ip:port" forms too
    assert client_key("192.0.2.7:1935") == "192.0.2.7"
    assert client_key("not an address") == "not an address"


def test_the_budget_refuses_past_an_address_and_makes_room_from_the_longest_idle() -> None:
    budget = ConnectionBudget(most=4, per_address=2, trusted=["10.0.0.0/8"])
    a1, a2, a3 = (FakeConnection(budget, f"a{i}") for i in range(3))
    assert budget.admit(a1, "192.0.2.1") and budget.admit(a2, "192.0.2.1")
    assert not budget.admit(a3, "192.0.2.1")  # a third from the same address
    assert budget.refused_per_address == 1 and budget.count("192.0.2.1") == 2
    proxy = [FakeConnection(budget, f"p{i}") for i in range(3)]
    assert budget.admit(proxy[0], "10.1.2.3") and budget.admit(proxy[1], "::ffff:10.1.2.3")
    assert budget.open == 4 and budget.count("10.1.2.3") == 0  # trusted: not per address
    # Full. None idle: the newcomer is refused.
    assert not budget.admit(proxy[2], "10.1.2.3")
    assert budget.refused_full == 1
    # The longest idle gives way; a busy one never does.
    for connection in (a2, a1, proxy[0]):
        budget.idle(connection)
    budget.idle(a2)  # idle again: now the newest
    budget.busy(a1)
    assert budget.admit(proxy[2], "10.1.2.3")
    assert proxy[0].closed and not a1.closed and not a2.closed
    assert budget.open == 4 and budget.closed_idle == 1 and budget.idle_count == 1
    budget.release(proxy[0])  # its connection_lost, after it was released for room: nothing
    assert budget.open == 4
    budget.release(a1, a1)
    budget.release(a2, a2)
    assert budget.count("192.0.2.1") == 0 and budget.open == 2 and budget.idle_count == 0
    with pytest.raises(ValueError):
        ConnectionBudget(most=0, per_address=1)


async def connect(node: Golive, source: str) -> Connection:
    return await asyncio.open_connection("127.0.0.1", node.http_port, local_addr=(source, 0))


async def answered(connection: Connection) -> bytes:
    """Send a request on `connection`; the status line of its answer."""
    return await get(*connection)


async def closed_unanswered(connection: Connection) -> bool:
    """True when the node closes `connection` without a byte (it waits for the close)."""
    try:
        return await asyncio.wait_for(connection[0].read(), HANG) == b""
    except ConnectionResetError:
        return True


async def until(check: Callable[[], bool], what: str) -> None:
    """Wait for the node's loop (this one) to get to `check`."""

    async def now() -> bool:
        return check()

    await eventually(now, what=what)


def metric(text: str, line: str) -> float:
    found = re.search(rf"^{re.escape(line)} (\S+)$", text, re.M)
    assert found, line
    return float(found.group(1))


async def test_the_node_caps_connections_per_address_and_in_all(tmp_path: Path) -> None:
    settings = node_settings(tmp_path, http_max_connections=6,
                             http_max_connections_per_address=3, http_head_timeout=HANG)
    opened: list[Connection] = []

    async def open_(source: str) -> Connection:
        connection = await connect(node, source)
        opened.append(connection)
        return connection

    async with Golive(settings) as node, httpx.AsyncClient(timeout=HANG) as client:
        budget = node.http_connections
        assert budget is not None
        try:
            # Three from one address, answered and idle; a fourth is closed unread.
            first = [await open_("127.0.0.2") for _ in range(3)]
            for connection in first:
                assert await answered(connection) == b"HTTP/1.1 200 OK"
            assert await closed_unanswered(await open_("127.0.0.2"))
            # Another address is let in, up to the node's six.
            others = [await open_("127.0.0.3") for _ in range(3)]
            for connection in others:
                assert await answered(connection) == b"HTTP/1.1 200 OK"
            await until(lambda: budget.open == 6, "budget.open == 6")
            # Full: a newcomer closes the connection idle the longest (the first's first).
            newcomer = await open_("127.0.0.4")
            assert await answered(newcomer) == b"HTTP/1.1 200 OK"
            assert await closed_unanswered(first[0])
            # Connections in the middle of a request are not closed for room: with every
            # connection busy (a head begun), the next newcomer is refused.
            for _reader, writer in (*first[1:], *others, newcomer):
                writer.write(b"GET /healthz HTTP/1.1\r\n")
            await until(lambda: budget.idle_count == 0, "budget.idle_count == 0")
            assert await closed_unanswered(await open_("127.0.0.5"))
            for reader, writer in (*first[1:], *others, newcomer):
                writer.write(b"Host: node\r\n\r\n")
                assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), HANG)
                        == b"HTTP/1.1 200 OK\r\n")
            await until(lambda: budget.open == 6, "budget.open == 6")
        finally:
            for _reader, writer in opened:
                writer.close()
        await until(lambda: budget.open == 0, "budget.open == 0")
        # What an operator sees (the scrape's own connection is counted while it is open).
        text = (await client.get(f"{node.http_url}/metrics",
                                 headers={"Authorization": f"Bearer {ADMIN}"})).text
        assert metric(text, 'golive_http_connections_refused_total{reason="per_address"}') == 1
        assert metric(text, 'golive_http_connections_refused_total{reason="limit"}') == 1
        assert metric(text, "golive_http_idle_connections_closed_total") == 1
        assert metric(text, "golive_http_connections") == 1


async def test_websockets_count_until_they_close(tmp_path: Path) -> None:
    settings = node_settings(tmp_path, http_max_connections_per_address=2)
    async with Golive(settings) as node, httpx.AsyncClient(
            base_url=f"{node.http_url}/api/v1", timeout=HANG,
            headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        budget = node.http_connections
        assert budget is not None
        stream = await create_stream(api)
        url = f"ws://127.0.0.1:{node.http_port}/chat/{stream['playback_ids'][0]['id']}"
        chat = await websockets.connect(url, open_timeout=HANG)
        try:
            # The chat and the API's connection.
            await until(lambda: budget.count("127.0.0.1") == 2, "two from 127.0.0.1")
            # The address is full: one more connection, of either kind, is closed unread.
            with pytest.raises((websockets.InvalidHandshake, OSError, asyncio.IncompleteReadError)):
                await websockets.connect(url, open_timeout=HANG)
        finally:
            await chat.close()
        await until(lambda: budget.count("127.0.0.1") == 1, "the API's alone")
        assert budget.refused_per_address == 1
