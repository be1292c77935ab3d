"""A rendition's window: segmenting, LL-HLS playlists, eviction, blocking reload."""

from __future__ import annotations

import asyncio
import re
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import m3u8
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.llhls_rules import check_media_playlist, check_reload, segment_dates
from tests.mediatools import FFMPEG

from golive.formats.isobmff import Fragment, FragmentReader, InitSegment, TrackInfo
from golive.packaging.window import RenditionWindow

START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
PART = 0.2
INIT = InitSegment(
    b"init-0",
    (
        TrackInfo(1, "video", 90000, "avc1.64001f", 1280, 720),
        TrackInfo(2, "audio", 48000, "mp4a.40.2", None, None),
    ),
)


def window(*, low_latency: bool = True, **kwargs: Any) -> RenditionWindow:
    w = RenditionWindow(
        "720p",
        part_target=PART,
        low_latency=low_latency,
        bandwidth=3_300_000,
        average_bandwidth=3_000_000,
        frame_rate=29.97,
        **kwargs,
    )
    w.set_init(INIT)
    return w


class Feeder:
    """Feeds a window fragments on a continuous timeline: `parts_per_gop` parts per GOP."""

    def __init__(self, target: RenditionWindow, parts_per_gop: int = 5, size: int = 1000) -> None:
        self.target = target
        self.parts_per_gop = parts_per_gop
        self.size = size
        self.time = 0.0
        self.count = 0

    def part(self, *, duration: float = PART, independent: bool | None = None) -> Fragment:
        if independent is None:
            independent = self.count % self.parts_per_gop == 0
        fragment = Fragment(
            bytes([self.count % 256]) * self.size, self.count + 1, independent, self.time, duration
        )
        self.target.add_fragment(fragment, START + timedelta(seconds=self.time))
        self.time += min(duration, PART)
        self.count += 1
        return fragment

    def parts(self, n: int) -> None:
        for _ in range(n):
            self.part()


def test_segments_start_at_independent_fragments() -> None:
    w = window()
    feed = Feeder(w)
    feed.parts(12)
    assert (w.last_msn, w.last_part) == (2, 1)
    text = w.playlist()
    playlist = check_media_playlist(text, low_latency=True)
    assert [s.uri for s in playlist.segments] == ["720p/seg-0.m4s", "720p/seg-1.m4s", None]
    assert [s.duration for s in playlist.segments[:2]] == [1.0, 1.0]
    assert [p.uri for p in playlist.segments[2].parts] == [
        "720p/part-2.0.m4s",
        "720p/part-2.1.m4s",
    ]
    assert playlist.segments[0].parts[0].independent == "YES"
    assert playlist.segments[0].parts[1].independent is None
    assert '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="720p/part-2.2.m4s"' in text
    assert w.next_part() == (2, 2)
    assert "#EXT-X-VERSION:9" in text and "#EXT-X-TARGETDURATION:1" in text
    assert "PART-HOLD-BACK=0.600" in text and "CAN-SKIP-UNTIL=6.0" in text
    assert "#EXT-X-PART-INF:PART-TARGET=0.2" in text
    assert '#EXT-X-MAP:URI="720p/init-0.mp4"' in text
    assert "#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.000Z" in text
    assert w.segment_bytes(0) == b"".join(bytes([i]) * 1000 for i in range(5))
    assert w.segment_bytes(2) is None  # still open
    assert w.part_bytes(2, 1) == bytes([11]) * 1000
    assert w.part_bytes(2, 2) is None
    assert w.init_bytes(0) == b"init-0" and w.init_bytes(1) is None
    assert w.parts_out_of_spec == 0


def test_preload_hint_predicts_the_next_segment_from_the_gop() -> None:
    w = window()
    feed = Feeder(w)
    feed.parts(10)  # segment 1 has all 5 parts; the GOP says a keyframe comes next
    assert w.next_part() == (2, 0)
    assert 'URI="720p/part-2.0.m4s"' in w.playlist()
    feed.part()
    assert (w.last_msn, w.last_part) == (2, 0)


