"""OriginStats: the origin's plain counters, as the metrics collector reads them."""

from __future__ import annotations

from golive.delivery import PART_LATENCY_BUCKETS, OriginStats
from golive.delivery import stats as stats_module
from golive.delivery.origin import _live_kind


def test_answers_by_kind_and_status_and_bytes() -> None:
    stats = OriginStats()
    stats.answered("part", 200, 1000)
    stats.answered("part", 200, 500)
    stats.answered("playlist", 503, 40)
    assert stats.requests == {("part", 200): 2, ("playlist", 503): 1}
    assert stats.bytes_out == 1540


def test_part_latency_lands_in_its_bucket() -> None:
    stats = OriginStats()
    stats.part_answered(0.0)  # the first bucket
    stats.part_answered(PART_LATENCY_BUCKETS[3])  # `le` is inclusive
    stats.part_answered(PART_LATENCY_BUCKETS[-1] + 1)  # +Inf
    assert stats.part_latency_buckets[0] == 1
    assert stats.part_latency_buckets[3] == 1
    assert stats.part_latency_buckets[-1] == 1
    assert sum(stats.part_latency_buckets) == stats.part_latency_count == 3
    assert stats.part_latency_sum == PART_LATENCY_BUCKETS[3] + PART_LATENCY_BUCKETS[-1] + 1


def test_holds() -> None:
    stats = OriginStats()
    stats.held(0.25, timed_out=False)
    stats.held(6.0, timed_out=True)
    assert (stats.holds, stats.hold_timeouts, stats.hold_seconds) == (2, 1, 6.25)


def test_viewers_age_out() -> None:
    stats = OriginStats()
    stats.viewer_seen("pid", "ll-hls", "192.0.2.1", now=100.0)
    stats.viewer_seen("pid", "ll-hls", "192.0.2.1", now=101.0)  # the same viewer again
    stats.viewer_seen("pid", "ll-hls", "192.0.2.2", now=101.0)
    stats.viewer_seen("pid", "hls", "192.0.2.3", now=90.0)
    assert stats.viewers(now=102.0) == {("pid", "ll-hls"): 2, ("pid", "hls"): 1}
    window = stats_module.VIEWER_WINDOW_S
    assert stats.viewers(now=90.0 + window + 0.5) == {("pid", "ll-hls"): 2}  # hls aged out
    assert stats.viewers(now=101.0 + window + 0.5) == {}


def test_viewer_map_is_capped_per_playback_id() -> None:
    stats = OriginStats()
    cap = stats_module.MAX_VIEWERS_PER_PLAYBACK_ID
    for i in range(cap + 10):
        stats.viewer_seen("pid", "hls", f"c{i}", now=1.0)
    assert stats.viewers(now=1.0) == {("pid", "hls"): cap}
    # Once the others have gone quiet, a new viewer takes their room (no scrape needed).
    later = 1.0 + stats_module.VIEWER_WINDOW_S + 1
    stats.viewer_seen("pid", "hls", "newcomer", now=later)
    assert stats.viewers(now=later) == {("pid", "hls"): 1}


def test_request_kinds_from_the_path() -> None:
    assert _live_kind("/live/abc.m3u8") == "playlist"
    assert _live_kind("/live/abc/480p.m3u8") == "playlist"
    assert _live_kind("/live/abc/480p/part-12.3.m4s") == "part"
    assert _live_kind("/live/abc/480p/seg-12.m4s") == "segment"
    assert _live_kind("/live/abc/480p/init-0.mp4") == "init"
    assert _live_kind("/live/abc/access") == "access"
    assert _live_kind("/live/abc/whatever") == "other"
