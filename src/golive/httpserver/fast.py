"""Answers below one path prefix written without an ASGI cycle: the origin's `/live/` (HTTP server).

Every LL-HLS viewer asks for a playlist update and a part several times a second, and
uvicorn's per-request machinery (a scope, a task, the receive/send messages and their
checks) cost several times what the origin's own decision does. For a complete GET or
HEAD below `FastRoutes.prefix`, with nothing in front of it on the connection,
`HeadBoundedHttp` asks `FastRoutes.answer_now` for the answer during the parser's
callback and writes it at once. An answer that waits for one event (a blocking playlist
reload, a preload-hinted part) is a `FastHold`: a callback it calls when the event
comes and a place on a timer shared by the holds that end at about the same time, no
task and no future. Any other wait (an access check to make, another node to ask, a recording to
read) runs `FastRoutes.answer` in a task of its own. Either way the answer is written
when it is ready, and any pipelined request waits behind it as uvicorn makes it. Everything else (other paths, methods,
bodies, upgrades, HTTP/1.0, a client that asks to close, a slow reader whose writes are
paused, pipelined requests) takes uvicorn's path unchanged, so answers stay in request
order and a client that does not read is held to one answer past the write buffer.

The head is written as uvicorn writes it: its status line, its default headers (date,
server), then the answer's, each name and value checked as uvicorn checks them.
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, STATUS_LINE

__all__ = ["HEADERS_BY_NAME", "FastAnswer", "FastHold", "FastRoutes", "SharedBody", "head_bytes",
           "head_of"]

log = logging.getLogger(__name__)

RawHeaders = list[tuple[bytes, bytes]]

# A scope key the fast path may set: the request's headers as a dict by name (the last
# value of a repeated one), shared by requests with the same headers, so read-only.
HEADERS_BY_NAME = "golive.headers_by_name"


class FastAnswer(Protocol):
    """A complete answer: status, headers (lower-case latin-1 pairs) and the whole body;
    `fast_head` is where the fast path keeps the head it wrote for it (`head_of`), for an
    answer that is given again unchanged; `fast_shared`, for a large answer many clients
    get (a part), lets it be sent from a file (`SharedBody`)."""

    body: bytes
    status_code: int
    raw_headers: RawHeaders
    fast_head: tuple[RawHeaders, bytes] | None
    fast_shared: SharedBody | None


class SharedBody:
    """A large answer given to many clients, kept with its current head in an anonymous
    in-memory file (Linux memfd) that the fast path sends with one `sendfile`: the
    kernel then sends the file's pages as they are, where a write would copy the whole
    answer into each client's socket first (every LL-HLS viewer fetches every part: at
    2,000 viewers that copy was a tenth of the origin's CPU). The file is written again
    when the head changes (the date, once a second); closed with this object."""

    __slots__ = ("_fd", "_head", "_size")

    def __init__(self) -> None:
        self._fd = -1
        self._head: bytes | None = None
        self._size = 0

    def file(self, head: bytes, body: bytes) -> tuple[int, int]:
        """(descriptor, size) of a file holding `head` then `body`; (-1, 0) if this
        system has no memfd (the answer is then written as usual)."""
        if head is self._head:
            return self._fd, self._size
        self.close()
        memfd_create = getattr(os, "memfd_create", None)
        if memfd_create is None:
            return -1, 0
        fd = memfd_create("golive-answer", os.MFD_CLOEXEC)
        try:
            for chunk in (head, body):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._head, self._size = fd, head, len(head) + len(body)
        return fd, self._size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd, self._head = -1, None

    def __del__(self) -> None:
        self.close()


class FastHold:
    """An answer that waits for one event: the protocol gives `wait` the function to call
    when it comes, or the connection gives up after `limit` seconds (up to 50 ms later).
    No task and no future wait: the protocol calls `resume` once the event came, `expire`
    from a timer, `release` on a hang-up; exactly one of them, once.

    Abstract, but not an `abc.ABC`: the protocol asks `isinstance(answer, FastHold)` of
    every fast answer, and against an ABCMeta class that runs Python code each time."""

    __slots__ = ("limit",)

    def __init__(self, limit: float) -> None:
        self.limit = limit

    @abc.abstractmethod
    def wait(self, ready: Callable[[], None]) -> bool:
        """Have `ready()` called once the event comes, from the loop, never within this
        call; False, and nothing arranged: it came already. After `expire` or `release`
        a call may still come, and is ignored."""

    @abc.abstractmethod
    def resume(self) -> FastAnswer | None:
        """The answer now that the event came; None: `carry_on` gives it."""

    def carry_on(self, routes: FastRoutes, scope: Any) -> Awaitable[FastAnswer]:
        """The answer when `resume` gave none (it must wait again), awaited in a task: by
        default `routes.answer`, from the start; a hold that knows how far its decision
        got goes on from there, so no wait already made is made again."""
        return routes.answer(scope)

    @abc.abstractmethod
    def expire(self) -> FastAnswer:
        """The answer when the event did not come in time; stop waiting."""

    @abc.abstractmethod
    def release(self) -> None:
        """The client went: stop waiting."""


class FastRoutes(Protocol):
    """What answers GET and HEAD requests below `prefix` on the fast path."""

    prefix: bytes

    def answer_now(self, scope: Any) -> FastAnswer | FastHold | None:
        """The answer, or the one event it waits for, if it needs no await; None:
        `answer` gives it."""

    def answer(self, scope: Any) -> Awaitable[FastAnswer]:
        """The answer, waiting where it must."""

    def answered(self, scope: Any, answer: Any, started: float) -> None:
        """Count an answer once it is written (`started`: perf_counter at the head)."""


class BadHeader(ValueError):
    """An answer's header name or value that HTTP/1.1 cannot carry."""


