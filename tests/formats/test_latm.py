"""AAC in LATM over LOAS: ffmpeg's LATM against the same frames in ADTS, the StreamMuxConfig
forms broadcast encoders write that ffmpeg does not, and what golive refuses."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golive.formats.codecs import CodecError, LatmReader, LatmUnsupported, loas_length
from golive.formats.codecs.bits import BitWriter

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def adts_frames(data: bytes) -> tuple[bytes, list[bytes]]:
    """The AudioSpecificConfig an ADTS stream's first header says, and its raw frames."""
    frames = []
    pos = 0
    while pos < len(data):
        length = ((data[pos + 3] & 3) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        frames.append(data[pos + (7 if data[pos + 1] & 1 else 9) : pos + length])
        pos += length
    profile, index = data[2] >> 6, (data[2] >> 2) & 0x0F
    channels = ((data[2] & 1) << 2) | (data[3] >> 6)
    asc = ((profile + 1) << 11 | index << 7 | channels << 3).to_bytes(2, "big")
    return asc, frames


def loas_elements(data: bytes) -> list[bytes]:
    elements = []
    pos = 0
    while pos < len(data):
        length = loas_length(data, pos)
        assert length is not None, pos
        elements.append(data[pos + 3 : pos + length])
        pos += length
    return elements


@pytest.mark.parametrize(("rate", "channels"), [(48000, 2), (44100, 1), (22050, 2)])
def test_ffmpegs_latm_reads_as_the_same_frames_as_adts(
    tmp_path: Path, rate: int, channels: int
) -> None:
    adts, latm = tmp_path / "a.aac", tmp_path / "a.latm"
    run = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y"]
    subprocess.run([*run, "-f", "lavfi", "-i", f"sine=sample_rate={rate}", "-t", "1",
                    "-ac", str(channels), "-c:a", "aac", str(adts)], check=True, timeout=60)
    # A StreamMuxConfig every 5 frames: the ones between say "the same as before".
    subprocess.run([*run, "-i", str(adts), "-c", "copy", "-smc-interval", "5", "-f", "latm",
                    str(latm)], check=True, timeout=60)
    asc, expected = adts_frames(adts.read_bytes())
    elements = loas_elements(latm.read_bytes())
    reader = LatmReader()
    assert [reader.payload(e) for e in elements] == expected
    assert reader.config is not None
    assert (reader.config.asc, reader.config.core_rate, reader.config.frame_samples) == (
        asc, rate, 1024)
    # A reader that joins between two StreamMuxConfigs waits for the next one.
    late = LatmReader()
    assert [late.payload(e) for e in elements[1:6]] == [None] * 4 + [expected[5]]


def element(*, version: int = 0, asc: list[tuple[int, int]], asc_bits: int | None = None,
            subframes: int = 0, programs: int = 0, layers: int = 0, length_type: int = 0,
            other: int | None = None, crc: int | None = None, payload: bytes = b"\x21\x10",
            same_mux: bool = False) -> bytes:
    """An AudioMuxElement (muxConfigPresent) written field by field (14496-3 1.7.3)."""
    w = BitWriter()

    def value(v: int) -> None:  # LatmGetValue
        count = max(1, (v.bit_length() + 7) // 8)
        w.put(count - 1, 2)
        w.put(v, 8 * count)

    w.put(same_mux, 1)
    if not same_mux:
        w.put(version, 1)
        if version:
            w.put(0, 1)  # audioMuxVersionA
            value(0xFF)  # taraBufferFullness
        w.put(1, 1)  # allStreamsSameTimeFraming
        w.put(subframes, 6)
        w.put(programs, 4)
        w.put(layers, 3)
        if version:
            value(asc_bits if asc_bits is not None else sum(n for _, n in asc))
        for field, width in asc:
            w.put(field, width)
        w.put(length_type, 3)
        w.put(0xFF, 8)  # latmBufferFullness
        w.put(other is not None, 1)
        if other is not None:
            if version:
                value(other)
            else:
                w.put(0, 1)
                w.put(other, 8)
        w.put(crc is not None, 1)
        if crc is not None:
            w.put(crc, 8)
    length = len(payload)  # PayloadLengthInfo: 255 while more follows
    while length >= 255:
        w.put(255, 8)
        length -= 255
    w.put(length, 8)
    for byte in payload:
        w.put(byte, 8)
    if other is not None:
        w.put(0, other)
    return w.to_bytes()


# AAC-LC, 48 kHz, stereo; then GASpecificConfig: frameLengthFlag, dependsOnCoreCoder,
# extensionFlag.
LC_48K_STEREO = [(2, 5), (3, 4), (2, 4), (0, 1), (0, 1), (0, 1)]


def test_a_stream_mux_config_of_audio_mux_version_1_with_its_extras() -> None:
    # Version 1 states the AudioSpecificConfig's length: here 3 bits of an extension past
    # what golive reads, which the decoder gets too. Other data and a CRC are skipped.
    config = [*LC_48K_STEREO, (0b101, 3)]
    reader = LatmReader()
    assert reader.payload(element(version=1, asc=config, other=16, crc=0x5A,
                                  payload=b"\x01\x02\x03")) == b"\x01\x02\x03"
    assert reader.config is not None
    assert reader.config.asc == bytes([0b00010001, 0b10010000, 0b10100000])
    assert reader.payload(element(asc=[], same_mux=True, payload=b"\xff" * 300)) == b"\xff" * 300


def test_he_aac_and_960_sample_frames_are_timed_by_their_core() -> None:
    # Explicit HE-AAC: a 24 kHz LC core under 48 kHz SBR.
    he_aac = [(5, 5), (6, 4), (2, 4), (3, 4), (2, 5), (0, 1), (0, 1), (0, 1)]
    reader = LatmReader()
    assert reader.payload(element(asc=he_aac)) == b"\x21\x10"
    assert reader.config is not None
    assert (reader.config.core_rate, reader.config.frame_samples) == (24000, 1024)
    assert reader.config.asc == bytes([0b00101011, 0b00010001, 0b10001000, 0])
    short = [(2, 5), (3, 4), (1, 4), (1, 1), (1, 1), (123, 14), (0, 1)]  # and a core coder delay
    reader.payload(element(asc=short))
    assert (reader.config.core_rate, reader.config.frame_samples) == (48000, 960)


@pytest.mark.parametrize(("fields", "reason"), [
    ({"subframes": 1}, "AAC in LATM with frames/programs/layers per element 2/1/1"),
    ({"programs": 1}, "per element 1/2/1"),
    ({"layers": 2}, "per element 1/1/3"),
    ({"length_type": 1}, "AAC in LATM with frameLengthType 1"),
    ({"asc": [(31, 5), (10, 6), (3, 4), (2, 4)]}, "LATM with audio object type 42"),  # USAC
    ({"asc": [(2, 5), (3, 4), (0, 4), (0, 3)]}, "channels set by a program_config_element"),
])
def test_what_golive_does_not_take_is_named(fields: dict[str, object], reason: str) -> None:
    # Named as a stream's audio, for the operator (the audio_unsupported alert).
    arguments: dict[str, object] = {"asc": LC_48K_STEREO, **fields}
    with pytest.raises(LatmUnsupported, match=reason):
        LatmReader().payload(element(**arguments))  # type: ignore[arg-type]


@pytest.mark.parametrize(("fields", "reason"), [
    ({"asc": [(2, 5), (13, 4), (2, 4), (0, 3)]}, "reserved samplingFrequencyIndex 13"),
    ({"version": 1, "asc_bits": 10}, "longer than its stated length"),
    ({"payload": b""}, "payload of 0 bytes"),
])
def test_what_does_not_read_is_damage(fields: dict[str, object], reason: str) -> None:
    arguments: dict[str, object] = {"asc": LC_48K_STEREO, **fields}
    with pytest.raises(CodecError, match=reason) as raised:
        LatmReader().payload(element(**arguments))  # type: ignore[arg-type]
    assert not isinstance(raised.value, LatmUnsupported)


def test_cut_short_and_reserved_forms_raise_codec_errors() -> None:
    whole = element(asc=LC_48K_STEREO, payload=bytes(range(40)))
    for end in range(len(whole)):
        with pytest.raises(CodecError):
            LatmReader().payload(whole[:end])
    with pytest.raises(LatmUnsupported, match="audioMuxVersionA 1"):
        LatmReader().payload(b"\x60\x00")  # useSameStreamMux 0, version 1, versionA 1


def test_loas_length() -> None:
    assert loas_length(b"\x56\xe1\x26") == 3 + 0x126
    assert loas_length(b"\x00\x56\xff\xff", 1) == 3 + 0x1FFF
    assert loas_length(b"\x56\xc1\x26") is None  # sync word 0x2B6
    assert loas_length(b"\x56\xe1") is None  # too short to tell


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_raise_only_codec_errors(data: bytes) -> None:
    reader = LatmReader()
    for chunk in (data, data[1:], data):
        try:
            reader.payload(chunk)
        except CodecError:
            pass
