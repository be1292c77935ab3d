"""A broadcast's presentation: multivariant playlist, rendition reports, readiness."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.llhls_rules import attributes, check_media_playlist, check_multivariant

from golive.formats.isobmff import Fragment, InitSegment, TrackInfo
from golive.packaging.presentation import Presentation
from golive.packaging.window import RenditionWindow

START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
AUDIO = TrackInfo(2, "audio", 48000, "mp4a.40.2", None, None)


def init(width: int, height: int, profile: str = "64001f") -> InitSegment:
    video = TrackInfo(1, "video", 90000, f"avc1.{profile}", width, height)
    return InitSegment(f"init-{height}".encode(), (video, AUDIO))


def ladder(low_latency: bool = True) -> Presentation:
    p = Presentation("pb_abc", low_latency=low_latency, part_target=0.2, clock=lambda: 0.0)
    p.add_rendition("360p", bandwidth=1_000_000, average_bandwidth=900_000, frame_rate=29.97)
    p.add_rendition("720p", bandwidth=3_300_000, average_bandwidth=3_000_000, frame_rate=29.97)
    return p


def feed(window: RenditionWindow, parts: int) -> None:
    for i in range(parts):
        t = i * 0.2
        fragment = Fragment(b"m" * 100, i + 1, i % 5 == 0, t, 0.2)
        window.add_fragment(fragment, START + timedelta(seconds=t))


def test_multivariant_waits_for_an_init_and_lists_highest_first() -> None:
    p = ladder()
    assert p.multivariant_playlist() is None
    p.renditions["360p"].set_init(init(640, 360, "42c01e"))
    text = p.multivariant_playlist()
    assert text is not None
    check_multivariant(text)
    assert "720p" not in text  # no init yet: nothing to describe
    p.renditions["720p"].set_init(init(1280, 720))
    text = p.multivariant_playlist()
    assert text is not None
    playlist = check_multivariant(text)
    assert [v.uri for v in playlist.playlists] == ["pb_abc/720p.m3u8", "pb_abc/360p.m3u8"]
    lines = text.splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:9", "#EXT-X-INDEPENDENT-SEGMENTS"]
    assert lines[3] == (
        "#EXT-X-STREAM-INF:BANDWIDTH=3300000,AVERAGE-BANDWIDTH=3000000,"
        'CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=29.970,CLOSED-CAPTIONS=NONE'
    )
    assert attributes(lines[5])["CODECS"] == "avc1.42c01e,mp4a.40.2"


def test_captions_in_the_pictures_are_offered_once_found() -> None:
    p = ladder()
    p.renditions["720p"].set_init(init(1280, 720))
    p.renditions["360p"].set_init(init(640, 360, "42c01e"))
    version = p.version
    p.offer_captions()
    assert p.captions and p.version > version  # a new answer for the origin to give
    text = p.multivariant_playlist()
    assert text is not None
    check_multivariant(text)
    lines = text.splitlines()
    assert lines[3] == ('#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="Captions",'
                        'INSTREAM-ID="CC1",DEFAULT=YES,AUTOSELECT=YES')
    variants = [line for line in lines if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(variants) == 2
    assert all(attributes(line)["CLOSED-CAPTIONS"] == "cc" for line in variants)
    assert all('CLOSED-CAPTIONS="cc"' in line for line in variants)
    # A second channel found later is offered too (a new answer again); none is taken back.
    version = p.version
    p.offer_captions({"CC1", "CC3"})
    p.offer_captions({"CC1"})
    assert p.version > version and p.caption_channels == {"CC1", "CC3"}
    text = p.multivariant_playlist()
    assert text is not None
    check_multivariant(text)
    media = [line for line in text.splitlines() if line.startswith("#EXT-X-MEDIA:")]
    assert [attributes(line)["INSTREAM-ID"] for line in media] == ["CC1", "CC3"]
    assert [attributes(line)["DEFAULT"] for line in media] == ["YES", "NO"]
    version = p.version
    p.offer_captions({"CC3"})  # nothing new: the same answer
    assert p.version == version


def test_standard_mode_is_version_7() -> None:
    p = ladder(low_latency=False)
    p.renditions["720p"].set_init(init(1280, 720))
    text = p.multivariant_playlist()
    assert text is not None and "#EXT-X-VERSION:7" in text
    check_multivariant(text)


def test_audio_only_rendition_has_no_resolution() -> None:
    p = Presentation("pb_a", low_latency=True, part_target=0.2, clock=lambda: 0.0)
    window = p.add_rendition("audio", bandwidth=128_000, average_bandwidth=100_000, frame_rate=0)
    window.set_init(InitSegment(b"a", (AUDIO,)))
    text = p.multivariant_playlist()
    assert text is not None and 'CODECS="mp4a.40.2"\n' in text
    assert "RESOLUTION" not in text and "FRAME-RATE" not in text
    check_multivariant(text)


def test_media_playlist_carries_rendition_reports() -> None:
    p = ladder()
    assert p.media_playlist("720p") is None  # no init yet
    assert p.media_playlist("1080p") is None
    for name, height in (("360p", 360), ("720p", 720)):
        p.renditions[name].set_init(init(height * 16 // 9, height))
    feed(p.renditions["720p"], 7)
    feed(p.renditions["360p"], 6)
    text = p.media_playlist("720p")
    assert text is not None
    check_media_playlist(text, low_latency=True)
    assert text.endswith('#EXT-X-RENDITION-REPORT:URI="360p.m3u8",LAST-MSN=1,LAST-PART=0\n')
    assert "720p.m3u8" not in p.rendition_reports(exclude="720p")
    assert p.media_playlist("720p", skip=True) is not None
    standard = ladder(low_latency=False)
    for window in standard.renditions.values():
        window.set_init(init(1280, 720))
        feed(window, 7)
    text = standard.media_playlist("720p")
    assert text is not None and "RENDITION-REPORT" not in text
    check_media_playlist(text, low_latency=False)


def test_a_kept_playlist_follows_every_sibling_change() -> None:
    # A media playlist is kept (one object for every asker) until any rendition changes:
    # its reports name the siblings' newest parts, and its media sequence moves on.
    p = ladder()
    for name, height in (("360p", 360), ("720p", 720)):
        p.renditions[name].set_init(init(height * 16 // 9, height))
    feed(p.renditions["720p"], 7)
    feed(p.renditions["360p"], 6)
    text = p.media_playlist("720p")
    assert text is p.media_playlist("720p")  # kept
    assert text is not None and text.endswith("LAST-MSN=1,LAST-PART=0\n")
    low = p.renditions["360p"]
    low.add_fragment(Fragment(b"m" * 100, 7, False, 1.2, 0.2), START)
    text = p.media_playlist("720p")
    assert text is not None and text.endswith("LAST-MSN=1,LAST-PART=1\n")
    high = p.renditions["720p"]
    first = high.media_sequence
    for i in range(7, 60):  # segments leave the playlist: the first listed moves on
        high.add_fragment(Fragment(b"m" * 100, i + 1, i % 5 == 0, i * 0.2, 0.2),
                          START + timedelta(seconds=i * 0.2))
        assert f"#EXT-X-MEDIA-SEQUENCE:{high.media_sequence}\n" in (p.media_playlist("720p") or "")
    assert high.media_sequence > first
    p.remove_rendition("360p")
    text = p.media_playlist("720p")
    assert text is not None and "RENDITION-REPORT" not in text


def test_discontinuity_and_end_reach_every_rendition() -> None:
    p = ladder()
    for window in p.renditions.values():
        window.set_init(init(1280, 720))
        feed(window, 3)
    p.mark_discontinuity()
    for window in p.renditions.values():
        feed(window, 1)
        assert "#EXT-X-DISCONTINUITY" in window.playlist()
    p.end()
    assert p.ended and all(w.ended for w in p.renditions.values())
    text = p.media_playlist("720p")
    assert text is not None and "#EXT-X-ENDLIST" in text and "RENDITION-REPORT" not in text


async def test_wait_complete_resolves_on_the_last_init() -> None:
    p = ladder()
    waiter = asyncio.create_task(p.wait_complete())
    await asyncio.sleep(0)
    p.renditions["360p"].set_init(init(640, 360))
    await asyncio.sleep(0)
    assert not waiter.done()  # one rendition of two: not yet
    p.renditions["720p"].set_init(init(1280, 720))
    await asyncio.wait_for(waiter, 1)
    await asyncio.wait_for(p.wait_complete(), 1)  # already complete


async def test_wait_complete_resolves_on_end_and_cancellation_cleans_up() -> None:
    p = ladder()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(p.wait_complete(), 0.01)
    waiter = asyncio.create_task(p.wait_complete())
    await asyncio.sleep(0)
    p.end()
    await asyncio.wait_for(waiter, 1)
    assert not p._ready_waiters


async def test_removed_rendition_releases_its_waiters() -> None:
    p = ladder()
    window = p.renditions["720p"]
    window.set_init(init(1280, 720))
    waiter = asyncio.create_task(window.wait(0, 0))
    await asyncio.sleep(0)
    p.remove_rendition("720p")
    await asyncio.wait_for(waiter, 1)
    assert "720p" not in p.renditions and p.media_playlist("720p") is None
    window.set_init(init(1920, 1080))  # a late init on the removed window changes nothing
    assert p.multivariant_playlist() is None


def test_segment_numbers_never_repeat_across_broadcasts_of_a_playback_id() -> None:
    # Media URLs are immutable in caches: a later broadcast must use new numbers.
    first = Presentation("pb_a", low_latency=True, part_target=0.2, clock=lambda: 1000.0)
    window = first.add_rendition("720p", bandwidth=1, average_bandwidth=1, frame_rate=30)
    second = Presentation("pb_a", low_latency=True, part_target=0.2, clock=lambda: 1001.0)
    later = second.add_rendition("720p", bandwidth=1, average_bandwidth=1, frame_rate=30)
    assert later.next_part()[0] > window.next_part()[0] >= 2000


def test_fragments_are_stamped_with_the_presentations_clock() -> None:
    now = [1_000.0]
    p = Presentation("pb_a", low_latency=True, part_target=0.2, clock=lambda: now[0])
    p.add_rendition("360p", bandwidth=1_000_000, average_bandwidth=900_000, frame_rate=30)
    p.renditions["360p"].set_init(init(640, 360))
    now[0] = 1_000.25
    assert p.add_fragment("360p", Fragment(b"m" * 100, 1, True, 0.0, 0.2))
    assert not p.add_fragment("720p", Fragment(b"m" * 100, 1, True, 0.0, 0.2))
    playlist = p.media_playlist("360p")
    assert playlist is not None
    assert "#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:16:40.250Z" in playlist
    assert p.first_msn == 2_000  # numbered from the clock at the start, not at each fragment


def test_suspended_rendition_leaves_the_multivariant_but_keeps_its_playlist() -> None:
    p = ladder()
    for name in ("360p", "720p"):
        p.renditions[name].set_init(init(*((640, 360) if name == "360p" else (1280, 720))))
    n = 0

    def step(names: tuple[str, ...]) -> None:
        nonlocal n
        for name in names:
            p.add_fragment(name, Fragment(b"m" * 10, n + 1, n % 5 == 0, n * 0.2, 0.2))
        n += 1

    for _ in range(12):
        step(("360p", "720p"))
    p.suspend_rendition("720p")
    for _ in range(12):
        step(("360p",))  # the encoder gave 720p up
    text = p.multivariant_playlist()
    assert text is not None and "720p" not in text
    check_multivariant(text)
    media = p.media_playlist("720p")
    assert media is not None and "#EXT-X-GAP" in media and "GAP=YES" in media
    check_media_playlist(media, low_latency=True)
    top, low = p.renditions["720p"], p.renditions["360p"]
    assert (top.last_msn, top.last_part) == (low.last_msn, low.last_part)
    assert f'#EXT-X-RENDITION-REPORT:URI="720p.m3u8",LAST-MSN={low.last_msn}' in (
        p.media_playlist("360p") or ""
    )
    # Back: listed again once its media is, from a segment start shared with 360p.
    p.resume_rendition("720p")
    for _ in range(12):
        step(("360p", "720p"))
    assert not top.suspended
    text = p.multivariant_playlist()
    assert text is not None and "pb_abc/720p.m3u8" in text
    media = p.media_playlist("720p")
    assert media is not None
    check_media_playlist(media, low_latency=True)
    assert (top.last_msn, top.last_part) == (low.last_msn, low.last_part)


def _timelines(playlist: str | None) -> dict[int, int]:
    """Each listed segment's discontinuity sequence number, by msn."""
    assert playlist is not None
    sequence = msn = 0
    timelines: dict[int, int] = {}
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            msn = int(line.split(":", 1)[1])
        elif line == "#EXT-X-DISCONTINUITY":
            sequence += 1
        elif line.endswith(".m4s") and not line.startswith("#"):
            timelines[msn] = sequence
            msn += 1
    return timelines


