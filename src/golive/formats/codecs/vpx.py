"""VP8 and VP9: the vpcC record and what a VP9 keyframe header says (formats).

Reads the VPCodecConfigurationRecord (VP Codec ISO Media File Format Binding) and the
picture size from a VP9 keyframe's uncompressed header (VP9 spec 6.2), for publishers
that send no configuration record.
"""

from __future__ import annotations

from dataclasses import dataclass

from golive.formats.codecs.bits import BitReader, Buffer, CodecError
from golive.formats.codecs.info import VideoInfo, decimal_level


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
        level = decimal_level(self.level, 10) if self.level else None
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


def vp9_keyframe_info(frame: Buffer) -> VideoInfo | None:
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
