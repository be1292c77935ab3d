"""The RTMP chunk stream: messages split into chunks and back (ingest, sans-IO).

`ChunkReader` takes bytes as they arrive and yields complete `Message`s; it
handles all four chunk header formats, 1- to 3-byte chunk stream ids, extended
timestamps (also on type-3 continuation chunks, as librtmp, ffmpeg and OBS send
them), Set Chunk Size and Abort. `ChunkWriter` does the reverse for what the
server sends. Every protocol violation raises `ChunkError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Protocol control message types handled at the chunk layer.
SET_CHUNK_SIZE = 1
ABORT = 2

DEFAULT_CHUNK_SIZE = 128
MAX_CHUNK_SIZE = 0x7FFFFFFF  # the spec's 31-bit limit
EXTENDED_TIMESTAMP = 0xFFFFFF
MAX_CHUNK_STREAMS = 64  # distinct chunk stream ids one peer may use at a time
TIMESTAMP_MASK = 0xFFFFFFFF

_U32 = struct.Struct(">I")
_U32LE = struct.Struct("<I")


class ChunkError(ValueError):
    """The peer broke the chunk stream protocol; the connection cannot continue."""


@dataclass(frozen=True, slots=True)
class Message:
    """One reassembled RTMP message."""

    csid: int
    type_id: int
    stream_id: int
    timestamp: int  # milliseconds, 32-bit
    payload: bytes


class _InState:
    """What a chunk stream id remembers between chunks (RTMP spec 5.3.1.2)."""

    __slots__ = (
        "buffer",
        "delta",
        "extended",
        "length",
        "started",
        "stream_id",
        "timestamp",
        "type_id",
    )

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.extended = False
        self.buffer = bytearray()
        self.started = False  # a fmt 0 header has been seen, so later formats have a base


class ChunkReader:
    """Reassembles messages from the peer's chunk stream."""

    def __init__(self, *, max_message_size: int = 16 * 1024 * 1024,
                 max_pending: int | None = None) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.max_message_size = max_message_size
        # Bytes of partly received messages over all chunk streams: without this bound a
        # peer could open 64 chunk streams and leave a huge message half-sent on each.
        self.max_pending = max_pending if max_pending is not None else 2 * max_message_size
        # The largest chunk size honoured; fixed at construction so that tightening the
        # message limit later never changes how the peer's chunks are framed.
        self._chunk_size_cap = max(max_message_size, DEFAULT_CHUNK_SIZE)
        self.pending = 0
        self.bytes_received = 0
        self._buffer = bytearray()
        self._streams: dict[int, _InState] = {}

    def set_limits(self, *, max_message_size: int, max_pending: int) -> None:
        """Change the message and partial-message bounds (e.g. once a publish is requested)."""
        self.max_message_size = max_message_size
        self.max_pending = max_pending

    def feed(self, data: bytes) -> list[Message]:
        """Add bytes from the wire; return every message they complete, in order."""
        self.bytes_received += len(data)
        self._buffer += data
        messages: list[Message] = []
        pos = 0
        buf = self._buffer
        while True:
            consumed, message = self._parse_chunk(buf, pos)
            if consumed == 0:
                break
            pos += consumed
            if message is None:
                continue
            if message.type_id == SET_CHUNK_SIZE and message.stream_id == 0:
                self._set_chunk_size(message.payload)
            elif message.type_id == ABORT and message.stream_id == 0:
                self._abort(message.payload)
            messages.append(message)
        if pos:
            del buf[:pos]
        return messages

    def _set_chunk_size(self, payload: bytes) -> None:
        if len(payload) < 4:
            raise ChunkError("Set Chunk Size message shorter than 4 bytes")
        size = int.from_bytes(payload[:4], "big")
        if size & 0x80000000 or size < 1:
            raise ChunkError(f"invalid chunk size {size}")
        # Bigger chunks than any message we accept only cost us buffering.
        self.chunk_size = min(size, self._chunk_size_cap)

    def _abort(self, payload: bytes) -> None:
        if len(payload) < 4:
            raise ChunkError("Abort message shorter than 4 bytes")
        state = self._streams.get(int.from_bytes(payload[:4], "big"))
        if state is not None:
            self.pending -= len(state.buffer)
            state.buffer = bytearray()

    def _parse_chunk(self, buf: bytearray, pos: int) -> tuple[int, Message | None]:
        """Parse one chunk at `pos`; (0, None) when it is not complete yet."""
        avail = len(buf) - pos
        if avail < 1:
            return 0, None
        first = buf[pos]
        fmt = first >> 6
        csid = first & 0x3F
        header = 1
        if csid == 0:
            if avail < 2:
                return 0, None
            csid = 64 + buf[pos + 1]
            header = 2
        elif csid == 1:
            if avail < 3:
                return 0, None
            csid = 64 + buf[pos + 1] + (buf[pos + 2] << 8)
            header = 3
        message_header = (11, 7, 3, 0)[fmt]
        if avail < header + message_header:
            return 0, None

        state = self._streams.get(csid)
        if state is None:
            if fmt != 0:
                raise ChunkError(f"chunk stream {csid} starts with a type-{fmt} header")
            if len(self._streams) >= MAX_CHUNK_STREAMS:
                raise ChunkError("too many chunk streams")
            state = _InState()
        mh = pos + header
        new_message = not state.buffer
        timestamp_field = 0
        if fmt <= 2:
            timestamp_field = (buf[mh] << 16) | (buf[mh + 1] << 8) | buf[mh + 2]
        extended = timestamp_field == EXTENDED_TIMESTAMP if fmt <= 2 else state.extended
        need = header + message_header + (4 if extended else 0)
        if avail < need:
            return 0, None
        ext_value = _U32.unpack_from(buf, pos + need - 4)[0] if extended else 0

        # Work out the message this chunk belongs to before committing any state.
        length = state.length
        type_id = state.type_id
        stream_id = state.stream_id
        if fmt <= 1:
            length = (buf[mh + 3] << 16) | (buf[mh + 4] << 8) | buf[mh + 5]
            type_id = buf[mh + 6]
            if fmt == 0:
                stream_id = _U32LE.unpack_from(buf, mh + 7)[0]
        if fmt <= 1 and state.buffer and (length != state.length or type_id != state.type_id):
            raise ChunkError(f"chunk stream {csid} changed message header mid-message")
        if length > self.max_message_size:
            raise ChunkError(
                f"message of {length} bytes exceeds the limit of {self.max_message_size}"
            )
        remaining = length - len(state.buffer)
        take = min(remaining, self.chunk_size)
        if avail < need + take:
            return 0, None

        # Commit.
        if csid not in self._streams:
            self._streams[csid] = state
        state.extended = extended
        if fmt <= 2:
            value = ext_value if extended else timestamp_field
            if fmt == 0:
                state.timestamp = value
                state.delta = 0
            else:
                state.delta = value
                if new_message:
                    state.timestamp = (state.timestamp + value) & TIMESTAMP_MASK
            state.started = True
        elif new_message:
            # A type-3 chunk that starts a message repeats the previous delta.
            state.timestamp = (state.timestamp + state.delta) & TIMESTAMP_MASK
        state.length = length
        state.type_id = type_id
        state.stream_id = stream_id
        start = pos + need
        consumed = need + take
        if new_message and take == length:
            # The whole message in one chunk (most audio): no reassembly copy.
            payload = bytes(buf[start : start + take])
            return consumed, Message(csid, type_id, stream_id, state.timestamp, payload)
        state.buffer += buf[start : start + take]
        if len(state.buffer) < length:
            self.pending += take
            if self.pending > self.max_pending:
                raise ChunkError(
                    f"partly received messages exceed the limit of {self.max_pending} bytes"
                )
            return consumed, None
        self.pending -= len(state.buffer) - take
        payload = bytes(state.buffer)
        state.buffer = bytearray()
        return consumed, Message(csid, type_id, stream_id, state.timestamp, payload)


