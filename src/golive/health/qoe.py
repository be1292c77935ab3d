"""Viewer experience (QoE): per-view and per-stream numbers from the players' beacons.

The players report `start`, `first_frame`, `stall`, `pause`, `quality`, `error` and
`latency` events (`golive.web.qoe` validates and stores them). This module turns the events of a
time window into Mux Data's metrics, with Mux's definitions:

- *Playback failure percentage*: views that ended in a fatal error (a fatal error after
  which the view shows no more playback), over all views.
- *Exits before video start*: views that never showed a frame and did not fail (the
  viewer gave up waiting), over all views.
- *Video startup time*: from the player asking for the stream to the first frame, over
  the views that started; p50 and p95.
- *Rebuffer percentage*: time spent rebuffering over watch time; *rebuffer frequency*:
  rebuffers per minute of watch time; *rebuffer duration*: rebuffering seconds per view
  (mean over the views that started). Watch time is Mux's: from the view's play request
  to its last report, startup and rebuffering included, the time the viewer had paused
  (`pause` events, reported when the pause ends) left out, clipped to the window.
- *Live stream latency*: the players' samples of how far behind the live edge the
  picture is (from EXT-X-PROGRAM-DATE-TIME for HLS); p50 and p95 over all samples.
- *Rendition time share and switches*: watch time spent on each rendition (from the
  `quality` events, after the `start` event's rendition), and the number of switches.
- *Viewer experience score* (0-100): golive's version of Mux's score, the mean over
  views of playback success (100 played, 50 exited before start, 0 failed) times a
  startup score (1 at <= 1 s falling linearly to 0 at 10 s) times a smoothness score
  (1 without rebuffering falling linearly to 0 at 10 % rebuffering). Mux also folds in
  a video quality score from upscaling, which the beacons cannot measure.

Groups (`group_by`): protocol (hls, whep), browser and OS (from the user agent),
player (hls.js, native, whep) and rendition (the one a view watched longest).

`compute` is pure and synchronous; `stream_qoe` reads the store and runs it in a thread,
so a large window never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import itertools
import logging
import math
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar, get_args, runtime_checkable

from golive.core import PeriodicSweep
from golive.store import PlaybackEventRecord, PlaybackViewRecord, PlaybackViewStore

GroupBy = Literal["protocol", "browser", "os", "player", "rendition"]
GROUP_BY: tuple[GroupBy, ...] = get_args(GroupBy)
# Events that show the view was playing: after one of them a fatal error was recovered.
_PLAYING = frozenset({"start", "first_frame", "stall", "latency", "pause"})
# The events before a window that a view's state in it depends on (the frequent samples,
# latency and stall, are read only inside the window).
STATE_EVENTS = ("start", "first_frame", "quality", "error")
_STATE = frozenset(STATE_EVENTS)
log = logging.getLogger(__name__)
T = TypeVar("T")
STARTUP_GOOD_S = 1.0
STARTUP_BAD_S = 10.0
REBUFFER_BAD_PERCENTAGE = 10.0


@dataclass(frozen=True, slots=True)
class ViewQoe:
    """One view's experience within the window."""

    view_id: str
    protocol: str
    player: str
    browser: str
    os: str
    started: bool
    failed: bool
    exited_before_start: bool
    startup_time_s: float | None
    watch_time_s: float
    rebuffer_count: int
    rebuffer_s: float
    latency_samples_s: tuple[float, ...]
    rendition_s: dict[str, float]
    rendition_switches: int
    score: float
    # The codes of the fatal errors reported inside the window (for the alert engine's
    # diagnosis); not part of a stored summary, whose view has no events left to count.
    fatal_codes: tuple[str, ...] = ()

    @property
    def rendition(self) -> str:
        """The rendition watched longest ("unknown" when the player named none)."""
        if not self.rendition_s:
            return "unknown"
        return max(sorted(self.rendition_s), key=lambda name: self.rendition_s[name])

    def dimension(self, name: GroupBy) -> str:
        return self.rendition if name == "rendition" else str(getattr(self, name))

    def to_summary(self) -> dict[str, Any]:
        """The view as the retention task stores it (JSON) once its raw events go."""
        out = {name: getattr(self, name) for name in self.__slots__
               if name != "fatal_codes"}
        out["latency_samples_s"] = list(self.latency_samples_s)
        return out

    @classmethod
    def from_summary(cls, view_id: str, data: dict[str, Any]) -> ViewQoe:
        """A stored summary back; fields a hostile or old row lacks read as empty."""
        def number(name: str) -> float:
            value = data.get(name)
            return float(value) if isinstance(value, (int, float)) else 0.0

        startup = data.get("startup_time_s")
        samples = data.get("latency_samples_s")
        renditions = data.get("rendition_s")
        return cls(
            view_id=view_id,
            protocol=str(data.get("protocol", "hls")), player=str(data.get("player", "hls.js")),
            browser=str(data.get("browser", "other")), os=str(data.get("os", "other")),
            started=data.get("started") is True, failed=data.get("failed") is True,
            exited_before_start=data.get("exited_before_start") is True,
            startup_time_s=float(startup) if isinstance(startup, (int, float)) else None,
            watch_time_s=number("watch_time_s"), rebuffer_count=int(number("rebuffer_count")),
            rebuffer_s=number("rebuffer_s"),
            latency_samples_s=tuple(float(x) for x in samples
                                    if isinstance(x, (int, float))
                                    ) if isinstance(samples, list) else (),
            rendition_s={str(k): float(v) for k, v in renditions.items()
                         if isinstance(v, (int, float))} if isinstance(renditions, dict) else {},
            rendition_switches=int(number("rendition_switches")), score=number("score"),
        )


