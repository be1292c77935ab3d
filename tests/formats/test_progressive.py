"""Progressive MP4 from CMAF fragments: ffmpeg's fragments in, ffprobe/ffmpeg decode what
comes out; byte ranges; a discontinuity; hostile bytes."""

from __future__ import annotations

import itertools
import json
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.media.mp4info import boxes, child
from tests.mediatools import FFMPEG, FFPROBE

from golive.formats.isobmff import (
    Fragment,
    FragmentReader,
    InitSegment,
    IsobmffError,
    ProgressiveMp4,
    Span,
    fragment_samples,
    plan_progressive,
)

CMAF = "+frag_keyframe+empty_moov+default_base_moof+cmaf"
GOP = 30  # frames at 30 fps: one keyframe a second


def encode(seconds: float, *extra: str) -> tuple[bytes, list[bytes]]:
    """H.264 with B-frames + AAC as CMAF: the init and each 200 ms fragment."""
    data = subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc2=s=320x180:r=30",
         "-f", "lavfi", "-i", "sine=sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-bf", "2",
         "-g", str(GOP), "-keyint_min", str(GOP), "-sc_threshold", "0",
         "-c:a", "aac", *extra,
         "-f", "mp4", "-movflags", CMAF, "-frag_duration", "200000", "pipe:1"],
        check=True, capture_output=True, timeout=120,
    ).stdout  # fmt: skip
    init, *fragments = FragmentReader().feed(data)
    assert isinstance(init, InitSegment)
    return init.data, [f.data for f in fragments if isinstance(f, Fragment)]


def segments(fragments: list[bytes], per: int) -> list[bytes]:
    """Fragments joined `per` at a time, as a recording stores a segment of several parts."""
    return [b"".join(fragments[i : i + per]) for i in range(0, len(fragments), per)]


def probe(path: Path) -> dict[str, object]:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-count_frames", "-print_format", "json",
         "-show_streams", "-show_format", str(path)],
        check=True, capture_output=True, timeout=120,
    ).stdout  # fmt: skip
    result: dict[str, object] = json.loads(out)
    return result


