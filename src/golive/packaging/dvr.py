"""A rendition's DVR window: an index of its older segments, without their bytes (stage: packaging).

With a DVR window the live media playlist lists every segment of the last `dvr_window`
seconds, so players can seek back; the rendition window keeps only the newest few in
memory and the origin serves older ones from the recording store by the same URIs.
What the index holds per segment is what a playlist line needs: msn, duration, date,
discontinuity and init generation, with the segment's lines rendered once when it
arrives (a playlist of hours is then one join, and a delta update skips it whole).

Bounded by time (the window) and by count (`MAX_ENTRIES`, for segments far shorter than
the target a publisher's GOP could force).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from golive.packaging.playlists import date_time, seconds

__all__ = ["MAX_DVR_WINDOW", "MAX_ENTRIES", "DvrEntry", "DvrIndex"]

MAX_DVR_WINDOW = 6 * 3600
"""The longest DVR window a stream may ask for, in seconds."""

MAX_ENTRIES = 4 * MAX_DVR_WINDOW
"""The most segments an index holds: a quarter-second segment for six hours."""


@dataclass(frozen=True, slots=True)
class DvrEntry:
    """One complete segment as the DVR part of a playlist lists it."""

    msn: int
    generation: int
    duration: float
    program_date_time: datetime
    discontinuity: bool
    discontinuity_sequence: int  # discontinuities up to and including this segment
    gap: bool
    start: float  # seconds of index time before this segment (sum of earlier durations)
    lines: str  # its playlist lines after a segment of generation `previous_generation`
    previous_generation: int | None


def entry_lines(
    name: str,
    *,
    msn: int,
    generation: int,
    duration: float,
    program_date_time: datetime,
    discontinuity: bool,
    gap: bool,
    lead: bool,
    previous_generation: int | None,
    dated: bool = False,
) -> str:
    """A complete segment's lines without parts: first in the playlist (`lead`) or after one
    of `previous_generation` (a new init or a discontinuity repeats the map or the date;
    `dated`: so does media missing before it, see `RenditionWindow._after_hole`)."""
    lines = []
    if discontinuity:
        lines.append("#EXT-X-DISCONTINUITY")
    if lead or generation != previous_generation:
        lines.append(f'#EXT-X-MAP:URI="{name}/init-{generation}.mp4"')
    if lead or discontinuity or dated:
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{date_time(program_date_time)}")
    if gap:
        lines.append("#EXT-X-GAP")
    lines.append(f"#EXTINF:{seconds(duration)},")
    lines.append(f"{name}/seg-{msn}.m4s")
    return "".join(line + "\n" for line in lines)


class DvrIndex:
    """The complete segments of a rendition's last `window` seconds, oldest first."""

    def __init__(self, name: str, window: float, *, max_entries: int = MAX_ENTRIES) -> None:
        if not 0 < window <= MAX_DVR_WINDOW:
            raise ValueError(f"a DVR window is 1..{MAX_DVR_WINDOW} seconds")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.name = name
        self.window = window
        self.max_entries = max_entries
        self._entries: list[DvrEntry] = []
        self._msns: list[int] = []  # parallel to _entries, for bisect
        self._elapsed = 0.0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def first_msn(self) -> int | None:
        return self._msns[0] if self._msns else None

    def add(
        self,
        *,
        msn: int,
        generation: int,
        duration: float,
        program_date_time: datetime,
        discontinuity: bool,
        discontinuity_sequence: int,
        gap: bool,
        dated: bool = False,
    ) -> None:
        """A segment just completed (in msn order); the oldest fall out of the window.
        `dated`: its lines carry its date although it continues a timeline."""
        if self._msns and msn <= self._msns[-1]:
            return  # already listed (a rendition never renumbers)
        previous = self._entries[-1].generation if self._entries else None
        self._entries.append(DvrEntry(
            msn=msn,
            generation=generation,
            duration=duration,
            program_date_time=program_date_time,
            discontinuity=discontinuity,
            discontinuity_sequence=discontinuity_sequence,
            gap=gap,
            start=self._elapsed,
            lines=entry_lines(
                self.name, msn=msn, generation=generation, duration=duration,
                program_date_time=program_date_time, discontinuity=discontinuity, gap=gap,
                lead=False, previous_generation=previous, dated=dated,
            ),
            previous_generation=previous,
        ))
        self._msns.append(msn)
        self._elapsed += duration
        self._trim()

    def _trim(self) -> None:
        drop = max(0, len(self._entries) - self.max_entries)
        # Keep the newest segments whose total is at most the window.
        while drop < len(self._entries) - 1 and self._elapsed - self._entries[drop].start > self.window + 1e-6:
            drop += 1
        if drop:
            del self._entries[:drop]
            del self._msns[:drop]

    def shift_dates(self, timeline: int, seconds: float) -> None:
        """The window moved a timeline's dates (its start-up backlog caught up): move the listed
        segments of that timeline with it, so the DVR part and the live part agree."""
        shift = timedelta(seconds=seconds)
        for i, entry in enumerate(self._entries):
            if entry.discontinuity_sequence != timeline:
                continue
            date = entry.program_date_time + shift
            lines = entry.lines
            if entry.discontinuity or "#EXT-X-PROGRAM-DATE-TIME:" in lines:  # dated lines
                lines = entry_lines(
                    self.name, msn=entry.msn, generation=entry.generation,
                    duration=entry.duration, program_date_time=date,
                    discontinuity=entry.discontinuity, gap=entry.gap, lead=False,
                    previous_generation=entry.previous_generation, dated=True,
                )
            self._entries[i] = replace(entry, program_date_time=date, lines=lines)

    def before(self, msn: int) -> int:
        """How many listed segments (from the oldest) are numbered below `msn`."""
        return bisect.bisect_left(self._msns, msn)

    def entry(self, msn: int) -> DvrEntry | None:
        index = bisect.bisect_left(self._msns, msn)
        if index < len(self._msns) and self._msns[index] == msn:
            return self._entries[index]
        return None

    def lists_generation(self, generation: int) -> bool:
        """Whether some listed segment decodes with init `generation` (they only grow)."""
        return bool(self._entries) and (
            self._entries[0].generation <= generation <= self._entries[-1].generation
        )

    def generation_before(self, stop: int) -> int | None:
        """The init generation of entry `stop - 1`: what the segment after it follows."""
        return self._entries[stop - 1].generation if stop > 0 else None

    def duration(self, first: int, stop: int) -> float:
        """Total duration of entries `first` up to (not including) `stop`."""
        if first >= stop:
            return 0.0
        last = self._entries[stop - 1]
        return last.start + last.duration - self._entries[first].start

    def skippable(self, stop: int, after: float, skip_until: float) -> int:
        """How many of the oldest `stop` entries start more than `skip_until` seconds before
        the playlist's end, `after` being the listed duration that follows them."""
        if stop <= 0:
            return 0
        total = self.duration(0, stop) + after
        base = self._entries[0].start
        # Entry i is skippable while total - (start_i - base) > skip_until.
        limit = base + total - skip_until
        low, high = 0, stop
        while low < high:  # first entry whose start is at or past the limit
            mid = (low + high) // 2
            if self._entries[mid].start < limit - 1e-9:
                low = mid + 1
            else:
                high = mid
        return low

    def render(self, first: int, stop: int) -> str:
        """Entries `first` up to `stop` as playlist lines, the first as the playlist's lead."""
        if first >= stop:
            return ""
        lead = self._entries[first]
        text = entry_lines(
            self.name, msn=lead.msn, generation=lead.generation, duration=lead.duration,
            program_date_time=lead.program_date_time, discontinuity=lead.discontinuity,
            gap=lead.gap, lead=True, previous_generation=None,
        )
        return text + "".join(entry.lines for entry in self._entries[first + 1 : stop])
