"""The server side of the plain RTMP handshake, fed byte by byte and in any chunking."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golive.ingest.rtmp.handshake import (
    HANDSHAKE_SIZE,
    RTMP_VERSION,
    HandshakeError,
    HandshakeState,
    ServerHandshake,
)

RANDOM = bytes(range(256)) * 5 + bytes(range(248))  # S1's 1528 random bytes, recognisable
C1 = b"\x00\x01\x02\x03" + b"\xfa\xce\xb0\x0c" + bytes((i * 7) & 0xFF for i in range(1528))
C0C1 = bytes((RTMP_VERSION,)) + C1
REPLY_SIZE = 1 + 2 * HANDSHAKE_SIZE


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` cut at the given offsets (any order, repeats and out-of-range ones allowed)."""
    points = sorted({0, len(data), *(c for c in cuts if 0 < c < len(data))})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def state(handshake: ServerHandshake) -> HandshakeState:
    # A call, so that type checkers do not carry one assertion's narrowing to the next.
    return handshake.state


def feed(handshake: ServerHandshake, chunks: list[bytes]) -> tuple[bytes, bytes]:
    """Feed chunks until the handshake is done, as the session does; returns (reply, rest).

    Chunks left once it is done belong to the chunk stream, so they join `rest`.
    """
    reply, rest = bytearray(), bytearray()
    for i, chunk in enumerate(chunks):
        out, after = handshake.receive_data(chunk)
        reply += out
        if handshake.done:
            rest += after + b"".join(chunks[i + 1 :])
            break
        assert after == b""
    return bytes(reply), bytes(rest)


# C0 + C1 -> S0 + S1 + S2 ------------------------------------------------------------------


def test_reply_is_s0_s1_s2_with_s2_echoing_c1() -> None:
    handshake = ServerHandshake(epoch_ms=0x01020304, random_bytes=RANDOM)
    assert state(handshake) is HandshakeState.WAIT_C0C1
    reply, rest = handshake.receive_data(C0C1)
    assert rest == b""
    assert len(reply) == REPLY_SIZE
    s0, s1, s2 = reply[:1], reply[1 : 1 + HANDSHAKE_SIZE], reply[1 + HANDSHAKE_SIZE :]
    assert s0 == bytes((RTMP_VERSION,))
    # S1: our epoch, a zero version field (plain handshake: no server digest), our random.
    assert s1 == b"\x01\x02\x03\x04" + bytes(4) + RANDOM
    # S2: C1's time, the time we read it (our epoch), C1's random echoed.
    assert s2 == C1[:4] + b"\x01\x02\x03\x04" + C1[8:]
    assert state(handshake) is HandshakeState.WAIT_C2
    assert not handshake.done


def test_epoch_wraps_to_32_bits_and_random_defaults_to_fresh_bytes() -> None:
    first = ServerHandshake(epoch_ms=(1 << 32) + 5).receive_data(C0C1)[0]
    second = ServerHandshake(epoch_ms=5).receive_data(C0C1)[0]
    assert first[1:5] == second[1:5] == b"\x00\x00\x00\x05"
    assert first[1 + HANDSHAKE_SIZE + 4 : 1 + HANDSHAKE_SIZE + 8] == b"\x00\x00\x00\x05"
    # Two servers never send the same S1 random part.
    assert first[9 : 1 + HANDSHAKE_SIZE] != second[9 : 1 + HANDSHAKE_SIZE]


@pytest.mark.parametrize("size", [0, 1527, 1529])
def test_s1_random_part_must_be_1528_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="1528"):
        ServerHandshake(random_bytes=bytes(size))


def test_no_reply_until_the_last_byte_of_c1() -> None:
    handshake = ServerHandshake(random_bytes=RANDOM)
    for byte in C0C1[:-1]:
        assert handshake.receive_data(bytes((byte,))) == (b"", b"")
    assert state(handshake) is HandshakeState.WAIT_C0C1
    reply, rest = handshake.receive_data(C0C1[-1:])
    assert len(reply) == REPLY_SIZE and rest == b""
    assert state(handshake) is HandshakeState.WAIT_C2


@given(st.binary(min_size=1528, max_size=1528), st.lists(st.integers(0, 1 + HANDSHAKE_SIZE)))
@settings(max_examples=150)
def test_c0c1_in_any_chunking_gives_the_same_reply(c1_random: bytes, cuts: list[int]) -> None:
    c0c1 = bytes((RTMP_VERSION,)) + b"\x00\x00\x10\x00" + bytes(4) + c1_random
    whole = ServerHandshake(epoch_ms=7, random_bytes=RANDOM).receive_data(c0c1)[0]
    handshake = ServerHandshake(epoch_ms=7, random_bytes=RANDOM)
    replies = [handshake.receive_data(piece) for piece in pieces(c0c1, cuts)]
    assert b"".join(out for out, _ in replies) == whole
    assert all(rest == b"" for _, rest in replies)
    assert [bool(out) for out, _ in replies][-1]  # the reply comes with C1's last byte
    assert whole[1 + HANDSHAKE_SIZE + 8 :] == c1_random
    assert state(handshake) is HandshakeState.WAIT_C2


