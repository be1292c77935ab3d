"""AV1: the av1C record, the sequence header OBU and the `av01` codec string (formats).

Reads the AV1CodecConfigurationRecord (AV1 Codec ISO Media File Format Binding 2.3)
and the leading fields of sequence_header_obu() (AV1 spec 5.5.1). `av1_codec_string`
is the one codec string for AV1, used for FLV sequence headers and ISO-BMFF init
segments alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from golive.formats.codecs.bits import BitReader, Buffer, CodecError, read_u8
from golive.formats.codecs.info import VideoInfo

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
        return av1_codec_string(self)

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


def av1_codec_string(config: Av1Config) -> str:
    """AV1 ISOBMFF binding, "Codecs Parameter String": av01.P.LLT.DD, e.g. av01.0.08M.08.

    seq_profile; seq_level_idx in two decimal digits and the tier (M main, H high);
    the bit depth in two digits. The optional fields after it (monochrome, chroma
    subsampling, colour) may be left out, and are: their defaults are 4:2:0 BT.709.
    """
    tier = "H" if config.seq_tier else "M"
    return f"av01.{config.seq_profile}.{config.seq_level_idx:02d}{tier}.{config.bit_depth:02d}"


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
        byte = read_u8(data, pos + i)
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