def head_bytes(answer: FastAnswer, default_headers: RawHeaders) -> bytes:
    """The status line and headers uvicorn would write for `answer` on a keep-alive
    connection; a body without `content-length` gets one (it is all there)."""
    content = [STATUS_LINE[answer.status_code]]
    for name, value in default_headers:
        content += (name, b": ", value, b"\r\n")
    has_length = False
    for name, value in answer.raw_headers:
        if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
            raise BadHeader(f"header {name!r} cannot be sent")
        if name == b"content-length":
            has_length = True
        content += (name, b": ", value, b"\r\n")
    if not has_length and answer.status_code not in (204, 304):
        content.append(b"content-length: %d\r\n" % len(answer.body))
    content.append(b"\r\n")
    return b"".join(content)


def head_of(answer: FastAnswer, default_headers: RawHeaders) -> bytes:
    """`head_bytes`, kept on the answer while the default headers stay the same list (the
    server makes a new one each second, with its date): an answer shared by every viewer
    (a playlist a new part completes, the part itself) costs one head a second."""
    kept = answer.fast_head
    if kept is not None and kept[0] is default_headers:
        return kept[1]
    head = head_bytes(answer, default_headers)
    answer.fast_head = (default_headers, head)
    return head


class FastCycle:
    """Stands in for uvicorn's RequestResponseCycle while a fast answer is produced (and
    after): uvicorn reads `response_complete` to queue pipelined requests, sets
    `disconnected` and the message event when the client goes, and `keep_alive` (false)
    on shutdown."""

    __slots__ = ("disconnected", "keep_alive", "message_event", "more_body",
                 "response_complete")

    def __init__(self, *, complete: bool) -> None:
        self.response_complete = complete
        self.disconnected = False
        self.keep_alive = True
        self.more_body = False
        self.message_event = _NoEvent()


class _NoEvent:
    """No one waits on a fast request's body: there is none."""

    __slots__ = ()

    def set(self) -> None:
        return None
