"""ISO-BMFF box walking: box headers, child boxes and bounds-checked integers (packaging).

ISO/IEC 14496-12 4.2. Every reader checks its bounds and raises only
`IsobmffError`, so a malformed box never escapes as IndexError.
"""

from __future__ import annotations

from collections.abc import Iterator

MAX_BOX_SIZE = 64 * 1024 * 1024
"""Largest top-level box accepted; a live fragment is far smaller, and the reader buffers it."""


class IsobmffError(ValueError):
    """The byte stream is not a fragmented MP4 this reader can follow."""


def u8(data: bytes, offset: int, end: int) -> int:
    if offset + 1 > end:
        raise IsobmffError("box truncated")
    return data[offset]


def u16(data: bytes, offset: int, end: int) -> int:
    if offset + 2 > end:
        raise IsobmffError("box truncated")
    return int.from_bytes(data[offset : offset + 2], "big")


def u32(data: bytes, offset: int, end: int) -> int:
    if offset + 4 > end:
        raise IsobmffError("box truncated")
    return int.from_bytes(data[offset : offset + 4], "big")


def u64(data: bytes, offset: int, end: int) -> int:
    if offset + 8 > end:
        raise IsobmffError("box truncated")
    return int.from_bytes(data[offset : offset + 8], "big")


def box_header(data: bytes | bytearray, offset: int, end: int) -> tuple[str, int, int] | None:
    """(type, header size, box size) of the box at offset, or None if the header is incomplete."""
    if end - offset < 8:
        return None
    size = int.from_bytes(data[offset : offset + 4], "big")
    kind = bytes(data[offset + 4 : offset + 8]).decode("latin-1")
    header = 8
    if size == 1:
        if end - offset < 16:
            return None
        size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        header = 16
    elif size == 0:
        raise IsobmffError(
            f"box {kind!r} runs to the end of the stream, which a live stream has not"
        )
    if size < header:
        raise IsobmffError(f"box {kind!r} has an impossible size {size}")
    return kind, header, size


def children(data: bytes, start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """(type, payload start, box end) of each box in data[start:end]; all must fit exactly."""
    offset = start
    while offset < end:
        header = box_header(data, offset, end)
        if header is None:
            raise IsobmffError("box header truncated")
        kind, header_size, size = header
        if offset + size > end:
            raise IsobmffError(f"box {kind!r} overruns its parent")
        yield kind, offset + header_size, offset + size
        offset += size


def child(data: bytes, start: int, end: int, kind: str) -> tuple[int, int] | None:
    """(payload start, box end) of the first `kind` box in data[start:end], if any."""
    for found, payload, box_end in children(data, start, end):
        if found == kind:
            return payload, box_end
    return None


def top_box(data: bytes, kind: str) -> tuple[int, int, int] | None:
    """(box start, payload start, end) of the first top-level box of `kind`."""
    offset = 0
    while True:
        header = box_header(data, offset, len(data))
        if header is None:
            return None
        name, header_size, size = header
        if name == kind:
            return offset, offset + header_size, offset + size
        if size <= 0:
            return None
        offset += size
