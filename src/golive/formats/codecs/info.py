"""What a codec configuration says about a stream: the descriptions every parser returns (formats).

`VideoInfo` and `AudioInfo` are what the facts page, playlists and the transcoder
read; each codec module builds them from its own configuration record.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    interlaced: bool | None = None
    """The sequence codes fields (H.264 frame_mbs_only_flag 0: field pictures or MBAFF,
    as 1080i contribution encoders send); None where the codec's header does not say."""



@dataclass(frozen=True, slots=True)
class AudioInfo:
    """An audio stream's description."""

    codec: str
    sample_rate: int | None
    channels: int | None
    codec_string: str | None  # RFC 6381, e.g. mp4a.40.2


def decimal_level(level_idc: int, scale: int) -> str:
    major, minor = divmod(level_idc, scale)
    if scale == 30:  # HEVC: level_idc = 30 * level
        minor //= 3
    return f"{major}.{minor}" if minor else str(major)
