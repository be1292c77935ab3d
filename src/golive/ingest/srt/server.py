"""The asyncio SRT listener around the sans-IO core: one UDP socket for every publisher (ingest).

Datagrams are told apart by destination socket id and peer address; one from an
unknown peer, or with a socket id that is not that peer's, is dropped without
touching anyone else. Handshakes are answered statelessly until a conclusion with
a valid SYN cookie arrives; then the stream key and passphrase are checked (the
caller retransmits its conclusion meanwhile, and those copies are ignored), and
only then is the conclusion answered, or rejected with an SRT reason. One timer
ticks every connection every ~10 ms for ACKs, NAKs and TSBPD delivery. Delivered
payloads are MPEG-TS; a `TsDemuxer` per publisher turns them into media tags.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from golive.formats.mpegts import TsDemuxer
from golive.ingest.srt.connection import ConnectionStats, SrtConnection
from golive.ingest.srt.crypto import BadSecret, PayloadDecryptor
from golive.ingest.srt.handshake import (
    ConclusionRequest,
    Handshake,
    HandshakeRejected,
    HandshakeType,
    RejectReason,
    SynCookies,
    conclusion_response,
    induction_response,
    ip_field,
    parse_conclusion,
    rejection,
)
from golive.ingest.srt.packet import (
    ControlPacket,
    ControlType,
    SrtError,
    control,
    parse_packet,
)
from golive.stream.publish import Publisher, PublishRefused, PublishTarget, RefusalReason

log = logging.getLogger(__name__)

Address = tuple[str, int] | tuple[str, int, int, int]
PassphraseLookup = Callable[[str], Awaitable[str | None]]
PayloadTap = Callable[[str, bytes], None]

_REFUSALS = {
    RefusalReason.UNKNOWN_KEY: RejectReason.X_FORBIDDEN,
    RefusalReason.DISABLED: RejectReason.X_FORBIDDEN,
    RefusalReason.ALREADY_LIVE: RejectReason.X_CONFLICT,
    RefusalReason.TOO_MANY_PUBLISHERS: RejectReason.X_OVERLOAD,
    RefusalReason.SHUTTING_DOWN: RejectReason.X_UNAVAILABLE,
}
_REJECTION_MEMORY = 5.0  # seconds a rejection is repeated to a caller that asks again
_MAX_REMEMBERED_REJECTIONS = 1024
_SOCKET_BUFFER = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SrtPublisherFacts:
    """One live SRT publisher as the API shows it."""

    stream_key: str
    remote_address: str
    stats: ConnectionStats


@dataclass(eq=False)
class _Session:
    address: Address
    remote: str
    stream_key: str
    connection: SrtConnection
    publisher: Publisher | None
    demuxer: TsDemuxer = field(default_factory=TsDemuxer)


class _TokenBucket:
    def __init__(self, rate: float, now: float) -> None:
        self._rate = rate
        self._tokens = rate
        self._time = now

    def allow(self, now: float) -> bool:
        self._tokens = min(self._rate, self._tokens + (now - self._time) * self._rate)
        self._time = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class SrtServer:
    def __init__(
        self,
        target: PublishTarget,
        *,
        host: str = "0.0.0.0",
        port: int = 9000,
        passphrase_for: PassphraseLookup | None = None,
        latency: float = 0.120,
        flow_window: int = 8192,
        max_connections: int = 200,
        handshake_rate: float = 50.0,
        idle_timeout: float = 5.0,
        tick_interval: float = 0.010,
        on_payload: PayloadTap | None = None,
    ) -> None:
        self.target = target
        self.passphrase_for = passphrase_for
        self.latency = latency
        self.flow_window = flow_window
        self.max_connections = max_connections
        self.handshake_rate = handshake_rate
        self.idle_timeout = idle_timeout
        self.tick_interval = tick_interval
        self.on_payload = on_payload
        self.ignored_datagrams = 0
        self._host = host
        self._port = port
        self._cookies = SynCookies(os.urandom(32))
        self._transport: asyncio.DatagramTransport | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._rate: _TokenBucket | None = None
        self._by_socket: dict[int, _Session] = {}
        self._by_peer: dict[tuple[Address, int], _Session] = {}
        self._pending: dict[tuple[Address, int], asyncio.Task[None]] = {}
        self._rejections: dict[tuple[Address, int], tuple[bytes, float]] = {}
        self._closing = False

    # Lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._transport is None:
            return self._port
        port: int = self._transport.get_extra_info("sockname")[1]
        return port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _SrtDatagramProtocol(self), local_addr=(self._host, self._port))
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        self._rate = _TokenBucket(self.handshake_rate, loop.time())
        self._ticker = loop.create_task(self._tick_forever())
        log.info("srt listening host=%s port=%d", self._host, self.port)

    async def close(self) -> None:
        self._closing = True
        now = asyncio.get_running_loop().time()
        for session in list(self._by_socket.values()):
            session.connection.close(now, "server closing")
            self._pump(session)
        for task in list(self._pending.values()):
            task.cancel()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._transport is not None:
            self._transport.close()

    def connection_facts(self) -> dict[str, SrtPublisherFacts]:
        """Live publishers by stream key, with their SRT figures."""
        return {
            s.stream_key: SrtPublisherFacts(s.stream_key, s.remote, s.connection.stats())
            for s in self._by_socket.values()
        }

    @property
    def connection_count(self) -> int:
        return len(self._by_socket)

    # Datagrams ---------------------------------------------------------------------------

    def datagram_received(self, data: bytes, address: Address) -> None:
        now = asyncio.get_running_loop().time()
        try:
            packet = parse_packet(data)
        except SrtError:
            self.ignored_datagrams += 1
            return
        if packet.dest_socket:
            session = self._by_socket.get(packet.dest_socket)
            if session is not None and session.address == address:
                session.connection.receive(packet, now)
                self._pump(session)
                return
        if isinstance(packet, ControlPacket) and packet.type == ControlType.HANDSHAKE:
            try:
                self._handshake(packet, address, now)
            except SrtError:
                pass
            else:
                return
        self.ignored_datagrams += 1

    def _handshake(self, packet: ControlPacket, address: Address, now: float) -> None:
        hs = Handshake.decode(packet.body)
        peer = _peer(address)
        key = (address, hs.socket_id)
        if hs.type == HandshakeType.INDUCTION:
            if self._rate is not None and not self._rate.allow(now):
                return
            cookie = self._cookies.make(peer, now)
            answer = induction_response(hs, cookie=cookie, peer_ip=ip_field(address[0]))
            self._send_handshake(answer, hs.socket_id, address)
            return
        if hs.type != HandshakeType.CONCLUSION:
            raise SrtError(f"unexpected handshake type {hs.type:#x}")
        session = self._by_peer.get(key)
        if session is not None:  # our answer was lost; the connection repeats it
            session.connection.receive(packet, now)
            self._pump(session)
            return
        if key in self._pending:
            return
        remembered = self._rejections.get(key)
        if remembered is not None:
            self._send(remembered[0], address)
            return
        if not self._cookies.check(peer, hs.cookie, now):
            raise SrtError("conclusion with a wrong cookie")
        if self._rate is not None and not self._rate.allow(now):
            return
        try:
            request = parse_conclusion(hs)
        except HandshakeRejected as rejected:
            self._reject(hs, address, rejected)
            return
        if self._closing:
            self._reject(hs, address, HandshakeRejected(RejectReason.CLOSE, "server closing"))
            return
        if len(self._by_socket) + len(self._pending) >= self.max_connections:
            self._reject(hs, address, HandshakeRejected(RejectReason.BACKLOG, "too many callers"))
            return
        time_base = now - packet.timestamp / 1e6
        task = asyncio.get_running_loop().create_task(
            self._accept(hs, request, address, time_base))
        self._pending[key] = task

    async def _accept(self, hs: Handshake, request: ConclusionRequest, address: Address,
                      time_base: float) -> None:
        key = (address, hs.socket_id)
        remote = _peer(address)
        stream_key = request.stream.key
        try:
            decryptor, km_response = await self._check_secret(request)
            holder: list[_Session] = []
            publisher = await self.target.open_publisher(
                stream_key, protocol="srt", remote_address=remote,
                disconnect=lambda reason: self._kick(holder, reason))
        except HandshakeRejected as rejected:
            log.info("srt handshake rejected remote=%s stream=%s reason=%s: %s", remote,
                     stream_key, rejected.reason.name, rejected.message)
            self._reject(hs, address, rejected)
            return
        except PublishRefused as refused:
            log.info("srt publish refused remote=%s stream=%s reason=%s", remote, stream_key,
                     refused.reason)
            reason = _REFUSALS.get(refused.reason, RejectReason.X_FORBIDDEN)
            self._reject(hs, address, HandshakeRejected(reason, refused.message))
            return
        except Exception:
            log.exception("srt stream key check failed remote=%s stream=%s", remote, stream_key)
            self._reject(hs, address, HandshakeRejected(RejectReason.X_ISE, "server error"))
            return
        finally:
            self._pending.pop(key, None)
        if self._closing:
            publisher.close("server closing")
            return
        socket_id = self._new_socket_id()
        latency_ms = max(round(self.latency * 1000), request.latency_ms)
        answer = conclusion_response(
            hs, socket_id=socket_id, latency_ms=latency_ms, flow_window=self.flow_window,
            mtu=1500, peer_ip=ip_field(address[0]), km_response=km_response,
            encrypted=decryptor is not None)
        datagram = control(ControlType.HANDSHAKE, dest_socket=request.peer_socket, timestamp=0,
                           body=answer.encode()).encode()
        now = asyncio.get_running_loop().time()
        connection = SrtConnection(
            socket_id=socket_id, peer_socket=request.peer_socket,
            initial_seq=request.initial_seq, latency=latency_ms / 1000,
            flow_window=min(self.flow_window, request.flow_window), time_base=time_base,
            now=now, handshake_response=datagram, decryptor=decryptor,
            idle_timeout=self.idle_timeout)
        session = _Session(address, remote, stream_key, connection, publisher)
        holder.append(session)
        self._by_socket[socket_id] = session
        self._by_peer[key] = session
        self._send(datagram, address)
        log.info("srt publisher connected remote=%s stream=%s latency_ms=%d encrypted=%s",
                 remote, stream_key, latency_ms, decryptor is not None)

    async def _check_secret(
        self, request: ConclusionRequest
    ) -> tuple[PayloadDecryptor | None, bytes | None]:
        passphrase = None
        if self.passphrase_for is not None:
            passphrase = await self.passphrase_for(request.stream.key)
        if not passphrase:
            if request.key_material is not None:
                raise HandshakeRejected(RejectReason.UNSECURE,
                                        "caller encrypts but the stream has no passphrase")
            return None, None
        if request.key_material is None:
            raise HandshakeRejected(RejectReason.UNSECURE, "the stream needs a passphrase")
        decryptor = PayloadDecryptor(passphrase, request.key_length)
        try:
            return decryptor, decryptor.accept(request.key_material)
        except BadSecret:
            raise HandshakeRejected(RejectReason.BADSECRET, "wrong passphrase") from None
        except SrtError as exc:
            raise HandshakeRejected(RejectReason.ROGUE, str(exc)) from None

    # Per-connection plumbing -------------------------------------------------------------

    def _pump(self, session: _Session) -> None:
        connection = session.connection
        for datagram in connection.take_datagrams():
            self._send(datagram, session.address)
        payloads = connection.take_payloads()
        if payloads:
            self._deliver(session, b"".join(payloads))
        if connection.closed:
            self._end(session, connection.close_reason or "eof")

    def _deliver(self, session: _Session, data: bytes) -> None:
        if self.on_payload is not None:
            self.on_payload(session.stream_key, data)
        try:
            tags = session.demuxer.feed(data)
        except Exception:
            log.exception("srt demux failed stream=%s", session.stream_key)
            session.connection.close(asyncio.get_running_loop().time(), "error: demux failed")
            return
        publisher = session.publisher
        if publisher is not None:
            for tag in tags:
                publisher.push(tag)

    def _end(self, session: _Session, reason: str) -> None:
        if self._by_socket.get(session.connection.socket_id) is not session:
            return
        del self._by_socket[session.connection.socket_id]
        self._by_peer.pop((session.address, session.connection.peer_socket), None)
        publisher, session.publisher = session.publisher, None
        if publisher is not None:
            for tag in session.demuxer.flush():
                publisher.push(tag)
            publisher.close(reason)
        stats = session.connection.stats()
        log.info("srt publisher closed remote=%s stream=%s reason=%s received=%d lost=%d "
                 "retransmitted=%d dropped=%d rtt_ms=%.1f", session.remote, session.stream_key,
                 reason, stats.packets_received, stats.packets_lost, stats.retransmitted,
                 stats.dropped, stats.rtt_ms)

    def _kick(self, holder: list[_Session], reason: str) -> None:
        """The broadcast hub drops this publisher (and closes its side itself)."""
        if not holder:
            return
        session = holder[0]
        session.publisher = None
        session.connection.close(asyncio.get_running_loop().time(), f"kicked: {reason}")
        self._pump(session)

    async def _tick_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Nobody connected: nothing to acknowledge or release, so tick rarely.
            await asyncio.sleep(self.tick_interval if self._by_socket else 0.25)
            now = loop.time()
            for session in list(self._by_socket.values()):
                session.connection.tick(now)
                self._pump(session)
            if self._rejections:
                for key, (_, expiry) in list(self._rejections.items()):
                    if expiry <= now:
                        del self._rejections[key]

    def _reject(self, hs: Handshake, address: Address, rejected: HandshakeRejected) -> None:
        answer = rejection(hs, rejected.reason, peer_ip=ip_field(address[0]))
        datagram = control(ControlType.HANDSHAKE, dest_socket=hs.socket_id, timestamp=0,
                           body=answer.encode()).encode()
        if len(self._rejections) < _MAX_REMEMBERED_REJECTIONS:
            now = asyncio.get_running_loop().time()
            self._rejections[(address, hs.socket_id)] = (datagram, now + _REJECTION_MEMORY)
        self._send(datagram, address)

    def _send_handshake(self, hs: Handshake, dest_socket: int, address: Address) -> None:
        self._send(control(ControlType.HANDSHAKE, dest_socket=dest_socket, timestamp=0,
                           body=hs.encode()).encode(), address)

    def _send(self, datagram: bytes, address: Address) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(datagram, address)

    def _new_socket_id(self) -> int:
        while True:
            candidate = random.getrandbits(31)
            if candidate and candidate not in self._by_socket:
                return candidate


class _SrtDatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SrtServer) -> None:
        self._server = server

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self._server.datagram_received(data, addr)  # type: ignore[arg-type]

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (a caller that went away) surface here; the idle timeout handles them.
        log.debug("srt socket error=%r", exc)


def _peer(address: Address) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