def test_preload_hint_after_a_discontinuity_predicts_from_the_last_whole_gop() -> None:
    w = window()
    feed = Feeder(w)
    feed.parts(12)  # two whole GOPs, then two parts of a third
    w.mark_discontinuity()  # the publisher went away: that segment closes short
    feed.count = 0  # the returning publisher's timeline starts on a keyframe
    feed.parts(5)
    # The first new segment has a whole GOP: the next part starts the next segment,
    # not a sixth part that would never be produced.
    assert w.next_part() == (w.last_msn + 1, 0)
    feed.part()
    assert w.last_part == 0


def test_parts_only_for_the_newest_segments() -> None:
    w = window()
    Feeder(w).parts(5 * 8 + 2)
    playlist = check_media_playlist(w.playlist(), low_latency=True)
    listed = playlist.segments
    assert playlist.media_sequence == 2  # six complete segments and the open one
    assert len(listed) == 7
    assert [bool(s.parts) for s in listed] == [False, False, False, True, True, True, True]


def test_short_gops_are_joined_into_segments() -> None:
    w = window()
    Feeder(w, parts_per_gop=2).parts(13)
    playlist = check_media_playlist(w.playlist(), low_latency=True)
    assert [s.duration for s in playlist.segments if s.uri] == pytest.approx([1.2, 1.2])


def test_first_fragments_without_a_keyframe_are_dropped() -> None:
    w = window()
    feed = Feeder(w)
    feed.count = 3  # start mid-GOP
    feed.parts(4)
    assert w.fragments_dropped == 2 and (w.last_msn, w.last_part) == (0, 1)


def test_standard_mode_lists_complete_segments_only() -> None:
    w = window(low_latency=False)
    Feeder(w).parts(12)
    text = w.playlist()
    playlist = check_media_playlist(text, low_latency=False)
    assert [s.uri for s in playlist.segments] == ["720p/seg-0.m4s", "720p/seg-1.m4s"]
    assert "#EXT-X-VERSION:7" in text
    assert "SERVER-CONTROL" not in text and "PART" not in text
    assert w.part_bytes(2, 1) is not None  # still assembled into parts


def test_end_closes_the_segment_and_adds_endlist() -> None:
    w = window()
    Feeder(w).parts(7)
    w.end()
    text = w.playlist()
    playlist = check_media_playlist(text, low_latency=True)
    assert playlist.is_endlist and "PRELOAD-HINT" not in text
    assert [s.duration for s in playlist.segments] == pytest.approx([1.0, 0.4])
    assert w.segment_bytes(1) is not None
    w.add_fragment(Fragment(b"late", 99, True, 9.0, 0.2), START)
    assert w.last_msn == 1


def test_discontinuity_and_new_init() -> None:
    w = window(playlist_segments=3)
    feed = Feeder(w)
    feed.parts(7)
    w.mark_discontinuity()
    w.set_init(InitSegment(b"init-1", INIT.tracks))
    assert w.init_generation == 1
    feed.time = 0.0  # the new encoder run starts its own timeline
    feed.count = 0
    feed.parts(7)
    text = w.playlist()
    check_media_playlist(text, low_latency=True)
    lines = text.splitlines()
    at = lines.index("#EXT-X-DISCONTINUITY")
    assert lines[at + 1] == '#EXT-X-MAP:URI="720p/init-1.mp4"'
    assert lines[at + 2] == "#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.000Z"
    assert lines.count("#EXT-X-DISCONTINUITY") == 1
    assert "DISCONTINUITY-SEQUENCE" not in text
    assert w.init_bytes(1) == b"init-1" and w.init_bytes(0) == b"init-0"
    # Each segment names the init it decodes with (thumbnails decode the newest one).
    first = w.media_sequence
    assert w.segment_generation(first) == 0 and w.segment_generation(w.last_msn) == 1
    assert w.segment_generation(w.last_msn + 1) is None
    # Roll the discontinuity out of the window: the sequence counts it.
    feed.parts(5 * 6)
    text = w.playlist()
    check_media_playlist(text, low_latency=True)
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in text and "#EXT-X-DISCONTINUITY\n" not in text
    assert w.init_bytes(0) is None  # no retained segment needs it any more


