"""H.265: sequence parameter sets, the hvcC record and the `hvc1`/`hev1` codec string (formats).

Reads the SPS and VPS fields that describe the picture and its frame rate (ITU-T
H.265 7.3.2), and reads and writes the HEVCDecoderConfigurationRecord (ISO/IEC
14496-15 8.3.3.1). `hevc_codec_string` is the one RFC 6381 / Annex E codec string
for HEVC, used for FLV sequence headers and ISO-BMFF init segments alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from golive.formats.codecs.bits import (
    BitReader,
    Buffer,
    CodecError,
    checked_side,
    read_be,
    read_nal_list,
    read_sar,
    read_u8,
    unescape_rbsp,
    write_nal_list,
)
from golive.formats.codecs.info import VideoInfo, decimal_level

_HEVC_VPS, _HEVC_SPS, _HEVC_PPS = 32, 33, 34  # nal_unit_type of the parameter sets
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
        return hevc_codec_string(self)

    @property
    def profile(self) -> str:
        return _HEVC_PROFILES.get(self.profile_idc, f"Profile {self.profile_idc}")

    @property
    def level(self) -> str:
        return decimal_level(self.level_idc, 30)


def hevc_codec_string(ptl: HevcProfileTierLevel, fourcc: str = "hvc1") -> str:
    """ISO/IEC 14496-15 E.3, e.g. hvc1.1.6.L93.B0.

    After the sample entry type: the profile space (none, A, B, C) and profile_idc;
    the 32 compatibility flags bit-reversed, in hex without leading zeros; the tier
    (L main, H high) and level_idc in decimal; then the six constraint bytes, each in
    hex, with trailing zero bytes left out. Annex E asks only for "a hexadecimal
    number" per byte, so no zero padding, as GPAC and Shaka Packager write them.
    """
    space = ("", "A", "B", "C")[ptl.profile_space]
    compat = int(f"{ptl.compatibility_flags:032b}"[::-1], 2)
    constraint = ptl.constraint_flags.to_bytes(6, "big").rstrip(b"\x00")
    parts = [f"{fourcc}.{space}{ptl.profile_idc}", f"{compat:X}",
             f"{'H' if ptl.tier_flag else 'L'}{ptl.level_idc}"]
    parts += [f"{b:X}" for b in constraint]
    return ".".join(parts)


def hevc_config_profile(data: Buffer) -> HevcProfileTierLevel:
    """The general profile, tier and level of an hvcC record (its bytes 1 to 12).

    All a codec string needs; an init segment's record is read this far even when its
    parameter set arrays are cut short.
    """
    if len(data) < 13:
        raise CodecError("HEVCDecoderConfigurationRecord shorter than 13 bytes")
    r = BitReader(data[1:13])
    return HevcProfileTierLevel(r.u(2), r.flag(), r.u(5), r.u(32), r.u(48), r.u(8))


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
        read_sar(r)
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
    coded_w, coded_h = checked_side(r.ue(), "coded width"), checked_side(r.ue(), "coded height")
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
    ptl = hevc_config_profile(data)
    avg = read_be(data, 19, 2)
    arrays: dict[int, list[bytes]] = {_HEVC_VPS: [], _HEVC_SPS: [], _HEVC_PPS: []}
    pos = 23
    for _ in range(data[22]):
        nal_type = read_u8(data, pos) & 0x3F
        units, pos = read_nal_list(data, pos + 3, read_be(data, pos + 1, 2))
        arrays.setdefault(nal_type, []).extend(units)
    return HevcConfig(ptl, data[16] & 0x03, (data[17] & 0x07) + 8, (data[18] & 0x07) + 8,
                      avg / 256 if avg else None, (data[21] & 0x03) + 1,
                      tuple(arrays[_HEVC_VPS]), tuple(arrays[_HEVC_SPS]),
                      tuple(arrays[_HEVC_PPS]))


def hevc_decoder_config(vps: tuple[bytes, ...], sps: tuple[bytes, ...],
                        pps: tuple[bytes, ...]) -> bytes:
    """HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1) with 4-byte NAL lengths.

    array_completeness is 0: the parameter sets stay in band as well.
    """
    units = vps + sps + pps
    if not vps or not sps or not pps or len(units) > 0xFFFF \
            or any(len(u) > 0xFFFF for u in units):
        raise CodecError("parameter sets do not fit an hvcC record")
    info = parse_hevc_sps(sps[0])
    ptl = info.ptl
    head = unescape_rbsp(sps[0])[2]  # vps id(4), max_sub_layers_minus1(3), nesting(1)
    record = bytearray((1, (ptl.profile_space << 6) | (int(ptl.tier_flag) << 5)
                        | ptl.profile_idc))
    record += ptl.compatibility_flags.to_bytes(4, "big")
    record += ptl.constraint_flags.to_bytes(6, "big")
    record += bytes((
        ptl.level_idc, 0xF0, 0x00,  # min_spatial_segmentation_idc 0
        0xFC,  # parallelismType 0
        0xFC | (info.chroma_format_idc & 0x03),
        0xF8 | ((info.bit_depth_luma - 8) & 0x07),
        0xF8 | ((info.bit_depth_chroma - 8) & 0x07),
        0, 0,  # avgFrameRate unspecified
        ((((head >> 1) & 0x07) + 1) << 3) | ((head & 0x01) << 2) | 0x03,
        3,  # numOfArrays
    ))
    for nal_type, array in ((_HEVC_VPS, vps), (_HEVC_SPS, sps), (_HEVC_PPS, pps)):
        record += bytes((nal_type,)) + len(array).to_bytes(2, "big") + write_nal_list(array)
    return bytes(record)
