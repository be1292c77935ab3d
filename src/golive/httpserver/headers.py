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
  and held LL-HLS playlist reloads are untouched; between requests the keep-alive
  timeout closes idle connections.

A head that llhttp parses but RFC 9112 refuses gets 400 (`_head_problem`): an HTTP/1.1
request with no Host or with two, an HTTP/1.0 one with a Transfer-Encoding.

uvicorn's keep-alive timeout is kept on one timer per connection, which looks at how
long the connection has been idle when it fires, instead of a timer started after
every answer and stopped at the next request (an LL-HLS player makes ten requests a
second). The held answers of the fast path (golive.httpserver.fast) expire on timers
shared by all holds ending in the same 50 ms (`_Deadlines`).

Each of these refusals, and any answer that closes the connection while a request's body is
still arriving (`BodyLimit`'s 413 and 408), ends with a lingering close
(`golive.httpserver.linger`) so the client reads the answer instead of a reset.
Once a request is upgraded to a WebSocket this protocol is out of the way: no head
deadline is left armed on the socket.

A player asks for its next playlist or part with the same header lines every time, and
the parser (llhttp, through a Python call per header) was a third of the fast path's
cost. When a read holds exactly one head, at a request's start, whose header lines (at
most `_REPEAT_TAIL_MAX` bytes) are byte for byte those of the connection's last head the
parser let onto the fast path, and whose request line is a strict GET or HEAD below the
fast prefix in HTTP/1.1 (`_REPEAT_LINE`), the request is answered with that head's
headers without the parser (`_answer_repeat`): the same bytes in the same parser state
parse the same way, and only the request line is new. Anything else, or a miss, is parsed.

Counting happens per socket read (at most one read of 256 KiB past the limit is
parsed), so the limit holds before more than that is held. This module is the only
place golive depends on uvicorn's protocol internals; `check_protocol` verifies
them when the server is set up and fails loudly if a uvicorn upgrade moved them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import weakref
from asyncio.selector_events import _SelectorSocketTransport  # type: ignore[attr-defined]
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState
from uvloop.loop import TCPTransport  # type: ignore[attr-defined]

from golive.core import address_of
from golive.httpserver.budget import ConnectionBudget
from golive.httpserver.fast import (
    HEADERS_BY_NAME,
    BadHeader,
    FastAnswer,
    FastCycle,
    FastHold,
    FastRoutes,
    SharedBody,
    head_of,
)
from golive.httpserver.linger import Lingering, linger

__all__ = ["HeadBoundedHttp", "HeadLimits", "bounded_http_protocol", "check_protocol"]

# What this module relies on in uvicorn's HttpToolsProtocol (tested with uvicorn 0.55).
_METHODS = ("connection_made", "connection_lost", "data_received", "on_headers_complete",
            "on_message_complete", "handle_websocket_upgrade", "send_400_response")
_ATTRIBUTES = ("transport", "loop", "cycle", "parser", "headers", "flow", "pipeline",
               "server_state", "tasks", "timeout_keep_alive", "timeout_keep_alive_task")
# ... and for the fast path (golive.httpserver.fast), which also reads the `scope` and
# `url` that on_message_begin sets per request, and for the keep-alive timeout, which
# `on_response_complete` arms as uvicorn's does:
_FAST_METHODS = ("on_message_begin", "on_response_complete", "_start_asgi_task",
                 "timeout_keep_alive_handler", "_unset_keepalive_if_required")

log = logging.getLogger(__name__)

# The transports whose socket is the connection itself (uvloop's, asyncio's own): only
# these are sent into directly (`HeadBoundedHttp._send_shared`).
_PLAIN_TCP: frozenset[type] = frozenset({TCPTransport, _SelectorSocketTransport})

# The request line `_answer_repeat` accepts: GET or HEAD, a target of RFC 3986 characters
# without percent-encoding or fragment (the parser takes those), HTTP/1.1.
_REPEAT_LINE = re.compile(rb"(GET|HEAD) (/[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*) HTTP/1\.1\r\n")
# Header lines past this are not kept for a repeat: the parser reads them every time.
_REPEAT_TAIL_MAX = 4096

# The cycle of a connection whose last request was answered on the fast path.
_ANSWERED = FastCycle(complete=True)


@dataclass(frozen=True)
class HeadLimits:
    """How large a request line plus headers may be, and how long a client has to send them."""

    max_head_bytes: int = 64 * 1024
    head_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_head_bytes < 1024 or self.head_timeout <= 0:
            raise ValueError("head limits need max_head_bytes >= 1024 and head_timeout > 0")


