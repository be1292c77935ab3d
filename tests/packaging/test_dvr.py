"""The DVR window: playlists over minutes of segments from an index, and their delta updates."""

from __future__ import annotations

from datetime import datetime, timedelta

import m3u8
import pytest
from tests.llhls_rules import check_media_playlist, check_reload
from tests.packaging.test_window import INIT, PART, START, Feeder, window

from golive.formats.isobmff import Fragment, InitSegment
from golive.packaging.dvr import MAX_DVR_WINDOW, DvrIndex
from golive.packaging.window import EVICTION_SLACK_SEGMENTS


def _date(line: str) -> datetime:
    return datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00"))


def test_ten_minute_window_lists_every_segment_and_delta_update_is_a_tenth() -> None:
    w = window(dvr_window=600)
    feed = Feeder(w)  # 5 parts of 0.2 s: one-second segments
    feed.parts(5 * 900 + 2)  # 15 minutes of media, then two parts of the open segment
    full = w.playlist()
    parsed = check_media_playlist(full, low_latency=True)
    complete = [s for s in parsed.segments if s.uri is not None]
    # The window slid: the last 600 s are listed, numbered on from where it began.
    assert len(complete) == 600
    assert parsed.media_sequence == 300 == w.media_sequence
    assert complete[0].uri == "720p/seg-300.m4s"
    assert complete[-1].uri == "720p/seg-899.m4s"
    assert "EXT-X-PLAYLIST-TYPE" not in full  # not EVENT: the oldest segments leave
    # Only the newest segments' bytes are held; the rest is the index.
    assert w.memory_bytes < 20 * 5 * 1000
    assert w.archived(300) and w.archived(880) and not w.archived(899) and not w.archived(299)
    assert not w.archived_init(0)  # the window's own init: served from memory

    delta = w.playlist(skip=True)
    skipped = check_media_playlist(delta, low_latency=True)
    assert skipped.skip is not None
    assert len(delta.encode()) * 10 < len(full.encode())
    assert skipped.media_sequence == parsed.media_sequence
    # The delta's segments are the full playlist's newest ones, the skip said how many.
    tail = [s for s in skipped.segments if s.uri is not None]
    assert skipped.skip.skipped_segments + len(tail) == len(complete)
    assert [s.uri for s in tail] == [s.uri for s in complete[-len(tail) :]]
    assert [s.duration for s in tail] == [s.duration for s in complete[-len(tail) :]]
    # The skipped segments are all older than CAN-SKIP-UNTIL before the end.
    listed = sum(s.duration for s in tail) + sum(p.duration for p in parsed.segments[-1].parts)
    assert listed >= skipped.server_control.can_skip_until - 1
    # Dates: the lead's date plus the durations before a segment is that segment's date.
    head = _date(next(line for line in full.splitlines() if "PROGRAM-DATE-TIME" in line))
    tail_date = _date(next(line for line in delta.splitlines() if "PROGRAM-DATE-TIME" in line))
    before = sum(s.duration for s in complete[: len(complete) - len(tail)])
    assert abs((tail_date - head).total_seconds() - before) < 1e-3


def test_media_sequence_moves_as_the_window_slides() -> None:
    w = window(dvr_window=60)
    feed = Feeder(w)
    sequences = []
    previous = w.playlist()
    for _ in range(12):
        feed.parts(5 * 10)
        current = w.playlist()
        check_reload(previous, current)
        parsed = check_media_playlist(current, low_latency=True)
        sequences.append(parsed.media_sequence)
        assert sum(s.duration for s in parsed.segments if s.uri) <= 60 + 1e-6
        previous = current
    assert sequences[:5] == [0] * 5
    assert sequences[6:] == sorted(sequences[6:]) and sequences[-1] == 119 - 60  # 60 complete, the 120th open


