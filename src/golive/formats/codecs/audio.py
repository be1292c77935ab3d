"""Audio configuration: AAC AudioSpecificConfig and Opus, FLAC, MP3 and AC-3 headers (formats).

Enough of each to name the codec (RFC 6381 string), sample rate and channels:
ISO/IEC 14496-3 1.6.2.1 AudioSpecificConfig, RFC 7845 OpusHead (or the dOps
layout), FLAC STREAMINFO, the MPEG audio frame header and A/52 (E-)AC-3 sync frames.
And one thing written rather than read: a silent frame of the source's own codec, as an
FLV audio tag (`flv_silence`: AAC with an LC core, MPEG audio Layer I-III, Opus).
"""

from __future__ import annotations

from dataclasses import dataclass

from golive.formats.codecs.ac3 import AC3_FRAME_SAMPLES, ac3_silent_frame, eac3_silent_frame
from golive.formats.codecs.bits import BitReader, BitWriter, Buffer, CodecError
from golive.formats.codecs.flac import flac_silent_frame, parse_streaminfo
from golive.formats.codecs.info import AudioInfo

AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000,  # by index
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
    core_sample_rate: int  # the AAC core's: `sample_rate`, or half of it under explicit SBR

    @property
    def codec_string(self) -> str:
        return f"mp4a.40.{self.object_type}"

    def describe(self) -> AudioInfo:
        return AudioInfo("aac", self.sample_rate, self.channels, self.codec_string)


def parse_audio_specific_config(data: Buffer) -> AacConfig:
    return read_audio_specific_config(BitReader(data))


def read_audio_specific_config(r: BitReader) -> AacConfig:
    """Read an AudioSpecificConfig up to its extension signalling, leaving `r` after it."""

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
        if index >= len(AAC_SAMPLE_RATES):
            raise CodecError(f"reserved samplingFrequencyIndex {index}")
        return index, AAC_SAMPLE_RATES[index]

    aot = object_type()
    if aot == 0:
        raise CodecError("audioObjectType 0 is invalid")
    index, core_rate = frequency()
    rate = core_rate
    config = r.u(4)
    channels = _AAC_CHANNELS.get(config)
    core = aot
    if aot in (_SBR, _PS):
        _, rate = frequency()
        core = object_type()
        if aot == _PS and channels == 1:
            channels = 2  # parametric stereo decodes mono into stereo
    return AacConfig(aot, index, rate, config, channels, core, core_rate)


AAC_LC = 2
_SBR, _PS = 5, 29  # HE-AAC and HE-AAC v2 object types (explicit signalling)
AAC_FRAME_SAMPLES = 1024  # samples per channel in an AAC-LC frame
# The syntactic elements of a raw_data_block per channelConfiguration (14496-3 table
# 1.19): single channel (SCE), channel pair (CPE), low-frequency effects (LFE).
_SCE, _CPE, _LFE, _END = 0, 1, 3, 7
_ELEMENTS = {
    1: (_SCE,), 2: (_CPE,), 3: (_SCE, _CPE), 4: (_SCE, _CPE, _SCE), 5: (_SCE, _CPE, _CPE),
    6: (_SCE, _CPE, _CPE, _LFE), 7: (_SCE, _CPE, _CPE, _CPE, _LFE),
}


