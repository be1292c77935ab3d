"""What packaging tells an observer of a presentation: inits and each segment once complete
(stage: packaging).

The recorder subscribes through this; packaging never knows who listens. Calls are
synchronous on the live path, so an observer only takes note (queues) and returns.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from golive.formats import InitSegment

__all__ = ["CompletedSegment", "RenditionInfo", "SegmentObserver"]


@dataclass(frozen=True, slots=True)
class RenditionInfo:
    """What the multivariant playlist says of a rendition, beside its init's codecs."""

    name: str
    bandwidth: int
    average_bandwidth: int
    frame_rate: float


@dataclass(frozen=True, slots=True)
class CompletedSegment:
    """One complete segment of one rendition, as the live playlist lists it."""

    rendition: str
    msn: int
    generation: int  # the init (encoder run) it decodes with
    discontinuity: bool  # first segment of a new timeline
    media_start: float  # decode time of its first part, seconds
    duration: float
    program_date_time: datetime
    data: bytes


class SegmentObserver(Protocol):
    """Receives a presentation's media as it completes. Must not block or raise."""

    def init_segment(self, rendition: RenditionInfo, generation: int, init: InitSegment) -> None:
        """A rendition's new init segment (its first, or a new encoder run's)."""

    def segment_completed(self, segment: CompletedSegment) -> None:
        """A segment closed: its bytes, times and duration are final."""

    def presentation_ended(self) -> None:
        """The presentation ended: no more media follows."""

    def captions_found(self, channels: Collection[str]) -> None:
        """The pictures carry CEA-608 captions, on CC1 and `channels` (the playlists offer
        them from now on); told again when more channels are found."""