@dataclass(frozen=True, slots=True)
class QoeSummary:
    """Mux-style metrics over a set of views. Percentages are 0-100; None where no view
    gave the number (no view started, no latency sample)."""

    views: int
    started_views: int
    failed_views: int
    playback_failure_percentage: float | None
    exits_before_video_start_percentage: float | None
    startup_time_p50_s: float | None
    startup_time_p95_s: float | None
    watch_time_s: float
    rebuffer_percentage: float | None
    rebuffer_frequency_per_minute: float | None
    rebuffer_duration_s: float | None
    rebuffer_count: int
    live_latency_p50_s: float | None
    live_latency_p95_s: float | None
    rendition_time_share: dict[str, float] = field(default_factory=dict)
    rendition_switches: int = 0
    viewer_experience_score: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0-100) of `values`; None when empty."""
    return _ranked(sorted(values), p)


def _ranked(ordered: Sequence[float], p: float) -> float | None:
    """`percentile` of values already sorted."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


_BROWSERS = tuple((re.compile(pattern), name) for pattern, name in (
    (r"Edg/", "edge"), (r"OPR/|Opera", "opera"), (r"Firefox/", "firefox"),
    (r"HeadlessChrome/|Chrome/|CriOS/", "chrome"), (r"Safari/", "safari")))
_SYSTEMS = tuple((re.compile(pattern), name) for pattern, name in (
    (r"Android", "android"), (r"iPhone|iPad|iPod", "ios"), (r"Windows", "windows"),
    (r"Mac OS X|Macintosh", "macos"), (r"CrOS", "chromeos"), (r"Linux", "linux")))


# A window names each view's browser and OS from its user agent; an audience has few
# distinct ones (stored ones are at most 300 characters), so the answers are kept.
@functools.lru_cache(maxsize=4096)
def browser_of(user_agent: str) -> str:
    for pattern, name in _BROWSERS:
        if pattern.search(user_agent):
            return name
    return "other"


@functools.lru_cache(maxsize=4096)
def os_of(user_agent: str) -> str:
    for pattern, name in _SYSTEMS:
        if pattern.search(user_agent):
            return name
    return "other"


def _seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def _rendition_name(data: dict[str, object]) -> str:
    height = data.get("height")
    if isinstance(height, int) and height > 0:
        return f"{height}p"
    level = data.get("level")
    return f"level{level}" if isinstance(level, int) else "unknown"


