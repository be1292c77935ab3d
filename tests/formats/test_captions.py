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

from golive.formats import TagType, carries_captions
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