def test_same_init_again_is_not_a_new_generation() -> None:
    w = window()
    w.set_init(InitSegment(b"init-0", INIT.tracks))
    assert w.init_generation == 0


def test_delta_update_skips_old_segments() -> None:
    w = window(playlist_segments=12)
    Feeder(w).parts(5 * 12 + 3)
    full = w.playlist()
    delta = w.playlist(skip=True)
    check_media_playlist(full, low_latency=True)
    parsed = check_media_playlist(delta, low_latency=True)
    # 12 s listed (+0.6 s of parts): segments starting more than 6 s before the end go.
    assert parsed.skip.skipped_segments == 7
    assert parsed.media_sequence == m3u8.loads(full).media_sequence
    assert "#EXT-X-VERSION:9" in delta
    assert "seg-6.m4s" in full and "seg-6.m4s" not in delta and "seg-7.m4s" in delta
    assert delta.split("#EXTINF")[-1] == full.split("#EXTINF")[-1]
    # Too short to skip anything: the full playlist.
    short = window(playlist_segments=5)
    Feeder(short).parts(5 * 5 + 1)
    assert short.playlist(skip=True) == short.playlist()
    # Standard mode never skips.
    standard = window(low_latency=False, playlist_segments=12)
    Feeder(standard).parts(5 * 12 + 3)
    assert "SKIP" not in standard.playlist(skip=True)


def test_eviction_keeps_the_window_and_the_byte_cap() -> None:
    w = window(playlist_segments=3)
    feed = Feeder(w)
    previous = w.playlist()
    for _ in range(20):
        feed.parts(5)
        current = w.playlist()
        check_media_playlist(current, low_latency=True)
        check_reload(previous, current)
        previous = current
    assert w.segment_bytes(0) is None and w.part_bytes(0, 0) is None
    # Behind the playlist (3 segments and the open one, 4 s): each segment that left it
    # stays for its own second plus those 4 s (RFC 8216bis 6.2.2), at real-time arrival 5.
    assert w.segment_bytes(w.last_msn - 8) is not None and w.segment_bytes(w.last_msn - 9) is None
    assert w.memory_bytes <= (3 + 1 + 5) * 5 * 1000 + len(INIT.data)
    capped = window(max_bytes=12_000)
    Feeder(capped).parts(40)
    assert capped.memory_bytes <= 12_000
    assert capped.segment_bytes(capped.last_msn - 1) is not None


def test_audio_overshoot_is_listed_on_the_video_timeline() -> None:
    w = window()
    feed = Feeder(w)
    for _ in range(12):
        feed.part(duration=0.209)  # AAC frames run past the video's 0.2 s
    playlist = check_media_playlist(w.playlist(), low_latency=True)
    assert all(p.duration == 0.2 for s in playlist.segments for p in s.parts)
    assert w.parts_out_of_spec == 0


def test_out_of_spec_parts_are_counted() -> None:
    w = window()
    feed = Feeder(w, parts_per_gop=6)
    feed.part()
    feed.part(duration=0.1)  # a short part that is not the last of its segment
    feed.parts(4)
    feed.part()  # the keyframe that closes the segment
    assert w.parts_out_of_spec == 1


def test_target_duration_is_fixed_once_announced() -> None:
    w = window()
    feed = Feeder(w)
    feed.parts(6)
    assert w.playlist().count("#EXT-X-TARGETDURATION:1") == 1
    feed.parts_per_gop = 1000
    feed.count = 1
    feed.parts(12)  # a 2.4 s GOP
    feed.part(independent=True)
    assert w.target_duration == 1 and w.segments_over_target == 1