def _clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))


def view_qoe(view: PlaybackViewRecord, events: Sequence[PlaybackEventRecord],
             start: datetime, end: datetime) -> ViewQoe:
    """One view's numbers in [start, end), from its events before `end` (stored order).

    Events before the window only set the view's state (started, failed, rendition,
    when it asked for the stream); samples, rebuffers and startup count inside it.

    A view whose raw events the retention task pruned comes back from its summary,
    whole: its numbers are no longer clipped to the window."""
    if view.summary is not None and not events:
        return ViewQoe.from_summary(view.id, view.summary)
    ordered = sorted((e for e in events if e.at < end), key=lambda e: (e.at, e.id))
    protocol, player = "hls", "hls.js"
    startup: float | None = None
    began: datetime | None = None
    failed = False
    rebuffers: list[float] = []
    paused: list[tuple[datetime, float]] = []  # (when the pause ended, its seconds)
    latency: list[float] = []
    renditions: list[tuple[datetime, str]] = []
    fatal_codes: list[str] = []
    started = False
    for event in ordered:
        data = event.data
        inside = start <= event.at < end
        if event.type == "start":
            protocol = str(data.get("protocol") or protocol)
            native = bool(data.get("native"))
            player = str(data.get("player") or ("native" if native else player))
            rendition = data.get("rendition")
            if isinstance(rendition, str) and rendition and not renditions:
                renditions.append((event.at, rendition))
        elif event.type == "first_frame" and began is None:
            ms = data.get("ms")
            if isinstance(ms, (int, float)):
                began = event.at - timedelta(seconds=float(ms) / 1000)
                startup = float(ms) / 1000 if inside else None
        elif event.type in ("stall", "pause") and inside:
            ms = data.get("ms")
            if isinstance(ms, (int, float)):
                if event.type == "stall":
                    rebuffers.append(float(ms) / 1000)
                else:
                    paused.append((event.at, float(ms) / 1000))
        elif event.type == "latency" and inside:
            seconds = data.get("seconds")
            if isinstance(seconds, (int, float)):
                latency.append(float(seconds))
        elif event.type == "quality":
            name = _rendition_name(data)
            if not renditions or renditions[-1][1] != name:
                renditions.append((event.at, name))
        if event.type == "error" and data.get("fatal") is True:
            failed = True
            if inside:
                fatal_codes.append(str(data.get("code", "")))
        elif event.type in _PLAYING:
            failed, started = False, True
    # A view that played and later failed for good still failed (Mux: "ended in a fatal
    # error"); `failed` is already the state after the last event.
    exited = not started and not failed
    first = began if began is not None else (ordered[0].at if ordered else view.started_at)
    last = max([view.last_seen_at, *(e.at for e in ordered)])
    return _finish(view, start, end, protocol=protocol, player=player, startup=startup,
                   started=started, failed=failed, exited=exited, first=first, last=last,
                   rebuffers=rebuffers, paused=paused, latency=latency,
                   renditions=renditions, fatal_codes=fatal_codes)


