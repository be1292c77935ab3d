"""The asyncio RTMP(S) server around `ServerSession` (ingest).

Each connection is an `asyncio.Protocol` that owns its session: bytes go into
the session as they arrive, with no task switch or timer per read, which is
what keeps per-stream CPU close to nginx-rtmp's. The server enforces the limits
the sans-IO core cannot: the handshake-and-publish deadline, the idle timeout,
the number of connections and a bound on unsent output. Connections that have not
been authorised yet (no accepted publish) have a budget of their own: when it is
full, the address holding most of it gives up its oldest connection, so idle sockets
from one abuser can never keep a publisher with a valid key out. Once a publisher is
live, reads can be batched (`read_batch` seconds): a packet waits at most that
long in the kernel, and one read then takes several, which halves the CPU a
stream costs at the price of that much extra ingest delay. Stream keys are checked
by the `PublishTarget`; while a check runs, reading pauses and whatever already
arrived waits, so media is never reordered or delivered before the key is
accepted.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter

from golive.core import (
    HandshakeGate,
    RepeatedLog,
    TlsLimits,
    address_of,
    bind_stream,
    check_tls_layer,
    client_key,
    remote_of,
)
from golive.ingest.rtmp.session import (
    PUBLISH_BAD_NAME,
    PUBLISH_REJECTED,
    Event,
    MediaReceived,
    PublishRequested,
    RtmpError,
    ServerSession,
    Unpublished,
)
from golive.ingest.rtmp.tcpinfo import TcpRoundTrip, tcp_round_trip
from golive.stream import Publisher, PublishRefused, PublishTarget, RefusalReason

log = logging.getLogger(__name__)

_MAX_UNSENT = 1024 * 1024  # a peer that stops reading our (tiny) replies is dropped
_BIG_READ = 64 * 1024  # reads this large already amortise their cost; no pause after them

_REFUSAL_CODES = {
    RefusalReason.UNKNOWN_KEY: PUBLISH_BAD_NAME,
    RefusalReason.DISABLED: PUBLISH_BAD_NAME,
    RefusalReason.ALREADY_LIVE: PUBLISH_BAD_NAME,
    RefusalReason.TOO_MANY_PUBLISHERS: PUBLISH_REJECTED,
    RefusalReason.SHUTTING_DOWN: PUBLISH_REJECTED,
}


class RtmpServer:
    def __init__(
        self,
        target: PublishTarget,
        *,
        host: str = "0.0.0.0",
        port: int = 1935,
        ssl_context: ssl.SSLContext | None = None,
        max_tls_handshakes: int = 256,
        handshake_timeout: float = 10.0,
        idle_timeout: float = 20.0,
        max_message_size: int = 16 * 1024 * 1024,
        max_connections: int = 200,
        max_unauthorised: int = 64,
        grace: float = 2.0,
        read_batch: float = 0.0,
        webrtc_read_batch: float = 0.0,
    ) -> None:
        self.target = target
        self.read_batch = read_batch
        # For publishers of streams that also play over WebRTC (`Publisher.webrtc_playback`).
        self.webrtc_read_batch = webrtc_read_batch
        self._host = host
        self._port = port
        # RTMPS: TLS ended by golive, each handshake bounded by `handshake_timeout` and at
        # most `max_tls_handshakes` in progress (a connection counts in `connections` only
        # once its handshake is done, so half-open TLS must be bounded before it).
        self.tls: HandshakeGate | None = None if ssl_context is None else HandshakeGate(
            ssl_context, TlsLimits(handshake_timeout=handshake_timeout,
                                   max_handshakes=max_tls_handshakes))
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.max_message_size = max_message_size
        self.max_connections = max_connections
        self.max_unauthorised = max_unauthorised
        # An unauthorised connection younger than this is never evicted for another's sake.
        self.grace = min(grace, handshake_timeout / 2)
        self._server: asyncio.Server | None = None
        self.connections: set[RtmpConnection] = set()
        # Connections without an accepted publish, oldest first (dicts keep insertion order).
        self.unauthorised: dict[RtmpConnection, None] = {}
        self.unauthorised_by_address: Counter[str] = Counter()
        self.refused = 0
        self.evicted = 0
        self._log = RepeatedLog(log)
        self.protocol = "rtmps" if ssl_context is not None else "rtmp"

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._port
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def connection_count(self) -> int:
        return len(self.connections)

    def admit(self, connection: RtmpConnection) -> str | None:
        """Take a new connection into the budgets; the reason it is refused, or None.

        When the unauthorised budget is full, the address holding most of it gives up its
        oldest connection, provided that one had `grace` seconds to say who it is: a burst
        of encoders connecting at once from one address (a studio behind NAT, a restart
        after a network blip) is never cut off mid-handshake, while idle sockets are.
        """
        now = self._loop_time()
        if len(self.unauthorised) >= self.max_unauthorised:
            victim = self._oldest_of_heaviest_address(now - self.grace)
            if victim is not None:
                self._evict(victim, now, "unauthorised connection budget full")
        if len(self.connections) >= self.max_connections and self.unauthorised:
            # The hard cap: the oldest unauthorised connection makes room, whatever its age.
            self._evict(next(iter(self.unauthorised)), now, "connection limit reached")
        if len(self.connections) >= self.max_connections:
            self.refused += 1
            self._log.warning("limit", now, "%s connection refused remote=%s: limit of %d "
                              "reached", self.protocol, connection.remote, self.max_connections)
            return "connection limit reached"
        self.connections.add(connection)
        self.unauthorised[connection] = None
        self.unauthorised_by_address[connection.client] += 1
        return None

    def _oldest_of_heaviest_address(self, born_before: float) -> RtmpConnection | None:
        heaviest, _count = self.unauthorised_by_address.most_common(1)[0]
        for candidate in self.unauthorised:  # oldest first
            if candidate.client == heaviest:
                return candidate if candidate.created <= born_before else None
        return None

    def _evict(self, victim: RtmpConnection, now: float, why: str) -> None:
        self.evicted += 1
        self._log.warning(f"evict:{why}", now, "%s unauthorised connection dropped remote=%s: %s",
                          self.protocol, victim.remote, why)
        victim.close(f"evicted: {why}")

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    def authorised(self, connection: RtmpConnection) -> None:
        """The connection's publish was accepted: it leaves the unauthorised budget."""
        if connection in self.unauthorised:
            del self.unauthorised[connection]
            self._release_address(connection.client)

    def tcp_round_trip(self, stream_key: str) -> TcpRoundTrip | None:
        """The TCP round trip of the live publisher with this key (None: none, or no
        TCP_INFO here)."""
        for connection in self.connections:
            if connection.stream_key == stream_key and connection.publisher is not None:
                transport = connection.transport
                if transport is None or transport.is_closing():
                    return None
                return tcp_round_trip(transport.get_extra_info("socket"))
        return None

    def forget(self, connection: RtmpConnection) -> None:
        self.connections.discard(connection)
        self.authorised(connection)

    def _release_address(self, address: str) -> None:
        self.unauthorised_by_address[address] -= 1
        if self.unauthorised_by_address[address] <= 0:
            del self.unauthorised_by_address[address]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        gate = self.tls
        if gate is not None:
            check_tls_layer(loop)
        # (Bound here: asyncio's own would make "::" IPv6-only; `bind_stream` takes IPv4 too.)
        self._server = await loop.create_server(
            (lambda: RtmpConnection(self)) if gate is None
            else (lambda: gate.wrap(lambda: RtmpConnection(self), loop)),
            sock=bind_stream(self._host, self._port, 512),
        )
        log.info("%s listening host=%s port=%d", self.protocol, self._host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close("server closing")
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
            except TimeoutError:
                pass


class RtmpConnection(asyncio.Protocol):
    """One TCP (or TLS) connection from a publisher."""

    def __init__(self, server: RtmpServer) -> None:
        self.server = server
        self.session = ServerSession(max_message_size=server.max_message_size,
                                     epoch_ms=int(time.time() * 1000))
        self.transport: asyncio.Transport | None = None
        self.remote = "?"
        self.address = "?"
        self.client = "?"  # what the per-address budget counts: an IPv6 publisher's /64
        self.publisher: Publisher | None = None
        self.stream_key: str | None = None  # once its publish is accepted; never logged
        self._loop = asyncio.get_running_loop()
        self.created = self._loop.time()
        self._deadline = self.created + server.handshake_timeout
        self._last_data = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._checking = False  # a stream key check is in flight
        self._deferred: list[Event] = []
        self._backlog: list[bytes] = []
        self._closed = False
        self._close_reason = "eof"

    # asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the Transport interface without subclassing it.
        self.transport = tcp = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        # An IPv4 client of a dual-stack socket as IPv4, and "[v6]:port" for IPv6: the
        # key-guess throttle is keyed by the address read back from `remote`.
        if isinstance(peer, tuple):
            self.address = address_of(str(peer[0]))
            self.remote = remote_of(self.address, peer[1])
        else:
            self.address = self.remote = str(peer)
        self.client = client_key(self.address)
        if self.server.admit(self) is not None:
            self._closed = True
            tcp.abort()  # type: ignore[attr-defined]
            return
        self._timer = self._loop.call_later(self.server.handshake_timeout, self._check_timeouts)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._last_data = self._loop.time()
        if self._checking:
            self._backlog.append(data)
            assert self.transport is not None
            self.transport.pause_reading()
            return
        self._consume(data)
        publisher = self.publisher
        if publisher is None or self._closed or len(data) >= _BIG_READ:
            return
        batch = self.server.webrtc_read_batch if publisher.webrtc_playback else self.server.read_batch
        if batch:
            # Let a few packets pile up in the kernel so the next read takes them all.
            assert self.transport is not None
            self.transport.pause_reading()
            self._loop.call_later(batch, self._resume_reading)

    def _resume_reading(self) -> None:
        if not self._closed and not self._checking and self.transport is not None:
            self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        self.close("eof")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed:
            self._finish(f"error: {exc}" if exc is not None else "eof")

    # Internals --------------------------------------------------------------------------

    def _consume(self, data: bytes) -> None:
        try:
            events = self.session.receive_data(data)
        except RtmpError as exc:
            log.warning("rtmp protocol error remote=%s error=%s", self.remote, exc)
            self._flush()
            self.close(f"error: {exc}")
            return
        self._flush()
        self._handle(events)

    def _handle(self, events: list[Event]) -> None:
        for index, event in enumerate(events):
            if isinstance(event, MediaReceived):
                if self.publisher is not None:
                    self.publisher.push(event.tag)
            elif isinstance(event, PublishRequested):
                self._deferred = events[index + 1 :]
                self._checking = True
                task = self._loop.create_task(self._open(event))
                task.add_done_callback(_log_failure)
                return
            elif isinstance(event, Unpublished):
                self._close_publisher("unpublish")
        if self.session.closed:
            self.close("rejected" if self.publisher is None else "closed by protocol")

    async def _open(self, request: PublishRequested) -> None:
        try:
            try:
                self.publisher = await self.server.target.open_publisher(
                    request.stream_key,
                    protocol=self.server.protocol,
                    remote_address=self.remote,
                    disconnect=self._kick,
                )
            except PublishRefused as refused:
                log.info("publish refused remote=%s reason=%s", self.remote, refused.reason)
                self.session.reject_publish(
                    _REFUSAL_CODES.get(refused.reason, PUBLISH_REJECTED), refused.message
                )
                self._flush()
                self.close(f"refused: {refused.reason}")
                return
            except Exception as exc:
                log.exception("stream key check failed remote=%s", self.remote)
                self.session.reject_publish(PUBLISH_REJECTED, "server error, try again")
                self._flush()
                self.close(f"error: {exc}")
                return
            if self._closed:  # the publisher went away during the check
                self._close_publisher(self._close_reason)
                return
            self.session.accept_publish()
            self.stream_key = request.stream_key
            self.server.authorised(self)
            self._flush()
        finally:
            self._checking = False
        deferred, self._deferred = self._deferred, []
        self._handle(deferred)
        backlog, self._backlog = self._backlog, []
        for data in backlog:
            if self._closed or self._checking:
                self._backlog.append(data)
                continue
            self._consume(data)
        if not self._closed and self.transport is not None and not self._checking:
            self.transport.resume_reading()

    def _check_timeouts(self) -> None:
        if self._closed:
            return
        now = self._loop.time()
        if self.publisher is None and not self._checking:
            if now >= self._deadline:
                self.close("timeout: no publish in time")
                return
            wait = self._deadline - now
        else:
            idle = now - self._last_data
            if idle >= self.server.idle_timeout:
                self.close("timeout: idle")
                return
            wait = self.server.idle_timeout - idle
        self._timer = self._loop.call_later(max(wait, 0.05), self._check_timeouts)

    def _flush(self) -> None:
        data = self.session.data_to_send()
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)
            if transport.get_write_buffer_size() > _MAX_UNSENT:
                self.close("error: peer does not read")

    def _kick(self, reason: str) -> None:
        """Called by the broadcast hub: drop this publisher now (it closes its side itself)."""
        self.publisher = None
        self.close(f"kicked: {reason}")

    def _close_publisher(self, reason: str) -> None:
        publisher, self.publisher = self.publisher, None
        if publisher is not None:
            publisher.close(reason)

    def close(self, reason: str) -> None:
        if self._closed:
            return
        self._close_reason = reason
        if self.transport is not None:
            # Let the last status message reach the client, then close.
            self.transport.close()
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self.server.forget(self)
        if not self._checking:
            self._close_publisher(reason)
        log.debug("rtmp connection closed remote=%s reason=%s", self.remote, reason)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("rtmp publish task failed error=%r", task.exception())
