"""What is inside FLV tag bodies and codec configuration records (formats).

Pure functions over bytes, legacy FLV and Enhanced RTMP (v2) headers alike. Every
parser raises only `CodecError` on malformed input, so a publisher's bad bytes
never escape as IndexError or struct.error. Nothing here decodes media: only the
headers and configuration records a live server needs to name the stream's codecs
(RFC 6381 codec strings), picture size and frame rate. One module per codec:
`h264`, `hevc`, `av1`, `vpx`, `audio`, and `latm` for AAC in broadcast framing; FLV tag
headers in `flvtags`; whether a picture carries closed captions in `captions`.
"""

from golive.formats.codecs.audio import (
    AAC_FRAME_SAMPLES,
    AacConfig,
    FrameHeader,
    Silence,
    aac_silent_frame,
    ac3_frame,
    eac3_frame,
    flv_silence,
    mpeg_audio_frame,
    parse_audio_specific_config,
)
from golive.formats.codecs.av1 import (
    Av1Config,
    Av1SequenceHeader,
    av1_codec_string,
    parse_av1_config,
    parse_av1_sequence_header,
)
from golive.formats.codecs.bits import BitReader, CodecError, unescape_rbsp
from golive.formats.codecs.captions import CAPTION_CHANNELS, caption_channels, carries_captions
from golive.formats.codecs.flvtags import (
    AudioTagInfo,
    VideoTagInfo,
    describe_audio,
    describe_video,
    parse_audio_tag,
    parse_metadata,
    parse_video_tag,
)
from golive.formats.codecs.h264 import (
    AvcConfig,
    H264Sps,
    avc_codec_string,
    avc_config_profile,
    avc_decoder_config,
    h264_level_name,
    h264_profile_name,
    parse_avc_config,
    parse_h264_sps,
)
from golive.formats.codecs.hevc import (
    HevcConfig,
    HevcProfileTierLevel,
    HevcSps,
    hevc_codec_string,
    hevc_config_profile,
    hevc_decoder_config,
    parse_hevc_config,
    parse_hevc_sps,
)
from golive.formats.codecs.info import AudioInfo, VideoInfo
from golive.formats.codecs.latm import (
    LOAS_HEADER,
    LatmConfig,
    LatmReader,
    LatmUnsupported,
    loas_length,
)
from golive.formats.codecs.vpx import VpConfig, parse_vp_config

__all__ = [
    "AAC_FRAME_SAMPLES",
    "CAPTION_CHANNELS",
    "LOAS_HEADER",
    "AacConfig",
    "AudioInfo",
    "AudioTagInfo",
    "Av1Config",
    "Av1SequenceHeader",
    "AvcConfig",
    "BitReader",
    "CodecError",
    "FrameHeader",
    "H264Sps",
    "HevcConfig",
    "HevcProfileTierLevel",
    "HevcSps",
    "LatmConfig",
    "LatmReader",
    "LatmUnsupported",
    "Silence",
    "VideoInfo",
    "VideoTagInfo",
    "VpConfig",
    "aac_silent_frame",
    "ac3_frame",
    "av1_codec_string",
    "avc_codec_string",
    "avc_config_profile",
    "avc_decoder_config",
    "caption_channels",
    "carries_captions",
    "describe_audio",
    "describe_video",
    "eac3_frame",
    "flv_silence",
    "h264_level_name",
    "h264_profile_name",
    "hevc_codec_string",
    "hevc_config_profile",
    "hevc_decoder_config",
    "loas_length",
    "mpeg_audio_frame",
    "parse_audio_specific_config",
    "parse_audio_tag",
    "parse_av1_config",
    "parse_av1_sequence_header",
    "parse_avc_config",
    "parse_h264_sps",
    "parse_hevc_config",
    "parse_hevc_sps",
    "parse_metadata",
    "parse_video_tag",
    "parse_vp_config",
    "unescape_rbsp",
]