def _finish(view: PlaybackViewRecord, start: datetime, end: datetime, *, protocol: str,
            player: str, startup: float | None, started: bool, failed: bool, exited: bool,
            first: datetime, last: datetime, rebuffers: Sequence[float],
            paused: Sequence[tuple[datetime, float]], latency: Sequence[float],
            renditions: Sequence[tuple[datetime, str]], fatal_codes: Sequence[str]) -> ViewQoe:
    """A view's numbers from what its events said (`view_qoe`, `ViewEvents.qoe`).

    `paused` holds the viewer's pauses reported inside the window: when each ended (it
    is reported then) and how long it lasted."""
    # Paused time is no watch time: each pause's interval, as far as it lies in what the
    # window saw of the view (a pause that began before the window takes away only its
    # part inside), as for each rendition's time below.
    watch = _unpaused(max(first, start), min(last, end), paused)
    # Rebuffering is part of watch time: a stall reported inside the window that began
    # before it (or before the reported start) cannot count for more than the window saw.
    rebuffer_s = min(sum(rebuffers), watch)
    rendition_s: dict[str, float] = {}
    for index, (at, name) in enumerate(renditions if started else []):
        until = renditions[index + 1][0] if index + 1 < len(renditions) else min(last, end)
        rendition_s[name] = rendition_s.get(name, 0.0) + _unpaused(max(at, start), until, paused)
    if failed:
        score = 0.0
    elif exited:
        score = 50.0
    else:
        startup_score = 1.0 if startup is None else _clamp01(
            (STARTUP_BAD_S - startup) / (STARTUP_BAD_S - STARTUP_GOOD_S))
        rebuffer_pct = 100 * rebuffer_s / watch if watch > 0 else 0.0
        smooth = _clamp01(1 - rebuffer_pct / REBUFFER_BAD_PERCENTAGE)
        score = 100 * startup_score * smooth
    return ViewQoe(
        view_id=view.id, protocol=protocol, player=player,
        browser=browser_of(view.user_agent), os=os_of(view.user_agent),
        started=started, failed=failed, exited_before_start=exited, startup_time_s=startup,
        watch_time_s=watch, rebuffer_count=len(rebuffers), rebuffer_s=rebuffer_s,
        latency_samples_s=tuple(latency), rendition_s=rendition_s,
        rendition_switches=max(0, len(renditions) - 1), score=score,
        fatal_codes=tuple(fatal_codes),
    )


def _unpaused(begin: datetime, until: datetime,
              paused: Sequence[tuple[datetime, float]]) -> float:
    """Seconds in [begin, until) the viewer did not spend paused (watch time, and each
    rendition's: the picture held on a paused rendition is not time watched on it)."""
    total = _seconds(begin, until)
    if total <= 0:
        return 0.0
    for ended, seconds in paused:
        began = ended - timedelta(seconds=seconds)
        total -= max(0.0, _seconds(max(began, begin), min(ended, until)))
    return max(0.0, total)


