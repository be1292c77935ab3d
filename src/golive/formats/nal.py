"""H.264 and HEVC NAL units: Annex-B splitting and decoder configuration records (ingest).

Shared by the ingest paths that receive Annex-B video (MPEG-TS from SRT, RTP from
WHIP) and must hand the broadcast FLV-shaped tags: length-prefixed NAL units behind
an avcC or hvcC record.
"""

from __future__ import annotations

from golive.formats.codecs import CodecError, parse_h264_sps, parse_hevc_sps, unescape_rbsp

# High-profile avcC carries chroma format and bit depths after the parameter sets.
_AVCC_EXTENDED_PROFILES = frozenset({100, 110, 122, 144})
_HEVC_VPS, _HEVC_SPS, _HEVC_PPS = 32, 33, 34


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B byte stream, without start codes or trailing zeros."""
    nals: list[bytes] = []
    start = data.find(b"\x00\x00\x01")
    if start < 0:
        return nals
    start += 3
    while True:
        end = data.find(b"\x00\x00\x01", start)
        # A NAL unit never ends in a zero byte, so zeros before a start code are the
        # four-byte start code's first byte or trailing_zero_8bits.
        nal = data[start : end if end >= 0 else len(data)].rstrip(b"\x00")
        if nal:
            nals.append(nal)
        if end < 0:
            return nals
        start = end + 3


def _length_prefixed(units: tuple[bytes, ...]) -> bytes:
    return b"".join(len(u).to_bytes(2, "big") + u for u in units)


def avc_decoder_config(sps: tuple[bytes, ...], pps: tuple[bytes, ...]) -> bytes:
    """AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) with 4-byte NAL lengths."""
    if not sps or not pps or len(sps) > 31 or len(pps) > 255 \
            or any(len(u) > 0xFFFF for u in sps + pps):
        raise CodecError("parameter sets do not fit an avcC record")
    info = parse_h264_sps(sps[0])
    record = bytearray((1, info.profile_idc, info.constraint_flags, info.level_idc,
                        0xFF, 0xE0 | len(sps)))
    record += _length_prefixed(sps) + bytes((len(pps),)) + _length_prefixed(pps)
    if info.profile_idc in _AVCC_EXTENDED_PROFILES:
        record += bytes((0xFC | (info.chroma_format_idc & 0x03),
                         0xF8 | ((info.bit_depth_luma - 8) & 0x07),
                         0xF8 | ((info.bit_depth_chroma - 8) & 0x07), 0))
    return bytes(record)


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
        record += bytes((nal_type,)) + len(array).to_bytes(2, "big") + _length_prefixed(array)
    return bytes(record)