# Called directly rather than through super(): these run once or more per request.
_data_received = HttpToolsProtocol.data_received
_on_message_begin = HttpToolsProtocol.on_message_begin
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
    fast: ClassVar[FastRoutes | None] = None
    budget: ClassVar[ConnectionBudget | None] = None  # connections counted and capped
    _idle_table: ClassVar[OrderedDict[HeadBoundedHttp, None] | None] = None  # the budget's

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # True from the end of one request (or the connection's start) until the next
        # request's head is complete: the bytes read meanwhile are head bytes.
        self._in_head = True
        self._head_bytes = 0
        self._head_begun = False  # the parser has begun the next request's head
        # uvicorn's keep-alive timeout on one timer per connection, moved on only when it
        # fires (`on_response_complete`): since when the connection is idle, None while busy.
        self._idle_since: float | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._head_deadline: asyncio.TimerHandle | None = None
        self._closing = False  # answered and closing: what the client still sends is dropped
        self._lingering: Lingering | None = None  # the hard close, while closing
        self._fast_task: asyncio.Task[None] | None = None  # a fast answer being produced
        self._fast_hold: _Held | None = None  # or waited for
        self._deadlines: _Deadlines | None = None  # the loop's, once a request is held
        self._socket_fd = -1  # see connection_made
        # The header lines (and blank line) of the last head the fast path took whole from
        # one read, and its headers: the next request may repeat them (`_answer_repeat`).
        self._repeat_tail: bytes | None = None
        self._repeat_headers: tuple[tuple[bytes, bytes], ...] = ()
        self._repeat_by_name: dict[bytes, bytes] | None = None  # made at the first repeat
        self._tail_ok = False  # the parser's request just now: its headers allow the fast path
        self._bad_head: bytes | None = None  # the answer to a head refused while parsing

    # Connection -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        plain_client(self)
        budget = self.budget
        if budget is not None:
            client = self.client
            if not budget.admit(transport, client[0] if client else None):
                self._closing = True  # anything it sends is dropped unread
                transport.close()
                return
            # Open without a first byte yet: idle, as nginx counts it, until it sends.
            self._idle_since = self.loop.time()
            budget.idle_table[self] = None
        # A plain TCP connection's socket, which a shared answer is sent into by sendfile
        # while nothing is queued for it; never a TLS layer's (its socket carries records).
        if type(transport) in _PLAIN_TCP:
            self._socket_fd = transport.get_extra_info("socket").fileno()
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.budget is not None:
            self.budget.release(self.transport, self)
        self._disarm_head_deadline()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._lingering is not None:
            self._lingering.cancel()
        if self._fast_task is not None:
            # A fast answer whose client went: its wait ends now.
            self._fast_task.cancel()
            self._fast_task = None
        if self._fast_hold is not None:
            self._fast_hold.release()
            self._fast_hold = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._idle_since is not None:
            self._idle_since = None
            idle = self._idle_table
            if idle is not None:
                idle.pop(self, None)  # busy: not to be closed for room (the budget's `busy`)
        if self._closing:
            if self._lingering is not None:
                self._lingering.heard()
            return  # refused: dropped unparsed
        if not self._in_head:
            _data_received(self, data)
            return
        fresh = not self._head_bytes and not self._head_begun  # at a request's start
        if fresh:
            tail = self._repeat_tail
            if (tail is not None and len(data) <= self.limits.max_head_bytes
                    and data.endswith(tail) and self._answer_repeat(data, tail)):
                return
            self._tail_ok = False
        self._head_bytes += len(data)
        _data_received(self, data)
        if fresh and self._tail_ok:
            self._remember_tail(data)
        # Checked after parsing, so that a read which completes a head and carries the
        # start of a body is not refused; the parser holds at most one read past the limit.
        if self._in_head:
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(_refusal(
                    b"431 Request Header Fields Too Large", "request_header_fields_too_large",
                    f"the request line and headers are larger than "
                    f"{self.limits.max_head_bytes // 1024} KiB"))
            elif self._head_begun or self._head_bytes:
                # Only a head split over reads starts the clock: most requests arrive in
                # one read and cost no timer. Before the next head's first byte, uvicorn's
                # keep-alive timeout (or the one armed on connecting) applies.
                self._arm_head_deadline()

    # Parser callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._head_begun = True
        _on_message_begin(self)

    def on_headers_complete(self) -> None:
        problem = _head_problem(self.headers, self.parser.get_http_version())
        if problem is not None:
            # Raised, the parser stops here; uvicorn's 400 is then `send_400_response`'s.
            self._bad_head = _refusal(b"400 Bad Request", "bad_request", problem)
            raise _BadHead
        self._in_head = False
        self._head_begun = False
        if self._head_deadline is not None:
            self._disarm_head_deadline()
        cycle = self.cycle
        fast = self.fast
        if (fast is not None and self.url.startswith(fast.prefix)
                and (cycle is None or cycle.response_complete) and not self.pipeline
                and not self.flow.write_paused and self._answer_fast(fast)):
            return
        _on_headers_complete(self)
        if self.cycle is not cycle and _has_body(self.headers):
            # A new request whose body is still to come: if it is refused (413, 408),
            # the close that follows the answer must not reset it away.
            self.cycle.transport = _BodyRequestTransport(self)  # type: ignore[assignment]

    # Fast path (golive.httpserver.fast) -----------------------------------------------

    def _answer_fast(self, fast: FastRoutes) -> bool:
        """Answer this request on the fast path, or say False (uvicorn's path takes it)."""
        parser = self.parser
        method = parser.get_method()
        if method != b"GET" and method != b"HEAD":
            return False
        if (parser.should_upgrade() or not parser.should_keep_alive()
                or parser.get_http_version() != "1.1" or _has_body(self.headers)):
            return False
        # What the headers decide allows the fast path: the same headers again may skip
        # the parser (`_answer_repeat`).
        self._tail_ok = True
        return self._answer_fast_request(fast, method, self.url)

    def _answer_fast_request(self, fast: FastRoutes, method: bytes, url: bytes) -> bool:
        """`_answer_fast` once the headers allow it; False: uvicorn's path takes it."""
        path, _, query = url.partition(b"?")
        # (bytes.find, not `in`: on CPython 3.11 `in` first tries the needle as an integer,
        # building and dropping a TypeError with a formatted message, twice the cost.)
        if path.find(b"%") >= 0 or url.find(b"#") >= 0 or not path.isascii():
            return False  # uvicorn's path decodes these
        scope = self.scope
        scope["method"] = "GET" if method == b"GET" else "HEAD"
        scope["path"] = path.decode("ascii")
        scope["raw_path"] = path
        scope["query_string"] = query
        started = time.perf_counter()
        try:
            answer = fast.answer_now(scope)
        except Exception:
            log.exception("fast answer failed path=%s", scope["path"])
            return False  # uvicorn's path answers (and logs) it
        if answer is None:
            self._answer_in_task(fast, scope, FastCycle(complete=False), started)
        elif isinstance(answer, FastHold):
            cycle = FastCycle(complete=False)
            self.cycle = cycle  # type: ignore[assignment]  # pipelined requests queue behind it
            self._fast_hold = _Held(self, fast, scope, cycle, answer, started)
        else:
            self.cycle = _ANSWERED  # type: ignore[assignment]
            self._write_fast(fast, scope, answer, started)
        return True

    def _answer_repeat(self, data: bytes, tail: bytes) -> bool:
        """Answer a head that is a new request line followed by exactly the header lines
        (and the blank line) of this connection's last request the parser let onto the
        fast path, without the parser: those bytes were parsed and checked then, in the
        same state (a request's start), so only the request line is new, and it must be
        the strict `_REPEAT_LINE`. False: the parser takes it (and sets again what this
        set of the request's state)."""
        fast = self.fast
        line = _REPEAT_LINE.fullmatch(data, 0, len(data) - len(tail))
        if fast is None or line is None:
            return False
        url = line[2]
        cycle = self.cycle
        if (not url.startswith(fast.prefix) or not (cycle is None or cycle.response_complete)
                or self.pipeline or self.flow.write_paused):
            return False
        # What uvicorn's data_received and on_message_begin do at a request's start.
        if self.timeout_keep_alive_task is not None:  # (never armed: `on_response_complete`)
            self._unset_keepalive_if_required()
        self.url = url
        self.expect_100_continue = False
        # The kept headers themselves, shared: a tuple (an iterable of pairs, as ASGI asks)
        # that no one can change. (uvicorn's own `self.headers` is only the parser's.)
        headers = self._repeat_headers
        by_name = self._repeat_by_name
        if by_name is None:
            by_name = self._repeat_by_name = dict(headers)
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "headers": headers,
            "state": self.app_state.copy(),
            HEADERS_BY_NAME: by_name,
        }
        self.scope = scope  # type: ignore[assignment]
        return self._answer_fast_request(fast, line[1], url)

    def _remember_tail(self, data: bytes) -> None:
        """Keep the header lines of a head the fast path took, when the read held exactly
        that head: the next request on the connection may repeat them (`_answer_repeat`)."""
        start = data.find(b"\r\n") + 2
        if len(data) - start <= _REPEAT_TAIL_MAX and data.find(b"\r\n\r\n") == len(data) - 4:
            self._repeat_tail = data[start:]
            self._repeat_headers = tuple(self.headers)
            self._repeat_by_name = None

    def _answer_in_task(self, fast: FastRoutes, scope: Any, cycle: FastCycle,
                        started: float, answer: FastAnswer | None = None,
                        hold: FastHold | None = None) -> None:
        """Produce the answer (unless given; where `hold` left off, if one) and write it
        from a task."""
        self.cycle = cycle  # type: ignore[assignment]  # pipelined requests queue behind it
        task = self.loop.create_task(
            self._answer_later(fast, scope, cycle, started, answer, hold))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
        self._fast_task = task

    def _held_done(self, held: _Held, answer: FastAnswer | None) -> None:
        """A `FastHold` ended (its event, or its time): write, or hand over to a task."""
        self._fast_hold = None
        if held.cycle.disconnected or self.transport.is_closing():
            return
        if answer is None or self.flow.write_paused:
            # Another wait, or a slow reader whose buffer must drain first (as uvicorn's
            # send waits): a task finishes it.
            self._answer_in_task(held.fast, held.scope, held.cycle, held.started, answer,
                                 held.hold if answer is None else None)
        else:
            self._finish_fast(held.fast, held.scope, held.cycle, answer, held.started)

    async def _answer_later(self, fast: FastRoutes, scope: Any, cycle: FastCycle,
                            started: float, answer: FastAnswer | None,
                            hold: FastHold | None = None) -> None:
        if answer is None:
            try:
                answer = await (fast.answer(scope) if hold is None
                                else hold.carry_on(fast, scope))
            except Exception:
                log.exception("fast answer failed path=%s", scope["path"])
                self._fast_task = None
                self._fail_fast()
                return
        if cycle.disconnected or self.transport.is_closing():
            return
        if self.flow.write_paused:
            await self.flow.drain()  # as uvicorn's send waits for a slow reader
            if cycle.disconnected or self.transport.is_closing():
                return
        self._fast_task = None
        self._finish_fast(fast, scope, cycle, answer, started)

    def _finish_fast(self, fast: FastRoutes, scope: Any, cycle: FastCycle,
                     answer: FastAnswer, started: float) -> None:
        cycle.response_complete = True
        self._write_fast(fast, scope, answer, started)
        if not cycle.keep_alive:  # the server is shutting down
            self.transport.close()

    def _fail_fast(self) -> None:
        """A 500 and a close, as uvicorn answers an application that failed."""
        if not self.transport.is_closing():
            self.transport.write(_INTERNAL_ERROR)
            self.transport.close()

    def _write_fast(self, fast: FastRoutes, scope: Any, answer: FastAnswer,
                    started: float) -> None:
        try:
            head = head_of(answer, self.server_state.default_headers)
        except BadHeader:
            log.exception("fast answer has a bad header path=%s", scope["path"])
            self._fail_fast()
            return
        transport = self.transport
        if scope["method"] == "HEAD" or not answer.body:
            transport.write(head)
        elif (answer.fast_shared is None or self._socket_fd < 0
              or transport.get_write_buffer_size() or transport.is_closing()):
            transport.writelines((head, answer.body))
        else:
            self._send_shared(answer.fast_shared, head, answer.body)
        fast.answered(scope, answer, started)
        # uvicorn's own end of a response: count it, read on, start a pipelined request
        # or arm the keep-alive timeout.
        self.on_response_complete()

    def _send_shared(self, shared: SharedBody, head: bytes, body: bytes) -> None:
        """`head` and `body` from `shared`'s file straight into the socket, which nothing
        is queued for; what the socket does not take now is written as any answer is."""
        fd, size = shared.file(head, body)
        sent = 0
        if fd >= 0:
            try:
                sent = os.sendfile(self._socket_fd, fd, 0, size)
            except OSError:
                # Full (EAGAIN), or the connection failed: the transport's own write then
                # queues the answer, or finds the failure and closes as it would.
                sent = 0
        if sent < len(head):
            self.transport.writelines((head[sent:] if sent else head, body))
        elif sent < len(head) + len(body):
            self.transport.write(memoryview(body)[sent - len(head):])

    def on_response_complete(self) -> None:
        # uvicorn's, but for the keep-alive timeout: uvicorn starts a timer after every
        # answer and stops it at the next request, ten of each a second for a low-latency
        # player. Here the connection's one timer, when it fires, looks at how long it
        # has been idle and waits on for the rest.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()  # (uvicorn's own, should one be armed)
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        idle = self._idle_table
        if idle is not None:
            idle[self] = None  # the newest idle (the budget's `idle`; it was busy till now)
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_later(self.timeout_keep_alive, self._idle_check)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request its parser refused; a refused head's own."""
        bad = self._bad_head
        if bad is None:
            super().send_400_response(msg)
            return
        self._bad_head = None
        self._refuse(bad)

    def close_idle(self) -> None:
        """The connection budget needs room and this connection is the one idle the
        longest: it is closed now (its client reconnects when it has a request)."""
        if self.budget is not None:
            self.budget.release(self.transport, self)
        self._closing = True
        self.transport.close()

    def _idle_check(self) -> None:
        self._idle_timer = None
        since = self._idle_since
        if since is None or self.transport.is_closing():
            return  # busy: the end of its answer starts the clock again
        left = since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self._idle_timer = self.loop.call_later(left, self._idle_check)
        else:
            self.timeout_keep_alive_handler()

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
        self._linger()

    def _linger(self) -> None:
        """Close after the answer without a reset; what the client still sends is dropped."""
        if not self._closing:
            self._closing = True
            self._lingering = linger(self.transport, self.loop)

    def _close_after_answer(self) -> None:
        """The answer to a request with a body asked for the connection to close."""
        if self._in_head:
            self.transport.close()  # the body was read to its end: nothing left unread
        else:
            self._linger()  # refused mid-body (413, 408): the client is still sending


