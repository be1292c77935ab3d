"""One rendition's recent media as LL-HLS parts and segments, and its media playlist (stage: packaging).

Sans-IO apart from `wait`: fragments go in with the time they arrived (no clock inside),
playlists and bytes come out. Memory is bounded by a segment window and a byte cap.
Blocking playlist reload is served by futures that `add_fragment`/`end` resolve.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from golive.formats import Fragment, InitSegment

__all__ = ["RenditionWindow"]

MIN_SEGMENT_SECONDS = 1.0
"""An independent fragment closes the open segment once it is at least this long (less 10%),
so a publisher's very short GOPs are joined into segments of about a second."""

PARTS_LISTED_SEGMENTS = 3
"""Complete segments that still list their parts (RFC 8216bis: parts of the last three target
durations); older segments are listed whole."""

EVICTION_SLACK_SEGMENTS = 2
"""Segments kept past the playlist window, for clients still fetching them."""

DATE_SETTLE_SECONDS = 0.1
"""How much earlier than the media clock predicts a part must arrive before the timeline's
EXT-X-PROGRAM-DATE-TIME moves back: more than arrival jitter, less than a part."""

_EDGE_OVERSHOOT = 1.15  # see `_Part.listed`
_EPSILON = 1e-6

State = Literal["ready", "pending", "too_far"]


@dataclass(slots=True)
class _Part:
    data: bytes
    independent: bool
    decode_time: float
    arrived_at: datetime
    raw_duration: float  # Fragment.duration: the longest track
    timeline_duration: float | None = None  # decode time to the next part, once known

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

    def program_date_time(self, wall_offset: float) -> datetime:
        """The segment's date: its media time on its timeline's wall clock (see `_date_offset`)."""
        return datetime.fromtimestamp(self.parts[0].decode_time + wall_offset, UTC)

    def duration(self, part_target: float) -> float:
        return sum(part.listed(part_target) for part in self.parts)

    @property
    def size(self) -> int:
        return sum(len(part.data) for part in self.parts)


def _seconds(value: float) -> str:
    return f"{value:.5f}"


def _compact(value: float) -> str:
    text = f"{value:.5f}".rstrip("0").rstrip(".")
    return text or "0"


