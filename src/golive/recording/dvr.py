"""A live presentation's recorded segments, for the origin's DVR window (recording).

`LiveArchive` backs delivery's `DvrArchive`: a presentation whose stream records reports
to a `RecordingSession`, whose asset id names the objects its segments were stored under.
"""

from __future__ import annotations

import logging
from typing import Literal

from golive.packaging import Presentation
from golive.recording.recorder import RecordingSession
from golive.recording.storage import (
    ObjectMissing,
    SegmentStorage,
    StorageError,
    init_key,
    segment_key,
)

__all__ = ["LiveArchive"]

log = logging.getLogger(__name__)


class LiveArchive:
    """Reads a live presentation's stored segments and inits from recording storage."""

    def __init__(self, storage: SegmentStorage) -> None:
        self._storage = storage

    async def media(
        self,
        presentation: Presentation,
        rendition: str,
        kind: Literal["init", "segment"],
        number: int,
    ) -> bytes | Literal["unavailable"] | None:
        session = presentation.observer
        if not isinstance(session, RecordingSession) or session.failed:
            return None
        try:
            if kind == "init":
                key = init_key(session.asset_id, rendition, number)
            else:
                key = segment_key(session.asset_id, rendition, number)
        except ValueError:
            return None
        try:
            return await self._storage.read(key)
        except ObjectMissing:
            # Listed but not stored: still queued or spooled (retry), or dropped (gone).
            return "unavailable" if session.pending else None
        except StorageError as exc:
            log.warning("dvr media unavailable stream_id=%s asset_id=%s error=%s",
                        session.stream_id, session.asset_id, exc)
            return "unavailable"