def test_old_inits_and_discontinuities_stay_in_the_dvr_part() -> None:
    w = window(dvr_window=120)
    feed = Feeder(w)
    feed.parts(5 * 30)
    w.set_init(InitSegment(b"init-1", INIT.tracks))  # an encoder restart: a new timeline
    feed.parts(5 * 30 + 1)
    full = w.playlist()
    check_media_playlist(full, low_latency=True)
    lines = full.splitlines()
    assert lines.count('#EXT-X-MAP:URI="720p/init-0.mp4"') == 1
    assert lines.count('#EXT-X-MAP:URI="720p/init-1.mp4"') == 1
    assert lines.count("#EXT-X-DISCONTINUITY") == 1
    assert "#EXT-X-DISCONTINUITY-SEQUENCE" not in full
    # Each timeline starts with a date.
    map1 = lines.index('#EXT-X-MAP:URI="720p/init-1.mp4"')
    assert lines[map1 - 1] == "#EXT-X-DISCONTINUITY"
    assert lines[map1 + 1].startswith("#EXT-X-PROGRAM-DATE-TIME:")
    assert w.archived_init(0) and not w.archived_init(1)  # 1 is the window's own
    # The first timeline slides out: the discontinuity sequence counts it.
    feed.parts(5 * 100)
    later = check_media_playlist(w.playlist(), low_latency=True)
    assert later.discontinuity_sequence == 1
    assert '720p/init-0.mp4' not in w.playlist() and not w.archived_init(0)
    assert len(later.segments) > 100


def test_without_a_dvr_window_the_playlist_is_the_live_window() -> None:
    w = window()
    Feeder(w).parts(5 * 100)
    parsed = check_media_playlist(w.playlist(), low_latency=True)
    assert len([s for s in parsed.segments if s.uri]) == 6
    assert w.dvr is None and not w.archived(10)


def test_short_dvr_window_within_memory_lists_the_same_as_memory() -> None:
    """Segments both in memory and in the index are listed once, from memory."""
    w = window(dvr_window=4)
    Feeder(w).parts(5 * 30)
    parsed = m3u8.loads(w.playlist())
    uris = [s.uri for s in parsed.segments if s.uri]
    assert len(uris) == len(set(uris)) == 6
    assert EVICTION_SLACK_SEGMENTS >= 0


def test_index_is_bounded_in_time_and_count() -> None:
    with pytest.raises(ValueError):
        DvrIndex("720p", MAX_DVR_WINDOW + 1)
    with pytest.raises(ValueError):
        DvrIndex("720p", 0)
    index = DvrIndex("720p", 3600, max_entries=50)
    start = datetime(2024, 5, 1)
    for msn in range(200):
        index.add(msn=msn, generation=0, duration=0.5, program_date_time=start,
                  discontinuity=False, discontinuity_sequence=0, gap=False)
    assert len(index) == 50 and index.first_msn == 150
    index.add(msn=10, generation=0, duration=0.5, program_date_time=start,
              discontinuity=False, discontinuity_sequence=0, gap=False)
    assert len(index) == 50  # an old number is never listed again


@pytest.mark.parametrize("part", [PART])
def test_skip_is_only_for_low_latency(part: float) -> None:
    w = window(low_latency=False, dvr_window=600)
    Feeder(w).parts(5 * 200)
    assert "EXT-X-SKIP" not in w.playlist(skip=True)
    assert len(m3u8.loads(w.playlist()).segments) == 199  # and the open one, unlisted


def test_dates_of_the_dvr_part_follow_a_start_up_backlog() -> None:
    """An encoder catching up delivers its first parts late: the window's dates move back
    once, and the listed DVR segments move with them, so a delta update's dates agree."""
    late = timedelta(seconds=3)  # the first 20 s of media arrive 3 s late, then on time
    w2 = window(dvr_window=600)
    for n in range(5 * 40 + 1):
        t = n * PART
        arrived = START + timedelta(seconds=t) + (late if n < 5 * 20 else timedelta(0))
        w2.add_fragment(Fragment(b"x" * 100, n + 1, n % 5 == 0, t, PART), arrived)
    full, delta = w2.playlist(), w2.playlist(skip=True)
    complete = [s for s in m3u8.loads(full).segments if s.uri]
    tail = [s for s in m3u8.loads(delta).segments if s.uri]
    head = _date(next(line for line in full.splitlines() if "PROGRAM-DATE-TIME" in line))
    tail_date = _date(next(line for line in delta.splitlines() if "PROGRAM-DATE-TIME" in line))
    before = sum(s.duration for s in complete[: len(complete) - len(tail)])
    assert abs((tail_date - head).total_seconds() - before) < 1e-3
    assert head == START  # the earliest availability: the backlog's lateness taken back