def test_real_encoder_fragments_make_a_valid_playlist() -> None:
    data = subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc2=s=320x180:r=30", "-f", "lavfi", "-i", "sine",
         "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-keyint_min", "30",
         "-sc_threshold", "0", "-c:a", "aac", "-f", "mp4",
         "-movflags", "+frag_keyframe+empty_moov+default_base_moof+cmaf",
         "-frag_duration", "200000", "pipe:1"],
        check=True, capture_output=True, timeout=120,
    ).stdout  # fmt: skip
    w = RenditionWindow(
        "180p", part_target=0.2, low_latency=True, bandwidth=1, average_bandwidth=1, frame_rate=30
    )
    for item in FragmentReader().feed(data):
        if isinstance(item, InitSegment):
            w.set_init(item)
        else:
            w.add_fragment(item, START + timedelta(seconds=item.decode_time))
            check_media_playlist(w.playlist(), low_latency=True)
    w.end()
    playlist = check_media_playlist(w.playlist(), low_latency=True)
    assert [round(s.duration, 3) for s in playlist.segments[:3]] == [1.0, 1.0, 1.0]
    assert w.parts_out_of_spec == 0


# Blocking reload ---------------------------------------------------------------------


def test_state_rules() -> None:
    w = window()
    assert w.state(0, None) == "pending" and w.state(0, 0) == "pending"
    assert w.state(2, None) == "too_far" and w.state(1, 0) == "too_far"
    feed = Feeder(w)
    feed.parts(7)  # segment 0 complete, segment 1 has parts 0 and 1
    assert w.state(0, None) == "ready" and w.state(0, 9) == "ready"
    assert w.state(1, 1) == "ready" and w.state(1, 2) == "pending"
    assert w.state(1, None) == "pending"
    assert w.state(2, None) == "pending" and w.state(3, None) == "pending"
    assert w.state(4, None) == "too_far"
    assert w.state(2, 0) == "pending" and w.state(2, 3) == "pending"
    assert w.state(2, 50) == "too_far" and w.state(3, 0) == "too_far"
    w.end()
    assert w.state(40, 0) == "ready"


async def test_wait_resolves_on_arrival() -> None:
    w = window()
    feed = Feeder(w)
    feed.parts(3)
    part = asyncio.create_task(w.wait(0, 3))
    segment = asyncio.create_task(w.wait(0, None))
    next_segment = asyncio.create_task(w.wait(1, 0))
    await asyncio.sleep(0)
    assert w.waiter_count == 3
    feed.part()
    await asyncio.wait_for(part, 1)
    assert not segment.done()
    feed.parts(2)  # part 4, then the keyframe that closes segment 0 and opens segment 1
    await asyncio.wait_for(asyncio.gather(segment, next_segment), 1)
    assert w.waiter_count == 0
    await asyncio.wait_for(w.wait(0, 1), 1)  # already there


async def test_wait_resolves_on_end() -> None:
    w = window()
    Feeder(w).parts(2)
    waiter = asyncio.create_task(w.wait(1, None))
    await asyncio.sleep(0)
    w.end()
    await asyncio.wait_for(waiter, 1)
    assert w.waiter_count == 0


async def test_cancelled_waiter_is_removed() -> None:
    w = window()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(w.wait(0, 0), 0.01)
    assert w.waiter_count == 0
    waiter = asyncio.create_task(w.wait(0, 0))
    other = asyncio.create_task(w.wait(0, 0))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0)
    assert w.waiter_count == 1
    Feeder(w).part()
    await asyncio.wait_for(other, 1)
    assert w.waiter_count == 0


