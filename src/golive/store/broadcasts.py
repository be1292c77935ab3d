"""Broadcasts and the event log of each stream (control plane).

A broadcast row is written when a publisher starts one, its `last_media_at` moves
on while media flows, and it is closed when it ends (or, after a crash, at the
next startup, when media was last seen); while it is live, samples of its ingest and
encoder figures are kept for its report (`record_broadcast_samples`, deleted with the
stream or past their retention, `prune_broadcast_samples`). Every event on the bus is appended to
its stream's log (by `EventRecorder`), which keeps only the newest
`event_history` per stream, and queued for webhooks in the same transaction. Rows of a deleted stream
are never written: a late write for one is dropped, not an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from golive.core import Event, EventType
from golive.store.db import Tables
from golive.store.models import Broadcast, BroadcastSample, LiveStream, StreamEvent
from golive.store.records import (
    BroadcastRecord,
    BroadcastSampleRecord,
    EventRecord,
    RecoveredBroadcastRecord,
)
from golive.store.validation import check_limit
from golive.store.webhooks import queue_deliveries

_PUBLISHER_EVENTS = (
    str(EventType.LIVE_STREAM_CONNECTED),
    str(EventType.LIVE_STREAM_DISCONNECTED),
)


def _broadcast_record(row: Broadcast) -> BroadcastRecord:
    return BroadcastRecord(
        id=row.id,
        stream_id=row.stream_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        protocol=row.protocol,
        remote_address=row.remote_address,
        last_media_at=row.last_media_at,
    )


def _event_record(row: StreamEvent) -> EventRecord:
    return EventRecord(
        id=int(row.id),
        stream_id=row.stream_id,
        broadcast_id=row.broadcast_id,
        type=row.type,
        at=row.at,
        data=dict(row.data or {}),
    )


class BroadcastRepository(Tables):
    """Broadcast rows, the live status at startup, and each stream's event log."""

    def __init__(self, engine: AsyncEngine, *, event_history: int = 1000) -> None:
        if isinstance(event_history, bool) or not isinstance(event_history, int) \
                or event_history < 1:
            raise ValueError(f"event_history must be a positive integer; got {event_history!r}")
        super().__init__(engine)
        self._event_history = event_history

    @property
    def event_history(self) -> int:
        return self._event_history

    async def recover_open_broadcasts(self) -> list[RecoveredBroadcastRecord]:
        """At startup nothing is live: close what a killed node left open.

        Each open broadcast ends when media was last seen on it (its start when none
        came), not now: the hours a node was down are not part of the broadcast.
        Active streams go idle. Returns the broadcasts closed, oldest first, so the
        caller can announce their end.
        """
        recovered: list[RecoveredBroadcastRecord] = []
        async with self._write.begin() as session:
            rows = (
                await session.scalars(
                    select(Broadcast)
                    .where(Broadcast.ended_at.is_(None))
                    .order_by(Broadcast.started_at, Broadcast.id)
                )
            ).all()
            for row in rows:
                ended_at = max(row.started_at, row.last_media_at or row.started_at)
                # The hub records `disconnected` when a publisher goes; the newest of
                # connected/disconnected says whether one was still there at the crash.
                last = await session.scalar(
                    select(StreamEvent.type)
                    .where(
                        StreamEvent.stream_id == row.stream_id,  # the log's index
                        StreamEvent.broadcast_id == row.id,
                        StreamEvent.type.in_(_PUBLISHER_EVENTS),
                    )
                    .order_by(StreamEvent.id.desc())
                    .limit(1)
                )
                row.ended_at = ended_at
                recovered.append(
                    RecoveredBroadcastRecord(
                        id=row.id,
                        stream_id=row.stream_id,
                        ended_at=ended_at,
                        publisher_connected=last != str(EventType.LIVE_STREAM_DISCONNECTED),
                    )
                )
            await session.execute(
                update(LiveStream)
                .where(LiveStream.status == "active")
                .values(status="idle", active_broadcast_id=None)
            )
            await session.execute(
                update(LiveStream)
                .where(LiveStream.active_broadcast_id.is_not(None))
                .values(active_broadcast_id=None)
            )
        return recovered

    # Broadcasts --------------------------------------------------------------------------

    async def start_broadcast(
        self,
        stream_id: str,
        broadcast_id: str,
        protocol: str,
        remote_address: str,
        started_at: datetime,
    ) -> None:
        """Record a new broadcast; a no-op when the stream was deleted meanwhile."""
        try:
            async with self._write.begin() as session:
                exists = await session.scalar(
                    select(LiveStream.id).where(LiveStream.id == stream_id)
                )
                if exists is None:
                    return
                # A retry after an outage may find the row its first try wrote.
                if await session.get(Broadcast, broadcast_id) is not None:
                    return
                session.add(
                    Broadcast(
                        id=broadcast_id,
                        stream_id=stream_id,
                        started_at=started_at,
                        ended_at=None,
                        protocol=protocol[:16],
                        remote_address=remote_address[:100],
                    )
                )
        except IntegrityError:
            # The stream went away between the check and the insert (PostgreSQL).
            if await self._stream_exists(stream_id):
                raise

    async def end_broadcast(self, broadcast_id: str, ended_at: datetime) -> None:
        async with self._write.begin() as session:
            await session.execute(
                update(Broadcast)
                .where(Broadcast.id == broadcast_id, Broadcast.ended_at.is_(None))
                .values(ended_at=ended_at)
            )

    async def media_seen(self, broadcast_id: str, at: datetime) -> None:
        """Media flowed on an open broadcast at `at` (where it ends if the node is killed)."""
        async with self._write.begin() as session:
            await session.execute(
                update(Broadcast)
                .where(Broadcast.id == broadcast_id, Broadcast.ended_at.is_(None))
                .values(last_media_at=at)
            )

    async def record_broadcast_samples(self, samples: Sequence[BroadcastSampleRecord]) -> int:
        """Keep live broadcasts' samples (one transaction); those of a stream deleted
        meanwhile are dropped. Returns how many were kept."""
        if not samples:
            return 0
        async with self._write.begin() as session:
            existing = set((await session.scalars(select(LiveStream.id).where(
                LiveStream.id.in_({s.stream_id for s in samples})))).all())
            rows = [BroadcastSample(stream_id=s.stream_id, broadcast_id=s.broadcast_id,
                                    at=s.at, data=dict(s.data))
                    for s in samples if s.stream_id in existing]
            session.add_all(rows)
        return len(rows)

    async def prune_broadcast_samples(self, before: datetime, *, limit: int = 10_000) -> int:
        """Delete up to `limit` samples taken before `before`; returns how many went."""
        check_limit(limit)
        async with self._write.begin() as session:
            old = select(BroadcastSample.id).where(BroadcastSample.at < before).limit(limit)
            ids = list((await session.scalars(old)).all())
            if ids:
                await session.execute(delete(BroadcastSample).where(BroadcastSample.id.in_(ids)))
        return len(ids)

    async def broadcast_samples(self, broadcast_id: str, *,
                                limit: int = 100_000) -> list[BroadcastSampleRecord]:
        """A broadcast's samples, oldest first (the first `limit`)."""
        check_limit(limit)
        async with self._read() as session:
            rows = (await session.scalars(
                select(BroadcastSample)
                .where(BroadcastSample.broadcast_id == broadcast_id)
                .order_by(BroadcastSample.at, BroadcastSample.id)
                .limit(limit))).all()
            return [BroadcastSampleRecord(stream_id=r.stream_id, broadcast_id=r.broadcast_id,
                                          at=r.at, data=dict(r.data or {})) for r in rows]

    async def get_broadcast(self, broadcast_id: str) -> BroadcastRecord | None:
        async with self._read() as session:
            row = await session.get(Broadcast, broadcast_id)
            return _broadcast_record(row) if row is not None else None

    async def list_broadcasts(self, stream_id: str, *, limit: int = 50) -> list[BroadcastRecord]:
        """A stream's broadcasts, newest first."""
        check_limit(limit)
        async with self._read() as session:
            rows = (
                await session.scalars(
                    select(Broadcast)
                    .where(Broadcast.stream_id == stream_id)
                    .order_by(Broadcast.started_at.desc(), Broadcast.id.desc())
                    .limit(limit)
                )
            ).all()
            return [_broadcast_record(row) for row in rows]

    # Events ------------------------------------------------------------------------------

    async def record_event(self, event: Event) -> list[str]:
        """Store one event (see `record_events`); returns the webhook endpoints queued."""
        return await self.record_events([event])

    async def record_events(self, events: Sequence[Event]) -> list[str]:
        """Store events in one transaction, keeping the newest `event_history` per stream,
        and queue their webhook deliveries in the same transaction; returns the endpoints
        queued (once each).

        A stream that no longer exists gets no log entry (its `deleted` event still
        goes to webhooks).
        """
        stream_ids = {event.stream_id for event in events}
        try:
            async with self._write.begin() as session:
                existing = set((await session.scalars(
                    select(LiveStream.id).where(LiveStream.id.in_(stream_ids))
                )).all())
                logged = [event for event in events if event.stream_id in existing]
                for event in logged:
                    session.add(StreamEvent(
                        stream_id=event.stream_id,
                        broadcast_id=event.broadcast_id,
                        type=str(event.type),
                        at=event.at,
                        data=dict(event.data),
                    ))
                if logged:
                    await session.flush()
                for stream_id in sorted({event.stream_id for event in logged}):
                    await self._trim_log(session, stream_id)
                return await queue_deliveries(session, events)
        except IntegrityError:
            # A stream was deleted between the check and the insert (PostgreSQL): one
            # at a time, so only that stream's log entries go, never a delivery.
            if len(events) > 1:
                queued: dict[str, None] = {}
                for event in events:
                    queued.update(dict.fromkeys(await self.record_events([event])))
                return list(queued)
            if await self._stream_exists(events[0].stream_id):
                raise
            async with self._write.begin() as session:
                return await queue_deliveries(session, events)

    async def _trim_log(self, session: AsyncSession, stream_id: str) -> None:
        cutoff = await session.scalar(
            select(StreamEvent.id)
            .where(StreamEvent.stream_id == stream_id)
            .order_by(StreamEvent.id.desc())
            .offset(self._event_history)
            .limit(1)
        )
        if cutoff is not None:
            await session.execute(
                delete(StreamEvent).where(
                    StreamEvent.stream_id == stream_id, StreamEvent.id <= cutoff
                )
            )

    async def list_events(
        self, stream_id: str, *, limit: int = 100, before: int | None = None
    ) -> list[EventRecord]:
        """A stream's events, newest first; `before` is the id of the last event seen."""
        check_limit(limit)
        query = select(StreamEvent).where(StreamEvent.stream_id == stream_id)
        if before is not None:
            query = query.where(StreamEvent.id < before)
        query = query.order_by(StreamEvent.id.desc()).limit(limit)
        async with self._read() as session:
            rows = (await session.scalars(query)).all()
            return [_event_record(row) for row in rows]

    async def _stream_exists(self, stream_id: str) -> bool:
        async with self._read() as session:
            found = await session.scalar(select(LiveStream.id).where(LiveStream.id == stream_id))
            return found is not None
