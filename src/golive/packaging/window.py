"""One rendition's recent media as LL-HLS parts and segments, and its media playlist (stage: packaging).

Sans-IO apart from `wait`: fragments go in with the time they arrived (no clock inside),
playlists and bytes come out. Memory is bounded by a segment window and a byte cap.
Blocking playlist reload is served by futures that `add_fragment`/`end` resolve.

A rendition the encoder gives up under load is `suspend`ed, not removed: players may
hold its media playlist, so it goes on advancing in step with a sibling (`mirror`),
every part and segment marked missing (RFC 8216bis `EXT-X-GAP`, `GAP=YES`), and
players switch away by themselves. `resume` takes real media back at the first
segment boundary it shares with the sibling.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from golive.formats import Fragment, InitSegment
from golive.packaging.bitrate import BitRateMeter
from golive.packaging.dvr import DvrIndex
from golive.packaging.observer import CompletedSegment
from golive.packaging.playlists import date_time, seconds

log = logging.getLogger(__name__)

__all__ = ["RenditionWindow"]

MIN_SEGMENT_SECONDS = 1.0
"""An independent fragment closes the open segment once it is at least this long (less 10%),
so a publisher's very short GOPs are joined into segments of about a second."""

PARTS_LISTED_SEGMENTS = 3
"""Complete segments that still list their parts (RFC 8216bis: parts of the last three target
durations); older segments are listed whole."""

EVICTION_SLACK_SEGMENTS = 2
"""Segments kept past the playlist window, for clients still fetching them, at least; and
each for its own duration plus the longest playlist that listed it (see `_evict`)."""

MAX_HELD_SEGMENTS = 48
"""At most this many segments are held, however fast they come (with `max_bytes`)."""

MEASURED_SEGMENTS = 3
"""Complete segments after which the playlists declare the bit rates they measure, not the
plan's (see `RenditionWindow`)."""

DATE_SETTLE_SECONDS = 0.1
"""How much earlier than the media clock predicts a part must arrive before the timeline's
EXT-X-PROGRAM-DATE-TIME moves back: more than arrival jitter, less than a part."""

_EDGE_OVERSHOOT = 1.15  # see `_Part.listed`
_DATE_PRECISION = 0.0005  # playlists print dates to the millisecond
_EPSILON = 1e-6

State = Literal["ready", "pending", "too_far"]


@dataclass(slots=True)
class _Part:
    data: bytes
    independent: bool
    decode_time: float
    arrived_at: datetime
    raw_duration: float  # Fragment.duration: the longest track
    origin: float | None = None  # when the run's media time 0 reached ingest (Unix s)
    timeline_duration: float | None = None  # decode time to the next part, once known
    gap: bool = False  # no media: the rendition was suspended (GAP=YES)

    def listed(self, part_target: float) -> float:
        """The duration a playlist gives this part.

        The decode-time distance to the next part once it exists: the video track's
        timeline, which audio running a fraction of a frame ahead does not stretch.
        Until then the fragment's own duration, with such a small audio overshoot taken
        back to the part target.
        """
        if self.timeline_duration is not None:
            return self.timeline_duration
        if part_target < self.raw_duration <= part_target * _EDGE_OVERSHOOT:
            return part_target
        return self.raw_duration


@dataclass(slots=True)
class _Segment:
    msn: int
    generation: int
    discontinuity: bool
    discontinuity_sequence: int  # discontinuities up to and including this segment
    parts: list[_Part] = field(default_factory=list)
    complete: bool = False
    closed_by_keyframe: bool = False
    gap: bool = False  # every part is a gap (EXT-X-GAP)
    # The longest playlist that listed it (seconds), and when it left the playlist (the
    # window's arrival clock, Unix seconds): see `_evict`.
    longest_playlist: float = 0.0
    unlisted_at: float | None = None

    def program_date_time(self, wall_offset: float) -> datetime:
        """The segment's date: its media time on its timeline's wall clock (see `_date_offset`)."""
        return datetime.fromtimestamp(self.parts[0].decode_time + wall_offset, UTC)

    def duration(self, part_target: float) -> float:
        return sum(part.listed(part_target) for part in self.parts)

    @property
    def size(self) -> int:
        return sum(len(part.data) for part in self.parts)


def _compact(value: float) -> str:
    text = f"{value:.5f}".rstrip("0").rstrip(".")
    return text or "0"


