"""Published profile versions and each stream's pins to them (control plane).

A version, once written, never changes: publishing the same name and version with
other content is refused, and versions of a name only go up. A stream's pin is the
newest row of `profile_pins` for it, mirrored on the stream's own row
(`profile`, `profile_version`) so reads need no join. While a stream has an open
broadcast its pin is frozen: `pin_stream_profile` refuses unless told the change
is forced (the caller checks who may force, and why).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from golive.core import utcnow
from golive.store.db import Tables
from golive.store.models import Broadcast, LiveStream, ProfilePin, ProfileVersion
from golive.store.records import ProfilePinRecord, ProfileVersionRecord, StreamRecord
from golive.store.streams import _stream_record
from golive.store.validation import check_limit

MAX_PROFILE_DOCUMENT = 64 * 1024  # bytes of TOML; a ladder of 8 renditions is ~3 KiB


class ProfileConflict(ValueError):
    """A version that would change history: same name and version, other content; or
    a version number below the newest published one."""


class StreamLive(Exception):
    """The stream has an open broadcast, so its profile is frozen; `broadcast_id` names it."""

    def __init__(self, stream_id: str, broadcast_id: str) -> None:
        super().__init__(f"live stream {stream_id} is live (broadcast {broadcast_id})")
        self.stream_id = stream_id
        self.broadcast_id = broadcast_id


def _version_record(row: ProfileVersion) -> ProfileVersionRecord:
    return ProfileVersionRecord(
        name=row.name, version=row.version, document=row.document,
        content_hash=row.content_hash, author=row.author, source=row.source,
        created_at=row.created_at,
    )


def _pin_record(row: ProfilePin) -> ProfilePinRecord:
    return ProfilePinRecord(
        id=row.id, stream_id=row.stream_id, name=row.name, version=row.version,
        pinned_at=row.pinned_at, pinned_by=row.pinned_by, reason=row.reason,
        forced=bool(row.forced),
    )


class ProfileRepository(Tables):
    """Publish and read profile versions; pin streams to them."""

    async def publish_profile_version(
        self, *, name: str, version: int, document: str, content_hash: str, author: str,
        source: str,
    ) -> tuple[ProfileVersionRecord, bool]:
        """Store a version (returns it and True), or find it already stored with the same
        content (False). Raises ProfileConflict where it would rewrite history."""
        if len(document.encode()) > MAX_PROFILE_DOCUMENT:
            raise ValueError(f"profile {name}@{version} is over {MAX_PROFILE_DOCUMENT} bytes")
        async with self._write.begin() as session:
            row = await session.get(ProfileVersion, (name, version))
            if row is not None:
                if row.content_hash != content_hash:
                    raise ProfileConflict(
                        f"{name}@{version} is already published with other content "
                        f"(sha256 {row.content_hash[:12]}, from {row.source}); published "
                        f"versions never change: give the file version = "
                        f"{await self._next_version(name, session)}"
                    )
                return _version_record(row), False
            newest = await session.scalar(
                select(func.max(ProfileVersion.version)).where(ProfileVersion.name == name)
            )
            if newest is not None and version < newest:
                raise ProfileConflict(
                    f"{name}@{version} is older than the newest published version {newest}: "
                    f"versions only go up; give the file version = {newest + 1}"
                )
            row = ProfileVersion(
                name=name, version=version, document=document, content_hash=content_hash,
                author=author[:200], source=source[:1000], created_at=utcnow(),
            )
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                pass  # another node published it at the same moment: compare below
            else:
                return _version_record(row), True
        stored = await self.get_profile_version(name, version)
        if stored is None or stored.content_hash != content_hash:
            raise ProfileConflict(f"{name}@{version} was published with other content "
                                  "at the same moment")
        return stored, False

    async def _next_version(self, name: str, session: AsyncSession) -> int:
        newest = await session.scalar(
            select(func.max(ProfileVersion.version)).where(ProfileVersion.name == name)
        )
        return (newest or 0) + 1

    async def get_profile_version(self, name: str, version: int) -> ProfileVersionRecord | None:
        async with self._read() as session:
            row = await session.get(ProfileVersion, (name, version))
            return None if row is None else _version_record(row)

    async def latest_profile_version(self, name: str) -> ProfileVersionRecord | None:
        async with self._read() as session:
            row = await session.scalar(
                select(ProfileVersion).where(ProfileVersion.name == name)
                .order_by(ProfileVersion.version.desc()).limit(1)
            )
            return None if row is None else _version_record(row)

    async def list_profile_versions(
        self, name: str, *, limit: int = 100
    ) -> list[ProfileVersionRecord]:
        """Versions of one profile, newest first."""
        check_limit(limit)
        async with self._read() as session:
            rows = await session.scalars(
                select(ProfileVersion).where(ProfileVersion.name == name)
                .order_by(ProfileVersion.version.desc()).limit(limit)
            )
            return [_version_record(r) for r in rows]

    async def list_latest_profiles(self) -> list[ProfileVersionRecord]:
        """The newest version of every published profile, by name."""
        async with self._read() as session:
            newest = (
                select(ProfileVersion.name, func.max(ProfileVersion.version).label("v"))
                .group_by(ProfileVersion.name).subquery()
            )
            rows = await session.scalars(
                select(ProfileVersion).join(
                    newest,
                    (ProfileVersion.name == newest.c.name)
                    & (ProfileVersion.version == newest.c.v),
                ).order_by(ProfileVersion.name)
            )
            return [_version_record(r) for r in rows]

    async def open_broadcast_id(self, stream_id: str) -> str | None:
        """The stream's broadcast that has not ended (connecting, live or inside its
        reconnect window), if any."""
        async with self._read() as session:
            found: str | None = await session.scalar(
                select(Broadcast.id).where(
                    Broadcast.stream_id == stream_id, Broadcast.ended_at.is_(None)
                ).order_by(Broadcast.started_at.desc()).limit(1)
            )
            return found

    async def pin_stream_profile(
        self, stream_id: str, name: str, version: int, *, by: str, reason: str | None = None,
        forced: bool = False, frozen_while_live: bool = True,
    ) -> StreamRecord | None:
        """Pin the stream to `name@version` (None: no such stream). Raises StreamLive while
        the stream has an open broadcast unless `forced` (or `frozen_while_live` is False:
        golive's own pinning of streams from before versioning), and ValueError for a
        version that was never published."""
        async with self._write.begin() as session:
            row = await session.get(LiveStream, stream_id)
            if row is None:
                return None
            if await session.get(ProfileVersion, (name, version)) is None:
                raise ValueError(f"profile {name}@{version} is not published")
            if frozen_while_live and not forced:
                live = await session.scalar(
                    select(Broadcast.id).where(
                        Broadcast.stream_id == stream_id, Broadcast.ended_at.is_(None)
                    ).limit(1)
                )
                if live is not None:
                    raise StreamLive(stream_id, live)
            now = utcnow()
            row.profile, row.profile_version, row.updated_at = name, version, now
            session.add(ProfilePin(
                stream_id=stream_id, name=name, version=version, pinned_at=now,
                pinned_by=by[:200], reason=None if reason is None else reason[:1000],
                forced=forced,
            ))
            await session.flush()
            return _stream_record(row)

    async def list_profile_pins(self, stream_id: str, *, limit: int = 100) -> list[ProfilePinRecord]:
        """The stream's pins, newest (current) first."""
        check_limit(limit)
        async with self._read() as session:
            rows = await session.scalars(
                select(ProfilePin).where(ProfilePin.stream_id == stream_id)
                .order_by(ProfilePin.id.desc()).limit(limit)
            )
            return [_pin_record(r) for r in rows]

    async def unpinned_streams(self) -> list[tuple[str, str]]:
        """(id, profile name) of streams made before versioning, not yet pinned."""
        async with self._read() as session:
            rows = await session.execute(
                select(LiveStream.id, LiveStream.profile).where(
                    LiveStream.profile_version.is_(None)
                )
            )
            return [(r.id, r.profile) for r in rows]
