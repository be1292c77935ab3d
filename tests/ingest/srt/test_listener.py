"""The sans-IO SRT listener driven with a fake clock: handshakes, budgets, timers; no sockets."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from golive.ingest.srt.handshake import (
    REJECTION_BASE,
    SRT_MAGIC,
    Extension,
    ExtensionType,
    Handshake,
    HandshakeRejected,
    HandshakeType,
    HsReq,
    RejectReason,
    encode_ext_string,
)
from golive.ingest.srt.listener import (
    Address,
    ConnectionAccepted,
    ConnectionClosed,
    ConnectionRejected,
    ConnectionRequested,
    ListenerEvent,
    MediaReady,
    SrtListener,
)
from golive.ingest.srt.packet import (
    ControlPacket,
    ControlType,
    DataPacket,
    DropRequest,
    KeyFlag,
    Position,
    control,
    parse_packet,
)

NOW = 1000.0
KEY = "live_secret_key"
A: Address = ("192.0.2.1", 5000)
B: Address = ("198.51.100.7", 6000)
SEQ = 1000


def listener(**options: float) -> SrtListener:
    return SrtListener(now=NOW, cookie_secret=b"s" * 32, rng=random.Random(1),
                       **options)  # type: ignore[arg-type]


def induction(socket_id: int) -> bytes:
    hs = Handshake(4, 0, 2, SEQ, 1500, 8192, HandshakeType.INDUCTION, socket_id, 0)
    return control(ControlType.HANDSHAKE, dest_socket=0, timestamp=0, body=hs.encode()).encode()


def conclusion(socket_id: int, cookie: int, stream_id: str = KEY, *, mode_stream: bool = False,
               timestamp: int = 0) -> bytes:
    flags = 0xBF | (0x40 if mode_stream else 0)
    exts = (Extension(ExtensionType.HSREQ, HsReq(0x010501, flags, 120, 120).encode()),
            Extension(ExtensionType.SID, encode_ext_string(stream_id)))
    hs = Handshake(5, 0, 7, SEQ, 1500, 8192, HandshakeType.CONCLUSION, socket_id, cookie,
                   extensions=exts)
    return control(ControlType.HANDSHAKE, dest_socket=0, timestamp=timestamp,
                   body=hs.encode()).encode()


def data(socket_id: int, seq: int, ts_us: int) -> bytes:
    return DataPacket(seq, Position.SOLO, False, KeyFlag.CLEAR, False, 1, ts_us, socket_id,
                      b"payload %d" % seq).encode()


def sent(srt: SrtListener) -> list[tuple[ControlPacket, Address]]:
    out = []
    for datagram, address in srt.datagrams_to_send():
        packet = parse_packet(datagram)
        assert isinstance(packet, ControlPacket)
        out.append((packet, address))
    return out


def handshakes(srt: SrtListener) -> list[tuple[Handshake, Address]]:
    return [(Handshake.decode(p.body), a) for p, a in sent(srt) if p.type == ControlType.HANDSHAKE]


def events(srt: SrtListener) -> list[ListenerEvent]:
    out = []
    while (event := srt.next_event()) is not None:
        out.append(event)
    return out


def cookie_for(srt: SrtListener, address: Address, socket_id: int, now: float) -> int:
    srt.receive_datagram(induction(socket_id), address, now)
    ((answer, to),) = handshakes(srt)
    assert to == address
    return answer.cookie


def request(srt: SrtListener, address: Address, socket_id: int, now: float,
            stream_id: str = KEY) -> ConnectionRequested:
    cookie = cookie_for(srt, address, socket_id, now)
    srt.receive_datagram(conclusion(socket_id, cookie, stream_id), address, now)
    (event,) = events(srt)
    assert isinstance(event, ConnectionRequested)
    return event


def connected(srt: SrtListener, address: Address = A, socket_id: int = 77,
              now: float = NOW) -> int:
    event = request(srt, address, socket_id, now)
    socket_id_ours = srt.accept(event.request_id, now)
    assert socket_id_ours is not None
    handshakes(srt)
    events(srt)
    return socket_id_ours


# Handshakes --------------------------------------------------------------------------------


def test_induction_is_answered_without_keeping_anything() -> None:
    srt = listener()
    for i in range(1000):
        srt.receive_datagram(induction(i + 1), (f"10.0.{i // 250}.{i % 250}", 4000 + i), NOW)
    answers = handshakes(srt)
    assert len(answers) == 1000
    answer, _ = answers[0]
    assert answer.version == 5 and answer.extension_field == SRT_MAGIC
    assert answer.type == HandshakeType.INDUCTION and answer.cookie != 0
    assert events(srt) == []
    assert srt.get_timer() is None and srt.pending_count == 0 and len(srt.budget) == 0
    assert srt.budget.refused == 0


def test_conclusion_with_a_good_cookie_is_requested_then_accepted() -> None:
    srt = listener()
    cookie = cookie_for(srt, A, 77, NOW)
    srt.receive_datagram(conclusion(77, cookie), A, NOW + 0.01)
    (requested,) = events(srt)
    assert isinstance(requested, ConnectionRequested)
    assert requested.remote == "192.0.2.1:5000" and requested.request.stream.key == KEY
    assert handshakes(srt) == []  # no answer until the shell decides
    # The caller retransmits while the key is checked: ignored, not requested twice.
    srt.receive_datagram(conclusion(77, cookie), A, NOW + 0.26)
    assert events(srt) == [] and handshakes(srt) == [] and srt.pending_count == 1

    socket_id = srt.accept(requested.request_id, NOW + 0.3)
    assert socket_id is not None and srt.connection_count == 1
    ((answer, to),) = handshakes(srt)
    assert to == A and answer.type == HandshakeType.CONCLUSION and answer.socket_id == socket_id
    (accepted,) = events(srt)
    assert accepted == ConnectionAccepted(socket_id, "192.0.2.1:5000", KEY, 120, False)
    # Our answer was lost: the repeated conclusion gets the same one.
    srt.receive_datagram(conclusion(77, cookie), A, NOW + 0.5)
    ((again, _),) = handshakes(srt)
    assert again == answer
    assert srt.accept(requested.request_id, NOW + 0.6) is None  # answered once only


def test_wrong_or_borrowed_cookies_are_ignored() -> None:
    srt = listener()
    cookie = cookie_for(srt, A, 77, NOW)
    srt.receive_datagram(conclusion(77, cookie ^ 1), A, NOW)
    srt.receive_datagram(conclusion(78, cookie), B, NOW)  # A's cookie from another address
    assert events(srt) == [] and sent(srt) == []
    assert srt.ignored_datagrams == 2 and len(srt.budget) == 0


def test_cookie_stays_valid_one_bucket_then_expires() -> None:
    srt = listener()
    cookie = cookie_for(srt, A, 77, NOW)
    srt.receive_datagram(conclusion(77, cookie), A, NOW + 61)
    assert [type(e) for e in events(srt)] == [ConnectionRequested]
    srt.receive_datagram(conclusion(78, cookie), A, NOW + 121)
    assert events(srt) == [] and srt.ignored_datagrams == 1


def test_stream_id_problems_are_rejected_by_the_listener_itself() -> None:
    srt = listener()
    cookie = cookie_for(srt, A, 77, NOW)
    srt.receive_datagram(conclusion(77, cookie, f"#!::r={KEY},m=request"), A, NOW)
    ((answer, _),) = handshakes(srt)
    assert answer.type == REJECTION_BASE + RejectReason.X_BAD_MODE
    (rejected,) = events(srt)
    assert isinstance(rejected, ConnectionRejected) and rejected.reason == RejectReason.X_BAD_MODE
    # A stream id without '=' may be the key itself; the reason must not quote it.
    cookie = cookie_for(srt, A, 78, NOW)
    srt.receive_datagram(conclusion(78, cookie, f"#!::{KEY}"), A, NOW)
    (rejected,) = events(srt)
    assert isinstance(rejected, ConnectionRejected) and KEY not in rejected.message


# Rejection memory --------------------------------------------------------------------------


def test_rejection_is_repeated_then_forgotten() -> None:
    srt = listener()
    requested = request(srt, A, 77, NOW)
    srt.reject(requested.request_id, HandshakeRejected(RejectReason.X_FORBIDDEN, "no"), NOW)
    ((answer, _),) = handshakes(srt)
    assert answer.type == REJECTION_BASE + RejectReason.X_FORBIDDEN
    (rejected,) = events(srt)
    assert rejected == ConnectionRejected("192.0.2.1:5000", KEY, RejectReason.X_FORBIDDEN, "no")
    assert srt.get_timer() == NOW + 5.0  # when the rejection is forgotten: the only timer

    cookie = cookie_for(srt, A, 77, NOW + 1)
    srt.receive_datagram(conclusion(77, cookie), A, NOW + 1)
    ((repeated, _),) = handshakes(srt)
    assert repeated == answer and events(srt) == []

    srt.handle_timer(NOW + 5.0)
    assert len(srt.rejections) == 0 and srt.get_timer() is None
    srt.receive_datagram(conclusion(77, cookie), A, NOW + 5.1)
    assert [type(e) for e in events(srt)] == [ConnectionRequested]  # checked afresh


def test_rejection_memory_is_bounded() -> None:
    srt = listener(conclusions_per_source=1e6, conclusion_burst_per_source=1e6,
                   conclusions_total=1e6)
    for i in range(srt.rejections.limit + 100):
        requested = request(srt, A, 1000 + i, NOW)
        srt.reject(requested.request_id, HandshakeRejected(RejectReason.X_FORBIDDEN, "no"), NOW)
        srt.datagrams_to_send()
        events(srt)
    assert len(srt.rejections) == srt.rejections.limit
    # The oldest were forgotten first: caller 1000 is checked again, the newest is not.
    cookie = cookie_for(srt, A, 1000, NOW)
    srt.receive_datagram(conclusion(1000, cookie), A, NOW)
    assert [type(e) for e in events(srt)] == [ConnectionRequested]
    last = 1000 + srt.rejections.limit + 99
    srt.receive_datagram(conclusion(last, cookie_for(srt, A, last, NOW)), A, NOW)
    assert events(srt) == [] and len(handshakes(srt)) == 1


# Budget ------------------------------------------------------------------------------------


def test_induction_flood_from_one_address_does_not_stop_a_conclusion_from_another() -> None:
    srt = listener()
    for i in range(5000):
        srt.receive_datagram(induction(i + 1), A, NOW + i / 5000)
    assert len(handshakes(srt)) == 5000
    event = request(srt, B, 9, NOW + 1.0)
    assert event.remote == "198.51.100.7:6000"


def test_conclusion_flood_from_one_address_spends_only_its_own_budget() -> None:
    srt = listener(conclusions_per_source=10, conclusion_burst_per_source=20,
                   conclusions_total=50)
    requested = 0
    for i in range(1000):  # 1000 conclusions with good cookies in one second, from A
        now = NOW + i / 1000
        srt.receive_datagram(conclusion(i + 1, cookie_for(srt, A, i + 1, now)), A, now)
        requested += sum(isinstance(e, ConnectionRequested) for e in events(srt))
    assert requested <= 20 + 10 + 1  # its burst plus one second of refill
    assert srt.budget.refused >= 900
    event = request(srt, B, 9, NOW + 1.0)  # another address still gets in at once
    assert event.remote.startswith("198.51.100.7")


def test_global_cap_bounds_conclusions_from_many_addresses() -> None:
    srt = listener(conclusions_per_source=10, conclusion_burst_per_source=20,
                   conclusions_total=50)
    requested = 0
    for i in range(200):  # 200 addresses, one conclusion each, all at once
        address = (f"10.1.0.{i}", 7000)
        srt.receive_datagram(conclusion(1, cookie_for(srt, address, 1, NOW)), address, NOW)
        requested += len(events(srt))
    assert requested == 50


def test_ipv6_callers_share_a_budget_per_64() -> None:
    srt = listener(conclusions_per_source=1, conclusion_burst_per_source=2,
                   conclusions_total=100)
    requested = 0
    for i in range(10):
        address = (f"2001:db8:1:2::{i + 1}", 7000, 0, 0)
        srt.receive_datagram(conclusion(1, cookie_for(srt, address, 1, NOW)), address, NOW)
        requested += len(events(srt))
    assert requested == 2 and len(srt.budget) == 1


def test_capacity_and_closing_are_rejected_with_srt_reasons() -> None:
    srt = listener(max_connections=1)
    connected(srt)
    cookie = cookie_for(srt, B, 9, NOW)
    srt.receive_datagram(conclusion(9, cookie), B, NOW)
    ((answer, _),) = handshakes(srt)
    assert answer.type == REJECTION_BASE + RejectReason.BACKLOG
    assert [e.reason for e in events(srt)] == [RejectReason.BACKLOG]  # type: ignore[union-attr]

    srt.close_all("server closing", NOW + 1)
    packets = sent(srt)
    assert [p.type for p, _ in packets] == [ControlType.SHUTDOWN]
    (closed,) = events(srt)
    assert isinstance(closed, ConnectionClosed) and closed.reason == "server closing"
    cookie = cookie_for(srt, B, 10, NOW + 1)
    srt.receive_datagram(conclusion(10, cookie), B, NOW + 1)
    ((answer, _),) = handshakes(srt)
    assert answer.type == REJECTION_BASE + RejectReason.CLOSE


# Connections and deadlines -----------------------------------------------------------------


def test_datagrams_for_a_socket_from_another_address_are_ignored() -> None:
    srt = listener()
    socket_id = connected(srt)
    srt.receive_datagram(control(ControlType.SHUTDOWN, dest_socket=socket_id, timestamp=0,
                                 body=bytes(4)).encode(), B, NOW + 0.1)
    assert srt.connection_count == 1 and events(srt) == [] and srt.ignored_datagrams == 1


def run_until(srt: SrtListener, end: float, log: list[tuple[float, ListenerEvent]],
              acks: list[float], *, start: float = 0.0) -> int:
    """Run every deadline up to `end` (none before `start`, the clock's time now); returns
    how many timer runs that took."""
    runs = 0
    while (deadline := srt.get_timer()) is not None and deadline <= end:
        due = max(deadline, start)
        srt.handle_timer(due)
        runs += 1
        log.extend((due, e) for e in events(srt))
        for packet, _ in sent(srt):
            if packet.type == ControlType.ACK and packet.info:
                acks.append(due)
        after = srt.get_timer()
        assert after is None or after > due  # a deadline is never left in the past
    return runs


def test_media_is_delivered_at_its_tsbpd_time_and_acks_come_every_10_ms() -> None:
    srt = listener()
    socket_id = connected(srt)
    log: list[tuple[float, ListenerEvent]] = []
    acks: list[float] = []
    # 100 packets, one every 2 ms, each stamped with its send time (the caller's clock
    # started at the conclusion, so its timestamp 0 is NOW).
    for i in range(100):
        arrival = NOW + 0.002 * i + 0.001
        run_until(srt, arrival, log, acks)
        srt.receive_datagram(data(socket_id, SEQ + i, 2000 * i), A, arrival)
        log.extend((arrival, e) for e in events(srt))
        sent(srt)
    run_until(srt, NOW + 0.5, log, acks)
    media = [(t, e) for t, e in log if isinstance(e, MediaReady)]
    delivered = b"".join(e.data for _, e in media)
    assert delivered == b"".join(b"payload %d" % (SEQ + i) for i in range(100))
    # Each payload is released at its timestamp plus the 120 ms latency, not before.
    assert media[0][0] == NOW + 0.120
    assert all(t <= NOW + 0.002 * 99 + 0.120 + 1e-9 for t, _ in media)
    flowing = [t for t in acks if t <= NOW + 0.2]
    gaps = [b - a for a, b in itertools.pairwise(flowing)]
    assert len(flowing) >= 15
    assert all(0.010 - 1e-9 <= gap <= 0.012 + 1e-9 for gap in gaps), gaps


def test_an_idle_connection_wakes_rarely_and_times_out() -> None:
    srt = listener()
    socket_id = connected(srt)
    srt.receive_datagram(data(socket_id, SEQ, 0), A, NOW + 0.001)
    events(srt)
    log: list[tuple[float, ListenerEvent]] = []
    acks: list[float] = []
    runs = run_until(srt, NOW + 10, log, acks)
    closed = [(t, e) for t, e in log if isinstance(e, ConnectionClosed)]
    assert closed == [(NOW + 0.001 + 5.0, closed[0][1])]
    assert closed[0][1].reason == "timeout" and closed[0][1].socket_id == socket_id
    # Repeated ACKs once per RTT + 4 RTTVar and keep-alives: a few dozen wake-ups in 5 s,
    # not the 500 a 10 ms poll would make.
    assert runs < 60
    assert srt.get_timer() is None and srt.connection_count == 0


def test_nobody_connected_means_no_timer() -> None:
    srt = listener()
    assert srt.get_timer() is None
    srt.receive_datagram(b"\x00" * 3, A, NOW)
    srt.receive_datagram(induction(5), A, NOW)
    assert srt.get_timer() is None


def test_each_connection_has_its_own_deadline() -> None:
    srt = listener()
    first = connected(srt, A, 1, NOW)
    second = connected(srt, B, 2, NOW + 0.5)
    srt.receive_datagram(data(first, SEQ, 0), A, NOW + 0.6)
    srt.receive_datagram(data(second, SEQ, 0), B, NOW + 0.6)
    events(srt)
    sent(srt)
    # The first caller's packet was stamped 0 at NOW: due at NOW + 0.12, long past; the
    # second's clock started 0.5 s later.
    log: list[tuple[float, ListenerEvent]] = []
    run_until(srt, NOW + 0.62, log, [], start=NOW + 0.6)
    assert [(e.socket_id, t) for t, e in log if isinstance(e, MediaReady)] == [
        (first, NOW + 0.6), (second, NOW + 0.62)]
    srt.close(first, "kicked: test", NOW + 0.7)
    assert [p.type for p, _ in sent(srt)] == [ControlType.SHUTDOWN]
    (closed,) = events(srt)
    assert isinstance(closed, ConnectionClosed) and closed.socket_id == first
    assert srt.connection_count == 1 and srt.get_timer() is not None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 30), st.booleans()),
                min_size=1, max_size=80))
def test_deadlines_always_move_forward(arrivals: list[tuple[int, int, bool]]) -> None:
    """Packets in any order, with gaps and duplicates: a timer run never leaves work due."""
    srt = listener()
    socket_id = connected(srt)
    now = NOW
    for offset, gap_ms, drop_request in arrivals:
        run_until(srt, now + gap_ms / 1000, [], [], start=now)
        now += gap_ms / 1000
        if drop_request:
            body = DropRequest(SEQ + offset, SEQ + offset + 2).encode()
            srt.receive_datagram(control(ControlType.DROPREQ, dest_socket=socket_id,
                                         timestamp=0, body=body).encode(), A, now)
        else:
            srt.receive_datagram(data(socket_id, SEQ + offset, offset * 5000), A, now)
        events(srt)
        sent(srt)
    run_until(srt, now + 10, [], [], start=now)
    assert srt.connection_count == 0
