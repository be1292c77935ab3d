"""The SRT receiving side of one connection: buffer, loss recovery, ACKs, TSBPD (ingest).

Sans-IO: the connection hands in data packets, ACKACKs and drop requests with the
time they arrived; `get_timer()` says when the receiver next has something to do
(a full ACK on the 10 ms SYN interval, a periodic NAK while packets are missing,
the next TSBPD delivery) and `tick(now)` does it. The receiver queues control
packets to send (ACK, NAK) and payloads to deliver, in sequence order, each at its
timestamp plus the negotiated latency (TSBPD). A packet still missing when a later
one is due is given up (too-late drop). Time is in seconds.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from golive.ingest.srt.loss import LossList
from golive.ingest.srt.packet import (
    SEQ_MASK,
    TIMESTAMP_MODULUS,
    Ack,
    ControlPacket,
    ControlType,
    DataPacket,
    control,
    encode_loss_list,
    seq_diff,
)

ACK_INTERVAL = 0.010  # the SYN interval: one full ACK per 10 ms
LIGHT_ACK_PACKETS = 64
MIN_NAK_INTERVAL = 0.020
MAX_NAK_WORDS = 350  # keeps a NAK within one MTU
DRIFT_SAMPLES = 1000
DRIFT_THRESHOLD = 0.005
_MAX_PENDING_ACKS = 1024


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    rtt_ms: float
    rtt_var_ms: float
    packets_received: int
    bytes_received: int
    packets_lost: int  # gaps detected (each missing packet counted once)
    retransmitted: int  # packets that arrived with the R flag
    dropped: int  # given up: too late, or dropped by the sender
    duplicates: int
    buffer_packets: int
    buffer_ms: float
    receive_rate_bps: float


class Receiver:
    def __init__(
        self,
        *,
        initial_seq: int,
        latency: float,
        flow_window: int,
        time_base: float,
        peer_socket: int,
        start: float,
    ) -> None:
        self.latency = latency
        self.flow_window = flow_window
        self.peer_socket = peer_socket
        self._start = start  # our clock's zero for the timestamps we send
        self._time_base = time_base  # local time at which the peer's timestamp was 0
        self._drift = 0.0
        self._drift_sum = 0.0
        self._drift_count = 0
        self._next = initial_seq  # extended seq of the next packet to deliver
        self._max = initial_seq - 1  # highest extended seq received
        self._ack_point = initial_seq  # first seq not yet received contiguously
        self._last_ts = 0  # extended timestamp of the latest packet
        self._buffer: dict[int, tuple[int, bytes]] = {}
        self._loss = LossList()
        self._out: list[ControlPacket] = []
        self._delivered: list[bytes] = []
        # ACK bookkeeping
        self._ack_number = 0
        self._acks_sent: OrderedDict[int, float] = OrderedDict()
        self._last_full_ack_point = -1
        self._last_full_ack_time = -1e9
        self._next_ack_time = start
        self._since_ack = 0
        self._next_nak_time = start
        self.rtt = 0.100
        self.rtt_var = 0.050
        self._rtt_measured = False
        # rates
        self._rate_window_start = start
        self._rate_packets = 0
        self._rate_bytes = 0
        self.packet_rate = 0.0
        self.byte_rate = 0.0
        self._probe_time: float | None = None
        self._probe_intervals: list[float] = []
        # counters
        self.packets_received = 0
        self.bytes_received = 0
        self.packets_lost = 0
        self.retransmitted = 0
        self.dropped = 0
        self.duplicates = 0
        self.belated = 0
        self.outside_window = 0
        self._now = start  # the latest time handed in: "due at once" for get_timer

    # Inputs ------------------------------------------------------------------------------

    def on_data(self, packet: DataPacket, payload: bytes, now: float) -> None:
        self._now = now
        seq = self._max + seq_diff(packet.seq, self._max & SEQ_MASK)
        if seq < self._next:
            self.belated += 1
            return
        if seq >= self._next + self.flow_window:
            self.outside_window += 1
            return
        if seq in self._buffer:
            self.duplicates += 1
            return
        ts = self._last_ts + _ts_diff(packet.timestamp, self._last_ts)
        if seq > self._max:
            if seq > self._max + 1:
                first, last = self._max + 1, seq - 1
                self._loss.add(first, last)
                self.packets_lost += last - first + 1
                self._send_nak([(first, last)], now)
            self._max = seq
            self._last_ts = ts
        else:
            self._loss.remove(seq)
        if packet.retransmitted:
            self.retransmitted += 1
        else:
            self._track_drift(now, ts)
        self._probe(seq, now)
        self._buffer[seq] = (ts, payload)
        self.packets_received += 1
        self.bytes_received += len(payload)
        self._rate_packets += 1
        self._rate_bytes += len(payload)
        if seq == self._ack_point:
            self._advance_ack_point()
        self._since_ack += 1
        if self._since_ack >= LIGHT_ACK_PACKETS:
            self._since_ack = 0
            self._emit(ControlType.ACK, now, 0, Ack(self._ack_point).encode())

    def on_ackack(self, ack_number: int, now: float) -> None:
        self._now = now
        sent = self._acks_sent.pop(ack_number, None)
        if sent is None:
            return
        sample = max(now - sent, 0.0)
        if not self._rtt_measured:
            self._rtt_measured = True
            self.rtt, self.rtt_var = sample, sample / 2
        else:
            self.rtt_var = 0.75 * self.rtt_var + 0.25 * abs(self.rtt - sample)
            self.rtt = 0.875 * self.rtt + 0.125 * sample

    def on_drop_request(self, first: int, last: int) -> None:
        """The sender will not send [first, last] (31-bit) again: stop asking for it."""
        start = self._max + seq_diff(first, self._max & SEQ_MASK)
        end = start + seq_diff(last, first)
        self._loss.remove_range(max(start, self._next), end)
        self._skip_abandoned()

    # Timers ------------------------------------------------------------------------------

    def get_timer(self) -> float:
        """When `tick` next has work: a full ACK, a periodic NAK or a TSBPD delivery."""
        due = self._next_ack_time
        if self._ack_point == self._last_full_ack_point:
            due = max(due, self._ack_quiet_until())
        if self._loss:
            due = min(due, self._next_nak_time)
        release = self._release_due()
        return due if release is None else min(due, release)

    def tick(self, now: float) -> None:
        self._now = now
        self._release(now)
        if now >= self._next_ack_time:
            self._next_ack_time = now + ACK_INTERVAL
            self._full_ack(now)
        if now >= self._next_nak_time:
            self._next_nak_time = now + max(MIN_NAK_INTERVAL, (self.rtt + 4 * self.rtt_var) / 2)
            if self._loss:
                self._send_nak(list(self._loss.ranges()), now)

    def flush(self) -> None:
        """The peer is gone: deliver whatever is buffered, in order, skipping the holes."""
        for seq in sorted(self._buffer):
            self._delivered.append(self._buffer.pop(seq)[1])
        self._next = self._max + 1

    # Outputs -----------------------------------------------------------------------------

    def take_packets(self) -> list[ControlPacket]:
        out, self._out = self._out, []
        return out

    def take_payloads(self) -> list[bytes]:
        out, self._delivered = self._delivered, []
        return out

    def stats(self) -> ReceiverStats:
        buffer_ms = 0.0
        if self._buffer:
            stamps = [ts for ts, _ in self._buffer.values()]
            buffer_ms = (max(stamps) - min(stamps)) / 1000
        return ReceiverStats(
            rtt_ms=self.rtt * 1000, rtt_var_ms=self.rtt_var * 1000,
            packets_received=self.packets_received, bytes_received=self.bytes_received,
            packets_lost=self.packets_lost, retransmitted=self.retransmitted,
            dropped=self.dropped, duplicates=self.duplicates,
            buffer_packets=len(self._buffer), buffer_ms=buffer_ms,
            receive_rate_bps=self.byte_rate * 8,
        )

    def delivery_time(self, timestamp_us: int) -> float:
        return self._time_base + timestamp_us / 1e6 + self.latency + self._drift

    # Internals ---------------------------------------------------------------------------

    def _release_due(self) -> float | None:
        """When the head of the buffer is due: its own delivery, or that of the packet
        after a hole (too-late drop); None while there is nothing to wait for."""
        if self._next > self._max:
            return None
        entry = self._buffer.get(self._next)
        if entry is not None:
            return self.delivery_time(entry[0])
        if self._next not in self._loss:
            return self._now  # abandoned by the sender: skip it at once
        later = self._first_buffered_after(self._next)
        return None if later is None else self.delivery_time(self._buffer[later][0])

    def _skip_abandoned(self) -> None:
        """Step over packets at the head the sender dropped: nothing to wait for."""
        while (self._next <= self._max and self._next not in self._buffer
               and self._next not in self._loss):
            self.dropped += 1
            self._next += 1
            self._sync_ack_point()

    def _release(self, now: float) -> None:
        while self._next <= self._max:
            entry = self._buffer.get(self._next)
            if entry is not None:
                if self.delivery_time(entry[0]) > now:
                    return
                del self._buffer[self._next]
                self._delivered.append(entry[1])
                self._next += 1
                continue
            if self._next not in self._loss:
                self._skip_abandoned()
                continue
            later = self._first_buffered_after(self._next)
            if later is None or self.delivery_time(self._buffer[later][0]) > now:
                return
            # Too late: the packet after the hole is due, so the hole is given up.
            self.dropped += later - self._next
            self._loss.remove_below(later)
            self._next = later
            self._sync_ack_point()

    def _first_buffered_after(self, seq: int) -> int | None:
        seq += 1
        while seq <= self._max:
            if seq in self._buffer:
                return seq
            end = self._loss.end_of(seq)
            seq = seq + 1 if end is None else end + 1
        return None

    def _sync_ack_point(self) -> None:
        if self._ack_point < self._next:
            self._ack_point = self._next
        self._advance_ack_point()

    def _advance_ack_point(self) -> None:
        while self._ack_point in self._buffer:
            self._ack_point += 1

    def _full_ack(self, now: float) -> None:
        # Nothing new to acknowledge: repeat the ACK only once per RTT + 4 * RTTVar.
        if self._ack_point == self._last_full_ack_point and now < self._ack_quiet_until():
            return
        self._update_rates(now)
        self._ack_number = (self._ack_number + 1) & 0x7FFFFFFF or 1
        self._acks_sent[self._ack_number] = now
        while len(self._acks_sent) > _MAX_PENDING_ACKS:
            self._acks_sent.popitem(last=False)
        capacity = 0
        if self._probe_intervals:
            median = sorted(self._probe_intervals)[len(self._probe_intervals) // 2]
            capacity = int(1 / median) if median > 0 else 0
        ack = Ack(
            last_ack_seq=self._ack_point,
            rtt_us=int(self.rtt * 1e6),
            rtt_var_us=int(self.rtt_var * 1e6),
            available_buffer=max(2, self.flow_window - len(self._buffer)),
            packet_rate=int(self.packet_rate),
            link_capacity=capacity,
            receive_rate=int(self.byte_rate),
        )
        self._emit(ControlType.ACK, now, self._ack_number, ack.encode())
        self._last_full_ack_point = self._ack_point
        self._last_full_ack_time = now
        self._since_ack = 0

    def _ack_quiet_until(self) -> float:
        return self._last_full_ack_time + self.rtt + 4 * self.rtt_var

    def _send_nak(self, ranges: list[tuple[int, int]], now: float) -> None:
        chosen: list[tuple[int, int]] = []
        size = 0
        for first, last in ranges:
            size += 1 if first == last else 2
            if size > MAX_NAK_WORDS:
                break
            chosen.append((first, last))
        self._emit(ControlType.NAK, now, 0, encode_loss_list(chosen))

    def _emit(self, type: ControlType, now: float, info: int, body: bytes) -> None:
        timestamp = int((now - self._start) * 1e6) % TIMESTAMP_MODULUS
        self._out.append(control(type, dest_socket=self.peer_socket, timestamp=timestamp,
                                 info=info, body=body))

    def _update_rates(self, now: float) -> None:
        elapsed = now - self._rate_window_start
        if elapsed < 0.1:
            return
        packets, octets = self._rate_packets / elapsed, self._rate_bytes / elapsed
        first = self.packet_rate == 0.0
        self.packet_rate = packets if first else 0.875 * self.packet_rate + 0.125 * packets
        self.byte_rate = octets if first else 0.875 * self.byte_rate + 0.125 * octets
        self._rate_window_start = now
        self._rate_packets = self._rate_bytes = 0

    def _probe(self, seq: int, now: float) -> None:
        # Packet pairs: the sender sends every 16th packet and the next back to back, so
        # their spacing on arrival measures the link.
        if seq % 16 == 0:
            self._probe_time = now
        elif seq % 16 == 1 and self._probe_time is not None:
            self._probe_intervals.append(now - self._probe_time)
            del self._probe_intervals[:-16]
            self._probe_time = None
        else:
            self._probe_time = None

    def _track_drift(self, now: float, ts: int) -> None:
        # How late (or early) packets arrive against the time base, averaged; a steady
        # offset beyond a few milliseconds means the clocks drift, so the base moves.
        self._drift_sum += now - (self._time_base + ts / 1e6 + self._drift)
        self._drift_count += 1
        if self._drift_count >= DRIFT_SAMPLES:
            average = self._drift_sum / self._drift_count
            if abs(average) > DRIFT_THRESHOLD:
                self._drift += average
            self._drift_sum, self._drift_count = 0.0, 0


def _ts_diff(ts: int, reference: int) -> int:
    """`ts - reference` for 32-bit microsecond timestamps that wrap."""
    d = (ts - reference) % TIMESTAMP_MODULUS
    return d - TIMESTAMP_MODULUS if d >= TIMESTAMP_MODULUS // 2 else d