async def test_callbacks_are_called_from_the_loop_together_and_in_order() -> None:
    w = window()
    feed = Feeder(w)
    feed.parts(3)
    called: list[str] = []
    assert not w.call_when_ready(0, 2, lambda: called.append("there"))  # arranges nothing
    for name in ("a", "b", "c"):
        assert w.call_when_ready(0, 3, lambda name=name: called.append(name))  # type: ignore[misc]
    assert w.call_when_ready(0, 4, lambda: called.append("later"))
    assert w.waiter_count == 4
    feed.part()  # part 3
    assert called == []  # never within the change
    await asyncio.sleep(0)
    assert called == ["a", "b", "c"] and w.waiter_count == 1


async def test_a_forgotten_or_failing_callback_stops_no_other(
        caplog: pytest.LogCaptureFixture) -> None:
    w = window()
    called: list[str] = []

    def fails() -> None:
        raise RuntimeError("boom")

    def forgotten() -> None:
        called.append("forgotten")

    for callback in (fails, forgotten, lambda: called.append("kept")):
        assert w.call_when_ready(0, 0, callback)
    w.forget_callback(0, 0, forgotten)
    assert w.waiter_count == 2
    Feeder(w).part()
    await asyncio.sleep(0)
    assert called == ["kept"] and "call_when_ready callback failed" in caplog.text
    w.forget_callback(0, 0, forgotten)  # gone already: nothing happens
    assert w.waiter_count == 0


async def test_callbacks_are_called_on_end() -> None:
    w = window()
    Feeder(w).parts(2)
    called: list[int] = []
    assert w.call_when_ready(1, None, lambda: called.append(1))
    w.end()
    await asyncio.sleep(0)
    assert called == [1] and w.waiter_count == 0


# Suspended renditions (the encoder gave one up under load) ----------------------------


def pair() -> tuple[RenditionWindow, RenditionWindow, Feeder, Feeder]:
    """The suspended-to-be 720p and its sibling 360p, fed the same timeline in lockstep."""
    top, sibling = window(), window()
    sibling.name = "360p"
    return top, sibling, Feeder(top), Feeder(sibling)


def test_suspended_rendition_goes_on_with_gaps_in_step_with_its_sibling() -> None:
    top, sibling, feed_top, feed_sibling = pair()
    for _ in range(12):  # two segments and two parts, both renditions
        feed_top.part()
        feed_sibling.part()
    before = top.playlist()
    top.suspend()
    for _ in range(18):
        feed_sibling.part()
        feed_top.time += PART  # the encoder no longer produces 720p
        top.mirror(sibling)
    text = top.playlist()
    playlist = check_media_playlist(text, low_latency=True)
    check_reload(before, text)
    assert (top.last_msn, top.last_part) == (sibling.last_msn, sibling.last_part)
    assert top.media_sequence == sibling.media_sequence
    msn = playlist.media_sequence
    segments = {msn + i: s for i, s in enumerate(playlist.segments)}
    # The segment the suspension cut short is real media; every later one is a gap.
    # (EXT-X-GAP goes with an EXTINF: the open segment shows its gaps on its parts.)
    assert [s.gap_tag for s in segments.values()] == [None, None, None, True, True, None]
    assert segments[msn + 5].uri is None and {p.gap for p in segments[msn + 5].parts} == {"YES"}
    assert [round(s.duration, 3) for s in segments.values() if s.uri][:3] == [1.0, 1.0, 0.4]
    own = m3u8.loads(sibling.playlist())
    for i, segment in enumerate(own.segments[3:], start=3):
        gap = playlist.segments[i]
        assert gap.duration == segment.duration
        assert [p.duration for p in gap.parts] == [p.duration for p in segment.parts]
        assert {p.gap for p in gap.parts} == {"YES"}
    # The same dates (the first gap segment is dated on its own: media is missing before
    # it, where the suspension cut the segment before short).
    dates = {d.msn: d.date for d in segment_dates(text)}
    assert {d.msn: d.date for d in segment_dates(sibling.playlist()) if d.msn in dates} == dates
    assert "#EXT-X-PRELOAD-HINT" not in text  # the next part is a gap too
    assert "#EXT-X-DISCONTINUITY" not in text  # the same timeline, only without media
    gap_msn = top.last_msn - 1
    assert top.is_gap(gap_msn, None) and top.is_gap(gap_msn, 0)
    assert top.segment_bytes(gap_msn) is None and top.part_bytes(gap_msn, 0) is None
    assert top.segment_bytes(msn) is not None and not top.is_gap(msn, 0)
    # Blocking reload on a gapped rendition is answered as parts (gaps) appear.
    assert top.state(top.last_msn, top.last_part) == "ready"
    assert top.state(top.last_msn + 1, 0) == "pending"