def _date_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


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
    ) -> None:
        if part_target <= 0:
            raise ValueError("part_target must be positive")
        if playlist_segments < 1:
            raise ValueError("playlist_segments must be at least 1")
        self.name = name
        self.part_target = part_target
        self.low_latency = low_latency
        self.bandwidth = bandwidth
        self.average_bandwidth = average_bandwidth
        self.frame_rate = frame_rate
        self.playlist_segments = playlist_segments
        self.max_bytes = max_bytes
        self.init: InitSegment | None = None
        # Media URLs are cached as immutable, so a playback id's next broadcast must not
        # reuse numbers: the presentation starts each window at a clock-derived msn.
        self.init_generation = first_msn
        self._next_msn = first_msn
        self.ended = False
        self.parts_out_of_spec = 0
        """Parts longer than PART-TARGET, or non-final parts shorter than 85% of it."""
        self.segments_over_target = 0
        """Segments that came out longer than the announced EXT-X-TARGETDURATION."""
        self.fragments_dropped = 0
        """Fragments that could not start a segment (no init yet, or not independent)."""
        self._segments: list[_Segment] = []
        self._inits: dict[int, InitSegment] = {}
        self._discontinuity_pending = False
        self._discontinuities = 0
        self._target: int | None = None
        # Per timeline (discontinuity sequence): Unix time minus media decode time.
        self._date_offsets: dict[int, float] = {}
        self._waiters: dict[tuple[int, int | None], list[asyncio.Future[None]]] = {}
        # Rendered playlists by `skip`, until the window next changes: every player
        # blocked on a part asks for the same text the moment that part arrives.
        self._playlists: dict[bool, str] = {}
        self.init_listener: Callable[[RenditionWindow], None] | None = None
        """Called after each new init (the presentation learns its multivariant is ready)."""

    # Input ------------------------------------------------------------------------

    def set_init(self, init: InitSegment) -> None:
        """A (new) init segment; a different one starts a new generation and segment."""
        if self.init is not None and init.data == self.init.data:
            return
        if self.init is not None:
            self.init_generation += 1
            self._close_open(by_keyframe=False)
            if self._segments:
                self._discontinuity_pending = True  # a new encoder run: a new timeline
        self.init = init
        self._inits[self.init_generation] = init
        self._wake()
        if self.init_listener is not None:
            self.init_listener(self)

    def add_fragment(self, fragment: Fragment, arrived_at: datetime) -> None:
        """One fragment = one part; an independent one may close the open segment."""
        if self.ended or self.init is None:
            self.fragments_dropped += 1
            return
        part = _Part(
            fragment.data,
            fragment.independent,
            fragment.decode_time,
            arrived_at,
            fragment.duration,
        )
        open_segment = self._open_segment()
        if open_segment is not None and part.independent:
            previous = open_segment.parts[-1]
            self._extend_timeline(previous, part)
            if open_segment.duration(self.part_target) >= MIN_SEGMENT_SECONDS * 0.9:
                self._close_open(by_keyframe=True)
                open_segment = None
        elif open_segment is not None:
            self._extend_timeline(open_segment.parts[-1], part)
        if open_segment is None:
            if not part.independent:
                self.fragments_dropped += 1
                return
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
        if self.ended:
            return
        self._close_open(by_keyframe=False)
        if self._segments:
            self._discontinuity_pending = True
        self._wake()

    def end(self) -> None:
        """The rendition is over: close the open segment, add ENDLIST, wake every waiter."""
        if self.ended:
            return
        self._close_open(by_keyframe=False)
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
    def last_msn(self) -> int:
        return self._segments[-1].msn if self._segments else self._next_msn - 1

    @property
    def last_part(self) -> int:
        return len(self._segments[-1].parts) - 1 if self._segments else -1

    @property
    def media_sequence(self) -> int:
        """The msn of the first segment the playlist lists."""
        listed = self._listed()
        return listed[0].msn if listed else max(0, self.last_msn + 1)

    @property
    def memory_bytes(self) -> int:
        media = sum(segment.size for segment in self._segments)
        return media + sum(len(init.data) for init in self._inits.values())

    def next_part(self) -> tuple[int, int]:
        """(msn, index) of the part the preload hint names: the next one to arrive."""
        open_segment = self._open_segment()
        if open_segment is None:
            return self.last_msn + 1, 0
        # The GOP is the last one a keyframe ended: a segment a discontinuity closed says
        # nothing of it (a publisher that returned keeps the ladder, GOP included).
        previous = next(
            (s for s in reversed(self._segments[:-1]) if s.closed_by_keyframe), None
        )
        if (
            previous is not None
            and previous.closed_by_keyframe
            and len(open_segment.parts) >= len(previous.parts)
            and open_segment.duration(self.part_target) >= MIN_SEGMENT_SECONDS * 0.9
        ):
            return open_segment.msn + 1, 0  # the GOP so far says a keyframe comes next
        return open_segment.msn, len(open_segment.parts)

    # Bytes ------------------------------------------------------------------------

    def segment_bytes(self, msn: int) -> bytes | None:
        """A complete segment's bytes (its parts joined), or None."""
        segment = self._segment(msn)
        if segment is None or not segment.complete:
            return None
        return b"".join(part.data for part in segment.parts)

    def part_bytes(self, msn: int, index: int) -> bytes | None:
        segment = self._segment(msn)
        if segment is None or not 0 <= index < len(segment.parts):
            return None
        return segment.parts[index].data

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
        if part is None:
            if newest is not None and msn == last and newest.complete:
                return "ready"
            return "pending" if msn <= last + 2 else "too_far"
        if newest is not None and msn == last and (newest.complete or part <= self.last_part):
            return "ready"
        if msn > last + 1 or part > self._max_parts():
            return "too_far"
        return "pending"

    async def wait(self, msn: int, part: int | None) -> None:
        """Return once `state(msn, part)` is "ready" (the caller applies its own timeout)."""
        if self.state(msn, part) == "ready":
            return
        key = (msn, part)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(future)
        try:
            await future
        finally:
            waiting = self._waiters.get(key)
            if waiting is not None:
                if future in waiting:
                    waiting.remove(future)
                if not waiting:
                    del self._waiters[key]

    @property
    def waiter_count(self) -> int:
        """Blocked requests still waiting (for tests and stats)."""
        return sum(len(futures) for futures in self._waiters.values())

    # Playlist ---------------------------------------------------------------------

    def playlist(self, *, skip: bool = False) -> str:
        """The media playlist (RFC 8216bis); `skip` asks for a delta update (EXT-X-SKIP)."""
        text = self._playlists.get(skip)
        if text is None:
            text = self._playlists[skip] = self._render(skip=skip)
        return text

    def _render(self, *, skip: bool) -> str:
        listed = self._listed()
        if any(segment.complete for segment in listed) and self._target is None:
            self._target = self._longest_target()
        target = self.target_duration
        low = self.low_latency
        skip_until = 6 * target
        skipped = self._skippable(listed, skip_until) if skip and low else 0
        lines = ["#EXTM3U", f"#EXT-X-VERSION:{9 if low else 7}", f"#EXT-X-TARGETDURATION:{target}"]
        if low:
            hold_back = math.ceil(3 * self.part_target * 1000 - 1e-6) / 1000
            lines.append(
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
                f"PART-HOLD-BACK={hold_back:.3f},CAN-SKIP-UNTIL={skip_until:.1f}"
            )
            lines.append(f"#EXT-X-PART-INF:PART-TARGET={_compact(self.part_target)}")
        first = listed[0] if listed else None
        lines.append(f"#EXT-X-MEDIA-SEQUENCE:{first.msn if first else self.media_sequence}")
        if first is not None:
            sequence = first.discontinuity_sequence - (1 if first.discontinuity else 0)
            if sequence > 0:
                lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{sequence}")
        if skipped:
            lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")
        with_parts = {s.msn for s in [s for s in listed if s.complete][-PARTS_LISTED_SEGMENTS:]}
        generation: int | None = None
        for index, segment in enumerate(listed[skipped:]):
            if not segment.complete and not low:
                break
            lead = index == 0
            if segment.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if lead or segment.generation != generation:
                lines.append(f'#EXT-X-MAP:URI="{self.name}/init-{segment.generation}.mp4"')
                generation = segment.generation
            if lead or segment.discontinuity:
                offset = self._date_offsets[segment.discontinuity_sequence]
                date = _date_time(segment.program_date_time(offset))
                lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{date}")
            if low and (segment.msn in with_parts or not segment.complete):
                for i, part in enumerate(segment.parts):
                    attributes = f"DURATION={_seconds(part.listed(self.part_target))}"
                    attributes += f',URI="{self.name}/part-{segment.msn}.{i}.m4s"'
                    if part.independent:
                        attributes += ",INDEPENDENT=YES"
                    lines.append(f"#EXT-X-PART:{attributes}")
            if segment.complete:
                lines.append(f"#EXTINF:{_seconds(segment.duration(self.part_target))},")
                lines.append(f"{self.name}/seg-{segment.msn}.m4s")
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        elif low and self.init is not None:
            msn, index = self.next_part()
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{self.name}/part-{msn}.{index}.m4s"')
        return "\n".join(lines) + "\n"

    # Internals --------------------------------------------------------------------

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
        longest = max(self.target_duration, MIN_SEGMENT_SECONDS)
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

    def _extend_timeline(self, previous: _Part, following: _Part) -> None:
        """Give `previous` its decode-time duration, if the two parts are plausibly adjacent."""
        delta = following.decode_time - previous.decode_time
        slack = max(0.05, 0.25 * previous.raw_duration)
        if delta > 0 and abs(delta - previous.raw_duration) <= slack:
            previous.timeline_duration = delta

    def _date_offset(self, timeline: int, part: _Part) -> None:
        """Keep the timeline's date offset: when its media was earliest available, less jitter.

        Dates come from media time, not from each segment's arrival: a playlist's date must
        agree with the durations before it. Shaka Player places every part by its date, and
        a date that jitters against media time moves the part's timestampOffset, which
        resets the SourceBuffer's parser and drops the part's frames up to the next
        keyframe. The offset only moves back, by more than jitter, while an encoder
        catches up on its start-up backlog, so a date is never more than that margin
        after its part arrived (players measure their delay behind live with it).
        """
        candidate = part.arrived_at.timestamp() - part.decode_time
        current = self._date_offsets.get(timeline)
        if current is None or candidate < current - DATE_SETTLE_SECONDS:
            self._date_offsets[timeline] = candidate

    def _close_open(self, *, by_keyframe: bool) -> None:
        segment = self._open_segment()
        if segment is None:
            return
        segment.complete = True
        segment.closed_by_keyframe = by_keyframe
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
        self._evict()

    def _evict(self) -> None:
        keep = self.playlist_segments + EVICTION_SLACK_SEGMENTS + 1  # + the open one
        while len(self._segments) > keep:
            self._segments.pop(0)
        while len(self._segments) > 1 and self.memory_bytes > self.max_bytes:
            self._segments.pop(0)
        wanted = {segment.generation for segment in self._segments} | {self.init_generation}
        timelines = {segment.discontinuity_sequence for segment in self._segments}
        for timeline in [t for t in self._date_offsets if t not in timelines]:
            del self._date_offsets[timeline]
        for generation in [g for g in self._inits if g not in wanted]:
            del self._inits[generation]

    def _wake(self) -> None:
        """After every change of the window: drop rendered playlists, release waiters."""
        self._playlists.clear()
        for key in [key for key in self._waiters if self.state(*key) == "ready"]:
            for future in self._waiters.pop(key):
                if not future.done():
                    future.set_result(None)
