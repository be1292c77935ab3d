"""AAC in LATM over LOAS (ISO/IEC 14496-3 1.7): how DVB broadcast chains carry AAC and
HE-AAC in MPEG-TS (stream type 0x11), instead of ADTS (formats).

A LOAS frame (AudioSyncStream) is an 11-bit sync word 0x2B7, a 13-bit length and one
AudioMuxElement. The element may carry a StreamMuxConfig (with the AudioSpecificConfig);
the ones between repeats say "same as before" and carry only the payload. Its fields are
not byte-aligned: the AudioSpecificConfig's end is known only by reading it, and the AAC
frame starts at any bit.

`LatmReader` turns elements into what an FLV or MP4 decoder takes: the
AudioSpecificConfig as bytes and each raw AAC frame. It reads the form broadcast encoders
and ffmpeg write: one program, one layer, one frame per element (numSubFrames 0), frame
lengths in the payload (frameLengthType 0), audioMuxVersion 0 or 1, an AAC Main, LC,
SSR or LTP core (HE-AAC and HE-AAC v2 with explicit signalling included). Anything else
raises `LatmUnsupported` (a `CodecError`) naming what it is, so the operator can be told;
anything cut short or contradictory raises `CodecError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from golive.formats.codecs.audio import AAC_FRAME_SAMPLES, read_audio_specific_config
from golive.formats.codecs.bits import BitReader, Buffer, CodecError

__all__ = ["LOAS_HEADER", "LatmConfig", "LatmReader", "LatmUnsupported", "loas_length"]

LOAS_HEADER = 3
"""Bytes of a LOAS frame before its AudioMuxElement: the sync word and the length."""

_AAC_CORES = (1, 2, 3, 4)  # Main, LC, SSR, LTP: GASpecificConfig, no error resilience
_SHORT_FRAME_SAMPLES = 960  # frameLengthFlag set


class LatmUnsupported(CodecError):
    """A well-formed LATM stream in a form golive does not take; the message names it as
    a stream's audio ("AAC in LATM with ...")."""


def loas_length(data: Buffer, pos: int = 0) -> int | None:
    """The whole length of the LOAS frame at `pos` (its header included), or None when no
    sync word is there. Needs three bytes."""
    if len(data) < pos + LOAS_HEADER or data[pos] != 0x56 or data[pos + 1] & 0xE0 != 0xE0:
        return None
    return LOAS_HEADER + (((data[pos + 1] & 0x1F) << 8) | data[pos + 2])


@dataclass(frozen=True, slots=True)
class LatmConfig:
    """What a StreamMuxConfig says of its one AAC stream."""

    asc: bytes  # the AudioSpecificConfig, zero bits after it to a whole byte
    core_rate: int  # the AAC core's sampling rate (HE-AAC's output is twice it)
    frame_samples: int  # per frame at `core_rate`: 1024, or 960


class LatmReader:
    """AudioMuxElements of one LOAS stream, in order (it keeps the last StreamMuxConfig)."""

    __slots__ = ("config",)

    def __init__(self) -> None:
        self.config: LatmConfig | None = None

    def payload(self, element: Buffer) -> bytes | None:
        """The raw AAC frame in one AudioMuxElement (muxConfigPresent, as LOAS has it),
        taking the StreamMuxConfig it carries; None when it reuses one not seen yet (a
        stream joined between repeats)."""
        r = BitReader(element)
        if not r.flag():  # useSameStreamMux 0: a StreamMuxConfig follows
            self.config = _stream_mux_config(r, element)
        elif self.config is None:
            return None
        length = 0  # PayloadLengthInfo, frameLengthType 0: bytes in a run of 255s
        while True:
            step = r.u(8)
            length += step
            if step != 255:
                break
        if length == 0 or length * 8 > r.bits_left:
            raise CodecError(f"LATM payload of {length} bytes does not fit its element")
        return r.u(length * 8).to_bytes(length, "big")


def _latm_value(r: BitReader) -> int:
    """LatmGetValue(): a 2-bit count of bytes less one, then the bytes."""
    value = 0
    for _ in range(r.u(2) + 1):
        value = value << 8 | r.u(8)
    return value


def _stream_mux_config(r: BitReader, element: Buffer) -> LatmConfig:
    version = r.u(1)
    if version and r.u(1):
        raise LatmUnsupported("LATM with audioMuxVersionA 1 (reserved)")
    if version:
        _latm_value(r)  # taraBufferFullness
    same_time_framing = r.u(1)
    subframes, programs, layers = r.u(6), r.u(4), r.u(3)
    if subframes or programs or layers or not same_time_framing:
        raise LatmUnsupported(f"AAC in LATM with frames/programs/layers per element "
                              f"{subframes + 1}/{programs + 1}/{layers + 1} (golive takes 1/1/1)")
    if version:
        asc_bits = _latm_value(r)
        start = r.position
        core_rate, frame_samples = _audio_specific_config(r)
        if r.position - start > asc_bits:
            raise CodecError("LATM AudioSpecificConfig longer than its stated length")
        r.skip(start + asc_bits - r.position)  # an extension the decoder reads itself
    else:  # its length is what reading it takes
        start = r.position
        core_rate, frame_samples = _audio_specific_config(r)
        asc_bits = r.position - start
    asc = _bits(element, start, asc_bits)
    frame_length_type = r.u(3)
    if frame_length_type:
        raise LatmUnsupported(f"AAC in LATM with frameLengthType {frame_length_type} "
                              "(golive takes 0)")
    r.skip(8)  # latmBufferFullness
    if r.flag():  # otherDataPresent: its length (the bits themselves follow the payload)
        if version:
            _latm_value(r)
        else:
            while True:
                escape = r.flag()
                r.skip(8)
                if not escape:
                    break
    if r.flag():  # crcCheckPresent
        r.skip(8)
    return LatmConfig(asc, core_rate, frame_samples)


def _audio_specific_config(r: BitReader) -> tuple[int, int]:
    """Read an AudioSpecificConfig (1.6.2.1) of an AAC core; return its core's sampling
    rate and samples per frame."""
    config = read_audio_specific_config(r)
    core = config.core_object_type
    if core not in _AAC_CORES:
        raise LatmUnsupported(f"LATM with audio object type {core} (golive takes AAC Main, "
                              "LC, SSR and LTP)")
    if config.channel_configuration == 0:
        raise LatmUnsupported("AAC in LATM with channels set by a program_config_element")
    short_frames = r.flag()  # GASpecificConfig: frameLengthFlag
    if r.flag():  # dependsOnCoreCoder
        r.skip(14)  # coreCoderDelay
    if r.flag():  # extensionFlag: only extensionFlag3 for these object types
        r.skip(1)
    return config.core_sample_rate, _SHORT_FRAME_SAMPLES if short_frames else AAC_FRAME_SAMPLES


def _bits(data: Buffer, start: int, count: int) -> bytes:
    """`count` bits of `data` from bit `start`, zero bits after them to a whole byte."""
    first, last = start >> 3, (start + count + 7) >> 3
    value = int.from_bytes(data[first:last], "big") >> ((last - first) * 8 - (start & 7) - count)
    pad = -count % 8
    return ((value & ((1 << count) - 1)) << pad).to_bytes((count + pad) // 8, "big")
