"""The splice that keeps one timeline across inputs (stream/splice.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from golive.formats import MediaTag, TagType
from golive.stream import Splice

CONFIG = b"\x17\x00\x00\x00\x00"
KEY = b"\x17\x01\x00\x00\x00"
INTER = b"\x27\x01\x00\x00\x00"
AAC_CONFIG = b"\xaf\x00\x12\x10"
AAC = b"\xaf\x01\x21"


def video(ts: int, body: bytes = INTER) -> MediaTag:
    return MediaTag(TagType.VIDEO, ts, body)


def audio(ts: int, body: bytes = AAC) -> MediaTag:
    return MediaTag(TagType.AUDIO, ts, body)


def feed(splice: Splice, tags: list[MediaTag]) -> list[MediaTag]:
    return [out for tag in tags if (out := splice.rewrite(tag)) is not None]


def test_an_input_passes_unchanged_until_a_switch() -> None:
    splice = Splice()
    tags = [video(1000, CONFIG), video(1000, KEY), audio(1010), video(1040)]
    assert feed(splice, tags) == tags
    assert not splice.continuing


def test_the_new_input_continues_one_frame_after_the_old_ones_last_video() -> None:
    splice = Splice()
    feed(splice, [video(5000, KEY), audio(5010), video(5040), audio(5033), audio(5056)])
    splice.switch()
    assert splice.continuing
    out = feed(splice, [
        video(90, INTER),  # before its first keyframe: undecodable, dropped
        audio(95),  # likewise
        video(100, CONFIG),  # in-band, at the splice point
        audio(100, AAC_CONFIG),
        video(120, KEY),
        audio(96),  # lands at 5056, where the old input's audio already was: cut
        audio(125),
        video(160),
    ])
    assert [(t.timestamp, t.body) for t in out] == [
        (5041, CONFIG), (5041, AAC_CONFIG), (5080, KEY), (5085, AAC), (5120, INTER),
    ]
    assert not splice.continuing and splice.dropped_tags == 3


def test_restart_lets_the_next_input_keep_its_own_clock() -> None:
    splice = Splice()
    feed(splice, [video(5000, KEY)])
    splice.switch()
    splice.restart()
    assert feed(splice, [video(7, KEY)]) == [video(7, KEY)]


def test_the_timeline_wraps_like_flv_timestamps() -> None:
    splice = Splice()
    feed(splice, [video(0xFFFFFFF0, KEY)])
    splice.switch()
    [out] = feed(splice, [video(10, KEY)])
    assert out.timestamp == (0xFFFFFFF0 + 33) & 0xFFFFFFFF


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 80)), max_size=80))
def test_video_and_audio_never_go_back_across_any_number_of_switches(
    steps: list[tuple[int, int]],
) -> None:
    """Each input is monotonic on its own clock, starting anywhere; the output stays so."""
    splice = Splice()
    clock = 1000
    last: dict[TagType, int] = {}
    for kind, gap in steps:
        clock += gap
        if kind == 0:
            splice.switch()
            clock = gap * 97  # the new input's own, unrelated clock
            tag = video(clock, KEY)
        else:
            tag = video(clock, KEY if kind == 1 else INTER) if kind < 3 else audio(clock)
        out = splice.rewrite(tag)
        if out is None:
            continue
        before = last.get(out.type)
        assert before is None or out.timestamp >= before
        last[out.type] = out.timestamp
