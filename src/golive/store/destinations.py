"""A stream's destinations (simulcast targets), their URLs and secrets (control plane).

The URL is stored as given, without its secret; the secret (an RTMP stream key, or
an SRT passphrase) is stored beside it and put together with the URL only by
`DestinationRecord.target_url`, for the forwarder. The API shows it masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from sqlalchemy import delete, func, select

from golive.core import random_id, utcnow
from golive.store.db import Tables, rowcount
from golive.store.models import LiveStream, StreamDestination

MAX_DESTINATIONS_PER_STREAM = 10
MAX_NAME_LENGTH = 100
MAX_SECRET_LENGTH = 512
MAX_RENDITION_LENGTH = 64
SOURCE = "source"  # the publisher's own media, not a rendition


class DestinationLimit(ValueError):
    """The stream already has `MAX_DESTINATIONS_PER_STREAM` destinations."""


@dataclass(frozen=True)
class DestinationRecord:
    id: str
    stream_id: str
    name: str
    url: str  # without the secret
    secret: str | None  # stream key (RTMP) or passphrase (SRT); never shown in full
    enabled: bool
    created_at: datetime
    rendition: str = SOURCE  # or a ladder rendition's name

    @property
    def target_url(self) -> str:
        """The URL ffmpeg publishes to: the key appended to an RTMP(S) URL's path, the
        passphrase added to an SRT URL's query."""
        if not self.secret:
            return self.url
        if self.url.startswith("srt://"):
            joiner = "&" if "?" in self.url else "?"
            return f"{self.url}{joiner}passphrase={quote(self.secret, safe='')}"
        return f"{self.url.rstrip('/')}/{quote(self.secret, safe='')}"


def _record(row: StreamDestination) -> DestinationRecord:
    return DestinationRecord(id=row.id, stream_id=row.stream_id, name=row.name, url=row.url,
                             secret=row.secret, enabled=row.enabled, created_at=row.created_at,
                             rendition=row.rendition)


class DestinationStore(Tables):
    """Create, list, find and delete a stream's destinations; shares the engine of `Store`."""

    async def create_destination(
        self, stream_id: str, *, name: str, url: str, secret: str | None, enabled: bool = True,
        rendition: str = SOURCE,
    ) -> DestinationRecord | None:
        """A new destination; None when the stream does not exist. The URL must have
        been checked (`check_destination_url`), the rendition against the stream's
        ladder, by the caller."""
        if not 1 <= len(rendition) <= MAX_RENDITION_LENGTH:
            raise ValueError(f"rendition must be 1 to {MAX_RENDITION_LENGTH} characters")
        if not 1 <= len(name) <= MAX_NAME_LENGTH:
            raise ValueError(f"name must be 1 to {MAX_NAME_LENGTH} characters")
        if secret is not None and not 1 <= len(secret) <= MAX_SECRET_LENGTH:
            raise ValueError(f"key must be 1 to {MAX_SECRET_LENGTH} characters")
        if secret is not None and url.startswith("srt://") and not 10 <= len(secret) <= 79:
            raise ValueError("key: an SRT passphrase is 10 to 79 characters")
        async with self._write.begin() as session:
            if await session.get(LiveStream, stream_id) is None:
                return None
            count = await session.scalar(
                select(func.count()).select_from(StreamDestination)
                .where(StreamDestination.stream_id == stream_id))
            if (count or 0) >= MAX_DESTINATIONS_PER_STREAM:
                raise DestinationLimit(
                    f"a stream has at most {MAX_DESTINATIONS_PER_STREAM} destinations")
            row = StreamDestination(id=random_id("dst"), stream_id=stream_id, name=name,
                                    url=url, secret=secret, enabled=enabled,
                                    created_at=utcnow(), rendition=rendition)
            session.add(row)
            await session.flush()
            return _record(row)

    async def list_destinations(self, stream_id: str) -> list[DestinationRecord]:
        async with self._read.begin() as session:
            rows = await session.scalars(
                select(StreamDestination).where(StreamDestination.stream_id == stream_id)
                .order_by(StreamDestination.created_at, StreamDestination.id))
            return [_record(row) for row in rows]

    async def get_destination(self, stream_id: str, destination_id: str
                              ) -> DestinationRecord | None:
        async with self._read.begin() as session:
            row = await session.get(StreamDestination, destination_id)
            return _record(row) if row is not None and row.stream_id == stream_id else None

    async def update_destination(
        self, stream_id: str, destination_id: str, *, enabled: bool | None = None,
        rendition: str | None = None,
    ) -> DestinationRecord | None:
        """Change what is given; the destination as it is now (None: no such destination)."""
        if rendition is not None and not 1 <= len(rendition) <= MAX_RENDITION_LENGTH:
            raise ValueError(f"rendition must be 1 to {MAX_RENDITION_LENGTH} characters")
        async with self._write.begin() as session:
            row = await session.get(StreamDestination, destination_id)
            if row is None or row.stream_id != stream_id:
                return None
            if enabled is not None:
                row.enabled = enabled
            if rendition is not None:
                row.rendition = rendition
            await session.flush()
            return _record(row)

    async def delete_destination(self, stream_id: str, destination_id: str) -> bool:
        async with self._write.begin() as session:
            result = await session.execute(delete(StreamDestination).where(
                StreamDestination.id == destination_id,
                StreamDestination.stream_id == stream_id))
            return rowcount(result) > 0
