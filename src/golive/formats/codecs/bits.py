"""Bit and byte reading shared by the codec parsers (formats).

An MSB-first `BitReader` with Exp-Golomb and AV1 uvlc codes, RBSP unescaping, and
bounds-checked byte readers. Everything raises only `CodecError` when the data
ends early, so a publisher's bad bytes never escape as IndexError or struct.error.
"""

from __future__ import annotations

Buffer = bytes | bytearray | memoryview

_MAX_PICTURE_SIDE = 65536


class CodecError(ValueError):
    """A tag body or codec configuration record is malformed."""


# --------------------------------------------------------------------------------------
# Bit reading


class BitReader:
    """MSB-first bit reader with Exp-Golomb codes (H.264 9.1); raises CodecError at the end."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: Buffer) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._end = len(self._data) * 8

    @property
    def bits_left(self) -> int:
        return self._end - self._pos

    @property
    def position(self) -> int:
        """Bits read so far."""
        return self._pos

    def u(self, n: int) -> int:
        if n == 0:
            return 0
        pos = self._pos
        if pos + n > self._end:
            raise CodecError("bitstream ends early")
        first, last = pos >> 3, (pos + n + 7) >> 3
        chunk = int.from_bytes(self._data[first:last], "big")
        self._pos = pos + n
        return (chunk >> ((last - first) * 8 - (pos & 7) - n)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def skip(self, n: int) -> None:
        if self._pos + n > self._end:
            raise CodecError("bitstream ends early")
        self._pos += n

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise CodecError("Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)

    def uvlc(self) -> int:
        """AV1 uvlc() (4.10.3)."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros >= 32:
                return (1 << 32) - 1
        return self.u(zeros) + (1 << zeros) - 1


class BitWriter:
    """Fields written most significant bit first, as codec syntax tables list them."""

    __slots__ = ("value", "width")

    def __init__(self) -> None:
        self.value = 0
        self.width = 0  # bits written

    def put(self, value: int, width: int) -> None:
        self.value = (self.value << width) | value
        self.width += width

    def to_bytes(self) -> bytes:
        """What was written, zero bits after it to a whole byte."""
        pad = -self.width % 8
        return (self.value << pad).to_bytes((self.width + pad) // 8, "big")


def unescape_rbsp(nal: Buffer) -> bytes:
    """Drop emulation-prevention bytes (00 00 03 -> 00 00) from a NAL unit."""
    data = bytes(nal)
    if b"\x00\x00\x03" not in data:
        return data
    out = bytearray()
    i = 0
    while (j := data.find(b"\x00\x00\x03", i)) >= 0:
        out += data[i : j + 2]
        i = j + 3
    out += data[i:]
    return bytes(out)


def read_u8(data: Buffer, pos: int) -> int:
    if pos >= len(data):
        raise CodecError("record ends early")
    return data[pos]


def read_be(data: Buffer, pos: int, n: int) -> int:
    if pos + n > len(data):
        raise CodecError("record ends early")
    return int.from_bytes(data[pos : pos + n], "big")


def read_fourcc(data: Buffer, pos: int) -> str:
    if pos + 4 > len(data):
        raise CodecError("FourCC cut short")
    return bytes(data[pos : pos + 4]).decode("latin-1")


def checked_side(n: int, what: str) -> int:
    if n <= 0 or n > _MAX_PICTURE_SIDE:
        raise CodecError(f"implausible {what} {n}")
    return n


_SAR_TABLE = ((0, 0), (1, 1), (12, 11), (10, 11), (16, 11), (40, 33), (24, 11), (20, 11),
              (32, 11), (80, 33), (18, 11), (15, 11), (64, 33), (160, 99), (4, 3), (3, 2),
              (2, 1))


def read_sar(r: BitReader) -> tuple[int, int] | None:
    idc = r.u(8)
    if idc == 255:  # Extended_SAR
        return r.u(16), r.u(16)
    if 0 < idc < len(_SAR_TABLE):
        return _SAR_TABLE[idc]
    return None


def read_nal_list(data: Buffer, pos: int, count: int) -> tuple[tuple[bytes, ...], int]:
    units = []
    for _ in range(count):
        size = read_be(data, pos, 2)
        pos += 2
        if pos + size > len(data):
            raise CodecError("parameter set runs past the record")
        units.append(bytes(data[pos : pos + size]))
        pos += size
    return tuple(units), pos


def write_nal_list(units: tuple[bytes, ...]) -> bytes:
    """Parameter sets as decoder configuration records hold them: each behind a 16-bit length."""
    return b"".join(len(u).to_bytes(2, "big") + u for u in units)
