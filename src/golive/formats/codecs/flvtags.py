"""FLV video and audio tag headers, legacy and Enhanced RTMP (v2), and onMetaData (formats).

What is inside an FLV tag body: codec, frame kind, composition time and where the
codec payload starts. `describe_video` and `describe_audio` hand a sequence header
to the codec modules to learn the picture size, frame rate, sample rate and codec
string. Script tags are read with `golive.formats.amf0`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from golive.formats.codecs.audio import (
    ac3_info,
    flac_info,
    mp3_info,
    opus_info,
    parse_audio_specific_config,
)
from golive.formats.codecs.av1 import parse_av1_config
from golive.formats.codecs.bits import Buffer, CodecError, read_be, read_fourcc, read_u8
from golive.formats.codecs.h264 import parse_avc_config
from golive.formats.codecs.hevc import parse_hevc_config
from golive.formats.codecs.info import AudioInfo, VideoInfo
from golive.formats.codecs.vpx import parse_vp_config, vp9_keyframe_info

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
    size = read_u8(body, pos) + 1
    pos += 1
    if size == 256:
        size = read_be(body, pos, 2) + 1
        pos += 2
    pos += size
    return read_u8(body, pos) & 0x0F, pos + 1


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
        cts = read_be(view, 2, 3)
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
        read_u8(view, pos)  # VideoCommand
        return VideoTagInfo("unknown", False, False, False, 0, view[pos + 1 :], frame_type,
                            packet_type, enhanced=True, is_command=True)
    if packet_type == VIDEO_MULTITRACK:
        multitrack_type = read_u8(view, pos) >> 4
        inner = read_u8(view, pos) & 0x0F
        fourcc = read_fourcc(view, pos + 1) if multitrack_type != 2 else None
        return VideoTagInfo("unknown", False, False, False, 0, view[pos + 1 :], frame_type,
                            inner, enhanced=True, fourcc=fourcc, is_multitrack=True)
    if frame_type not in (FRAME_KEY, FRAME_INTER, FRAME_DISPOSABLE, FRAME_GENERATED_KEY) \
            and packet_type != VIDEO_METADATA:
        raise CodecError(f"invalid video frame type {frame_type}")
    fourcc = read_fourcc(view, pos)
    pos += 4
    codec = _VIDEO_FOURCCS.get(fourcc, "unknown")
    cts = 0
    if packet_type == VIDEO_CODED_FRAMES and codec in ("h264", "hevc"):
        cts = read_be(view, pos, 3)
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


def describe_video(tag: VideoTagInfo) -> VideoInfo | None:
    """Parse the codec configuration a sequence-header tag carries; None for other tags."""
    if not tag.is_sequence_header or tag.is_multitrack:
        if tag.codec == "vp9" and tag.is_keyframe:
            return vp9_keyframe_info(tag.payload)
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


# --------------------------------------------------------------------------------------
# Audio tag headers


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
        multitrack_type = read_u8(view, pos) >> 4
        inner = read_u8(view, pos) & 0x0F
        fourcc = read_fourcc(view, pos + 1) if multitrack_type != 2 else None
        return AudioTagInfo("unknown", 9, None, None, None, False, False, view[pos + 1 :],
                            inner, enhanced=True, fourcc=fourcc, is_multitrack=True)
    if packet_type not in (AUDIO_SEQUENCE_START, AUDIO_CODED_FRAMES, AUDIO_SEQUENCE_END,
                           AUDIO_MULTICHANNEL_CONFIG):
        raise CodecError(f"unknown AudioPacketType {packet_type}")
    fourcc = read_fourcc(view, pos)
    channels = None
    payload = view[pos + 4 :]
    if packet_type == AUDIO_MULTICHANNEL_CONFIG:
        channels = read_u8(payload, 1)
    return AudioTagInfo(_AUDIO_FOURCCS.get(fourcc, "unknown"), 9, None, channels, None,
                        packet_type == AUDIO_SEQUENCE_START, packet_type == AUDIO_SEQUENCE_END,
                        payload, packet_type, enhanced=True, fourcc=fourcc)


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
        return opus_info(tag.payload) if tag.is_sequence_header else None
    if tag.codec == "flac":
        return flac_info(tag.payload) if tag.is_sequence_header else None
    if tag.is_sequence_header or not tag.is_frame:
        return None
    if tag.codec == "mp3":
        info = mp3_info(tag.payload)
    elif tag.codec in ("ac3", "eac3"):
        info = ac3_info(tag.payload, tag.codec)
    else:
        info = None
    if info is None:
        info = AudioInfo(tag.codec, tag.sample_rate, tag.channels, None)
    return info


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
