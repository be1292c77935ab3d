"""H.264: sequence parameter sets, the avcC record and the `avc1` codec string (formats).

Reads the SPS fields that describe the picture (ITU-T H.264 7.3.2.1.1) and reads and
writes the AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1), the one avcC
implementation every stage uses: FLV sequence headers, MPEG-TS and WebRTC ingest,
ISO-BMFF init segments and WHEP.
"""

from __future__ import annotations

from dataclasses import dataclass

from golive.formats.codecs.bits import (
    BitReader,
    Buffer,
    CodecError,
    checked_side,
    read_nal_list,
    read_sar,
    read_u8,
    unescape_rbsp,
    write_nal_list,
)
from golive.formats.codecs.info import VideoInfo, decimal_level

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
    return decimal_level(level_idc, 10)


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
        return avc_codec_string(self.profile_idc, self.constraint_flags, self.level_idc)

    @property
    def profile(self) -> str:
        return h264_profile_name(self.profile_idc, self.constraint_flags)

    @property
    def level(self) -> str:
        return h264_level_name(self.profile_idc, self.constraint_flags, self.level_idc)


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
    coded_width = checked_side(width_mbs * 16, "coded width")
    coded_height = checked_side((2 - frame_mbs_only) * height_map_units * 16, "coded height")
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
            sar = read_sar(r)
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
        return avc_codec_string(self.profile_idc, self.constraint_flags, self.level_idc)

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
            (not sps.frame_mbs_only) if sps else None,
        )


def avc_codec_string(profile_idc: int, constraint_flags: int, level_idc: int,
                     fourcc: str = "avc1") -> str:
    """RFC 6381 3.3: the sample entry type, then profile, constraint flags and level in hex."""
    return f"{fourcc}.{profile_idc:02x}{constraint_flags:02x}{level_idc:02x}"


def avc_config_profile(data: Buffer) -> tuple[int, int, int]:
    """(profile_idc, constraint flags, level_idc) from an avcC record's first four bytes.

    All a codec string needs; an init segment's record is read this far even when its
    parameter sets are cut short.
    """
    return read_u8(data, 1), read_u8(data, 2), read_u8(data, 3)


def parse_avc_config(data: Buffer) -> AvcConfig:
    if len(data) < 7:
        raise CodecError("AVCDecoderConfigurationRecord shorter than 7 bytes")
    if data[0] != 1:
        raise CodecError(f"unknown avcC configurationVersion {data[0]}")
    profile_idc, constraint_flags, level_idc = avc_config_profile(data)
    sps, pos = read_nal_list(data, 6, data[5] & 0x1F)
    pps, pos = read_nal_list(data, pos + 1, read_u8(data, pos))
    # The High-profile extension (chroma format, bit depths, SPS-ext) that may follow
    # repeats what the SPS says; it is left unread because many encoders omit it.
    return AvcConfig(profile_idc, constraint_flags, level_idc, (data[4] & 0x03) + 1, sps, pps)


# High-profile avcC carries chroma format and bit depths after the parameter sets.
_AVCC_EXTENDED_PROFILES = frozenset({100, 110, 122, 144})


def avc_decoder_config(sps: tuple[bytes, ...], pps: tuple[bytes, ...]) -> bytes:
    """AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) with 4-byte NAL lengths."""
    if not sps or not pps or len(sps) > 31 or len(pps) > 255 \
            or any(len(u) > 0xFFFF for u in sps + pps):
        raise CodecError("parameter sets do not fit an avcC record")
    info = parse_h264_sps(sps[0])
    record = bytearray((1, info.profile_idc, info.constraint_flags, info.level_idc,
                        0xFF, 0xE0 | len(sps)))
    record += write_nal_list(sps) + bytes((len(pps),)) + write_nal_list(pps)
    if info.profile_idc in _AVCC_EXTENDED_PROFILES:
        record += bytes((0xFC | (info.chroma_format_idc & 0x03),
                         0xF8 | ((info.bit_depth_luma - 8) & 0x07),
                         0xF8 | ((info.bit_depth_chroma - 8) & 0x07), 0))
    return bytes(record)
