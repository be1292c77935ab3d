"""Playback views and their QoE events (control plane, for golive.web).

A *view* is one player on one page. The player names it (a random id it makes when the
page loads) and reports what happened to it in small batches; the first batch creates
the view. Same rules as the other repositories (`golive.store.db.Tables`): short
sessions, writes in `WRITE_OPTION` sessions, only frozen records leave this module,
rows go away with their stream.

Batches are stored with group commit: the batches that arrive while one transaction
commits are stored together by the next one (up to `MAX_BATCHES_PER_COMMIT`), each
caller answered once its own batch is committed. An audience reports at a steady rate
(2,000 players: ~200 batches a second), and one transaction per batch, each several
round trips through SQLite's single writer, was the node's write ceiling: batches
queued past the writers' timeout and were refused (503) although the disk was idle.
No timer: a lone batch is written at once, and a crowd shares transactions by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from golive.store.db import StoreBusy, WriterSessions, create_sessionmaker, is_sqlite, rowcount
from golive.store.models import LiveStream, PlaybackEvent, PlaybackView

# Storage stays bounded whatever a player sends: events past this many per view are dropped.
MAX_EVENTS_PER_VIEW = 5000
MAX_USER_AGENT_LENGTH = 300
# A QoE query reads at most this many views (the most recent of its window).
MAX_VIEWS_PER_WINDOW = 20_000
# Group commit: at most this many batches in one transaction, and at most this many
# waiting for one (beyond it a batch is refused at once as `StoreBusy`: memory stays
# bounded however far the writer falls behind).
MAX_BATCHES_PER_COMMIT = 200
MAX_WAITING_BATCHES = 5000


@dataclass(frozen=True, slots=True)
class PlaybackViewRecord:
    id: str
    playback_id: str
    stream_id: str
    started_at: datetime
    last_seen_at: datetime
    user_agent: str
    summary: dict[str, Any] | None = None  # set once the view's raw events were pruned


@dataclass(frozen=True, slots=True)
class PlaybackEventRecord:
    id: int
    view_id: str
    type: str
    at: datetime
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewPlaybackEvent:
    """An event as the web layer validated it, its time already on the server's clock."""

    type: str
    at: datetime
    data: dict[str, Any]


class ViewConflict(Exception):
    """The view id belongs to another playback id (a player cannot switch streams)."""


@dataclass(slots=True)
class _Waiting:
    """A batch waiting for its transaction, and the caller's answer."""

    view_id: str
    playback_id: str
    stream_id: str
    user_agent: str
    events: Sequence[NewPlaybackEvent]
    now: datetime
    answer: asyncio.Future[int]


def _retrieved(future: asyncio.Future[int]) -> None:
    # A caller that went away (its request cancelled) leaves no "never retrieved" noise.
    if not future.cancelled():
        future.exception()


def _view(row: PlaybackView) -> PlaybackViewRecord:
    return PlaybackViewRecord(
        id=row.id,
        playback_id=row.playback_id,
        stream_id=row.stream_id,
        started_at=row.started_at,
        last_seen_at=row.last_seen_at,
        user_agent=row.user_agent,
        summary=dict(row.summary) if row.summary is not None else None,
    )


_VIEW_COLUMNS = (PlaybackView.id, PlaybackView.playback_id, PlaybackView.stream_id,
                 PlaybackView.started_at, PlaybackView.last_seen_at, PlaybackView.user_agent,
                 PlaybackView.summary)


def _view_of(row: Any) -> PlaybackViewRecord:
    """A view from a row of `_VIEW_COLUMNS`."""
    view_id, playback_id, stream_id, started_at, last_seen_at, user_agent, summary = row
    return PlaybackViewRecord(id=view_id, playback_id=playback_id, stream_id=stream_id,
                              started_at=started_at, last_seen_at=last_seen_at,
                              user_agent=user_agent, summary=summary)


_EVENT_COLUMNS = (PlaybackEvent.id, PlaybackEvent.view_id, PlaybackEvent.type,
                  PlaybackEvent.at, PlaybackEvent.data)


def _event_of(row: Any) -> PlaybackEventRecord:
    """An event from a row of `_EVENT_COLUMNS`."""
    event_id, view_id, kind, at, data = row
    return PlaybackEventRecord(id=int(event_id), view_id=view_id, type=kind, at=at, data=data)


def _event(row: PlaybackEvent) -> PlaybackEventRecord:
    return PlaybackEventRecord(
        id=int(row.id), view_id=row.view_id, type=row.type, at=row.at, data=dict(row.data)
    )