# Versions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version",
    [
        0,
        6,  # RTMPE (encrypted)
        8,  # RTMPE with XTEA
        0x16,  # a TLS ClientHello on the plain port
        ord("G"),  # an HTTP GET
        ord("P"),  # RTMPT's HTTP POST
        0xFF,
    ],
)
def test_other_versions_are_refused_at_the_first_byte(version: int) -> None:
    with pytest.raises(HandshakeError, match=f"version {version} not supported"):
        ServerHandshake().receive_data(bytes((version,)))
    with pytest.raises(HandshakeError, match=f"version {version} not supported"):
        ServerHandshake().receive_data(bytes((version,)) + C1)


def test_handshake_error_is_a_value_error() -> None:
    # The session catches HandshakeError; callers that only know ValueError still see it.
    assert issubclass(HandshakeError, ValueError)


# C2 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "c2",
    [
        bytes(HANDSHAKE_SIZE),  # zeros
        b"\x00\x00\x00\x00\x00\x00\x00\x00" + RANDOM,  # the S1 echo the spec asks for
        bytes((i * 13) & 0xFF for i in range(HANDSHAKE_SIZE)),  # whatever a client sends
    ],
)
def test_c2_is_taken_by_length_not_content(c2: bytes) -> None:
    handshake = ServerHandshake(random_bytes=RANDOM)
    handshake.receive_data(C0C1)
    assert handshake.receive_data(c2[:-1]) == (b"", b"")
    assert state(handshake) is HandshakeState.WAIT_C2 and not handshake.done
    assert handshake.receive_data(c2[-1:]) == (b"", b"")
    assert handshake.done and state(handshake) is HandshakeState.DONE


def test_bytes_after_c2_are_handed_back_for_the_chunk_stream() -> None:
    handshake = ServerHandshake(random_bytes=RANDOM)
    handshake.receive_data(C0C1)
    chunk_stream = b"\x03\x00\x00\x00\x00\x00\x1a\x14\x00\x00\x00\x00connect"
    assert handshake.receive_data(bytes(HANDSHAKE_SIZE) + chunk_stream) == (b"", chunk_stream)
    assert handshake.done


def test_c0_c1_c2_and_more_in_one_read() -> None:
    # A client that does not wait for S0/S1 before sending C2 (allowed by the spec).
    handshake = ServerHandshake(epoch_ms=9, random_bytes=RANDOM)
    reply, rest = handshake.receive_data(C0C1 + bytes(HANDSHAKE_SIZE) + b"tail")
    assert len(reply) == REPLY_SIZE and reply[0] == RTMP_VERSION
    assert rest == b"tail"
    assert handshake.done


@given(
    st.binary(min_size=HANDSHAKE_SIZE, max_size=HANDSHAKE_SIZE),
    st.binary(max_size=300),
    st.lists(st.integers(0, 2 * REPLY_SIZE), max_size=12),
)
@settings(max_examples=150)
def test_whole_handshake_in_any_chunking(c2: bytes, after: bytes, cuts: list[int]) -> None:
    wire = C0C1 + c2 + after
    handshake = ServerHandshake(epoch_ms=3, random_bytes=RANDOM)
    reply, rest = feed(handshake, pieces(wire, cuts))
    assert handshake.done
    assert reply == ServerHandshake(epoch_ms=3, random_bytes=RANDOM).receive_data(C0C1)[0]
    assert rest == after


# Hostile input ----------------------------------------------------------------------------


@given(
    st.sampled_from([b"", bytes((RTMP_VERSION,))]),  # half the cases get past the version
    st.lists(st.binary(max_size=2 * REPLY_SIZE), max_size=6),
)
@settings(max_examples=300)
def test_arbitrary_bytes_raise_only_handshake_error(start: bytes, chunks: list[bytes]) -> None:
    handshake = ServerHandshake(random_bytes=RANDOM)
    chunks = [start, *chunks]
    wire = b"".join(chunks)
    try:
        reply, rest = feed(handshake, chunks)
    except HandshakeError:
        assert wire[0] != RTMP_VERSION  # only a wrong version is refused
        return
    assert wire[:1] in (b"", bytes((RTMP_VERSION,)))
    assert len(reply) == (REPLY_SIZE if len(wire) >= 1 + HANDSHAKE_SIZE else 0)
    assert handshake.done == (len(wire) >= 1 + 2 * HANDSHAKE_SIZE)
    if handshake.done:
        assert rest == wire[1 + 2 * HANDSHAKE_SIZE :]


@given(st.integers(0, 255).filter(lambda v: v != RTMP_VERSION), st.binary(max_size=3000))
@settings(max_examples=150)
def test_a_wrong_version_byte_is_refused_whatever_follows(version: int, tail: bytes) -> None:
    with pytest.raises(HandshakeError):
        ServerHandshake().receive_data(bytes((version,)) + tail)
