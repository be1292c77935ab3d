"""On-demand playlists of a recording: the multivariant and each rendition's media playlist
(stage: packaging).

Pure functions of the recording's index: no clock, no storage, no HTTP. URIs are
relative, so the playlists play from wherever the origin mounts them.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from golive.packaging.playlists import captions_media, date_time, seconds, stream_inf

__all__ = ["VodRendition", "VodSegment", "vod_media_playlist", "vod_multivariant_playlist"]


class VodSegment(Protocol):
    """What a media playlist needs of one recorded segment."""

    @property
    def msn(self) -> int: ...
    @property
    def generation(self) -> int: ...
    @property
    def duration(self) -> float: ...
    @property
    def program_date_time(self) -> datetime: ...
    @property
    def discontinuity(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class VodRendition:
    name: str
    bandwidth: int
    average_bandwidth: int
    frame_rate: float
    codecs: str
    width: int
    height: int

    @property
    def has_video(self) -> bool:
        return self.width > 0 and self.height > 0


def vod_multivariant_playlist(playback_id: str, renditions: Sequence[VodRendition], *,
                              captions: bool = False,
                              caption_channels: Collection[str] = ()) -> str:
    """The asset's multivariant playlist, highest bandwidth first; `captions`: the pictures
    carry CEA-608 captions, on CC1 and `caption_channels`."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    captions = captions and any(r.has_video for r in renditions)
    if captions:
        lines.extend(captions_media(caption_channels))
    for rendition in sorted(renditions, key=lambda r: (-r.bandwidth, r.name)):
        lines.extend(stream_inf(
            uri=f"{playback_id}/{rendition.name}.m3u8",
            bandwidth=rendition.bandwidth,
            average_bandwidth=rendition.average_bandwidth,
            codecs=rendition.codecs,
            resolution=(rendition.width, rendition.height) if rendition.has_video else None,
            frame_rate=rendition.frame_rate,
            captions=captions,
        ))
    return "\n".join(lines) + "\n"


def vod_media_playlist(rendition: str, segments: Sequence[VodSegment]) -> str:
    """A rendition's complete media playlist (EXT-X-PLAYLIST-TYPE:VOD, EXT-X-ENDLIST).

    Segment numbers are the live ones, so a gap (a segment lost to a crash) or a new
    encoder run starts a discontinuity; each timeline gets its EXT-X-PROGRAM-DATE-TIME
    and each encoder run its EXT-X-MAP.
    """
    longest = max((segment.duration for segment in segments), default=1.0)
    target = max(1, math.ceil(longest - 1e-3))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f"#EXT-X-MEDIA-SEQUENCE:{segments[0].msn if segments else 0}",
    ]
    previous: VodSegment | None = None
    for segment in segments:
        new_run = previous is not None and segment.generation != previous.generation
        gap = previous is not None and segment.msn != previous.msn + 1
        if previous is not None and (segment.discontinuity or new_run or gap):
            lines.append("#EXT-X-DISCONTINUITY")
        if previous is None or new_run:
            lines.append(f'#EXT-X-MAP:URI="{rendition}/init-{segment.generation}.mp4"')
        if previous is None or segment.discontinuity or new_run or gap:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{date_time(segment.program_date_time)}")
        lines.append(f"#EXTINF:{seconds(segment.duration)},")
        lines.append(f"{rendition}/seg-{segment.msn}.m4s")
        previous = segment
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
