"""Encode-once chat fan-out: uvicorn's WebSocket protocol with its transport exposed (chat).

A server-to-client WebSocket text frame is not masked, so the bytes of one batch are
the same for every viewer: a room builds them once (`text_frame`) and writes them
straight to each viewer's transport, instead of going through each connection's
ASGI `send` (text to bytes to frame per viewer, and a writer task woken per viewer).

`chat_websocket_protocol()` gives the node's uvicorn its WebSocket protocol:
uvicorn's sans-IO one (a uvicorn internal, checked against the tested version
before use) plus two things:
it never negotiates permessage-deflate on `/chat/` (a compressed connection would
need its own frames; chat batches are small), and for a `/chat/` connection without
extensions it puts a `RawChannel` in the ASGI scope under
`scope["extensions"]["golive.transport"]`. Without it (another server, a test
client, an extension negotiated, an untested uvicorn) the chat uses the ordinary
ASGI path.

Such a connection also gets a fixed kernel send buffer (`CHAT_SNDBUF`) instead of
one that autotunes up to megabytes: chat needs little bandwidth, a viewer that
stops reading then shows up as unsent bytes within a few hundred kilobytes (and is
dropped), and a stalled viewer cannot pin megabytes of kernel memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import struct
from typing import TYPE_CHECKING, Any, cast

from golive.httpserver import Lingering, linger

if TYPE_CHECKING:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.http11 import Request

log = logging.getLogger(__name__)

TESTED_WITH = "uvicorn 0.55 with websockets 17"
# Kept in step with the pins in pyproject.toml.

SCOPE_KEY = "golive.transport"
CHAT_PREFIX = "/chat/"
CHAT_SNDBUF = 64 * 1024  # the kernel doubles it

_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented WebSocket text frame (FIN + opcode 1) around `payload`."""
    n = len(payload)
    if n < 126:
        return _SHORT.pack(0x81, n) + payload
    if n < 1 << 16:
        return _MEDIUM.pack(0x81, 126, n) + payload
    return _LONG.pack(0x81, 127, n) + payload


class RawChannel:
    """Direct access to one chat WebSocket's transport, for frames built once per room."""

    __slots__ = ("protocol", "transport")

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self.protocol = protocol
        self.transport: asyncio.Transport = protocol.transport

    @property
    def closing(self) -> bool:
        """True once nothing more may be written: the close frame went out or the socket is going."""
        p = self.protocol
        return p.close_sent or p.disconnected or self.transport.is_closing()

    def buffered(self) -> int:
        """Bytes written but not yet accepted by the kernel."""
        return self.transport.get_write_buffer_size()

    def write(self, frame: bytes) -> bool:
        """Write a complete frame; False (and nothing written) when the connection is closing."""
        if self.closing:
            return False
        self.transport.write(frame)
        return True

    def abort(self) -> None:
        self.transport.abort()


def raw_channel(scope: Any) -> RawChannel | None:
    """The raw channel of a WebSocket's ASGI scope, if the server exposed one."""
    extensions = scope.get("extensions") or {}
    channel = extensions.get(SCOPE_KEY)
    return channel if isinstance(channel, RawChannel) else None


class IncompatibleUvicorn(RuntimeError):
    """uvicorn's sans-IO WebSocket protocol is missing or differs from the tested one."""


def check_uvicorn(protocol_class: Any) -> None:
    """Raise `IncompatibleUvicorn` unless `protocol_class` has what the chat subclass uses."""
    init = getattr(getattr(protocol_class, "__init__", None), "__code__", None)
    connect = getattr(getattr(protocol_class, "handle_connect", None), "__code__", None)
    failed = getattr(getattr(protocol_class, "handle_parser_exception", None), "__code__", None)
    state = {"conn", "close_sent", "disconnected", "transport", "queue", "loop",
             "handshake_complete", "close_timer"}
    if init is None or connect is None or failed is None or not state <= set(init.co_names) \
            or "scope" not in connect.co_names or "data_to_send" not in failed.co_names:
        raise IncompatibleUvicorn(
            f"{getattr(protocol_class, '__qualname__', protocol_class)!s} lacks handle_connect, "
            f"handle_parser_exception, scope or {', '.join(sorted(state))}; golive's chat "
            f"fast path was tested with {TESTED_WITH}"
        )


