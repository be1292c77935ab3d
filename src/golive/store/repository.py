"""The async data-access layer over the store's tables: streams, playback ids, broadcasts, events, API tokens (control plane).

Every method opens its own short session and returns frozen dataclass records, never
ORM objects, so nothing outside this module can trigger a lazy load or hold a
transaction open. Writes run in sessions marked with `WRITE_OPTION` (on SQLite that
takes the write lock up front with `BEGIN IMMEDIATE`); reads run in plain ones.
Only portable SQL is used, so the same code runs on SQLite and PostgreSQL.

Secrets (stream keys, API tokens) are stored only as keyed hashes plus a short
recognisable prefix; the plaintext is returned exactly once, when it is created.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, select, update
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from golive.core.events import Event
from golive.core.secrets import (
    hash_api_token,
    hash_stream_key,
    new_api_token,
    new_playback_id,
    new_stream_key,
    random_id,
)
from golive.store.db import WRITE_OPTION, create_engine, create_sessionmaker
from golive.store.migrate import upgrade
from golive.store.models import (
    LATENCY_MODES,
    PLAYBACK_POLICIES,
    STREAM_STATUSES,
    TOKEN_SCOPES,
    ApiToken,
    Broadcast,
    LiveStream,
    PlaybackId,
    StreamEvent,
)

STREAM_KEY_PREFIX_LENGTH = 7
TOKEN_PREFIX_LENGTH = 8
MAX_RECONNECT_WINDOW = 1800.0
MAX_NAME_LENGTH = 200
MAX_PROFILE_LENGTH = 64
# `authenticate_token` writes `last_used_at` at most this often per token.
LAST_USED_RESOLUTION = timedelta(minutes=1)

UPDATABLE_STREAM_FIELDS = frozenset(
    {"name", "latency_mode", "reconnect_window", "profile", "recording", "srt_passphrase"}
)
# libsrt accepts passphrases of 10 to 79 characters.
SRT_PASSPHRASE_LENGTH = (10, 79)


# Records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaybackIdRecord:
    id: str
    policy: str
    created_at: datetime


@dataclass(frozen=True)
class StreamRecord:
    id: str
    name: str
    status: str
    latency_mode: str
    reconnect_window: float
    profile: str
    recording: bool
    created_at: datetime
    updated_at: datetime
    active_broadcast_id: str | None
    stream_key_prefix: str
    playback_ids: tuple[PlaybackIdRecord, ...]
    srt_encrypted: bool = False  # an SRT passphrase is set (the passphrase never leaves)


@dataclass(frozen=True)
class ApiTokenRecord:
    id: str
    name: str
    scope: str
    token_prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class EventRecord:
    id: int
    stream_id: str
    broadcast_id: str | None
    type: str
    at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class BroadcastRecord:
    id: str
    stream_id: str
    started_at: datetime
    ended_at: datetime | None
    protocol: str
    remote_address: str


def _playback_record(row: PlaybackId) -> PlaybackIdRecord:
    return PlaybackIdRecord(id=row.id, policy=row.policy, created_at=row.created_at)


def _stream_record(row: LiveStream) -> StreamRecord:
    return StreamRecord(
        id=row.id,
        name=row.name,
        status=row.status,
        latency_mode=row.latency_mode,
        reconnect_window=float(row.reconnect_window),
        profile=row.profile,
        recording=bool(row.recording),
        created_at=row.created_at,
        updated_at=row.updated_at,
        active_broadcast_id=row.active_broadcast_id,
        stream_key_prefix=row.stream_key_prefix,
        srt_encrypted=row.srt_passphrase is not None,
        playback_ids=tuple(_playback_record(p) for p in row.playback_ids),
    )


def _token_record(row: ApiToken) -> ApiTokenRecord:
    return ApiTokenRecord(
        id=row.id,
        name=row.name,
        scope=row.scope,
        token_prefix=row.token_prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
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


def _broadcast_record(row: Broadcast) -> BroadcastRecord:
    return BroadcastRecord(
        id=row.id,
        stream_id=row.stream_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        protocol=row.protocol,
        remote_address=row.remote_address,
    )


# Validation ------------------------------------------------------------------------------


def _check_choice(what: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _check_text(what: str, value: object, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    if len(value) > max_length:
        raise ValueError(f"{what} must be at most {max_length} characters")
    return value


def _check_reconnect_window(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("reconnect_window must be a number of seconds")
    window = float(value)
    if not math.isfinite(window) or not 0 <= window <= MAX_RECONNECT_WINDOW:
        raise ValueError(
            f"reconnect_window must be between 0 and {MAX_RECONNECT_WINDOW:g} seconds; "
            f"got {value!r}"
        )
    return window


def _check_bool(what: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be true or false")
    return value


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer; got {limit!r}")
    return limit


def _validate_stream_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - UPDATABLE_STREAM_FIELDS)
    if unknown:
        raise ValueError(
            f"cannot update {', '.join(unknown)}; updatable fields are "
            f"{', '.join(sorted(UPDATABLE_STREAM_FIELDS))}"
        )
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "name":
            clean[key] = _check_text("name", value, MAX_NAME_LENGTH)
        elif key == "latency_mode":
            clean[key] = _check_choice("latency_mode", value, LATENCY_MODES)
        elif key == "reconnect_window":
            clean[key] = _check_reconnect_window(value)
        elif key == "profile":
            clean[key] = _check_text("profile", value, MAX_PROFILE_LENGTH)
        elif key == "recording":
            clean[key] = _check_bool("recording", value)
        elif key == "srt_passphrase":
            clean[key] = _check_srt_passphrase(value)
    return clean


def _check_srt_passphrase(value: Any) -> str | None:
    if value is None or value == "":
        return None  # unencrypted SRT
    low, high = SRT_PASSPHRASE_LENGTH
    if not isinstance(value, str) or not low <= len(value) <= high or not value.isprintable():
        raise ValueError(f"srt_passphrase must be {low} to {high} printable characters")
    return value


def _now() -> datetime:
    return datetime.now(UTC)


def _rowcount(result: Result[Any]) -> int:
    return cast(CursorResult[Any], result).rowcount


# The store -------------------------------------------------------------------------------


class Store:
    """Async access to the store's database. Create with `await Store.open(url)`."""

    def __init__(self, engine: AsyncEngine, *, event_history: int = 1000) -> None:
        if isinstance(event_history, bool) or not isinstance(event_history, int) \
                or event_history < 1:
            raise ValueError(f"event_history must be a positive integer; got {event_history!r}")
        self._engine = engine
        self._event_history = event_history
        self._read: async_sessionmaker[AsyncSession] = create_sessionmaker(engine)
        self._write: async_sessionmaker[AsyncSession] = create_sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True})
        )

    @classmethod
    async def open(cls, url: str, *, event_history: int = 1000) -> Store:
        """Connect to `url`, bring the schema up to date, and return the store."""
        engine = create_engine(url)
        try:
            store = cls(engine, event_history=event_history)
            await upgrade(engine)
        except BaseException:
            await engine.dispose()
            raise
        return store

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def event_history(self) -> int:
        return self._event_history

    async def close(self) -> None:
        await self._engine.dispose()

    async def reset_live_statuses(self) -> None:
        """At startup nothing is live: active streams go idle and open broadcasts end now."""
        now = _now()
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

    # Streams -----------------------------------------------------------------------------

    async def create_stream(
        self,
        *,
        name: str,
        latency_mode: str = "low",
        reconnect_window: float = 60.0,
        profile: str = "default",
        recording: bool = False,
        playback_policy: str = "public",
        srt_passphrase: str | None = None,
    ) -> tuple[StreamRecord, str]:
        """A new stream with one playback id; returns it and its plaintext stream key."""
        fields = _validate_stream_fields(
            {
                "name": name,
                "latency_mode": latency_mode,
                "reconnect_window": reconnect_window,
                "profile": profile,
                "recording": recording,
                "srt_passphrase": srt_passphrase,
            }
        )
        policy = _check_choice("playback_policy", playback_policy, PLAYBACK_POLICIES)
        key = new_stream_key()
        now = _now()
        row = LiveStream(
            id=random_id("ls"),
            stream_key_hash=hash_stream_key(key),
            stream_key_prefix=key[:STREAM_KEY_PREFIX_LENGTH],
            status="idle",
            created_at=now,
            updated_at=now,
            active_broadcast_id=None,
            playback_ids=[PlaybackId(id=new_playback_id(), policy=policy, created_at=now)],
            **fields,
        )
        async with self._write.begin() as session:
            session.add(row)
            await session.flush()
            record = _stream_record(row)
        return record, key

    async def get_stream(self, stream_id: str) -> StreamRecord | None:
        async with self._read() as session:
            row = await session.get(LiveStream, stream_id)
            return None if row is None else _stream_record(row)

    async def list_streams(
        self, *, limit: int = 100, after: str | None = None
    ) -> list[StreamRecord]:
        """Streams oldest first; `after` is the id of the last stream of the previous page.

        Raises ValueError when `after` names no stream (for example one deleted since).
        """
        _check_limit(limit)
        async with self._read() as session:
            query = select(LiveStream)
            if after is not None:
                cursor = (
                    await session.execute(
                        select(LiveStream.created_at, LiveStream.id).where(LiveStream.id == after)
                    )
                ).one_or_none()
                if cursor is None:
                    raise ValueError(f"unknown cursor {after!r}: no such live stream")
                created_at, cursor_id = cursor
                query = query.where(
                    (LiveStream.created_at > created_at)
                    | ((LiveStream.created_at == created_at) & (LiveStream.id > cursor_id))
                )
            query = query.order_by(LiveStream.created_at, LiveStream.id).limit(limit)
            rows = (await session.scalars(query)).all()
            return [_stream_record(row) for row in rows]

    async def update_stream(self, stream_id: str, **fields: Any) -> StreamRecord | None:
        """Change some of name, latency_mode, reconnect_window, profile, recording."""
        clean = _validate_stream_fields(fields)
        if not clean:
            return await self.get_stream(stream_id)
        async with self._write.begin() as session:
            row = await session.get(LiveStream, stream_id)
            if row is None:
                return None
            for key, value in clean.items():
                setattr(row, key, value)
            row.updated_at = _now()
            await session.flush()
            return _stream_record(row)

    async def delete_stream(self, stream_id: str) -> bool:
        """Delete a stream; its playback ids, broadcasts and events go with it (FK cascade)."""
        async with self._write.begin() as session:
            # Explicit deletes as well as the cascade: correct even where a database was
            # opened without foreign key enforcement.
            await session.execute(delete(PlaybackId).where(PlaybackId.stream_id == stream_id))
            await session.execute(delete(StreamEvent).where(StreamEvent.stream_id == stream_id))
            await session.execute(delete(Broadcast).where(Broadcast.stream_id == stream_id))
            result = await session.execute(delete(LiveStream).where(LiveStream.id == stream_id))
            return _rowcount(result) > 0

    async def reset_stream_key(self, stream_id: str) -> tuple[StreamRecord, str] | None:
        """Replace the stream key (the old one stops working); returns the new plaintext key."""
        key = new_stream_key()
        async with self._write.begin() as session:
            row = await session.get(LiveStream, stream_id)
            if row is None:
                return None
            row.stream_key_hash = hash_stream_key(key)
            row.stream_key_prefix = key[:STREAM_KEY_PREFIX_LENGTH]
            row.updated_at = _now()
            await session.flush()
            return _stream_record(row), key

    async def set_enabled(self, stream_id: str, enabled: bool) -> StreamRecord | None:
        """Disable (status "disabled", no active broadcast) or re-enable (back to "idle")."""
        async with self._write.begin() as session:
            row = await session.get(LiveStream, stream_id)
            if row is None:
                return None
            if not enabled and row.status != "disabled":
                row.status = "disabled"
                row.active_broadcast_id = None
                row.updated_at = _now()
            elif enabled and row.status == "disabled":
                row.status = "idle"
                row.updated_at = _now()
            await session.flush()
            return _stream_record(row)

    async def find_stream_by_key(self, stream_key: str) -> StreamRecord | None:
        async with self._read() as session:
            row = await session.scalar(
                select(LiveStream).where(LiveStream.stream_key_hash == hash_stream_key(stream_key))
            )
            return None if row is None else _stream_record(row)

    async def srt_passphrase(self, stream_key: str) -> str | None:
        """The SRT passphrase of the stream with this key (None: unencrypted or no such key).

        SRT derives its keys from the passphrase itself, so unlike stream keys it is
        stored as given, readable only by this lookup.
        """
        async with self._read() as session:
            value: str | None = await session.scalar(
                select(LiveStream.srt_passphrase).where(
                    LiveStream.stream_key_hash == hash_stream_key(stream_key)
                )
            )
            return value

    async def publish_states(self, stream_ids: list[str]) -> dict[str, tuple[str, str]]:
        """(status, stream key hash) of each stream that still exists: one cheap query
        that lets the broadcast hub re-check every live publisher at once."""
        if not stream_ids:
            return {}
        async with self._read() as session:
            rows = await session.execute(
                select(LiveStream.id, LiveStream.status, LiveStream.stream_key_hash).where(
                    LiveStream.id.in_(stream_ids)
                )
            )
            return {row.id: (row.status, row.stream_key_hash) for row in rows}

    async def find_stream_by_playback_id(
        self, playback_id: str
    ) -> tuple[StreamRecord, PlaybackIdRecord] | None:
        async with self._read() as session:
            row = await session.scalar(
                select(LiveStream)
                .join(PlaybackId, PlaybackId.stream_id == LiveStream.id)
                .where(PlaybackId.id == playback_id)
            )
            if row is None:
                return None
            record = _stream_record(row)
        for pid in record.playback_ids:
            if pid.id == playback_id:
                return record, pid
        return None

    async def add_playback_id(self, stream_id: str, policy: str) -> PlaybackIdRecord | None:
        _check_choice("policy", policy, PLAYBACK_POLICIES)
        async with self._write.begin() as session:
            row = await session.get(LiveStream, stream_id)
            if row is None:
                return None
            now = _now()
            pid = PlaybackId(id=new_playback_id(), policy=policy, created_at=now)
            row.playback_ids.append(pid)
            row.updated_at = now
            await session.flush()
            return _playback_record(pid)

    async def delete_playback_id(self, stream_id: str, playback_id: str) -> bool:
        async with self._write.begin() as session:
            result = await session.execute(
                delete(PlaybackId).where(
                    PlaybackId.id == playback_id, PlaybackId.stream_id == stream_id
                )
            )
            if _rowcount(result) == 0:
                return False
            await session.execute(
                update(LiveStream).where(LiveStream.id == stream_id).values(updated_at=_now())
            )
            return True

    async def set_stream_status(
        self, stream_id: str, status: str, broadcast_id: str | None
    ) -> None:
        """Record the live status; a disabled stream is never brought back by ingest."""
        _check_choice("status", status, STREAM_STATUSES)
        query = update(LiveStream).where(LiveStream.id == stream_id)
        if status != "disabled":
            query = query.where(LiveStream.status != "disabled")
        else:
            broadcast_id = None
        async with self._write.begin() as session:
            await session.execute(query.values(status=status, active_broadcast_id=broadcast_id))

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
            if await self.get_stream(stream_id) is not None:
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
        _check_limit(limit)
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
            if await self.get_stream(stream_id) is not None:
                raise

    async def list_events(
        self, stream_id: str, *, limit: int = 100, before: int | None = None
    ) -> list[EventRecord]:
        """A stream's events, newest first; `before` is the id of the last event seen."""
        _check_limit(limit)
        query = select(StreamEvent).where(StreamEvent.stream_id == stream_id)
        if before is not None:
            query = query.where(StreamEvent.id < before)
        query = query.order_by(StreamEvent.id.desc()).limit(limit)
        async with self._read() as session:
            rows = (await session.scalars(query)).all()
            return [_event_record(row) for row in rows]

    # API tokens --------------------------------------------------------------------------

    async def create_api_token(
        self, *, name: str, scope: str = "admin"
    ) -> tuple[ApiTokenRecord, str]:
        """A new API token; the plaintext is returned here and never again."""
        _check_text("name", name, MAX_NAME_LENGTH)
        _check_choice("scope", scope, TOKEN_SCOPES)
        token = new_api_token()
        row = ApiToken(
            id=random_id("tok"),
            name=name,
            token_hash=hash_api_token(token),
            token_prefix=token[:TOKEN_PREFIX_LENGTH],
            scope=scope,
            created_at=_now(),
            last_used_at=None,
            revoked_at=None,
        )
        async with self._write.begin() as session:
            session.add(row)
            await session.flush()
            record = _token_record(row)
        return record, token

    async def list_api_tokens(self) -> list[ApiTokenRecord]:
        async with self._read() as session:
            rows = (
                await session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id))
            ).all()
            return [_token_record(row) for row in rows]

    async def revoke_api_token(self, token_id: str) -> bool:
        """Revoke a token; True if it exists (revoking twice keeps the first time)."""
        async with self._write.begin() as session:
            row = await session.get(ApiToken, token_id)
            if row is None:
                return False
            if row.revoked_at is None:
                row.revoked_at = _now()
            return True

    async def authenticate_token(self, token: str) -> ApiTokenRecord | None:
        """The live (unrevoked) token with this plaintext, or None."""
        token_hash = hash_api_token(token)
        async with self._read() as session:
            row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))
            if row is None or row.revoked_at is not None:
                return None
            record = _token_record(row)
        now = _now()
        if record.last_used_at is not None and now - record.last_used_at < LAST_USED_RESOLUTION:
            return record
        async with self._write.begin() as session:
            result = await session.execute(
                update(ApiToken)
                .where(ApiToken.id == record.id, ApiToken.revoked_at.is_(None))
                .values(last_used_at=now)
            )
            if _rowcount(result) == 0:
                return None  # revoked (or deleted) in the meantime
        return ApiTokenRecord(
            id=record.id,
            name=record.name,
            scope=record.scope,
            token_prefix=record.token_prefix,
            created_at=record.created_at,
            last_used_at=now,
            revoked_at=None,
        )