def aac_silent_frame(config: AacConfig) -> bytes | None:
    """One AAC-LC raw_data_block (14496-3 4.4.2.1) of silence for this configuration, or
    None where there is none to write (not an LC core, or channels set by a PCE).

    Each channel's individual_channel_stream is a long window with no scale factor band
    (max_sfb 0): no spectral data, so every decoder outputs 1024 samples of zeros. HE-AAC
    (SBR, and PS) has an LC core: the same block without SBR data decodes to silence at
    the SBR rate (2048 samples).
    """
    if config.object_type != AAC_LC and not (
        config.object_type in (_SBR, _PS) and config.core_object_type == AAC_LC
    ):
        return None
    elements = _ELEMENTS.get(config.channel_configuration)
    if elements is None:
        return None
    bits = BitWriter()

    def channel_stream() -> None:
        bits.put(0, 8)  # global_gain
        # ics_info: ics_reserved_bit, window_sequence ONLY_LONG, window_shape, max_sfb 0
        # (6 bits), predictor_data_present: 11 zero bits
        bits.put(0, 11)
        # no sections or scale factors (max_sfb 0); pulse, TNS and gain control absent
        bits.put(0, 3)

    tags = dict.fromkeys(_ELEMENTS[7], 0)
    for element in elements:
        bits.put(element, 3)
        bits.put(tags[element], 4)
        tags[element] += 1
        if element == _CPE:
            bits.put(0, 1)  # common_window: each channel has its own ics_info
            channel_stream()
        channel_stream()
    bits.put(_END, 3)
    return bits.to_bytes()


@dataclass(frozen=True, slots=True)
class Silence:
    """A silent frame as the body of an FLV audio tag, and how much time it fills."""

    body: bytes
    samples: int  # per channel, at `sample_rate`
    sample_rate: int

    def frames_ms(self, count: int) -> int:
        """How long `count` of these frames last, in whole milliseconds."""
        return count * self.samples * 1000 // self.sample_rate


_OPUS_SILENCE = b"\xff\xfe"  # one 20 ms CELT frame coding digital silence
_OPUS_MONO, _OPUS_STEREO = 0xF8, 0xFC  # TOC: config 31 (CELT fullband, 20 ms), code 0


def flv_silence(body: Buffer) -> Silence | None:
    """A silent frame for the sound an FLV audio tag describes, where this tag settles it.

    AAC (legacy FLV) and Opus (Enhanced RTMP) are settled by their sequence headers; MPEG
    audio Layer I-III (legacy MP3 or Enhanced ".mp3"), which has none, by each frame: the
    frame's header without CRC or padding, then zeros (no bits allocated, no side
    information: every decoder outputs the frame's samples as zeros). AC-3 and E-AC-3
    (Enhanced "ac-3", "ec-3") by each frame too: a syncframe of its rate, bit rate and
    channels that allocates no mantissa bits (`golive.formats.codecs.ac3`). FLAC (Enhanced
    "fLaC") by its sequence header: a frame of CONSTANT 0 subframes
    (`golive.formats.codecs.flac`). None for anything else: another codec (PCM...),
    multichannel Opus, free-format MPEG
    audio, AAC other than LC or HE-AAC, E-AC-3 past 5.1 (dependent substreams) or at a
    reduced rate, or damaged headers.
    """
    head = bytes(body[:64])
    if len(head) < 2:
        return None
    sound_format = head[0] >> 4
    if sound_format == 10:
        return _aac_silence(head) if head[1] == 0 else None
    if sound_format in (2, 14):
        return _mpeg_silence(head[1:], head[:1])
    if sound_format != 9 or len(head) < 5:
        return None
    packet_type, fourcc = head[0] & 0x0F, head[1:5]
    if fourcc == b".mp3" and packet_type == 1:
        return _mpeg_silence(head[5:], b"\x91.mp3")
    if fourcc == b"ac-3" and packet_type == 1:
        return _ac3_silence(head[5:])
    if fourcc == b"ec-3" and packet_type == 1:
        return _eac3_silence(head[5:], len(body) - 5)
    if fourcc == b"fLaC" and packet_type == 0:
        return _flac_silence(head[5:])
    if fourcc == b"Opus" and packet_type == 0:
        opus_head = head[5:]
        if len(opus_head) < 19 or not opus_head.startswith(b"OpusHead") or opus_head[18] != 0:
            return None  # channel mapping family 0 only: one stream, mono or stereo
        toc = {1: _OPUS_MONO, 2: _OPUS_STEREO}.get(opus_head[9])
        if toc is None:
            return None
        return Silence(b"\x91Opus" + bytes((toc,)) + _OPUS_SILENCE, 960, 48000)
    return None


