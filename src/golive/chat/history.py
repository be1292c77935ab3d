"""A stream's recent chat messages kept in memory, so entering a room costs no query (chat).

Filled from the database once, when the stream's first room opens, and kept current
by the service on send, delete and clear. It holds a few more messages than a viewer
gets (`spare`), so deleting a message still leaves a full history for later viewers
without another query; only after more than `spare` deletions in a row of recent
messages does the history a newcomer gets run short (the database stays complete).
Each entry keeps its server frame, built once, not once per joining viewer.
"""

from __future__ import annotations

import bisect
from typing import Any

from golive.chat.frames import message_frame
from golive.store import ChatMessageRecord


class History:
    """The newest messages of one stream, oldest first, as (id, frame) pairs."""

    def __init__(self, size: int, spare: int | None = None) -> None:
        self.size = size
        self.capacity = size + (size if spare is None else spare)
        self._ids: list[int] = []
        self._frames: list[dict[str, Any]] = []

    def fill(self, records: list[ChatMessageRecord]) -> None:
        """Start from the newest undeleted messages of the database (oldest first)."""
        self._ids = []
        self._frames = []
        for record in records:
            self.add(record)

    def add(self, record: ChatMessageRecord) -> None:
        """A new message; ordered by id (sends may finish out of order), kept once."""
        if self.capacity <= 0 or record.deleted_at is not None:
            return
        ids = self._ids
        if not ids or record.id > ids[-1]:
            ids.append(record.id)
            self._frames.append(message_frame(record))
        else:
            at = bisect.bisect_left(ids, record.id)
            if at < len(ids) and ids[at] == record.id:
                return
            ids.insert(at, record.id)
            self._frames.insert(at, message_frame(record))
        extra = len(ids) - self.capacity
        if extra > 0:
            del ids[:extra]
            del self._frames[:extra]

    def delete(self, message_id: int) -> None:
        at = bisect.bisect_left(self._ids, message_id)
        if at < len(self._ids) and self._ids[at] == message_id:
            del self._ids[at]
            del self._frames[at]

    def clear(self) -> None:
        self._ids.clear()
        self._frames.clear()

    def frames(self) -> list[dict[str, Any]]:
        """What a viewer entering the room gets: the last `size` messages, oldest first."""
        if self.size <= 0:
            return []
        return self._frames[-self.size:]
