"""Codec header parsers against real encoder output, and against arbitrary bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.mediatools import FFMPEG as MEDIA_FFMPEG

from golive.formats import codecs
from golive.formats.codecs import (
    CodecError,
    describe_audio,
    describe_video,
    parse_audio_tag,
    parse_metadata,
    parse_video_tag,
)
from golive.formats.codecs.ac3 import AC3_FRAME_SAMPLES, ac3_silent_frame, eac3_silent_frame
from golive.formats.codecs.ac3 import crc16 as ac3_crc16
from golive.formats.codecs.audio import ac3_info
from golive.formats.flv import FlvReader, encode_header, encode_tag
from golive.formats.tag import MediaTag, TagType

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None or FFPROBE is None, reason="ffmpeg not on PATH")


def ffmpeg(*args: str) -> subprocess.CompletedProcess[bytes]:
    assert FFMPEG is not None
    return subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args],
                          capture_output=True, timeout=120)


def probe_video(path: Path) -> dict[str, Any]:
    assert FFPROBE is not None
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,profile,width,height,r_frame_rate", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=30,
    ).stdout
    stream: dict[str, Any] = json.loads(out)["streams"][0]
    return stream


def read_tags(path: Path) -> list[MediaTag]:
    return FlvReader().feed(path.read_bytes())


def first(tags: list[MediaTag], kind: TagType) -> MediaTag:
    return next(t for t in tags if t.type == kind)


# H.264 / AAC from the FLV muxer ------------------------------------------------------


@needs_ffmpeg
@pytest.mark.parametrize(
    ("size", "rate", "profile", "sample_rate", "channels"),
    [("640x360", "30", "high", 48000, 1), ("426x240", "25", "baseline", 44100, 2),
     ("1280x720", "30000/1001", "main", 22050, 2)],
)
def test_h264_and_aac_from_ffmpeg(tmp_path: Path, size: str, rate: str, profile: str,
                                  sample_rate: int, channels: int) -> None:
    path = tmp_path / "h264.flv"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={size}:r={rate}",
           "-f", "lavfi", "-i", f"sine=f=440:sample_rate={sample_rate}",
           "-t", "0.5", "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", profile,
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", str(channels),
           "-f", "flv", str(path)).check_returncode()
    expected = probe_video(path)
    tags = read_tags(path)

    header = parse_video_tag(first(tags, TagType.VIDEO).body)
    assert header.codec == "h264" and header.is_sequence_header and not header.is_frame
    info = describe_video(header)
    assert info is not None
    assert (info.width, info.height) == (expected["width"], expected["height"])
    assert info.profile == expected["profile"]
    num, den = (int(x) for x in expected["r_frame_rate"].split("/"))
    assert info.frame_rate == pytest.approx(num / den, rel=1e-4)
    assert info.codec_string is not None and info.codec_string.startswith("avc1.")
    assert info.bit_depth == 8 and info.chroma_format == 1

    frames = [parse_video_tag(t.body) for t in tags if t.type == TagType.VIDEO][1:]
    assert frames[0].is_keyframe and frames[0].is_frame
    assert all(describe_video(f) is None for f in frames)

    audio = parse_audio_tag(first(tags, TagType.AUDIO).body)
    assert audio.codec == "aac" and audio.is_sequence_header
    ainfo = describe_audio(audio)
    assert ainfo is not None
    assert (ainfo.sample_rate, ainfo.channels) == (sample_rate, channels)
    assert ainfo.codec_string == "mp4a.40.2"

    meta = parse_metadata(first(tags, TagType.SCRIPT).body)
    assert meta is not None
    assert (meta["width"], meta["height"]) == (expected["width"], expected["height"])


# HEVC ---------------------------------------------------------------------------------


def _hvcc_from_mp4(data: bytes) -> bytes:
    """The hvcC box payload of an MP4 (found by its type; sizes are 32-bit here)."""
    at = data.index(b"hvcC")
    size = int.from_bytes(data[at - 4 : at], "big")
    return data[at + 4 : at - 4 + size]


@pytest.fixture(scope="module")
def hevc_bodies(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], Path]:
    """HEVC sequence-header tag bodies: from the FLV muxer if it takes HEVC, else built
    (legacy codec id 12 and Enhanced RTMP hvc1) around the hvcC of an MP4 ffmpeg wrote."""
    if FFMPEG is None or FFPROBE is None:
        pytest.skip("ffmpeg not on PATH")
    encoders = subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True,
                              timeout=30).stdout
    if b"libx265" not in encoders:
        pytest.skip("this ffmpeg build has no libx265")
    folder = tmp_path_factory.mktemp("hevc")
    source = ("-f", "lavfi", "-i", "testsrc2=s=426x240:r=25", "-t", "0.4", "-c:v", "libx265",
              "-preset", "ultrafast", "-x265-params", "log-level=error")
    flv = folder / "hevc.flv"
    if ffmpeg(*source, "-f", "flv", str(flv)).returncode == 0:
        return [first(read_tags(flv), TagType.VIDEO).body], flv
    mp4 = folder / "hevc.mp4"
    ffmpeg(*source, "-tag:v", "hvc1", str(mp4)).check_returncode()
    hvcc = _hvcc_from_mp4(mp4.read_bytes())
    legacy = bytes((0x1C, 0, 0, 0, 0)) + hvcc
    enhanced = bytes((0x90,)) + b"hvc1" + hvcc
    return [legacy, enhanced], mp4


def test_hevc_sequence_header(hevc_bodies: tuple[list[bytes], Path]) -> None:
    bodies, path = hevc_bodies
    expected = probe_video(path)
    for body in bodies:
        header = parse_video_tag(body)
        assert header.codec == "hevc" and header.is_sequence_header
        info = describe_video(header)
        assert info is not None
        assert (info.width, info.height) == (expected["width"], expected["height"]) == (426, 240)
        assert info.profile == expected["profile"] == "Main"
        assert info.codec_string is not None and info.codec_string.startswith("hvc1.1.")
        assert info.bit_depth == 8
        if info.frame_rate is not None:
            assert info.frame_rate == pytest.approx(25)


# Enhanced RTMP and legacy headers built by hand -----------------------------------------


def test_enhanced_video_headers() -> None:
    coded = parse_video_tag(bytes((0x91,)) + b"hvc1" + b"\x00\x00\x21" + b"payload")
    assert coded.enhanced and coded.is_keyframe and coded.is_frame
    assert coded.composition_time_ms == 0x21 and bytes(coded.payload) == b"payload"
    inter = parse_video_tag(bytes((0xA3,)) + b"av01" + b"obus")
    assert inter.codec == "av1" and inter.is_frame and not inter.is_keyframe
    end = parse_video_tag(bytes((0x92,)) + b"vp09")
    assert end.is_end_of_sequence and not end.is_frame


def test_legacy_frame_type_nibble() -> None:
    assert parse_video_tag(b"\x17\x01\x00\x00\x00x").is_keyframe
    assert not parse_video_tag(b"\x27\x01\x00\x00\x00x").is_keyframe
    assert parse_video_tag(b"\x12x").codec == "h263"
    assert parse_video_tag(b"\x52\x00").is_command
    negative = parse_video_tag(b"\x27\x01\xff\xff\xfex")
    assert negative.composition_time_ms == -2
    with pytest.raises(CodecError):
        parse_video_tag(b"\x07\x01\x00\x00\x00")  # frame type 0
    with pytest.raises(CodecError):
        parse_video_tag(b"\x17\x01")


def test_metadata_variants() -> None:
    from golive.formats.amf0 import encode_all

    props = {"width": 1280.0, "encoder": "obs"}
    assert parse_metadata(encode_all(["onMetaData", props])) == props
    assert parse_metadata(encode_all(["@setDataFrame", "onMetaData", props])) == props
    assert parse_metadata(encode_all(["onCuePoint", props])) is None


# Arbitrary bytes raise only CodecError -------------------------------------------------

_VIDEO_PREFIXES = [b"", b"\x17\x00\x00\x00\x00", b"\x1c\x00\x00\x00\x00", b"\x90hvc1",
                   b"\x90avc1", b"\x90av01", b"\x90vp09", b"\x90vp08", b"\x95", b"\x97",
                   b"\x96", b"\x94hvc1", b"\x91avc1", b"\x13", b"\x17\x01"]
_AUDIO_PREFIXES = [b"", b"\xaf\x00", b"\xaf\x01", b"\x90Opus", b"\x90fLaC", b"\x91ac-3",
                   b"\x91ec-3", b"\x91.mp3", b"\x2f", b"\x94mp4a", b"\x95", b"\x97", b"\xe0"]
_SCRIPT_PREFIXES = [b"", b"\x02\x00\x0aonMetaData", b"\x02\x00\x0d@setDataFrame"]
_HYPOTHESIS = settings(max_examples=400, deadline=None,
                       suppress_health_check=[HealthCheck.too_slow])


def _only_codec_error(fn: Any, data: bytes) -> Any:
    try:
        return fn(data)
    except CodecError:
        return None


@_HYPOTHESIS
@given(st.sampled_from(_VIDEO_PREFIXES), st.binary(max_size=200))
def test_video_tags_raise_only_codec_error(prefix: bytes, data: bytes) -> None:
    info = _only_codec_error(parse_video_tag, prefix + data)
    if info is not None:
        _only_codec_error(describe_video, info)
        assert isinstance(info.is_frame, bool)


@_HYPOTHESIS
@given(st.sampled_from(_AUDIO_PREFIXES), st.binary(max_size=200))
def test_audio_tags_raise_only_codec_error(prefix: bytes, data: bytes) -> None:
    info = _only_codec_error(parse_audio_tag, prefix + data)
    if info is not None:
        _only_codec_error(describe_audio, info)


@_HYPOTHESIS
@given(st.sampled_from(_SCRIPT_PREFIXES), st.binary(max_size=200))
def test_metadata_raises_only_codec_error(prefix: bytes, data: bytes) -> None:
    result = _only_codec_error(parse_metadata, prefix + data)
    assert result is None or isinstance(result, dict)


@_HYPOTHESIS
@given(st.sampled_from([codecs.parse_h264_sps, codecs.parse_hevc_sps, codecs.parse_avc_config,
                        codecs.parse_hevc_config, codecs.parse_av1_config,
                        codecs.parse_av1_sequence_header, codecs.parse_vp_config,
                        codecs.parse_audio_specific_config]),
       st.binary(max_size=200))
def test_config_parsers_raise_only_codec_error(parser: Any, data: bytes) -> None:
    result = _only_codec_error(parser, data)
    describe = getattr(result, "describe", None)
    if describe is not None:
        _only_codec_error(lambda _: describe(), b"")


@pytest.fixture(scope="module")
def real_headers(tmp_path_factory: pytest.TempPathFactory,
                 hevc_bodies: tuple[list[bytes], Path]) -> list[bytes]:
    """Real sequence-header bodies (H.264 with VUI, HEVC, AAC) to mutate."""
    path = tmp_path_factory.mktemp("mutate") / "h264.flv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=640x360:r=30", "-f", "lavfi", "-i", "sine",
           "-t", "0.2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
           "-f", "flv", str(path)).check_returncode()
    tags = read_tags(path)
    return [first(tags, TagType.VIDEO).body, first(tags, TagType.AUDIO).body,
            *hevc_bodies[0]]


@_HYPOTHESIS
@given(st.data())
def test_mutated_real_headers_raise_only_codec_error(real_headers: list[bytes],
                                                     data: st.DataObject) -> None:
    body = bytearray(data.draw(st.sampled_from(real_headers)))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    body = body[: data.draw(st.integers(1, len(body)))]
    info = _only_codec_error(parse_video_tag, bytes(body))
    if info is not None:
        _only_codec_error(describe_video, info)
    audio = _only_codec_error(parse_audio_tag, bytes(body))
    if audio is not None:
        _only_codec_error(describe_audio, audio)


@pytest.mark.parametrize("channel_configuration", range(1, 8))
@pytest.mark.parametrize(("index", "rate"), [(3, 48000), (4, 44100), (8, 16000)])
def test_a_silent_aac_frame_decodes_to_1024_samples_of_silence(
    channel_configuration: int, index: int, rate: int
) -> None:
    asc = ((2 << 11) | (index << 7) | (channel_configuration << 3)).to_bytes(2, "big")
    config = codecs.parse_audio_specific_config(asc)
    frame = codecs.aac_silent_frame(config)
    assert frame is not None
    # ADTS (14496-3 1.A.2) around each frame, for ffmpeg's AAC decoder.
    size = len(frame) + 7
    adts = bytes([0xFF, 0xF1, (1 << 6) | (index << 2) | (channel_configuration >> 2),
                  ((channel_configuration & 3) << 6) | (size >> 11), (size >> 3) & 0xFF,
                  ((size & 7) << 5) | 0x1F, 0xFC])
    result = subprocess.run(
        [MEDIA_FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "aac", "-i", "-",
         "-f", "s16le", "-"],
        input=(adts + frame) * 20, capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert result.stderr == b""
    channels = config.channels or 0
    assert len(result.stdout) == 20 * codecs.AAC_FRAME_SAMPLES * channels * 2
    assert not any(result.stdout)


def test_no_silent_frame_where_the_configuration_has_no_lc_core() -> None:
    he_aac = codecs.parse_audio_specific_config(bytes.fromhex("2b920880"))
    assert codecs.aac_silent_frame(he_aac) == bytes.fromhex("2000000000000e")  # its LC core
    main = codecs.parse_audio_specific_config(bytes.fromhex("0990"))  # AAC Main
    assert codecs.aac_silent_frame(main) is None
    with_pce = codecs.parse_audio_specific_config(bytes.fromhex("1180"))  # channel config 0
    assert codecs.aac_silent_frame(with_pce) is None


def test_flv_silence_only_where_the_tag_settles_it() -> None:
    silence = codecs.flv_silence(b"\xaf\x00\x11\x90")
    assert silence == codecs.Silence(b"\xaf\x01" + bytes.fromhex("2000000000000e"), 1024, 48000)
    assert silence.frames_ms(3) == 64
    for other in (b"", b"\xaf", b"\xaf\x01\x11\x90", b"\xaf\x00\xff\xff", b"\xaf\x00\x09\x90",
                  b"\x2f\x00\x11\x90",  # MP3 without a frame header
                  b"\x2f\xff\xfb\x02\x64",  # free format: no length
                  b"\x90.mp3", b"\x90ac-3", b"\x91ac-3\x0b\x77\x00\x00",
                  b"\x90Opus", b"\x90OpusOpusHead\x01\x06" + bytes(8) + b"\x01",  # 5.1
                  b"\x90OpusOpusHead\x01\x02" + bytes(8) + b"\x01"):  # a mapping family
        assert codecs.flv_silence(other) is None, other


def _encoded(codec: str, *args: str) -> bytes:
    return subprocess.run(
        [MEDIA_FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
         "sine=frequency=440:duration=0.3", "-c:a", codec, *args, "-"],
        capture_output=True, timeout=60, check=True,
    ).stdout  # fmt: skip


def _opus_head(channels: int) -> bytes:
    return b"OpusHead" + bytes((1, channels, 0, 0)) + (48000).to_bytes(4, "little") + bytes(3)


_MPEG_AUDIO = {"mp3": ("libmp3lame", "44100"), "mp3_22k": ("libmp3lame", "22050"),
               "mp2": ("mp2", "48000"), "mp2_32k": ("mp2", "32000")}
_AC3 = {"ac3": ("ac3", "48000", "192k"), "ac3_44k": ("ac3", "44100", "96k"),
        "ac3_32k": ("ac3", "32000", "448k"), "eac3": ("eac3", "48000", "192k"),
        "eac3_44k": ("eac3", "44100", "64k")}


@pytest.mark.parametrize(
    ("sound", "channels"),
    [("aac", 2), ("he_aac", 2), ("he_aac_v2", 1), ("opus", 1), ("opus", 2), ("mp3", 2),
     ("mp3", 1), ("mp3_22k", 2), ("mp2", 2), ("mp2_32k", 1), ("ac3", 2), ("ac3", 6),
     ("ac3_44k", 1), ("ac3_32k", 3), ("eac3", 2), ("eac3", 6), ("eac3_44k", 1),
     ("flac", 2), ("flac_24bit", 1), ("flac_varying", 2)],
)
def test_a_silent_frame_decodes_to_its_samples_of_silence_in_ffmpeg(
    sound: str, channels: int
) -> None:
    # Through ffmpeg's FLV demuxer, as the transcoder's input gives it: each frame is as
    # long as it says, and zeros throughout.
    if sound in ("aac", "he_aac", "he_aac_v2"):
        asc = {"aac": "1190", "he_aac": "2b920880", "he_aac_v2": "eb098800"}[sound]
        config = settles = b"\xaf\x00" + bytes.fromhex(asc)
    elif sound == "opus":
        config = settles = b"\x90Opus" + _opus_head(channels)
    elif sound.startswith("flac"):  # ffmpeg's own FLV sequence start: its STREAMINFO
        depth = ["-sample_fmt", "s32", "-bits_per_raw_sample", "24", "-ar", "44100"] \
            if sound == "flac_24bit" else ["-ar", "48000"]
        flv = _encoded("flac", *depth, "-ac", str(channels), "-f", "flv")
        config = settles = next(t for t in FlvReader().feed(flv) if t.type is TagType.AUDIO).body
        if sound == "flac_varying":  # a block size that varies: no frame fits in
            assert codecs.flv_silence(config[:5] + bytes((0, 16)) + config[7:]) is None
            return
    elif sound in _AC3:  # (as the SRT input gives it: each frame settles it, none before)
        codec, rate, bitrate = _AC3[sound]
        stream = _encoded(codec, "-ar", rate, "-ac", str(channels), "-b:a", bitrate,
                          "-f", codec)
        fourcc = b"ac-3" if codec == "ac3" else b"ec-3"
        first = (codecs.ac3_frame if codec == "ac3" else codecs.eac3_frame)(stream)
        assert first is not None
        config, settles = b"\x90" + fourcc, b"\x91" + fourcc + stream[: first.length]
        assert ac3_info(stream, codec) == ac3_info(
            codecs.flv_silence(settles).body[5:], codec)  # type: ignore[union-attr]
    else:
        encoder, rate = _MPEG_AUDIO[sound]
        muxer = "mp2" if encoder == "mp2" else "mp3"
        stream = _encoded(encoder, "-ar", rate, "-ac", str(channels), "-f", muxer)
        start = next(i for i in range(len(stream)) if codecs.mpeg_audio_frame(stream, i))
        config, settles = b"\x90.mp3", b"\x91.mp3" + stream[start : start + 4]
    silence = codecs.flv_silence(settles)
    assert silence is not None
    tags = [MediaTag(TagType.AUDIO, 0, config)]
    tags += [MediaTag(TagType.AUDIO, silence.frames_ms(n), silence.body) for n in range(20)]
    flv = encode_header(audio=True, video=False) + b"".join(encode_tag(t) for t in tags)
    result = subprocess.run(
        [MEDIA_FFMPEG, "-hide_banner", "-loglevel", "warning", "-f", "flv", "-i", "-",
         "-f", "s16le", "-ac", "1", "-"],
        input=flv, capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert result.stderr == b""
    assert len(result.stdout) == 20 * silence.samples * 2
    assert not any(result.stdout)


def test_every_ac3_configuration_has_a_silent_frame_with_its_length_and_right_crcs() -> None:
    for fscod in range(3):
        for frmsizecod in range(38):
            for acmod in range(8):
                for lfeon in (0, 1):
                    head = bytes((0x0B, 0x77, 0, 0, (fscod << 6) | frmsizecod, 8 << 3,
                                  acmod << 5, 0xFF if lfeon else 0))
                    found = codecs.ac3_frame(head)
                    assert found is not None
                    frame = ac3_silent_frame(fscod, frmsizecod, found.length, acmod, bool(lfeon))
                    assert frame is not None and len(frame) == found.length
                    covered = ((found.length >> 2) + (found.length >> 4)) << 1
                    assert ac3_crc16(frame[2:covered]) == 0  # crc1, over 5/8 of the frame
                    assert ac3_crc16(frame[2:]) == 0  # crc2, over all of it
                    assert codecs.ac3_frame(frame) == found


def test_every_eac3_configuration_has_a_silent_frame_as_long_as_its_bit_rate_says() -> None:
    for fscod in range(3):
        for blocks in (1, 2, 3, 6):
            for acmod in range(8):
                for lfeon in (False, True):
                    for size in (128, 512, 1400):  # 20 to 218 kbit/s at six blocks, 48 kHz
                        frame = eac3_silent_frame(fscod, blocks, size, acmod, lfeon)
                        assert frame is not None
                        assert len(frame) == min(size * 6 // blocks, 4096)  # the bit rate
                        found = codecs.eac3_frame(frame)
                        assert found is not None and found.length == len(frame)
                        assert found.samples == AC3_FRAME_SAMPLES
                        assert ac3_crc16(frame[2:]) == 0  # crc2, its only CRC
                        info = ac3_info(frame, "eac3")
                        assert info is not None and info.sample_rate == (48000, 44100, 32000)[fscod]


def test_no_eac3_silence_where_ffmpeg_would_not_decode_it_alike() -> None:
    frame = eac3_silent_frame(0, 6, 768, 7, True)
    assert frame is not None
    assert codecs.flv_silence(b"\x91ec-3" + frame) is not None
    dependent = bytes((0x0B, 0x77, 0x40 | frame[2] & 0x3F)) + frame[3:]  # strmtyp 1
    substream = bytes((0x0B, 0x77, frame[2] | 0x08)) + frame[3:]  # substreamid 1
    reduced = frame[:4] + bytes((0xC0 | frame[4] & 0x3F,)) + frame[5:]  # fscod 3: 24 kHz
    for other in (b"\x91ec-3" + dependent, b"\x91ec-3" + substream, b"\x91ec-3" + reduced,
                  b"\x91ec-3" + frame + dependent,  # 7.1: a dependent substream follows
                  b"\x91ec-3" + frame[:40]):  # cut short
        assert codecs.flv_silence(other) is None


@pytest.mark.skipif(shutil.which("gst-launch-1.0") is None, reason="needs GStreamer")
@pytest.mark.parametrize(("fscod", "frmsizecod", "acmod", "lfeon", "channels"),
                         [(0, 20, 2, False, 2), (0, 30, 7, True, 6), (1, 19, 1, False, 1),
                          (2, 8, 0, False, 2), (0, 16, 6, False, 4)])
def test_a_silent_ac3_frame_is_silence_to_liba52_too(
        tmp_path: Path, fscod: int, frmsizecod: int, acmod: int, lfeon: bool,
        channels: int) -> None:
    # liba52 (GStreamer's a52dec), a decoder independent of ffmpeg's.
    head = bytes((0x0B, 0x77, 0, 0, (fscod << 6) | frmsizecod, 8 << 3))
    found = codecs.ac3_frame(head)
    assert found is not None
    frame = ac3_silent_frame(fscod, frmsizecod, found.length, acmod, lfeon)
    assert frame is not None
    source, out = tmp_path / "silence.ac3", tmp_path / "silence.raw"
    source.write_bytes(frame * 20)
    subprocess.run(
        ["gst-launch-1.0", "-q", "filesrc", f"location={source}", "!", "ac3parse", "!",
         "a52dec", "!", "audioconvert", "dithering=none", "noise-shaping=none", "!",
         "audio/x-raw,format=S16LE", "!", "filesink", f"location={out}"],
        check=True, timeout=60, capture_output=True,
    )  # fmt: skip
    decoded = out.read_bytes()
    assert len(decoded) == 20 * AC3_FRAME_SAMPLES * channels * 2
    assert not any(decoded)


@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (48000, 1)])
def test_flac_in_ffmpegs_flv_is_described_in_each_header_form(
    tmp_path: Path, rate: int, channels: int
) -> None:
    # ffmpeg's Enhanced RTMP FLAC sequence start is the bare 34-byte STREAMINFO; the
    # marker-and-blocks and dfLa forms carry the same block.
    flv = tmp_path / "flac.flv"
    subprocess.run([MEDIA_FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"sine=sample_rate={rate}:duration=0.5", "-ac", str(channels), "-c:a",
                    "flac", "-f", "flv", str(flv)], check=True, timeout=60)
    header = first(read_tags(flv), TagType.AUDIO)
    assert header.body[:5] == b"\x90fLaC" and len(header.body) == 5 + 34
    expected = codecs.AudioInfo("flac", rate, channels, "flac")
    assert describe_audio(parse_audio_tag(header.body)) == expected
    streaminfo = header.body[5:]
    block = b"\x80\x00\x00\x22" + streaminfo  # the last metadata block, STREAMINFO
    for form in (b"fLaC" + block, bytes(4) + block):
        assert describe_audio(parse_audio_tag(b"\x90fLaC" + form)) == expected
    with pytest.raises(CodecError):
        describe_audio(parse_audio_tag(b"\x90fLaC" + streaminfo[:33]))
