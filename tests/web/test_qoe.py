"""QoE intake rules: batch validation, clock mapping, per-view rate limit, viewer tracking."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from golive.web.qoe import (
    MAX_BODY_BYTES,
    MAX_EVENTS_PER_BATCH,
    BatchError,
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
        {"type": "quality", "t": 9000, "level": 1, "height": 360, "bitrate": 800000,
         "auto": True},
        {"type": "error", "t": 9500, "code": "fragLoadError", "fatal": False, "message": "x"},
        {"type": "latency", "t": 10_000, "seconds": 1.25},
    ]))
    now = datetime(2030, 1, 1, tzinfo=UTC)
    events = server_events(batch, now)
    assert [e.type for e in events] == ["start", "first_frame", "stall", "quality", "error",
                                        "latency"]
    assert events[0].at == now - timedelta(seconds=6)
    assert events[-1].at == now
    assert events[0].data == {"muted": True, "native": False, "rendition": "480p"}
    assert events[3].data == {"level": 1, "height": 360, "bitrate": 800000, "auto": True}


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
    assert len(limit._buckets) == 3


def test_viewer_tracker_counts_recent_views_per_playback_id() -> None:
    tracker = ViewerTracker(window=30, max_views=100)
    tracker.seen("p1", "v1", now=0)
    tracker.seen("p1", "v2", now=10)
    tracker.seen("p2", "v3", now=10)
    tracker.seen("p1", "v1", now=20)
    assert tracker.count("p1", now=20) == 2
    assert tracker.count("p2", now=20) == 1
    assert tracker.count("p1", now=45) == 1  # v2 last seen at 10
    assert tracker.count("p2", now=45) == 0
    assert tracker.count("p1", now=60) == 0