class RenditionWindow:
    """One rendition's recent parts and segments, bounded in count and bytes."""

    def __init__(
        self,
        name: str,
        *,
        part_target: float,
        low_latency: bool,
        bandwidth: int,
        average_bandwidth: int,
        frame_rate: float,
        playlist_segments: int = 6,
        max_bytes: int = 64 * 1024 * 1024,
        first_msn: int = 0,
        dvr_window: float = 0,
        after_discontinuities: int | None = None,
        after_date: float | None = None,
        min_segment: float = 0.0,
        estimated_bandwidth: bool = False,
    ) -> None:
        """`bandwidth` and `average_bandwidth` are what the plan expects; once
        `MEASURED_SEGMENTS` segments are complete the window declares what they measure
        (`BitRateMeter`): the average always, the peak where it is higher than planned, or
        in place of the plan where the plan could only guess (`estimated_bandwidth`: a copy
        of the publisher's video, whose bitrate is the publisher's).

        `min_segment`: how long a segment grows before an independent part closes it,
        to the nearest part (never under `MIN_SEGMENT_SECONDS` less 10%). An audio-only
        rendition, whose every part is independent, passes its segment length; video
        closes its segments at its keyframes. `after_discontinuities`, when given, continues another node's timeline: the
        first segment is tagged EXT-X-DISCONTINUITY and numbered in the discontinuity
        sequence after that many (see `Presentation`'s `continues`); `after_date` (Unix
        seconds), where that node's newest segment started, dates the first part, so a
        player that finds its next fragment by date (hls.js does, across a discontinuity)
        finds this one from the last it had (see `Continuation`)."""
        if part_target <= 0:
            raise ValueError("part_target must be positive")
        if playlist_segments < 1:
            raise ValueError("playlist_segments must be at least 1")
        self.name = name
        self.part_target = part_target
        self.min_segment = min_segment
        self._closes_at = max(MIN_SEGMENT_SECONDS * 0.9, min_segment - part_target / 2)
        self.low_latency = low_latency
        self.bandwidth = bandwidth
        self.average_bandwidth = average_bandwidth
        self.planned_bandwidth = bandwidth
        self.estimated_bandwidth = estimated_bandwidth
        self._bit_rates = BitRateMeter()
        self.frame_rate = frame_rate
        self.playlist_segments = playlist_segments
        self.max_bytes = max_bytes
        self.init: InitSegment | None = None
        # Media URLs are cached as immutable, so a playback id's next broadcast must not
        # reuse numbers: the presentation starts each window at a clock-derived msn.
        self.init_generation = first_msn
        self.first_msn = first_msn
        self._next_msn = first_msn
        self.ended = False
        self.parts_out_of_spec = 0
        """Parts longer than PART-TARGET, or non-final parts shorter than 85% of it."""
        self.segments_over_target = 0
        """Segments that came out longer than the announced EXT-X-TARGETDURATION."""
        self.fragments_dropped = 0
        """Fragments that could not start a segment (no init yet, or not independent)."""
        self._segments: list[_Segment] = []
        self._now = 0.0  # the newest part's arrival (Unix seconds): the window's clock
        self._inits: dict[int, InitSegment] = {}
        self._discontinuity_pending = after_discontinuities is not None
        self._discontinuities = after_discontinuities or 0
        self._after_date = after_date if after_discontinuities is not None else None
        self._target: int | None = None
        # Per timeline (discontinuity sequence): Unix time minus media decode time.
        self._date_offsets: dict[int, float] = {}
        # `call_when_ready`'s callbacks by (msn, part), in the order given (a dict for an
        # O(1) `forget_callback`): every blocked request's, `wait`'s included.
        self._callbacks: dict[tuple[int, int | None], dict[Callable[[], None], None]] = {}
        # Rendered playlists by `skip`, until the window next changes: every player
        # blocked on a part asks for the same text the moment that part arrives.
        self._playlists: dict[bool, str] = {}
        # A delta update's skip counts, kept as long as the rendered playlists: every held
        # blocking reload asks for them (the same until the window changes).
        self._skip_counts: tuple[int, int, int] | None = None
        # The first listed msn, kept as long as the rendered playlists: every reload reads it.
        self._sequence: int | None = None
        self.init_listener: Callable[[RenditionWindow], None] | None = None
        """Called after each new init (the presentation learns its multivariant is ready)."""
        self.change_listener: Callable[[], None] | None = None
        """Called after every change of the window (the presentation drops what it kept)."""
        self.segment_listener: Callable[[CompletedSegment], None] | None = None
        """Called with each segment as it completes (the presentation's observer records it)."""
        self.suspended = False
        """No media of its own: the playlist follows a sibling with gaps (see `mirror`)."""
        # The numbers an encoder restart found this rendition behind on (see `catch_up`):
        # the siblings' segments it lists as gaps once its next run's media comes.
        self._held_gaps: list[_Segment] = []
        self._restoring = False
        # While restoring, the sibling's segment starts: msn -> (decode time, discontinuity).
        self._sibling_starts: dict[int, tuple[float, bool]] = {}
        self.dvr = DvrIndex(name, dvr_window) if dvr_window > 0 else None
        """With a DVR window: every complete segment of its last `dvr_window` seconds, listed
        in the playlist; those no longer in memory are served from the recording store."""

    # Input ------------------------------------------------------------------------

    def set_init(self, init: InitSegment) -> None:
        """A (new) init segment; a different one starts a new generation and segment."""
        if self.init is not None and init.data == self.init.data:
            return
        if self.init is not None:
            self.init_generation += 1
            if not self.suspended:  # gap segments follow the sibling's segments and timeline
                self._close_open(by_keyframe=False)
                if self._segments:
                    self._discontinuity_pending = True  # a new encoder run: a new timeline
        self.init = init
        self._inits[self.init_generation] = init
        self._wake()
        if self.init_listener is not None:
            self.init_listener(self)

    def add_fragment(
        self, fragment: Fragment, arrived_at: datetime, origin: float | None = None
    ) -> None:
        """One fragment = one part; an independent one may close the open segment.

        `origin` dates the part by the ingest clock: the Unix time at which the input
        for its encoder run's media time 0 arrived (see `_date_offset`)."""
        if self.ended or self.init is None:
            self.fragments_dropped += 1
            return
        if self.suspended:
            if not self._takes_back(fragment):
                self.fragments_dropped += 1
                return
            _, discontinuity = self._sibling_starts[self._next_msn]
            self.suspended = self._restoring = False
            self._sibling_starts.clear()
            self._discontinuity_pending = discontinuity
        part = _Part(
            fragment.data,
            fragment.independent,
            fragment.decode_time,
            arrived_at,
            fragment.duration,
            origin,
        )
        self._now = max(self._now, arrived_at.timestamp())
        open_segment = self._open_segment()
        if open_segment is not None and part.independent:
            previous = open_segment.parts[-1]
            self._extend_timeline(previous, part)
            if open_segment.duration(self.part_target) >= self._closes_at:
                self._close_open(by_keyframe=True)
                open_segment = None
        elif open_segment is not None:
            self._extend_timeline(open_segment.parts[-1], part)
        if open_segment is None:
            if not part.independent:
                self.fragments_dropped += 1
                return
            self._list_held_gaps()
            discontinuity = self._discontinuity_pending
            self._discontinuity_pending = False
            if discontinuity:
                self._discontinuities += 1
            elif self._segments:
                self._extend_timeline(self._segments[-1].parts[-1], part)
            open_segment = _Segment(
                msn=self._next_msn,
                generation=self.init_generation,
                discontinuity=discontinuity,
                discontinuity_sequence=self._discontinuities,
            )
            self._segments.append(open_segment)
            self._next_msn += 1
        open_segment.parts.append(part)
        self._date_offset(open_segment.discontinuity_sequence, part)
        self._evict()
        self._wake()

    def mark_discontinuity(self) -> None:
        """The next part starts a new segment tagged EXT-X-DISCONTINUITY."""
        if self.ended or self.suspended:  # gap segments take the sibling's discontinuities
            return
        self._close_open(by_keyframe=False)
        if self._segments:
            self._discontinuity_pending = True
        self._wake()

    def catch_up(self, source: RenditionWindow | None, until: int) -> None:
        """At an encoder restart: number on with the siblings from `until`, the msn their
        next run starts at, after a run in which this rendition produced less than they did
        (nothing at all, or it lagged). The numbers it missed are listed as gaps with the
        `source` sibling's parts (same media times, same discontinuities): renditions must
        agree on msn, media and discontinuity sequence (RFC 8216bis 4.4.3.3, 6.2.4), or a
        player switching by msn lands on other media or another timeline.

        The gaps are listed when the next run's first part is, not before: a playlist that
        ends in gaps has nothing a player can play next, and Shaka Player (5.2) fails for
        good (error 1011) when it meets one while its other variants are disabled (it
        disables a variant for a second after any failed request, a 503 included).
        """
        if self.ended or self.suspended or self._open_segment() is not None:
            return
        if self._next_msn >= until:
            return
        missed = [] if source is None else [
            s for s in source._segments if self._next_msn <= s.msn < until and s.complete
        ]
        if not missed or missed[-1].msn != until - 1:
            missed = []  # nothing to take the media times from: only the numbers move on
        if not missed or missed[0].msn != self._next_msn:
            # The source no longer holds all the numbers missed, only the newest (the
            # rest is older than any sibling's window, so no longer listed): keep the
            # msn -> segment index contiguous by starting over at what it holds.
            had_segments = bool(self._segments) or bool(self._held_gaps)
            self._segments.clear()
            self._held_gaps.clear()
            self._discontinuity_pending |= had_segments
        continues = bool(self._segments) or self._discontinuity_pending
        if missed and not self._segments:
            # Nothing of its own listed before them: the gaps take the source's timeline,
            # and are listed now (a playlist of nothing would not do either).
            self._discontinuities = missed[0].discontinuity_sequence - missed[0].discontinuity
            for segment in missed:
                self._append_gap(segment, segment.discontinuity)
        else:
            # The gaps take the source's discontinuities (the pending one is this
            # restart's, for the next run), when that run's media comes. What they copy
            # is kept without the source's media bytes.
            self._held_gaps.extend(
                replace(s, parts=[replace(part, data=b"") for part in s.parts]) for s in missed
            )
        self._next_msn = until
        # The restart that called this starts a new timeline after the gaps.
        self._discontinuity_pending = continues or bool(missed)
        self._evict()
        self._wake()
        if self._held_gaps:
            # A request parked on the hinted part, the first held gap's, is decided again
            # now: that part will never have media (see `superseded`).
            self._release((self._held_gaps[0].msn, 0))

    def _list_held_gaps(self) -> None:
        """List the gaps `catch_up` held back (the next run's media, or no more, follows)."""
        if not self._held_gaps:
            return
        until = self._next_msn
        for segment in self._held_gaps:
            self._append_gap(segment, segment.discontinuity)
        self._held_gaps.clear()
        self._next_msn = until

    # Suspension -----------------------------------------------------------------------

    def suspend(self) -> None:
        """No more media of its own: from the next segment on, `mirror` lists gaps."""
        if self.ended or self.suspended:
            return
        self._list_held_gaps()  # `mirror` goes on from the numbers after them
        self.suspended = True
        self._restoring = False
        self._close_open(by_keyframe=False)
        self._wake()

    def resume(self) -> None:
        """Media is coming back: take it from the first segment start shared with the sibling.

        Until then the sibling's segments are mirrored only once complete, so the start
        of its open segment stays free for this rendition's first real keyframe.
        """
        if self.suspended:
            self._restoring = True

    def _append_gap(self, source: _Segment, discontinuity: bool) -> None:
        """List `source`'s number (a sibling's segment) as a gap of this rendition, its
        parts mirrored as gap parts."""
        if discontinuity:
            self._discontinuities += 1
        own = _Segment(
            msn=source.msn,
            generation=self.init_generation,
            discontinuity=discontinuity,
            discontinuity_sequence=self._discontinuities,
            gap=True,
        )
        self._segments.append(own)
        self._next_msn = source.msn + 1
        self._mirror_parts(own, source)

    def mirror(self, sibling: RenditionWindow) -> None:
        """While suspended: list the sibling's new parts and segments as gaps, same numbers."""
        if not self.suspended or self.ended:
            return
        changed = False
        for segment in sibling._segments:
            own = self._open_segment()
            if own is not None and own.msn == segment.msn:
                changed |= self._mirror_parts(own, segment)
                continue
            if segment.msn < self._next_msn:
                continue
            if self._restoring:
                first = segment.parts[0].decode_time
                self._sibling_starts[segment.msn] = (first, segment.discontinuity)
                if not segment.complete:
                    break
            self._close_open(by_keyframe=False)
            discontinuity = segment.discontinuity or self._discontinuity_pending
            self._discontinuity_pending = False
            self._append_gap(segment, discontinuity)
            changed = True
        for msn in [m for m in self._sibling_starts if m < self._next_msn]:
            del self._sibling_starts[msn]
        if changed:
            self._evict()
            self._wake()

    def _mirror_parts(self, own: _Segment, segment: _Segment) -> bool:
        changed = False
        for i, source in enumerate(segment.parts):
            if i < len(own.parts):
                part = own.parts[i]
                changed |= part.timeline_duration != source.timeline_duration
                part.timeline_duration = source.timeline_duration
                continue
            part = _Part(
                b"",
                source.independent,
                source.decode_time,
                source.arrived_at,
                source.raw_duration,
                source.origin,
                source.timeline_duration,
                gap=True,
            )
            self._now = max(self._now, source.arrived_at.timestamp())
            own.parts.append(part)
            self._date_offset(own.discontinuity_sequence, part)
            changed = True
        if segment.complete and not own.complete:
            own.complete = True
            own.closed_by_keyframe = segment.closed_by_keyframe
            self._archive(own)
            changed = True
        return changed

    def _takes_back(self, fragment: Fragment) -> bool:
        """Whether a resumed rendition's fragment starts the next segment, as the sibling's does."""
        if not self._restoring or not fragment.independent or self._open_segment() is not None:
            return False
        start = self._sibling_starts.get(self._next_msn)
        return start is not None and abs(start[0] - fragment.decode_time) < self.part_target / 2

    def is_gap(self, msn: int, index: int | None) -> bool:
        """Whether (msn, index) is listed as a gap: no media will ever be there."""
        segment = self._segment(msn)
        if segment is None:
            return False
        if index is None:
            return segment.gap
        return 0 <= index < len(segment.parts) and segment.parts[index].gap

    def superseded(self, msn: int, index: int) -> bool:
        """Whether part (msn, index) is one a preload hint may have named that will never exist.

        The part after the last of a segment that closed before it: the encoder restarted
        (a degrade step; its new run starts a new segment), the rendition was suspended, or
        a keyframe came earlier than the GOP predicted. Also the first part of the first
        gap segment after real media: hinted just before the rendition was suspended, or
        while an encoder restart's gaps are held back (see `catch_up`).
        """
        if self.hint_held_back(msn, index):
            return True
        segment = self._segment(msn)
        if segment is None or not segment.complete:
            return False
        if not segment.gap:
            return index == len(segment.parts)
        previous = self._segment(msn - 1)
        return index == 0 and previous is not None and not previous.gap

    def hint_held_back(self, msn: int, index: int) -> bool:
        """Whether (msn, index) is the part the playlist hints while an encoder restart's
        gaps are held back (see `catch_up`): the only part not yet listed that `superseded`
        already knows will never exist."""
        return bool(self._held_gaps) and index == 0 and msn == self._held_gaps[0].msn

    def end(self) -> None:
        """The rendition is over: close the open segment, add ENDLIST, wake every waiter."""
        if self.ended:
            return
        self._close_open(by_keyframe=False)
        self._list_held_gaps()
        self.ended = True
        self._wake()

    # Facts ------------------------------------------------------------------------

    @property
    def target_duration(self) -> int:
        """EXT-X-TARGETDURATION: ceil of the longest segment, at least 1; fixed once announced."""
        if self._target is not None:
            return self._target
        return self._longest_target()

    @property
    def oldest_msn(self) -> int | None:
        """The msn of the oldest segment held (listed or kept past the playlist)."""
        return self._segments[0].msn if self._segments else None

    @property
    def next_msn(self) -> int:
        """The msn the next segment this rendition opens gets."""
        return self._next_msn

    def media_start(self, msn: int) -> float | None:
        """Where segment `msn` starts on its timeline (media seconds), if in the window."""
        segment = self._segment(msn)
        return segment.parts[0].decode_time if segment is not None and segment.parts else None

    @property
    def last_msn(self) -> int:
        return self._segments[-1].msn if self._segments else self._next_msn - 1

    def date_end(self) -> float | None:
        """Where the newest part's media ends on the wall clock (Unix seconds), as dated in
        the playlist; None before the first part."""
        dated = self._newest_dated()
        if dated is None:
            return None
        offset, segment = dated
        part = segment.parts[-1]
        return offset + part.decode_time + part.listed(self.part_target)

    def date_start(self) -> float | None:
        """Where the newest segment (open or not) starts on the wall clock (Unix seconds),
        as dated in the playlist; None before the first part."""
        dated = self._newest_dated()
        return None if dated is None else dated[0] + dated[1].parts[0].decode_time

    def _newest_dated(self) -> tuple[float, _Segment] | None:
        """The newest segment with media, and its timeline's date offset."""
        for segment in reversed(self._segments):
            if segment.parts and not segment.gap:
                offset = self._date_offsets.get(segment.discontinuity_sequence)
                return None if offset is None else (offset, segment)
        return None

    @property
    def discontinuity_sequence(self) -> int:
        """Discontinuities up to and including the newest segment (or the pending first)."""
        return self._discontinuities

    @property
    def last_part(self) -> int:
        return len(self._segments[-1].parts) - 1 if self._segments else -1

    @property
    def media_sequence(self) -> int:
        """The msn of the first segment the playlist lists."""
        sequence = self._sequence
        if sequence is None:
            listed = self._listed()
            if listed and self.dvr is not None and self.dvr.before(listed[0].msn):
                first = self.dvr.first_msn
                assert first is not None
                sequence = first
            else:
                sequence = listed[0].msn if listed else max(0, self.last_msn + 1)
            self._sequence = sequence
        return sequence

    @property
    def memory_bytes(self) -> int:
        media = sum(segment.size for segment in self._segments)
        return media + sum(len(init.data) for init in self._inits.values())

    def production(self) -> tuple[datetime, float] | None:
        """When the newest part arrived, and how much later than its date it did: with
        dates from the ingest clock, how long after its input reached golive the part was
        out of the encoder (its encode and fragment delay, about a part plus the encoder's
        latency while it keeps pace, growing while it falls behind). None before the
        first real part."""
        for segment in reversed(self._segments):
            if segment.parts and not segment.gap:
                part = segment.parts[-1]
                if part.gap:
                    continue
                offset = self._date_offsets.get(segment.discontinuity_sequence)
                if offset is None:
                    return None
                return part.arrived_at, part.arrived_at.timestamp() - offset - part.decode_time
        return None

    def next_part(self) -> tuple[int, int]:
        """(msn, index) of the part the preload hint names: the next one to arrive."""
        open_segment = self._open_segment()
        if open_segment is None:
            return self.last_msn + 1, 0
        # The newest whole GOP, also from before a discontinuity: an encoder restart (a
        # degrade step) keeps the GOP, and the segment it cut short says nothing about it.
        previous = next(
            (s for s in reversed(self._segments[:-1]) if s.closed_by_keyframe), None
        )
        if (
            previous is not None
            and len(open_segment.parts) >= len(previous.parts)
            and open_segment.duration(self.part_target) >= self._closes_at
        ):
            return open_segment.msn + 1, 0  # the GOP so far says a keyframe comes next
        return open_segment.msn, len(open_segment.parts)

    # Bytes ------------------------------------------------------------------------

    def segment_bytes(self, msn: int) -> bytes | None:
        """A complete segment's bytes (its parts joined), or None (also for a gap)."""
        segment = self._segment(msn)
        if segment is None or not segment.complete or segment.gap:
            return None
        return b"".join(part.data for part in segment.parts)

    def part_bytes(self, msn: int, index: int) -> bytes | None:
        segment = self._segment(msn)
        if segment is None or not 0 <= index < len(segment.parts) or segment.parts[index].gap:
            return None
        return segment.parts[index].data

    def archived(self, msn: int) -> bool:
        """Whether segment `msn` is listed by the DVR window but no longer held in memory:
        its bytes (and its init's) are the recording store's to serve."""
        return (
            self.dvr is not None
            and self._segment(msn) is None
            and (entry := self.dvr.entry(msn)) is not None
            and not entry.gap
        )

    def archived_init(self, generation: int) -> bool:
        """Whether init `generation` is one a DVR-listed segment decodes with, but no longer
        held in memory."""
        return (
            self.dvr is not None
            and generation not in self._inits
            and self.dvr.lists_generation(generation)
        )

    def segment_generation(self, msn: int) -> int | None:
        """The init generation (encoder run) a segment in the window decodes with."""
        segment = self._segment(msn)
        return segment.generation if segment is not None else None

    def init_bytes(self, generation: int) -> bytes | None:
        init = self._inits.get(generation)
        return init.data if init is not None else None

    # Blocking reload --------------------------------------------------------------

    def state(self, msn: int, part: int | None) -> State:
        """Whether the playlist already satisfies a blocking request for (msn, part)."""
        if self.ended:
            return "ready"
        last = self.last_msn
        newest = self._segments[-1] if self._segments else None
        if msn < last or (self._segments and msn < self._segments[0].msn):
            return "ready"
        if msn < self.first_msn:
            # Before this window's first number (a presentation that continues another
            # node's, asked for what that node would have made next): never coming.
            return "ready"
        # Gaps held back (see `catch_up`) are numbers the siblings list already.
        reach = self._next_msn - 1 if self._held_gaps else last
        if part is None:
            if newest is not None and msn == last and newest.complete:
                return "ready"
            return "pending" if msn <= reach + 2 else "too_far"
        if newest is not None and msn == last and (newest.complete or part <= self.last_part):
            return "ready"
        if msn > reach + 1 or part > self._max_parts():
            return "too_far"
        return "pending"

    async def wait(self, msn: int, part: int | None) -> None:
        """Return once `state(msn, part)` is "ready" (the caller applies its own timeout)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def ready() -> None:
            if not future.done():
                future.set_result(None)

        if not self.call_when_ready(msn, part, ready):
            return
        try:
            await future
        finally:
            self.forget_callback(msn, part, ready)

    def call_when_ready(self, msn: int, part: int | None, callback: Callable[[], None]) -> bool:
        """Have `callback()` called once `state(msn, part)` is "ready": from the running
        loop, soon after the change that makes it so (all of one (msn, part)'s callbacks
        from one loop callback, in the order given), never within this call. False, and
        nothing arranged: it is ready now. A caller that stops waiting first calls
        `forget_callback`. No future per caller (`wait` makes one for its own await): a
        future's callback costs a context copy and a loop callback of its own, and the
        fast path holds thousands of requests for the same part."""
        if self.state(msn, part) == "ready":
            return False
        key = (msn, part)
        waiting = self._callbacks.get(key)
        if waiting is None:
            waiting = self._callbacks[key] = {}
        waiting[callback] = None
        return True

    def forget_callback(self, msn: int, part: int | None, callback: Callable[[], None]) -> None:
        """Drop a `call_when_ready` callback no one waits on any more (one already passed
        to the loop may still be called)."""
        key = (msn, part)
        waiting = self._callbacks.get(key)
        if waiting is not None:
            waiting.pop(callback, None)
            if not waiting:
                del self._callbacks[key]

    @property
    def waiter_count(self) -> int:
        """Blocked requests still waiting (for tests and stats)."""
        return sum(len(callbacks) for callbacks in self._callbacks.values())

    # Playlist ---------------------------------------------------------------------

    def playlist(self, *, skip: bool = False, client_has: int | None = None) -> str:
        """The media playlist (RFC 8216bis); `skip` asks for a delta update (EXT-X-SKIP).

        `client_has` is the msn a blocking delta request asks for (`_HLS_msn`): the
        client's copy ends before it. A delta that would skip a segment that copy cannot
        hold is answered in full: the client could not fill the skipped segments in.
        Clients should not ask for a delta with so old a copy (RFC 8216bis 6.3.7), but
        video.js 8 (VHS 3.17) does, after a failed or held reload, and then keeps
        segments without durations for good (its sync breaks, playback stops).
        """
        if skip and client_has is not None:
            _, skipped_older, skipped = self._current_skips()
            if skipped_older + skipped and (
                self.media_sequence + skipped_older + skipped - 1 >= client_has
            ):
                skip = False
        text = self._playlists.get(skip)
        if text is None:
            text = self._playlists[skip] = self._render(skip=skip)
        return text

    def _current_skips(self) -> tuple[int, int, int]:
        """`_skips` for the playlist as it stands, kept until the window changes."""
        counts = self._skip_counts
        if counts is None:
            counts = self._skip_counts = self._skips(self._listed(), self.target_duration)
        return counts

    def _skips(self, listed: list[_Segment], target: int) -> tuple[int, int, int]:
        """(listed segments only the DVR index holds, how many of those a delta update
        skips, how many in-memory segments it skips) for a playlist listing `listed`."""
        skip_until = 6 * target
        # With a DVR window the oldest `older` listed segments come from its index.
        older = self.dvr.before(listed[0].msn) if self.dvr is not None and listed else 0
        skipped_older = skipped = 0
        if not self.low_latency:
            return older, 0, 0
        if self.dvr is not None and older:
            after = sum(segment.duration(self.part_target) for segment in listed)
            skipped_older = self.dvr.skippable(older, after, skip_until)
        if skipped_older == older:
            skipped = self._skippable(listed, skip_until)
        return older, skipped_older, skipped

    def _render(self, *, skip: bool) -> str:
        listed = self._listed()
        if any(segment.complete for segment in listed) and self._target is None:
            self._target = self._longest_target()
            self._skip_counts = None  # they depend on the target duration
        target = self.target_duration
        low = self.low_latency
        skip_until = 6 * target
        older, skipped_older, skipped = self._current_skips()
        if not skip:
            skipped_older = skipped = 0
        lines = ["#EXTM3U", f"#EXT-X-VERSION:{9 if low else 7}", f"#EXT-X-TARGETDURATION:{target}"]
        if low:
            hold_back = math.ceil(3 * self.part_target * 1000 - 1e-6) / 1000
            lines.append(
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
                f"PART-HOLD-BACK={hold_back:.3f},CAN-SKIP-UNTIL={skip_until:.1f}"
            )
            lines.append(f"#EXT-X-PART-INF:PART-TARGET={_compact(self.part_target)}")
        first = listed[0] if listed else None
        lines.append(f"#EXT-X-MEDIA-SEQUENCE:{self.media_sequence}")
        if first is not None:
            head = self.dvr.entry(self.media_sequence) if older and self.dvr is not None else None
            first_sequence, first_discontinuity = (
                (head.discontinuity_sequence, head.discontinuity) if head is not None
                else (first.discontinuity_sequence, first.discontinuity)
            )
            sequence = first_sequence - (1 if first_discontinuity else 0)
            if sequence > 0:
                lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{sequence}")
        if skipped_older + skipped:
            lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped_older + skipped}")
        generation: int | None = None
        if self.dvr is not None and skipped_older < older:
            # The DVR index's lines, rendered when each segment completed; one join.
            lines.append(self.dvr.render(skipped_older, older).removesuffix("\n"))
            generation = self.dvr.generation_before(older)
        older_listed = generation is not None
        with_parts = {s.msn for s in [s for s in listed if s.complete][-PARTS_LISTED_SEGMENTS:]}
        for index, segment in enumerate(listed[skipped:]):
            if not segment.complete and not low:
                break
            lead = index == 0 and not older_listed
            if segment.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if lead or segment.generation != generation:
                lines.append(f'#EXT-X-MAP:URI="{self.name}/init-{segment.generation}.mp4"')
                generation = segment.generation
            if lead or segment.discontinuity or self._after_hole(segment):
                offset = self._date_offsets[segment.discontinuity_sequence]
                date = date_time(segment.program_date_time(offset))
                lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{date}")
            if low and (segment.msn in with_parts or not segment.complete):
                for i, part in enumerate(segment.parts):
                    attributes = f"DURATION={seconds(part.listed(self.part_target))}"
                    attributes += f',URI="{self.name}/part-{segment.msn}.{i}.m4s"'
                    if part.independent:
                        attributes += ",INDEPENDENT=YES"
                    if part.gap:
                        attributes += ",GAP=YES"
                    lines.append(f"#EXT-X-PART:{attributes}")
            if segment.complete:
                if segment.gap:
                    lines.append("#EXT-X-GAP")
                lines.append(f"#EXTINF:{seconds(segment.duration(self.part_target))},")
                lines.append(f"{self.name}/seg-{segment.msn}.m4s")
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        elif low and self.init is not None and not self._newest_is_gap(listed):
            # (After a gap part the next one is a gap too, or the first of resumed media,
            # which a player that switched away does not want preloaded.)
            msn, index = self.next_part()
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{self.name}/part-{msn}.{index}.m4s"')
        return "\n".join(lines) + "\n"

    # Internals --------------------------------------------------------------------

    @staticmethod
    def _newest_is_gap(listed: list[_Segment]) -> bool:
        return bool(listed) and bool(listed[-1].parts) and listed[-1].parts[-1].gap

    def _open_segment(self) -> _Segment | None:
        if self._segments and not self._segments[-1].complete:
            return self._segments[-1]
        return None

    def _segment(self, msn: int) -> _Segment | None:
        if not self._segments:
            return None
        index = msn - self._segments[0].msn
        if 0 <= index < len(self._segments):
            return self._segments[index]
        return None

    def _listed(self) -> list[_Segment]:
        """Segments in the playlist: the newest complete ones and the open one."""
        complete = [segment for segment in self._segments if segment.complete]
        listed = complete[-self.playlist_segments :]
        open_segment = self._open_segment()
        if open_segment is not None:
            listed.append(open_segment)
        return listed

    def _longest_target(self) -> int:
        durations = [s.duration(self.part_target) for s in self._segments if s.complete]
        if not durations:
            open_segment = self._open_segment()
            durations = [open_segment.duration(self.part_target)] if open_segment else []
        longest = max(durations, default=1.0)
        return max(1, math.ceil(longest - 1e-3))

    def _max_parts(self) -> int:
        """The most parts a segment can plausibly have: further requests are too far."""
        longest = max(self.target_duration, MIN_SEGMENT_SECONDS, self.min_segment)
        return math.ceil(longest / self.part_target) + 1

    def _skippable(self, listed: list[_Segment], skip_until: float) -> int:
        """How many of the oldest listed segments start more than `skip_until` before the end."""
        total = sum(segment.duration(self.part_target) for segment in listed)
        with_parts = {s.msn for s in [s for s in listed if s.complete][-PARTS_LISTED_SEGMENTS:]}
        skipped = 0
        start = 0.0
        for segment in listed:
            if not segment.complete or segment.msn in with_parts:
                break
            if total - start <= skip_until:
                break
            start += segment.duration(self.part_target)
            skipped += 1
        return skipped

    def _after_hole(self, segment: _Segment) -> bool:
        """Whether `segment` does not start where the one before it ends by the durations
        listed (media missing between them on one timeline: a rung's gate closed mid-GOP,
        a fragment dropped). It is then dated on its own, from the first playlist that
        lists it: a date computed across the hole would change once the playlist's first
        segment, which is always dated, moves past the hole (RFC 8216bis 6.2.1)."""
        index = segment.msn - self._segments[0].msn if self._segments else -1
        if index <= 0 or segment.discontinuity or not segment.parts:
            return False
        previous = self._segments[index - 1]
        if not previous.parts or previous.discontinuity_sequence != segment.discontinuity_sequence:
            return False
        ends = previous.parts[0].decode_time + previous.duration(self.part_target)
        return abs(segment.parts[0].decode_time - ends) > _DATE_PRECISION

    def _extend_timeline(self, previous: _Part, following: _Part) -> None:
        """Give `previous` its decode-time duration, if the two parts are plausibly adjacent."""
        delta = following.decode_time - previous.decode_time
        slack = max(0.05, 0.25 * previous.raw_duration)
        if delta > 0 and abs(delta - previous.raw_duration) <= slack:
            previous.timeline_duration = delta

    def _date_offset(self, timeline: int, part: _Part) -> None:
        """Keep the timeline's date offset (Unix time minus media decode time).

        Dates come from media time, not from each segment's arrival: a playlist's date must
        agree with the durations before it. Shaka Player places every part by its date, and
        a date that jitters against media time moves the part's timestampOffset, which
        resets the SourceBuffer's parser and drops the part's frames up to the next
        keyframe. RFC 8216bis 6.2.1 only lets a playlist be appended to, so a published
        date must never move either.

        A part with an `origin` (the transcoder's, from the ingest clock) fixes the offset
        at the timeline's first part: the input's arrival does not depend on how fast the
        encoder runs, so the offset is right from the start and never needs to move, and
        every rendition of the run gets the same one. Without an origin (parts that did
        not come through an ingest feed) the offset is taken from the parts' own arrival,
        and moves back, by more than jitter, while an encoder catches up on a backlog:
        that rewrites published dates, which is why the pipeline always passes one.
        """
        current = self._date_offsets.get(timeline)
        if part.origin is not None:
            if current is not None:
                return  # fixed: never moves a published date
            candidate = part.origin
            if self._after_date is not None:
                # The first part of a continued timeline starts where the other node's ended.
                candidate = min(candidate, self._after_date - part.decode_time)
                self._after_date = None
            self._date_offsets[timeline] = candidate
            return
        candidate = part.arrived_at.timestamp() - part.decode_time
        if current is None and self._after_date is not None:
            # The first part of a continued timeline starts where the other node's ended.
            candidate = min(candidate, self._after_date - part.decode_time)
            self._after_date = None
        if current is None or candidate < current - DATE_SETTLE_SECONDS:
            self._date_offsets[timeline] = candidate
            if current is not None and self.dvr is not None:
                self.dvr.shift_dates(timeline, candidate - current)

    def _close_open(self, *, by_keyframe: bool) -> None:
        segment = self._open_segment()
        if segment is None:
            return
        segment.complete = True
        segment.closed_by_keyframe = by_keyframe
        self._archive(segment)
        if segment.gap:
            self._evict()
            return
        if self.low_latency:
            for i, part in enumerate(segment.parts):
                duration = part.listed(self.part_target)
                final = i == len(segment.parts) - 1
                if duration > self.part_target + _EPSILON or (
                    not final and duration < 0.85 * self.part_target - _EPSILON
                ):
                    self.parts_out_of_spec += 1
        if self._target is not None and round(segment.duration(self.part_target)) > self._target:
            self.segments_over_target += 1
        self._measure(segment)
        if self.segment_listener is not None:
            self.segment_listener(self._completed(segment))
        self._evict()

    def _measure(self, segment: _Segment) -> None:
        """Declare what the complete segments measure (see `__init__`)."""
        rates = self._bit_rates
        rates.add(segment.size, segment.duration(self.part_target), self.target_duration)
        if rates.segments < MEASURED_SEGMENTS or not rates.peak:
            return
        peak = rates.peak if self.estimated_bandwidth else max(rates.peak, self.planned_bandwidth)
        self.bandwidth = peak
        self.average_bandwidth = min(rates.average, peak)

    def _archive(self, segment: _Segment) -> None:
        """List a segment that just completed in the DVR index (its lines, not its bytes)."""
        if self.dvr is None:
            return
        offset = self._date_offsets[segment.discontinuity_sequence]
        self.dvr.add(
            dated=self._after_hole(segment),
            msn=segment.msn,
            generation=segment.generation,
            duration=segment.duration(self.part_target),
            program_date_time=segment.program_date_time(offset),
            discontinuity=segment.discontinuity,
            discontinuity_sequence=segment.discontinuity_sequence,
            gap=segment.gap,
        )

    def _completed(self, segment: _Segment) -> CompletedSegment:
        offset = self._date_offsets[segment.discontinuity_sequence]
        return CompletedSegment(
            rendition=self.name,
            msn=segment.msn,
            generation=segment.generation,
            discontinuity=segment.discontinuity,
            media_start=segment.parts[0].decode_time,
            duration=segment.duration(self.part_target),
            program_date_time=segment.program_date_time(offset),
            data=b"".join(part.data for part in segment.parts),
        )

    def _evict(self) -> None:
        """Drop what no client may still fetch. A segment that left the playlist stays
        (with its parts) for its duration plus that of the longest playlist that listed
        it (RFC 8216bis 6.2.2), on the clock of arrivals. Counting segments alone is not
        enough: an encoder catching up on a backlog (a restart, a starved one fed again)
        delivers many segments within a fraction of a second, and a part a player saw
        listed a moment before would answer 404."""
        listed = self._listed()
        first_listed = listed[0].msn if listed else self._next_msn
        playlist_seconds = sum(segment.duration(self.part_target) for segment in listed)
        for segment in self._segments:
            if segment.msn >= first_listed:
                segment.longest_playlist = max(segment.longest_playlist, playlist_seconds)
            elif segment.unlisted_at is None:
                segment.unlisted_at = self._now
        keep = self.playlist_segments + EVICTION_SLACK_SEGMENTS + 1  # + the open one
        while len(self._segments) > keep and (
            len(self._segments) > MAX_HELD_SEGMENTS or self._expired(self._segments[0])
        ):
            self._segments.pop(0)
        while len(self._segments) > 1 and self.memory_bytes > self.max_bytes:
            self._segments.pop(0)
        wanted = {segment.generation for segment in self._segments} | {self.init_generation}
        timelines = {segment.discontinuity_sequence for segment in self._segments}
        for timeline in [t for t in self._date_offsets if t not in timelines]:
            del self._date_offsets[timeline]
        for generation in [g for g in self._inits if g not in wanted]:
            del self._inits[generation]

    def _expired(self, segment: _Segment) -> bool:
        """Whether a segment has been out of the playlist for its grace (see `_evict`)."""
        if segment.unlisted_at is None:
            return False
        grace = segment.duration(self.part_target) + segment.longest_playlist
        return self._now - segment.unlisted_at >= grace

    def _wake(self) -> None:
        """After every change of the window: drop rendered playlists, release waiters."""
        self._playlists.clear()
        self._skip_counts = None
        self._sequence = None
        if self.change_listener is not None:
            self.change_listener()
        for key in [key for key in self._callbacks if self.state(*key) == "ready"]:
            self._release(key)

    def _release(self, key: tuple[int, int | None]) -> None:
        """Pass (and drop) every callback waiting on `key` to the loop."""
        # (Passed as it is, not copied: once popped, nothing adds to it or takes from it,
        # since `call_when_ready` arranges nothing for a ready key.)
        callbacks = self._callbacks.pop(key, None)
        if callbacks:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # changed outside any loop: no one waits in one
                _call_each(callbacks)
            else:
                loop.call_soon(_call_each, callbacks)


def _call_each(callbacks: Iterable[Callable[[], None]]) -> None:
    """`call_when_ready`'s callbacks of one (msn, part); one that fails stops no other."""
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("a call_when_ready callback failed")
