"""What is inside FLV tag bodies: codec, frame kind and codec configuration (ingest).

Pure functions over bytes, legacy FLV and Enhanced RTMP (v2) headers alike. Every
parser raises only `CodecError` on malformed input, so a publisher's bad bytes
never escape as IndexError or struct.error. Nothing here decodes media: only the
headers and configuration records a live server needs (ISO/IEC 14496-15 avcC and
hvcC, H.264 and H.265 sequence parameter sets, av1C and the AV1 sequence header,
vpcC, ISO/IEC 14496-3 AudioSpecificConfig, the Opus/FLAC/AC-3/MP3 headers) to
name the stream's codecs, picture size and frame rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Buffer = bytes | bytearray | memoryview

# Legacy FLV video FrameType / Enhanced RTMP VideoFrameType.
FRAME_KEY = 1
FRAME_INTER = 2
FRAME_DISPOSABLE = 3
FRAME_GENERATED_KEY = 4
FRAME_COMMAND = 5

# AVCPacketType (legacy AVC and HEVC).
AVC_SEQUENCE_HEADER = 0
AVC_NALU = 1
AVC_END_OF_SEQUENCE = 2

# Enhanced RTMP VideoPacketType.
VIDEO_SEQUENCE_START = 0
VIDEO_CODED_FRAMES = 1
VIDEO_SEQUENCE_END = 2
VIDEO_CODED_FRAMES_X = 3
VIDEO_METADATA = 4
VIDEO_MPEG2TS_SEQUENCE_START = 5
VIDEO_MULTITRACK = 6
VIDEO_MODEX = 7

# Enhanced RTMP AudioPacketType.
AUDIO_SEQUENCE_START = 0
AUDIO_CODED_FRAMES = 1
AUDIO_SEQUENCE_END = 2
AUDIO_MULTICHANNEL_CONFIG = 4
AUDIO_MULTITRACK = 5
AUDIO_MODEX = 7

_LEGACY_VIDEO_CODECS = {2: "h263", 3: "screen", 4: "vp6", 5: "vp6a", 6: "screen2", 7: "h264",
                        12: "hevc"}  # 12: not in any spec, but widespread (Chinese CDNs, OBS forks)
_VIDEO_FOURCCS = {"avc1": "h264", "hvc1": "hevc", "av01": "av1", "vp09": "vp9", "vp08": "vp8"}
_LEGACY_AUDIO_CODECS = {0: "pcm", 1: "adpcm", 2: "mp3", 3: "pcm_le", 4: "nellymoser",
                        5: "nellymoser", 6: "nellymoser", 7: "pcm_alaw", 8: "pcm_mulaw",
                        10: "aac", 11: "speex", 14: "mp3", 15: "native"}
_AUDIO_FOURCCS = {"Opus": "opus", "fLaC": "flac", "ac-3": "ac3", "ec-3": "eac3",
                  ".mp3": "mp3", "mp4a": "aac"}
_LEGACY_SOUND_RATES = (5512, 11025, 22050, 44100)
_AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000,
                     12000, 11025, 8000, 7350)
_AAC_CHANNELS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 13: 24, 14: 8}
_MAX_PICTURE_SIDE = 65536


class CodecError(ValueError):
    """A tag body or codec configuration record is malformed."""


# --------------------------------------------------------------------------------------
# Bit reading


class BitReader:
    """MSB-first bit reader with Exp-Golomb codes (H.264 9.1); raises CodecError at the end."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: Buffer) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._end = len(self._data) * 8

    @property
    def bits_left(self) -> int:
        return self._end - self._pos

    def u(self, n: int) -> int:
        if n == 0:
            return 0
        pos = self._pos
        if pos + n > self._end:
            raise CodecError("bitstream ends early")
        first, last = pos >> 3, (pos + n + 7) >> 3
        chunk = int.from_bytes(self._data[first:last], "big")
        self._pos = pos + n
        return (chunk >> ((last - first) * 8 - (pos & 7) - n)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def skip(self, n: int) -> None:
        if self._pos + n > self._end:
            raise CodecError("bitstream ends early")
        self._pos += n

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise CodecError("Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)

    def uvlc(self) -> int:
        """AV1 uvlc() (4.10.3)."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros >= 32:
                return (1 << 32) - 1
        return self.u(zeros) + (1 << zeros) - 1


def unescape_rbsp(nal: Buffer) -> bytes:
    """Drop emulation-prevention bytes (00 00 03 -> 00 00) from a NAL unit."""
    data = bytes(nal)
    if b"\x00\x00\x03" not in data:
        return data
    out = bytearray()
    i = 0
    while (j := data.find(b"\x00\x00\x03", i)) >= 0:
        out += data[i : j + 2]
        i = j + 3
    out += data[i:]
    return bytes(out)


def _u8(data: Buffer, pos: int) -> int:
    if pos >= len(data):
        raise CodecError("record ends early")
    return data[pos]


def _be(data: Buffer, pos: int, n: int) -> int:
    if pos + n > len(data):
        raise CodecError("record ends early")
    return int.from_bytes(data[pos : pos + n], "big")


def _fourcc(data: Buffer, pos: int) -> str:
    if pos + 4 > len(data):
        raise CodecError("FourCC cut short")
    return bytes(data[pos : pos + 4]).decode("latin-1")


def _sized(n: int, what: str) -> int:
    if n <= 0 or n > _MAX_PICTURE_SIDE:
        raise CodecError(f"implausible {what} {n}")
    return n


# --------------------------------------------------------------------------------------
# Video tag headers


@dataclass(frozen=True, slots=True)
class VideoTagInfo:
    """The video tag header, legacy or Enhanced RTMP, and where the codec payload starts."""

    codec: str  # h264, hevc, av1, vp9, vp8, h263, vp6, ... or unknown
    is_keyframe: bool
    is_sequence_header: bool
    is_end_of_sequence: bool
    composition_time_ms: int
    payload: memoryview
    frame_type: int
    packet_type: int | None  # AVCPacketType (legacy AVC/HEVC) or VideoPacketType (enhanced)
    enhanced: bool = False
    fourcc: str | None = None
    is_command: bool = False  # a video info/command frame: no picture
    is_multitrack: bool = False  # Enhanced RTMP multitrack: tracks not split here
    is_metadata: bool = False  # Enhanced RTMP VideoPacketType.Metadata (AMF colorInfo)

    @property
    def is_frame(self) -> bool:
        """Whether this tag carries coded pictures (not config, end, command or metadata)."""
        if self.is_sequence_header or self.is_end_of_sequence or self.is_command:
            return False
        if self.is_metadata:
            return False
        if self.enhanced:
            return self.packet_type in (VIDEO_CODED_FRAMES, VIDEO_CODED_FRAMES_X)
        if self.packet_type is not None:
            return self.packet_type == AVC_NALU
        return True


def _skip_modex(body: memoryview, pos: int) -> tuple[int, int]:
    """Skip one ModEx block; return the next packet type and the new position."""
    size = _u8(body, pos) + 1
    pos += 1
    if size == 256:
        size = _be(body, pos, 2) + 1
        pos += 2
    pos += size
    return _u8(body, pos) & 0x0F, pos + 1


def parse_video_tag(body: Buffer) -> VideoTagInfo:
    """Read a video tag body's header (legacy FLV or Enhanced RTMP)."""
    view = memoryview(body)
    if len(view) < 1:
        raise CodecError("empty video tag")
    first = view[0]
    if first & 0x80:
        return _parse_ex_video(view)
    frame_type = first >> 4
    codec_id = first & 0x0F
    codec = _LEGACY_VIDEO_CODECS.get(codec_id, "unknown")
    if frame_type == FRAME_COMMAND:
        return VideoTagInfo(codec, False, False, False, 0, view[1:], frame_type, None,
                            is_command=True)
    if frame_type not in (FRAME_KEY, FRAME_INTER, FRAME_DISPOSABLE, FRAME_GENERATED_KEY):
        raise CodecError(f"invalid video frame type {frame_type}")
    if codec in ("h264", "hevc"):
        if len(view) < 5:
            raise CodecError(f"{codec} tag shorter than its 5-byte header")
        packet_type = view[1]
        if packet_type > AVC_END_OF_SEQUENCE:
            raise CodecError(f"invalid AVCPacketType {packet_type}")
        cts = _be(view, 2, 3)
        if cts & 0x800000:
            cts -= 1 << 24
        return VideoTagInfo(
            codec, frame_type == FRAME_KEY and packet_type == AVC_NALU,
            packet_type == AVC_SEQUENCE_HEADER, packet_type == AVC_END_OF_SEQUENCE,
            cts if packet_type == AVC_NALU else 0, view[5:], frame_type, packet_type,
        )
    return VideoTagInfo(codec, frame_type == FRAME_KEY, False, False, 0, view[1:],
                        frame_type, None)


def _parse_ex_video(view: memoryview) -> VideoTagInfo:
    first = view[0]
    frame_type = (first >> 4) & 0x07
    packet_type = first & 0x0F
    pos = 1
    for _ in range(16):  # ModEx blocks may chain; a sane stream has at most a few
        if packet_type != VIDEO_MODEX:
            break
        packet_type, pos = _skip_modex(view, pos)
    else:
        raise CodecError("too many chained ModEx blocks")
    if packet_type != VIDEO_METADATA and frame_type == FRAME_COMMAND:
        _u8(view, pos)  # VideoCommand
        return VideoTagInfo("unknown", False, False, False, 0, view[pos + 1 :], frame_type,
                            packet_type, enhanced=True, is_command=True)
    if packet_type == VIDEO_MULTITRACK:
        multitrack_type = _u8(view, pos) >> 4
        inner = _u8(view, pos) & 0x0F
        fourcc = _fourcc(view, pos + 1) if multitrack_type != 2 else None
        return VideoTagInfo("unknown", False, False, False, 0, view[pos + 1 :], frame_type,
                            inner, enhanced=True, fourcc=fourcc, is_multitrack=True)
    if frame_type not in (FRAME_KEY, FRAME_INTER, FRAME_DISPOSABLE, FRAME_GENERATED_KEY) \
            and packet_type != VIDEO_METADATA:
        raise CodecError(f"invalid video frame type {frame_type}")
    fourcc = _fourcc(view, pos)
    pos += 4
    codec = _VIDEO_FOURCCS.get(fourcc, "unknown")
    cts = 0
    if packet_type == VIDEO_CODED_FRAMES and codec in ("h264", "hevc"):
        cts = _be(view, pos, 3)
        if cts & 0x800000:
            cts -= 1 << 24
        pos += 3
    elif packet_type > VIDEO_MPEG2TS_SEQUENCE_START:
        raise CodecError(f"unknown VideoPacketType {packet_type}")
    is_frame = packet_type in (VIDEO_CODED_FRAMES, VIDEO_CODED_FRAMES_X)
    return VideoTagInfo(
        codec,
        frame_type == FRAME_KEY and is_frame,
        packet_type in (VIDEO_SEQUENCE_START, VIDEO_MPEG2TS_SEQUENCE_START),
        packet_type == VIDEO_SEQUENCE_END,
        cts,
        view[pos:],
        frame_type,
        packet_type,
        enhanced=True,
        fourcc=fourcc,
        is_metadata=packet_type == VIDEO_METADATA,
    )


# --------------------------------------------------------------------------------------
# Video configuration: what a downstream consumer and the facts page want to know


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """A video stream's description, from its sequence header (or a VP9 keyframe)."""

    codec: str
    codec_string: str | None  # RFC 6381, for CODECS= in playlists
    profile: str | None
    level: str | None
    width: int | None
    height: int | None
    frame_rate: float | None  # declared in the bitstream (VUI / timing info), not measured
    bit_depth: int | None = None
    chroma_format: int | None = None  # 0 mono, 1 4:2:0, 2 4:2:2, 3 4:4:4


def describe_video(tag: VideoTagInfo) -> VideoInfo | None:
    """Parse the codec configuration a sequence-header tag carries; None for other tags."""
    if not tag.is_sequence_header or tag.is_multitrack:
        if tag.codec == "vp9" and tag.is_keyframe:
            return _vp9_keyframe_info(tag.payload)
        return None
    if tag.packet_type == VIDEO_MPEG2TS_SEQUENCE_START:
        return VideoInfo(tag.codec, None, None, None, None, None, None)
    payload = tag.payload
    if tag.codec == "h264":
        return parse_avc_config(payload).describe()
    if tag.codec == "hevc":
        return parse_hevc_config(payload).describe()
    if tag.codec == "av1":
        return parse_av1_config(payload).describe()
    if tag.codec in ("vp9", "vp8"):
        return parse_vp_config(payload, tag.codec).describe()
    return VideoInfo(tag.codec, None, None, None, None, None, None)


# H.264 ----------------------------------------------------------------------------------

_H264_HIGH_PROFILES = frozenset((100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135))


def h264_profile_name(profile_idc: int, constraint_flags: int) -> str:
    """The profile's name as ffprobe spells it (Annex A)."""
    set1 = bool(constraint_flags & 0x40)
    set3 = bool(constraint_flags & 0x10)
    if profile_idc == 66:
        return "Constrained Baseline" if set1 else "Baseline"
    names = {77: "Main", 88: "Extended", 100: "High", 44: "CAVLC 4:4:4",
             118: "Multiview High", 128: "Stereo High", 83: "Scalable Baseline",
             86: "Scalable High"}
    if profile_idc in names:
        return names[profile_idc]
    intra = {110: "High 10", 122: "High 4:2:2", 244: "High 4:4:4"}
    if profile_idc in intra:
        if set3:
            return intra[profile_idc] + " Intra"
        return "High 4:4:4 Predictive" if profile_idc == 244 else intra[profile_idc]
    return f"Profile {profile_idc}"


def h264_level_name(profile_idc: int, constraint_flags: int, level_idc: int) -> str:
    if level_idc == 9 or (level_idc == 11 and constraint_flags & 0x10
                          and profile_idc in (66, 77, 88)):
        return "1b"
    return _decimal_level(level_idc, 10)


def _decimal_level(level_idc: int, scale: int) -> str:
    major, minor = divmod(level_idc, scale)
    if scale == 30:  # HEVC: level_idc = 30 * level
        minor //= 3
    return f"{major}.{minor}" if minor else str(major)


@dataclass(frozen=True, slots=True)
class H264Sps:
    """The fields of an H.264 sequence parameter set (7.3.2.1.1) that describe the picture."""

    profile_idc: int
    constraint_flags: int
    level_idc: int
    seq_parameter_set_id: int
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    frame_mbs_only: bool
    coded_width: int
    coded_height: int
    crop: tuple[int, int, int, int]  # left, right, top, bottom, in luma samples
    width: int
    height: int
    sample_aspect_ratio: tuple[int, int] | None
    frame_rate: float | None  # from VUI timing info: time_scale / (2 * num_units_in_tick)
    fixed_frame_rate: bool | None

    @property
    def codec_string(self) -> str:
        return f"avc1.{self.profile_idc:02x}{self.constraint_flags:02x}{self.level_idc:02x}"

    @property
    def profile(self) -> str:
        return h264_profile_name(self.profile_idc, self.constraint_flags)

    @property
    def level(self) -> str:
        return h264_level_name(self.profile_idc, self.constraint_flags, self.level_idc)


_SAR_TABLE = ((0, 0), (1, 1), (12, 11), (10, 11), (16, 11), (40, 33), (24, 11), (20, 11),
              (32, 11), (80, 33), (18, 11), (15, 11), (64, 33), (160, 99), (4, 3), (3, 2),
              (2, 1))


def _read_sar(r: BitReader) -> tuple[int, int] | None:
    idc = r.u(8)
    if idc == 255:  # Extended_SAR
        return r.u(16), r.u(16)
    if 0 < idc < len(_SAR_TABLE):
        return _SAR_TABLE[idc]
    return None


def _h264_scaling_list(r: BitReader, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            delta = r.se()
            if not -128 <= delta <= 127:
                raise CodecError("delta_scale out of range")
            next_scale = (last + delta + 256) % 256
        last = next_scale or last


def parse_h264_sps(nal: Buffer) -> H264Sps:
    """Parse an H.264 SPS NAL unit (with its one-byte NAL header)."""
    data = unescape_rbsp(nal)
    if len(data) < 4 or (data[0] & 0x1F) != 7:
        raise CodecError("not an H.264 sequence parameter set")
    r = BitReader(data[1:])
    profile_idc, constraint_flags, level_idc = r.u(8), r.u(8), r.u(8)
    sps_id = r.ue()
    if sps_id > 31:
        raise CodecError(f"seq_parameter_set_id {sps_id} out of range")
    chroma_format_idc, separate_planes, depth_luma, depth_chroma = 1, False, 8, 8
    if profile_idc in _H264_HIGH_PROFILES:
        chroma_format_idc = r.ue()
        if chroma_format_idc > 3:
            raise CodecError(f"chroma_format_idc {chroma_format_idc} out of range")
        if chroma_format_idc == 3:
            separate_planes = r.flag()
        depth_luma, depth_chroma = r.ue() + 8, r.ue() + 8
        if depth_luma > 14 or depth_chroma > 14:
            raise CodecError("bit depth out of range")
        r.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(12 if chroma_format_idc == 3 else 8):
                if r.flag():
                    _h264_scaling_list(r, 16 if i < 6 else 64)
    if r.ue() > 12:  # log2_max_frame_num_minus4
        raise CodecError("log2_max_frame_num out of range")
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.skip(1)  # delta_pic_order_always_zero_flag
        r.se()
        r.se()
        cycle = r.ue()
        if cycle > 255:
            raise CodecError("num_ref_frames_in_pic_order_cnt_cycle out of range")
        for _ in range(cycle):
            r.se()
    elif poc_type != 2:
        raise CodecError(f"pic_order_cnt_type {poc_type} out of range")
    r.ue()  # max_num_ref_frames
    r.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs, height_map_units = r.ue() + 1, r.ue() + 1
    frame_mbs_only = r.flag()
    if not frame_mbs_only:
        r.skip(1)  # mb_adaptive_frame_field_flag
    r.skip(1)  # direct_8x8_inference_flag
    coded_width = _sized(width_mbs * 16, "coded width")
    coded_height = _sized((2 - frame_mbs_only) * height_map_units * 16, "coded height")
    crop = (0, 0, 0, 0)
    if r.flag():  # frame_cropping_flag
        chroma_array_type = 0 if separate_planes else chroma_format_idc
        if chroma_array_type == 0:
            unit_x, unit_y = 1, 2 - frame_mbs_only
        else:
            sub_w = 1 if chroma_array_type == 3 else 2
            sub_h = 2 if chroma_array_type == 1 else 1
            unit_x, unit_y = sub_w, sub_h * (2 - frame_mbs_only)
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        crop = (left * unit_x, right * unit_x, top * unit_y, bottom * unit_y)
    width = coded_width - crop[0] - crop[1]
    height = coded_height - crop[2] - crop[3]
    if width <= 0 or height <= 0:
        raise CodecError("frame cropping removes the whole picture")
    sar: tuple[int, int] | None = None
    frame_rate: float | None = None
    fixed: bool | None = None
    if r.bits_left and r.flag():  # vui_parameters_present_flag
        if r.flag():  # aspect_ratio_info_present_flag
            sar = _read_sar(r)
        if r.flag():  # overscan_info_present_flag
            r.skip(1)
        if r.flag():  # video_signal_type_present_flag
            r.skip(4)
            if r.flag():  # colour_description_present_flag
                r.skip(24)
        if r.flag():  # chroma_loc_info_present_flag
            r.ue()
            r.ue()
        if r.flag():  # timing_info_present_flag
            units, scale = r.u(32), r.u(32)
            fixed = r.flag()
            if units and scale:
                frame_rate = round(scale / (2 * units), 3)
    return H264Sps(profile_idc, constraint_flags, level_idc, sps_id, chroma_format_idc,
                   depth_luma, depth_chroma, frame_mbs_only, coded_width, coded_height, crop,
                   width, height, sar, frame_rate, fixed)


@dataclass(frozen=True, slots=True)
class AvcConfig:
    """AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1), the avcC box's payload."""

    profile_idc: int
    constraint_flags: int  # profile_compatibility: constraint_set0..5 flags
    level_idc: int
    nal_length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]

    @property
    def codec_string(self) -> str:
        return f"avc1.{self.profile_idc:02x}{self.constraint_flags:02x}{self.level_idc:02x}"

    def parsed_sps(self) -> H264Sps | None:
        """The first SPS, parsed; None if there is none."""
        return parse_h264_sps(self.sps[0]) if self.sps else None

    def describe(self) -> VideoInfo:
        sps = self.parsed_sps()
        return VideoInfo(
            "h264", self.codec_string,
            h264_profile_name(self.profile_idc, self.constraint_flags),
            h264_level_name(self.profile_idc, self.constraint_flags, self.level_idc),
            sps.width if sps else None, sps.height if sps else None,
            sps.frame_rate if sps else None,
            sps.bit_depth_luma if sps else None, sps.chroma_format_idc if sps else None,
        )


def _nal_list(data: Buffer, pos: int, count: int) -> tuple[tuple[bytes, ...], int]:
    units = []
    for _ in range(count):
        size = _be(data, pos, 2)
        pos += 2
        if pos + size > len(data):
            raise CodecError("parameter set runs past the record")
        units.append(bytes(data[pos : pos + size]))
        pos += size
    return tuple(units), pos


def parse_avc_config(data: Buffer) -> AvcConfig:
    if len(data) < 7:
        raise CodecError("AVCDecoderConfigurationRecord shorter than 7 bytes")
    if data[0] != 1:
        raise CodecError(f"unknown avcC configurationVersion {data[0]}")
    sps, pos = _nal_list(data, 6, data[5] & 0x1F)
    pps, pos = _nal_list(data, pos + 1, _u8(data, pos))
    # The High-profile extension (chroma format, bit depths, SPS-ext) that may follow
    # repeats what the SPS says; it is left unread because many encoders omit it.
    return AvcConfig(data[1], data[2], data[3], (data[4] & 0x03) + 1, sps, pps)


# H.265 ----------------------------------------------------------------------------------

_HEVC_PROFILES = {1: "Main", 2: "Main 10", 3: "Main Still Picture", 4: "Rext",
                  5: "High Throughput", 9: "SCC"}


@dataclass(frozen=True, slots=True)
class HevcProfileTierLevel:
    profile_space: int
    tier_flag: bool
    profile_idc: int
    compatibility_flags: int  # general_profile_compatibility_flag[0..31], flag 0 in the MSB
    constraint_flags: int  # 48 bits, progressive_source_flag in the MSB
    level_idc: int

    @property
    def codec_string(self) -> str:
        """ISO/IEC 14496-15 Annex E, e.g. hvc1.1.6.L93.B0."""
        space = ("", "A", "B", "C")[self.profile_space]
        compat = int(f"{self.compatibility_flags:032b}"[::-1], 2)
        constraint = self.constraint_flags.to_bytes(6, "big").rstrip(b"\x00")
        parts = [f"hvc1.{space}{self.profile_idc}", f"{compat:X}",
                 f"{'H' if self.tier_flag else 'L'}{self.level_idc}"]
        parts += [f"{b:02X}" for b in constraint]
        return ".".join(parts)

    @property
    def profile(self) -> str:
        return _HEVC_PROFILES.get(self.profile_idc, f"Profile {self.profile_idc}")

    @property
    def level(self) -> str:
        return _decimal_level(self.level_idc, 30)


def _hevc_ptl(r: BitReader, max_sub_layers_minus1: int) -> HevcProfileTierLevel:
    space, tier, profile = r.u(2), r.flag(), r.u(5)
    compat, constraint, level = r.u(32), r.u(48), r.u(8)
    present = [(r.flag(), r.flag()) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1 > 0:
        r.skip(2 * (8 - max_sub_layers_minus1))
    for profile_present, level_present in present:
        r.skip((88 if profile_present else 0) + (8 if level_present else 0))
    return HevcProfileTierLevel(space, tier, profile, compat, constraint, level)


@dataclass(frozen=True, slots=True)
class HevcSps:
    """The picture-describing fields of an H.265 sequence parameter set (7.3.2.2.1)."""

    ptl: HevcProfileTierLevel
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    coded_width: int
    coded_height: int
    width: int  # after the conformance window
    height: int
    frame_rate: float | None  # from VUI timing info, when present and reachable


def _hevc_scaling_list_data(r: BitReader) -> None:
    for size_id in range(4):
        for _matrix in range(0, 6, 3 if size_id == 3 else 1):
            if not r.flag():  # scaling_list_pred_mode_flag
                r.ue()  # scaling_list_pred_matrix_id_delta
                continue
            if size_id > 1:
                r.se()  # scaling_list_dc_coef_minus8
            for _ in range(min(64, 1 << (4 + (size_id << 1)))):
                r.se()


def _hevc_short_term_ref_pic_sets(r: BitReader, count: int) -> None:
    """Walk st_ref_pic_set() (7.3.7) count times, deriving each set's delta POCs (7-61/62)
    because inter-RPS prediction makes the next set's length depend on them."""
    sets: list[tuple[list[int], list[int]]] = []
    for idx in range(count):
        if idx and r.flag():  # inter_ref_pic_set_prediction_flag
            ref_s0, ref_s1 = sets[idx - 1]
            sign = r.u(1)
            delta_rps = (1 - 2 * sign) * (r.ue() + 1)
            n_ref = len(ref_s0) + len(ref_s1)
            use = []
            for _ in range(n_ref + 1):
                used_by_curr = r.flag()
                use.append(used_by_curr or r.flag())
            s0: list[int] = []
            s1: list[int] = []
            n_neg = len(ref_s0)
            for j in range(len(ref_s1) - 1, -1, -1):
                d = ref_s1[j] + delta_rps
                if d < 0 and use[n_neg + j]:
                    s0.append(d)
            if delta_rps < 0 and use[n_ref]:
                s0.append(delta_rps)
            for j in range(n_neg):
                d = ref_s0[j] + delta_rps
                if d < 0 and use[j]:
                    s0.append(d)
            for j in range(n_neg - 1, -1, -1):
                d = ref_s0[j] + delta_rps
                if d > 0 and use[j]:
                    s1.append(d)
            if delta_rps > 0 and use[n_ref]:
                s1.append(delta_rps)
            for j in range(len(ref_s1)):
                d = ref_s1[j] + delta_rps
                if d > 0 and use[n_neg + j]:
                    s1.append(d)
        else:
            n_neg, n_pos = r.ue(), r.ue()
            if n_neg > 16 or n_pos > 16:
                raise CodecError("too many pictures in a short-term RPS")
            s0, s1 = [], []
            poc = 0
            for _ in range(n_neg):
                poc -= r.ue() + 1
                r.skip(1)
                s0.append(poc)
            poc = 0
            for _ in range(n_pos):
                poc += r.ue() + 1
                r.skip(1)
                s1.append(poc)
        if len(s0) + len(s1) > 32:
            raise CodecError("short-term RPS too large")
        sets.append((s0, s1))


def _hevc_vui_frame_rate(r: BitReader) -> float | None:
    if r.flag():  # aspect_ratio_info_present_flag
        _read_sar(r)
    if r.flag():  # overscan_info_present_flag
        r.skip(1)
    if r.flag():  # video_signal_type_present_flag
        r.skip(4)
        if r.flag():
            r.skip(24)
    if r.flag():  # chroma_loc_info_present_flag
        r.ue()
        r.ue()
    r.skip(3)  # neutral_chroma_indication, field_seq, frame_field_info_present
    if r.flag():  # default_display_window_flag
        for _ in range(4):
            r.ue()
    if r.flag():  # vui_timing_info_present_flag
        units, scale = r.u(32), r.u(32)
        if units and scale:
            return round(scale / units, 3)
    return None


def parse_hevc_sps(nal: Buffer) -> HevcSps:
    """Parse an H.265 SPS NAL unit (with its two-byte NAL header).

    Profile, size and conformance window come early in the SPS and are exact. The
    frame rate sits behind the reference picture sets and VUI; if anything on that
    way looks wrong the frame rate is None rather than the whole SPS failing.
    """
    data = unescape_rbsp(nal)
    if len(data) < 3 or ((data[0] >> 1) & 0x3F) != 33:
        raise CodecError("not an H.265 sequence parameter set")
    r = BitReader(data[2:])
    r.skip(4)  # sps_video_parameter_set_id
    max_sub_layers_minus1 = r.u(3)
    if max_sub_layers_minus1 > 6:
        raise CodecError("sps_max_sub_layers_minus1 out of range")
    r.skip(1)
    ptl = _hevc_ptl(r, max_sub_layers_minus1)
    if r.ue() > 15:
        raise CodecError("sps_seq_parameter_set_id out of range")
    chroma = r.ue()
    if chroma > 3:
        raise CodecError(f"chroma_format_idc {chroma} out of range")
    separate = chroma == 3 and r.flag()
    coded_w, coded_h = _sized(r.ue(), "coded width"), _sized(r.ue(), "coded height")
    sub_w = 2 if chroma in (1, 2) and not separate else 1
    sub_h = 2 if chroma == 1 and not separate else 1
    left = right = top = bottom = 0
    if r.flag():  # conformance_window_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
    width = coded_w - sub_w * (left + right)
    height = coded_h - sub_h * (top + bottom)
    if width <= 0 or height <= 0:
        raise CodecError("conformance window removes the whole picture")
    depth_luma, depth_chroma = r.ue() + 8, r.ue() + 8
    if depth_luma > 16 or depth_chroma > 16:
        raise CodecError("bit depth out of range")
    try:
        frame_rate = _hevc_sps_tail_frame_rate(r, max_sub_layers_minus1)
    except CodecError:
        frame_rate = None
    return HevcSps(ptl, chroma, depth_luma, depth_chroma, coded_w, coded_h, width, height,
                   frame_rate)


def _hevc_sps_tail_frame_rate(r: BitReader, max_sub_layers_minus1: int) -> float | None:
    log2_max_poc_lsb = r.ue() + 4
    if log2_max_poc_lsb > 16:
        raise CodecError("log2_max_pic_order_cnt_lsb out of range")
    ordering_all = r.flag()
    for _ in range(0 if ordering_all else max_sub_layers_minus1, max_sub_layers_minus1 + 1):
        r.ue()
        r.ue()
        r.ue()
    for _ in range(6):  # coding/transform block sizes and hierarchy depths
        r.ue()
    if r.flag() and r.flag():  # scaling_list_enabled, sps_scaling_list_data_present
        _hevc_scaling_list_data(r)
    r.skip(2)  # amp_enabled_flag, sample_adaptive_offset_enabled_flag
    if r.flag():  # pcm_enabled_flag
        r.skip(8)
        r.ue()
        r.ue()
        r.skip(1)
    sets = r.ue()
    if sets > 64:
        raise CodecError("num_short_term_ref_pic_sets out of range")
    _hevc_short_term_ref_pic_sets(r, sets)
    if r.flag():  # long_term_ref_pics_present_flag
        count = r.ue()
        if count > 32:
            raise CodecError("num_long_term_ref_pics_sps out of range")
        for _ in range(count):
            r.skip(log2_max_poc_lsb + 1)
    r.skip(2)  # sps_temporal_mvp_enabled_flag, strong_intra_smoothing_enabled_flag
    if r.flag():  # vui_parameters_present_flag
        return _hevc_vui_frame_rate(r)
    return None


def _hevc_vps_frame_rate(nal: Buffer) -> float | None:
    """vps_timing_info (7.3.2.1), which x265 and others write besides the VUI's."""
    data = unescape_rbsp(nal)
    if len(data) < 3 or ((data[0] >> 1) & 0x3F) != 32:
        return None
    r = BitReader(data[2:])
    r.skip(4 + 1 + 1 + 6)
    max_sub_layers_minus1 = r.u(3)
    if max_sub_layers_minus1 > 6:
        return None
    r.skip(1 + 16)
    _hevc_ptl(r, max_sub_layers_minus1)
    ordering_all = r.flag()
    for _ in range(0 if ordering_all else max_sub_layers_minus1, max_sub_layers_minus1 + 1):
        r.ue()
        r.ue()
        r.ue()
    max_layer_id = r.u(6)
    layer_sets = r.ue()
    if layer_sets > 1023:
        return None
    r.skip(layer_sets * (max_layer_id + 1))
    if r.flag():  # vps_timing_info_present_flag
        units, scale = r.u(32), r.u(32)
        if units and scale:
            return round(scale / units, 3)
    return None


@dataclass(frozen=True, slots=True)
class HevcConfig:
    """HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1), the hvcC payload."""

    ptl: HevcProfileTierLevel
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    avg_frame_rate: float | None  # avgFrameRate / 256; None when 0 (unspecified)
    nal_length_size: int
    vps: tuple[bytes, ...]
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]

    @property
    def codec_string(self) -> str:
        return self.ptl.codec_string

    def parsed_sps(self) -> HevcSps | None:
        return parse_hevc_sps(self.sps[0]) if self.sps else None

    def describe(self) -> VideoInfo:
        sps = self.parsed_sps()
        frame_rate = sps.frame_rate if sps else None
        if frame_rate is None and self.vps:
            try:
                frame_rate = _hevc_vps_frame_rate(self.vps[0])
            except CodecError:
                frame_rate = None
        if frame_rate is None:
            frame_rate = self.avg_frame_rate
        return VideoInfo("hevc", self.codec_string, self.ptl.profile, self.ptl.level,
                         sps.width if sps else None, sps.height if sps else None,
                         frame_rate, self.bit_depth_luma, self.chroma_format_idc)


def parse_hevc_config(data: Buffer) -> HevcConfig:
    if len(data) < 23:
        raise CodecError("HEVCDecoderConfigurationRecord shorter than 23 bytes")
    if data[0] != 1:
        raise CodecError(f"unknown hvcC configurationVersion {data[0]}")
    r = BitReader(data[1:13])
    ptl = HevcProfileTierLevel(r.u(2), r.flag(), r.u(5), r.u(32), r.u(48), r.u(8))
    avg = _be(data, 19, 2)
    arrays: dict[int, list[bytes]] = {32: [], 33: [], 34: []}
    pos = 23
    for _ in range(data[22]):
        nal_type = _u8(data, pos) & 0x3F
        units, pos = _nal_list(data, pos + 3, _be(data, pos + 1, 2))
        arrays.setdefault(nal_type, []).extend(units)
    return HevcConfig(ptl, data[16] & 0x03, (data[17] & 0x07) + 8, (data[18] & 0x07) + 8,
                      avg / 256 if avg else None, (data[21] & 0x03) + 1,
                      tuple(arrays[32]), tuple(arrays[33]), tuple(arrays[34]))


# AV1 ------------------------------------------------------------------------------------

_AV1_PROFILES = ("Main", "High", "Professional")
OBU_SEQUENCE_HEADER = 1


@dataclass(frozen=True, slots=True)
class Av1SequenceHeader:
    """The leading fields of sequence_header_obu() (AV1 spec 5.5.1)."""

    seq_profile: int
    still_picture: bool
    seq_level_idx: int
    seq_tier: int
    max_width: int
    max_height: int
    frame_rate: float | None  # from timing_info, when present


@dataclass(frozen=True, slots=True)
class Av1Config:
    """AV1CodecConfigurationRecord (AV1 ISOBMFF binding 2.3), the av1C payload."""

    seq_profile: int
    seq_level_idx: int
    seq_tier: int
    high_bitdepth: bool
    twelve_bit: bool
    monochrome: bool
    chroma_subsampling_x: bool
    chroma_subsampling_y: bool
    config_obus: bytes

    @property
    def bit_depth(self) -> int:
        if self.seq_profile == 2 and self.high_bitdepth:
            return 12 if self.twelve_bit else 10
        return 10 if self.high_bitdepth else 8

    @property
    def codec_string(self) -> str:
        tier = "H" if self.seq_tier else "M"
        return f"av01.{self.seq_profile}.{self.seq_level_idx:02d}{tier}.{self.bit_depth:02d}"

    def sequence_header(self) -> Av1SequenceHeader | None:
        return parse_av1_sequence_header(self.config_obus)

    def describe(self) -> VideoInfo:
        try:
            seq = self.sequence_header()
        except CodecError:
            seq = None
        chroma = 0 if self.monochrome else (
            1 if self.chroma_subsampling_y else 2 if self.chroma_subsampling_x else 3)
        level = f"{2 + (self.seq_level_idx >> 2)}.{self.seq_level_idx & 3}"
        return VideoInfo("av1", self.codec_string,
                         _AV1_PROFILES[self.seq_profile] if self.seq_profile < 3 else None,
                         level if self.seq_level_idx < 31 else None,
                         seq.max_width if seq else None, seq.max_height if seq else None,
                         seq.frame_rate if seq else None, self.bit_depth, chroma)


def parse_av1_config(data: Buffer) -> Av1Config:
    if len(data) < 4:
        raise CodecError("AV1CodecConfigurationRecord shorter than 4 bytes")
    if data[0] != 0x81:
        raise CodecError(f"bad av1C marker/version byte 0x{data[0]:02x}")
    b1, b2 = data[1], data[2]
    return Av1Config(b1 >> 5, b1 & 0x1F, b2 >> 7, bool(b2 & 0x40), bool(b2 & 0x20),
                     bool(b2 & 0x10), bool(b2 & 0x08), bool(b2 & 0x04), bytes(data[4:]))


def _leb128(data: Buffer, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = _u8(data, pos + i)
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise CodecError("leb128 longer than 8 bytes")


def parse_av1_sequence_header(obus: Buffer) -> Av1SequenceHeader | None:
    """Find and parse the sequence header among low-overhead-format OBUs; None if absent."""
    pos = 0
    while pos < len(obus):
        header = obus[pos]
        if header & 0x80:
            raise CodecError("OBU forbidden bit set")
        obu_type = (header >> 3) & 0x0F
        start = pos + 1 + (1 if header & 0x04 else 0)
        if header & 0x02:
            size, start = _leb128(obus, start)
        else:
            size = len(obus) - start
        end = start + size
        if end > len(obus):
            raise CodecError("OBU runs past the data")
        if obu_type == OBU_SEQUENCE_HEADER:
            return _av1_sequence_header(BitReader(obus[start:end]))
        pos = end
    return None


def _av1_sequence_header(r: BitReader) -> Av1SequenceHeader:
    profile = r.u(3)
    still = r.flag()
    reduced = r.flag()
    frame_rate: float | None = None
    tier = 0
    if reduced:
        level = r.u(5)
    else:
        decoder_model = False
        buffer_delay_length = 0
        if r.flag():  # timing_info_present_flag
            units, scale = r.u(32), r.u(32)
            if r.flag():  # equal_picture_interval
                ticks = r.uvlc() + 1
                if units and scale:
                    frame_rate = round(scale / (units * ticks), 3)
            decoder_model = r.flag()
            if decoder_model:
                buffer_delay_length = r.u(5) + 1
                r.skip(32 + 5 + 5)
        initial_display_delay = r.flag()
        level = tier = 0
        for i in range(r.u(5) + 1):
            r.skip(12)  # operating_point_idc
            op_level = r.u(5)
            op_tier = r.u(1) if op_level > 7 else 0
            if i == 0:
                level, tier = op_level, op_tier
            if decoder_model and r.flag():
                r.skip(2 * buffer_delay_length + 1)
            if initial_display_delay and r.flag():
                r.skip(4)
    width_bits, height_bits = r.u(4) + 1, r.u(4) + 1
    width, height = r.u(width_bits) + 1, r.u(height_bits) + 1
    return Av1SequenceHeader(profile, still, level, tier, width, height, frame_rate)


# VP8 / VP9 ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VpConfig:
    """VPCodecConfigurationRecord (VP codec ISOBMFF binding), the vpcC payload."""

    codec: str  # vp9 or vp8
    profile: int
    level: int
    bit_depth: int
    chroma_subsampling: int
    full_range: bool

    @property
    def codec_string(self) -> str:
        prefix = "vp09" if self.codec == "vp9" else "vp08"
        return f"{prefix}.{self.profile:02d}.{self.level:02d}.{self.bit_depth:02d}"

    def describe(self) -> VideoInfo:
        level = _decimal_level(self.level, 10) if self.level else None
        chroma = 3 if self.chroma_subsampling == 3 else 2 if self.chroma_subsampling == 2 else 1
        return VideoInfo(self.codec, self.codec_string, f"Profile {self.profile}", level,
                         None, None, None, self.bit_depth, chroma)


def parse_vp_config(data: Buffer, codec: str = "vp9") -> VpConfig:
    # A FullBox: version and flags come first (version 1 is the current layout).
    if len(data) < 8:
        raise CodecError("VPCodecConfigurationRecord shorter than 8 bytes")
    if data[0] != 1:
        raise CodecError(f"unknown vpcC version {data[0]}")
    b = data[6]
    return VpConfig(codec, data[4], data[5], b >> 4, (b >> 1) & 0x07, bool(b & 0x01))


def _vp9_keyframe_info(frame: Buffer) -> VideoInfo | None:
    """Picture size from a VP9 keyframe's uncompressed header (VP9 spec 6.2)."""
    r = BitReader(bytes(frame[:16]))
    if r.u(2) != 2:
        raise CodecError("VP9 frame_marker missing")
    profile = r.u(1) | (r.u(1) << 1)
    if profile == 3:
        r.skip(1)
    if r.flag() or r.flag():  # show_existing_frame, or frame_type == non-key
        return None
    r.skip(2)  # show_frame, error_resilient_mode
    if r.u(24) != 0x498342:
        raise CodecError("VP9 keyframe sync code missing")
    bit_depth = 8
    if profile >= 2:
        bit_depth = 12 if r.flag() else 10
    if r.u(3) != 7:  # color_space other than RGB
        r.skip(1)
        if profile in (1, 3):
            r.skip(3)
    elif profile in (1, 3):
        r.skip(1)
    width, height = r.u(16) + 1, r.u(16) + 1
    return VideoInfo("vp9", None, f"Profile {profile}", None, width, height, None, bit_depth)


# --------------------------------------------------------------------------------------
# Audio


@dataclass(frozen=True, slots=True)
class AudioTagInfo:
    """The audio tag header, legacy or Enhanced RTMP, and where the codec payload starts.

    For legacy tags the rate/size/channel fields are the header's flags, which are
    only hints (AAC always says 44.1 kHz stereo); `describe_audio` reads the truth.
    """

    codec: str  # aac, mp3, opus, flac, ac3, eac3, pcm, speex, nellymoser, ... or unknown
    sound_format: int
    sample_rate: int | None
    channels: int | None
    sample_size_bits: int | None
    is_sequence_header: bool
    is_end_of_sequence: bool
    payload: memoryview
    packet_type: int | None  # AACPacketType (legacy AAC) or AudioPacketType (enhanced)
    enhanced: bool = False
    fourcc: str | None = None
    is_multitrack: bool = False

    @property
    def is_frame(self) -> bool:
        if self.is_sequence_header or self.is_end_of_sequence or self.is_multitrack:
            return False
        if self.enhanced:
            return self.packet_type == AUDIO_CODED_FRAMES
        return True


def parse_audio_tag(body: Buffer) -> AudioTagInfo:
    view = memoryview(body)
    if len(view) < 1:
        raise CodecError("empty audio tag")
    first = view[0]
    sound_format = first >> 4
    if sound_format == 9:
        return _parse_ex_audio(view)
    codec = _LEGACY_AUDIO_CODECS.get(sound_format, "unknown")
    rate = _LEGACY_SOUND_RATES[(first >> 2) & 0x03]
    channels = 2 if first & 0x01 else 1
    if sound_format in (5, 14):
        rate = 8000
    elif sound_format == 4:
        rate = 16000
    elif sound_format == 11:
        rate, channels = 16000, 1
    size = 16 if first & 0x02 else 8
    if sound_format == 10:
        if len(view) < 2:
            raise CodecError("AAC tag without AACPacketType")
        packet_type = view[1]
        if packet_type > 1:
            raise CodecError(f"invalid AACPacketType {packet_type}")
        return AudioTagInfo(codec, sound_format, rate, channels, size, packet_type == 0, False,
                            view[2:], packet_type)
    return AudioTagInfo(codec, sound_format, rate, channels, size, False, False, view[1:], None)


def _parse_ex_audio(view: memoryview) -> AudioTagInfo:
    packet_type = view[0] & 0x0F
    pos = 1
    for _ in range(16):
        if packet_type != AUDIO_MODEX:
            break
        packet_type, pos = _skip_modex(view, pos)
    else:
        raise CodecError("too many chained ModEx blocks")
    if packet_type == AUDIO_MULTITRACK:
        multitrack_type = _u8(view, pos) >> 4
        inner = _u8(view, pos) & 0x0F
        fourcc = _fourcc(view, pos + 1) if multitrack_type != 2 else None
        return AudioTagInfo("unknown", 9, None, None, None, False, False, view[pos + 1 :],
                            inner, enhanced=True, fourcc=fourcc, is_multitrack=True)
    if packet_type not in (AUDIO_SEQUENCE_START, AUDIO_CODED_FRAMES, AUDIO_SEQUENCE_END,
                           AUDIO_MULTICHANNEL_CONFIG):
        raise CodecError(f"unknown AudioPacketType {packet_type}")
    fourcc = _fourcc(view, pos)
    channels = None
    payload = view[pos + 4 :]
    if packet_type == AUDIO_MULTICHANNEL_CONFIG:
        channels = _u8(payload, 1)
    return AudioTagInfo(_AUDIO_FOURCCS.get(fourcc, "unknown"), 9, None, channels, None,
                        packet_type == AUDIO_SEQUENCE_START, packet_type == AUDIO_SEQUENCE_END,
                        payload, packet_type, enhanced=True, fourcc=fourcc)


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """An audio stream's description."""

    codec: str
    sample_rate: int | None
    channels: int | None
    codec_string: str | None  # RFC 6381, e.g. mp4a.40.2


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


def _mp3_info(frame: Buffer) -> AudioInfo | None:
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


def _ac3_info(frame: Buffer, codec: str) -> AudioInfo | None:
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


def _opus_info(header: Buffer) -> AudioInfo:
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


def _flac_info(header: Buffer) -> AudioInfo:
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


def describe_audio(tag: AudioTagInfo) -> AudioInfo | None:
    """Describe the stream from this tag if it can; None if this tag does not tell.

    AAC, Opus and FLAC are described by their sequence headers, MP3 and AC-3 by each
    frame's header, other legacy formats by the tag flags.
    """
    if tag.is_multitrack or tag.is_end_of_sequence:
        return None
    if tag.codec == "aac":
        if not tag.is_sequence_header:
            return None
        return parse_audio_specific_config(tag.payload).describe()
    if tag.codec == "opus":
        return _opus_info(tag.payload) if tag.is_sequence_header else None
    if tag.codec == "flac":
        return _flac_info(tag.payload) if tag.is_sequence_header else None
    if tag.is_sequence_header or not tag.is_frame:
        return None
    if tag.codec == "mp3":
        info = _mp3_info(tag.payload)
    elif tag.codec in ("ac3", "eac3"):
        info = _ac3_info(tag.payload, tag.codec)
    else:
        info = None
    if info is None:
        info = AudioInfo(tag.codec, tag.sample_rate, tag.channels, None)
    return info


def needs_audio_sequence_header(codec: str) -> bool:
    """Whether a decoder needs a sequence header before the first audio frame."""
    return codec in ("aac", "opus", "flac")


# --------------------------------------------------------------------------------------
# Script data


def parse_metadata(body: Buffer) -> dict[str, Any] | None:
    """The onMetaData properties of a script tag (also under @setDataFrame); else None."""
    from golive.formats.amf0 import AmfError, decode_all

    try:
        values = decode_all(bytes(body))
    except AmfError as exc:
        raise CodecError(f"bad AMF0 in script tag: {exc}") from exc
    if values and values[0] == "@setDataFrame":
        values = values[1:]
    if len(values) < 2 or values[0] != "onMetaData":
        return None
    props = values[1]
    if isinstance(props, dict):
        return {str(k): v for k, v in props.items()}
    items = getattr(props, "items", None)  # amf0.EcmaArray keeps its properties in `items`
    if isinstance(items, dict):
        return {str(k): v for k, v in items.items()}
    as_dict: Callable[[], Any] | None = getattr(props, "as_dict", None)
    if as_dict is not None:
        result = as_dict()
        if isinstance(result, dict):
            return {str(k): v for k, v in result.items()}
    return None
