"""One accepted SRT caller, after the handshake: its state machine (ingest).

Ties together decryption, the receiver and the control messages that are not the
receiver's business (keep-alive, shutdown, peer errors, key refresh). Sans-IO:
`receive(packet, now)` and `tick(now)` go in; datagrams to send and payloads to
deliver come out, and `closed`/`close_reason` say when it is over. `get_timer()`
says when `tick` is next due (the receiver's timers, a keep-alive, the idle timeout).
"""

from __future__ import annotations

from dataclasses import dataclass

from golive.ingest.srt.crypto import BadSecret, KmState, PayloadDecryptor, km_error
from golive.ingest.srt.handshake import Handshake, HandshakeType
from golive.ingest.srt.packet import (
    TIMESTAMP_MODULUS,
    ControlPacket,
    ControlType,
    DataPacket,
    DropRequest,
    KeyFlag,
    Packet,
    SrtError,
    UserSubtype,
    control,
)
from golive.ingest.srt.receiver import Receiver

KEEPALIVE_INTERVAL = 1.0
IDLE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """What golive reports about a live SRT publisher."""

    rtt_ms: float
    rtt_var_ms: float
    packets_received: int
    bytes_received: int
    packets_lost: int
    retransmitted: int
    dropped: int
    buffer_packets: int
    buffer_ms: float
    receive_rate_bps: float
    latency_ms: int
    encrypted: bool
    undecryptable: int


class SrtConnection:
    def __init__(
        self,
        *,
        socket_id: int,
        peer_socket: int,
        initial_seq: int,
        latency: float,
        flow_window: int,
        time_base: float,
        now: float,
        handshake_response: bytes,
        decryptor: PayloadDecryptor | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.socket_id = socket_id
        self.peer_socket = peer_socket
        self.latency = latency
        self.idle_timeout = idle_timeout
        self.closed = False
        self.close_reason: str | None = None
        self._start = now
        self._decryptor = decryptor
        self._handshake_response = handshake_response
        self._receiver = Receiver(initial_seq=initial_seq, latency=latency,
                                  flow_window=flow_window, time_base=time_base,
                                  peer_socket=peer_socket, start=now)
        self._out: list[bytes] = []
        self._last_received = now
        self._last_sent = now

    # Inputs ------------------------------------------------------------------------------

    def receive(self, packet: Packet, now: float) -> None:
        if self.closed:
            return
        self._last_received = now
        if isinstance(packet, DataPacket):
            self._receive_data(packet, now)
            self._collect(now)
            return
        kind = packet.type
        if kind == ControlType.ACKACK:
            self._receiver.on_ackack(packet.info, now)
        elif kind == ControlType.HANDSHAKE:
            # Our conclusion response was lost and the caller asks again.
            try:
                repeated = Handshake.decode(packet.body).type == HandshakeType.CONCLUSION
            except SrtError:
                repeated = False
            if repeated:
                self._send_raw(self._handshake_response, now)
        elif kind == ControlType.SHUTDOWN:
            self._finish("unpublish")
        elif kind == ControlType.DROPREQ:
            try:
                drop = DropRequest.decode(packet.body)
            except SrtError:
                return
            self._receiver.on_drop_request(drop.first_seq, drop.last_seq)
        elif kind == ControlType.PEERERROR:
            self._finish(f"error: peer reported error {packet.info}")
        elif kind == ControlType.USER_DEFINED and packet.subtype == UserSubtype.KMREQ:
            self._refresh_keys(packet.body, now)
        # KEEPALIVE only refreshes _last_received; ACK/NAK/congestion warnings concern a
        # sender, which this side is not.

    def get_timer(self) -> float | None:
        """When `tick` next has work; None once closed."""
        if self.closed:
            return None
        # The same sums as in `tick`, so a tick at this time always does the work.
        return min(self._receiver.get_timer(), self._last_sent + KEEPALIVE_INTERVAL,
                   self._last_received + self.idle_timeout)

    def tick(self, now: float) -> None:
        if self.closed:
            return
        if now >= self._last_received + self.idle_timeout:
            self._finish("timeout")
            return
        self._receiver.tick(now)
        self._collect(now)
        if now >= self._last_sent + KEEPALIVE_INTERVAL:
            self._send(control(ControlType.KEEPALIVE, dest_socket=self.peer_socket,
                               timestamp=self._timestamp(now)), now)

    def close(self, now: float, reason: str) -> None:
        """Close from our side: tell the caller, deliver what is buffered."""
        if self.closed:
            return
        self._send(control(ControlType.SHUTDOWN, dest_socket=self.peer_socket,
                           timestamp=self._timestamp(now), body=bytes(4)), now)
        self._finish(reason)

    # Outputs -----------------------------------------------------------------------------

    def take_datagrams(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def take_payloads(self) -> list[bytes]:
        return self._receiver.take_payloads()

    def stats(self) -> ConnectionStats:
        r = self._receiver.stats()
        return ConnectionStats(
            rtt_ms=r.rtt_ms, rtt_var_ms=r.rtt_var_ms, packets_received=r.packets_received,
            bytes_received=r.bytes_received, packets_lost=r.packets_lost,
            retransmitted=r.retransmitted, dropped=r.dropped, buffer_packets=r.buffer_packets,
            buffer_ms=r.buffer_ms, receive_rate_bps=r.receive_rate_bps,
            latency_ms=round(self.latency * 1000), encrypted=self._decryptor is not None,
            undecryptable=self._decryptor.undecryptable if self._decryptor else 0,
        )

    # Internals ---------------------------------------------------------------------------

    def _receive_data(self, packet: DataPacket, now: float) -> None:
        payload: bytes | None = packet.payload
        if packet.key != KeyFlag.CLEAR:
            payload = (self._decryptor.decrypt(packet.seq, packet.key, packet.payload)
                       if self._decryptor is not None else None)
        # A payload we cannot decrypt still takes its place in the sequence, empty.
        self._receiver.on_data(packet, payload if payload is not None else b"", now)

    def _refresh_keys(self, body: bytes, now: float) -> None:
        if self._decryptor is None:
            answer = km_error(KmState.NOSECRET)
        else:
            try:
                answer = self._decryptor.accept(body)
            except BadSecret:
                answer = km_error(KmState.BADSECRET)
            except SrtError:
                return
        self._send(control(ControlType.USER_DEFINED, subtype=UserSubtype.KMRSP,
                           dest_socket=self.peer_socket, timestamp=self._timestamp(now),
                           body=answer), now)

    def _collect(self, now: float) -> None:
        packets = self._receiver.take_packets()
        if packets:
            self._out.extend(p.encode() for p in packets)
            self._last_sent = now

    def _finish(self, reason: str) -> None:
        self.closed = True
        self.close_reason = reason
        self._receiver.flush()

    def _send(self, packet: ControlPacket, now: float) -> None:
        self._send_raw(packet.encode(), now)

    def _send_raw(self, datagram: bytes, now: float) -> None:
        self._out.append(datagram)
        self._last_sent = now

    def _timestamp(self, now: float) -> int:
        return int((now - self._start) * 1e6) % TIMESTAMP_MODULUS
