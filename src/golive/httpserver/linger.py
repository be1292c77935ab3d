"""A refusal the client can read: answer, end our side, drain what still comes, then close (HTTP server).

Closing a TCP socket while the client's bytes are unread, or while it is still
sending, makes the kernel answer with a reset, and a reset can destroy the answer
in the client's receive buffer before the client reads it: a 413 or a WebSocket
close 1009 then looks like a dropped connection. So a connection refused in the
middle of a request (a body too large or too slow, a frame too large) closes the
way nginx's `lingering_close` does: our side is ended (FIN after the answer), the
client's further bytes are read and dropped, and the socket is closed on the
client's EOF, once the client has been quiet for `LINGER_QUIET` seconds, or
`LINGER_MOST` seconds after the refusal, whichever comes first (nginx's
`lingering_timeout` and `lingering_time`). A quiet time, not one deadline: a
client still writing a large refused body on a busy machine (or through a slow
link) needs longer than any fixed wait, and its close frame or 413 is lost to a
reset if the socket closes under its last writes. The protocol that calls
`linger` drops whatever it reads from then on, telling the `Lingering` each time
(`heard`), and returns nothing from `eof_received` (so the transport closes on
the client's EOF).
"""

from __future__ import annotations

import asyncio

__all__ = ["LINGER_MOST", "LINGER_QUIET", "Lingering", "linger"]

LINGER_QUIET = 2.0  # a refused client silent this long is closed on
LINGER_MOST = 30.0  # and however it keeps sending, this long after the refusal


class Lingering:
    """The hard close of one refused connection, put off while the client keeps sending."""

    __slots__ = ("_heard_at", "_loop", "_most_at", "_quiet", "_timer", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
                 quiet: float, most: float) -> None:
        self._transport = transport
        self._loop = loop
        self._quiet = quiet
        now = loop.time()
        self._heard_at = now
        self._most_at = now + most
        self._timer: asyncio.TimerHandle | None = loop.call_at(
            min(now + quiet, self._most_at), self._due)

    def heard(self) -> None:
        """The client sent more (dropped): its quiet time starts again. No timer is moved
        here; the one running looks at this when it fires."""
        self._heard_at = self._loop.time()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _due(self) -> None:
        self._timer = None
        if self._transport.is_closing():
            return
        now = self._loop.time()
        at = min(self._heard_at + self._quiet, self._most_at)
        if at <= now:
            self._transport.close()
        else:
            self._timer = self._loop.call_at(at, self._due)


def linger(transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
           quiet: float = LINGER_QUIET, most: float = LINGER_MOST) -> Lingering | None:
    """Close `transport` politely after what was written to it; the pending hard close.

    None when there is nothing to wait for: the transport is already closing, or it
    cannot end its side alone (then it is closed at once).
    """
    if transport.is_closing():
        return None
    if not transport.can_write_eof():
        transport.close()
        return None
    transport.write_eof()  # sent once what is buffered has gone: the answer comes first
    # Flow control may have paused reading (a body the route stopped reading): the
    # client's bytes must keep draining, or its writes block and it never reads us.
    transport.resume_reading()
    return Lingering(transport, loop, quiet, most)
