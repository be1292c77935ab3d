"""Request bodies bounded per route while they stream in: one ASGI layer at the HTTP root (HTTP server).

Routes read bodies with `request.body()` or `request.json()`, which hold the whole
body before any size check of their own. `BodyLimit` sits in front of every route
and counts the bytes as uvicorn hands them over, against the longest matching
prefix of a `RouteLimits` table: a declared Content-Length over the limit is
refused before anything is read, a chunked body as soon as it passes the limit.
Either way the client gets 413 with a JSON reason (the API's error shape) and the
connection is closed, so the rest of the body is never parsed; the route sees the
request as disconnected and its own answer is dropped. A body must also arrive whole
within `body_timeout` seconds of the request reaching this layer (nginx's
`client_body_timeout`, but for the whole body, so trickling a byte at a time does
not keep a request alive): a late one gets 408 the same way. (The close after
either answer lingers, `HeadBoundedHttp`, so the client can read it.)

Requests without a body (no Content-Length, no Transfer-Encoding), which are nearly
all of them (LL-HLS playlists and media), pass through untouched.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_ROUTE_LIMITS", "BodyLimit", "RouteLimit", "RouteLimits"]

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class RouteLimit:
    """The largest body accepted under a path prefix, and what that route takes."""

    prefix: str
    max_bytes: int
    what: str


@dataclass(frozen=True)
class RouteLimits:
    """Per-route body limits: the longest matching prefix wins, else `default`."""

    routes: tuple[RouteLimit, ...]
    default: int = 1 * MiB

    def __post_init__(self) -> None:
        # Longest prefix first, so "/api/v1/" beats "/" and the first match is the one.
        object.__setattr__(self, "routes",
                           tuple(sorted(self.routes, key=lambda r: len(r.prefix), reverse=True)))

    def limit(self, path: str) -> int:
        for route in self.routes:
            if path.startswith(route.prefix):
                return route.max_bytes
        return self.default


DEFAULT_ROUTE_LIMITS = RouteLimits((
    RouteLimit("/whip", 64 * KiB, "WHIP SDP offers and trickle-ICE fragments"),
    RouteLimit("/whep/", 64 * KiB, "WHEP SDP offers"),
    RouteLimit("/chat/", 4 * KiB, "chat identity: one display name"),
    RouteLimit("/qoe/", 32 * KiB, "player QoE event batches"),
    # The API's and the studio's own limits are 64 KiB (api.errors, web.studio); a
    # larger figure here would only let more bytes in before they refuse.
    RouteLimit("/api/v1/", 64 * KiB, "REST API JSON"),
    RouteLimit("/studio/", 64 * KiB, "studio forms and forwarded API JSON"),
), default=1 * MiB)

DEFAULT_BODY_TIMEOUT = 30.0


def _declared_length(scope: Scope) -> tuple[int | None, bool]:
    """(Content-Length if given, whether the request has a body at all)."""
    length: int | None = None
    has_body = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            has_body = True
            # httptools has already refused malformed lengths; be strict anyway.
            length = int(value) if value.isdigit() else None
        elif name == b"transfer-encoding":
            has_body = True
    return length, has_body


class BodyLimit:
    """ASGI layer: 413 for a request body over its route's limit, before the route holds it;
    408 for one that does not arrive whole within `body_timeout` seconds."""

    def __init__(self, app: ASGIApp, limits: RouteLimits = DEFAULT_ROUTE_LIMITS,
                 body_timeout: float = DEFAULT_BODY_TIMEOUT) -> None:
        if body_timeout <= 0:
            raise ValueError("body_timeout must be > 0")
        self.app = app
        self.limits = limits
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, has_body = _declared_length(scope)
        if not has_body or length == 0:
            await self.app(scope, receive, send)
            return
        limit = self.limits.limit(scope["path"])
        if length is not None and length > limit:
            await _too_large(send, limit)
            return
        await _LimitedRequest(self.app, limit, self.body_timeout, receive, send).run(scope)


def _size(limit: int) -> str:
    return (f"{limit // MiB} MiB" if limit % MiB == 0 else
            f"{limit // KiB} KiB" if limit % KiB == 0 else f"{limit} bytes")


async def _too_large(send: Send, limit: int) -> None:
    await _refuse(send, 413, "payload_too_large",
                  f"request body is larger than {_size(limit)}, the limit of this endpoint")


async def _refuse(send: Send, status: int, kind: str, message: str) -> None:
    body = json.dumps({"error": {"type": kind, "messages": [message]}}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        # uvicorn closes the connection after this answer: the rest of the body is
        # never parsed.
        (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})


class _LimitedRequest:
    """One request's receive/send pair: body bytes counted against `limit`, the whole body
    due within `timeout` seconds."""

    __slots__ = ("_app", "_complete", "_cut", "_deadline", "_limit", "_receive", "_received",
                 "_refused", "_send", "_started", "_timeout")

    def __init__(self, app: ASGIApp, limit: int, timeout: float, receive: Receive,
                 send: Send) -> None:
        self._app = app
        self._limit = limit
        self._timeout = timeout
        self._deadline = asyncio.get_running_loop().time() + timeout
        self._receive = receive
        self._send = send
        self._received = 0
        self._complete = False  # the whole body is in: receive() is no longer timed
        self._cut = False  # over the limit or late: the route sees a disconnect from here on
        self._refused = False  # the 413/408 went out: the route's own answer is dropped
        self._started = False

    async def run(self, scope: Scope) -> None:
        try:
            await self._app(scope, self.receive, self.send)
        except Exception:
            # A route reading a body we cut off fails (ClientDisconnect); the client
            # already has its 413 or 408.
            if not self._refused:
                raise

    async def receive(self) -> Message:
        if self._cut:
            return {"type": "http.disconnect"}
        if self._complete:
            return await self._receive()  # a route waiting for the client to go away
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            await self._cut_off(408, "request_timeout",
                                f"the request body did not arrive within "
                                f"{self._timeout:g} s")
            return {"type": "http.disconnect"}
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit:
                await self._cut_off(413, "payload_too_large",
                                    f"request body is larger than {_size(self._limit)}, "
                                    f"the limit of this endpoint")
                return {"type": "http.disconnect"}
            if not message.get("more_body", False):
                self._complete = True
        return message

    async def _cut_off(self, status: int, kind: str, message: str) -> None:
        self._cut = True
        if not self._started:
            self._refused = True
            await _refuse(self._send, status, kind, message)

    async def send(self, message: Any) -> None:
        if self._refused:
            return
        if message["type"] == "http.response.start":
            self._started = True
        await self._send(message)