class ChunkWriter:
    """Splits outgoing messages into chunks (always a type-0 header, then type-3 chunks)."""

    def __init__(self) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE

    def set_chunk_size_message(self, size: int) -> bytes:
        """Encode Set Chunk Size; the new size applies to everything written after it."""
        if not 1 <= size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk size {size} out of range")
        data = self.write(2, SET_CHUNK_SIZE, 0, 0, size.to_bytes(4, "big"))
        self.chunk_size = size
        return data

    def write(self, csid: int, type_id: int, stream_id: int, timestamp: int,
              payload: bytes) -> bytes:
        out = bytearray()
        timestamp &= TIMESTAMP_MASK
        extended = timestamp >= EXTENDED_TIMESTAMP
        ts_field = EXTENDED_TIMESTAMP if extended else timestamp
        out += _basic_header(0, csid)
        out += ts_field.to_bytes(3, "big")
        out += len(payload).to_bytes(3, "big")
        out.append(type_id)
        out += stream_id.to_bytes(4, "little")
        if extended:
            out += timestamp.to_bytes(4, "big")
        view = memoryview(payload)
        out += view[: self.chunk_size]
        pos = self.chunk_size
        while pos < len(payload):
            out += _basic_header(3, csid)
            if extended:
                out += timestamp.to_bytes(4, "big")
            out += view[pos : pos + self.chunk_size]
            pos += self.chunk_size
        return bytes(out)


def _basic_header(fmt: int, csid: int) -> bytes:
    if 2 <= csid <= 63:
        return bytes(((fmt << 6) | csid,))
    if 64 <= csid <= 319:
        return bytes((fmt << 6, csid - 64))
    if 320 <= csid <= 65599:
        rest = csid - 64
        return bytes(((fmt << 6) | 1, rest & 0xFF, rest >> 8))
    raise ValueError(f"chunk stream id {csid} out of range")


def encode_chunk(fmt: int, csid: int, *, timestamp: int = 0, length: int = 0, type_id: int = 0,
                 stream_id: int = 0, extended: bool = False, body: bytes = b"") -> bytes:
    """One raw chunk with the given header format: for tests and fuzzers of `ChunkReader`."""
    out = bytearray(_basic_header(fmt, csid))
    ts_field = EXTENDED_TIMESTAMP if extended else timestamp
    if fmt <= 2:
        out += ts_field.to_bytes(3, "big")
    if fmt <= 1:
        out += length.to_bytes(3, "big")
        out.append(type_id)
    if fmt == 0:
        out += stream_id.to_bytes(4, "little")
    if extended:
        out += timestamp.to_bytes(4, "big")
    out += body
    return bytes(out)
