"""The fragmented-MP4 reader: real ffmpeg output, any chunking, codec strings, hostile bytes."""

from __future__ import annotations

import random
import re
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.media.mp4info import read_fragment, read_init
from tests.mediatools import FFMPEG

from golive.formats.codecs import parse_avc_config
from golive.formats.isobmff import (
    MAX_BOX_SIZE,
    Fragment,
    FragmentReader,
    InitSegment,
    IsobmffError,
    PartJoiner,
    fragment_samples,
    video_decoder_config,
)

CMAF = "+frag_keyframe+empty_moov+default_base_moof+cmaf"


def encode(*codec_args: str, seconds: float = 3) -> bytes:
    return subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc2=s=320x180:r=30",
         "-f", "lavfi", "-i", "sine=sample_rate=48000",
         "-t", str(seconds), *codec_args,
         "-f", "mp4", "-movflags", CMAF, "-frag_duration", "200000", "pipe:1"],
        check=True, capture_output=True, timeout=120,
    ).stdout  # fmt: skip


@pytest.fixture(scope="module")
def h264_aac() -> bytes:
    return encode(
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-keyint_min", "30",
        "-sc_threshold", "0", "-c:a", "aac",
    )  # fmt: skip


def read_all(data: bytes) -> tuple[InitSegment, list[Fragment]]:
    items = FragmentReader().feed(data)
    init, *fragments = items
    assert isinstance(init, InitSegment)
    assert all(isinstance(f, Fragment) for f in fragments)
    return init, [f for f in fragments if isinstance(f, Fragment)]


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full(kind: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    return box(kind, bytes([version]) + flags.to_bytes(3, "big") + payload)


# Real encoder output ------------------------------------------------------------------


def test_init_describes_the_tracks(h264_aac: bytes) -> None:
    init, _ = read_all(h264_aac)
    assert re.fullmatch(r"avc1\.[0-9a-f]{6},mp4a\.40\.2", init.codecs)
    video = init.video
    assert video is not None and (video.width, video.height) == (320, 180)
    assert [t.kind for t in init.tracks] == ["video", "audio"]
    reference = read_init(init.data)
    for track in init.tracks:
        assert reference[track.track_id].timescale == track.timescale
    assert init.data[4:8] == b"ftyp" and b"moov" in init.data
    avcc = init.data.index(b"avcC") + 4
    assert video.codec == "avc1." + init.data[avcc + 1 : avcc + 4].hex()


def test_fragments_are_independent_exactly_at_keyframes(h264_aac: bytes) -> None:
    init, fragments = read_all(h264_aac)
    assert init.video is not None
    track = init.video.track_id
    keyframe_times = []
    for fragment in fragments:
        assert fragment.data[4:8] == b"moof" or b"moof" in fragment.data[:64]
        runs = read_fragment(fragment.data)
        if track in runs:
            assert fragment.independent == runs[track].starts_with_sync
            assert fragment.decode_time == pytest.approx(
                runs[track].decode_time / init.video.timescale
            )
        if fragment.independent:
            keyframe_times.append(round(fragment.decode_time, 3))
    assert keyframe_times == [0.0, 1.0, 2.0]
    assert [f.sequence_number for f in fragments] == list(range(1, len(fragments) + 1))
    assert sum(f.duration for f in fragments) == pytest.approx(3.0, abs=0.2)
    assert all(0 < f.duration <= 0.25 for f in fragments)
    media = b"".join(f.data for f in fragments)
    rest = h264_aac[len(init.data) + len(media) :]
    assert init.data + media + rest == h264_aac
    assert rest[4:8] == b"mfra"  # the random-access index at the very end: no fragment


def test_any_chunking_gives_the_same_items(h264_aac: bytes) -> None:
    whole = FragmentReader().feed(h264_aac)
    rng = random.Random(7)
    reader = FragmentReader()
    items: list[InitSegment | Fragment] = []
    offset = 0
    while offset < len(h264_aac):
        size = rng.randint(1, 7)
        items += reader.feed(h264_aac[offset : offset + size])
        offset += size
    assert items == whole


def test_hevc_and_opus_codec_strings() -> None:
    data = encode(
        "-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1", "-x265-params", "log-level=none",
        "-c:a", "libopus", seconds=1,
    )  # fmt: skip
    init, fragments = read_all(data)
    video, audio = init.tracks
    assert re.fullmatch(r"hvc1\.1\.6\.L\d+(\.[0-9A-F]{1,2})*", video.codec), video.codec
    assert audio.codec == "Opus"
    assert fragments and fragments[0].independent


# Box framing ----------------------------------------------------------------------------


def test_boxes_before_moof_travel_with_the_fragment(h264_aac: bytes) -> None:
    init, fragments = read_all(h264_aac)
    first = fragments[0].data
    moof_at = first.index(b"moof") - 4
    extra = box(b"styp", b"msdh\x00\x00\x00\x00msdh") + full(b"prft", bytes(16)) + box(b"free")
    stream = init.data + extra + first[moof_at:]
    _, (fragment,) = read_all(stream)
    assert fragment.data == extra + first[moof_at:]


def test_largesize_box_is_read() -> None:
    payload = b"abc"
    large = struct.pack(">I4sQ", 1, b"free", 16 + len(payload)) + payload
    init_stream = synthetic_init(visual_entry(b"avc1", box(b"avcC", bytes([1, 0x64, 0, 0x1F]))))
    items = FragmentReader().feed(large + init_stream)
    (init,) = items
    assert isinstance(init, InitSegment) and init.data.startswith(large)


def test_size_zero_box_is_refused() -> None:
    with pytest.raises(IsobmffError, match="end of the stream"):
        FragmentReader().feed(struct.pack(">I4s", 0, b"mdat") + b"data")


def test_oversized_box_is_refused_from_its_header() -> None:
    with pytest.raises(IsobmffError, match="larger"):
        FragmentReader().feed(struct.pack(">I4s", MAX_BOX_SIZE + 1, b"mdat"))


def test_fragment_before_init_is_refused(h264_aac: bytes) -> None:
    _, fragments = read_all(h264_aac)
    with pytest.raises(IsobmffError, match="before the init"):
        FragmentReader().feed(fragments[0].data)


# Codec strings from synthetic sample entries -------------------------------------------------


def visual_entry(fourcc: bytes, config: bytes, width: int = 1280, height: int = 720) -> bytes:
    fields = bytes(6) + struct.pack(">H", 1) + bytes(16) + struct.pack(">HH", width, height)
    fields += bytes(70 - 20)
    return box(fourcc, fields + config)


def audio_entry(fourcc: bytes, config: bytes) -> bytes:
    fields = (
        bytes(6) + struct.pack(">H", 1) + bytes(8) + struct.pack(">HHHHI", 2, 16, 0, 0, 48000 << 16)
    )
    return box(fourcc, fields + config)


def synthetic_init(entry: bytes, handler: bytes = b"vide", track_id: int = 1,
                   extra_trex: bytes = b"") -> bytes:
    tkhd = full(b"tkhd", bytes(8) + struct.pack(">I", track_id) + bytes(80 - 12 - 8) + bytes(8))
    mdhd = full(b"mdhd", bytes(8) + struct.pack(">II", 90000, 0) + bytes(4))
    hdlr = full(b"hdlr", bytes(4) + handler + bytes(12) + b"\x00")
    stsd = full(b"stsd", struct.pack(">I", 1) + entry)
    minf = box(b"minf", box(b"stbl", stsd))
    trak = box(b"trak", tkhd + box(b"mdia", mdhd + hdlr + minf))
    trex = full(b"trex", struct.pack(">IIIII", track_id, 1, 3000, 0, 0x01010000))
    mvex = box(b"mvex", trex + extra_trex)
    return box(b"ftyp", b"iso6\x00\x00\x00\x00") + box(b"moov", trak + mvex)


def esds(audio_specific_config: bytes, object_type: int = 0x40) -> bytes:
    dsi = bytes([0x05, len(audio_specific_config)]) + audio_specific_config
    dcd_payload = bytes([object_type, 0x15]) + bytes(11) + dsi
    dcd = bytes([0x04, 0x80, 0x80, 0x80, len(dcd_payload)]) + dcd_payload  # 4-byte length
    es_payload = struct.pack(">HB", 1, 0) + dcd
    return full(b"esds", bytes([0x03, len(es_payload)]) + es_payload)


@pytest.mark.parametrize(
    ("entry", "handler", "codec", "size"),
    [
        (visual_entry(b"avc3", box(b"avcC", bytes([1, 0x4D, 0x40, 0x1E]))), b"vide",
         "avc3.4d401e", (1280, 720)),
        (visual_entry(b"hvc1", box(b"hvcC", bytes([1, 0x01, 0x60, 0, 0, 0, 0xB0, 0, 0, 0, 0, 0, 93]))),
         b"vide", "hvc1.1.6.L93.B0", (1280, 720)),
        (visual_entry(b"hev1", box(b"hvcC", bytes([1, 0x22, 0x20, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 120]))),
         b"vide", "hev1.2.4.H120.90", (1280, 720)),
        (visual_entry(b"av01", box(b"av1C", bytes([0x81, 0x08, 0x00, 0x00])), 640, 360), b"vide",
         "av01.0.08M.08", (640, 360)),
        (visual_entry(b"av01", box(b"av1C", bytes([0x81, 0x2D, 0xC0, 0x00]))), b"vide",
         "av01.1.13H.10", (1280, 720)),
        (audio_entry(b"mp4a", esds(bytes([0x12, 0x10]))), b"soun", "mp4a.40.2", (None, None)),
        (audio_entry(b"mp4a", esds(bytes([0x2B, 0x92, 0x08, 0x00]))), b"soun", "mp4a.40.5", (None, None)),
        (audio_entry(b"mp4a", esds(bytes([0xF8, 0x60]))), b"soun", "mp4a.40.35", (None, None)),
        (audio_entry(b"mp4a", esds(b"", object_type=0x6B)), b"soun", "mp4a.6b", (None, None)),
        (audio_entry(b"mp4a", b""), b"soun", "mp4a.40.2", (None, None)),
        (audio_entry(b"Opus", box(b"dOps", bytes(11))), b"soun", "Opus", (None, None)),
    ],
)  # fmt: skip
def test_codec_strings(
    entry: bytes, handler: bytes, codec: str, size: tuple[int | None, int | None]
) -> None:
    (init,) = FragmentReader().feed(synthetic_init(entry, handler))
    assert isinstance(init, InitSegment)
    (track,) = init.tracks
    assert track.codec == codec
    assert (track.width, track.height) == size
    assert track.timescale == 90000


def test_trex_defaults_give_duration_and_sync() -> None:
    stream = synthetic_init(visual_entry(b"avc1", box(b"avcC", bytes([1, 0x64, 0, 0x1F]))))
    tfhd = full(b"tfhd", struct.pack(">I", 1), flags=0x020000)  # default-base-is-moof only
    tfdt = full(b"tfdt", struct.pack(">Q", 180000), version=1)
    trun = full(b"trun", struct.pack(">II", 6, 0x02000000), flags=0x004)  # first_sample_flags
    moof = box(b"moof", full(b"mfhd", struct.pack(">I", 9)) + box(b"traf", tfhd + tfdt + trun))
    (_, fragment) = FragmentReader().feed(stream + moof + box(b"mdat", b"x"))
    assert isinstance(fragment, Fragment)
    assert (fragment.sequence_number, fragment.independent) == (9, True)
    assert fragment.decode_time == pytest.approx(2.0)
    assert fragment.duration == pytest.approx(6 * 3000 / 90000)
    # Without first_sample_flags the trex default (non-sync) applies.
    trun = full(b"trun", struct.pack(">I", 6))
    moof = box(b"moof", full(b"mfhd", struct.pack(">I", 10)) + box(b"traf", tfhd + tfdt + trun))
    (_, fragment) = FragmentReader().feed(stream + moof + box(b"mdat", b"x"))
    assert isinstance(fragment, Fragment) and not fragment.independent


def test_samples_and_fragment_timing_come_from_the_same_runs(h264_aac: bytes) -> None:
    init, fragments = read_all(h264_aac)
    timescales = {track.track_id: track.timescale for track in init.tracks}
    video = init.video
    assert video is not None
    for fragment in fragments:
        samples = list(fragment_samples(init, fragment))
        per_track: dict[int, int] = {}
        for sample in samples:
            per_track[sample.track_id] = per_track.get(sample.track_id, 0) + sample.duration
        picture = per_track[video.track_id] / timescales[video.track_id]
        assert fragment.duration == pytest.approx(picture)
        first_video = next(s for s in samples if s.track_id == video.track_id)
        assert first_video.sync == fragment.independent
        assert first_video.decode_time / video.timescale == pytest.approx(fragment.decode_time)


def test_video_decoder_config_is_the_avcc_record(h264_aac: bytes) -> None:
    init, _ = read_all(h264_aac)
    found = video_decoder_config(init.data)
    assert found is not None and found[0] == "avcC"
    config = parse_avc_config(found[1])
    assert config.codec_string == init.tracks[0].codec
    assert len(config.sps) == 1 and len(config.pps) == 1


def test_fragment_for_a_track_the_init_only_has_trex_for_is_refused() -> None:
    # Found by hypothesis: a trex for track 2 without a trak made the reader raise KeyError.
    trex2 = full(b"trex", struct.pack(">IIIII", 2, 1, 3000, 0, 0))
    stream = synthetic_init(visual_entry(b"avc1", box(b"avcC", bytes([1, 0x64, 0, 0x1F]))),
                            extra_trex=trex2)
    tfhd = full(b"tfhd", struct.pack(">I", 2), flags=0x020000)
    trun = full(b"trun", struct.pack(">I", 1))
    moof = box(b"moof", full(b"mfhd", struct.pack(">I", 1)) + box(b"traf", tfhd + trun))
    with pytest.raises(IsobmffError, match="does not declare"):
        FragmentReader().feed(stream + moof + box(b"mdat", b"x"))



def av_init() -> bytes:
    """A synthetic init of a video track (1) and an audio track (2), both at 90 kHz."""
    video = synthetic_init(visual_entry(b"avc1", box(b"avcC", bytes([1, 0x64, 0, 0x1F]))))
    audio = synthetic_init(audio_entry(b"mp4a", esds(bytes([0x11, 0x90]))), b"soun", 2)
    # Each is ftyp + moov(trak + mvex(trex)): take the video's trak and both trexes.
    def parts(init: bytes) -> tuple[bytes, bytes]:
        moov = init[init.index(b"moov") - 4 :]
        trak = moov[8 : 8 + struct.unpack(">I", moov[8:12])[0]]
        return trak, moov[8 + len(trak) + 8 :]

    (vtrak, vtrex), (atrak, atrex) = parts(video), parts(audio)
    return box(b"ftyp", b"iso6\x00\x00\x00\x00") + box(
        b"moov", vtrak + atrak + box(b"mvex", vtrex + atrex))


def traf(track_id: int, decode_time: int, samples: int, sample_duration: int,
         sync: bool = False) -> bytes:
    tfhd = full(b"tfhd", struct.pack(">II", track_id, sample_duration), flags=0x020008)
    tfdt = full(b"tfdt", struct.pack(">Q", decode_time), version=1)
    first = 0x02000000 if sync else 0x01010000
    trun = full(b"trun", struct.pack(">II", samples, first), flags=0x004)
    return box(b"traf", tfhd + tfdt + trun)


def test_a_fragment_is_timed_by_its_picture_and_audio_alone_is_leadless() -> None:
    # Six frames at 30 fps (0.2 s) beside ten AAC frames (0.2133 s) that ran ahead of them:
    # the part is the picture's 0.2 s, whatever the audio in it lasts.
    both = box(b"moof", full(b"mfhd", struct.pack(">I", 1))
               + traf(1, 0, 6, 3000, sync=True) + traf(2, 0, 10, 1920))
    # Then audio alone, as a muxer writes it while the picture is late.
    alone = box(b"moof", full(b"mfhd", struct.pack(">I", 2)) + traf(2, 19200, 10, 1920))
    _, first, second = FragmentReader().feed(
        av_init() + both + box(b"mdat", b"x") + alone + box(b"mdat", b"y"))
    assert isinstance(first, Fragment) and isinstance(second, Fragment)
    assert (first.independent, first.leadless) == (True, False)
    assert first.decode_time == 0.0 and first.duration == pytest.approx(0.2)
    assert (second.independent, second.leadless) == (False, True)
    assert second.decode_time == second.duration == pytest.approx(19200 / 90000)


def part(n: int, at: float, *, leadless: bool = False, independent: bool = False,
         duration: float = 0.2) -> Fragment:
    return Fragment(bytes([n]) * 10, n, independent and not leadless, at, duration, leadless)


def test_audio_ahead_of_a_late_picture_travels_with_the_next_video_part() -> None:
    joiner = PartJoiner()
    assert joiner.push(part(1, 0.0, independent=True)) == [part(1, 0.0, independent=True)]
    # Audio for 0.2-0.6 s came out while the picture for 0.2 s was still being encoded.
    assert joiner.push(part(2, 0.2, leadless=True)) == []
    assert joiner.push(part(3, 0.4, leadless=True)) == []
    (joined,) = joiner.push(part(4, 0.2))
    # One part of three movie fragments, timed by its picture.
    assert joined.data == bytes([2]) * 10 + bytes([3]) * 10 + bytes([4]) * 10
    assert (joined.sequence_number, joined.decode_time, joined.duration) == (4, 0.2, 0.2)
    assert not joined.leadless and not joined.independent
    assert joiner.push(part(5, 0.4, independent=True)) == [part(5, 0.4, independent=True)]
    assert joiner.flush() == []


def test_held_audio_from_before_the_picture_and_past_the_bound_goes_out_alone() -> None:
    joiner = PartJoiner(max_held=2)
    # The sound of a rendition whose picture was gated off at 1.0 s...
    assert joiner.push(part(1, 1.0, leadless=True)) == []
    assert joiner.push(part(2, 1.2, leadless=True)) == []
    assert joiner.push(part(3, 1.4, leadless=True)) == [part(1, 1.0, leadless=True)]
    # ...and the picture back at 1.6 s: the older sound is not its part's.
    out = joiner.push(part(4, 1.6, independent=True))
    assert out == [part(2, 1.2, leadless=True), part(3, 1.4, leadless=True),
                   part(4, 1.6, independent=True)]
    assert joiner.push(part(5, 1.8, leadless=True)) == []
    assert joiner.flush() == [part(5, 1.8, leadless=True)]
    assert joiner.flush() == []


# Hostile bytes ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048), st.integers(min_value=1, max_value=64))
def test_arbitrary_bytes_raise_only_isobmff_error(data: bytes, chunk: int) -> None:
    reader = FragmentReader()
    try:
        for i in range(0, len(data), chunk):
            reader.feed(data[i : i + chunk])
    except IsobmffError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_real_stream_raises_only_isobmff_error(
    h264_aac: bytes, data: st.DataObject
) -> None:
    stream = bytearray(h264_aac[:20000])
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(stream) - 1))
        stream[at] = data.draw(st.integers(0, 255))
    try:
        FragmentReader().feed(bytes(stream))
    except IsobmffError:
        pass
