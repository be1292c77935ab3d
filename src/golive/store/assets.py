"""The recording index: assets, their renditions, init and media segments (control plane,
for golive.recording).

Same rules as the other repositories (`golive.store.db.Tables`): short sessions,
writes in `WRITE_OPTION` sessions, only frozen records leave this module. A segment
row is written only after its object has landed in storage, so after a crash the
index names exactly what can be played. Assets are not tied to their stream's row:
they outlive it, and only deleting an asset removes its rows (and its objects).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from golive.formats import CAPTION_CHANNELS
from golive.store.db import WriterSessions, create_sessionmaker, is_sqlite
from golive.store.models import Asset, AssetInit, AssetRendition, AssetSegment
from golive.store.validation import check_limit

__all__ = [
    "AssetInitRecord",
    "AssetRecord",
    "AssetRenditionRecord",
    "AssetSegmentRecord",
    "AssetStore",
]


@dataclass(frozen=True, slots=True)
class AssetRenditionRecord:
    name: str
    bandwidth: int
    average_bandwidth: int
    frame_rate: float
    codecs: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class AssetInitRecord:
    rendition: str
    generation: int
    key: str
    size: int


@dataclass(frozen=True, slots=True)
class AssetSegmentRecord:
    """One stored segment: where it sits on the media and wall clocks, and its object key."""

    rendition: str
    msn: int
    generation: int  # the init segment (encoder run) it decodes with
    media_start: float  # decode time of its first sample, seconds
    duration: float
    program_date_time: datetime
    size: int
    discontinuity: bool  # a new timeline starts here (publisher came back, encoder restarted)
    key: str


@dataclass(frozen=True, slots=True)
class AssetRecord:
    id: str
    stream_id: str
    broadcast_id: str
    status: str  # "recording" | "preparing" | "ready" | "errored"
    playback_id: str
    playback_policy: str  # "public" | "signed"
    created_at: datetime
    ended_at: datetime | None
    ready_at: datetime | None
    expires_at: datetime | None
    duration: float
    bytes: int
    error: str | None
    renditions: tuple[AssetRenditionRecord, ...]
    captions: bool = False  # the pictures carry CEA-608 captions (CC1)
    caption_channels: tuple[str, ...] = ()  # the channels found besides CC1 ("CC3")


_CAPTION_CHANNELS = CAPTION_CHANNELS[1:]  # stored besides CC1, which captions imply


def _channels(stored: str | None) -> tuple[str, ...]:
    return tuple(c for c in _CAPTION_CHANNELS if c in (stored or "").split(","))


def _join_channels(stored: str | None, channels: Collection[str]) -> str:
    """The stored channels and `channels` as one sorted list (unknown names left out)."""
    return ",".join(c for c in _CAPTION_CHANNELS
                    if c in (stored or "").split(",") or c in channels)


def _rendition(row: AssetRendition) -> AssetRenditionRecord:
    return AssetRenditionRecord(
        name=row.name,
        bandwidth=row.bandwidth,
        average_bandwidth=row.average_bandwidth,
        frame_rate=row.frame_rate,
        codecs=row.codecs,
        width=row.width,
        height=row.height,
    )


def _segment(row: AssetSegment) -> AssetSegmentRecord:
    return AssetSegmentRecord(
        rendition=row.rendition,
        msn=int(row.msn),
        generation=int(row.generation),
        media_start=row.media_start,
        duration=row.duration,
        program_date_time=row.program_date_time,
        size=row.size,
        discontinuity=row.discontinuity,
        key=row.key,
    )


class AssetStore:
    """Assets and their index in one database; shares the engine of `Store`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._read: async_sessionmaker[AsyncSession] = create_sessionmaker(engine)
        self._write = WriterSessions(engine)

    async def _record(self, session: AsyncSession, row: Asset) -> AssetRecord:
        renditions = (
            await session.scalars(
                select(AssetRendition)
                .where(AssetRendition.asset_id == row.id)
                .order_by(AssetRendition.bandwidth.desc(), AssetRendition.name)
            )
        ).all()
        return AssetRecord(
            id=row.id,
            stream_id=row.stream_id,
            broadcast_id=row.broadcast_id,
            status=row.status,
            playback_id=row.playback_id,
            playback_policy=row.playback_policy,
            created_at=row.created_at,
            ended_at=row.ended_at,
            ready_at=row.ready_at,
            expires_at=row.expires_at,
            duration=row.duration,
            bytes=int(row.bytes),
            error=row.error,
            renditions=tuple(_rendition(r) for r in renditions),
            captions=bool(row.captions),
            caption_channels=_channels(row.caption_channels),
        )

    # Writing while a broadcast records -----------------------------------------------------

    async def create_asset(
        self,
        *,
        asset_id: str,
        stream_id: str,
        broadcast_id: str,
        playback_id: str,
        playback_policy: str,
        created_at: datetime,
        expires_at: datetime | None,
    ) -> AssetRecord:
        """A new asset in status `recording` (one per broadcast)."""
        async with self._write.begin() as session:
            row = Asset(
                id=asset_id,
                stream_id=stream_id,
                broadcast_id=broadcast_id,
                status="recording",
                playback_id=playback_id,
                playback_policy=playback_policy,
                created_at=created_at,
                expires_at=expires_at,
                duration=0.0,
                bytes=0,
            )
            session.add(row)
            await session.flush()
            return await self._record(session, row)

    async def add_rendition(self, asset_id: str, rendition: AssetRenditionRecord) -> None:
        """What the multivariant playlist says of a rendition; the first one written stays."""
        async with self._write.begin() as session:
            existing = await session.get(AssetRendition, (asset_id, rendition.name))
            if existing is None:
                session.add(AssetRendition(asset_id=asset_id, **_fields(rendition)))

    async def add_stored(
        self,
        asset_id: str,
        inits: Sequence[AssetInitRecord],
        segments: Sequence[AssetSegmentRecord],
    ) -> None:
        """Index objects that have landed in storage (written again after a retry: kept once)."""
        if not inits and not segments:
            return
        async with self._write.begin() as session:
            for init in inits:
                if await session.get(AssetInit, (asset_id, init.rendition, init.generation)) is None:
                    session.add(AssetInit(asset_id=asset_id, **_fields(init)))
            if segments:
                await self._insert_segments(session, asset_id, segments)

    async def _insert_segments(
        self, session: AsyncSession, asset_id: str, segments: Sequence[AssetSegmentRecord]
    ) -> None:
        rows = [{"asset_id": asset_id, **_fields(segment)} for segment in segments]
        if is_sqlite(self._engine):
            await session.execute(sqlite_insert(AssetSegment).values(rows).on_conflict_do_nothing())
            return
        keys = {(s.rendition, s.msn) for s in segments}
        present = {
            (r, int(m))
            for r, m in (
                await session.execute(
                    select(AssetSegment.rendition, AssetSegment.msn).where(
                        AssetSegment.asset_id == asset_id,
                        AssetSegment.msn.in_([m for _, m in keys]),
                    )
                )
            ).all()
        }
        for row in rows:
            if (row["rendition"], row["msn"]) not in present:
                session.add(AssetSegment(**row))

    async def mark_captions(self, asset_id: str, channels: Collection[str] = ()) -> None:
        """The recording's pictures carry CEA-608 captions (on CC1 and `channels`): kept as
        soon as they are found, so that a recording a crash left open keeps it too."""
        async with self._write.begin() as session:
            row = await session.get(Asset, asset_id)
            if row is not None:
                row.captions = True
                row.caption_channels = _join_channels(row.caption_channels, channels)

    async def finish(
        self, asset_id: str, *, ended_at: datetime, status: str, error: str | None = None,
        captions: bool = False, caption_channels: Collection[str] = (),
        bandwidths: Mapping[str, tuple[int, int]] | None = None,
    ) -> AssetRecord | None:
        """Close the asset: duration (the longest rendition) and bytes from its index;
        `captions`: its pictures carry CEA-608 captions; `bandwidths`: each rendition's
        (peak, average) bit rates as its stored segments measure, which replace what the
        live plan expected."""
        async with self._write.begin() as session:
            row = await session.get(Asset, asset_id)
            if row is None:
                return None
            for name, (peak, average) in (bandwidths or {}).items():
                rendition = await session.get(AssetRendition, (asset_id, name))
                if rendition is not None and peak > 0:
                    rendition.bandwidth, rendition.average_bandwidth = peak, min(average, peak)
            per_rendition = (
                await session.execute(
                    select(AssetSegment.rendition, func.sum(AssetSegment.duration))
                    .where(AssetSegment.asset_id == asset_id)
                    .group_by(AssetSegment.rendition)
                )
            ).all()
            media = await session.scalar(
                select(func.coalesce(func.sum(AssetSegment.size), 0)).where(
                    AssetSegment.asset_id == asset_id
                )
            )
            inits = await session.scalar(
                select(func.coalesce(func.sum(AssetInit.size), 0)).where(
                    AssetInit.asset_id == asset_id
                )
            )
            row.duration = max((float(total or 0) for _, total in per_rendition), default=0.0)
            row.bytes = int(media or 0) + int(inits or 0)
            row.ended_at = ended_at
            row.captions = row.captions or captions
            row.caption_channels = _join_channels(row.caption_channels, caption_channels)
            if status == "ready" and row.duration <= 0:
                status, error = "errored", "no segment was stored"
            row.status = status
            row.error = error
            if status == "ready":
                row.ready_at = ended_at
            return await self._record(session, row)

    # Reading -------------------------------------------------------------------------------

    async def get(self, asset_id: str) -> AssetRecord | None:
        async with self._read() as session:
            row = await session.get(Asset, asset_id)
            return await self._record(session, row) if row is not None else None

    async def by_playback_id(self, playback_id: str) -> AssetRecord | None:
        async with self._read() as session:
            row = await session.scalar(select(Asset).where(Asset.playback_id == playback_id))
            return await self._record(session, row) if row is not None else None

    async def list_assets(
        self, *, limit: int = 100, after: str | None = None, stream_id: str | None = None
    ) -> list[AssetRecord]:
        """Assets oldest first; `after` is the id of the last asset of the previous page.

        Raises ValueError when `after` names no asset (for example one deleted since).
        """
        check_limit(limit)
        async with self._read() as session:
            query = select(Asset)
            if stream_id is not None:
                query = query.where(Asset.stream_id == stream_id)
            if after is not None:
                cursor = (
                    await session.execute(
                        select(Asset.created_at, Asset.id).where(Asset.id == after)
                    )
                ).first()
                if cursor is None:
                    raise ValueError(f"unknown cursor {after!r}: no such asset")
                created_at, cursor_id = cursor
                query = query.where(
                    (Asset.created_at > created_at)
                    | ((Asset.created_at == created_at) & (Asset.id > cursor_id))
                )
            rows = (await session.scalars(query.order_by(Asset.created_at, Asset.id).limit(limit))).all()
            return [await self._record(session, row) for row in rows]

    async def unfinished(self) -> list[AssetRecord]:
        """Assets still `recording` or `preparing`: at startup, what a killed node left."""
        async with self._read() as session:
            rows = (
                await session.scalars(
                    select(Asset)
                    .where(Asset.status.in_(("recording", "preparing")))
                    .order_by(Asset.created_at, Asset.id)
                )
            ).all()
            return [await self._record(session, row) for row in rows]

    async def expired(self, now: datetime, *, limit: int = 100) -> list[str]:
        """Ids of finished assets whose retention ran out."""
        async with self._read() as session:
            rows = await session.scalars(
                select(Asset.id)
                .where(
                    Asset.expires_at.is_not(None),
                    Asset.expires_at <= now,
                    Asset.status.in_(("ready", "errored")),
                )
                .order_by(Asset.expires_at)
                .limit(limit)
            )
            return list(rows.all())

    async def segments(self, asset_id: str, rendition: str) -> list[AssetSegmentRecord]:
        """A rendition's stored segments in playback order."""
        async with self._read() as session:
            rows = await session.scalars(
                select(AssetSegment)
                .where(AssetSegment.asset_id == asset_id, AssetSegment.rendition == rendition)
                .order_by(AssetSegment.msn)
            )
            return [_segment(row) for row in rows.all()]

    async def segment(self, asset_id: str, rendition: str, msn: int) -> AssetSegmentRecord | None:
        async with self._read() as session:
            row = await session.get(AssetSegment, (asset_id, rendition, msn))
            return _segment(row) if row is not None else None

    async def inits(self, asset_id: str, rendition: str) -> list[AssetInitRecord]:
        async with self._read() as session:
            rows = await session.scalars(
                select(AssetInit)
                .where(AssetInit.asset_id == asset_id, AssetInit.rendition == rendition)
                .order_by(AssetInit.generation)
            )
            return [
                AssetInitRecord(r.rendition, int(r.generation), r.key, r.size) for r in rows.all()
            ]

    async def delete(self, asset_id: str) -> bool:
        """Remove the asset's rows (its objects are the caller's to remove first)."""
        async with self._write.begin() as session:
            result = await session.execute(delete(Asset).where(Asset.id == asset_id))
            return bool(getattr(result, "rowcount", 0))


def _fields(record: AssetRenditionRecord | AssetInitRecord | AssetSegmentRecord) -> dict[str, object]:
    return asdict(record)
