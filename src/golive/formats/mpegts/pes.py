"""MPEG-TS PES packets: reassembly from transport packets and the PES header (ingest).

ISO/IEC 13818-1 2.4.3.6. `PesTrack` gathers one elementary stream's payloads into
whole PES packets, bounded by a maximum size, and reads each one's PTS and DTS.
A video PES may declare length 0 (unbounded): it ends where the next one starts.
Damage is counted in `TsStats`, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass

from golive.formats.mpegts.packets import PidState
from golive.formats.mpegts.psi import ElementaryStream
from golive.formats.mpegts.stats import TsStats

# stream_ids whose PES packets have no optional header (2.4.3.7): padding, private 2, ...
_NO_PES_HEADER = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})


@dataclass(frozen=True, slots=True)
class Pes:
    """One whole PES packet's timestamps (90 kHz, 33 bits) and elementary stream bytes."""

    pts: int | None
    dts: int | None  # the PTS when the header carries no DTS
    payload: bytes


def _read_timestamp(data: bytes, pos: int) -> int:
    return (((data[pos] >> 1) & 0x07) << 30) | (data[pos + 1] << 22) | \
        ((data[pos + 2] >> 1) << 15) | (data[pos + 3] << 7) | (data[pos + 4] >> 1)


def parse_pes(data: bytes, stats: TsStats) -> Pes | None:
    """Read a whole PES packet; None (counted if damaged) when it carries nothing to use."""
    if len(data) < 9 or data[:3] != b"\x00\x00\x01":
        stats.pes_errors += 1
        return None
    if data[3] in _NO_PES_HEADER:
        return None
    flags = data[7] >> 6
    start = 9 + data[8]
    if data[6] & 0xC0 != 0x80 or start > len(data) or flags == 1 \
            or (flags & 0x02 and data[8] < 5) or (flags == 3 and data[8] < 10):
        stats.pes_errors += 1
        return None
    pts = _read_timestamp(data, 9) if flags & 0x02 else None
    dts = _read_timestamp(data, 14) if flags == 3 else pts
    return Pes(pts, dts, data[start:])


class PesTrack(PidState):
    """Reassembles the PES packets of one elementary stream."""

    __slots__ = ("active", "buf", "expected", "stream_type")

    def __init__(self, es: ElementaryStream) -> None:
        super().__init__(es.pid)
        self.stream_type = es.stream_type
        self.buf = bytearray()
        self.active = False
        self.expected = -1  # total PES size; 0 = unbounded (video), -1 = header not seen yet

    def reset(self) -> None:
        self.buf = bytearray()
        self.active = False
        self.expected = -1

    def drop(self, stats: TsStats) -> None:
        """Give up the PES being gathered (packets were lost, or it is too large)."""
        stats.pes_dropped += 1
        self.reset()

    def push(self, payload: bytes, pusi: bool, max_size: int, stats: TsStats) -> list[Pes]:
        """One packet's payload; the PES packets it completes, in order."""
        out: list[Pes] = []
        if pusi:
            if self.active:
                if self.expected == 0:
                    self._finish(stats, out)
                else:  # the declared length was not reached: packets are missing
                    self.drop(stats)
            self.buf = bytearray(payload)
            self.active = True
            self.expected = -1
        elif self.active:
            self.buf += payload
        else:
            return out  # joined mid-PES, or dropping the rest of a damaged one
        buf = self.buf
        if self.expected < 0 and len(buf) >= 6:
            if buf[0] != 0 or buf[1] != 0 or buf[2] != 1:
                stats.pes_errors += 1
                self.drop(stats)
                return out
            length = (buf[4] << 8) | buf[5]
            self.expected = 6 + length if length else 0
        if len(buf) > max_size:
            stats.pes_oversized += 1
            self.drop(stats)
        elif self.expected > 0 and len(buf) >= self.expected:
            self._finish(stats, out)
        return out

    def end(self, stats: TsStats) -> list[Pes]:
        """End of stream: an unbounded PES is complete, a bounded one was cut short."""
        out: list[Pes] = []
        if self.active:
            if self.expected == 0:
                self._finish(stats, out)
            else:
                self.drop(stats)
        return out

    def _finish(self, stats: TsStats, out: list[Pes]) -> None:
        data = bytes(self.buf[: self.expected] if self.expected > 0 else self.buf)
        self.reset()
        pes = parse_pes(data, stats)
        if pes is not None:
            out.append(pes)