def _parts_to(p: Presentation) -> Callable[[int, tuple[str, ...]], None]:
    """`parts(count, names)`: an encoder run's next `count` parts to each of `names` (a
    keyframe every 5; the renditions left out produce nothing), on one media clock."""
    t = 0.0

    def parts(count: int, names: tuple[str, ...]) -> None:
        nonlocal t
        for n in range(count):
            for name in names:
                p.renditions[name].add_fragment(
                    Fragment(b"m" * 100, n + 1, n % 5 == 0, t, 0.2), START + timedelta(seconds=t)
                )
            t += 0.2

    return parts


def test_renditions_agree_on_numbering_after_restarts_one_produced_nothing_between() -> None:
    """A starved encoder restarted twice, the top rung producing nothing in between (seen in
    the starved-player test): every msn must still be the same media, on the same timeline
    (RFC 8216bis 4.4.3.3), in both renditions, or players switching by msn land elsewhere.
    (It used to go on numbering from where it stopped: its msn 2-3 held the third run's
    media where 360p's held the second's, and from msn 4 its discontinuity sequence was
    one lower.) The numbers it missed are gaps with 360p's durations."""
    p = ladder()
    for name in ("360p", "720p"):
        p.renditions[name].set_init(init(640, 360) if name == "360p" else init(1280, 720))
    parts = _parts_to(p)

    parts(10, ("360p", "720p"))
    p.mark_discontinuity()  # a restart; 720p (starved) produces nothing on this run
    parts(10, ("360p",))
    p.mark_discontinuity()  # the next restart
    parts(21, ("360p", "720p"))
    low, high = _timelines(p.media_playlist("360p")), _timelines(p.media_playlist("720p"))
    both = sorted(set(low) & set(high))
    assert both and all(low[msn] == high[msn] for msn in both), (low, high)
    top, bottom = p.renditions["720p"], p.renditions["360p"]
    assert all(top.media_start(msn) == bottom.media_start(msn) for msn in both)
    text = p.media_playlist("720p")
    assert text is not None
    check_media_playlist(text, low_latency=True)
    assert [msn for msn in both if top.is_gap(msn, None)] == [2, 3]  # run 2: 360p's only
    assert text.count("#EXT-X-GAP") == 2 and text.count("#EXT-X-DISCONTINUITY\n") == 2


