from __future__ import annotations

from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from golive.ingest.srt.packet import (
    SEQ_MASK,
    Ack,
    ControlPacket,
    ControlType,
    DataPacket,
    KeyFlag,
    Position,
    decode_loss_list,
    seq_add,
)
from golive.ingest.srt.receiver import Receiver

LATENCY = 0.100


def data(seq: int, ts_us: int, *, rexmit: bool = False) -> DataPacket:
    return DataPacket(seq=seq & SEQ_MASK, position=Position.SOLO, in_order=False,
                      key=KeyFlag.CLEAR, retransmitted=rexmit, message_number=1,
                      timestamp=ts_us & 0xFFFFFFFF, dest_socket=1, payload=f"p{seq}".encode())


def receiver(initial_seq: int = 100, window: int = 1024) -> Receiver:
    return Receiver(initial_seq=initial_seq, latency=LATENCY, flow_window=window, time_base=0.0,
                    peer_socket=7, start=0.0)


def of_type(packets: list[ControlPacket], kind: ControlType) -> list[ControlPacket]:
    return [p for p in packets if p.type == kind]


def test_tsbpd_releases_each_packet_at_timestamp_plus_latency() -> None:
    r = receiver()
    for i in range(3):
        r.on_data(data(100 + i, i * 10_000), b"p%d" % i, now=i * 0.010)
    r.tick(0.099)
    assert r.take_payloads() == []
    r.tick(0.100)
    assert r.take_payloads() == [b"p0"]
    r.tick(0.125)
    assert r.take_payloads() == [b"p1", b"p2"]


def test_gap_sends_an_immediate_nak_and_retransmission_fills_it() -> None:
    r = receiver()
    r.on_data(data(100, 0), b"a", 0.0)
    r.on_data(data(104, 4000), b"e", 0.004)
    naks = of_type(r.take_packets(), ControlType.NAK)
    assert [decode_loss_list(n.body) for n in naks] == [[(101, 103)]]
    for seq in (102, 101, 103):
        r.on_data(data(seq, (seq - 100) * 1000, rexmit=True), b"%d" % seq, 0.02)
    r.tick(0.2)
    assert r.take_payloads() == [b"a", b"101", b"102", b"103", b"e"]
    stats = r.stats()
    assert (stats.packets_lost, stats.retransmitted, stats.dropped) == (3, 3, 0)


def test_periodic_nak_repeats_what_is_still_missing() -> None:
    r = receiver()
    r.on_data(data(100, 0), b"a", 0.0)
    r.on_data(data(103, 3000), b"d", 0.001)
    r.on_data(data(101, 1000, rexmit=True), b"b", 0.002)
    r.take_packets()
    r.tick(0.03)  # past the minimum NAK interval (20 ms)
    naks = of_type(r.take_packets(), ControlType.NAK)
    assert [decode_loss_list(n.body) for n in naks] == [[(102, 102)]]


def test_too_late_packets_are_dropped_and_counted() -> None:
    r = receiver()
    r.on_data(data(100, 0), b"a", 0.0)
    r.on_data(data(102, 20_000), b"c", 0.02)
    r.tick(0.100)
    assert r.take_payloads() == [b"a"]
    r.tick(0.119)
    assert r.take_payloads() == []  # 101 might still come
    r.tick(0.1201)  # 102 is due: 101 is given up
    assert r.take_payloads() == [b"c"]
    assert r.stats().dropped == 1
    r.on_data(data(101, 10_000, rexmit=True), b"b", 0.13)
    r.tick(0.2)
    assert r.take_payloads() == []
    assert r.belated == 1


