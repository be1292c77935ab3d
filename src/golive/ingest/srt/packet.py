"""SRT packet codec: data and control packets, sequence numbers, loss lists (ingest).

Layouts follow draft-sharabayko-srt section 3. Every parser here raises only
`SrtError` for malformed input, so a datagram from anywhere can be handed to it.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass

HEADER_SIZE = 16
SEQ_MODULUS = 1 << 31
SEQ_MASK = SEQ_MODULUS - 1
MSGNO_MASK = (1 << 26) - 1
TIMESTAMP_MODULUS = 1 << 32
LOSS_RANGE_FLAG = 0x80000000

_HEADER = struct.Struct(">IIII")
_WORD = struct.Struct(">I")


class SrtError(Exception):
    """A datagram or handshake that does not follow the SRT protocol."""


class ControlType(enum.IntEnum):
    HANDSHAKE = 0x0000
    KEEPALIVE = 0x0001
    ACK = 0x0002
    NAK = 0x0003
    CONGESTION_WARNING = 0x0004
    SHUTDOWN = 0x0005
    ACKACK = 0x0006
    DROPREQ = 0x0007
    PEERERROR = 0x0008
    USER_DEFINED = 0x7FFF


class UserSubtype(enum.IntEnum):
    """Subtypes of USER_DEFINED control packets that carry SRT extension messages."""

    HSREQ = 1
    HSRSP = 2
    KMREQ = 3
    KMRSP = 4


class Position(enum.IntEnum):
    """PP bits: where the packet sits in its message (live mode sends SOLO)."""

    MIDDLE = 0b00
    LAST = 0b01
    FIRST = 0b10
    SOLO = 0b11


class KeyFlag(enum.IntEnum):
    """KK bits of a data packet: which session key encrypted the payload."""

    CLEAR = 0b00
    EVEN = 0b01
    ODD = 0b10


# Sequence numbers ------------------------------------------------------------------------


def seq_add(seq: int, n: int) -> int:
    return (seq + n) & SEQ_MASK


def seq_diff(a: int, b: int) -> int:
    """`a - b` on the 31-bit circle, in [-2**30, 2**30)."""
    d = (a - b) & SEQ_MASK
    return d - SEQ_MODULUS if d >= SEQ_MODULUS // 2 else d


def seq_less(a: int, b: int) -> bool:
    return seq_diff(a, b) < 0


# Packets ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataPacket:
    seq: int
    position: Position
    in_order: bool
    key: KeyFlag
    retransmitted: bool
    message_number: int
    timestamp: int
    dest_socket: int
    payload: bytes

    def encode(self) -> bytes:
        word1 = (
            (self.position << 30)
            | (int(self.in_order) << 29)
            | (self.key << 27)
            | (int(self.retransmitted) << 26)
            | (self.message_number & MSGNO_MASK)
        )
        return _HEADER.pack(self.seq & SEQ_MASK, word1, self.timestamp, self.dest_socket) + self.payload


@dataclass(frozen=True, slots=True)
class ControlPacket:
    type: int
    subtype: int
    info: int
    timestamp: int
    dest_socket: int
    body: bytes = b""

    def encode(self) -> bytes:
        word0 = 0x80000000 | ((self.type & 0x7FFF) << 16) | (self.subtype & 0xFFFF)
        return _HEADER.pack(word0, self.info, self.timestamp, self.dest_socket) + self.body


Packet = DataPacket | ControlPacket


def parse_packet(datagram: bytes) -> Packet:
    if len(datagram) < HEADER_SIZE:
        raise SrtError(f"datagram of {len(datagram)} bytes is shorter than an SRT header")
    word0, word1, timestamp, dest = _HEADER.unpack_from(datagram)
    if word0 & 0x80000000:
        return ControlPacket(
            type=(word0 >> 16) & 0x7FFF,
            subtype=word0 & 0xFFFF,
            info=word1,
            timestamp=timestamp,
            dest_socket=dest,
            body=bytes(datagram[HEADER_SIZE:]),
        )
    key = (word1 >> 27) & 0b11
    if key == 0b11:
        raise SrtError("data packet with both key flags set")
    return DataPacket(
        seq=word0,
        position=Position(word1 >> 30),
        in_order=bool(word1 & (1 << 29)),
        key=KeyFlag(key),
        retransmitted=bool(word1 & (1 << 26)),
        message_number=word1 & MSGNO_MASK,
        timestamp=timestamp,
        dest_socket=dest,
        payload=bytes(datagram[HEADER_SIZE:]),
    )


def words(body: bytes, what: str) -> tuple[int, ...]:
    """The body as big-endian 32-bit words; it must be a whole number of them."""
    if len(body) % 4:
        raise SrtError(f"{what} body of {len(body)} bytes is not a whole number of words")
    return struct.unpack(f">{len(body) // 4}I", body)


# ACK -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ack:
    """ACK body. A light ACK carries only `last_ack_seq`; a full one carries all fields."""

    last_ack_seq: int
    rtt_us: int | None = None
    rtt_var_us: int | None = None
    available_buffer: int | None = None
    packet_rate: int | None = None
    link_capacity: int | None = None
    receive_rate: int | None = None

    def encode(self) -> bytes:
        fields = [self.last_ack_seq & SEQ_MASK]
        for value in (self.rtt_us, self.rtt_var_us, self.available_buffer,
                      self.packet_rate, self.link_capacity, self.receive_rate):
            if value is None:
                break
            fields.append(value & 0xFFFFFFFF)
        return struct.pack(f">{len(fields)}I", *fields)

    @classmethod
    def decode(cls, body: bytes) -> Ack:
        values = words(body, "ACK")
        if not values:
            raise SrtError("empty ACK")
        if values[0] & LOSS_RANGE_FLAG:
            raise SrtError("ACK sequence number has its high bit set")
        rest: list[int | None] = list(values[1:7])
        rest += [None] * (6 - len(rest))
        return cls(values[0], *rest)


# Loss lists (NAK bodies) -----------------------------------------------------------------


def encode_loss_list(ranges: Iterable[tuple[int, int]]) -> bytes:
    """Ranges of lost sequence numbers, inclusive; a range of one is a single word."""
    out: list[int] = []
    for first, last in ranges:
        if first == last:
            out.append(first & SEQ_MASK)
        else:
            out.append(LOSS_RANGE_FLAG | (first & SEQ_MASK))
            out.append(last & SEQ_MASK)
    return struct.pack(f">{len(out)}I", *out)


def decode_loss_list(body: bytes) -> list[tuple[int, int]]:
    values = words(body, "NAK")
    ranges: list[tuple[int, int]] = []
    i = 0
    while i < len(values):
        value = values[i]
        if value & LOSS_RANGE_FLAG:
            if i + 1 >= len(values):
                raise SrtError("NAK range start without an end")
            last = values[i + 1]
            if last & LOSS_RANGE_FLAG:
                raise SrtError("NAK range end has its high bit set")
            first = value & SEQ_MASK
            if seq_diff(last, first) < 0:
                raise SrtError("NAK range ends before it starts")
            ranges.append((first, last))
            i += 2
        else:
            ranges.append((value, value))
            i += 1
    return ranges


# Other control bodies --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DropRequest:
    """The sender gave up on these packets (message number in the header's info field)."""

    first_seq: int
    last_seq: int

    def encode(self) -> bytes:
        return struct.pack(">II", self.first_seq & SEQ_MASK, self.last_seq & SEQ_MASK)

    @classmethod
    def decode(cls, body: bytes) -> DropRequest:
        values = words(body[:8], "DROPREQ")
        if len(values) != 2 or (values[0] | values[1]) & LOSS_RANGE_FLAG:
            raise SrtError("malformed DROPREQ")
        if seq_diff(values[1], values[0]) < 0:
            raise SrtError("DROPREQ range ends before it starts")
        return cls(values[0], values[1])


def control(
    type: ControlType,
    *,
    dest_socket: int,
    timestamp: int,
    info: int = 0,
    body: bytes = b"",
    subtype: int = 0,
) -> ControlPacket:
    return ControlPacket(int(type), subtype, info & 0xFFFFFFFF,
                         timestamp % TIMESTAMP_MODULUS, dest_socket, body)
