"""The chunk stream: every header format, extended timestamps, chunk sizes, abort, limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golive.ingest.rtmp.chunk import (
    ChunkError,
    ChunkReader,
    ChunkWriter,
    Message,
    encode_chunk,
)


def read_all(data: bytes, *, step: int | None = None, **kwargs: int) -> list[Message]:
    reader = ChunkReader(**kwargs)
    if step is None:
        return reader.feed(data)
    out: list[Message] = []
    for i in range(0, len(data), step):
        out += reader.feed(data[i : i + step])
    return out


messages = st.lists(
    st.tuples(
        st.integers(2, 65599),  # csid
        st.sampled_from([8, 9, 18, 20]),
        st.integers(0, 5),  # stream id
        st.integers(0, 0xFFFFFFFF),  # timestamp (extended ones included)
        st.binary(max_size=600),
    ),
    max_size=8,
)


@given(messages, st.sampled_from([1, 7, 128, 4096]), st.integers(1, 50))
@settings(max_examples=150)
def test_writer_output_reads_back_in_any_chunking(
    items: list[tuple[int, int, int, int, bytes]], chunk_size: int, step: int
) -> None:
    writer = ChunkWriter()
    wire = bytearray()
    if chunk_size != 128:
        wire += writer.set_chunk_size_message(chunk_size)
    for csid, type_id, sid, ts, body in items:
        wire += writer.write(csid, type_id, sid, ts, body)
    got = [m for m in read_all(bytes(wire), step=step) if m.type_id != 1]
    assert [(m.csid, m.type_id, m.stream_id, m.timestamp, m.payload) for m in got] == items


def test_header_formats_carry_state_forward() -> None:
    data = (
        encode_chunk(0, 4, timestamp=1000, length=3, type_id=9, stream_id=1, body=b"abc")
        + encode_chunk(1, 4, timestamp=40, length=2, type_id=8, body=b"de")  # delta 40
        + encode_chunk(2, 4, timestamp=33, body=b"fg")  # same length/type, delta 33
        + encode_chunk(3, 4, body=b"hi")  # new message, repeats delta 33
    )
    got = read_all(data)
    assert [(m.type_id, m.stream_id, m.timestamp, m.payload) for m in got] == [
        (9, 1, 1000, b"abc"),
        (8, 1, 1040, b"de"),
        (8, 1, 1073, b"fg"),
        (8, 1, 1106, b"hi"),
    ]


def test_type3_continuations_and_extended_timestamps() -> None:
    body = bytes(range(256)) + bytes(44)
    ts = 0x01000000 + 5
    data = (
        encode_chunk(0, 6, timestamp=ts, length=300, type_id=9, stream_id=1, extended=True,
                     body=body[:128])
        + encode_chunk(3, 6, timestamp=ts, extended=True, body=body[128:256])
        + encode_chunk(3, 6, timestamp=ts, extended=True, body=body[256:])
    )
    (message,) = read_all(data, step=3)
    assert message.timestamp == ts and message.payload == body


def test_interleaved_chunk_streams() -> None:
    data = (
        encode_chunk(0, 4, timestamp=0, length=200, type_id=9, stream_id=1, body=b"v" * 128)
        + encode_chunk(0, 5, timestamp=0, length=10, type_id=8, stream_id=1, body=b"a" * 10)
        + encode_chunk(3, 4, body=b"v" * 72)
    )
    got = read_all(data)
    assert [(m.type_id, len(m.payload)) for m in got] == [(8, 10), (9, 200)]


def test_set_chunk_size_from_the_peer_applies_to_what_follows() -> None:
    data = (
        encode_chunk(0, 2, length=4, type_id=1, body=(1000).to_bytes(4, "big"))
        + encode_chunk(0, 4, length=900, type_id=9, stream_id=1, body=b"x" * 900)
    )
    reader = ChunkReader()
    got = reader.feed(data)
    assert reader.chunk_size == 1000 and len(got[-1].payload) == 900


def test_abort_discards_a_partial_message() -> None:
    data = (
        encode_chunk(0, 4, length=300, type_id=9, stream_id=1, body=b"x" * 128)
        + encode_chunk(0, 2, length=4, type_id=2, body=(4).to_bytes(4, "big"))
        + encode_chunk(0, 4, length=2, type_id=9, stream_id=1, body=b"ok")
    )
    got = [m for m in read_all(data) if m.type_id == 9]
    assert [m.payload for m in got] == [b"ok"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (encode_chunk(1, 4, length=1, type_id=9, body=b"x"), "starts with a type-1"),
        (encode_chunk(0, 4, length=1 << 20, type_id=9), "exceeds the limit"),
        (encode_chunk(0, 2, length=4, type_id=1, body=(0).to_bytes(4, "big")), "chunk size"),
        (encode_chunk(0, 2, length=4, type_id=1, body=(1 << 31).to_bytes(4, "big")),
         "chunk size"),
    ],
)
def test_violations_raise_chunk_error(data: bytes, message: str) -> None:
    with pytest.raises(ChunkError, match=message):
        read_all(data, max_message_size=64 * 1024)


def test_header_change_mid_message_is_an_error() -> None:
    data = encode_chunk(0, 4, length=300, type_id=9, stream_id=1, body=b"x" * 128) + encode_chunk(
        1, 4, length=10, type_id=8, body=b"y" * 10
    )
    with pytest.raises(ChunkError, match="mid-message"):
        read_all(data)


@given(st.binary(max_size=2000))
@settings(max_examples=300)
def test_arbitrary_bytes_raise_only_chunk_error(data: bytes) -> None:
    reader = ChunkReader(max_message_size=64 * 1024)
    try:
        reader.feed(data)
    except ChunkError:
        pass


def test_partial_messages_are_bounded_over_all_chunk_streams() -> None:
    reader = ChunkReader(max_message_size=1000, max_pending=3000)
    # Thirty chunk streams each leave a 1000-byte message partly sent (128 of 1000 bytes).
    data = b"".join(
        encode_chunk(0, csid, length=1000, type_id=9, stream_id=1, body=bytes(128))
        for csid in range(3, 3 + 30)
    )
    with pytest.raises(ChunkError, match="partly received messages"):
        reader.feed(data)


def test_completed_and_aborted_messages_release_their_pending_bytes() -> None:
    reader = ChunkReader(max_message_size=1000, max_pending=300)
    first = encode_chunk(0, 4, length=200, type_id=9, stream_id=1, body=bytes(128))
    assert reader.feed(first) == [] and reader.pending == 128
    (message,) = reader.feed(encode_chunk(3, 4, body=bytes(72)))
    assert len(message.payload) == 200 and reader.pending == 0
    reader.feed(first)
    reader.feed(encode_chunk(0, 2, length=4, type_id=2, body=(4).to_bytes(4, "big")))
    assert reader.pending == 0
    # With room again, the same stream can carry a fresh message.
    assert reader.feed(encode_chunk(0, 4, length=100, type_id=9, stream_id=1, body=bytes(100)))


def test_lower_message_limit_keeps_the_peers_chunk_size() -> None:
    reader = ChunkReader(max_message_size=100_000)
    reader.set_limits(max_message_size=1000, max_pending=4000)
    reader.feed(encode_chunk(0, 2, length=4, type_id=1, body=(60_000).to_bytes(4, "big")))
    assert reader.chunk_size == 60_000
    with pytest.raises(ChunkError, match="exceeds the limit"):
        reader.feed(encode_chunk(0, 4, length=5000, type_id=9, stream_id=1, body=bytes(10)))
