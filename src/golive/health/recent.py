"""The recent beacons of each stream, held in memory and caught up from the store (health).

The alert engine judges every live stream's last two minutes of QoE every 5 s, and each
open studio asks for its stream's last ten minutes every 6 s. Reading those windows
from the database each time re-read the same events over and over: with 100 viewers a
stream, a 10-minute window is ~10^4 events, and reading them was 50x the cost of the
QoE computation itself (bench/health.py). `RecentViews` reads a stream's recent views
once, then on each later ask only the events stored since (`events_after`, by id), and
answers any window inside its horizon from memory with exactly what
`PlaybackViewStore.window` would have answered.

Bounds: a stream's recent views are held at most `horizon` seconds back (older
non-state events are dropped), for at most `max_views` views (more, and that stream is
read from the store each time as before), for at most `max_streams` streams at once
(the one asked for least recently goes first), and a stream not asked for in
`idle_after` seconds is dropped. A window older than the horizon, or ending more than
a minute ago, is read from the store.

Freshness: with `fresh_for` > 0, a window asked for within that many seconds of the
stream's last catch-up is answered from what is held, without reading the store again:
the alert engine (every 5 s) and a studio (every 6 s) asking for the same stream then
share one catch-up a good part of the time, at the price of answers up to `fresh_for`
seconds behind the store (players post their beacons every 10 s).

Ids: events are caught up by id. Where ids commit in order (SQLite:
`PlaybackViewStore.ids_commit_in_order`), each catch-up reads from the highest id held,
so each event is read once. Elsewhere (PostgreSQL hands ids out before commit) it
re-reads from the previous catch-up's highest id, so that an event whose transaction
committed late is still seen, unless its commit came more than one catch-up late.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from golive.health.qoe import STATE_EVENTS, ViewEvents, ViewQoe, off_loop
from golive.store import PlaybackEventRecord, PlaybackViewRecord, PlaybackViewStore

__all__ = ["RecentViews"]

Rows = list[tuple[PlaybackViewRecord, list[PlaybackEventRecord]]]
# Far enough ahead that no stored event is past it (event times are the server's clock).
_FUTURE = timedelta(days=1)
# A window ending this long before now is history: read from the store.
_RECENT_END = timedelta(minutes=1)


@dataclass
class _Stream:
    views: dict[str, PlaybackViewRecord]
    events: dict[str, list[PlaybackEventRecord]]
    indexed: dict[str, ViewEvents]  # the same events, indexed for QoE windows
    ids: set[int]
    high: int  # the highest event id held
    previous_high: int  # the next catch-up re-reads from here
    complete_from: datetime  # every event at or after this is held (state events: all)
    used: float
    caught_up: float  # when the store was last read for it (monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RecentViews:
    """`PlaybackViewStore.window` for recent windows, served from memory (see the module
    docstring); `state_types` are the events kept past the horizon (a view's state)."""

    def __init__(self, views: PlaybackViewStore, *, state_types: Collection[str],
                 horizon: float = 900.0, max_views: int = 5000, max_streams: int = 200,
                 idle_after: float = 60.0, fresh_for: float = 0.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._views = views
        self._state_types = frozenset(state_types)
        self._horizon = timedelta(seconds=horizon)
        self._max_views = max_views
        self._max_streams = max_streams
        self._idle_after = idle_after
        self._fresh_for = fresh_for
        self._clock = clock
        self._monotonic = monotonic
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._too_large: dict[str, float] = {}  # stream id -> until (monotonic)
        self.loads = 0  # full reads of a stream's recent views
        self.catch_ups = 0

    async def window(self, stream_id: str, start: datetime, end: datetime, *,
                     earlier_types: Collection[str] = (), max_views: int = 20_000) -> Rows:
        """What `PlaybackViewStore.window` answers for these arguments."""
        stream = await self._held(stream_id, start, end, earlier_types)
        if stream is None:
            return await self._views.window(stream_id, start, end,
                                            earlier_types=earlier_types, max_views=max_views)
        earlier = frozenset(earlier_types)
        chosen = _chosen(stream, start, end, max_views)
        return [(view, [e for e in stream.events.get(view.id, ())
                        if e.at < end and (e.at >= start or e.type in earlier)])
                for view in chosen]

    async def window_qoe(self, stream_id: str, start: datetime, end: datetime, *,
                         max_views: int = 20_000) -> list[ViewQoe] | None:
        """Each view's QoE in the window, as `view_qoe` over what `window(...,
        earlier_types=STATE_EVENTS)` answers, from the indexed events (a large window in
        a thread, the stream held meanwhile); None when the window is not served from
        memory."""
        if self._state_types != frozenset(STATE_EVENTS):
            return None
        stream = await self._held(stream_id, start, end, STATE_EVENTS)
        if stream is None:
            return None
        chosen = _chosen(stream, start, end, max_views)
        empty = ViewEvents()

        def compute() -> list[ViewQoe]:
            return [stream.indexed.get(view.id, empty).qoe(view, start, end)
                    for view in chosen]

        async with stream.lock:  # no catch-up changes the index while a thread reads it
            return await off_loop(len(chosen), compute)

    async def _held(self, stream_id: str, start: datetime, end: datetime,
                    earlier_types: Collection[str]) -> _Stream | None:
        """The stream's recent views when this window can be served from them."""
        now = self._clock()
        mono = self._monotonic()
        cacheable = (start >= now - self._horizon and end >= now - _RECENT_END
                     and set(earlier_types) <= self._state_types
                     and self._too_large.get(stream_id, 0.0) <= mono)
        return await self._current(stream_id, now, mono) if cacheable else None

    async def _current(self, stream_id: str, now: datetime, mono: float) -> _Stream | None:
        """The stream's recent views, loaded or caught up; None when it has too many."""
        self._forget_idle(mono)
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = await self._load(stream_id, now, mono)
            if stream is None:
                return None
        self._streams.move_to_end(stream_id)
        stream.used = mono
        async with stream.lock:  # an ask that waited here may find it fresh now
            if mono - stream.caught_up < self._fresh_for:
                return stream
            if not await self._catch_up(stream_id, stream, now):
                self._streams.pop(stream_id, None)
                self._too_large[stream_id] = mono + self._idle_after
                return None
            stream.caught_up = mono
        return stream

    async def _load(self, stream_id: str, now: datetime, mono: float) -> _Stream | None:
        self.loads += 1
        since = now - self._horizon
        views = await self._views.window_views(stream_id, since, now + _FUTURE,
                                               max_views=self._max_views + 1)
        if len(views) > self._max_views:
            self._too_large[stream_id] = mono + self._idle_after
            return None
        # The highest id before the read: everything after it comes with the catch-up.
        high = await self._views.last_event_id()
        events = await self._views.events_of([v.id for v in views], since, now + _FUTURE,
                                             earlier_types=self._state_types)
        ids = {e.id for held in events.values() for e in held}
        high = max(ids, default=high)
        stream = _Stream({v.id: v for v in views}, events,
                         {view_id: ViewEvents(held) for view_id, held in events.items()},
                         ids, high, high, since, mono, float("-inf"))
        self._streams[stream_id] = stream
        while len(self._streams) > self._max_streams:
            self._streams.popitem(last=False)
        return stream

    async def _catch_up(self, stream_id: str, stream: _Stream, now: datetime) -> bool:
        """Read what was stored since the last catch-up; False when the stream grew past
        `max_views`."""
        self.catch_ups += 1
        after = stream.high if self._views.ids_commit_in_order else stream.previous_high
        fresh = [e for e in await self._views.events_after(stream_id, after)
                 if e.id not in stream.ids]
        keep_from = max(stream.complete_from, now - self._horizon)
        views = await self._views.window_views(stream_id, keep_from, now + _FUTURE,
                                               max_views=self._max_views + 1)
        if len(views) > self._max_views:
            return False
        stream.views = {v.id: v for v in views}
        # A view new to this reader: its state events may be older than the catch-up.
        unknown = [v.id for v in views if v.id not in stream.events]
        if unknown:
            loaded = await self._views.events_of(unknown, keep_from, now + _FUTURE,
                                                 earlier_types=self._state_types)
            for view_id in unknown:
                held = loaded.get(view_id, [])
                stream.events[view_id] = held
                stream.indexed[view_id] = ViewEvents(held)
                stream.ids.update(e.id for e in held)
        for event in fresh:
            if event.id in stream.ids or event.view_id not in stream.views:
                continue
            held = stream.events.setdefault(event.view_id, [])
            if held and held[-1].id > event.id:  # a late commit: keep stored order
                held.append(event)
                held.sort(key=lambda e: e.id)
            else:
                held.append(event)
            stream.indexed.setdefault(event.view_id, ViewEvents()).add(event)
            stream.ids.add(event.id)
        stream.previous_high = stream.high
        stream.high = max([stream.high, *(e.id for e in fresh)])
        self._trim(stream, keep_from)
        return True

    def _trim(self, stream: _Stream, keep_from: datetime) -> None:
        """Forget views gone from the horizon and their events older than it (a view's
        state events stay)."""
        stream.complete_from = keep_from
        for view_id in [v for v in stream.events if v not in stream.views]:
            stream.ids.difference_update(e.id for e in stream.events.pop(view_id))
            stream.indexed.pop(view_id, None)
        for view_id, held in stream.events.items():
            if held and held[0].at < keep_from:
                kept = [e for e in held if e.at >= keep_from or e.type in self._state_types]
                if len(kept) != len(held):
                    stream.ids.difference_update(
                        e.id for e in held if e.at < keep_from
                        and e.type not in self._state_types)
                    stream.events[view_id] = kept
                    if view_id in stream.indexed:
                        stream.indexed[view_id].drop_before(keep_from)

    def _forget_idle(self, mono: float) -> None:
        for stream_id in [s for s, st in self._streams.items()
                          if mono - st.used > self._idle_after]:
            del self._streams[stream_id]
        for stream_id in [s for s, until in self._too_large.items() if until <= mono]:
            del self._too_large[stream_id]

    def __len__(self) -> int:
        return len(self._streams)


def _chosen(stream: _Stream, start: datetime, end: datetime,
            max_views: int) -> list[PlaybackViewRecord]:
    """The views a window reads: those it overlaps, newest first, at most `max_views`."""
    return sorted((v for v in stream.views.values()
                   if v.started_at < end and v.last_seen_at >= start),
                  key=lambda v: (-v.started_at.timestamp(), v.id))[:max(1, max_views)]