def _flac_silence(header: bytes) -> Silence | None:
    try:
        info = parse_streaminfo(header)
    except CodecError:
        return None
    silent = flac_silent_frame(info)
    if silent is None:
        return None
    frame, samples = silent
    return Silence(b"\x91fLaC" + frame, samples, info.sample_rate)


def _aac_silence(head: bytes) -> Silence | None:
    try:
        config = parse_audio_specific_config(head[2:])
    except CodecError:
        return None
    frame = aac_silent_frame(config)
    if frame is None:
        return None
    if config.sample_rate % config.core_sample_rate:  # (SBR doubles the core's rate)
        return None
    samples = AAC_FRAME_SAMPLES * config.sample_rate // config.core_sample_rate
    return Silence(bytes((head[0], 1)) + frame, samples, config.sample_rate)


def _mpeg_silence(frame: bytes, prefix: bytes) -> Silence | None:
    header = bytearray(frame[:4])
    if len(header) < 4:
        return None
    header[1] |= 0x01  # protection_bit 1: no CRC follows
    header[2] &= 0xFD  # no padding slot
    found = mpeg_audio_frame(header)
    if found is None:
        return None
    return Silence(prefix + bytes(header) + bytes(found.length - 4), found.samples,
                   found.sample_rate)


def _ac3_silence(frame: bytes) -> Silence | None:
    found = ac3_frame(frame)
    if found is None or len(frame) < 8:
        return None
    fscod, acmod, lfeon = _ac3_modes(frame)
    silent = ac3_silent_frame(fscod, frame[4] & 0x3F, found.length, acmod, bool(lfeon))
    if silent is None:
        return None
    return Silence(b"\x91ac-3" + silent, AC3_FRAME_SAMPLES, found.sample_rate)


def _eac3_silence(frame: bytes, length: int) -> Silence | None:
    """For an independent substream 0 alone in its tag (`length` bytes): dependent
    substreams (channels past 5.1) or more programmes follow it in the same tag."""
    found = eac3_frame(frame)
    if found is None or found.length != length or len(frame) < 5:
        return None
    strmtyp, substreamid = frame[2] >> 6, (frame[2] >> 3) & 7
    fscod, numblkscod = frame[4] >> 6, (frame[4] >> 4) & 3
    acmod, lfeon = (frame[4] >> 1) & 7, frame[4] & 1
    if strmtyp not in (0, 2) or substreamid or fscod == 3:
        return None
    silent = eac3_silent_frame(fscod, (1, 2, 3, 6)[numblkscod], found.length, acmod,
                               bool(lfeon))
    if silent is None:
        return None
    return Silence(b"\x91ec-3" + silent, AC3_FRAME_SAMPLES, found.sample_rate)


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
        fscod, acmod, lfe = _ac3_modes(frame)
        rate = _AC3_RATES[fscod] if fscod < 3 else None
        return AudioInfo(codec, rate, _AC3_CHANNELS[acmod] + lfe, string)
    r = BitReader(frame[2:8])  # E-AC-3 (A/52 E.1.2)
    r.skip(2 + 3 + 11)
    fscod = r.u(2)
    rate2 = r.u(2)
    rate = _AC3_RATES[fscod] if fscod < 3 else (24000, 22050, 16000, None)[rate2]
    acmod = r.u(3)
    return AudioInfo(codec, rate, _AC3_CHANNELS[acmod] + r.u(1), string)


def _ac3_modes(frame: Buffer) -> tuple[int, int, int]:
    """An AC-3 syncframe's fscod, acmod and lfeon (at least 8 bytes)."""
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
    return fscod, acmod, r.u(1)


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
    info = parse_streaminfo(header)
    return AudioInfo("flac", info.sample_rate or None, info.channels, "flac")


# Frame lengths: MPEG audio and AC-3 frames carry no length field, so an elementary
# stream (MPEG-TS) is cut into frames by their headers.

