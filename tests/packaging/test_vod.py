"""VOD playlists of a recording, and what a presentation tells its segment observer."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tests.llhls_rules import check_media_playlist, check_multivariant

from golive.formats.isobmff import Fragment, InitSegment, TrackInfo
from golive.packaging import (
    CompletedSegment,
    Presentation,
    RenditionInfo,
    VodRendition,
    vod_media_playlist,
    vod_multivariant_playlist,
)

START = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
AUDIO = TrackInfo(2, "audio", 48000, "mp4a.40.2", None, None)


@dataclass(frozen=True)
class Seg:
    msn: int
    generation: int
    duration: float
    program_date_time: datetime
    discontinuity: bool = False


def segments(first: int, count: int, *, generation: int = 0,
             at: datetime = START) -> list[Seg]:
    return [Seg(first + i, generation, 1.0, at + timedelta(seconds=i)) for i in range(count)]


def test_media_playlist_is_a_complete_vod_playlist() -> None:
    text = vod_media_playlist("720p", segments(3400, 5))
    playlist = check_media_playlist(text, low_latency=False)
    assert playlist.playlist_type == "vod" and playlist.is_endlist
    assert playlist.media_sequence == 3400
    assert [s.uri for s in playlist.segments] == [f"720p/seg-{n}.m4s" for n in range(3400, 3405)]
    assert text.count("#EXT-X-MAP:") == 1 and '#EXT-X-MAP:URI="720p/init-0.mp4"' in text
    assert text.count("#EXT-X-PROGRAM-DATE-TIME:") == 1
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-12-04T12:00:00.000Z" in text
    assert "#EXT-X-DISCONTINUITY" not in text
    assert playlist.target_duration == 1


def test_a_publisher_return_a_new_encoder_run_and_a_lost_segment_are_discontinuities() -> None:
    later = START + timedelta(seconds=30)
    recorded = [
        *segments(100, 3),
        # The publisher came back: a new timeline and a new encoder run (init).
        Seg(103, 1, 1.0, later, discontinuity=True),
        Seg(104, 1, 1.5, later + timedelta(seconds=1)),
        # 105 was in flight when the node died: a gap is a discontinuity too.
        Seg(106, 1, 1.0, later + timedelta(seconds=3.5)),
    ]
    text = vod_media_playlist("low", recorded)
    playlist = check_media_playlist(text, low_latency=False)
    assert text.count("#EXT-X-DISCONTINUITY\n") == 2
    assert [s.discontinuity for s in playlist.segments] == [False, False, False, True, False, True]
    assert text.count("#EXT-X-MAP:") == 2 and '#EXT-X-MAP:URI="low/init-1.mp4"' in text
    assert text.count("#EXT-X-PROGRAM-DATE-TIME:") == 3
    assert playlist.target_duration == 2  # the 1.5 s segment


def test_multivariant_lists_every_rendition_highest_first() -> None:
    text = vod_multivariant_playlist("pb1", [
        VodRendition("360p", 1_000_000, 900_000, 30.0, "avc1.42c01e,mp4a.40.2", 640, 360),
        VodRendition("720p", 3_000_000, 2_700_000, 30.0, "avc1.64001f,mp4a.40.2", 1280, 720),
    ])
    playlist = check_multivariant(text)
    assert [v.uri for v in playlist.playlists] == ["pb1/720p.m3u8", "pb1/360p.m3u8"]
    assert playlist.playlists[0].stream_info.resolution == (1280, 720)


def test_a_recording_with_captions_offers_them() -> None:
    renditions = [VodRendition("720p", 3_000_000, 2_700_000, 30.0, "avc1.64001f,mp4a.40.2",
                               1280, 720)]
    text = vod_multivariant_playlist("pb1", renditions, captions=True)
    check_multivariant(text)
    assert '#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc"' in text
    assert 'CLOSED-CAPTIONS="cc"' in text
    assert text.count("TYPE=CLOSED-CAPTIONS") == 1 and 'INSTREAM-ID="CC1"' in text
    # A second language on CC3: offered beside CC1, which stays the default.
    both = vod_multivariant_playlist("pb1", renditions, captions=True,
                                     caption_channels=("CC3",))
    check_multivariant(both)
    assert [line for line in both.splitlines() if "TYPE=CLOSED-CAPTIONS" in line] == [
        '#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="Captions",INSTREAM-ID="CC1",'
        "DEFAULT=YES,AUTOSELECT=YES",
        '#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="Captions CC3",INSTREAM-ID="CC3",'
        "DEFAULT=NO,AUTOSELECT=NO"]
    # Sound alone has no pictures to carry them.
    audio = [VodRendition("audio", 200_000, 160_000, 0.0, "mp4a.40.2", 0, 0)]
    assert "CLOSED-CAPTIONS" not in vod_multivariant_playlist("pb1", audio, captions=True)


class Observer:
    def __init__(self) -> None:
        self.inits: list[tuple[RenditionInfo, int, bytes]] = []
        self.segments: list[CompletedSegment] = []
        self.ended = 0

    def init_segment(self, rendition: RenditionInfo, generation: int, init: InitSegment) -> None:
        self.inits.append((rendition, generation, init.data))

    def segment_completed(self, segment: CompletedSegment) -> None:
        self.segments.append(segment)

    def captions_found(self, channels: Collection[str]) -> None:
        pass

    def presentation_ended(self) -> None:
        self.ended += 1


def test_presentation_tells_its_observer_every_init_and_completed_segment() -> None:
    clock = [START.timestamp()]
    p = Presentation("pb", low_latency=True, part_target=0.5, clock=lambda: clock[0])
    observer = Observer()
    p.observe(observer)
    window = p.add_rendition("360p", bandwidth=1_000_000, average_bandwidth=900_000,
                             frame_rate=30.0)
    video = TrackInfo(1, "video", 90000, "avc1.42c01e", 640, 360)
    window.set_init(InitSegment(b"init-a", (video, AUDIO)))
    for i in range(9):  # 4.5 s of 0.5 s parts, a keyframe every second
        clock[0] = START.timestamp() + i * 0.5
        p.add_fragment("360p", Fragment(bytes([i]) * 10, i + 1, i % 2 == 0, i * 0.5, 0.5))
    assert [s.msn for s in observer.segments] == [p.first_msn + n for n in range(4)]
    first = observer.segments[0]
    assert first.data == bytes([0]) * 10 + bytes([1]) * 10  # its two parts, joined
    assert first.duration == 1.0 and first.media_start == 0.0 and not first.discontinuity
    assert first.program_date_time == START
    # A new encoder run: a new generation, its init told, its first segment a discontinuity.
    p.mark_discontinuity()
    window.set_init(InitSegment(b"init-b", (video, AUDIO)))
    p.add_fragment("360p", Fragment(b"x" * 10, 1, True, 100.0, 0.5))
    p.end()
    p.end()
    assert [(info.name, gen, data) for info, gen, data in observer.inits] == [
        ("360p", p.first_msn, b"init-a"), ("360p", p.first_msn + 1, b"init-b")]
    assert observer.inits[0][0].bandwidth == 1_000_000
    last = observer.segments[-1]
    assert last.discontinuity and last.generation == p.first_msn + 1
    assert observer.segments[-2].msn == p.first_msn + 4  # the open one, closed by the mark
    assert observer.ended == 1
