"""Live streams and their playback ids (control plane).

A stream's key is stored only as a keyed hash plus a short recognisable prefix;
the plaintext is returned exactly once, when it is created or reset. Only
portable SQL is used, so the same code runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select, update

from golive.core import hash_stream_key, new_playback_id, new_stream_key, random_id, utcnow
from golive.store.db import Tables, rowcount
from golive.store.models import (
    PLAYBACK_POLICIES,
    STREAM_STATUSES,
    Broadcast,
    LiveStream,
    PlaybackId,
    ProfilePin,
    ProfileVersion,
    StreamDestination,
    StreamEvent,
)
from golive.store.records import PlaybackIdRecord, StreamRecord
from golive.store.validation import (
    MAX_PROFILE_LENGTH,
    check_choice,
    check_dvr_recording,
    check_limit,
    check_text,
    validate_stream_fields,
)

STREAM_KEY_PREFIX_LENGTH = 7


def _playback_record(row: PlaybackId) -> PlaybackIdRecord:
    return PlaybackIdRecord(
        id=row.id, policy=row.policy, created_at=row.created_at,
        allowed_referrers=None if row.allowed_referrers is None else tuple(row.allowed_referrers),
        allow_empty_referrer=bool(row.allow_empty_referrer),
    )


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
        recording_retention_days=row.recording_retention_days,
        access_hook_url=row.access_hook_url,
        webrtc_playback=bool(row.webrtc_playback),
        dvr_window=int(row.dvr_window or 0),
        profile_version=row.profile_version,
        backup_stream_key_prefix=row.backup_stream_key_prefix,
        playback_ids=tuple(_playback_record(p) for p in row.playback_ids),
    )


def _has_key_hash(stream_key_hash: str) -> Any:
    """The stream whose stream key or backup key hashes to this: both publish alike."""
    return or_(
        LiveStream.stream_key_hash == stream_key_hash,
        LiveStream.backup_stream_key_hash == stream_key_hash,
    )


class StreamRepository(Tables):
    """Create, find, change and delete live streams and their playback ids."""

    async def create_stream(
        self,
        *,
        name: str,
        latency_mode: str = "low",
        reconnect_window: float = 60.0,
        profile: str = "default",
        recording: bool = False,
        recording_retention_days: int | None = None,
        playback_policy: str = "public",
        srt_passphrase: str | None = None,
        webrtc_playback: bool = False,
        dvr_window: int = 0,
        profile_version: int | None = None,
        pinned_by: str = "",
        backup_stream_key: str | None = None,
    ) -> tuple[StreamRecord, str]:
        """A new stream with one playback id; returns it and its plaintext stream key.

        `backup_stream_key` (a fresh `new_stream_key()` the caller shows once beside the
        stream key) is stored hashed as the stream's backup key; without it there is none.

        With `profile_version` (a published version of `profile`) the stream starts pinned
        to it, and the pin is recorded as by `pinned_by`."""
        fields = validate_stream_fields(
            {
                "name": name,
                "latency_mode": latency_mode,
                "reconnect_window": reconnect_window,
                "recording": recording,
                "recording_retention_days": recording_retention_days,
                "srt_passphrase": srt_passphrase,
                "webrtc_playback": webrtc_playback,
                "dvr_window": dvr_window,
            }
        )
        check_dvr_recording(fields["dvr_window"], fields["recording"])
        policy = check_choice("playback_policy", playback_policy, PLAYBACK_POLICIES)
        key = new_stream_key()
        now = utcnow()
        row = LiveStream(
            id=random_id("ls"),
            stream_key_hash=hash_stream_key(key),
            stream_key_prefix=key[:STREAM_KEY_PREFIX_LENGTH],
            backup_stream_key_hash=(None if backup_stream_key is None
                                    else hash_stream_key(backup_stream_key)),
            backup_stream_key_prefix=(None if backup_stream_key is None
                                      else backup_stream_key[:STREAM_KEY_PREFIX_LENGTH]),
            status="idle",
            created_at=now,
            updated_at=now,
            active_broadcast_id=None,
            playback_ids=[PlaybackId(id=new_playback_id(), policy=policy, created_at=now)],
            profile=check_text("profile", profile, MAX_PROFILE_LENGTH),
            profile_version=profile_version,
            **fields,
        )
        async with self._write.begin() as session:
            session.add(row)
            if profile_version is not None:
                if await session.get(ProfileVersion, (row.profile, profile_version)) is None:
                    raise ValueError(f"profile {row.profile}@{profile_version} is not published")
                await session.flush()  # the stream row before the pin that refers to it
                session.add(ProfilePin(
                    stream_id=row.id, name=row.profile, version=profile_version,
                    pinned_at=now, pinned_by=pinned_by[:200] or "unknown", reason="created",
                ))
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
        check_limit(limit)
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
        """Change some of name, latency_mode, reconnect_window, recording, srt_passphrase,
        webrtc_playback, dvr_window (the profile changes by pinning: `pin_stream_profile`)."""
        clean = validate_stream_fields(fields)
        if not clean:
            return await self.get_stream(stream_id)
        async with self._write.begin() as session:
            row = await session.get(LiveStream, stream_id)
            if row is None:
                return None
            for key, value in clean.items():
                setattr(row, key, value)
            # Checked on the result: a PATCH may turn either one alone (rolled back).
            check_dvr_recording(row.dvr_window, row.recording)
            row.updated_at = utcnow()
            await session.flush()
            return _stream_record(row)

    async def delete_stream(self, stream_id: str) -> bool:
        """Delete a stream; its playback ids, broadcasts and events go with it (FK cascade)."""
        async with self._write.begin() as session:
            # Explicit deletes as well as the cascade: correct even where a database was
            # opened without foreign key enforcement.
            await session.execute(delete(PlaybackId).where(PlaybackId.stream_id == stream_id))
            await session.execute(delete(StreamEvent).where(StreamEvent.stream_id == stream_id))
            await session.execute(
                delete(StreamDestination).where(StreamDestination.stream_id == stream_id))
            await session.execute(delete(Broadcast).where(Broadcast.stream_id == stream_id))
            result = await session.execute(delete(LiveStream).where(LiveStream.id == stream_id))
            return rowcount(result) > 0

    async def reset_stream_key(
        self, stream_id: str, backup_stream_key: str | None = None
    ) -> tuple[StreamRecord, str] | None:
        """Replace the stream key (the old one stops working); returns the new plaintext key.

        With `backup_stream_key` (a fresh key the caller shows once) the backup key is
        replaced in the same transaction; without it the backup key is left as it is."""
        key = new_stream_key()
        async with self._write.begin() as session:
            row = await session.get(LiveStream, stream_id)
            if row is None:
                return None
            row.stream_key_hash = hash_stream_key(key)
            row.stream_key_prefix = key[:STREAM_KEY_PREFIX_LENGTH]
            if backup_stream_key is not None:
                row.backup_stream_key_hash = hash_stream_key(backup_stream_key)
                row.backup_stream_key_prefix = backup_stream_key[:STREAM_KEY_PREFIX_LENGTH]
            row.updated_at = utcnow()
            await session.flush()
            return _stream_record(row), key

    async def reset_backup_stream_key(self, stream_id: str) -> tuple[StreamRecord, str] | None:
        """Make (or replace) the stream's backup key, which publishes exactly like the
        stream key; returns the new plaintext backup key (the old one stops working)."""
        key = new_stream_key()
        async with self._write.begin() as session:
            row = await session.get(LiveStream, stream_id)
            if row is None:
                return None
            row.backup_stream_key_hash = hash_stream_key(key)
            row.backup_stream_key_prefix = key[:STREAM_KEY_PREFIX_LENGTH]
            row.updated_at = utcnow()
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
                row.updated_at = utcnow()
            elif enabled and row.status == "disabled":
                row.status = "idle"
                row.updated_at = utcnow()
            await session.flush()
            return _stream_record(row)

    async def find_stream_by_key(self, stream_key: str) -> StreamRecord | None:
        return await self.find_stream_by_key_hash(hash_stream_key(stream_key))

    async def find_stream_by_key_hash(self, stream_key_hash: str) -> StreamRecord | None:
        async with self._read() as session:
            row = await session.scalar(
                select(LiveStream).where(_has_key_hash(stream_key_hash))
            )
            return None if row is None else _stream_record(row)

    async def srt_passphrase(self, stream_key: str) -> str | None:
        """The SRT passphrase of the stream with this key (None: unencrypted or no such key).

        SRT derives its keys from the passphrase itself, so unlike stream keys it is
        stored as given, readable only by this lookup.
        """
        async with self._read() as session:
            value: str | None = await session.scalar(
                select(LiveStream.srt_passphrase).where(_has_key_hash(hash_stream_key(stream_key)))
            )
            return value

    async def publish_states(
        self, stream_ids: list[str]
    ) -> dict[str, tuple[str, str, str | None]]:
        """(status, stream key hash, backup key hash) of each stream that still exists: one
        cheap query that lets the broadcast hub re-check every live publisher at once."""
        if not stream_ids:
            return {}
        async with self._read() as session:
            rows = await session.execute(
                select(
                    LiveStream.id, LiveStream.status, LiveStream.stream_key_hash,
                    LiveStream.backup_stream_key_hash,
                ).where(LiveStream.id.in_(stream_ids))
            )
            return {
                row.id: (row.status, row.stream_key_hash, row.backup_stream_key_hash)
                for row in rows
            }

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
        check_choice("policy", policy, PLAYBACK_POLICIES)
        async with self._write.begin() as session:
            row = await session.get(LiveStream, stream_id)
            if row is None:
                return None
            now = utcnow()
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
            if rowcount(result) == 0:
                return False
            await session.execute(
                update(LiveStream).where(LiveStream.id == stream_id).values(updated_at=utcnow())
            )
            return True

    async def set_stream_status(
        self, stream_id: str, status: str, broadcast_id: str | None
    ) -> None:
        """Record the live status; a disabled stream is never brought back by ingest."""
        check_choice("status", status, STREAM_STATUSES)
        query = update(LiveStream).where(LiveStream.id == stream_id)
        if status != "disabled":
            query = query.where(LiveStream.status != "disabled")
        else:
            broadcast_id = None
        async with self._write.begin() as session:
            await session.execute(query.values(status=status, active_broadcast_id=broadcast_id))