def decode_errors(path: Path) -> str:
    return subprocess.run(
        [FFMPEG, "-hide_banner", "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    ).stderr


def write(tmp_path: Path, plan: ProgressiveMp4, fragments: list[bytes]) -> Path:
    path = tmp_path / "out.mp4"
    path.write_bytes(plan.read(0, plan.size, fragments))
    return path


def video_stss(mp4: bytes) -> list[int]:
    """The sync sample numbers of the video track, read with the tests' own box walker."""
    moov = child(mp4, 0, len(mp4), "moov")
    assert moov is not None
    for kind, s, e in boxes(mp4, *moov):
        if kind != "trak":
            continue
        mdia = child(mp4, s, e, "mdia")
        assert mdia is not None
        hdlr = child(mp4, *mdia, "hdlr")
        assert hdlr is not None
        if mp4[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
            continue
        minf = child(mp4, *mdia, "minf")
        assert minf is not None
        stbl = child(mp4, *minf, "stbl")
        assert stbl is not None
        stss = child(mp4, *stbl, "stss")
        assert stss is not None
        count = struct.unpack(">I", mp4[stss[0] + 4 : stss[0] + 8])[0]
        return list(struct.unpack(f">{count}I", mp4[stss[0] + 8 : stss[0] + 8 + 4 * count]))
    raise AssertionError("no video track")


@pytest.fixture(scope="module")
def cmaf() -> tuple[bytes, list[bytes]]:
    return encode(6)


def test_remux_decodes_every_frame_with_moov_first(
    cmaf: tuple[bytes, list[bytes]], tmp_path: Path
) -> None:
    init, fragments = cmaf
    stored = segments(fragments, 5)  # one second per stored segment, several moofs each
    plan = plan_progressive(init, stored)
    path = write(tmp_path, plan, stored)
    mp4 = path.read_bytes()
    assert len(mp4) == plan.size
    top = [kind for kind, _, _ in boxes(mp4)]
    assert top == ["ftyp", "moov", "mdat"]
    assert b"mvex" not in mp4[: mp4.index(b"mdat")]
    info = probe(path)
    streams = {s["codec_type"]: s for s in info["streams"]}  # type: ignore[attr-defined]
    assert int(streams["video"]["nb_read_frames"]) == 6 * 30
    assert int(streams["audio"]["nb_read_frames"]) >= 6 * 48000 // 1024
    duration = float(info["format"]["duration"])  # type: ignore[index]
    assert abs(duration - 6) < 0.5
    assert abs(plan.duration - duration) < 0.05
    assert decode_errors(path) == ""
    assert video_stss(mp4) == [1 + GOP * i for i in range(6)]  # every second, 1-based


def test_keyframes_ffprobe_sees_are_the_listed_ones(
    cmaf: tuple[bytes, list[bytes]], tmp_path: Path
) -> None:
    init, fragments = cmaf
    plan = plan_progressive(init, fragments)
    path = write(tmp_path, plan, fragments)
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "v", "-show_entries", "packet=flags",
         "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.split()  # fmt: skip
    keyframes = [i + 1 for i, flags in enumerate(out) if flags.startswith("K")]
    assert keyframes == video_stss(path.read_bytes())


def test_byte_ranges_add_up_to_the_whole_file(cmaf: tuple[bytes, list[bytes]]) -> None:
    init, fragments = cmaf
    plan = plan_progressive(init, fragments)
    whole = plan.read(0, plan.size, fragments)
    cuts = sorted({0, 1, 7, len(plan.header) - 1, len(plan.header), len(plan.header) + 3,
                   plan.size // 3, plan.size // 2, plan.size - 1, plan.size})
    for start, end in itertools.pairwise(cuts):
        assert plan.read(start, end, fragments) == whole[start:end]
    assert plan.read(plan.size - 10, plan.size + 100, fragments) == whole[-10:]
    assert plan.read(plan.size, plan.size + 1, fragments) == b""
    spans = [p for p in plan.pieces(len(plan.header), plan.size) if isinstance(p, Span)]
    assert sum(s.length for s in spans) == plan.size - len(plan.header)
    # the header is built from the fragment headers alone: no media byte is needed for it
    assert all(isinstance(p, bytes) for p in plan.pieces(0, len(plan.header)))


def test_plan_reads_fragments_one_at_a_time(cmaf: tuple[bytes, list[bytes]]) -> None:
    init, fragments = cmaf
    seen: list[int] = []

    def stream() -> Iterator[bytes]:
        for index, data in enumerate(fragments):
            seen.append(index)
            yield data

    plan = plan_progressive(init, stream())
    assert seen == list(range(len(fragments)))
    assert plan.size > sum(len(f) for f in fragments) // 2


def test_discontinuity_plays_straight_on(tmp_path: Path) -> None:
    init, first = encode(3)
    # the same encoder settings 100 s later, as after a publisher came back
    _, second = encode(3, "-output_ts_offset", "100")
    fragments = first + second
    plan = plan_progressive(init, fragments)
    path = write(tmp_path, plan, fragments)
    info = probe(path)
    duration = float(info["format"]["duration"])  # type: ignore[index]
    assert abs(duration - 6) < 0.5
    streams = {s["codec_type"]: s for s in info["streams"]}  # type: ignore[attr-defined]
    assert int(streams["video"]["nb_read_frames"]) == 2 * 3 * 30
    assert abs(float(streams["video"]["duration"]) - float(streams["audio"]["duration"])) < 0.2
    assert decode_errors(path) == ""
    assert video_stss(path.read_bytes()) == [1 + GOP * i for i in range(6)]


def test_no_fragments_is_an_error(cmaf: tuple[bytes, list[bytes]]) -> None:
    init, _ = cmaf
    with pytest.raises(IsobmffError):
        plan_progressive(init, [])
    with pytest.raises(IsobmffError):
        plan_progressive(b"", [])


def test_a_fragment_shorter_than_planned_is_an_error(cmaf: tuple[bytes, list[bytes]]) -> None:
    init, fragments = cmaf
    plan = plan_progressive(init, fragments)
    with pytest.raises(IsobmffError):
        plan.read(0, plan.size, [f[:-1] for f in fragments])


# Hostile bytes ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1024), st.lists(st.binary(max_size=512), max_size=4))
def test_arbitrary_bytes_raise_only_isobmff_error(init: bytes, fragments: list[bytes]) -> None:
    try:
        plan_progressive(init, fragments)
    except IsobmffError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_corrupted_fragments_raise_only_isobmff_error(
    cmaf: tuple[bytes, list[bytes]], data: st.DataObject
) -> None:
    init, fragments = cmaf
    broken = [bytearray(f) for f in fragments[:3]]
    for _ in range(data.draw(st.integers(1, 8))):
        which = data.draw(st.integers(0, len(broken) - 1))
        at = data.draw(st.integers(0, min(len(broken[which]), 600) - 1))  # in the moof
        broken[which][at] = data.draw(st.integers(0, 255))
    stored = [bytes(b) for b in broken]
    try:
        plan = plan_progressive(init, stored)
    except IsobmffError:
        return
    assert plan.size == len(plan.read(0, plan.size, stored))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_run_of_real_fragments_plans_every_sample(
    cmaf: tuple[bytes, list[bytes]], data: st.DataObject
) -> None:
    init, fragments = cmaf
    reader = FragmentReader()
    items = reader.feed(init + b"".join(fragments))
    parsed = [f for f in items if isinstance(f, Fragment)]
    first = data.draw(st.sampled_from([i for i, f in enumerate(parsed) if f.independent]))
    last = data.draw(st.integers(first + 1, len(parsed)))
    per = data.draw(st.integers(1, 6))
    stored = segments(fragments[first:last], per)
    plan = plan_progressive(init, stored)
    whole = plan.read(0, plan.size, stored)
    mp4 = whole[: len(plan.header)]
    # every sample's bytes are copied once: the mdat payload is the samples of the runs
    samples = sum(len(s.data) for f in parsed[first:last]
                  for s in fragment_samples(read_init_segment(init), f))
    assert plan.size - len(plan.header) == samples
    assert sum(struct.unpack(">I", mp4[i + 4 : i + 8])[0]
               for i in _stsz_offsets(mp4)) == sum(
        len(list(fragment_samples(read_init_segment(init), f))) for f in parsed[first:last])
    start = data.draw(st.integers(0, plan.size - 1))
    end = data.draw(st.integers(start, plan.size))
    assert plan.read(start, end, stored) == whole[start:end]


def read_init_segment(init: bytes) -> InitSegment:
    (item,) = FragmentReader().feed(init)
    assert isinstance(item, InitSegment)
    return item


def _stsz_offsets(mp4: bytes) -> list[int]:
    """Where each track's stsz payload starts (its sample count is at +4)."""
    out = []
    at = mp4.find(b"stsz")
    while at != -1:
        out.append(at + 4 + 4)  # past the type, then the version/flags (sample_size at +0)
        at = mp4.find(b"stsz", at + 4)
    return out
