"""MPEG-TS program-specific information: PAT and PMT sections and their CRC (ingest).

ISO/IEC 13818-1 2.4.4. `Section` reassembles one PID's sections across packets
and hands on each new, intact, current one; `parse_pat` and `parse_pmt` read them.
Damage is counted in `TsStats.psi_errors`, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass

from golive.formats.mpegts.packets import PidState
from golive.formats.mpegts.stats import TsStats

STREAM_TYPE_MPEG1_AUDIO = 0x03
STREAM_TYPE_MPEG2_AUDIO = 0x04
STREAM_TYPE_PRIVATE_PES = 0x06  # DVB: the codec is in a descriptor (AC-3: tag 0x6A)
STREAM_TYPE_AC3 = 0x81  # ATSC A/52
STREAM_TYPE_EAC3 = 0x87  # ATSC A/52 Annex E
STREAM_TYPE_AAC_ADTS = 0x0F
STREAM_TYPE_AAC_LATM = 0x11
STREAM_TYPE_H264 = 0x1B
STREAM_TYPE_HEVC = 0x24

TABLE_PAT = 0x00
TABLE_PMT = 0x02

_MAX_SECTION_LENGTH = 1021  # section_length limit for PAT and PMT (ISO/IEC 13818-1 2.4.4)


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i << 24
        for _ in range(8):
            crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (ISO/IEC 13818-1 Annex A); 0 over a whole section means it is intact."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    return crc


class Section(PidState):
    """Reassembles the PSI sections of one PID (they may span packets)."""

    __slots__ = ("active", "buf", "last")

    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self.buf = bytearray()
        self.active = False
        self.last: bytes | None = None  # the last section handed on, to skip repeats

    def reset(self) -> None:
        self.buf = bytearray()
        self.active = False

    def push(self, payload: bytes, pusi: bool, stats: TsStats) -> list[bytes]:
        """One packet's payload; the new sections it completes, in order."""
        out: list[bytes] = []
        if pusi:
            if not payload:
                return out
            pointer = payload[0]
            if 1 + pointer > len(payload):
                stats.psi_errors += 1
                self.reset()
                return out
            if self.active:
                self.buf += payload[1 : 1 + pointer]
                self._complete(stats, out)
            self.buf = bytearray(payload[1 + pointer :])
            self.active = True
        elif self.active:
            self.buf += payload
        else:
            return out
        self._complete(stats, out)
        return out

    def _complete(self, stats: TsStats, out: list[bytes]) -> None:
        buf = self.buf
        while self.active and len(buf) >= 3:
            if buf[0] == 0xFF:  # stuffing: no more sections in this packet
                self.reset()
                return
            length = ((buf[1] & 0x0F) << 8) | buf[2]
            if not 9 <= length <= _MAX_SECTION_LENGTH:
                stats.psi_errors += 1
                self.reset()
                return
            if len(buf) < 3 + length:
                return
            data = bytes(buf[: 3 + length])
            del buf[: 3 + length]
            if self._accept(data, stats):
                out.append(data)

    def _accept(self, data: bytes, stats: TsStats) -> bool:
        if data == self.last:
            return False  # PAT and PMT repeat every 100 ms or so
        if crc32_mpeg2(data) != 0:
            stats.psi_errors += 1
            return False
        if not data[1] & 0x80 or not data[5] & 0x01:  # long form, current_next_indicator
            return False
        self.last = data
        return True


def parse_pat(section: bytes) -> list[tuple[int, int]]:
    """(program_number, PMT PID) of each program a PAT section lists (0: the network PID)."""
    body = section[8:-4]
    return [((body[i] << 8) | body[i + 1], ((body[i + 2] & 0x1F) << 8) | body[i + 3])
            for i in range(0, len(body) - 3, 4)]


@dataclass(frozen=True, slots=True)
class ElementaryStream:
    pid: int
    stream_type: int
    opus_channels: int = 0
    """Opus (a private PES registered as "Opus"): its channel count, from the extension
    descriptor's channel_config_code (ETSI TS 102 366's Opus annex); 0 for anything else."""
    registration: bytes = b""
    """A private PES's format identifier (registration descriptor), e.g. b"Opus"."""


@dataclass(frozen=True, slots=True)
class PmtSection:
    """A PMT section: its program and the elementary streams it lists, in order."""

    program_number: int
    streams: tuple[ElementaryStream, ...]
    truncated: bool  # an ES_info loop ran past the section; the streams before it are kept


def parse_pmt(section: bytes) -> PmtSection:
    end = len(section) - 4
    pos = 12 + (((section[10] & 0x0F) << 8) | section[11])
    streams: list[ElementaryStream] = []
    truncated = False
    while pos + 5 <= end:
        stream_type = section[pos]
        pid = ((section[pos + 1] & 0x1F) << 8) | section[pos + 2]
        info = pos + 5
        pos = info + (((section[pos + 3] & 0x0F) << 8) | section[pos + 4])
        if pos > end:
            truncated = True
            break
        opus_channels, registration = 0, b""
        if stream_type == STREAM_TYPE_PRIVATE_PES:
            if _says_ac3(section[info:pos]):
                stream_type = STREAM_TYPE_AC3  # DVB's AC-3 signalling, as ATSC's stream type
            elif _says_eac3(section[info:pos]):
                stream_type = STREAM_TYPE_EAC3
            else:
                opus_channels = _opus_channels(section[info:pos])
                registration = next((body[:4] for tag, body in _descriptors(section[info:pos])
                                     if tag == 0x05), b"")
        streams.append(ElementaryStream(pid, stream_type, opus_channels, registration))
    return PmtSection((section[3] << 8) | section[4], tuple(streams), truncated)


def _descriptors(loop: bytes) -> list[tuple[int, bytes]]:
    found = []
    pos = 0
    while pos + 2 <= len(loop):
        tag, length = loop[pos], loop[pos + 1]
        found.append((tag, loop[pos + 2 : pos + 2 + length]))
        pos += 2 + length
    return found


def _opus_channels(loop: bytes) -> int:
    """Mono or stereo Opus (channel_config_code 1 or 2, mapping family 0): its channel
    count; 0 for no Opus, or a layout that needs a channel mapping table."""
    found = _descriptors(loop)
    if not any(tag == 0x05 and body[:4] == b"Opus" for tag, body in found):
        return 0
    codes = [body[1] for tag, body in found if tag == 0x7F and len(body) >= 2 and body[0] == 0x80]
    return codes[0] if codes and codes[0] in (1, 2) else 0


def _says_eac3(loop: bytes) -> bool:
    """DVB's enhanced AC-3 descriptor (0x7A), or a registration naming E-AC-3."""
    return any(tag == 0x7A or (tag == 0x05 and body[:4] == b"EAC3")
               for tag, body in _descriptors(loop))


def _says_ac3(loop: bytes) -> bool:
    """An ES_info loop with DVB's AC-3 descriptor (0x6A), or a registration descriptor
    (0x05) naming AC-3 (ATSC A/52 Annex A)."""
    return any(tag == 0x6A or (tag == 0x05 and body[:4] == b"AC-3")
               for tag, body in _descriptors(loop))
