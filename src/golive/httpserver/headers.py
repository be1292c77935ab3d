"""Request heads bounded in size and time: uvicorn's httptools protocol, thinly extended (HTTP server).

uvicorn's httptools path has no limit of its own on a request's line and headers:
llhttp hands over header values piece by piece and the protocol joins them, so one
request could make the node hold hundreds of megabytes, and a client that never
finishes its headers kept its connection for ever. `HeadBoundedHttp` adds the two
limits nginx calls `large_client_header_buffers` and `client_header_timeout`:

- the bytes of a request head, counted as they arrive, past `max_head_bytes`: the
  client gets 431 Request Header Fields Too Large and the connection is closed;
- a connection that does not finish a request head within `head_timeout` seconds of
  opening, or of the head's first read, gets 408 (if it sent anything) and is closed.
  The clock does not run out while a response is being produced, so long downloads
  and held LL-HLS playlist reloads are untouched; between requests uvicorn's
  keep-alive timeout closes idle connections.

Counting happens per socket read (at most one read of 256 KiB past the limit is
parsed), so the limit holds before more than that is held. This module is the only
place golive depends on uvicorn's protocol internals; `check_protocol` verifies
them when the server is set up and fails loudly if a uvicorn upgrade moved them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

__all__ = ["HeadBoundedHttp", "HeadLimits", "bounded_http_protocol", "check_protocol"]

# What this module relies on in uvicorn's HttpToolsProtocol (tested with uvicorn 0.55).
_METHODS = ("connection_made", "connection_lost", "data_received", "on_headers_complete",
            "on_message_complete", "handle_websocket_upgrade")
_ATTRIBUTES = ("transport", "loop", "cycle", "parser")


@dataclass(frozen=True)
class HeadLimits:
    """How large a request line plus headers may be, and how long a client has to send them."""

    max_head_bytes: int = 64 * 1024
    head_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_head_bytes < 1024 or self.head_timeout <= 0:
            raise ValueError("head limits need max_head_bytes >= 1024 and head_timeout > 0")


LINGER_SECONDS = 2.0  # how long a refused client may keep sending before a hard close

# Called directly rather than through super(): these run once or more per request.
_data_received = HttpToolsProtocol.data_received
_on_headers_complete = HttpToolsProtocol.on_headers_complete
_on_message_complete = HttpToolsProtocol.on_message_complete


def _refusal(status: bytes, kind: str, message: str) -> bytes:
    body = json.dumps({"error": {"type": kind, "messages": [message]}}).encode()
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"cache-control: no-store\r\nconnection: close\r\n\r\n" + body)


class HeadBoundedHttp(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools) with request heads bounded in size and time."""

    limits: ClassVar[HeadLimits] = HeadLimits()

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # True from the end of one request (or the connection's start) until the next
        # request's head is complete: the bytes read meanwhile are head bytes.
        self._in_head = True
        self._head_bytes = 0
        self._head_deadline: asyncio.TimerHandle | None = None
        self._lingering: asyncio.TimerHandle | None = None  # set once refused

    # Connection -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        if self._lingering is not None:
            self._lingering.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            return  # refused: dropped unparsed
        if not self._in_head:
            _data_received(self, data)
            return
        self._head_bytes += len(data)
        _data_received(self, data)
        # Checked after parsing, so that a read which completes a head and carries the
        # start of a body is not refused; the parser holds at most one read past the limit.
        if self._in_head:
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(_refusal(
                    b"431 Request Header Fields Too Large", "request_header_fields_too_large",
                    f"the request line and headers are larger than "
                    f"{self.limits.max_head_bytes // 1024} KiB"))
            else:
                # Only a head split over reads starts the clock: most requests arrive in
                # one read and cost no timer. Before the first byte, uvicorn's keep-alive
                # timeout (or the one armed on connecting) applies.
                self._arm_head_deadline()

    # Parser callbacks -----------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_deadline is not None:
            self._disarm_head_deadline()
        _on_headers_complete(self)

    def on_message_complete(self) -> None:
        _on_message_complete(self)
        self._in_head = True
        self._head_bytes = 0

    def handle_websocket_upgrade(self) -> None:
        # The socket now belongs to a WebSocket protocol: this one reads nothing more,
        # so no head is pending. (llhttp completes the upgrade request's message before
        # reporting the upgrade, which set `_in_head` again: left so, a head deadline
        # was armed here and closed every WebSocket `head_timeout` seconds after it
        # opened, keeping this protocol alive until then.)
        self._in_head = False
        self._disarm_head_deadline()
        super().handle_websocket_upgrade()

    # Head deadline --------------------------------------------------------------------

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.limits.head_timeout, self._head_late)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_late(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head started while a response is being produced (a held
            # playlist reload, a download): its time starts when that response is done.
            self._arm_head_deadline()
            return
        if self._head_bytes == 0:
            self.transport.close()  # an idle connection: nothing to answer
            return
        self._refuse(_refusal(b"408 Request Timeout", "request_timeout",
                              f"the request headers did not arrive within "
                              f"{self.limits.head_timeout:g} s"))

    def _refuse(self, response: bytes) -> None:
        self._disarm_head_deadline()
        if self.transport.is_closing():
            return
        # Mid-response (a pipelined request) an answer would corrupt the one being sent.
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()
            return
        self.transport.write(response)
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        # A lingering close, as nginx does: closing with the client's bytes still unread
        # would send a reset, which can destroy the answer before the client reads it.
        # So: end our side, drop whatever still comes, close on the client's EOF or soon.
        self.transport.write_eof()
        self._lingering = self.loop.call_later(LINGER_SECONDS, self.transport.close)


def bounded_http_protocol(limits: HeadLimits) -> type[HeadBoundedHttp]:
    """The protocol class uvicorn instantiates per connection, with these limits."""
    return type("GoliveHttpProtocol", (HeadBoundedHttp,), {"limits": limits})


def check_protocol(protocol: type[HeadBoundedHttp], config: Config,
                   loop: asyncio.AbstractEventLoop) -> None:
    """Fail loudly when the installed uvicorn no longer has what `HeadBoundedHttp` extends."""
    missing = [name for name in _METHODS if not callable(getattr(HttpToolsProtocol, name, None))]
    if not missing:
        probe = protocol(config, ServerState(), {}, _loop=loop)
        missing = [name for name in _ATTRIBUTES if not hasattr(probe, name)]
    if missing:
        raise RuntimeError(
            "golive's HTTP head limits extend uvicorn's HttpToolsProtocol (tested with uvicorn "
            f"0.55), and this uvicorn lacks {', '.join(missing)}: install a tested uvicorn")