class PlaybackViewStore:
    """Views and QoE events of one database; shares the engine of `Store`."""

    def __init__(self, engine: AsyncEngine, *, max_events_per_view: int = MAX_EVENTS_PER_VIEW,
                 max_per_commit: int = MAX_BATCHES_PER_COMMIT,
                 max_waiting: int = MAX_WAITING_BATCHES) -> None:
        self._max_events = max_events_per_view
        self._in_order = is_sqlite(engine)
        self._read: async_sessionmaker[AsyncSession] = create_sessionmaker(engine)
        self._write = WriterSessions(engine)
        self._max_per_commit = max(1, max_per_commit)
        self._max_waiting = max_waiting
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self.commits = 0  # transactions that stored batches (group commit: fewer than batches)

    @property
    def ids_commit_in_order(self) -> bool:
        """Whether event ids become visible in the order they were handed out, so a reader
        that has seen id N never sees a smaller one appear later (`events_after`). SQLite:
        yes, one writer at a time holds the write lock from its first insert to its
        commit. PostgreSQL: no, a sequence hands ids out before commit, and a transaction
        that took a smaller id may commit after one that took a larger."""
        return self._in_order

    async def record(
        self,
        *,
        view_id: str,
        playback_id: str,
        stream_id: str,
        user_agent: str,
        events: Sequence[NewPlaybackEvent],
        now: datetime,
    ) -> int:
        """Store a batch for a view, creating the view on its first batch; answered once
        the transaction that holds it has committed (module doc: group commit).

        Returns how many events were kept (fewer once the view reached its cap); 0 when
        the stream no longer exists. Raises `ViewConflict` when the view id is taken by
        another playback id, `StoreBusy` when the writer is too far behind.
        """
        if len(self._waiting) >= self._max_waiting:
            raise StoreBusy(0.0)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[int] = loop.create_future()
        answer.add_done_callback(_retrieved)
        self._waiting.append(_Waiting(view_id, playback_id, stream_id, user_agent, events,
                                      now, answer))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_waiting(), name="qoe-group-commit")
        # Shielded: a caller that gives up does not cancel the others' transaction.
        return await asyncio.shield(answer)

    async def _write_waiting(self) -> None:
        """Store what waits, a transaction at a time, until nothing does."""
        while self._waiting:
            group = self._waiting[:self._max_per_commit]
            del self._waiting[:len(group)]
            try:
                outcomes = await self._store_group(group)
            except IntegrityError:
                # A first batch raced another node's (or the stream went meanwhile):
                # each batch on its own, which sorts out who wins.
                for waiting in group:
                    await self._answer_alone(waiting)
                continue
            except BaseException as exc:
                for waiting in group:
                    if not waiting.answer.done():
                        waiting.answer.set_exception(
                            exc if isinstance(exc, Exception) else StoreBusy(0.0))
                if not isinstance(exc, Exception):
                    raise
                continue
            for waiting, outcome in zip(group, outcomes, strict=True):
                if waiting.answer.done():
                    continue
                if isinstance(outcome, Exception):
                    waiting.answer.set_exception(outcome)
                else:
                    waiting.answer.set_result(outcome)

    async def _answer_alone(self, waiting: _Waiting) -> None:
        """Store one batch of a group that hit a unique-key race, in a transaction of its
        own: its view was just created by another node's transaction (it is found this
        time), or its stream went meanwhile (the batch is then dropped, as for a stream
        that does not exist)."""
        outcome: int | Exception
        try:
            try:
                (outcome,) = await self._store_group([waiting])
            except IntegrityError:
                (outcome,) = await self._store_group([waiting])
        except Exception as exc:
            outcome = exc
        if waiting.answer.done():
            return
        if isinstance(outcome, Exception):
            waiting.answer.set_exception(outcome)
        else:
            waiting.answer.set_result(outcome)

    async def _store_group(self, group: list[_Waiting]) -> list[int | Exception]:
        """One transaction for `group`, in order: what each batch kept, or its error."""
        outcomes: list[int | Exception] = []
        async with self._write.begin() as session:
            ids = list({w.view_id for w in group})
            views = {v.id: v for v in (await session.scalars(
                select(PlaybackView).where(PlaybackView.id.in_(ids)))).all()}
            counts: dict[str, int] = {}
            if views:
                counts = {view_id: int(n) for view_id, n in (await session.execute(
                    select(PlaybackEvent.view_id, func.count())
                    .where(PlaybackEvent.view_id.in_(list(views)))
                    .group_by(PlaybackEvent.view_id))).all()}
            wanted = list({w.stream_id for w in group if w.view_id not in views})
            streams: set[str] = set()
            if wanted:
                streams = set((await session.scalars(
                    select(LiveStream.id).where(LiveStream.id.in_(wanted)))).all())
            created = False
            rows: list[dict[str, Any]] = []
            for w in group:
                view = views.get(w.view_id)
                if view is None:
                    if w.stream_id not in streams:
                        outcomes.append(0)
                        continue
                    view = PlaybackView(
                        id=w.view_id, playback_id=w.playback_id, stream_id=w.stream_id,
                        started_at=w.now, last_seen_at=w.now,
                        user_agent=w.user_agent[:MAX_USER_AGENT_LENGTH])
                    session.add(view)
                    views[w.view_id] = view
                    created = True
                elif view.playback_id != w.playback_id or view.stream_id != w.stream_id:
                    outcomes.append(ViewConflict(w.view_id))
                    continue
                else:
                    view.last_seen_at = w.now
                stored = counts.get(w.view_id, 0)
                keep = list(w.events)[: max(0, self._max_events - stored)]
                counts[w.view_id] = stored + len(keep)
                rows.extend({"view_id": w.view_id, "type": e.type, "at": e.at,
                             "data": dict(e.data)} for e in keep)
                outcomes.append(len(keep))
            if created:
                # No ORM relationship orders the inserts: the view rows must exist first.
                await session.flush()
            if rows:
                # One statement for the group's events, their ids left to the database
                # (nothing reads them back here): as ORM objects each event was an
                # INSERT ... RETURNING of its own, a driver round trip apiece.
                await session.execute(insert(PlaybackEvent), rows)
        self.commits += 1
        return outcomes

    async def get_view(self, view_id: str) -> PlaybackViewRecord | None:
        async with self._read() as session:
            row = await session.get(PlaybackView, view_id)
            return _view(row) if row is not None else None

    async def list_views(self, stream_id: str, *, limit: int = 100) -> list[PlaybackViewRecord]:
        """A stream's views, newest first."""
        async with self._read() as session:
            rows = (await session.scalars(
                select(PlaybackView)
                .where(PlaybackView.stream_id == stream_id)
                .order_by(PlaybackView.started_at.desc(), PlaybackView.id)
                .limit(max(1, min(limit, 1000)))
            )).all()
            return [_view(row) for row in rows]

    async def list_events(self, view_id: str, *, limit: int = 1000) -> list[PlaybackEventRecord]:
        """A view's events in the order they were stored."""
        async with self._read() as session:
            rows = (await session.scalars(
                select(PlaybackEvent)
                .where(PlaybackEvent.view_id == view_id)
                .order_by(PlaybackEvent.id)
                .limit(max(1, min(limit, self._max_events)))
            )).all()
            return [_event(row) for row in rows]

    async def peak_views(self, stream_id: str, start: datetime, end: datetime, *,
                         max_views: int = MAX_VIEWS_PER_WINDOW) -> tuple[int, bool]:
        """The most views of a stream open at once within [start, end) (a view is open
        from its start to its last report), and whether more than `max_views` views
        overlapped the window (then the peak counts only the most recent of them)."""
        async with self._read() as session:
            spans = (await session.execute(
                select(PlaybackView.started_at, PlaybackView.last_seen_at)
                .where(PlaybackView.stream_id == stream_id,
                       PlaybackView.started_at < end, PlaybackView.last_seen_at >= start)
                .order_by(PlaybackView.started_at.desc())
                .limit(max(1, max_views) + 1)
            )).all()
        truncated = len(spans) > max_views
        # Opens sort before closes at the same instant: a view that reported once is open.
        edges = sorted([(max(a, start), 0) for a, _ in spans[:max_views]]
                       + [(min(b, end), 1) for _, b in spans[:max_views]])
        peak = open_now = 0
        for _, closing in edges:
            open_now += -1 if closing else 1
            peak = max(peak, open_now)
        return peak, truncated

    async def window(self, stream_id: str, start: datetime, end: datetime, *,
                     earlier_types: Collection[str] = (),
                     max_views: int = MAX_VIEWS_PER_WINDOW,
                     ) -> list[tuple[PlaybackViewRecord, list[PlaybackEventRecord]]]:
        """The views of a stream that overlap [start, end), each with its events in it
        and, from before `start`, those of `earlier_types` (what tells a view's state).

        At most `max_views` views (the most recent), so a query over a large audience
        stays bounded; events come in the order they were stored.
        """
        views = await self.window_views(stream_id, start, end, max_views=max_views)
        events = await self.events_of([v.id for v in views], start, end,
                                      earlier_types=earlier_types)
        return [(view, events.get(view.id, [])) for view in views]

    async def window_views(self, stream_id: str, start: datetime, end: datetime, *,
                           max_views: int = MAX_VIEWS_PER_WINDOW) -> list[PlaybackViewRecord]:
        """The views of a stream that overlap [start, end), the most recent first, at
        most `max_views`."""
        async with self._read() as session:
            # Columns, not ORM objects: a stream's recent views are read at every
            # catch-up of `golive.health.recent` (several a second with health on).
            rows = (await session.execute(
                select(*_VIEW_COLUMNS)
                .where(PlaybackView.stream_id == stream_id,
                       PlaybackView.started_at < end, PlaybackView.last_seen_at >= start)
                .order_by(PlaybackView.started_at.desc(), PlaybackView.id)
                .limit(max(1, max_views))
            )).all()
            return [_view_of(row) for row in rows]

    async def events_of(self, view_ids: Sequence[str], start: datetime, end: datetime, *,
                        earlier_types: Collection[str] = (),
                        ) -> dict[str, list[PlaybackEventRecord]]:
        """The events of these views in [start, end) and, before `start`, those of
        `earlier_types`; per view, in the order they were stored."""
        by_view: dict[str, list[PlaybackEventRecord]] = {}
        async with self._read() as session:
            # Columns, not ORM objects: a studio's 10-minute window is ~10^4 events per
            # 100 viewers, and an ORM instance per row cost 50x the QoE computation
            # itself (bench/health.py), on the event loop.
            for chunk in range(0, len(view_ids), 500):
                rows = (await session.execute(
                    select(*_EVENT_COLUMNS)
                    .where(PlaybackEvent.view_id.in_(view_ids[chunk:chunk + 500]),
                           PlaybackEvent.at < end,
                           or_(PlaybackEvent.at >= start,
                               PlaybackEvent.type.in_(list(earlier_types))))
                    .order_by(PlaybackEvent.id)
                )).all()
                for row in rows:
                    event = _event_of(row)
                    by_view.setdefault(event.view_id, []).append(event)
        return by_view

    async def last_event_id(self) -> int:
        """The highest event id stored so far (any stream); 0 when there is none."""
        async with self._read() as session:
            return int(await session.scalar(select(func.max(PlaybackEvent.id))) or 0)

    async def events_after(self, stream_id: str, after_id: int, *, limit: int = 100_000
                           ) -> list[PlaybackEventRecord]:
        """The events of a stream's views stored after event `after_id` (ids grow as
        events are stored), in id order, at most `limit`: what a reader that holds a
        stream's recent events reads to catch up."""
        async with self._read() as session:
            rows = (await session.execute(
                select(*_EVENT_COLUMNS)
                .join(PlaybackView, PlaybackView.id == PlaybackEvent.view_id)
                .where(PlaybackView.stream_id == stream_id, PlaybackEvent.id > after_id)
                .order_by(PlaybackEvent.id)
                .limit(max(1, limit))
            )).all()
            return [_event_of(row) for row in rows]

    async def unsummarized(self, before: datetime, *, limit: int = 500,
                           ) -> list[tuple[PlaybackViewRecord, list[PlaybackEventRecord]]]:
        """Views last seen before `before` whose raw events are still kept, oldest first,
        each with all its events: what the retention task summarizes next."""
        async with self._read() as session:
            views = (await session.scalars(
                select(PlaybackView)
                .where(PlaybackView.last_seen_at < before, PlaybackView.summary.is_(None))
                .order_by(PlaybackView.last_seen_at, PlaybackView.id)
                .limit(max(1, min(limit, 5000)))
            )).all()
            out = []
            for row in views:
                events = (await session.scalars(
                    select(PlaybackEvent).where(PlaybackEvent.view_id == row.id)
                    .order_by(PlaybackEvent.id)
                )).all()
                out.append((_view(row), [_event(e) for e in events]))
            return out

    async def keep_summary(self, view_id: str, summary: dict[str, Any], *,
                           last_seen_at: datetime) -> int:
        """Store a view's summary and drop its raw events; returns how many were dropped.

        `last_seen_at` is the view's last report as the summary knows it: a view that
        reported again meanwhile keeps its events (and no summary) until the next pass."""
        async with self._write.begin() as session:
            changed = await session.execute(
                update(PlaybackView)
                .where(PlaybackView.id == view_id, PlaybackView.summary.is_(None),
                       PlaybackView.last_seen_at <= last_seen_at)
                .values(summary=summary)
            )
            if not rowcount(changed):
                return 0
            return rowcount(await session.execute(
                delete(PlaybackEvent).where(PlaybackEvent.view_id == view_id)))
