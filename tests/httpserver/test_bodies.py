"""BodyLimit on its own: an ASGI layer driven by hand-made receive/send calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from golive.httpserver import BodyLimit, RouteLimit, RouteLimits

LIMITS = RouteLimits((RouteLimit("/small/", 10, "tiny"), RouteLimit("/small/big/", 100, "more")),
                     default=50)


def test_longest_prefix_wins() -> None:
    assert LIMITS.limit("/small/x") == 10
    assert LIMITS.limit("/small/big/x") == 100
    assert LIMITS.limit("/other") == 50


class Route:
    """A route that reads its whole body the usual way and echoes its length."""

    def __init__(self) -> None:
        self.calls = 0
        self.read: int | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        body = await Request(scope, receive).body()
        self.read = len(body)
        await JSONResponse({"read": len(body)})(scope, receive, send)


async def call(path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]],
               route: Route, *, stall: bool = False,
               body_timeout: float = 30.0) -> tuple[list[dict[str, Any]], int]:
    """Run one request through BodyLimit; (messages sent, body messages received).

    `stall`: after the chunks (the last one saying more is coming), the client sends
    nothing more and does not go away either.
    """
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers,
             "query_string": b""}
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
               for i, c in enumerate(chunks)]
    taken = 0
    sent: list[dict[str, Any]] = []

    if stall:
        pending[-1]["more_body"] = True

    async def receive() -> dict[str, Any]:
        nonlocal taken
        if taken < len(pending):
            taken += 1
            return pending[taken - 1]
        if stall:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await BodyLimit(route, LIMITS, body_timeout)(scope, receive, send)
    return sent, taken


def refusal(sent: list[dict[str, Any]], status: int = 413) -> str:
    assert sent[0]["status"] == status
    assert (b"connection", b"close") in sent[0]["headers"]
    assert len(sent) == 2  # nothing of the route's own answer
    message: str = json.loads(sent[1]["body"])["error"]["messages"][0]
    return message


async def test_declared_length_over_the_limit_reads_nothing() -> None:
    route = Route()
    sent, taken = await call("/small/x", [b"x" * 11], [(b"content-length", b"11")], route)
    assert "larger than 10 bytes" in refusal(sent)
    assert route.calls == 0 and taken == 0


@pytest.mark.parametrize("chunk", [3, 11])
async def test_streamed_body_is_cut_at_the_limit(chunk: int) -> None:
    route = Route()
    chunks = [b"x" * chunk] * 20
    sent, taken = await call("/small/x", chunks, [(b"transfer-encoding", b"chunked")], route)
    refusal(sent)
    assert route.read is None  # the route never got a whole body
    assert taken * chunk <= 10 + chunk  # at most one message past the limit was taken


async def test_bodies_within_the_limit_pass() -> None:
    route = Route()
    sent, _ = await call("/small/big/x", [b"x" * 60, b"x" * 40],
                         [(b"transfer-encoding", b"chunked")], route)
    assert sent[0]["status"] == 200 and json.loads(sent[1]["body"]) == {"read": 100}


async def test_requests_without_a_body_pass_untouched() -> None:
    route = Route()
    sent, _ = await call("/small/x", [b""], [], route)
    assert sent[0]["status"] == 200 and route.read == 0


async def test_a_body_that_stops_coming_gets_408() -> None:
    route = Route()
    sent, taken = await call("/small/big/x", [b"x" * 5, b"x" * 5],
                             [(b"content-length", b"50")], route, stall=True, body_timeout=0.2)
    assert "did not arrive within 0.2 s" in refusal(sent, 408)
    assert route.read is None and taken == 2


async def test_a_whole_body_is_no_longer_timed() -> None:
    # A route that has its body and then waits for the client to go away (as a
    # streaming answer does) is not cut off by the body deadline.
    done = asyncio.Event()

    async def waits_for_disconnect(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.request"
        await JSONResponse({"ok": True})(scope, receive, send)
        await asyncio.sleep(0.3)  # past the body deadline
        assert (await receive())["type"] == "http.disconnect"
        done.set()

    sent: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"xx", "more_body": False},
        {"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        message = messages.pop(0)
        if message["type"] == "http.disconnect":
            await asyncio.sleep(0.05)  # the client goes away after a while
        return message

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": "POST", "path": "/small/x", "query_string": b"",
             "headers": [(b"content-length", b"2")]}
    await BodyLimit(waits_for_disconnect, LIMITS, 0.1)(scope, receive, send)
    assert done.is_set() and sent[0]["status"] == 200
