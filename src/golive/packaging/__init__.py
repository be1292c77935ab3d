"""The packaging stage: each rendition's fragments as LL-HLS parts and segments, and playlists.

`window` holds one rendition's recent parts and segments in a bounded window and
renders its media playlist; `presentation` groups a broadcast's renditions under a
playback id (multivariant playlist, rendition reports); `clock` is the wall clock
both take from the composition root; `observer` is how a recorder hears of each
completed segment; `vod` renders a recording's on-demand playlists; `bitrate` measures
what BANDWIDTH and AVERAGE-BANDWIDTH declare. Nothing here
knows HTTP or another stage.
"""

from golive.packaging.bitrate import BitRateMeter, measure_segments
from golive.packaging.clock import WallClock
from golive.packaging.observer import CompletedSegment, RenditionInfo, SegmentObserver
from golive.packaging.presentation import Continuation, Presentation
from golive.packaging.vod import (
    VodRendition,
    VodSegment,
    vod_media_playlist,
    vod_multivariant_playlist,
)
from golive.packaging.window import RenditionWindow

__all__ = [
    "BitRateMeter",
    "CompletedSegment",
    "Continuation",
    "Presentation",
    "RenditionInfo",
    "RenditionWindow",
    "SegmentObserver",
    "VodRendition",
    "VodSegment",
    "WallClock",
    "measure_segments",
    "vod_media_playlist",
    "vod_multivariant_playlist",
]