class _BodyRequestTransport:
    """The transport uvicorn's request cycle uses for a request with a body.

    The cycle closes the connection as soon as an answer with `connection: close` is
    written; with the body still arriving that close would be a reset. Here it is a
    lingering close instead. Only requests with a body get one (few: API, WHIP/WHEP,
    QoE); the cycle uses nothing of its transport but these three methods.
    """

    __slots__ = ("_protocol", "get_extra_info", "is_closing", "write")

    def __init__(self, protocol: HeadBoundedHttp) -> None:
        transport = protocol.transport
        self._protocol = protocol
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info

    def close(self) -> None:
        self._protocol._close_after_answer()


class _Held:
    """A fast answer waiting for its `FastHold`'s event: a callback it is given, and a place
    among the loop's shared hold deadlines (`_Deadlines`)."""

    __slots__ = ("cycle", "deadlines", "fast", "hold", "protocol", "scope", "started", "tick")

    def __init__(self, protocol: HeadBoundedHttp, fast: FastRoutes, scope: Any,
                 cycle: FastCycle, hold: FastHold, started: float) -> None:
        self.protocol = protocol
        self.fast = fast
        self.scope = scope
        self.cycle = cycle
        self.hold = hold
        self.started = started
        loop = protocol.loop
        deadlines = protocol._deadlines
        if deadlines is None:
            deadlines = protocol._deadlines = _deadlines(loop)
        self.deadlines = deadlines
        self.tick: int | None = deadlines.add(loop, self, hold.limit)
        if not hold.wait(self._ready):
            loop.call_soon(self._ready)  # it came already

    def _ready(self) -> None:
        if self.tick is None:
            return  # expired or released first
        self.deadlines.remove(self, self.tick)
        self.tick = None
        try:
            answer = self.hold.resume()
        except Exception:
            log.exception("fast answer failed path=%s", self.scope["path"])
            answer = None  # the task's path answers (and logs) it
        self.protocol._held_done(self, answer)

    def expired(self) -> None:
        if self.tick is None:
            return
        self.tick = None
        self.protocol._held_done(self, self.hold.expire())

    def release(self) -> None:
        if self.tick is None:
            return
        self.deadlines.remove(self, self.tick)
        self.tick = None
        self.hold.release()


