"""The transcoder's input without ffmpeg: timelines start at keyframes, bounded, whole GOPs dropped."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.media.conftest import parse_flv

from golive.formats.tag import MediaTag, TagType
from golive.media.feed import FILL_AFTER_MS, FlvInput, InputFeed, TagKind, classify

CONFIG = [
    MediaTag(TagType.SCRIPT, 0, b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09"),
    MediaTag(TagType.VIDEO, 0, b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f"),
    MediaTag(TagType.AUDIO, 0, b"\xaf\x00\x11\x90"),
]
KEYFRAME_PREFIX = bytes([0x17, 1, 0, 0, 0])


def video(ts: int, *, key: bool = False, size: int = 1000) -> MediaTag:
    return MediaTag(TagType.VIDEO, ts, bytes([0x17 if key else 0x27, 1, 0, 0, 0]) + bytes(size))


def audio(ts: int) -> MediaTag:
    return MediaTag(TagType.AUDIO, ts, b"\xaf\x01" + bytes(300))


def queued(feed: InputFeed) -> bytes:
    return b"".join(feed.chunks)


def test_classify_reads_the_flv_body() -> None:
    assert [classify(tag) for tag in CONFIG] == [
        TagKind.METADATA,
        TagKind.VIDEO_CONFIG,
        TagKind.AUDIO_CONFIG,
    ]
    assert classify(video(0, key=True)) is TagKind.KEYFRAME
    assert classify(video(0)) is TagKind.VIDEO
    assert classify(audio(0)) is TagKind.AUDIO
    assert classify(MediaTag(TagType.VIDEO, 0, b"\x17\x02")) is TagKind.OTHER  # end of sequence
    assert classify(MediaTag(TagType.VIDEO, 0, b"")) is TagKind.OTHER
    # Enhanced RTMP: HEVC sequence start, coded frames of a keyframe and an inter frame.
    assert classify(MediaTag(TagType.VIDEO, 0, b"\x90hvc1")) is TagKind.VIDEO_CONFIG
    assert classify(MediaTag(TagType.VIDEO, 0, b"\x91hvc1")) is TagKind.KEYFRAME
    assert classify(MediaTag(TagType.VIDEO, 0, b"\xa3hvc1")) is TagKind.VIDEO


def test_timeline_starts_with_header_and_configuration_at_a_keyframe() -> None:
    flv = FlvInput(limit=1024 * 1024, has_audio=True)
    for tag in [*CONFIG, video(40), audio(990), audio(1000)]:
        flv.push(tag)
    assert queued(flv.feed) == b""  # nothing until a keyframe
    flv.push(audio(995))
    flv.push(video(1000, key=True))
    flv.push(audio(998))  # older than the keyframe: would start the timeline early
    flv.push(audio(1010))
    data = queued(flv.feed)
    assert data.startswith(b"FLV\x01\x05")
    assert data.count(b"onMetaData") == 1
    assert data.index(b"\x17\x00\x00\x00\x00\x01\x64") < data.index(KEYFRAME_PREFIX)
    assert data.count(b"\xaf\x01") == 1  # only the audio from 1010
    assert flv.video_frames == 2 and flv.feed.first_ts == 1000


def test_without_audio_in_the_plan_audio_is_left_out() -> None:
    flv = FlvInput(limit=1024 * 1024, has_audio=False)
    for tag in [*CONFIG, video(0, key=True), audio(10)]:
        flv.push(tag)
    data = queued(flv.feed)
    assert data.startswith(b"FLV\x01\x01") and b"\xaf" not in data


def test_overflow_drops_whole_gops() -> None:
    flv = FlvInput(limit=64 * 1024, has_audio=True)
    for tag in CONFIG:
        flv.push(tag)
    flv.push(video(0, key=True))
    results = [flv.push(video(i * 33, size=1000)) for i in range(1, 80)]  # overflows mid-GOP
    assert sum(r.overflow for r in results) == 1  # said once, when dropping starts
    assert flv.dropped_bytes > 0
    dropped = flv.dropped_frames
    assert not flv.push(video(80 * 33, size=1000)).overflow  # still mid-GOP: dropped quietly
    assert flv.dropped_frames == dropped + 1
    flv.feed.chunks.clear()  # ffmpeg caught up
    flv.feed.size = 0
    flv.push(video(81 * 33, size=1000))
    assert flv.dropped_frames == dropped + 2  # waits for a keyframe
    flv.push(video(82 * 33, key=True))
    assert flv.dropped_frames == dropped + 2 and flv.feed.size > 0


def test_timestamps_going_back_start_a_new_timeline() -> None:
    flv = FlvInput(limit=1024 * 1024, has_audio=True)
    for tag in CONFIG:
        flv.push(tag)
    flv.push(video(60_000, key=True))
    flv.push(video(60_033))
    first = flv.feed
    assert not flv.push(video(60_066 - 500)).timestamps_went_back  # small reorderings are fine
    assert flv.feed is first
    assert flv.push(video(33)).timestamps_went_back  # the publisher's encoder restarted
    flv.push(video(66, key=True))
    assert flv.feed is not first
    data = queued(flv.feed)
    assert data.startswith(b"FLV") and data.count(KEYFRAME_PREFIX) == 1
    assert flv.new_timeline() is flv.feed and not flv.feed.started


async def test_take_joins_chunks_and_ends_when_closed() -> None:
    feed = InputFeed(1024 * 1024)
    waiting = asyncio.create_task(feed.take())
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing yet: the writer waits on the event, not a poll
    feed.append(b"a" * 10)
    feed.append(b"b" * 10)
    assert await waiting == b"a" * 10 + b"b" * 10 and feed.size == 0
    feed.close()
    assert await feed.take() is None
    feed.append(b"late")  # the run is gone; nothing is held for it
    assert feed.size == 0


@given(
    st.lists(
        st.builds(
            MediaTag,
            st.sampled_from(list(TagType)),
            st.integers(min_value=0, max_value=2**32 - 1),
            st.binary(max_size=3000),
        ),
        max_size=200,
    )
)
def test_any_tags_are_taken_without_error_and_the_buffer_stays_bounded(
    tags: list[MediaTag],
) -> None:
    flv = FlvInput(limit=64 * 1024, has_audio=True)
    for tag in [*CONFIG, video(0, key=True), *tags]:
        flv.push(tag)
        assert flv.feed.size <= 64 * 1024 + 1024  # the preamble may top it up once


def test_each_timeline_keeps_its_ingest_clock() -> None:
    """`origin`: when the input for the timeline's media time 0 arrived, the earliest
    estimate over its video tags; audio, tags before the first keyframe and undated
    pushes do not move it, and a new timeline starts its own."""
    flv = FlvInput(limit=1024 * 1024, has_audio=True)
    flv.push(video(5000), arrived_at=100.0)  # before the first keyframe: not on the timeline
    assert flv.feed.origin is None
    flv.push(video(6000, key=True), arrived_at=101.5)  # a late first keyframe
    assert flv.feed.origin == 101.5
    flv.push(audio(6100), arrived_at=90.0)
    flv.push(video(6500), arrived_at=101.9)  # 0.5 s of media 0.4 s later: 0.1 s earlier
    assert flv.feed.origin == 101.4
    flv.push(video(7000), arrived_at=103.0)  # late (jitter): the estimate stays
    flv.push(video(7040))
    assert flv.feed.origin == 101.4
    old = flv.feed
    flv.new_timeline()
    flv.push(video(100, key=True), arrived_at=110.0)
    assert flv.feed.origin == 110.0 and old.origin == 101.4


def test_date_lag_shows_input_arriving_later_than_its_media_time() -> None:
    flv = FlvInput(limit=1024 * 1024, has_audio=False)
    assert flv.feed.date_lag is None
    for i in range(30):  # a second of 30 fps in real time, with some jitter
        flv.push(video(i * 33, key=i == 0), arrived_at=50.0 + i * 0.033 + (i % 3) * 0.01)
    assert flv.feed.date_lag == pytest.approx(0, abs=1e-9)
    # Media time continued from the last frame after 0.8 s of silence: the input now
    # arrives 0.8 s later than its date; older tags leave the estimate after a second.
    for i in range(30, 70):
        flv.push(video(i * 33), arrived_at=50.8 + i * 0.033)
    assert flv.feed.date_lag == pytest.approx(0.8, abs=1e-6)


def test_an_audio_only_input_starts_at_its_first_sound_and_takes_no_video() -> None:
    flv = FlvInput(limit=1024 * 1024, has_audio=True, has_video=False)
    for tag in [CONFIG[0], CONFIG[2], audio(500), video(510, key=True), audio(521)]:
        flv.push(tag, arrived_at=100.0)
    data = queued(flv.feed)
    assert data.startswith(b"FLV\x01\x04")  # the header says audio alone
    assert data.index(b"\xaf\x00") < data.index(b"\xaf\x01")  # configuration first
    assert data.count(b"\xaf\x01") == 2 and KEYFRAME_PREFIX not in data
    assert b"\x17\x00" not in data and flv.video_frames == 0
    # Audio carries the timeline's clock: its media time and its date.
    assert flv.feed.first_ts == 500 and flv.feed.media_seconds == 0.021
    assert flv.feed.origin == 100.0 - 0.021
    with pytest.raises(ValueError, match="audio or video"):
        FlvInput(limit=1024 * 1024, has_audio=False, has_video=False)


def test_an_audio_only_input_drops_until_any_frame_fits_again() -> None:
    flv = FlvInput(limit=64 * 1024, has_audio=True, has_video=False)
    flv.push(CONFIG[2])
    results = [flv.push(audio(i * 21)) for i in range(400)]
    assert sum(r.overflow for r in results) == 1 and flv.dropped_bytes > 0
    assert flv.dropped_frames == 0  # (video frames: none)
    flv.feed.chunks.clear()  # ffmpeg caught up
    flv.feed.size = 0
    flv.push(audio(400 * 21))  # no keyframe to wait for: the next frame is taken
    assert flv.feed.size > 0 and not flv.feed.dropping


def test_a_timeline_is_held_from_ffmpeg_until_its_sound_begins() -> None:
    flv = FlvInput(limit=1024 * 1024, has_audio=True, align_start=True)
    for tag in [*CONFIG, video(1000, key=True), video(1033)]:
        flv.push(tag)
    assert queued(flv.feed) == b"" and flv.feed.size > 0  # held, and counted
    flv.push(audio(1021))  # the sound begins with the picture (within a frame)
    data = queued(flv.feed)
    assert data.startswith(b"FLV\x01\x05") and data.count(KEYFRAME_PREFIX) == 1
    assert data.count(b"\xaf\x01") == 1 and flv.late_sound_starts == 0
    flv.push(video(1066))
    assert queued(flv.feed).count(bytes([0x27, 1, 0, 0, 0])) == 2  # no longer held


def test_sound_that_begins_after_the_picture_starts_the_timeline_again() -> None:
    flv = FlvInput(limit=1024 * 1024, has_audio=True, align_start=True)
    for tag in [*CONFIG, video(0, key=True), *(video(t) for t in range(33, 1000, 33))]:
        flv.push(tag, arrived_at=50.0 + tag.timestamp / 1000)
    flv.push(audio(1500))  # the sound begins 1.5 s after the picture
    assert flv.late_sound_starts == 1 and not flv.feed.started
    assert queued(flv.feed) == b"" and flv.feed.size == 0 and flv.feed.origin is None
    flv.push(video(1533))  # not a keyframe: still nothing
    flv.push(audio(1521))
    flv.push(video(2000, key=True), arrived_at=52.0)  # both have begun: the timeline starts
    flv.push(audio(2010))
    data = queued(flv.feed)
    assert flv.feed.first_ts == 2000 and flv.feed.origin == 52.0
    assert data.count(b"onMetaData") == 1 and data.count(KEYFRAME_PREFIX) == 1
    assert data.count(b"\xaf\x01") == 1 and data.index(KEYFRAME_PREFIX) < data.index(b"\xaf\x01")


def test_a_picture_without_sound_goes_on_after_the_hold() -> None:
    flv = FlvInput(limit=1024 * 1024, has_audio=True, align_start=True)
    for tag in [*CONFIG, *(video(t, key=t % 1000 == 0) for t in range(0, 3000, 40))]:
        flv.push(tag)
    assert queued(flv.feed) == b""
    flv.push(video(3040))  # 3 s of picture and still no sound: it goes without
    assert queued(flv.feed).count(KEYFRAME_PREFIX) == 3
    flv.push(audio(3050))  # sound that comes later is taken as it is
    assert queued(flv.feed).count(b"\xaf\x01") == 1 and flv.late_sound_starts == 0


def test_without_align_start_or_without_sound_nothing_is_held() -> None:
    for flv in (FlvInput(limit=1024 * 1024, has_audio=True),
                FlvInput(limit=1024 * 1024, has_audio=False, align_start=True)):
        for tag in [*CONFIG, video(0, key=True)]:
            flv.push(tag)
        assert queued(flv.feed).count(KEYFRAME_PREFIX) == 1


SILENT_STEREO = b"\xaf\x01" + bytes.fromhex("2000000000000e")  # see aac_silent_frame


def sound_times(flv: FlvInput) -> list[tuple[int, bool]]:
    """(timestamp, silent) of each audio frame queued for ffmpeg."""
    tags = parse_flv(queued(flv.feed))
    return [(t.timestamp, t.body == SILENT_STEREO) for t in tags
            if t.type is TagType.AUDIO and t.body[1] == 1]


def filling_input() -> FlvInput:
    flv = FlvInput(limit=4 * 1024 * 1024, has_audio=True, align_start=True, fill_silence=True)
    for tag in CONFIG:
        flv.push(tag)
    assert flv.fills_silence
    return flv


def test_sound_that_stops_is_filled_with_silence_up_to_the_picture() -> None:
    flv = filling_input()
    flv.push(video(0, key=True))
    for n in range(24):  # 0.5 s of sound, 1024 samples at 48 kHz a frame
        flv.push(audio(n * 64 // 3))
    sound_end = 23 * 64 // 3 + 21
    for ts in range(40, sound_end + FILL_AFTER_MS, 40):
        flv.push(video(ts))
    assert all(not silent for _, silent in sound_times(flv))  # not yet: it may be late
    pictures = range(sound_end + FILL_AFTER_MS, 3000, 40)
    for ts in pictures:
        flv.push(video(ts))
    filled = [ts for ts, silent in sound_times(flv) if silent]
    assert filled[0] == sound_end and filled[-1] < pictures[-1] <= filled[-1] + 22
    steps = {b - a for a, b in itertools.pairwise(filled)}
    assert steps <= {21, 22}  # 1024 samples at 48 kHz, to the millisecond
    assert flv.silences_filled == 1
    # The sound comes back: what the silence already covers is dropped, the rest goes on
    # and the filling stops.
    given_to = filled[-1] + 21
    for ts in range(given_to - 60, 5000, 21):
        flv.push(audio(ts))
        if ts >= 3000 and ts % 40 < 21:
            flv.push(video(ts))
    times = sound_times(flv)
    back = [ts for ts, silent in times if not silent and ts > sound_end]
    assert back and back[0] >= given_to - 11
    assert not [ts for ts, silent in times if silent and ts > given_to]
    assert flv.fill_after_ms == FILL_AFTER_MS  # it came back now, not where it stopped


def test_sound_that_was_only_late_makes_the_wait_longer() -> None:
    flv = filling_input()
    flv.push(video(0, key=True))
    flv.push(audio(0))
    for ts in range(40, 1600, 40):
        flv.push(video(ts))
    assert flv.silences_filled == 1
    flv.push(audio(21))  # where it stopped: it was late (sent in a burst), not gone
    assert flv.late_sounds == 1 and flv.fill_after_ms == 2 * FILL_AFTER_MS


def test_a_timeline_let_go_without_its_sound_is_filled_from_its_start() -> None:
    flv = filling_input()
    flv.push(video(1000, key=True))
    for ts in range(1040, 4200, 40):
        flv.push(video(ts))
    filled = sound_times(flv)
    assert filled and filled[0] == (1000, True) and all(silent for _, silent in filled)


def test_an_input_spliced_on_without_sound_is_filled_at_once() -> None:
    flv = filling_input()
    flv.push(video(0, key=True))
    flv.push(audio(0))
    flv.push(video(40))
    flv.sound_gone()  # the backup that took over sends no sound
    assert flv.push(video(80, key=True)).silence_began
    assert sound_times(flv)[1:] == [(21, True), (42, True), (63, True)]
    assert flv.silences_filled == 1


def test_a_picture_clock_that_jumps_ahead_is_not_filled_across() -> None:
    # Hours of silence would cost the encoder as much to encode: the sound jumps too.
    flv = filling_input()
    flv.push(video(0, key=True))
    flv.push(audio(0))
    for ts in range(40, 2000, 40):
        flv.push(video(ts))
    before = len(sound_times(flv))
    flv.push(video(3_600_000))
    flv.push(video(3_600_040))
    after = sound_times(flv)
    assert len(after) - before <= 3
    assert [ts for ts, _ in after[before:]] == [3_600_000, 3_600_021][: len(after) - before]


# Sound of other codecs, as (its configuration or None, one of its frames, the silent
# frame's tag body, the frame steps in ms).
MP3_FRAME = b"\xff\xfb\x92\x64" + bytes(413)  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz
OTHER_SOUNDS = {
    "mp3": (None, b"\x2f" + MP3_FRAME, b"\x2f\xff\xfb\x90\x64" + bytes(413), {26, 27}),
    "mpeg_audio": (b"\x90.mp3", b"\x91.mp3" + MP3_FRAME, b"\x91.mp3\xff\xfb\x90\x64" + bytes(413),
                   {26, 27}),
    "opus": (b"\x90OpusOpusHead\x01\x02\x00\x00\x80\xbb\x00\x00\x00\x00\x00",
             b"\x91Opus\xfc" + bytes(100), b"\x91Opus\xfc\xff\xfe", {20}),
    "he_aac": (b"\xaf\x00\x2b\x92\x08\x80", b"\xaf\x01" + bytes(300),
               b"\xaf\x01" + bytes.fromhex("2000000000000e"), {46, 47}),  # 2048 at 44.1k
}


@pytest.mark.parametrize("codec", sorted(OTHER_SOUNDS))
def test_sound_is_filled_with_silence_of_its_own_codec(codec: str) -> None:
    config, frame, silent, steps = OTHER_SOUNDS[codec]
    flv = FlvInput(limit=1024 * 1024, has_audio=True, align_start=True, fill_silence=True)
    for tag in CONFIG[:2]:
        flv.push(tag)
    if config is not None:
        flv.push(MediaTag(TagType.AUDIO, 0, config))
    assert flv.fills_silence is (config is not None and codec != "mpeg_audio")
    flv.push(video(0, key=True))
    flv.push(MediaTag(TagType.AUDIO, 0, frame))
    assert flv.fills_silence  # settled by its configuration, or MPEG audio's first frame
    for ts in range(40, 3000, 40):
        assert flv.push(video(ts)).silence_began is (ts == 1040 + (codec == "he_aac") * 40)
    sound = [t for t in parse_flv(queued(flv.feed)) if t.type is TagType.AUDIO
             and classify(t) is TagKind.AUDIO]
    assert sound[0].body == frame and {t.body for t in sound[1:]} == {silent}
    filled = [t.timestamp for t in sound[1:]]
    assert {b - a for a, b in itertools.pairwise(filled)} <= steps
    assert sound[1].timestamp in steps and filled[-1] < 2960 <= filled[-1] + max(steps)
    assert flv.silences_filled == 1


def test_sound_without_a_silent_frame_is_not_filled_nor_where_not_asked() -> None:
    flac = FlvInput(limit=1024 * 1024, has_audio=True, align_start=True, fill_silence=True)
    for tag in [*CONFIG[:2], MediaTag(TagType.AUDIO, 0, b"\x90fLaC")]:
        flac.push(tag)
    flac.push(video(0, key=True))
    flac.push(MediaTag(TagType.AUDIO, 0, b"\x91fLaC\xff\xf8" + bytes(200)))
    for ts in range(40, 3000, 40):
        flac.push(video(ts))
    assert not flac.fills_silence and flac.silences_filled == 0
    ac3 = FlvInput(limit=1024 * 1024, has_audio=True, fill_silence=True)  # (AC-3 has one)
    for tag in [*CONFIG[:2], MediaTag(TagType.AUDIO, 0, b"\x90ac-3"), video(0, key=True),
                MediaTag(TagType.AUDIO, 0, b"\x91ac-3\x0b\x77" + bytes(200))]:
        ac3.push(tag)
    assert ac3.fills_silence
    surround = FlvInput(limit=1024 * 1024, has_audio=True, fill_silence=True)
    surround.push(MediaTag(TagType.AUDIO, 0, b"\xaf\x00\x11\x80"))  # channels set by a PCE
    assert not surround.fills_silence
    forward = FlvInput(limit=1024 * 1024, has_audio=True)  # a destination's: as it comes
    for tag in CONFIG:
        forward.push(tag)
    assert not forward.fills_silence