def test_a_rung_behind_at_a_restart_lists_its_gaps_with_its_next_media() -> None:
    """An encoder restart finds 720p two segments behind 360p. Its playlist must not end
    in those gaps while the new run starts: a player on it would have nothing to play
    next, and Shaka Player fails for good (1011) when its other variant is disabled then
    (CI, the starved-player test). The gaps come with the next run's first part; until
    then the siblings' numbers are waited for, not refused, and the hinted part is one
    that will never exist (an empty 204 at the origin)."""
    p = ladder()
    for name in ("360p", "720p"):
        p.renditions[name].set_init(init(640, 360))
    parts = _parts_to(p)

    parts(10, ("360p", "720p"))
    parts(6, ("360p",))  # 720p's output lags; 360p opens msn 2 and 3
    p.mark_discontinuity()
    top, bottom = p.renditions["720p"], p.renditions["360p"]
    assert (top.last_msn, bottom.last_msn, top.next_msn) == (1, 3, 4)
    text = p.media_playlist("720p")
    assert text is not None
    check_media_playlist(text, low_latency=True)
    assert "#EXT-X-GAP" not in text and "GAP=YES" not in text
    assert 'PRELOAD-HINT:TYPE=PART,URI="720p/part-2.0.m4s"' in text
    assert top.superseded(2, 0) and not top.superseded(2, 1)
    # A player switching over asks with 360p's numbers: they are coming.
    assert top.state(3, 0) == "pending" and top.state(4, 0) == "pending"
    assert top.state(5, None) == "pending" and top.state(6, None) == "too_far"
    parts(1, ("360p", "720p"))  # the next run's first part
    text = p.media_playlist("720p")
    assert text is not None
    check_media_playlist(text, low_latency=True)
    assert [msn for msn in (2, 3, 4) if top.is_gap(msn, None)] == [2, 3]
    assert top.state(4, 0) == "ready" and top.last_msn == bottom.last_msn == 4
    assert all(top.media_start(msn) == bottom.media_start(msn) for msn in (2, 3, 4))
    assert _timelines(text) == {
        msn: line for msn, line in _timelines(p.media_playlist("360p")).items() if msn in
        _timelines(text)
    }