def test_suspension_follows_the_siblings_discontinuities() -> None:
    top, sibling, feed_top, feed_sibling = pair()
    for _ in range(10):
        feed_top.part()
        feed_sibling.part()
    top.suspend()
    top.mark_discontinuity()  # an encoder restart: ignored, the sibling's segments say it
    sibling.mark_discontinuity()
    restarted = Feeder(sibling)  # the new run's clock starts at 0
    restarted.count = feed_sibling.count - feed_sibling.count % 5
    for _ in range(10):
        restarted.part()
        top.mirror(sibling)
    text = top.playlist()
    check_media_playlist(text, low_latency=True)
    assert text.count("#EXT-X-DISCONTINUITY\n") == sibling.playlist().count("#EXT-X-DISCONTINUITY\n")
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1


def test_resumed_rendition_takes_media_back_at_a_shared_segment_start() -> None:
    top, sibling, feed_top, feed_sibling = pair()
    for _ in range(10):
        feed_top.part()
        feed_sibling.part()
    top.suspend()
    for _ in range(7):  # into the middle of a gap segment
        feed_sibling.part()
        top.mirror(sibling)
        feed_top.time += PART
        feed_top.count += 1
    top.resume()
    # The encoder restarts 720p mid-GOP: its first keyframe is not on a segment start.
    dropped = top.fragments_dropped
    feed_top.part(independent=True)
    assert top.fragments_dropped == dropped + 1 and top.suspended
    for _ in range(3):  # the sibling finishes that segment...
        feed_sibling.part()
        top.mirror(sibling)
    feed_top.parts(2)  # (720p's rest of that GOP, not taken)
    assert top.fragments_dropped == dropped + 3
    feed_sibling.part()  # ...and starts the next, which 720p starts too
    top.mirror(sibling)
    assert top.last_msn == sibling.last_msn - 1  # not mirrored while resuming
    feed_top.part()
    assert not top.suspended and top.last_msn == sibling.last_msn
    for _ in range(9):
        feed_sibling.part()
        top.mirror(sibling)  # no effect any more
        feed_top.part()
    text = top.playlist()
    playlist = check_media_playlist(text, low_latency=True)
    assert "#EXT-X-DISCONTINUITY" not in text
    assert [s.gap_tag for s in playlist.segments][-3:] == [True, None, None]
    assert (top.last_msn, top.last_part) == (sibling.last_msn, sibling.last_part)
    assert "#EXT-X-PRELOAD-HINT" in text
    assert top.part_bytes(top.last_msn, 0) is not None


def test_preload_hint_keeps_predicting_the_gop_after_a_discontinuity() -> None:
    w = window()
    feed = Feeder(w)
    feed.parts(12)  # whole GOPs of five parts, then two
    w.mark_discontinuity()  # an encoder restart cut that segment short
    restarted = Feeder(w)  # the new run's clock starts at 0, same GOP
    restarted.parts(5)
    # Five parts of a new segment: the last whole GOP says a keyframe comes next, not a
    # sixth part that would never exist.
    assert w.next_part() == (w.last_msn + 1, 0)
    check_media_playlist(w.playlist(), low_latency=True)


