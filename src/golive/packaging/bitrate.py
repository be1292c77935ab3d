"""What a rendition's segments measure: BANDWIDTH and AVERAGE-BANDWIDTH (packaging).

RFC 8216bis 4.4.6.2: the peak segment bit rate of a media playlist is the largest bit
rate of any contiguous set of its segments lasting between 0.5 and 1.5 times the target
duration; the average segment bit rate is their total size over their total duration.
A recording's playlists must declare exactly these (all of its segments exist); a live
rendition declares them as measured so far, where its plan could only guess (a copied
source's bitrate is the publisher's to choose).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

__all__ = ["BitRateMeter", "measure_segments"]


class BitRateMeter:
    """The peak and average segment bit rates of segments added in playlist order."""

    def __init__(self) -> None:
        self.segments = 0
        self.peak = 0  # bits per second; 0 until a set of segments long enough was seen
        self._bits = 0
        self._seconds = 0.0
        self._recent: deque[tuple[int, float]] = deque()  # (bits, seconds), newest last

    @property
    def average(self) -> int:
        """Bits per second over every segment added (0 before any)."""
        return round(self._bits / self._seconds) if self._seconds > 0 else 0

    def add(self, size: int, duration: float, target: float) -> None:
        """One more segment of `size` bytes lasting `duration` s, under EXT-X-TARGETDURATION
        `target`: the sets it ends are measured."""
        if duration <= 0:
            return
        bits = size * 8
        self.segments += 1
        self._bits += bits
        self._seconds += duration
        recent = self._recent
        recent.append((bits, duration))
        # A set longer than 1.5 target durations counts for no peak; keep what may still.
        while len(recent) > 1 and sum(d for _, d in recent) - recent[0][1] >= 1.5 * target:
            recent.popleft()
        total_bits, total_seconds = 0, 0.0
        for set_bits, seconds in reversed(recent):  # each set that ends here
            total_bits += set_bits
            total_seconds += seconds
            if total_seconds > 1.5 * target + 1e-9:
                break
            if total_seconds >= 0.5 * target - 1e-9:
                self.peak = max(self.peak, math.ceil(total_bits / total_seconds))


def measure_segments(segments: Iterable[tuple[int, float]]) -> tuple[int, int]:
    """(peak, average) bit rates of a whole playlist's segments, (size bytes, duration s)
    in order, under the target duration their longest sets."""
    listed = list(segments)
    if not listed:
        return 0, 0
    target = max(1, math.ceil(max(duration for _, duration in listed) - 1e-3))  # as listed
    meter = BitRateMeter()
    for size, duration in listed:
        meter.add(size, duration, target)
    return meter.peak, meter.average