@st.composite
def _runs(draw: st.DrawFn) -> list[tuple[int, tuple[int, ...], tuple[int, ...]]]:
    """Encoder runs: (parts the run lasts, parts each rung produced of them, the order the
    rungs' fragments arrive in). A rung may produce all, some (it lagged) or none."""
    runs = []
    for _ in range(draw(st.integers(1, 7))):
        length = draw(st.integers(0, 24))
        produced = tuple(draw(st.sampled_from([0, length, draw(st.integers(0, length))]))
                         for _ in range(3))
        runs.append((length, produced, tuple(draw(st.permutations(range(3))))))
    return runs


@settings(max_examples=300, deadline=None)
@given(runs=_runs())
def test_renditions_agree_on_numbering_whatever_each_run_produced(
    runs: list[tuple[int, tuple[int, ...], tuple[int, ...]]],
) -> None:
    """Property: whatever encoder restarts and rung silences (or lags) come, every msn two
    renditions list is the same media (media start time) on the same timeline."""
    p = Presentation("pb_abc", low_latency=True, part_target=0.2, clock=lambda: 0.0)
    names = ("720p", "360p", "180p")
    for name in names:
        p.add_rendition(name, bandwidth=1_000_000, average_bandwidth=900_000, frame_rate=30)
        p.renditions[name].set_init(init(640, 360))
    t = 0.0
    for number, (length, produced, order) in enumerate(runs):
        if number:
            p.mark_discontinuity()
        for n in range(length):
            for rung in order:
                if n < produced[rung]:
                    fragment = Fragment(b"m" * 10, n + 1, n % 5 == 0, t, 0.2)
                    p.renditions[names[rung]].add_fragment(fragment, START + timedelta(seconds=t))
            t += 0.2
        listed = {name: _timelines(p.media_playlist(name)) for name in names}
        for a, b in [(a, b) for a in names for b in names if a < b]:
            windows = p.renditions[a], p.renditions[b]
            for msn in set(listed[a]) & set(listed[b]):
                assert listed[a][msn] == listed[b][msn], (a, b, msn, listed)
                assert windows[0].media_start(msn) == windows[1].media_start(msn), (a, b, msn)
        for name in names:
            text = p.media_playlist(name)
            assert text is not None
            check_media_playlist(text, low_latency=True)
