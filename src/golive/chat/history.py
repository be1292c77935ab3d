"""A stream's recent chat messages kept in memory, so entering a room costs no query (chat).

Filled from the database once, when the stream's first room opens, and kept current
by the service on send, delete and clear. It holds a few more messages than a viewer
gets (`spare`), so deleting a message still leaves a full history for later viewers
without another query; only after more than `spare` deletions in a row of recent
messages does the history a newcomer gets run short (the database stays complete).
Each entry keeps its server frame, built once, not once per joining viewer.

`replay_page` is the other way into a stream's history: the messages of a time range
from the database, in pages, for replaying chat beside a recording.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from golive.chat.frames import message_frame
from golive.chat.identity import stored_role
from golive.store import ChatMessageRecord, ChatStore

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
        if record.deleted_at is None:
            self.add_frame(record.id, message_frame(record))

    def add_frame(self, message_id: int, frame: dict[str, Any]) -> None:
        """A new message as its frame (one another node published); as `add`."""
        if self.capacity <= 0:
            return
        ids = self._ids
        if not ids or message_id > ids[-1]:
            ids.append(message_id)
            self._frames.append(frame)
        else:
            at = bisect.bisect_left(ids, message_id)
            if at < len(ids) and ids[at] == message_id:
                return
            ids.insert(at, message_id)
            self._frames.insert(at, frame)
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


# Replay --------------------------------------------------------------------------------

MAX_REPLAY_PAGE = 200
"""Messages one replay request returns at most."""
MAX_REPLAY_SPAN = timedelta(hours=1)
"""The longest time range one replay request may ask for."""
_CURSOR = re.compile(r"(?P<micros>[0-9]{1,17})-(?P<id>[0-9]{1,19})")


class ReplayRequestError(ValueError):
    """A replay request outside the bounds; the message says which."""


@dataclass(frozen=True, slots=True)
class ReplayPage:
    """One page of a stream's chat for a time range: message frames, oldest first, and the
    cursor of the next page (None when this page reaches the end of the range)."""

    frames: list[dict[str, Any]]
    next_cursor: str | None


def replay_cursor(record: ChatMessageRecord) -> str:
    """An opaque keyset cursor naming a message's place in (sent_at, id) order."""
    micros = (record.sent_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}-{record.id}"


def parse_replay_cursor(text: str) -> tuple[datetime, int]:
    match = _CURSOR.fullmatch(text)
    if match is None:
        raise ReplayRequestError("after must be a cursor returned as next")
    try:
        sent_at = _EPOCH + timedelta(microseconds=int(match["micros"]))
    except OverflowError as exc:
        raise ReplayRequestError("after must be a cursor returned as next") from exc
    return sent_at, int(match["id"])


async def replay_page(messages: ChatStore, stream_id: str, *, start: datetime, end: datetime,
                      after: str | None = None, limit: int = 100) -> ReplayPage:
    """The undeleted messages sent in [start, end), a page at a time (keyset by sent_at, id)."""
    if not 1 <= limit <= MAX_REPLAY_PAGE:
        raise ReplayRequestError(f"limit must be from 1 to {MAX_REPLAY_PAGE}")
    if end <= start:
        raise ReplayRequestError("to must be after from")
    if end - start > MAX_REPLAY_SPAN:
        raise ReplayRequestError(
            f"a request covers at most {int(MAX_REPLAY_SPAN.total_seconds())} seconds")
    position = parse_replay_cursor(after) if after is not None else None
    records = await messages.messages_between(stream_id, start=start, end=end, after=position,
                                              limit=limit + 1)
    more = len(records) > limit
    records = records[:limit]
    frames = [message_frame(replace(r, role=stored_role(r.user_id))) for r in records]
    return ReplayPage(frames, replay_cursor(records[-1]) if more else None)
