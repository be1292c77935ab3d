"""The wall clock packaging reads, passed in by the composition root (stage: packaging).

Packaging needs Unix time twice: to number a presentation's first segment, and to
stamp when each part arrived (its age and production lag; EXT-X-PROGRAM-DATE-TIME comes
from the ingest clock the transcoder hands on with each fragment). Taking the clock as an
argument, never calling `time.time` here, lets tests hold time still or step it.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["WallClock"]


class WallClock(Protocol):
    """Seconds since the Unix epoch, as `time.time` gives them."""

    def __call__(self) -> float: ...
