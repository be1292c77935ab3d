"""What an ingest protocol server needs from the rest of golive (ingest).

A protocol server (RTMP, SRT, WHIP) authenticates nothing itself: it asks a
`PublishTarget` to open a publisher for the stream key it was given, pushes media
tags into the returned `Publisher`, and closes it when the connection ends.
"""

from __future__ import annotations

import enum
from typing import Protocol

from golive.formats.tag import MediaTag


class RefusalReason(enum.StrEnum):
    UNKNOWN_KEY = "unknown_key"
    DISABLED = "disabled"
    ALREADY_LIVE = "already_live"
    TOO_MANY_PUBLISHERS = "too_many_publishers"
    SHUTTING_DOWN = "shutting_down"


class PublishRefused(Exception):
    """The stream key may not publish now; `reason` says why, in words a publisher can show."""

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Publisher(Protocol):
    """One connected publisher of one broadcast."""

    @property
    def stream_id(self) -> str: ...

    @property
    def broadcast_id(self) -> str: ...

    def push(self, tag: MediaTag) -> None:
        """Hand one tag to the broadcast. Never blocks; never raises for media content."""

    def close(self, reason: str) -> None:
        """The connection ended (`reason`: "unpublish", "eof", "error: ...", "timeout")."""


class PublishTarget(Protocol):
    async def open_publisher(
        self, stream_key: str, *, protocol: str, remote_address: str
    ) -> Publisher:
        """Authenticate `stream_key` and start (or resume) its broadcast; raises PublishRefused."""
        ...