class ViewEvents:
    """One view's held events, indexed so that its numbers for a window cost
    O(log n + the window's samples) instead of a pass over every event.

    `qoe(view, start, end)` answers exactly what `view_qoe` answers for the events a
    window reads (`PlaybackViewStore.window` with `earlier_types=STATE_EVENTS`: the
    state events before `end`, every other event inside [start, end)). State events
    (few: start, first_frame, quality, error) are kept in order and replayed; the others
    (latency samples, stalls, the rest) are kept as sorted keys with their values, and a
    window takes its slice by bisection. `add` keeps them sorted by (time, id), the
    stored order; `drop_before` forgets non-state events older than a time, as
    `RecentViews` does past its horizon. Not thread-safe: the holder serializes."""

    __slots__ = ("_keys", "_latency", "_latency_keys", "_pause", "_pause_keys", "_playing",
                 "_stall", "_stall_keys", "_state")

    def __init__(self, events: Iterable[PlaybackEventRecord] = ()) -> None:
        self._state: list[tuple[datetime, int, PlaybackEventRecord]] = []
        self._keys: list[tuple[datetime, int]] = []  # every non-state event
        self._playing: list[tuple[datetime, int]] = []  # non-state events of _PLAYING
        self._latency_keys: list[tuple[datetime, int]] = []
        self._latency: list[float] = []
        self._stall_keys: list[tuple[datetime, int]] = []
        self._stall: list[float] = []
        self._pause_keys: list[tuple[datetime, int]] = []
        self._pause: list[float] = []
        for event in events:
            self.add(event)

    def __len__(self) -> int:
        return len(self._state) + len(self._keys)

    def add(self, event: PlaybackEventRecord) -> None:
        key = (event.at, event.id)
        if event.type in _STATE:
            bisect.insort(self._state, (event.at, event.id, event), key=lambda x: x[:2])
            return
        _insert(self._keys, key)
        if event.type in _PLAYING:
            _insert(self._playing, key)
        data = event.data
        if event.type == "latency":
            seconds = data.get("seconds")
            if isinstance(seconds, (int, float)):
                index = _insert(self._latency_keys, key)
                self._latency.insert(index, float(seconds))
        elif event.type in ("stall", "pause"):
            ms = data.get("ms")
            if isinstance(ms, (int, float)):
                keys, values = ((self._stall_keys, self._stall) if event.type == "stall"
                                else (self._pause_keys, self._pause))
                values.insert(_insert(keys, key), float(ms) / 1000)

    def drop_before(self, at: datetime) -> None:
        """Forget the non-state events before `at` (state events stay)."""
        for keys, values in ((self._keys, None), (self._playing, None),
                             (self._latency_keys, self._latency),
                             (self._stall_keys, self._stall),
                             (self._pause_keys, self._pause)):
            index = bisect.bisect_left(keys, (at,))
            if index:
                del keys[:index]
                if values is not None:
                    del values[:index]

    def qoe(self, view: PlaybackViewRecord, start: datetime, end: datetime) -> ViewQoe:
        """`view_qoe(view, <the window's events>, start, end)`, from the index."""
        low, high = (start,), (end,)
        state = self._state  # usually every state event is before the window's end
        if state and state[-1][0] >= end:
            state = state[:bisect.bisect_left(state, high, key=lambda x: x[:1])]
        first_key, last_key = bisect.bisect_left(self._keys, low), \
            bisect.bisect_left(self._keys, high)
        if view.summary is not None and not state and first_key == last_key:
            return ViewQoe.from_summary(view.id, view.summary)
        protocol, player = "hls", "hls.js"
        startup: float | None = None
        began: datetime | None = None
        renditions: list[tuple[datetime, str]] = []
        last_fatal: tuple[datetime, int] | None = None
        last_playing: tuple[datetime, int] | None = None
        fatal_codes: list[str] = []
        for at, event_id, event in state:
            data = event.data
            if event.type == "start":
                protocol = str(data.get("protocol") or protocol)
                native = bool(data.get("native"))
                player = str(data.get("player") or ("native" if native else player))
                rendition = data.get("rendition")
                if isinstance(rendition, str) and rendition and not renditions:
                    renditions.append((at, rendition))
            elif event.type == "first_frame" and began is None:
                ms = data.get("ms")
                if isinstance(ms, (int, float)):
                    began = at - timedelta(seconds=float(ms) / 1000)
                    startup = float(ms) / 1000 if start <= at < end else None
            elif event.type == "quality":
                name = _rendition_name(data)
                if not renditions or renditions[-1][1] != name:
                    renditions.append((at, name))
            if event.type == "error" and data.get("fatal") is True:
                last_fatal = (at, event_id)
                if at >= start:
                    fatal_codes.append(str(data.get("code", "")))
            elif event.type in _PLAYING:
                last_playing = (at, event_id)
        playing_low = bisect.bisect_left(self._playing, low)
        playing_high = bisect.bisect_left(self._playing, high)
        if playing_high > playing_low:
            inside = self._playing[playing_high - 1]
            last_playing = inside if last_playing is None else max(last_playing, inside)
        started = last_playing is not None
        failed = last_fatal is not None and (last_playing is None or last_fatal > last_playing)
        rebuffers = self._stall[bisect.bisect_left(self._stall_keys, low):
                                bisect.bisect_left(self._stall_keys, high)]
        pause_low = bisect.bisect_left(self._pause_keys, low)
        pause_high = bisect.bisect_left(self._pause_keys, high)
        paused = [(key[0], seconds) for key, seconds in
                  zip(self._pause_keys[pause_low:pause_high], self._pause[pause_low:pause_high],
                      strict=True)]
        latency = self._latency[bisect.bisect_left(self._latency_keys, low):
                                bisect.bisect_left(self._latency_keys, high)]
        earliest = [k[0] for k in (state[0][:2] if state else None,
                                   self._keys[first_key] if first_key < last_key else None)
                    if k is not None]
        latest = [k[0] for k in (state[-1][:2] if state else None,
                                 self._keys[last_key - 1] if first_key < last_key else None)
                  if k is not None]
        exited = not started and not failed
        first = began if began is not None else (min(earliest) if earliest
                                                 else view.started_at)
        last = max([view.last_seen_at, *latest])
        return _finish(view, start, end, protocol=protocol, player=player, startup=startup,
                       started=started, failed=failed, exited=exited, first=first, last=last,
                       rebuffers=rebuffers, paused=paused, latency=latency,
                       renditions=renditions, fatal_codes=fatal_codes)


