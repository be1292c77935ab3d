"""FlvReader/encode_* round trip on a real ffmpeg file; chunking, garbage, truncation."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golive.formats.flv import (
    FlvError,
    FlvReader,
    FlvWriter,
    encode_header,
    encode_tag,
)
from golive.formats.tag import MediaTag, TagType

FFMPEG = shutil.which("ffmpeg")


@pytest.fixture(scope="module")
def flv_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if FFMPEG is None:
        pytest.skip("ffmpeg not on PATH")
    path = tmp_path_factory.mktemp("flv") / "out.flv"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=s=320x180:r=30",
         "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000",
         "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
         "-c:a", "aac", "-b:a", "64k", "-f", "flv", str(path)],
        check=True, timeout=120,
    )
    return path.read_bytes()


@pytest.fixture(scope="module")
def flv_tags(flv_bytes: bytes) -> list[MediaTag]:
    return FlvReader().feed(flv_bytes)


def test_round_trip_is_byte_identical(flv_bytes: bytes, flv_tags: list[MediaTag]) -> None:
    reader = FlvReader()
    tags = reader.feed(flv_bytes)
    assert reader.header is not None
    assert reader.header.has_audio and reader.header.has_video
    assert reader.buffered == 0
    assert reader.tags_read == len(tags) and reader.bytes_read == len(flv_bytes)
    assert {t.type for t in tags} == {TagType.SCRIPT, TagType.VIDEO, TagType.AUDIO}
    rebuilt = encode_header(audio=True, video=True) + b"".join(encode_tag(t) for t in tags)
    assert rebuilt == flv_bytes
    writer = FlvWriter()
    assert writer.write_many(tags) == flv_bytes
    assert writer.header_sent and writer.header() == b""


def test_writer_streams_one_tag_at_a_time(flv_bytes: bytes, flv_tags: list[MediaTag]) -> None:
    writer = FlvWriter()
    assert b"".join(writer.write(t) for t in flv_tags) == flv_bytes


def test_byte_at_a_time(flv_bytes: bytes, flv_tags: list[MediaTag]) -> None:
    reader = FlvReader()
    tags: list[MediaTag] = []
    for i in range(min(len(flv_bytes), 40_000)):
        tags += reader.feed(flv_bytes[i : i + 1])
    tags += reader.feed(flv_bytes[40_000:])
    assert tags == flv_tags


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 200_000), max_size=40))
def test_any_chunking_gives_the_same_tags(flv_bytes: bytes, flv_tags: list[MediaTag],
                                          sizes: list[int]) -> None:
    reader = FlvReader()
    tags: list[MediaTag] = []
    pos = 0
    for size in sizes:
        tags += reader.feed(memoryview(flv_bytes)[pos : pos + size])
        pos += size
    tags += reader.feed(flv_bytes[pos:])
    assert tags == flv_tags
    assert reader.buffered == 0


def test_truncated_file(flv_bytes: bytes, flv_tags: list[MediaTag]) -> None:
    for cut in (0, 1, 5, 9, 12, 13, 14, 24, len(flv_bytes) // 2, len(flv_bytes) - 1):
        reader = FlvReader()
        tags = reader.feed(flv_bytes[:cut])
        assert tags == flv_tags[: len(tags)]
        assert len(tags) < len(flv_tags)
        assert reader.buffered <= cut
        # The rest arriving later completes the stream.
        assert tags + reader.feed(flv_bytes[cut:]) == flv_tags


def test_incomplete_tag_stays_buffered_and_is_bounded(flv_tags: list[MediaTag]) -> None:
    big = MediaTag(TagType.VIDEO, 0, b"\x17" + b"\x00" * 1000)
    data = encode_header(audio=False, video=True) + encode_tag(big)
    reader = FlvReader()
    assert reader.feed(data[:-4]) == []
    assert reader.buffered == len(encode_tag(big)) - 4
    assert reader.feed(data[-4:]) == [big]
    assert reader.buffered == 0


def test_errors() -> None:
    tag = encode_tag(MediaTag(TagType.AUDIO, 5, b"\xaf\x01abc"))
    header = encode_header(audio=True, video=False)
    cases = {
        "signature": b"FLX\x01\x05" + header[5:],
        "version": b"FLV\x02\x05" + header[5:],
        "data offset": header[:5] + (8).to_bytes(4, "big") + header[9:],
        "previous tag size 0": header[:9] + b"\x00\x00\x00\x01",
        "tag type": header + b"\x07" + tag[1:],
        "encrypted": header + bytes((tag[0] | 0x20,)) + tag[1:],
        "stream id": header + tag[:10] + b"\x01" + tag[11:],
        "previous tag size": header + tag[:-1] + b"\x00",
        "oversize": header + b"\x08\xff\xff\xff" + tag[4:],
    }
    for name, data in cases.items():
        reader = FlvReader(max_tag_size=1 << 20)
        with pytest.raises(FlvError):
            reader.feed(data)
            pytest.fail(f"{name}: accepted")
        with pytest.raises(FlvError):  # the reader stays dead
            reader.feed(header)
    with pytest.raises(FlvError):
        FlvReader().feed(b"XYZ")  # wrong signature noticed before the header completes
    with pytest.raises(FlvError):
        encode_tag(MediaTag(TagType.VIDEO, 0, b"\x00" * (1 << 24)))
    with pytest.raises(ValueError):
        FlvReader(max_tag_size=0)


def test_data_offset_and_timestamp_extension() -> None:
    header = b"FLV\x01\x01" + (20).to_bytes(4, "big") + b"\x00" * 11 + b"\x00\x00\x00\x00"
    tag = MediaTag(TagType.VIDEO, 0x12345678, b"\x27\x01\x00\x00\x00x")
    reader = FlvReader()
    assert reader.feed(header[:12]) == []
    assert reader.feed(header[12:] + encode_tag(tag)) == [tag]
    wrapped = encode_tag(MediaTag(TagType.VIDEO, (1 << 32) + 7, b"x"))
    assert FlvReader().feed(encode_header(audio=False, video=True) + wrapped)[0].timestamp == 7


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 50), max_size=10))
def test_arbitrary_bytes_raise_only_flv_error(data: bytes, sizes: list[int]) -> None:
    for prefix in (b"", encode_header(audio=True, video=True)):
        reader = FlvReader(max_tag_size=1000)
        stream = prefix + data
        pos = 0
        try:
            for size in [*sizes, len(stream)]:
                for tag in reader.feed(stream[pos : pos + size]):
                    assert isinstance(tag, MediaTag) and len(tag.body) <= 1000
                pos += size
        except FlvError:
            pass
        assert reader.buffered <= 11 + 1000 + 4 + 13