def test_a_continued_presentation_numbers_on_after_one_discontinuity() -> None:
    """A node taking a broadcast over goes on after the old node's msn and discontinuity
    sequence: players reloading the playlist find the next numbers and one discontinuity."""
    from golive.packaging import Continuation

    p = Presentation("pb_abc", low_latency=True, part_target=0.2, clock=lambda: 0.0,
                     continues=Continuation(next_msn=1_000, discontinuity_sequence=3,
                                            date_end=START.timestamp() - 5.0))
    assert p.first_msn == 1_000
    windows = [p.add_rendition(name, bandwidth=1_000_000, average_bandwidth=900_000,
                               frame_rate=30) for name in ("360p", "720p")]
    for window in windows:
        window.set_init(init(640, 360))
        feed(window, 12)
    text = p.media_playlist("720p")
    assert text is not None
    check_media_playlist(text, low_latency=True)
    lines = text.splitlines()
    assert "#EXT-X-MEDIA-SEQUENCE:1000" in lines
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:3" in lines
    assert lines.count("#EXT-X-DISCONTINUITY") == 1
    first_segment = lines.index("#EXT-X-DISCONTINUITY")
    assert 'URI="720p/init-1000.mp4"' in lines[first_segment + 1]
    # Dated from where the other node's media ended, not from this node's arrival.
    date = next(line for line in lines[first_segment:]
                if line.startswith("#EXT-X-PROGRAM-DATE-TIME:")).split(":", 1)[1]
    assert datetime.fromisoformat(date.replace("Z", "+00:00")) == START - timedelta(seconds=5)
    msn, timeline, date_end = p.sequence()
    assert (msn, timeline) == (1_002, 4)  # three segments (1000-1002), timeline 4
    assert date_end == pytest.approx(START.timestamp() - 5.0 + 12 * 0.2)
    # The newest segment (1002, open) starts after two whole segments of five parts.
    assert p.segment_date() == pytest.approx(START.timestamp() - 5.0 + 10 * 0.2)


