from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from golive.ingest.srt.packet import (
    SEQ_MASK,
    Ack,
    ControlPacket,
    ControlType,
    DataPacket,
    DropRequest,
    KeyFlag,
    Position,
    SrtError,
    decode_loss_list,
    encode_loss_list,
    parse_packet,
    seq_add,
    seq_diff,
    seq_less,
)

u32 = st.integers(0, 0xFFFFFFFF)
seqs = st.integers(0, SEQ_MASK)

data_packets = st.builds(
    DataPacket,
    seq=seqs,
    position=st.sampled_from(Position),
    in_order=st.booleans(),
    key=st.sampled_from(KeyFlag),
    retransmitted=st.booleans(),
    message_number=st.integers(0, (1 << 26) - 1),
    timestamp=u32,
    dest_socket=u32,
    payload=st.binary(max_size=1316),
)
control_packets = st.builds(
    ControlPacket,
    type=st.integers(0, 0x7FFF),
    subtype=st.integers(0, 0xFFFF),
    info=u32,
    timestamp=u32,
    dest_socket=u32,
    body=st.binary(max_size=200),
)


@given(data_packets)
def test_data_packet_round_trip(packet: DataPacket) -> None:
    assert parse_packet(packet.encode()) == packet


@given(control_packets)
def test_control_packet_round_trip(packet: ControlPacket) -> None:
    assert parse_packet(packet.encode()) == packet


@given(st.binary(max_size=300))
def test_arbitrary_datagrams_raise_only_srt_error(data: bytes) -> None:
    try:
        packet = parse_packet(data)
    except SrtError:
        return
    body = packet.body if isinstance(packet, ControlPacket) else packet.payload
    for decode in (Ack.decode, decode_loss_list, DropRequest.decode):
        try:
            decode(body)
        except SrtError:
            pass


def test_header_bits_follow_the_draft() -> None:
    packet = DataPacket(seq=5, position=Position.SOLO, in_order=False, key=KeyFlag.ODD,
                        retransmitted=True, message_number=7, timestamp=1000, dest_socket=9,
                        payload=b"x")
    raw = packet.encode()
    assert raw[:4] == bytes([0, 0, 0, 5])
    assert raw[4] == 0b11_0_10_1_00  # PP=11, O=0, KK=10, R=1, msgno high bits
    ack = ControlPacket(ControlType.ACK, 0, 3, 0, 9).encode()
    assert raw[:1] != ack[:1] and ack[:4] == bytes([0x80, 0x02, 0, 0])


def test_short_datagram_is_an_error() -> None:
    with pytest.raises(SrtError):
        parse_packet(b"\x80" * 15)


@given(seqs, st.integers(-(1 << 29), 1 << 29))
def test_sequence_arithmetic_wraps(seq: int, n: int) -> None:
    later = seq_add(seq, n)
    assert 0 <= later <= SEQ_MASK
    assert seq_diff(later, seq) == n
    assert seq_less(seq, later) == (n > 0)


def test_sequence_wraps_at_31_bits() -> None:
    assert seq_add(SEQ_MASK, 1) == 0
    assert seq_diff(0, SEQ_MASK) == 1
    assert seq_less(SEQ_MASK, 3)


@st.composite
def loss_ranges(draw: st.DrawFn) -> list[tuple[int, int]]:
    start = draw(seqs)
    ranges = []
    for gap, length in draw(st.lists(st.tuples(st.integers(1, 50), st.integers(0, 50)),
                                     max_size=20)):
        first = seq_add(start, gap)
        last = seq_add(first, length)
        ranges.append((first, last))
        start = seq_add(last, 1)
    return ranges


@given(loss_ranges())
def test_loss_list_round_trip(ranges: list[tuple[int, int]]) -> None:
    assert decode_loss_list(encode_loss_list(ranges)) == ranges


def test_loss_list_encoding_marks_ranges_with_the_high_bit() -> None:
    assert encode_loss_list([(5, 5), (10, 12)]).hex() == "00000005" "8000000a" "0000000c"
    with pytest.raises(SrtError):
        decode_loss_list(bytes.fromhex("8000000a"))  # a range start without an end
    with pytest.raises(SrtError):
        decode_loss_list(bytes.fromhex("8000000a00000009"))  # ends before it starts


@given(seqs, st.lists(u32, min_size=6, max_size=6))
def test_full_ack_round_trip(seq: int, fields: list[int]) -> None:
    ack = Ack(seq, *fields)
    assert Ack.decode(ack.encode()) == ack
    assert len(ack.encode()) == 28
    light = Ack(seq)
    assert Ack.decode(light.encode()) == light and len(light.encode()) == 4


@given(seqs, st.integers(0, 1000))
def test_drop_request_round_trip(first: int, count: int) -> None:
    drop = DropRequest(first, seq_add(first, count))
    assert DropRequest.decode(drop.encode()) == drop