def test_production_lag_grows_when_parts_arrive_late() -> None:
    """`production()`: the newest part's arrival and how far behind its date it came."""
    w = window()
    assert w.production() is None
    feeder = Feeder(w)
    for _ in range(10):
        feeder.part()
    arrived, lag = w.production() or (None, None)
    assert arrived == START + timedelta(seconds=9 * PART) and lag == pytest.approx(0, abs=1e-6)
    # The encoder falls behind: the next part arrives 0.5 s later than its media time says.
    fragment = Fragment(b"x" * 100, 99, False, feeder.time, PART)
    w.add_fragment(fragment, START + timedelta(seconds=feeder.time + 0.5))
    arrived, lag = w.production() or (None, None)
    assert arrived == START + timedelta(seconds=feeder.time + 0.5)
    assert lag == pytest.approx(0.5, abs=1e-6)
def _hinted(w: RenditionWindow) -> tuple[int, int]:
    line = next(x for x in w.playlist().splitlines() if x.startswith("#EXT-X-PRELOAD-HINT"))
    msn, index = line.rsplit("/part-", 1)[1].removesuffix('.m4s"').split(".")
    return int(msn), int(index)


def test_a_hinted_part_an_encoder_restart_cut_off_is_superseded() -> None:
    w = window()
    feed = Feeder(w)
    feed.parts(7)  # segment 1 open with two parts
    hinted = _hinted(w)
    assert hinted == (1, 2) and not w.superseded(*hinted)
    w.set_init(InitSegment(b"init-1", INIT.tracks))  # a degrade step restarts the encoder
    feed.count = 0
    feed.parts(2)
    assert w.state(*hinted) == "ready" and w.part_bytes(*hinted) is None
    assert w.superseded(*hinted)
    # Only that part: the parts it has, the new run's and ones never hinted are not.
    assert not w.superseded(1, 1) and not w.superseded(1, 3) and not w.superseded(2, 0)
    assert not w.superseded(2, 2)  # the open segment's next part is still coming


def test_a_part_hinted_just_before_a_suspension_is_superseded() -> None:
    top, sibling, feed_top, feed_sibling = pair()
    for _ in range(10):  # a whole GOP open: the hint names the next segment's first part
        feed_top.part()
        feed_sibling.part()
    hinted = _hinted(top)
    assert hinted == (2, 0)
    top.suspend()
    for _ in range(12):
        feed_sibling.part()
        feed_top.time += PART
        top.mirror(sibling)
    assert top.is_gap(*hinted) and top.superseded(*hinted)
    assert top.superseded(1, 5)  # (the part after the suspended segment's last)
    assert not top.superseded(2, 1) and not top.superseded(3, 0)  # gaps, never hinted
    assert not top.superseded(1, 0)


_LISTED_MEDIA = re.compile(r"720p/(?:part-(\d+)\.(\d+)|seg-(\d+))\.m4s")


class ListingLedger:
    """Every part and segment URI a playlist of `target` listed: when it was last listed
    and how long that playlist was. RFC 8216bis 6.2.2: media that leaves the playlist
    stays available for at least the playlist's duration after."""

    def __init__(self, target: RenditionWindow) -> None:
        self.target = target
        self.seen: dict[tuple[int, int | None], tuple[float, float]] = {}

    def load(self, now: float) -> None:
        """A player loads the playlist at `now`."""
        text = self.target.playlist()
        lasted = open_parts = 0.0  # complete segments, then the open one's parts
        for line in text.splitlines():
            if line.startswith("#EXTINF:"):
                lasted += float(line.split(":", 1)[1].rstrip(","))
                open_parts = 0.0
            elif line.startswith("#EXT-X-PART:"):
                open_parts += float(line.split("DURATION=", 1)[1].split(",", 1)[0])
        lasted += open_parts
        for line in text.splitlines():
            if "GAP=YES" in line or line.startswith("#EXT-X-PRELOAD-HINT"):
                continue
            match = _LISTED_MEDIA.search(line)
            if match is not None:
                key = ((int(match[1]), int(match[2])) if match[1] is not None
                       else (int(match[3]), None))  # fmt: skip
                self.seen[key] = (now, lasted)

    def unserved(self, now: float) -> list[tuple[int, int | None]]:
        """Media listed within its grace that the window no longer serves."""
        return [
            (msn, index)
            for (msn, index), (listed_at, lasted) in self.seen.items()
            if now - listed_at < lasted and not self.target.is_gap(msn, index)
            and (self.target.segment_bytes(msn) if index is None
                 else self.target.part_bytes(msn, index)) is None
        ]  # fmt: skip


