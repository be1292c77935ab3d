"""Telling an input whose frame rate or bitrate collapsed from its own recent normal (stream).

An encoder on a failing uplink rarely goes silent at once: it sends a few frames a
second, or a trickle of bytes, for a long while. `RateWatch` counts one publisher's
video tags and media bytes in short slots of the hub's clock over the last
`history` seconds; `collapse(now, window)` compares the last `window` seconds with
the seconds before them and names the rate that fell under `COLLAPSE_RATIO` of it.
Bounded (a fixed ring of slots), O(1) per tag, sans-IO: time is passed in.
"""

from __future__ import annotations

import math

__all__ = ["COLLAPSE_RATIO", "RateWatch"]

COLLAPSE_RATIO = 0.25  # the recent rate under this share of the one before is a collapse
_BASELINE_WINDOWS = 2  # the rate before must be measured over at least this many windows


class RateWatch:
    """Video tags and bytes per slot of one input, over the last `history` seconds."""

    def __init__(self, *, slot: float = 0.1, history: float = 10.0) -> None:
        if slot <= 0 or history < 4 * slot:
            raise ValueError("need slot > 0 and history >= 4 slots")
        self._slot = slot
        self._size = math.ceil(history / slot)
        self._frames = [0] * self._size
        self._bytes = [0] * self._size
        self._first: int | None = None  # slot number of the first sample
        self._newest = 0  # slot number of the newest slot kept

    def add(self, now: float, size: int, *, video: bool) -> None:
        index = self._advance(now) % self._size
        self._frames[index] += video
        self._bytes[index] += size

    def collapse(self, now: float, window: float) -> str | None:
        """Why the last `window` seconds count as a collapse, or None (also while too
        little is known: a rate needs `_BASELINE_WINDOWS` windows before it)."""
        if self._first is None:
            return None
        newest = self._advance(now)
        recent = max(1, round(window / self._slot))
        covered = newest - self._first + 1
        before = min(self._size - recent, covered - recent)
        if before < _BASELINE_WINDOWS * recent:
            return None
        for name, counts, unit, scale in (
            ("frame rate", self._frames, "/s", 1.0),
            ("bitrate", self._bytes, " kbit/s", 8 / 1000),
        ):
            now_sum = sum(counts[(newest - i) % self._size] for i in range(recent))
            then_sum = sum(counts[(newest - recent - i) % self._size] for i in range(before))
            now_rate = now_sum / (recent * self._slot) * scale
            then_rate = then_sum / (before * self._slot) * scale
            if then_rate > 0 and now_rate < COLLAPSE_RATIO * then_rate:
                return f"{name} {now_rate:.1f}{unit}, under a quarter of its {then_rate:.1f}{unit}"
        return None

    def _advance(self, now: float) -> int:
        """The slot number of `now`, clearing the slots passed since the newest one."""
        slot = math.floor(now / self._slot)
        if self._first is None:
            self._first = self._newest = slot
            return slot
        if slot <= self._newest:
            return self._newest  # the clock never goes back; a late sample counts as now
        for passed in range(self._newest + 1, min(slot, self._newest + self._size) + 1):
            self._frames[passed % self._size] = 0
            self._bytes[passed % self._size] = 0
        if slot - self._newest > self._size:
            self._frames = [0] * self._size
            self._bytes = [0] * self._size
        self._newest = slot
        return slot
