"""A refusal the client can read: answer, end our side, drain what still comes, then close (HTTP server).

Closing a TCP socket while the client's bytes are unread, or while it is still
sending, makes the kernel answer with a reset, and a reset can destroy the answer
in the client's receive buffer before the client reads it: a 413 or a WebSocket
close 1009 then looks like a dropped connection. So a connection refused in the
middle of a request (a body too large or too slow, a frame too large) closes the
way nginx's `lingering_close` does: our side is ended (FIN after the answer), the
client's further bytes are read and dropped, and the socket is closed on the
client's EOF or after `LINGER_SECONDS`, whichever comes first. The protocol that
calls `linger` drops whatever it reads from then on, and returns nothing from
`eof_received` (so the transport closes on the client's EOF).
"""

from __future__ import annotations

import asyncio

__all__ = ["LINGER_SECONDS", "linger"]

LINGER_SECONDS = 2.0  # how long a refused client may keep sending before a hard close


def linger(transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
           seconds: float = LINGER_SECONDS) -> asyncio.TimerHandle | None:
    """Close `transport` politely after what was written to it; the timer of the hard close.

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
    return loop.call_later(seconds, transport.close)