def chat_websocket_protocol() -> type[asyncio.Protocol]:
    """uvicorn's `ws` protocol class for the node: the chat fast path's.

    On a uvicorn without the tested sans-IO protocol (it appeared in 0.35) this logs
    an error and returns uvicorn's own choice: the node runs, and chat goes through
    each connection's ASGI `send` (correct, but far more CPU per viewer in a big room).
    """
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import (
            WebSocketsSansIOProtocol,
        )

        check_uvicorn(WebSocketsSansIOProtocol)
    except (ImportError, IncompatibleUvicorn) as exc:
        import uvicorn

        log.error(
            "chat fast path off: uvicorn %s does not match what it was tested with (%s): %s; "
            "install the versions in requirements.lock (`make run` does)",
            getattr(uvicorn, "__version__", "unknown"), TESTED_WITH, exc,
        )
        return _uvicorn_default_protocol()
    return _chat_protocol(WebSocketsSansIOProtocol)


def _uvicorn_default_protocol() -> type[asyncio.Protocol]:
    """The first WebSocket protocol this uvicorn can load, in uvicorn's own order."""
    from uvicorn.config import WS_PROTOCOLS
    from uvicorn.importer import ImportFromStringError, import_from_string

    for name in ("auto", "websockets", "wsproto"):
        try:
            protocol = import_from_string(WS_PROTOCOLS.get(name))
        except (ImportError, ImportFromStringError):
            continue
        if protocol is not None:
            return cast(type[asyncio.Protocol], protocol)
    raise RuntimeError("uvicorn finds no WebSocket library; install the versions in "
                       "requirements.lock (`make run` does)")


@functools.cache
def _chat_protocol(base: Any) -> type[asyncio.Protocol]:
    class ChatWebSocketProtocol(base):  # type: ignore[misc]
        """uvicorn's sans-IO WebSocket protocol, exposing the transport to `/chat/` handlers,
        and closing without a reset when it refuses a frame."""

        _lingering: Lingering | None = None
        _refused = False

        def data_received(self, data: bytes) -> None:
            if self._refused:
                if self._lingering is not None:
                    self._lingering.heard()
                return  # the rest of a refused frame, or a flood past our close: dropped
            if self.close_sent and self.handshake_complete:
                # Past our close frame (a policy close, a slow viewer, shutdown) only the
                # peer's close reply would matter, and uvicorn parses everything up to it
                # frame by frame: a client flooding frames (or ignoring the close) kept
                # the node parsing. So: end our side after the close frame, drop the rest.
                self._refused = True
                self._linger()
                return
            super().data_received(data)

        def _linger(self) -> None:
            """End our side and close once the client is done (golive.httpserver.linger).
            uvicorn closes the transport at once when the handler returns unless a close
            timer is pending: the lingering close stands in as that timer (connection_lost
            and shutdown cancel it), or the handler's end would reset a client still
            writing the refused frame before it reads our close frame."""
            self._lingering = linger(self.transport, self.loop)
            if self._lingering is not None:
                self.close_timer = self._lingering

        def handle_parser_exception(self) -> None:
            # A frame past the limit (1009) or malformed (1002): uvicorn writes the close
            # frame and closes at once, and with the frame's bytes still arriving that
            # close is a reset, which can reach the client before it reads the close
            # frame. Here: the close frame, then a lingering close (golive.httpserver).
            close = self.conn.close_sent
            assert close is not None
            self.queue.put_nowait({"type": "websocket.disconnect", "code": close.code,
                                   "reason": close.reason})
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self._refused = True
            self._linger()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._lingering is not None:
                self._lingering.cancel()
            super().connection_lost(exc)

        def handle_connect(self, event: Request) -> None:
            chat = event.path.startswith(CHAT_PREFIX)
            if chat:
                # Every viewer gets the same frame bytes: no per-connection compression.
                self.conn.available_extensions = []
            super().handle_connect(event)
            scope = getattr(self, "scope", None)
            # The ASGI task is created but has not run yet: the scope can still be added to.
            if chat and scope is not None and not self.conn.extensions:
                scope["extensions"][SCOPE_KEY] = RawChannel(self)
                sock = self.transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHAT_SNDBUF)

    return ChatWebSocketProtocol