_MPEG_BITRATES = {  # kbit/s by (MPEG-1?, layer bits), index 1..14
    (True, 3): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),  # Layer I
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),  # Layer II
    (True, 1): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # Layer III
    (False, 3): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 1): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """What an audio frame's header says of the frame: its length, samples and rate."""

    length: int  # bytes, header included
    samples: int  # per channel
    sample_rate: int


def mpeg_audio_frame(data: Buffer, pos: int = 0) -> FrameHeader | None:
    """The MPEG-1/2/2.5 Layer I, II or III frame starting at `pos`; None if none does
    (no sync word, a reserved field, or free format, whose length no header says)."""
    if len(data) < pos + 4 or data[pos] != 0xFF or (data[pos + 1] & 0xE0) != 0xE0:
        return None
    version, layer = (data[pos + 1] >> 3) & 3, (data[pos + 1] >> 1) & 3
    bitrate_index, rate_index = data[pos + 2] >> 4, (data[pos + 2] >> 2) & 3
    if version == 1 or layer == 0 or rate_index == 3 or not 0 < bitrate_index < 15:
        return None
    mpeg1 = version == 3
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index - 1] * 1000
    rate = _MP3_RATES[version][rate_index]
    padding = (data[pos + 2] >> 1) & 1
    if layer == 3:  # Layer I: 384 samples in 4-byte slots
        return FrameHeader((12 * bitrate // rate + padding) * 4, 384, rate)
    samples = 1152 if mpeg1 or layer == 2 else 576
    return FrameHeader(samples // 8 * bitrate // rate + padding, samples, rate)


_AC3_FRAME_WORDS = {  # 16-bit words per frame by fscod (48, 44.1, 32 kHz), frmsizecod // 2
    0: (64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024,
        1152, 1280),
    1: (69, 87, 104, 121, 139, 174, 208, 243, 278, 348, 417, 487, 557, 696, 835, 975, 1114,
        1253, 1393),
    2: (96, 120, 144, 168, 192, 240, 288, 336, 384, 480, 576, 672, 768, 960, 1152, 1344, 1536,
        1728, 1920),
}


def eac3_frame(data: Buffer, pos: int = 0) -> FrameHeader | None:
    """The E-AC-3 (A/52 Annex E) syncframe starting at `pos`; None if none does. A
    dependent substream's frame (7.1) belongs to the independent one before it: it counts
    no samples of its own."""
    if len(data) < pos + 6 or data[pos] != 0x0B or data[pos + 1] != 0x77:
        return None
    if not 11 <= data[pos + 5] >> 3 <= 16:  # bsid: E-AC-3's
        return None
    strmtyp = data[pos + 2] >> 6
    frmsiz = ((data[pos + 2] & 0x07) << 8) | data[pos + 3]
    fscod, code = data[pos + 4] >> 6, (data[pos + 4] >> 4) & 3
    if strmtyp == 3:
        return None
    if fscod == 3:  # reduced rates: six blocks
        if code == 3:
            return None
        rate, blocks = (24000, 22050, 16000)[code], 6
    else:
        rate, blocks = _AC3_RATES[fscod], (1, 2, 3, 6)[code]
    return FrameHeader((frmsiz + 1) * 2, 0 if strmtyp == 1 else blocks * 256, rate)


def ac3_frame(data: Buffer, pos: int = 0) -> FrameHeader | None:
    """The AC-3 (A/52) syncframe starting at `pos`; None if none does (E-AC-3 included)."""
    if len(data) < pos + 6 or data[pos] != 0x0B or data[pos + 1] != 0x77:
        return None
    fscod, frmsizecod = data[pos + 4] >> 6, data[pos + 4] & 0x3F
    if fscod == 3 or frmsizecod >= 38 or data[pos + 5] >> 3 > 10:  # bsid > 10: E-AC-3
        return None
    words = _AC3_FRAME_WORDS[fscod][frmsizecod // 2]
    if fscod == 1:  # 44.1 kHz: odd codes carry one more word
        words += frmsizecod & 1
    return FrameHeader(words * 2, 1536, _AC3_RATES[fscod])