class _Deadlines:
    """The time limits of one loop's held fast answers, on shared timers: one per `GRAIN`
    of time in which holds expire. The players a part wakes are held again together, so
    thousands of holds share a few timers instead of each starting and stopping its own;
    a hold expires at most one grain after its limit."""

    GRAIN = 0.05

    def __init__(self) -> None:
        # (Not the loop itself: a loop's entry in _LOOP_DEADLINES must not keep it alive.)
        self._ticks: dict[int, set[_Held]] = {}

    def add(self, loop: asyncio.AbstractEventLoop, held: _Held, delay: float) -> int:
        tick = -int(-(loop.time() + delay) // self.GRAIN)  # rounded up
        holds = self._ticks.get(tick)
        if holds is None:
            holds = self._ticks[tick] = set()
            loop.call_at(tick * self.GRAIN, self._expire, tick)
        holds.add(held)
        return tick

    def remove(self, held: _Held, tick: int) -> None:
        holds = self._ticks.get(tick)
        if holds is not None:
            holds.discard(held)

    def _expire(self, tick: int) -> None:
        for held in self._ticks.pop(tick, ()):
            held.expired()


_LOOP_DEADLINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = (
    weakref.WeakKeyDictionary())


def _deadlines(loop: asyncio.AbstractEventLoop) -> _Deadlines:
    deadlines = _LOOP_DEADLINES.get(loop)
    if deadlines is None:
        deadlines = _LOOP_DEADLINES[loop] = _Deadlines()
    return deadlines


_INTERNAL_ERROR = (b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n"
                   b"content-length: 21\r\nconnection: close\r\n\r\nInternal Server Error")


class _BadHead(Exception):
    """Raised from a parser callback: the head is refused (`HeadBoundedHttp._bad_head`)."""


def _head_problem(headers: list[tuple[bytes, bytes]], version: str) -> str | None:
    """Why a parsed head is refused with a 400, if it is (RFC 9112). An HTTP/1.1 request
    needs exactly one Host (3.2): with two, a proxy in front and this node could each read
    another (a confused cache key). An HTTP/1.0 request's Transfer-Encoding makes its
    framing faulty (6.1): what follows could be read as its body or as a next request."""
    if version == "1.1":
        hosts = 0
        for name, _ in headers:
            if name == b"host":
                hosts += 1
        return None if hosts == 1 else "an HTTP/1.1 request needs exactly one Host header"
    for name, _ in headers:
        if name == b"transfer-encoding":
            return "an HTTP/1.0 request cannot have a Transfer-Encoding"
    return None


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    # A plain loop: this runs for every request (a generator cost the origin ~4% of its CPU).
    for name, _ in headers:
        if name == b"content-length" or name == b"transfer-encoding":
            return True
    return False


def plain_client(protocol: Any) -> None:
    """An IPv4 client of a dual-stack socket (host "::") as its IPv4 address, not
    ::ffff:a.b.c.d: `trusted_proxies`, access hooks, logs and limits all see IPv4. For a
    uvicorn protocol (HTTP or WebSocket) whose `connection_made` has set `client`."""
    client = protocol.client
    if client is not None and client[0].startswith("::ffff:"):
        protocol.client = (address_of(client[0]), client[1])


def bounded_http_protocol(limits: HeadLimits, fast: FastRoutes | None = None,
                          budget: ConnectionBudget | None = None) -> type[HeadBoundedHttp]:
    """The protocol class uvicorn instantiates per connection, with these limits, `fast`
    answering its prefix's GETs without an ASGI cycle (golive.httpserver.fast), and its
    connections counted in `budget` (golive.httpserver.budget)."""
    return type("GoliveHttpProtocol", (HeadBoundedHttp,),
                {"limits": limits, "fast": fast, "budget": budget,
                 "_idle_table": None if budget is None else budget.idle_table})


def check_protocol(protocol: type[HeadBoundedHttp], config: Config,
                   loop: asyncio.AbstractEventLoop) -> None:
    """Fail loudly when the installed uvicorn no longer has what `HeadBoundedHttp` extends."""
    missing = [name for name in (*_METHODS, *_FAST_METHODS)
               if not callable(getattr(HttpToolsProtocol, name, None))]
    if "transport" not in RequestResponseCycle.__init__.__code__.co_names:
        missing.append("RequestResponseCycle.transport")
    if not missing:
        probe = protocol(config, ServerState(), {}, _loop=loop)
        missing = [name for name in _ATTRIBUTES if not hasattr(probe, name)]
    if missing:
        raise RuntimeError(
            "golive's HTTP head limits extend uvicorn's HttpToolsProtocol (tested with uvicorn "
            f"0.55), and this uvicorn lacks {', '.join(missing)}: install a tested uvicorn")
