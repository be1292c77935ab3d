"""The node's HTTP server setup: uvicorn with every limit a hostile client meets (HTTP server).

One place says how golive serves HTTP: uvicorn on uvloop with the httptools parser
(`HeadBoundedHttp`: request heads bounded in size and time), a `BodyLimit` layer in
front of the application (bodies bounded per route while they stream in, and in
time), refusals that close without a reset (`linger`), connections capped in all and per
client address (`ConnectionBudget`: `http_max_connections`, `..._per_address`), and a
WebSocket message limit that is the chat's own (the only WebSocket is `/chat/`), so
a frame far past it is refused with close code 1009 before it is read. Behind
`trusted_proxies`, every route (chat bans, throttles, QoE and WHEP limits, logs) sees
the forwarded client address and scheme, resolved once here. With a certificate
(`tls_cert`, `tls_key`) the same port speaks HTTPS, HTTP/1.1 only (no ALPN offer): TLS is
ended below uvicorn with handshakes bounded in time and number (`golive.httpserver.tls`),
and every limit above applies to the decrypted stream. What uvicorn itself logs per client
is filtered (`UvicornLogFilter`): no line per WebSocket, and its malformed-request warnings
at most once per 10 s.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import uvicorn
from starlette.types import ASGIApp

from golive.core import Cooldown, connection_ceiling, raise_open_file_limit
from golive.httpserver.bodies import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_ROUTE_LIMITS,
    BodyLimit,
    RouteLimits,
)
from golive.httpserver.budget import ConnectionBudget
from golive.httpserver.fast import FastRoutes
from golive.httpserver.headers import (
    HeadLimits,
    bounded_http_protocol,
    check_protocol,
    plain_client,
)
from golive.httpserver.tls import (
    HandshakeGate,
    TlsLimits,
    check_tls_layer,
    uvicorn_protocol_factory,
)
from golive.settings import Settings

__all__ = ["HttpLimits", "connection_budget", "server_config"]

# A chat frame a little past the chat's limit still reaches the chat, which answers
# with a readable error frame; one further past is closed with 1009 by the protocol.
WS_SLACK_BYTES = 4 * 1024


@dataclass(frozen=True)
class HttpLimits:
    """Everything that bounds what one HTTP or WebSocket client can make the node hold."""

    head: HeadLimits = field(default_factory=HeadLimits)
    bodies: RouteLimits = DEFAULT_ROUTE_LIMITS
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    keep_alive_timeout: int = 75  # seconds
    ws_max_message_bytes: int = 4096 + WS_SLACK_BYTES
    tls: TlsLimits = field(default_factory=TlsLimits)

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            head=HeadLimits(max_head_bytes=settings.http_max_head_bytes,
                            head_timeout=settings.http_head_timeout),
            body_timeout=settings.http_body_timeout,
            keep_alive_timeout=settings.http_keep_alive_timeout,
            ws_max_message_bytes=settings.chat_max_frame_bytes + WS_SLACK_BYTES,
            tls=TlsLimits(handshake_timeout=settings.tls_handshake_timeout,
                          max_handshakes=settings.tls_max_handshakes),
        )


class UvicornLogFilter(logging.Filter):
    """What uvicorn logs per client, made safe: its per-WebSocket lines (`127.0.0.1:5 -
    "WebSocket /chat/PID?token=..." [accepted]`, at info) are dropped, as golive turns off
    uvicorn's access log: one line per chat viewer, and the query string carries playback
    tokens. Its warnings about a malformed request ("Invalid HTTP request received.",
    "Unsupported upgrade request.") cost a client one bad request each, so each goes through
    at most once per `interval` seconds, with a count of the ones held back."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._gate = Cooldown(interval, max_keys=64)  # uvicorn has a handful of such warnings
        self._held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if not isinstance(message, str):
            return True
        if message.startswith('%s - "WebSocket %s"'):
            return False
        if record.levelno != logging.WARNING or record.args:
            return True  # (uvicorn's per-client warnings have no arguments)
        if not self._gate.allow(message, self._clock()):
            if message in self._held or len(self._held) < 64:
                self._held[message] = self._held.get(message, 0) + 1
            return False
        held = self._held.pop(message, 0)
        if held:
            record.msg = f"{message} ({held} more like this in the last {self.interval:.0f} s)"
        return True


