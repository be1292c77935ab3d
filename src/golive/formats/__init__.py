"""Media formats every stage shares: pure, sans-IO parsers and writers (formats).

Codec parameter sets and codec strings, FLV tags, MPEG-TS, Annex-B/AVCC, ISO-BMFF
boxes and AMF0. Nothing here reads a clock, touches a socket or knows a stream.
"""

from golive.formats.annexb import AnnexBToFlv
from golive.formats.codecs import (
    CAPTION_CHANNELS,
    AudioInfo,
    CodecError,
    Silence,
    VideoInfo,
    caption_channels,
    carries_captions,
    describe_audio,
    describe_video,
    flv_silence,
    parse_audio_tag,
    parse_avc_config,
    parse_metadata,
    parse_video_tag,
)
from golive.formats.flv import FlvError, FlvReader, encode_header, encode_tag
from golive.formats.isobmff import (
    Fragment,
    FragmentReader,
    InitSegment,
    IsobmffError,
    PartJoiner,
    ProgressiveMp4,
    Span,
    fragment_samples,
    plan_progressive,
    video_decoder_config,
)
from golive.formats.mpegts import TsDemuxer
from golive.formats.tag import MediaTag, TagType

__all__ = [
    "CAPTION_CHANNELS",
    "AnnexBToFlv",
    "AudioInfo",
    "CodecError",
    "FlvError",
    "FlvReader",
    "Fragment",
    "FragmentReader",
    "InitSegment",
    "IsobmffError",
    "MediaTag",
    "PartJoiner",
    "ProgressiveMp4",
    "Silence",
    "Span",
    "TagType",
    "TsDemuxer",
    "VideoInfo",
    "caption_channels",
    "carries_captions",
    "describe_audio",
    "describe_video",
    "encode_header",
    "encode_tag",
    "flv_silence",
    "fragment_samples",
    "parse_audio_tag",
    "parse_avc_config",
    "parse_metadata",
    "parse_video_tag",
    "plan_progressive",
    "video_decoder_config",
]