def test_media_a_playlist_listed_is_served_through_a_catch_up_burst() -> None:
    """An encoder catching up on a backlog (a restart; a starved one fed again) delivers
    seconds of media within a moment. A player that loaded the playlist just before must
    still get what it listed: the starved-player test saw a listed 180p part answer 404
    150-250 ms later (Shaka CRITICAL 1001), when the window only kept two segments past
    the playlist however fast they came."""
    w = window()
    feed = Feeder(w)
    feed.parts(5 * 8)  # real time: arrival follows media time
    ledger = ListingLedger(w)
    ledger.load(START.timestamp() + feed.time)
    arrival = START + timedelta(seconds=feed.time + 0.2)
    for _ in range(5 * 12):  # 12 s of backlog, all arriving at once
        fragment = Fragment(b"x" * 1000, feed.count + 1, feed.count % 5 == 0, feed.time, PART)
        w.add_fragment(fragment, arrival)
        feed.time += PART
        feed.count += 1
        ledger.load(arrival.timestamp())
        assert ledger.unserved(arrival.timestamp()) == []
    assert w.memory_bytes <= w.max_bytes


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from([0.0, 0.0, 0.01, 0.2, 0.2, 1.0, 3.0]),
                                st.booleans(), st.integers(0, 25)), min_size=1, max_size=40))
def test_listed_media_stays_served_for_the_playlist_duration(
    steps: list[tuple[float, bool, int]],
) -> None:
    """Property: whatever the arrival pace (bursts, stalls) and encoder restarts, every
    part and segment a playlist listed is served until it has been out of the playlist
    for that playlist's duration."""
    w = window()
    ledger = ListingLedger(w)
    feed = Feeder(w)
    now = START.timestamp()
    for wait, restart, parts in steps:
        if restart:
            w.mark_discontinuity()
            feed.count = 0  # the next run starts at a keyframe
        for _ in range(parts):
            now += wait
            fragment = Fragment(b"x" * 100, feed.count + 1, feed.count % 5 == 0, feed.time, PART)
            w.add_fragment(fragment, datetime.fromtimestamp(now, UTC))
            feed.time += PART
            feed.count += 1
            assert ledger.unserved(now) == []
            ledger.load(now)


def test_parts_that_are_all_independent_make_segments_of_min_segment() -> None:
    # Sound alone: every part starts with a sync sample. Segments are cut at the ladder's
    # segment length (2 s here) to the nearest part, never under 0.9 s (the numbering
    # contract).
    audio_init = InitSegment(b"init-a", (TrackInfo(1, "audio", 48000, "mp4a.40.2", None, None),))
    for min_segment, parts in ((2.0, 10), (0.4, 5)):
        w = RenditionWindow("audio", part_target=PART, low_latency=True, bandwidth=140_800,
                            average_bandwidth=134_400, frame_rate=0, min_segment=min_segment)
        w.set_init(audio_init)
        feed = Feeder(w, parts_per_gop=1)
        feed.parts(3 * parts + 1)
        playlist = check_media_playlist(w.playlist(), low_latency=True)
        assert [len(s.parts) for s in playlist.segments] == [parts] * 3 + [1]
        assert all(p.independent for s in playlist.segments for p in s.parts)
        # A blocking request far past the segment's end is still refused as too far.
        assert w.last_msn == playlist.media_sequence + 3
