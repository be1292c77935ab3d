"""QoE intake rules: batch validation, clock mapping, admission bounds, viewer counting.

The unit tests drive `QoeIntake` on a hand-moved clock; the HTTP test floods a node's
`POST /qoe/PID` with fresh view ids from one address and checks what reached the
database.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from golive.core import BucketTable
from golive.web.qoe import (
    MAX_BODY_BYTES,
    MAX_EVENTS_PER_BATCH,
    BatchError,
    QoeIntake,
    QoeLimits,
    ViewerTracker,
    ViewRateLimit,
    parse_batch,
    server_events,
)

VIEW = "0123456789abcdef0123"


def _body(events: list[dict[str, object]], sent: float = 10_000, view: str = VIEW) -> bytes:
    return json.dumps({"view_id": view, "sent": sent, "events": events}).encode()


def test_a_good_batch_moves_event_times_onto_the_server_clock() -> None:
    batch = parse_batch(_body([
        {"type": "start", "t": 4000, "muted": True, "native": False, "rendition": "480p"},
        {"type": "first_frame", "t": 4000, "ms": 812.5},
        {"type": "stall", "t": 8000, "ms": 450},
        {"type": "pause", "t": 8500, "ms": 30_000},
        {"type": "quality", "t": 9000, "level": 1, "height": 360, "bitrate": 800000,
         "auto": True},
        {"type": "error", "t": 9500, "code": "fragLoadError", "fatal": False, "message": "x"},
        {"type": "latency", "t": 10_000, "seconds": 1.25},
    ]))
    now = datetime(2030, 1, 1, tzinfo=UTC)
    events = server_events(batch, now)
    assert [e.type for e in events] == ["start", "first_frame", "stall", "pause", "quality",
                                        "error", "latency"]
    assert events[0].at == now - timedelta(seconds=6)
    assert events[-1].at == now
    assert events[0].data == {"muted": True, "native": False, "rendition": "480p"}
    assert events[3].data == {"ms": 30_000}
    assert events[4].data == {"level": 1, "height": 360, "bitrate": 800000, "auto": True}


def test_a_start_names_its_protocol_and_player_when_the_page_does() -> None:
    batch = parse_batch(_body([{"type": "start", "t": 1, "muted": False, "protocol": "whep",
                                "player": "whep"}]))
    [event] = server_events(batch, datetime(2030, 1, 1, tzinfo=UTC))
    assert event.data == {"muted": False, "native": False, "rendition": "", "protocol": "whep",
                          "player": "whep"}


@pytest.mark.parametrize("events", [
    [{"type": "bogus", "t": 1}],
    [{"type": "latency", "t": 1, "seconds": -1}],
    [{"type": "latency", "t": 1, "seconds": 99_999}],
    [{"type": "latency", "t": 1, "seconds": "1"}],
    [{"type": "latency", "t": 1, "seconds": 1, "extra": 1}],
    [{"type": "stall", "t": 1}],
    [{"type": "quality", "t": 1, "level": 99, "height": 1, "bitrate": 1, "auto": True}],
    [{"type": "error", "t": 1, "code": "bad code!", "fatal": True}],
    [{"type": "error", "t": 1, "code": "x", "fatal": True, "message": "m" * 301}],
    [{"type": "latency", "t": 20_000, "seconds": 1}],   # after `sent`
    [{"type": "start", "t": 1, "muted": True, "protocol": "rtmp"}],
    [{"type": "start", "t": 1, "muted": True, "player": "x" * 10_000}],
    [{"type": "start", "t": 1, "muted": True, "protocol": 1}],
    [{"type": "stall", "t": 1, "ms": -5}],
    [{"type": "pause", "t": 1}],
    [{"type": "pause", "t": 1, "ms": 1e12}],
    [{"type": "first_frame", "t": 1, "ms": 1e300}],
    [{"type": "latency", "t": -1, "seconds": 1}],
    [],
    [{"type": "latency", "t": 1, "seconds": 1}] * (MAX_EVENTS_PER_BATCH + 1),
])
def test_bad_batches_are_refused_with_a_reason(events: list[dict[str, object]]) -> None:
    with pytest.raises(BatchError) as info:
        parse_batch(_body(events))
    assert str(info.value)


def test_events_older_than_ten_minutes_are_refused() -> None:
    parse_batch(_body([{"type": "latency", "t": 0, "seconds": 1}], sent=600_000))
    with pytest.raises(BatchError, match="10 minutes"):
        parse_batch(_body([{"type": "latency", "t": 0, "seconds": 1}], sent=600_001))


@pytest.mark.parametrize("body", [
    b"", b"null", b"[]", b"{", b'{"view_id": "short", "sent": 1, "events": []}',
    _body([{"type": "latency", "t": 1, "seconds": 1}], view="../../etc/passwd-xxxxxxx"),
    b'{"view_id": "0123456789abcdef0123", "sent": NaN, "events": []}',
    b'{"view_id": "0123456789abcdef0123", "sent": 9, "events": [{"type": "stall", "t": 1, "ms": NaN}]}',
    b'{"view_id": "0123456789abcdef0123", "sent": 9, "events": [{"type": "latency", "t": 1, "seconds": Infinity}]}',
    b"x" * (MAX_BODY_BYTES + 1),
])
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(BatchError):
        parse_batch(body)


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise_anything_but_batch_error(body: bytes) -> None:
    try:
        parse_batch(body)
    except BatchError:
        pass


def test_rate_limit_is_per_view_and_refills() -> None:
    limit = ViewRateLimit(rate=0.5, burst=2)
    assert limit.allow("a", now=0) == 0
    assert limit.allow("a", now=0) == 0
    assert limit.allow("a", now=0) == pytest.approx(2.0)
    assert limit.allow("b", now=0) == 0
    assert limit.allow("a", now=4) == 0


def test_rate_limit_table_is_bounded() -> None:
    limit = ViewRateLimit(max_views=3)
    for i in range(10):
        limit.allow(f"view{i}", now=0)
    assert len(limit) == 3


def test_viewer_tracker_counts_recent_addresses_per_playback_id() -> None:
    tracker = ViewerTracker(window=30, max_viewers=100)
    tracker.seen("p1", "192.0.2.1", now=0)
    tracker.seen("p1", "192.0.2.2", now=10)
    tracker.seen("p2", "192.0.2.3", now=10)
    tracker.seen("p1", "192.0.2.1", now=20)
    assert tracker.count("p1", now=20) == 2
    assert tracker.count("p2", now=20) == 1
    assert tracker.count("p1", now=45) == 1  # 192.0.2.2 last seen at 10
    assert tracker.count("p2", now=45) == 0
    assert tracker.count("p1", now=60) == 0


def test_viewer_tracker_is_bounded() -> None:
    tracker = ViewerTracker(window=30, max_viewers=3)
    for i in range(10):
        tracker.seen("p1", f"192.0.2.{i}", now=0)
    assert tracker.count("p1", now=0) == 3


def test_token_buckets_peek_without_spending_and_refill() -> None:
    buckets = BucketTable(rate=1.0, burst=2)
    assert buckets.wait("a", now=0) == 0
    assert buckets.wait("a", now=0) == 0  # looking costs nothing
    buckets.spend("a", now=0)
    buckets.spend("a", now=0)
    assert buckets.wait("a", now=0) == pytest.approx(1.0)
    assert buckets.wait("b", now=0) == 0
    assert buckets.wait("a", now=1.0) == 0


SMALL = QoeLimits(beacons_per_address_per_second=100, beacon_burst_per_address=100,
                  new_views_per_address_per_minute=6, new_view_burst_per_address=5,
                  new_views_per_stream_per_second=1, new_view_burst_per_stream=8)


def _view(i: int) -> str:
    return f"view{i:016d}"


def test_fresh_view_ids_from_one_address_are_refused_past_the_bound() -> None:
    intake = QoeIntake(SMALL)
    admitted = []
    for i in range(50):
        if intake.admit_beacon("192.0.2.1:5000", _view(i), now=0) is None:
            admitted.append(intake.admit_view("192.0.2.1:5000", _view(i), "ls_1", now=0))
    assert admitted[:5] == [None] * 5
    refusals = [r for r in admitted if r is not None]
    assert len(admitted) - len(refusals) == 5
    assert refusals[0].message == "too many new views from this address"
    assert refusals[0].retry_after == pytest.approx(10.0)  # one view per 10 s refills
    assert refusals[0].retry_after_header == "10"
    # A view already admitted keeps reporting; another address still gets in.
    assert intake.admit_view("192.0.2.1:5001", _view(0), "ls_1", now=0) is None
    assert intake.admit_view("198.51.100.9:4000", _view(99), "ls_1", now=0) is None
    # Ten seconds later the first address may start one more view.
    assert intake.admit_view("192.0.2.1:5000", _view(60), "ls_1", now=10) is None


def test_many_addresses_at_once_are_bounded_per_stream() -> None:
    intake = QoeIntake(SMALL)
    results = [intake.admit_view(f"203.0.113.{i}", _view(i), "ls_1", now=0) for i in range(20)]
    assert results[:8] == [None] * 8
    assert {r.message for r in results[8:] if r is not None} == {
        "too many new views of this stream"}
    assert intake.admit_view("203.0.113.99", _view(99), "ls_other", now=0) is None
    assert intake.admit_view("203.0.113.98", _view(98), "ls_1", now=1.0) is None


def test_beacons_are_bounded_per_address_whatever_the_view_id() -> None:
    intake = QoeIntake(QoeLimits(beacons_per_address_per_second=2, beacon_burst_per_address=4))
    results = [intake.admit_beacon("192.0.2.1", _view(i), now=0) for i in range(6)]
    assert results[:4] == [None] * 4
    refused = results[4]
    assert refused is not None and refused.message == "too many QoE batches from this address"
    assert intake.admit_beacon("192.0.2.2", _view(7), now=0) is None
    # An IPv6 viewer counts by its /64: another address of it finds the bucket empty.
    for i in range(4):
        assert intake.admit_beacon(f"[2001:db8:5:5::{i + 1}]:443", _view(10 + i), now=0) is None
    assert intake.admit_beacon("2001:db8:5:5:ffff::9", _view(20), now=0) is not None
    assert intake.admit_beacon("2001:db8:5:6::1", _view(21), now=0) is None


def test_many_view_ids_from_one_address_count_as_one_viewer() -> None:
    intake = QoeIntake()
    for i in range(5):
        intake.stored("p1", f"192.0.2.1:{5000 + i}", now=0)
    intake.stored("p1", "198.51.100.9:4000", now=0)
    assert intake.viewers.count("p1", now=0) == 2
