"""Annex-B splitting and the H.264 access-unit to FLV converter, on crafted and arbitrary bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golive.formats.annexb import AnnexBToFlv, split_annexb
from golive.formats.codecs import CodecError, parse_avc_config, parse_video_tag

SPS = bytes.fromhex("6742c01eda0280bfe584000003000400000300f03c58ba80")  # constrained baseline 3.0
PPS = bytes.fromhex("68ce0fc8")
IDR = bytes([0x65, 0x88, 0x84, 0x00, 0x33])
LONG, SHORT = b"\x00\x00\x00\x01", b"\x00\x00\x01"


def test_units_lose_start_codes_and_trailing_zeros_including_the_last() -> None:
    data = b"\x00" + LONG + SPS + b"\x00\x00" + SHORT + PPS + LONG + IDR + b"\x00\x00"
    assert split_annexb(data) == [SPS, PPS, IDR]


@pytest.mark.parametrize("data", [b"", b"\x65\x88", b"\x01\x02" + SHORT + IDR])
def test_a_stream_that_does_not_begin_with_a_start_code_is_refused(data: bytes) -> None:
    with pytest.raises(CodecError):
        split_annexb(data)


def test_keyframe_with_parameter_sets_gives_a_sequence_header_then_the_frame() -> None:
    verdict = AnnexBToFlv().push(LONG + SPS + LONG + PPS + LONG + IDR, 40)
    header, frame = verdict.tags
    assert not verdict.need_keyframe
    info = parse_video_tag(header.body)
    assert info.is_sequence_header
    config = parse_avc_config(info.payload)
    assert (config.sps, config.pps) == ((SPS,), (PPS,))
    assert parse_video_tag(frame.body).is_keyframe and frame.timestamp == 40


def test_an_sps_that_does_not_parse_asks_for_a_keyframe_instead_of_raising() -> None:
    converter = AnnexBToFlv()
    verdict = converter.push(LONG + b"\x67\xff" + LONG + PPS + LONG + IDR, 0)
    assert verdict.need_keyframe and not verdict.tags
    assert converter.dropped == 1
    # A good keyframe afterwards is taken as if nothing had happened.
    assert len(converter.push(LONG + SPS + LONG + PPS + LONG + IDR, 33).tags) == 2


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.binary(max_size=40),
    # SPS, PPS and IDR headers, so that the parameter-set path sees garbage too
    st.tuples(st.sampled_from([0x67, 0x68, 0x65]), st.binary(max_size=30)).map(
        lambda t: bytes([t[0]]) + t[1]),
), max_size=8))
def test_arbitrary_units_never_raise(units: list[bytes]) -> None:
    converter = AnnexBToFlv()
    for timestamp, unit in enumerate(units):
        verdict = converter.push(LONG + unit, timestamp)
        for tag in verdict.tags:
            parse_video_tag(tag.body)
    converter.push(b"".join(LONG + unit for unit in units), len(units))