def quiet_uvicorn_log() -> None:
    """Install `UvicornLogFilter` on uvicorn's logger, once."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, UvicornLogFilter) for f in logger.filters):
        logger.addFilter(UvicornLogFilter())


def connection_budget(settings: Settings) -> ConnectionBudget:
    """The HTTP port's connection budget: `http_max_connections` (lowered to fit the
    open-file limit, raised first where allowed) and `http_max_connections_per_address`,
    `trusted_proxies` exempt from the latter."""
    most = connection_ceiling(settings.http_max_connections, raise_open_file_limit(),
                              "http_max_connections")
    return ConnectionBudget(most, settings.http_max_connections_per_address,
                            trusted_networks(settings.trusted_proxies))


def node_websocket_protocol(ws: type[asyncio.Protocol],
                            budget: ConnectionBudget | None) -> type[asyncio.Protocol]:
    """`ws` with its client as the HTTP protocol has it (`plain_client`), giving its
    connection back to `budget` when it closes: an upgraded connection stays counted under
    the HTTP protocol's admission until the WebSocket ends."""
    made = ws.connection_made
    lost = ws.connection_lost

    def connection_made(self: asyncio.Protocol, transport: asyncio.BaseTransport) -> None:
        made(self, transport)
        plain_client(self)

    def connection_lost(self: asyncio.Protocol, exc: Exception | None) -> None:
        if budget is not None:
            budget.release(getattr(self, "transport", None))
        lost(self, exc)

    return type(ws.__name__, (ws,), {"connection_made": connection_made,
                                     "connection_lost": connection_lost})


def trusted_networks(value: str) -> list[str]:
    """The `trusted_proxies` setting as networks; a malformed entry is an error at start."""
    return [str(ipaddress.ip_network(part.strip(), strict=False))
            for part in value.split(",") if part.strip()]


def server_config(app: ASGIApp, limits: HttpLimits, *,
                  ws: type[asyncio.Protocol], trusted_proxies: str = "",
                  tls: HandshakeGate | None = None,
                  fast: FastRoutes | None = None,
                  budget: ConnectionBudget | None = None) -> uvicorn.Config:
    """uvicorn's configuration for the node's root ASGI app; call it on the serving loop.

    `ws` is the WebSocket protocol class (the chat's, which exposes its transport).
    `trusted_proxies` (comma-separated addresses or networks): when the peer is one of
    them, X-Forwarded-For (its rightmost hop not itself trusted) is the client and
    X-Forwarded-Proto the scheme; from anyone else those headers are ignored.
    With `tls` (a `HandshakeGate` over the server context, `Settings.check_tls`, and
    `limits.tls`) the port speaks HTTPS only, through that gate.
    `fast` answers the GETs below its prefix without an ASGI cycle (`golive.httpserver.fast`;
    the same answers `app` gives), except behind trusted proxies: there every request goes
    through uvicorn's forwarded-address handling (an edge's requests are few).
    `budget` counts and caps the port's connections, WebSockets included
    (`golive.httpserver.budget`).
    """
    quiet_uvicorn_log()
    trusted = trusted_networks(trusted_proxies)
    protocol = bounded_http_protocol(limits.head, None if trusted else fast, budget)
    ws = node_websocket_protocol(ws, budget)
    gate = tls
    config = uvicorn.Config(
        BodyLimit(app, limits.bodies, limits.body_timeout),
        # uvicorn calls this per accepted connection as it would the class; with TLS the
        # connection is the class's protocol inside a handshake-bounded TLS layer.
        http=protocol if gate is None else cast(type[asyncio.Protocol],
                                                uvicorn_protocol_factory(gate, protocol)),
        ws=ws,
        ws_max_size=limits.ws_max_message_bytes,
        log_config=None,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        access_log=False,
        lifespan="off",
        timeout_keep_alive=limits.keep_alive_timeout,  # (uvicorn's own is 5 s: see Settings)
        timeout_graceful_shutdown=3,
    )
    loop = asyncio.get_running_loop()
    check_protocol(protocol, config, loop)
    if gate is not None:
        check_tls_layer(loop)
    return config
