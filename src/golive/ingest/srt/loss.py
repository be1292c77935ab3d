"""The receiver's loss list: missing sequence numbers as sorted, disjoint ranges (ingest).

Sequence numbers here are *extended* (they keep counting past 2**31), so ranges
sort and bisect like plain integers; the receiver folds them back to 31 bits
when it writes a NAK.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator


class LossList:
    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._count = 0

    def __len__(self) -> int:
        """How many sequence numbers are missing."""
        return self._count

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __contains__(self, seq: object) -> bool:
        if not isinstance(seq, int):
            return False
        i = bisect_right(self._starts, seq) - 1
        return i >= 0 and self._ends[i] >= seq

    def end_of(self, seq: int) -> int | None:
        """The last number of the range holding `seq`, or None when `seq` is not missing."""
        i = bisect_right(self._starts, seq) - 1
        return self._ends[i] if i >= 0 and self._ends[i] >= seq else None

    def ranges(self) -> Iterator[tuple[int, int]]:
        return zip(self._starts, self._ends, strict=True)

    def first(self) -> tuple[int, int] | None:
        return (self._starts[0], self._ends[0]) if self._starts else None

    def add(self, start: int, end: int) -> None:
        """Add [start, end]; ranges after every existing one (the common case) append."""
        if end < start:
            return
        if not self._starts or start > self._ends[-1] + 1:
            self._starts.append(start)
            self._ends.append(end)
            self._count += end - start + 1
            return
        # Rare: overlapping or out of order. Rebuild with the union.
        merged = sorted([*self.ranges(), (start, end)])
        self._starts, self._ends, self._count = [], [], 0
        for a, b in merged:
            if self._starts and a <= self._ends[-1] + 1:
                if b > self._ends[-1]:
                    self._count += b - self._ends[-1]
                    self._ends[-1] = b
            else:
                self._starts.append(a)
                self._ends.append(b)
                self._count += b - a + 1

    def remove(self, seq: int) -> bool:
        """Forget one number (it arrived); False when it was not missing."""
        i = bisect_right(self._starts, seq) - 1
        if i < 0 or self._ends[i] < seq:
            return False
        start, end = self._starts[i], self._ends[i]
        if start == end:
            del self._starts[i], self._ends[i]
        elif seq == start:
            self._starts[i] = seq + 1
        elif seq == end:
            self._ends[i] = seq - 1
        else:
            self._ends[i] = seq - 1
            self._starts.insert(i + 1, seq + 1)
            self._ends.insert(i + 1, end)
        self._count -= 1
        return True

    def remove_range(self, start: int, end: int) -> int:
        """Forget [start, end]; returns how many numbers were missing in it."""
        removed = 0
        starts: list[int] = []
        ends: list[int] = []
        for a, b in self.ranges():
            if b < start or a > end:
                starts.append(a)
                ends.append(b)
                continue
            removed += min(b, end) - max(a, start) + 1
            if a < start:
                starts.append(a)
                ends.append(start - 1)
            if b > end:
                starts.append(end + 1)
                ends.append(b)
        self._starts, self._ends = starts, ends
        self._count -= removed
        return removed

    def remove_below(self, seq: int) -> int:
        """Forget everything before `seq`; returns how many numbers that was."""
        if not self._starts or self._starts[0] >= seq:
            return 0
        return self.remove_range(self._starts[0], seq - 1)
