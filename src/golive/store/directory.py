"""The store as the broadcast hub's `StreamDirectory` (control plane, for stream).

The hub must never hold a `StreamRecord`: this adapter answers its lookups with a
frozen `StreamPolicy` and turns its lifecycle calls into broadcast rows and the
stream's live status. A lifecycle write that meets a database outage (disk full,
database away: `golive.store.outage`) raises `DirectoryUnavailable`, so the hub
keeps it and retries instead of losing the row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from golive.store.facade import Store
from golive.store.outage import is_outage
from golive.store.records import StreamRecord
from golive.stream import (
    BroadcastStart,
    DirectoryUnavailable,
    KeyState,
    LatencyMode,
    PlaybackId,
    RecoveredBroadcast,
    StreamPolicy,
)


def _latency_mode(value: str) -> LatencyMode:
    # The column's CHECK constraint allows only these two.
    if value == "low":
        return "low"
    if value == "standard":
        return "standard"
    raise ValueError(f"unknown latency mode {value!r} in the store")


def stream_policy(record: StreamRecord, profile_document: str = "") -> StreamPolicy:
    """What the pipeline needs of a stream record (and its pinned profile's TOML), and
    nothing else."""
    return StreamPolicy(
        stream_id=record.id,
        enabled=record.status != "disabled",
        playback_ids=tuple(
            PlaybackId(id=pid.id, signed=pid.policy == "signed") for pid in record.playback_ids
        ),
        profile=record.profile_label,
        profile_document=profile_document,
        latency_mode=_latency_mode(record.latency_mode),
        reconnect_window=record.reconnect_window,
        recording=record.recording,
        webrtc_playback=record.webrtc_playback,
        dvr_window=record.dvr_window,
        backup_key=record.backup_stream_key_prefix is not None,
    )


@asynccontextmanager
async def _outage_is_unavailable() -> AsyncIterator[None]:
    try:
        yield
    except Exception as exc:
        if is_outage(exc):
            raise DirectoryUnavailable(str(getattr(exc, "orig", None) or exc)) from exc
        raise


class StoreStreamDirectory:
    """`golive.stream.StreamDirectory` over the store's streams and broadcasts."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def policy_for_key_hash(self, stream_key_hash: str) -> StreamPolicy | None:
        record = await self._store.find_stream_by_key_hash(stream_key_hash)
        return None if record is None else await self._policy(record)

    async def policy(self, stream_id: str) -> StreamPolicy | None:
        record = await self._store.get_stream(stream_id)
        return None if record is None else await self._policy(record)

    async def _policy(self, record: StreamRecord) -> StreamPolicy:
        document = ""
        if record.profile_version is not None:
            pinned = await self._store.get_profile_version(record.profile, record.profile_version)
            document = "" if pinned is None else pinned.document
        return stream_policy(record, document)

    async def key_states(self, stream_ids: Sequence[str]) -> Mapping[str, KeyState]:
        states = await self._store.publish_states(list(stream_ids))
        return {
            stream_id: KeyState(enabled=status != "disabled", stream_key_hash=key_hash,
                                backup_stream_key_hash=backup_hash)
            for stream_id, (status, key_hash, backup_hash) in states.items()
        }

    async def broadcast_started(self, start: BroadcastStart) -> None:
        async with _outage_is_unavailable():
            await self._store.start_broadcast(
                start.stream_id, start.broadcast_id, start.protocol, start.remote_address,
                start.started_at,
            )

    async def broadcast_active(self, stream_id: str, broadcast_id: str) -> None:
        async with _outage_is_unavailable():
            await self._store.set_stream_status(stream_id, "active", broadcast_id)

    async def broadcast_ended(self, stream_id: str, broadcast_id: str, ended_at: datetime) -> None:
        # Both steps are safe to repeat, so a retry after an outage may redo the first.
        async with _outage_is_unavailable():
            await self._store.end_broadcast(broadcast_id, ended_at)
            record = await self._store.get_stream(stream_id)
            # Only this broadcast's live status goes: never one a later broadcast set.
            if (
                record is not None
                and record.status == "active"
                and record.active_broadcast_id in (None, broadcast_id)
            ):
                await self._store.set_stream_status(stream_id, "idle", None)

    async def media_seen(self, stream_id: str, broadcast_id: str, at: datetime) -> None:
        async with _outage_is_unavailable():
            await self._store.media_seen(broadcast_id, at)

    async def recover_broadcasts(self) -> Sequence[RecoveredBroadcast]:
        return [
            RecoveredBroadcast(
                stream_id=row.stream_id,
                broadcast_id=row.id,
                ended_at=row.ended_at,
                publisher_connected=row.publisher_connected,
            )
            for row in await self._store.recover_open_broadcasts()
        ]