def test_a_continued_presentation_is_dated_where_the_other_nodes_newest_segment_started(
) -> None:
    """hls.js finds its fragment across the takeover by the end date of the last one it
    loaded, which for a segment it had only parts of can be that segment's start: the
    first segment here is dated there, not where the other node's media ended."""
    from golive.packaging import Continuation

    begun = START.timestamp() - 5.8
    p = Presentation("pb_abc", low_latency=True, part_target=0.2, clock=lambda: 0.0,
                     continues=Continuation(next_msn=1_000, discontinuity_sequence=0,
                                            date_end=begun + 0.6, date_start=begun))
    window = p.add_rendition("720p", bandwidth=1_000_000, average_bandwidth=900_000,
                             frame_rate=30)
    window.set_init(init(640, 360))
    feed(window, 7)
    text = p.media_playlist("720p")
    assert text is not None
    date = next(line for line in text.splitlines()
                if line.startswith("#EXT-X-PROGRAM-DATE-TIME:")).split(":", 1)[1]
    assert datetime.fromisoformat(date.replace("Z", "+00:00")).timestamp() == pytest.approx(
        begun)
    assert p.segment_date() == pytest.approx(begun + 5 * 0.2)  # 1001, open, two parts in

    plain = ladder()
    assert "#EXT-X-DISCONTINUITY" not in (plain.media_playlist("720p") or "")


def test_the_multivariant_declares_what_the_segments_measure() -> None:
    # A copy of the publisher's video was planned at a guess (6 Mbit/s); an encoded rung at
    # its encoder's cap. After three segments each declares its measured average, the copy
    # its measured peak, the encoded rung its cap unless the segments went over it.
    p = Presentation("pb_abc", low_latency=True, part_target=0.2, clock=lambda: 0.0)
    copy = p.add_rendition("source", bandwidth=7_500_000, average_bandwidth=6_100_000,
                           frame_rate=30, estimated_bandwidth=True)
    encoded = p.add_rendition("360p", bandwidth=1_000_000, average_bandwidth=900_000,
                              frame_rate=30)
    copy.set_init(init(1280, 720))
    encoded.set_init(init(640, 360, "42c01e"))

    def declared() -> dict[str, tuple[int, int]]:
        text = p.multivariant_playlist()
        assert text is not None
        lines = text.splitlines()
        return {uri: (int(attributes(inf)["BANDWIDTH"]), int(attributes(inf)["AVERAGE-BANDWIDTH"]))
                for inf, uri in itertools.pairwise(lines) if inf.startswith("#EXT-X-STREAM-INF")}

    sizes = {"source": [300_000, 250_000, 350_000, 300_000], "360p": [50_000, 200_000, 50_000, 50_000]}
    for msn in range(3):  # three 1 s segments each, closed by the next keyframe
        for window in (copy, encoded):
            for i in range(5):
                t = msn + i * 0.2
                size = sizes[window.name][msn] // 5
                fragment = Fragment(b"m" * size, msn * 5 + i + 1, i == 0, t, 0.2)
                window.add_fragment(fragment, START + timedelta(seconds=t))
        assert declared() == {"pb_abc/source.m3u8": (7_500_000, 6_100_000),
                              "pb_abc/360p.m3u8": (1_000_000, 900_000)}  # the plan, still
    for window in (copy, encoded):
        window.add_fragment(Fragment(b"k", 16, True, 3.0, 0.2), START + timedelta(seconds=3))
    assert declared() == {
        "pb_abc/source.m3u8": (2_800_000, 2_400_000),  # the richest second; the mean
        "pb_abc/360p.m3u8": (1_600_000, 800_000),  # over its cap in the second segment
    }
