"""Broadcasts and the event log of each stream (control plane).

A broadcast row is written when a publisher starts one and closed when it ends;
every event on the bus is appended to its stream's log (by `EventRecorder`),
which keeps only the newest `event_history` per stream. Rows of a deleted stream
are never written: a late write for one is dropped, not an error.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from golive.core.events import Event, utcnow
from golive.store.db import Tables
from golive.store.models import Broadcast, LiveStream, StreamEvent
from golive.store.records import BroadcastRecord, EventRecord
from golive.store.validation import check_limit


def _broadcast_record(row: Broadcast) -> BroadcastRecord:
    return BroadcastRecord(
        id=row.id,
        stream_id=row.stream_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        protocol=row.protocol,
        remote_address=row.remote_address,
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

    async def reset_live_statuses(self) -> None:
        """At startup nothing is live: active streams go idle and open broadcasts end now."""
        now = utcnow()
        async with self._write.begin() as session:
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
            await session.execute(
                update(Broadcast).where(Broadcast.ended_at.is_(None)).values(ended_at=now)
            )

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

    async def record_event(self, event: Event) -> None:
        """Store an event, keeping the newest `event_history` per stream.

        Events of a stream that no longer exists are dropped silently.
        """
        stream_id = event.stream_id
        try:
            async with self._write.begin() as session:
                exists = await session.scalar(
                    select(LiveStream.id).where(LiveStream.id == stream_id)
                )
                if exists is None:
                    return
                session.add(
                    StreamEvent(
                        stream_id=stream_id,
                        broadcast_id=event.broadcast_id,
                        type=str(event.type),
                        at=event.at,
                        data=dict(event.data),
                    )
                )
                await session.flush()
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
        except IntegrityError:
            # The stream was deleted between the check and the insert (PostgreSQL).
            if await self._stream_exists(stream_id):
                raise

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
