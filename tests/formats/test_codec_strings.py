"""One RFC 6381 codec string per codec: FLV sequence headers and ISO-BMFF inits agree.

Expected strings are worked out by hand from the configuration records:

- HEVC, ISO/IEC 14496-15 E.3: `hvc1.` (or `hev1.`, the sample entry type), profile
  space letter (none for 0) and general_profile_idc, the 32 compatibility flags in
  reverse bit order as hex without leading zeros, `L`/`H` tier and general_level_idc
  in decimal, then the six constraint bytes in hex, trailing zero bytes left out.
- AV1, AV1 Codec ISO Media File Format Binding, "Codecs Parameter String":
  `av01.` seq_profile `.` seq_level_idx (two digits) and tier (`M`/`H`) `.` bit depth
  (two digits); the optional colour fields may be omitted.
"""

from __future__ import annotations

import subprocess

import pytest
from tests.mediatools import FFMPEG

from golive.formats.codecs import (
    av1_codec_string,
    describe_video,
    hevc_codec_string,
    hevc_config_profile,
    parse_av1_config,
    parse_video_tag,
)
from golive.formats.isobmff import FragmentReader, InitSegment, video_decoder_config

CMAF = "+frag_keyframe+empty_moov+default_base_moof+cmaf"


def encoders() -> str:
    return subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True,
                          text=True, timeout=30, check=True).stdout


def init_of(*codec_args: str) -> InitSegment:
    data = subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc2=s=320x180:r=30", "-t", "0.3", *codec_args, "-pix_fmt", "yuv420p",
         "-f", "mp4", "-movflags", CMAF, "pipe:1"],
        check=True, capture_output=True, timeout=120).stdout
    init = FragmentReader().feed(data)[0]
    assert isinstance(init, InitSegment)
    return init


def flv_codec_string(fourcc: bytes, record: bytes) -> str | None:
    """The codec string the ingest side computes from an Enhanced RTMP sequence header."""
    info = describe_video(parse_video_tag(b"\x90" + fourcc + record))
    assert info is not None
    return info.codec_string


def test_hevc_from_ffmpeg() -> None:
    init = init_of("-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1",
                   "-x265-params", "log-level=none")
    found = video_decoder_config(init.data)
    assert found is not None and found[0] == "hvcC"
    record = found[1]
    # x265 Main at 320x180: profile_space 0, Main tier, general_profile_idc 1; compatibility
    # flags 1 and 2 (0x60000000, reversed: 0x6); progressive_source and frame_only
    # constraint flags (0x90, then zeros); level_idc 60 (level 2).
    assert record[1:13] == bytes.fromhex("01" "60000000" "900000000000" "3c")
    assert init.tracks[0].codec == "hvc1.1.6.L60.90"
    assert flv_codec_string(b"hvc1", record) == "hvc1.1.6.L60.90"


def test_hevc_sample_entry_type_and_unpadded_constraint_bytes() -> None:
    # Main 10, high tier, level 4 (120); constraint bytes B0 00 08 00 00 00: the zero in
    # the middle stays, the trailing ones go, and 0x08 is written "8".
    record = bytes.fromhex("01" "22" "20000000" "b00008000000" "78")
    ptl = hevc_config_profile(record)
    assert hevc_codec_string(ptl, "hev1") == "hev1.2.4.H120.B0.0.8"
    assert ptl.codec_string == "hvc1.2.4.H120.B0.0.8"


def test_av1_from_ffmpeg() -> None:
    available = encoders()
    encoder = next((e for e in ("libsvtav1", "libaom-av1") if e in available), None)
    if encoder is None:
        pytest.skip("this ffmpeg has no AV1 encoder")
    speed = ["-preset", "12"] if encoder == "libsvtav1" else ["-cpu-used", "8"]
    init = init_of("-c:v", encoder, *speed)
    found = video_decoder_config(init.data)
    assert found is not None and found[0] == "av1C"
    record = found[1]
    # marker/version 0x81; seq_profile 0 and seq_level_idx 0 (level 2.0 covers 320x180);
    # main tier, 8-bit, 4:2:0 (subsampling x and y set).
    assert record[:3] == bytes.fromhex("81000c")
    assert init.tracks[0].codec == "av01.0.00M.08"
    assert flv_codec_string(b"av01", record) == "av01.0.00M.08"


@pytest.mark.parametrize(
    ("record", "expected"),
    [(bytes.fromhex("81080c00"), "av01.0.08M.08"),  # level 4.0, main tier, 8-bit
     (bytes.fromhex("812dc000"), "av01.1.13H.10"),  # High profile, level 5.1 high tier, 10-bit
     (bytes.fromhex("8153e000"), "av01.2.19H.12")],  # Professional, 12-bit
)
def test_av1_record_fields(record: bytes, expected: str) -> None:
    assert av1_codec_string(parse_av1_config(record)) == expected
    assert flv_codec_string(b"av01", record) == expected