def _insert(keys: list[tuple[datetime, int]], key: tuple[datetime, int]) -> int:
    """Insert `key` in order (usually at the end: beacons arrive in order); its index."""
    if not keys or keys[-1] < key:
        keys.append(key)
        return len(keys) - 1
    index = bisect.bisect_left(keys, key)
    keys.insert(index, key)
    return index


def summarize(views: Iterable[ViewQoe]) -> QoeSummary:
    """The Mux-style metrics over `views` (see the module docstring)."""
    views = list(views)
    count = len(views)
    started = [v for v in views if v.started]
    failed = sum(v.failed for v in views)
    exited = sum(v.exited_before_start for v in views)
    startups = sorted(v.startup_time_s for v in started if v.startup_time_s is not None)
    watch = sum(v.watch_time_s for v in views)
    rebuffer_s = sum(v.rebuffer_s for v in views)
    rebuffers = sum(v.rebuffer_count for v in views)
    latency = sorted(itertools.chain.from_iterable(v.latency_samples_s for v in views))
    rendition_total: dict[str, float] = {}
    for v in views:
        for name, seconds in v.rendition_s.items():
            rendition_total[name] = rendition_total.get(name, 0.0) + seconds
    shown = sum(rendition_total.values())
    return QoeSummary(
        views=count,
        started_views=len(started),
        failed_views=failed,
        playback_failure_percentage=100 * failed / count if count else None,
        exits_before_video_start_percentage=100 * exited / count if count else None,
        startup_time_p50_s=_ranked(startups, 50),
        startup_time_p95_s=_ranked(startups, 95),
        watch_time_s=watch,
        rebuffer_percentage=100 * rebuffer_s / watch if watch > 0 else None,
        rebuffer_frequency_per_minute=rebuffers / (watch / 60) if watch > 0 else None,
        rebuffer_duration_s=(sum(v.rebuffer_s for v in started) / len(started)
                             if started else None),
        rebuffer_count=rebuffers,
        live_latency_p50_s=_ranked(latency, 50),
        live_latency_p95_s=_ranked(latency, 95),
        rendition_time_share=({name: seconds / shown
                               for name, seconds in sorted(rendition_total.items())}
                              if shown > 0 else {}),
        rendition_switches=sum(v.rendition_switches for v in views),
        viewer_experience_score=sum(v.score for v in views) / count if count else None,
    )


@dataclass(frozen=True, slots=True)
class QoeReport:
    """A window's summary, its groups when asked for, and the views it read."""

    start: datetime
    end: datetime
    summary: QoeSummary
    group_by: GroupBy | None = None
    groups: dict[str, QoeSummary] = field(default_factory=dict)
    truncated: bool = False  # the window held more views than one query reads


def compute(rows: Sequence[tuple[PlaybackViewRecord, Sequence[PlaybackEventRecord]]],
            start: datetime, end: datetime, *, group_by: GroupBy | None = None,
            truncated: bool = False) -> QoeReport:
    return _report(_each_view(rows, start, end), start, end, group_by=group_by,
                   truncated=truncated)


def _report(views: Sequence[ViewQoe], start: datetime, end: datetime, *,
            group_by: GroupBy | None, truncated: bool) -> QoeReport:
    groups: dict[str, list[ViewQoe]] = {}
    if group_by is not None:
        for v in views:
            groups.setdefault(v.dimension(group_by), []).append(v)
    return QoeReport(start=start, end=end, summary=summarize(views), group_by=group_by,
                     groups={k: summarize(g) for k, g in sorted(groups.items())},
                     truncated=truncated)


