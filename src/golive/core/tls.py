"""TLS handshakes bounded in time and in number, on any TCP port (core).

`loop.create_server(ssl=...)` gives every handshake a timeout but no limit on how many are
in progress: a client that opens TCP and sends nothing, or dribbles a ClientHello a byte at
a time, holds a socket and a TLS object until the timeout, and a few thousand of them hold
the port. So golive ends TLS itself, with the TLS implementation the loop itself would use
(uvloop's, or asyncio's on a plain loop): each connection's protocol is wrapped in an
`SSLProtocol` whose handshake must finish within `handshake_timeout` seconds of the TCP
connection, and a `HandshakeGate` counts the handshakes in progress. Past
`max_handshakes`, a new connection is reset at once (nothing read), so a flood costs the
node a bounded number of half-open connections, and clients that complete a handshake are
served meanwhile. The HTTPS port (`golive.httpserver.tls`) and the RTMPS port
(`golive.ingest.rtmp`) each have a gate.

`check_tls_layer` verifies at start that the loop's `SSLProtocol` takes what is passed
here, and fails loudly if a Python or uvloop upgrade changed it.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
from asyncio import sslproto
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

__all__ = ["HandshakeGate", "TlsLimits", "check_tls_layer"]

# What is passed to the loop's SSLProtocol (the signature asyncio's and uvloop's share).
_PARAMETERS = ("loop", "app_protocol", "sslcontext", "waiter", "server_side",
               "ssl_handshake_timeout")


@dataclass(frozen=True)
class TlsLimits:
    """How long a TLS handshake may take, and how many may be in progress at once."""

    handshake_timeout: float = 10.0
    max_handshakes: int = 256

    def __post_init__(self) -> None:
        if self.handshake_timeout <= 0 or self.max_handshakes < 1:
            raise ValueError("TLS limits need handshake_timeout > 0 and max_handshakes >= 1")


class _Dropped(asyncio.Protocol):
    """A connection past the handshake limit: reset as soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's does not subclass asyncio.Transport, but has abort).
        cast(asyncio.Transport, transport).abort()


def _ssl_protocol_class(loop: asyncio.AbstractEventLoop) -> type[Any]:
    """The SSLProtocol of the loop's own TLS: uvloop's on a uvloop loop, else asyncio's."""
    try:
        import uvloop
        from uvloop import loop as uvloop_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return sslproto.SSLProtocol
    if isinstance(loop, uvloop.Loop):
        protocol: type[Any] = uvloop_loop.SSLProtocol  # type: ignore[attr-defined]
        return protocol
    return sslproto.SSLProtocol


class HandshakeGate:
    """Wraps each new connection in TLS, bounding its handshake in time, and counts the
    handshakes in progress, dropping connections past `limits.max_handshakes`.

    `pending` is the number in progress now; since start, `failed` counts handshakes that
    ended in an error (bad, timed out, reset), `completed` the others (done, or the client
    closed quietly first), `dropped` the connections refused at the limit.
    """

    def __init__(self, context: ssl.SSLContext, limits: TlsLimits) -> None:
        self.context = context
        self.limits = limits
        self.pending = 0
        self.completed = 0
        self.failed = 0
        self.dropped = 0

    def wrap(self, app: Callable[[], asyncio.BaseProtocol],
             loop: asyncio.AbstractEventLoop | None = None) -> asyncio.BaseProtocol:
        """The protocol for one accepted connection: `app()` (the plain-text protocol)
        inside the loop's TLS, or a reset when `limits.max_handshakes` are in progress.
        Call it on the serving loop (or pass it), whose TLS implementation it uses."""
        if self.pending >= self.limits.max_handshakes:
            self.dropped += 1
            return _Dropped()
        loop = loop or asyncio.get_running_loop()
        waiter = loop.create_future()
        waiter.add_done_callback(self._handshake_ended)
        self.pending += 1
        protocol: asyncio.BaseProtocol = _ssl_protocol_class(loop)(
            loop, app(), self.context, waiter, server_side=True,
            ssl_handshake_timeout=self.limits.handshake_timeout)
        return protocol

    def _handshake_ended(self, waiter: asyncio.Future[None]) -> None:
        # The loop's SSLProtocol settles its waiter exactly once: with an error when the
        # handshake fails, times out or is reset, else when it completes (or the client
        # closes quietly first).
        self.pending -= 1
        if waiter.cancelled() or waiter.exception() is not None:
            self.failed += 1
        else:
            self.completed += 1


def check_tls_layer(loop: asyncio.AbstractEventLoop) -> None:
    """Fail loudly when the loop's SSLProtocol no longer takes what `HandshakeGate` passes."""
    cls = _ssl_protocol_class(loop)
    try:
        names = set(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        # A compiled class without a signature: its docstring states it (uvloop does).
        names = set((cls.__doc__ or "").partition("(")[2].partition(")")[0].replace(
            " ", "").split(","))
        names = {name.partition("=")[0] for name in names}
    missing = [name for name in _PARAMETERS if name not in names]
    if missing:
        raise RuntimeError(
            f"golive's TLS handshake limits wrap connections in {cls.__module__}.SSLProtocol "
            f"(tested with Python 3.11 and uvloop 0.23), and this one lacks "
            f"{', '.join(missing)}: install a tested version")