def test_full_ack_and_ackack_measure_rtt() -> None:
    r = receiver()
    r.on_data(data(100, 0), b"a", 0.0)
    r.on_data(data(101, 1000), b"b", 0.001)
    r.tick(0.010)
    acks = of_type(r.take_packets(), ControlType.ACK)
    assert len(acks) == 1
    ack = Ack.decode(acks[0].body)
    assert ack.last_ack_seq == 102 and ack.rtt_us == 100_000 and ack.available_buffer == 1022
    assert acks[0].dest_socket == 7 and acks[0].info == 1
    r.on_ackack(acks[0].info, 0.050)
    assert abs(r.rtt - 0.040) < 1e-9 and abs(r.rtt_var - 0.020) < 1e-9
    r.on_data(data(102, 2000), b"c", 0.051)
    r.tick(0.060)
    second = of_type(r.take_packets(), ControlType.ACK)[0]
    r.on_ackack(second.info, 0.080)  # sample 20 ms
    assert abs(r.rtt - (0.875 * 0.040 + 0.125 * 0.020)) < 1e-9
    assert abs(r.rtt_var - (0.75 * 0.020 + 0.25 * 0.020)) < 1e-9
    r.on_ackack(999, 0.1)  # unknown ACK numbers change nothing
    assert abs(r.rtt - (0.875 * 0.040 + 0.125 * 0.020)) < 1e-9


def test_no_full_ack_when_nothing_new_arrived() -> None:
    r = receiver()
    r.on_data(data(100, 0), b"a", 0.0)
    r.tick(0.010)
    assert of_type(r.take_packets(), ControlType.ACK)
    r.tick(0.020)
    assert not of_type(r.take_packets(), ControlType.ACK)


def test_light_ack_every_64_packets() -> None:
    r = receiver()
    for i in range(64):
        r.on_data(data(100 + i, i * 100), b"x", 0.0)
    acks = of_type(r.take_packets(), ControlType.ACK)
    assert len(acks) == 1 and len(acks[0].body) == 4
    assert Ack.decode(acks[0].body).last_ack_seq == 164


def test_sequence_and_timestamp_wrap() -> None:
    start = SEQ_MASK - 2
    r = Receiver(initial_seq=start, latency=LATENCY, flow_window=64,
                 time_base=-(0xFFFFFFFF - 5000) / 1e6, peer_socket=7, start=0.0)
    for i in range(6):
        r.on_data(data(seq_add(start, i), 0xFFFFFFFF - 5000 + i * 2000), b"%d" % i, 0.0)
    r.tick(1.0)
    assert r.take_payloads() == [b"%d" % i for i in range(6)]
    assert r.stats().packets_lost == 0


def test_packets_beyond_the_flow_window_are_refused() -> None:
    r = receiver(window=32)
    r.on_data(data(100 + 32, 0), b"far", 0.0)
    assert r.outside_window == 1 and r.stats().packets_received == 0


def test_drop_request_skips_without_waiting() -> None:
    r = receiver()
    r.on_data(data(100, 0), b"a", 0.0)
    r.on_data(data(105, 50_000), b"f", 0.0)
    r.on_drop_request(101, 104)
    r.tick(0.101)
    assert r.take_payloads() == [b"a"]  # 105 is not due yet, but nothing blocks it
    r.tick(0.1501)
    assert r.take_payloads() == [b"f"]
    assert r.stats().dropped == 4


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=300), st.randoms(use_true_random=False))
def test_any_loss_pattern_is_recovered_by_retransmission(lost: list[bool], rnd: Random) -> None:
    first = SEQ_MASK - 100  # the sequence numbers wrap on the way
    r = receiver(initial_seq=first)
    missing = []
    for i, drop in enumerate(lost):
        if drop:
            missing.append(i)
        else:
            r.on_data(data(seq_add(first, i), i * 1000), b"%d" % i, 0.0)
    r.tick(0.03)  # a periodic NAK round, long before any deadline
    requested: set[int] = set()
    for nak in of_type(r.take_packets(), ControlType.NAK):
        for a, b in decode_loss_list(nak.body):
            requested.update(seq_add(a, k) for k in range(((b - a) & SEQ_MASK) + 1))
    last_received = max((i for i, drop in enumerate(lost) if not drop), default=-1)
    # Everything missing before the last packet that arrived is asked for, nothing else.
    assert requested == {seq_add(first, i) for i in missing if i < last_received}
    rnd.shuffle(missing)
    for i in missing:
        r.on_data(data(seq_add(first, i), i * 1000, rexmit=True), b"%d" % i, 0.04)
    r.tick(10.0)
    assert r.take_payloads() == [b"%d" % i for i in range(len(lost))]
    stats = r.stats()
    assert stats.dropped == 0 and stats.retransmitted == len(missing)
    assert stats.packets_lost >= sum(1 for i in missing if i < last_received)