# Windows of at most this many views are computed on the event loop (~12 us a view:
# 2.4 ms at most); larger ones in a thread, so that no window stalls the loop for long.
# A thread for a small one costs more than the work: the hand-over, and the event loop
# and the thread taking the GIL from each other while it runs.
INLINE_VIEWS = 200


async def off_loop(views: int, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` for a window of `views` views: inline when it is small
    (`INLINE_VIEWS`), in a thread otherwise."""
    if views <= INLINE_VIEWS:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)


class ViewWindows(Protocol):
    """Where a window's views and events come from: `PlaybackViewStore` itself, or
    `RecentViews` in front of it for recent windows (same answers)."""

    async def window(self, stream_id: str, start: datetime, end: datetime, *,
                     earlier_types: Collection[str] = (), max_views: int = 20_000,
                     ) -> list[tuple[PlaybackViewRecord, list[PlaybackEventRecord]]]: ...


@runtime_checkable
class IndexedViewWindows(ViewWindows, Protocol):
    """A `ViewWindows` that computes each view's numbers itself (`RecentViews`): None
    when it does not hold that window."""

    async def window_qoe(self, stream_id: str, start: datetime, end: datetime, *,
                         max_views: int = 20_000) -> list[ViewQoe] | None: ...


async def window_views_qoe(views: ViewWindows, stream_id: str, start: datetime,
                           end: datetime, *, max_views: int = 20_000) -> list[ViewQoe]:
    """Each view's numbers in a stream's window [start, end) (at most `max_views`, the
    most recent). A source that holds its views indexed (`IndexedViewWindows`) answers
    them itself; from the others the window's events are read and replayed (a large
    window in a thread, `off_loop`)."""
    if isinstance(views, IndexedViewWindows):
        each = await views.window_qoe(stream_id, start, end, max_views=max_views)
        if each is not None:
            return each
    rows = await views.window(stream_id, start, end, earlier_types=STATE_EVENTS,
                              max_views=max_views)
    return await off_loop(len(rows), _each_view, rows, start, end)


def _each_view(rows: Sequence[tuple[PlaybackViewRecord, Sequence[PlaybackEventRecord]]],
               start: datetime, end: datetime) -> list[ViewQoe]:
    return [view_qoe(view, events, start, end) for view, events in rows]


async def qoe_report(views: ViewWindows, stream_id: str, start: datetime,
                     end: datetime, *, group_by: GroupBy | None = None,
                     max_views: int = 20_000) -> QoeReport:
    """The QoE of a stream's views over [start, end) (`window_views_qoe`); a large
    window is summarized in a thread (`off_loop`)."""
    each = await window_views_qoe(views, stream_id, start, end, max_views=max_views)
    return await off_loop(len(each), _report, each, start, end, group_by=group_by,
                          truncated=len(each) >= max_views)


class QoeReports:
    """`golive.api.QoeSource` over a view store: a window's report as plain data."""

    def __init__(self, views: ViewWindows) -> None:
        self._views = views

    async def report(self, stream_id: str, start: datetime, end: datetime,
                     group_by: GroupBy | None) -> dict[str, object]:
        found = await qoe_report(self._views, stream_id, start, end, group_by=group_by)
        return {"start": found.start, "end": found.end, "group_by": found.group_by,
                "truncated": found.truncated, "summary": found.summary.as_dict(),
                "groups": {k: v.as_dict() for k, v in found.groups.items()}}


async def stream_qoe(views: ViewWindows, stream_id: str, since: datetime,
                     now: datetime) -> QoeSummary:
    """The QoE of a stream since `since` (for the alert rules: startup p95, rebuffer %,
    latency p95, failure %)."""
    return (await qoe_report(views, stream_id, since, now)).summary


# Service level objectives ------------------------------------------------------------------


class SloTargets(Protocol):
    """The viewer-side SLOs of a stream's profile (`StreamProfile.slo`, its `[slo]` table)."""

    @property
    def startup_p95_seconds(self) -> float: ...
    @property
    def rebuffer_percentage(self) -> float: ...
    @property
    def latency_p95_seconds(self) -> float: ...
    @property
    def playback_failure_percentage(self) -> float: ...


@dataclass(frozen=True, slots=True)
class SloResult:
    """One objective against what the viewers got; `met` is None without data."""

    metric: str  # the QoeSummary field measured
    value: float | None
    target: float
    unit: str

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value <= self.target


def slo_results(summary: QoeSummary, slo: SloTargets) -> list[SloResult]:
    """The profile's viewer SLOs judged on `summary` (for alert rules and reports)."""
    return [
        SloResult("startup_time_p95_s", summary.startup_time_p95_s, slo.startup_p95_seconds,
                  "s"),
        SloResult("rebuffer_percentage", summary.rebuffer_percentage, slo.rebuffer_percentage,
                  "%"),
        SloResult("live_latency_p95_s", summary.live_latency_p95_s, slo.latency_p95_seconds,
                  "s"),
        SloResult("playback_failure_percentage", summary.playback_failure_percentage,
                  slo.playback_failure_percentage, "%"),
    ]


# Retention ---------------------------------------------------------------------------------

# Latency samples kept in a view's summary: enough for its percentiles to stay close.
SUMMARY_LATENCY_SAMPLES = 200


def _thinned(samples: tuple[float, ...], keep: int) -> tuple[float, ...]:
    """At most `keep` samples spread evenly over the sorted ones (the percentiles stay)."""
    if len(samples) <= keep:
        return samples
    ordered = sorted(samples)
    step = (len(ordered) - 1) / (keep - 1)
    return tuple(ordered[round(i * step)] for i in range(keep))


def view_summary(view: PlaybackViewRecord, events: Sequence[PlaybackEventRecord]
                 ) -> dict[str, Any]:
    """The whole view as one stored summary (its latency samples thinned)."""
    everything = view_qoe(view, events, datetime.min.replace(tzinfo=UTC),
                          datetime.max.replace(tzinfo=UTC))
    summary = everything.to_summary()
    summary["latency_samples_s"] = list(_thinned(everything.latency_samples_s,
                                                 SUMMARY_LATENCY_SAMPLES))
    return summary


def _summaries(rows: Sequence[tuple[PlaybackViewRecord, Sequence[PlaybackEventRecord]]]
               ) -> list[dict[str, Any]]:
    return [view_summary(view, events) for view, events in rows]


class QoeRetention(PeriodicSweep):
    """Downsampling of old beacons: every `interval` seconds, views last seen more than
    `raw_retention` seconds ago get their summary stored and their raw events deleted.
    Summaries are computed in a thread; the database work is async."""

    name = "qoe-retention"
    done = "QoE beacons downsampled views=%d"
    logger = log

    def __init__(self, views: PlaybackViewStore, *, raw_retention: float, interval: float,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 batch: int = 200) -> None:
        if raw_retention <= 0 or interval <= 0:
            raise ValueError("raw_retention and interval must be positive")
        super().__init__(interval=interval)
        self._views = views
        self._retention = timedelta(seconds=raw_retention)
        self._clock = clock
        self._batch = batch
        self.summarized = 0
        self.pruned_events = 0

    async def sweep(self) -> int:
        """Summarize every view past retention now; returns how many were summarized."""
        before = self._clock() - self._retention
        done = 0
        while True:
            rows = await self._views.unsummarized(before, limit=self._batch)
            if not rows:
                return done
            summaries = await asyncio.to_thread(_summaries, rows)
            for (view, _), summary in zip(rows, summaries, strict=True):
                self.pruned_events += await self._views.keep_summary(
                    view.id, summary, last_seen_at=view.last_seen_at)
                done += 1
            self.summarized += len(rows)
            if len(rows) < self._batch:
                return done
