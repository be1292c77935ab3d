"""One broadcast's renditions under one playback id: the multivariant playlist and the
media playlists with their rendition reports (stage: packaging).

The wall clock is passed in: it numbers the first segment and stamps each fragment's
arrival, so tests can run a presentation on a fixed or stepped time.

A rendition the encoder gives up under load is suspended, never removed while the
broadcast runs: a player holding its media playlist sees it go on with gaps
(EXT-X-GAP) and switches away by itself, as hls.js and Shaka Player do for gaps,
instead of failing on a 404 (Shaka retries a 404ing playlist for good). The
multivariant playlist leaves it out meanwhile, so new sessions do not start on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from golive.formats import Fragment
from golive.packaging.clock import WallClock
from golive.packaging.observer import RenditionInfo, SegmentObserver
from golive.packaging.playlists import captions_media, stream_inf
from golive.packaging.window import RenditionWindow

__all__ = ["Continuation", "Presentation"]


@dataclass(frozen=True, slots=True)
class Continuation:
    """Where a broadcast another node was serving stopped: a presentation that takes it
    over numbers its first segment `next_msn`, tagged EXT-X-DISCONTINUITY after
    `discontinuity_sequence` discontinuities, so players holding the old node's
    playlist reload straight into it."""

    next_msn: int
    discontinuity_sequence: int
    date_end: float | None = None  # where the other node's media ended (Unix seconds)
    date_start: float | None = None
    """Where the other node's newest segment started (Unix seconds): the first segment
    here is dated there (else at `date_end`). hls.js finds its next fragment across the
    discontinuity by the end date of the last one it loaded, and for a segment it loaded
    only parts of, that date can be the segment's start: dated later, this node's first
    segment was not found and the player waited for good."""

    @property
    def date(self) -> float | None:
        """The date the first segment here gets."""
        return self.date_start if self.date_start is not None else self.date_end


class Presentation:
    """The renditions of one broadcast, as served under `/live/{playback_id}`."""

    def __init__(
        self,
        playback_id: str,
        *,
        low_latency: bool,
        part_target: float,
        clock: WallClock,
        dvr_window: float = 0,
        continues: Continuation | None = None,
        min_segment: float = 0.0,
    ) -> None:
        self.playback_id = playback_id
        self.min_segment = min_segment
        """How long a segment grows before an independent part may close it (the
        renditions' `RenditionWindow.min_segment`; 0: a second, less 10%)."""
        self.dvr_window = dvr_window
        """Seconds each media playlist lists (0: the live window only); segments past the
        in-memory window are served from the recording the observer makes."""
        self._clock = clock
        # Segments are numbered from twice the Unix time at start: segments are at least
        # ~0.9 s long, so a playback id's next broadcast always starts above this one's
        # numbers, and URLs cached as immutable are never reused for other media.
        self.first_msn = int(clock() * 2)
        self.continues = continues
        if continues is not None:
            # Another node served this broadcast until it died: go on after its numbers.
            self.first_msn = continues.next_msn
        self.low_latency = low_latency
        self.part_target = part_target
        self.renditions: dict[str, RenditionWindow] = {}
        self.ended = False
        self._ready_waiters: list[asyncio.Future[None]] = []
        self._observer: SegmentObserver | None = None
        # Media playlists with their siblings' reports, by (rendition, its own text), until
        # any rendition changes: every player a new part wakes asks for the same one.
        self._texts: dict[tuple[str, int], tuple[str, str]] = {}
        self._captions = False
        self._caption_channels: frozenset[str] = frozenset()
        self.version = 0
        """Counts the changes of the renditions (their media, their playlists) and of the
        ladder: what was decided from this presentation at one version still holds while
        the version is the same (the origin's fast path keeps answers by it)."""

    @property
    def captions(self) -> bool:
        """The source's pictures carry CEA-608 captions, which every encoded rendition
        keeps: the multivariant playlist offers them (from when they were found on)."""
        return self._captions

    @property
    def caption_channels(self) -> frozenset[str]:
        """The CEA-608 channels found ("CC1" to "CC4"); CC1 is offered whenever `captions`
        is, the others once found."""
        return self._caption_channels

    def offer_captions(self, channels: Collection[str] = ()) -> None:
        """The pictures carry captions (on these channels: "CC1" to "CC4"); more channels
        than before are offered from now on, none is taken back."""
        wanted = self._caption_channels | frozenset(channels)
        if not self._captions or wanted != self._caption_channels:
            self._captions = True
            self._caption_channels = wanted
            if self._observer is not None:
                self._observer.captions_found(wanted)
            self._wake()

    @property
    def observer(self) -> SegmentObserver | None:
        """Who records this presentation (the origin's DVR store finds its media there)."""
        return self._observer

    def observe(self, observer: SegmentObserver) -> None:
        """Tell `observer` of every init and completed segment from now on, and of the end."""
        self._observer = observer
        for window in self.renditions.values():
            window.segment_listener = observer.segment_completed
            if window.init is not None:
                observer.init_segment(_info(window), window.init_generation, window.init)

    def add_rendition(
        self, name: str, *, bandwidth: int, average_bandwidth: int, frame_rate: float,
        estimated_bandwidth: bool = False,
    ) -> RenditionWindow:
        """A new rendition window (replacing, and ending, one of the same name); see
        `RenditionWindow` for the bandwidths."""
        old = self.renditions.pop(name, None)
        if old is not None:
            old.end()
        # Renditions share segment numbers (players switch by msn); a late one joins at
        # the siblings' next segment.
        first_msn = max(
            [self.first_msn, *(w.last_msn + 1 for w in self.renditions.values())]
            + ([old.last_msn + 1] if old is not None else [])
        )
        window = RenditionWindow(
            name,
            part_target=self.part_target,
            low_latency=self.low_latency,
            bandwidth=bandwidth,
            average_bandwidth=average_bandwidth,
            frame_rate=frame_rate,
            first_msn=first_msn,
            dvr_window=self.dvr_window,
            # Only windows that start with the presentation take up the other node's
            # timeline; a later one joins its siblings' segments as it would anyway.
            after_discontinuities=(self.continues.discontinuity_sequence
                                   if self.continues is not None
                                   and first_msn == self.first_msn else None),
            after_date=self.continues.date if self.continues is not None else None,
            min_segment=self.min_segment,
            estimated_bandwidth=estimated_bandwidth,
        )
        window.init_listener = self._on_init
        window.change_listener = self._changed
        if self._observer is not None:
            window.segment_listener = self._observer.segment_completed
        self.renditions[name] = window
        self._changed()
        return window

    def remove_rendition(self, name: str) -> None:
        """Drop a rendition; its blocked clients are released (as if it ended)."""
        window = self.renditions.pop(name, None)
        if window is not None:
            window.init_listener = None
            window.end()
            window.change_listener = None
            self._changed()
            # Without it the ladder may now be complete.
            self._wake()

    def suspend_rendition(self, name: str) -> None:
        """The encoder gave `name` up: its playlist goes on with gaps; new sessions skip it."""
        window = self.renditions.get(name)
        if window is None or window.suspended:
            return
        window.suspend()
        sibling = self._sibling()
        if sibling is not None:
            window.mirror(sibling)

    def resume_rendition(self, name: str) -> None:
        """The encoder produces `name` again: media from its first aligned segment on."""
        window = self.renditions.get(name)
        if window is not None:
            window.resume()

    def add_fragment(self, name: str, fragment: Fragment, *, origin: float | None = None) -> bool:
        """A rendition's next fragment, stamped with the clock's now; False if no such rendition.

        `origin` (Unix seconds): when the input for the encoder run's media time 0 reached
        ingest; the renditions' program dates are that plus media time (see
        `RenditionWindow.add_fragment`)."""
        window = self.renditions.get(name)
        if window is None:
            return False
        was_suspended = window.suspended
        window.add_fragment(fragment, datetime.fromtimestamp(self._clock(), UTC), origin)
        if was_suspended and not window.suspended:
            self._wake()  # back in the multivariant playlist
        if not window.suspended and window is self._sibling():
            for other in self.renditions.values():
                if other.suspended:
                    other.mirror(window)
        return True

    def _sibling(self) -> RenditionWindow | None:
        """The rendition suspended ones follow: the last one producing media, the lowest
        of the ladder, which the encoder finishes first."""
        producing = [w for w in self.renditions.values() if not w.suspended and not w.ended]
        return producing[-1] if producing else None

    def sequence(self) -> tuple[int, int, float | None]:
        """(newest msn, discontinuity sequence, where the newest media ends on the wall
        clock) over the renditions: what a node taking this broadcast over continues."""
        windows = list(self.renditions.values())
        msn = max((w.last_msn for w in windows), default=self.first_msn - 1)
        dates = [d for w in windows if (d := w.date_end()) is not None]
        return (msn, max((w.discontinuity_sequence for w in windows), default=0),
                max(dates) if dates else None)

    def segment_date(self) -> float | None:
        """Where the newest segment starts on the wall clock, the earliest over the
        renditions (one that lags has its newest segment earlier): what a node taking this
        broadcast over dates its first segment (`Continuation.date_start`)."""
        dates = [d for w in self.renditions.values() if (d := w.date_start()) is not None]
        return min(dates) if dates else None

    def mark_discontinuity(self) -> None:
        """An encoder restart: every rendition's next segment starts a new timeline, at
        the same msn. A rendition that produced less than its siblings in the run that
        ended (a starved top rung may produce nothing between two restarts) lists the
        numbers it missed as gaps, so all number the next run alike."""
        windows = [w for w in self.renditions.values() if not w.ended]
        for window in windows:
            window.mark_discontinuity()
        until = max((w.next_msn for w in windows), default=self.first_msn)
        for window in windows:
            if window.next_msn < until and not window.suspended:
                holders = [w for w in windows
                           if w is not window and w.last_msn == until - 1 and w.oldest_msn is not None]
                # The one holding the most of the missed numbers, best one producing media.
                source = min(holders, key=lambda w: (w.suspended, w.oldest_msn or 0),
                             default=None)
                window.catch_up(source, until)

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        for window in self.renditions.values():
            window.end()
        self._wake()
        if self._observer is not None:
            self._observer.presentation_ended()

    def multivariant_playlist(self) -> str | None:
        """The multivariant playlist, highest bandwidth first; None until an init is known."""
        ready = [w for w in self.renditions.values() if w.init is not None]
        if not ready:
            return None
        if any(not w.suspended for w in ready):
            ready = [w for w in ready if not w.suspended]
        lines = [
            "#EXTM3U",
            f"#EXT-X-VERSION:{9 if self.low_latency else 7}",
            "#EXT-X-INDEPENDENT-SEGMENTS",
        ]
        captions = self._captions and any(w.init.video is not None for w in ready if w.init)
        if captions:
            lines.extend(captions_media(self._caption_channels))
        for window in sorted(ready, key=lambda w: (-w.bandwidth, w.name)):
            assert window.init is not None
            video = window.init.video
            lines.extend(stream_inf(
                uri=f"{self.playback_id}/{window.name}.m3u8",
                bandwidth=window.bandwidth,
                average_bandwidth=window.average_bandwidth,
                codecs=window.init.codecs,
                resolution=(video.width or 0, video.height or 0) if video is not None else None,
                frame_rate=window.frame_rate,
                captions=captions,
            ))
        return "\n".join(lines) + "\n"

    def rendition_reports(self, exclude: str) -> str:
        """EXT-X-RENDITION-REPORT lines for every sibling of `exclude` that has media."""
        lines = []
        for name, window in self.renditions.items():
            if name == exclude or window.last_msn < 0:
                continue
            report = f'#EXT-X-RENDITION-REPORT:URI="{name}.m3u8",LAST-MSN={window.last_msn}'
            if self.low_latency:
                report += f",LAST-PART={window.last_part}"
            lines.append(report)
        return "".join(line + "\n" for line in lines)

    @property
    def audio_only(self) -> bool:
        """Sound alone: the renditions that have their init carry no video."""
        inits = [w.init for w in self.renditions.values() if w.init is not None]
        return bool(inits) and all(init.video is None for init in inits)

    @property
    def complete(self) -> bool:
        """Every rendition of the planned ladder has its init, so the multivariant lists all."""
        return bool(self.renditions) and all(w.init is not None for w in self.renditions.values())

    async def wait_complete(self) -> None:
        """Return once every rendition has its init or the presentation has ended.

        Renditions are added for the whole planned ladder before the encoder starts, and
        their inits arrive some milliseconds apart: a multivariant playlist written in
        between lists only the first, and a player or an edge that loads it never learns
        the rest of the ladder.
        """
        while not (self.ended or self.complete):
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._ready_waiters.append(future)
            try:
                await future
            finally:
                if future in self._ready_waiters:
                    self._ready_waiters.remove(future)

    def media_playlist(
        self, name: str, *, skip: bool = False, client_has: int | None = None
    ) -> str | None:
        """A rendition's media playlist plus its siblings' reports (low latency only);
        `skip` and `client_has` as for `RenditionWindow.playlist`."""
        window = self.renditions.get(name)
        if window is None or window.init is None:
            return None
        text = window.playlist(skip=skip, client_has=client_has)
        if not self.low_latency or window.ended:
            return text
        # The same object for every asker while nothing changes: the origin's answers are
        # keyed by it, and a str keeps its hash.
        key = (name, id(text))
        kept = self._texts.get(key)
        if kept is not None and kept[0] is text:
            return kept[1]
        full = text + self.rendition_reports(exclude=name)
        self._texts[key] = (text, full)
        return full

    def _on_init(self, window: RenditionWindow) -> None:
        if self.renditions.get(window.name) is window:
            if self._observer is not None and window.init is not None:
                self._observer.init_segment(_info(window), window.init_generation, window.init)
            self._wake()

    def _changed(self) -> None:
        """A rendition changed, or the ladder did."""
        self.version += 1
        self._texts.clear()

    def _wake(self) -> None:
        self.version += 1  # the ladder (its inits, its suspended rungs) or its end
        waiters, self._ready_waiters = self._ready_waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)


def _info(window: RenditionWindow) -> RenditionInfo:
    return RenditionInfo(
        name=window.name,
        bandwidth=window.bandwidth,
        average_bandwidth=window.average_bandwidth,
        frame_rate=window.frame_rate,
    )
