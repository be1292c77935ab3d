"""RTMP message types, protocol control messages and aggregate messages (ingest, sans-IO)."""

from __future__ import annotations

from collections.abc import Iterator

from golive.formats import MediaTag, TagType

SET_CHUNK_SIZE = 1
ABORT = 2
ACKNOWLEDGEMENT = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF3 = 15
SHARED_OBJECT_AMF3 = 16
COMMAND_AMF3 = 17
DATA_AMF0 = 18
SHARED_OBJECT_AMF0 = 19
COMMAND_AMF0 = 20
AGGREGATE = 22

# User control event types.
STREAM_BEGIN = 0
STREAM_EOF = 1
STREAM_DRY = 2
SET_BUFFER_LENGTH = 3
STREAM_IS_RECORDED = 4
PING_REQUEST = 6
PING_RESPONSE = 7

# Chunk stream ids the server writes on (conventional values).
CSID_CONTROL = 2
CSID_COMMAND = 3
CSID_STREAM = 5

PEER_BANDWIDTH_DYNAMIC = 2


class AggregateError(ValueError):
    pass


def u32(value: int) -> bytes:
    return (value & 0xFFFFFFFF).to_bytes(4, "big")


def user_control(event: int, *values: int) -> bytes:
    return event.to_bytes(2, "big") + b"".join(u32(v) for v in values)


def split_aggregate(payload: bytes, timestamp: int) -> Iterator[MediaTag]:
    """Sub-messages of an aggregate message; their timestamps are rebased on `timestamp`.

    Each sub-message is laid out like an FLV tag: type, 24-bit size, timestamp
    (24 bits + 8 high bits), 24-bit stream id, body, then a 4-byte back pointer.
    """
    view = memoryview(payload)
    pos = 0
    first_ts: int | None = None
    while pos < len(view):
        if len(view) - pos < 11:
            raise AggregateError("truncated aggregate sub-message header")
        type_id = view[pos]
        size = int.from_bytes(view[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(view[pos + 4 : pos + 7], "big") | (view[pos + 7] << 24)
        body_start = pos + 11
        body_end = body_start + size
        if body_end + 4 > len(view):
            raise AggregateError("aggregate sub-message overruns the message")
        if first_ts is None:
            first_ts = ts
        if type_id in (AUDIO, VIDEO, DATA_AMF0):
            yield MediaTag(
                TagType(type_id),
                (timestamp + ts - first_ts) & 0xFFFFFFFF,
                bytes(view[body_start:body_end]),
            )
        pos = body_end + 4
