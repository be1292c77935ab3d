"""What an ingest protocol server needs from the broadcast hub (stream).

A protocol server (RTMP, SRT, WHIP) authenticates nothing itself: it asks a
`PublishTarget` to open a publisher for the stream key it was given, pushes media
tags into the returned `Publisher`, and closes it when the connection ends.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Protocol

from golive.formats import MediaTag


class RefusalReason(enum.StrEnum):
    UNKNOWN_KEY = "unknown_key"
    DISABLED = "disabled"
    ALREADY_LIVE = "already_live"
    TOO_MANY_PUBLISHERS = "too_many_publishers"
    SHUTTING_DOWN = "shutting_down"
    THROTTLED = "throttled"  # too many failed attempts from this address
    ACCESS_DENIED = "access_denied"  # the stream's access hook said no (or failed closed)


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

    @property
    def webrtc_playback(self) -> bool:
        """The broadcast also plays over WebRTC: hand media on as it arrives (no read
        batching), since WebRTC players grow their jitter buffer with bursty input."""
        ...

    def push(self, tag: MediaTag) -> None:
        """Hand one tag to the broadcast. Never blocks; never raises for media content."""

    def close(self, reason: str) -> None:
        """The connection ended (`reason`: "unpublish", "eof", "error: ...", "timeout")."""


Disconnect = Callable[[str], None]
"""Called by the hub to drop a publisher (a newer connection took over, the stream was disabled)."""


class PublishTarget(Protocol):
    """The hub as every protocol server sees it; one definition for RTMP, SRT and WHIP."""

    def open_publisher(
        self,
        stream_key: str,
        *,
        protocol: str,
        remote_address: str,
        disconnect: Disconnect | None = None,
    ) -> Awaitable[Publisher]:
        """Authenticate `stream_key` and start (or resume) its broadcast; raises PublishRefused."""
        ...
