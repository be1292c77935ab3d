"""Closed captions in the picture: found in H.264 and HEVC SEI, never an error on bad bytes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.captions import captioned_flv
from tests.media.conftest import read_flv
from tests.mediatools import make_source

from golive.formats import TagType, caption_channels, carries_captions
from golive.stream import IngestMeter

A53 = b"\xb5\x00\x31GA94\x03\x42\xff\xfc\x94\x20\xfd\x80\x80\xff"


def framed(*nal_units: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(nal)) + nal for nal in nal_units)


@pytest.fixture(scope="module")
def captioned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return captioned_flv(tmp_path_factory.mktemp("cc") / "captioned.flv", seconds=4)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plain") / "plain.flv"
    make_source(path, seconds=2)
    return path


def test_a_captioned_source_is_found_and_a_plain_one_is_not(captioned: Path, plain: Path) -> None:
    for path, expected in ((plain, False), (captioned, True)):
        frames = [t for t in read_flv(path) if t.type is TagType.VIDEO and t.body[1] == 1]
        assert {carries_captions(memoryview(t.body)[5:]) for t in frames} == {expected}
        meter = IngestMeter()
        for tag in read_flv(path):
            meter.observe(tag, tag.timestamp / 1000)
        assert meter.captions is expected
        assert meter.snapshot(5.0).as_dict()["captions"] is expected
    assert meter.captions
    meter.new_publisher()  # a returning publisher may send none
    assert not meter.captions


def test_caption_data_is_found_in_the_sei_of_either_codec_and_only_there() -> None:
    h264_sei = b"\x06\x04" + bytes([len(A53)]) + A53 + b"\x80"
    hevc_sei = b"\x4e\x01\x04" + bytes([len(A53)]) + A53 + b"\x80"  # prefix SEI, type 39
    slice_ = b"\x65\x88\x84" + bytes(20)
    assert carries_captions(framed(b"\x09\xf0", h264_sei, slice_))
    assert carries_captions(framed(hevc_sei, b"\x26\x01" + bytes(20)), hevc=True)
    assert not carries_captions(framed(hevc_sei), hevc=False)  # 0x4e is no H.264 SEI
    assert not carries_captions(framed(b"\x65" + A53))  # in a slice: picture data, not SEI
    assert not carries_captions(framed(b"\x06\x05\x10" + bytes(16) + b"\x80", slice_))
    # Framing that runs past the frame: no captions, no error.
    assert not carries_captions(struct.pack(">I", 1000) + h264_sei)
    assert not carries_captions(b"")


@given(st.binary(max_size=512), st.booleans())
def test_any_bytes_are_captions_or_not_without_error(data: bytes, hevc: bool) -> None:
    assert carries_captions(data, hevc=hevc) in (True, False)


def cc_sei(*triplets: tuple[int, int, int], flags: int | None = None) -> bytes:
    """An H.264 SEI NAL with one A/53 cc_data message of `triplets` (marker, byte, byte)."""
    count = len(triplets)
    body = b"\xb5\x00\x31GA94\x03" + bytes([flags if flags is not None else 0x40 | count,
                                             0xFF])
    body += b"".join(bytes(t) for t in triplets) + b"\xff"
    return b"\x06\x04" + bytes([len(body)]) + body + b"\x80"


@pytest.mark.parametrize(("triplets", "channels"), [
    (((0xFC, 0x94, 0x20), (0xFD, 0x80, 0x80)), {"CC1"}),  # RCL on CC1, padding in field 2
    (((0xFC, 0x80, 0x80), (0xFD, 0x94, 0x2C)), {"CC3"}),  # EDM on CC3
    (((0xFC, 0x1C, 0x20), (0xFD, 0x9C, 0x2F)), {"CC2", "CC4"}),  # channel 2 of each field
    (((0xFC, 0x91, 0xD0),), {"CC1"}),  # a preamble address code (row 1) names it too
    (((0xFC, 0xC1, 0xC2), (0xFD, 0x80, 0x80)), set()),  # text alone names no channel
    (((0xF8, 0x94, 0x20),), set()),  # cc_valid 0: ignored
    (((0xFE, 0x94, 0x20), (0xFF, 0x94, 0x20)), set()),  # DTVCC (708) packets, not 608
    (((0xFD, 0x01, 0x03),), set()),  # XDS in field 2 (class 0x01-0x0F): no caption channel
])
def test_caption_channels_are_named_by_their_control_codes(
        triplets: tuple[tuple[int, int, int], ...], channels: set[str]) -> None:
    assert caption_channels(framed(b"\x09\xf0", cc_sei(*triplets))) == channels


def test_caption_channels_read_escaped_sei_of_either_codec_and_skip_the_rest() -> None:
    sei = cc_sei((0xFC, 0x94, 0x20), (0xFD, 0x94, 0x20))
    assert caption_channels(framed(b"\x4e\x01" + sei[1:]), hevc=True) == {"CC1", "CC3"}
    # An emulation prevention byte after two zero bytes (a reader drops the 03 of any
    # 00 00 03) between the triplets: read as the bytes it escapes.
    escaped = cc_sei((0xFC, 0x00, 0x00), (0xFD, 0x94, 0x20))
    escaped = escaped.replace(b"\xfc\x00\x00\xfd", b"\xfc\x00\x00\x03\xfd")
    assert caption_channels(framed(escaped)) == {"CC3"}
    # Another SEI message first (user data unregistered, type 5), then the captions.
    other = b"\x05\x10" + bytes(16)
    both = b"\x06" + other + cc_sei((0xFC, 0x94, 0x20))[1:]
    assert caption_channels(framed(both)) == {"CC1"}
    assert caption_channels(framed(cc_sei((0xFC, 0x94, 0x20), flags=0x01))) == set()  # no flag


@given(st.binary(max_size=512), st.booleans())
def test_any_bytes_name_channels_or_none_without_error(data: bytes, hevc: bool) -> None:
    assert caption_channels(data, hevc=hevc) <= {"CC1", "CC2", "CC3", "CC4"}
    sei = cc_sei((0xFC, 0x94, 0x20))
    assert caption_channels(framed(sei[:3] + data[:40] + sei[3:]), hevc=hevc) <= {
        "CC1", "CC2", "CC3", "CC4"}


def test_a_source_with_two_caption_channels_is_met_with_both(tmp_path: Path) -> None:
    source = captioned_flv(tmp_path / "cc13.flv", seconds=4, cc3=True)
    meter = IngestMeter()
    for tag in read_flv(source):
        meter.observe(tag, tag.timestamp / 1000)
    assert meter.captions and meter.caption_channels == {"CC1", "CC3"}
    assert meter.snapshot(5.0).as_dict()["caption_channels"] == ["CC1", "CC3"]
    meter.new_publisher()
    assert meter.caption_channels == frozenset()
