"""Audio configuration: AAC AudioSpecificConfig and Opus, FLAC, MP3 and AC-3 headers (formats).

Enough of each to name the codec (RFC 6381 string), sample rate and channels:
ISO/IEC 14496-3 1.6.2.1 AudioSpecificConfig, RFC 7845 OpusHead (or the dOps
layout), FLAC STREAMINFO, the MPEG audio frame header and A/52 (E-)AC-3 sync frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from golive.formats.codecs.bits import BitReader, Buffer, CodecError
from golive.formats.codecs.info import AudioInfo

_AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000,
                     12000, 11025, 8000, 7350)
_AAC_CHANNELS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 13: 24, 14: 8}

@dataclass(frozen=True, slots=True)
class AacConfig:
    """AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), up to the extension signalling.

    With explicit hierarchical SBR/PS signalling (object type 5 or 29 first),
    `sample_rate` is the SBR output rate and `object_type` stays 5/29, as in the
    codec string players expect (mp4a.40.5). Backward-compatible implicit SBR
    (the 0x2b7 sync extension) is not looked for.
    """

    object_type: int
    sampling_frequency_index: int  # 15: explicit rate
    sample_rate: int
    channel_configuration: int
    channels: int | None  # None: defined by a program_config_element (config 0)
    core_object_type: int

    @property
    def codec_string(self) -> str:
        return f"mp4a.40.{self.object_type}"

    def describe(self) -> AudioInfo:
        return AudioInfo("aac", self.sample_rate, self.channels, self.codec_string)


def parse_audio_specific_config(data: Buffer) -> AacConfig:
    r = BitReader(data)

    def object_type() -> int:
        value = r.u(5)
        return 32 + r.u(6) if value == 31 else value

    def frequency() -> tuple[int, int]:
        index = r.u(4)
        if index == 15:
            rate = r.u(24)
            if rate == 0:
                raise CodecError("explicit sampling frequency of 0")
            return index, rate
        if index >= len(_AAC_SAMPLE_RATES):
            raise CodecError(f"reserved samplingFrequencyIndex {index}")
        return index, _AAC_SAMPLE_RATES[index]

    aot = object_type()
    if aot == 0:
        raise CodecError("audioObjectType 0 is invalid")
    index, rate = frequency()
    config = r.u(4)
    channels = _AAC_CHANNELS.get(config)
    core = aot
    if aot in (5, 29):
        _, rate = frequency()
        core = object_type()
        if aot == 29 and channels == 1:
            channels = 2  # parametric stereo decodes mono into stereo
    return AacConfig(aot, index, rate, config, channels, core)


_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mp3_info(frame: Buffer) -> AudioInfo | None:
    if len(frame) < 4 or frame[0] != 0xFF or (frame[1] & 0xE0) != 0xE0:
        return None
    version, layer, rate_index = (frame[1] >> 3) & 3, (frame[1] >> 1) & 3, (frame[2] >> 2) & 3
    if version == 1 or layer == 0 or rate_index == 3:
        return None
    channels = 1 if frame[3] >> 6 == 3 else 2
    codec_string = "mp4a.40.34" if layer == 1 else None  # MPEG-4 audio object type Layer-3
    return AudioInfo("mp3", _MP3_RATES[version][rate_index], channels, codec_string)


_AC3_CHANNELS = (2, 1, 2, 3, 3, 4, 4, 5)
_AC3_RATES = (48000, 44100, 32000)


def ac3_info(frame: Buffer, codec: str) -> AudioInfo | None:
    if len(frame) < 8 or frame[0] != 0x0B or frame[1] != 0x77:
        return None
    string = "ac-3" if codec == "ac3" else "ec-3"
    bsid = frame[5] >> 3
    if bsid <= 10:  # AC-3 syntax (A/52 5.3.2)
        r = BitReader(frame[4:8])
        fscod = r.u(2)
        r.skip(6 + 5 + 3)
        acmod = r.u(3)
        if acmod & 1 and acmod != 1:
            r.skip(2)
        if acmod & 4:
            r.skip(2)
        if acmod == 2:
            r.skip(2)
        lfe = r.u(1)
        rate = _AC3_RATES[fscod] if fscod < 3 else None
        return AudioInfo(codec, rate, _AC3_CHANNELS[acmod] + lfe, string)
    r = BitReader(frame[2:8])  # E-AC-3 (A/52 E.1.2)
    r.skip(2 + 3 + 11)
    fscod = r.u(2)
    rate2 = r.u(2)
    rate = _AC3_RATES[fscod] if fscod < 3 else (24000, 22050, 16000, None)[rate2]
    acmod = r.u(3)
    return AudioInfo(codec, rate, _AC3_CHANNELS[acmod] + r.u(1), string)


def opus_info(header: Buffer) -> AudioInfo:
    data = bytes(header)
    if data.startswith(b"OpusHead"):  # RFC 7845 5.1 identification header
        if len(data) < 19:
            raise CodecError("OpusHead shorter than 19 bytes")
        return AudioInfo("opus", 48000, data[9], "opus")
    if data.startswith(b"OpusTags"):
        return AudioInfo("opus", 48000, None, "opus")
    if len(data) >= 11 and data[0] == 0:  # dOps box layout (no magic)
        return AudioInfo("opus", 48000, data[1], "opus")
    raise CodecError("unrecognised Opus sequence header")


def flac_info(header: Buffer) -> AudioInfo:
    data = bytes(header)
    if data.startswith(b"fLaC"):
        data = data[4:]
    elif len(data) >= 4 and data[:4] == b"\x00\x00\x00\x00" and len(data) >= 42:
        data = data[4:]  # dfLa FullBox version/flags
    if len(data) < 4 + 18 or (data[0] & 0x7F) != 0:
        raise CodecError("FLAC sequence header without STREAMINFO")
    r = BitReader(data[4 + 10 : 4 + 14])
    rate = r.u(20)
    channels = r.u(3) + 1
    return AudioInfo("flac", rate or None, channels, "flac")
