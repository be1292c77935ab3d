"""MPEG-TS transport packets: the 4-byte header, the adaptation field and continuity (ingest).

ISO/IEC 13818-1 2.4.3. `read_packet` says what one 188-byte packet's header
declares and where its payload starts; `PidState` follows one PID's continuity
counter to tell duplicates and lost packets apart.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

PACKET_SIZE = 188
SYNC_BYTE = 0x47
PAT_PID = 0x0000
NULL_PID = 0x1FFF


@dataclass(frozen=True, slots=True)
class TsPacket:
    """What one transport packet's header and adaptation field declare."""

    pid: int
    transport_error: bool
    payload_unit_start: bool
    scrambled: bool
    has_payload: bool  # adaptation_field_control bit 0: else adaptation field only
    continuity_counter: int
    discontinuity: bool  # discontinuity_indicator: the counter may jump
    payload_start: int  # offset of the payload in the packet
    malformed: bool  # adaptation_field_control 0, or an adaptation field past the packet


def read_packet(pkt: bytes | memoryview) -> TsPacket:
    """Read the header of one `PACKET_SIZE`-byte packet (its sync byte already checked)."""
    b1, b3 = pkt[1], pkt[3]
    control = (b3 >> 4) & 0x03
    pos = 4
    discontinuity = False
    malformed = control == 0
    if control & 0x02:
        field_length = pkt[4]
        pos = 5 + field_length
        if pos > PACKET_SIZE:
            malformed = True
        else:
            discontinuity = field_length > 0 and bool(pkt[5] & 0x80)
    return TsPacket(
        pid=((b1 & 0x1F) << 8) | pkt[2],
        transport_error=bool(b1 & 0x80),
        payload_unit_start=bool(b1 & 0x40),
        scrambled=bool(b3 & 0xC0),
        has_payload=bool(control & 0x01),
        continuity_counter=b3 & 0x0F,
        discontinuity=discontinuity,
        payload_start=pos,
        malformed=malformed,
    )


class Continuity(enum.Enum):
    IN_ORDER = "in order"
    DUPLICATE = "duplicate"  # the same counter again: a retransmitted packet, to skip
    GAP = "gap"  # packets of this PID went missing


class PidState:
    """One PID being followed: the continuity counter of its last payload packet."""

    __slots__ = ("cc", "pid")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cc: int | None = None

    def advance(self, packet: TsPacket) -> Continuity:
        """Take a packet with a payload: is it the next one, a duplicate, or after a gap?"""
        last, self.cc = self.cc, packet.continuity_counter
        if last is None or packet.discontinuity:
            return Continuity.IN_ORDER
        if packet.continuity_counter == last:
            return Continuity.DUPLICATE
        if packet.continuity_counter != (last + 1) & 0x0F:
            return Continuity.GAP
        return Continuity.IN_ORDER
