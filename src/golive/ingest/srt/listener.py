"""The SRT listener, sans-IO: every caller of one UDP port, from handshake to close (ingest).

`receive_datagram(data, address, now)` takes what arrived; `datagrams_to_send()`
and `next_event()` give back what to send and what happened; `get_timer()` says
when the listener next needs to run and `handle_timer(now)` runs it (aioquic's
shape: the asyncio shell arms one `call_at`, and with nobody connected nothing is
due). Datagrams are told apart by destination socket id and peer address; one from
an unknown peer, or with a socket id that is not that peer's, is dropped without
touching anyone else.

Inductions are answered with a SYN cookie and nothing is kept. A conclusion with a
valid cookie is budgeted per source (`admission.HandshakeBudget`), parsed, and
handed to the shell as `ConnectionRequested`; the shell checks the stream key and
passphrase (which needs the store and the hub) and answers with `accept()` or
`reject()`. Copies the caller retransmits meanwhile are ignored; after a rejection
they get the same answer again for a few seconds (`admission.RejectionMemory`).
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field

from golive.core import client_key, remote_of
from golive.ingest.srt.admission import HandshakeBudget, RejectionMemory
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
from golive.ingest.srt.packet import ControlPacket, ControlType, SrtError, control, parse_packet

Address = tuple[str, int] | tuple[str, int, int, int]
_CallerKey = tuple[Address, int]  # the caller's address and its own socket id


# Events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionRequested:
    """A caller concluded its handshake; answer with `accept(request_id)` or `reject`."""

    request_id: int
    remote: str
    request: ConclusionRequest


@dataclass(frozen=True, slots=True)
class ConnectionAccepted:
    socket_id: int
    remote: str
    stream_key: str
    latency_ms: int
    encrypted: bool


@dataclass(frozen=True, slots=True)
class ConnectionRejected:
    remote: str
    stream_key: str | None  # None when the stream id could not be read
    reason: RejectReason
    message: str


@dataclass(frozen=True, slots=True)
class MediaReady:
    """Payloads delivered in order at their TSBPD time (MPEG-TS for live callers)."""

    socket_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    socket_id: int
    reason: str
    stats: ConnectionStats


ListenerEvent = (ConnectionRequested | ConnectionAccepted | ConnectionRejected | MediaReady
                 | ConnectionClosed)


# The listener ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    handshake: Handshake
    request: ConclusionRequest
    address: Address
    remote: str
    time_base: float


@dataclass(eq=False, slots=True)
class _Session:
    address: Address
    remote: str
    stream_key: str
    connection: SrtConnection
    deadline: float | None = field(default=None)


@dataclass(frozen=True, slots=True)
class Security:
    """What the passphrase check agreed: the decryptor and the KMRSP, or neither."""

    decryptor: PayloadDecryptor | None = None
    km_response: bytes | None = None


def check_passphrase(request: ConclusionRequest, passphrase: str | None) -> Security:
    """Match the caller's key material against the stream's passphrase (None: no passphrase).

    Raises HandshakeRejected with the reason libsrt callers understand.
    """
    if not passphrase:
        if request.key_material is not None:
            raise HandshakeRejected(RejectReason.UNSECURE,
                                    "caller encrypts but the stream has no passphrase")
        return Security()
    if request.key_material is None:
        raise HandshakeRejected(RejectReason.UNSECURE, "the stream needs a passphrase")
    decryptor = PayloadDecryptor(passphrase, request.key_length)
    try:
        return Security(decryptor, decryptor.accept(request.key_material))
    except BadSecret:
        raise HandshakeRejected(RejectReason.BADSECRET, "wrong passphrase") from None
    except SrtError as exc:
        raise HandshakeRejected(RejectReason.ROGUE, str(exc)) from None


class SrtListener:
    """Every SRT caller of one UDP port; see the module docstring for the flow."""

    def __init__(
        self,
        *,
        now: float,
        cookie_secret: bytes,
        latency: float = 0.120,
        flow_window: int = 8192,
        max_connections: int = 200,
        conclusions_per_source: float = 10.0,
        conclusion_burst_per_source: float = 20.0,
        conclusions_total: float = 50.0,
        idle_timeout: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.latency = latency
        self.flow_window = flow_window
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.ignored_datagrams = 0
        self.closing = False
        self.budget = HandshakeBudget(per_source=conclusions_per_source,
                                      source_burst=conclusion_burst_per_source,
                                      total=conclusions_total, now=now)
        self.rejections = RejectionMemory()
        self._cookies = SynCookies(cookie_secret)
        self._rng = rng or random.SystemRandom()
        self._sessions: dict[int, _Session] = {}
        self._by_caller: dict[_CallerKey, _Session] = {}
        self._pending: dict[int, _Pending] = {}
        self._pending_callers: dict[_CallerKey, int] = {}
        self._next_request = 1
        self._timers: list[tuple[float, int]] = []  # (deadline, socket id); stale ones skipped
        self._out: list[tuple[bytes, Address]] = []
        self._events: deque[ListenerEvent] = deque()

    # Inputs ------------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, address: Address, now: float) -> None:
        try:
            packet = parse_packet(data)
        except SrtError:
            self.ignored_datagrams += 1
            return
        if packet.dest_socket:
            session = self._sessions.get(packet.dest_socket)
            if session is not None and session.address == address:
                session.connection.receive(packet, now)
                self._collect(session)
                return
        if isinstance(packet, ControlPacket) and packet.type == ControlType.HANDSHAKE:
            try:
                self._handshake(packet, address, now)
            except SrtError:
                pass
            else:
                return
        self.ignored_datagrams += 1

    def accept(self, request_id: int, now: float, security: Security | None = None) -> int | None:
        """Let a requested caller in; returns its socket id, or None if the request is gone."""
        pending = self._pop_pending(request_id)
        if pending is None or self.closing:
            return None
        security = security or Security()
        request = pending.request
        socket_id = self._new_socket_id()
        latency_ms = max(round(self.latency * 1000), request.latency_ms)
        answer = conclusion_response(
            pending.handshake, socket_id=socket_id, latency_ms=latency_ms,
            flow_window=self.flow_window, mtu=1500, peer_ip=ip_field(pending.address[0]),
            km_response=security.km_response, encrypted=security.decryptor is not None)
        datagram = control(ControlType.HANDSHAKE, dest_socket=request.peer_socket, timestamp=0,
                           body=answer.encode()).encode()
        connection = SrtConnection(
            socket_id=socket_id, peer_socket=request.peer_socket,
            initial_seq=request.initial_seq, latency=latency_ms / 1000,
            flow_window=min(self.flow_window, request.flow_window),
            time_base=pending.time_base, now=now, handshake_response=datagram,
            decryptor=security.decryptor, idle_timeout=self.idle_timeout)
        session = _Session(pending.address, pending.remote, request.stream.key, connection)
        self._sessions[socket_id] = session
        self._by_caller[(pending.address, request.peer_socket)] = session
        self._out.append((datagram, pending.address))
        self._events.append(ConnectionAccepted(socket_id, pending.remote, request.stream.key,
                                               latency_ms, security.decryptor is not None))
        self._schedule(session)
        return socket_id

    def reject(self, request_id: int, rejected: HandshakeRejected, now: float) -> None:
        """Turn a requested caller away with `rejected.reason` (repeated for a few seconds)."""
        pending = self._pop_pending(request_id)
        if pending is not None:
            self._reject(pending.handshake, pending.address, pending.remote,
                         pending.request.stream.key, rejected, now)

    def close(self, socket_id: int, reason: str, now: float) -> None:
        """Close one connection from our side (the caller is told; buffered media delivered)."""
        session = self._sessions.get(socket_id)
        if session is not None:
            session.connection.close(now, reason)
            self._collect(session)

    def close_all(self, reason: str, now: float) -> None:
        """Stop: close every connection, forget requests, answer later conclusions with CLOSE."""
        self.closing = True
        for session in list(self._sessions.values()):
            session.connection.close(now, reason)
            self._collect(session)
        self._pending.clear()
        self._pending_callers.clear()

    # Timers ------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When `handle_timer` is next due; None when nothing is (nobody connected)."""
        timers = self._timers
        while timers:
            deadline, socket_id = timers[0]
            session = self._sessions.get(socket_id)
            if session is not None and session.deadline == deadline:
                break
            heapq.heappop(timers)  # superseded by a later schedule, or the session ended
        due = timers[0][0] if timers else None
        forget = self.rejections.get_timer()
        if forget is not None and (due is None or forget < due):
            due = forget
        return due

    def handle_timer(self, now: float) -> None:
        due: list[_Session] = []
        while self._timers and self._timers[0][0] <= now:
            deadline, socket_id = heapq.heappop(self._timers)
            session = self._sessions.get(socket_id)
            if session is not None and session.deadline == deadline:
                session.deadline = None
                due.append(session)
        # Ticked after the heap is drained, so one call runs each session at most once.
        for session in due:
            session.connection.tick(now)
            self._collect(session)
        self.rejections.expire(now)

    # Outputs -----------------------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> ListenerEvent | None:
        return self._events.popleft() if self._events else None

    def stats(self, socket_id: int) -> ConnectionStats | None:
        session = self._sessions.get(socket_id)
        return session.connection.stats() if session is not None else None

    @property
    def connection_count(self) -> int:
        return len(self._sessions)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    # Handshakes --------------------------------------------------------------------------

    def _handshake(self, packet: ControlPacket, address: Address, now: float) -> None:
        hs = Handshake.decode(packet.body)
        peer = _peer(address)
        if hs.type == HandshakeType.INDUCTION:
            # Stateless: the cookie carries everything the conclusion will be checked against.
            answer = induction_response(hs, cookie=self._cookies.make(peer, now),
                                        peer_ip=ip_field(address[0]))
            self._send_handshake(answer, hs.socket_id, address)
            return
        if hs.type != HandshakeType.CONCLUSION:
            raise SrtError(f"unexpected handshake type {hs.type:#x}")
        caller = (address, hs.socket_id)
        session = self._by_caller.get(caller)
        if session is not None:  # our answer was lost; the connection repeats it
            session.connection.receive(packet, now)
            self._collect(session)
            return
        if caller in self._pending_callers:
            return
        remembered = self.rejections.recall(caller, now)
        if remembered is not None:
            self._out.append((remembered, address))
            return
        if not self._cookies.check(peer, hs.cookie, now):
            raise SrtError("conclusion with a wrong cookie")
        if not self.budget.allow(client_key(address[0]), now):
            return  # the caller retransmits its conclusion; one of those may fit
        try:
            request = parse_conclusion(hs)
        except HandshakeRejected as rejected:
            self._reject(hs, address, peer, None, rejected, now)
            return
        if self.closing:
            self._reject(hs, address, peer, request.stream.key,
                         HandshakeRejected(RejectReason.CLOSE, "server closing"), now)
            return
        if len(self._sessions) + len(self._pending) >= self.max_connections:
            self._reject(hs, address, peer, request.stream.key,
                         HandshakeRejected(RejectReason.BACKLOG, "too many callers"), now)
            return
        request_id = self._next_request
        self._next_request += 1
        self._pending[request_id] = _Pending(hs, request, address, peer,
                                             time_base=now - packet.timestamp / 1e6)
        self._pending_callers[caller] = request_id
        self._events.append(ConnectionRequested(request_id, peer, request))

    def _pop_pending(self, request_id: int) -> _Pending | None:
        pending = self._pending.pop(request_id, None)
        if pending is not None:
            self._pending_callers.pop((pending.address, pending.handshake.socket_id), None)
        return pending

    def _reject(self, hs: Handshake, address: Address, remote: str, stream_key: str | None,
                rejected: HandshakeRejected, now: float) -> None:
        answer = rejection(hs, rejected.reason, peer_ip=ip_field(address[0]))
        datagram = control(ControlType.HANDSHAKE, dest_socket=hs.socket_id, timestamp=0,
                           body=answer.encode()).encode()
        self.rejections.remember((address, hs.socket_id), datagram, now)
        self._out.append((datagram, address))
        self._events.append(ConnectionRejected(remote, stream_key, rejected.reason,
                                               rejected.message))

    def _send_handshake(self, hs: Handshake, dest_socket: int, address: Address) -> None:
        self._out.append((control(ControlType.HANDSHAKE, dest_socket=dest_socket, timestamp=0,
                                  body=hs.encode()).encode(), address))

    def _new_socket_id(self) -> int:
        while True:
            candidate = self._rng.getrandbits(31)
            if candidate and candidate not in self._sessions:
                return candidate

    # Connections -------------------------------------------------------------------------

    def _collect(self, session: _Session) -> None:
        """Take what a connection produced after an input, and reschedule it."""
        connection = session.connection
        address = session.address
        for datagram in connection.take_datagrams():
            self._out.append((datagram, address))
        payloads = connection.take_payloads()
        if payloads:
            self._events.append(MediaReady(connection.socket_id, b"".join(payloads)))
        if connection.closed:
            self._end(session)
        else:
            self._schedule(session)

    def _schedule(self, session: _Session) -> None:
        deadline = session.connection.get_timer()
        if deadline == session.deadline:
            return
        session.deadline = deadline
        if deadline is not None:
            heapq.heappush(self._timers, (deadline, session.connection.socket_id))
            # Superseded entries are skipped lazily; keep them from piling up behind the top.
            if len(self._timers) > 4 * len(self._sessions) + 64:
                self._timers = [(s.deadline, i) for i, s in self._sessions.items()
                                if s.deadline is not None]
                heapq.heapify(self._timers)

    def _end(self, session: _Session) -> None:
        connection = session.connection
        if self._sessions.get(connection.socket_id) is not session:
            return
        del self._sessions[connection.socket_id]
        self._by_caller.pop((session.address, connection.peer_socket), None)
        session.deadline = None
        self._events.append(ConnectionClosed(connection.socket_id,
                                             connection.close_reason or "eof",
                                             connection.stats()))


def _peer(address: Address) -> str:
    return remote_of(address[0], address[1])
