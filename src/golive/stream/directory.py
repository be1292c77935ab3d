"""What the broadcast hub knows of a stream, and whom it asks (stream).

The store owns stream records; the hub never sees one. It asks a
`StreamDirectory` (which the store implements) for a frozen `StreamPolicy`:
the few settings the pipeline acts on. Broadcast lifecycle writes go back
through the same protocol, so the hub depends on this module, not on a database.
A write the directory cannot make *yet* (its database is full or away) raises
`DirectoryUnavailable`, and the hub keeps it and tries again; at startup
`recover_broadcasts` closes what a killed node left open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

LatencyMode = Literal["low", "standard"]


@dataclass(frozen=True, slots=True)
class PlaybackId:
    """A name viewers play a stream under; a signed one needs a playback token."""

    id: str
    signed: bool


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    """What the pipeline needs to know about a stream to run its broadcast."""

    stream_id: str
    enabled: bool  # False: the stream is disabled and may not publish
    playback_ids: tuple[PlaybackId, ...]
    profile: str  # the release profile: NAME@VERSION when pinned, else NAME
    latency_mode: LatencyMode
    reconnect_window: float  # seconds a broadcast waits for its publisher to return
    recording: bool
    # WHEP playback: the media stage adds one WebRTC-safe output (one more encode) and
    # ingest hands media on as it arrives (no read batching: WebRTC jitter buffers grow
    # with bursty input). Fixed for a broadcast's transcoder when it starts.
    webrtc_playback: bool = False
    # Seconds the live playlists list for seeking back (0: off); older segments than the
    # in-memory window come from the broadcast's recording, so it only applies when recording.
    dvr_window: int = 0
    # The pinned profile version's TOML as published (immutable), so a broadcast runs
    # exactly what was pinned when it started whatever the files say now; empty: the
    # media stage loads `profile` by name from the profile files.
    profile_document: str = ""
    # The stream has a backup key: a second encoder may publish and stand by (alerts name
    # a missing backup only when there is none).
    backup_key: bool = False

    @property
    def low_latency(self) -> bool:
        return self.latency_mode == "low"


@dataclass(frozen=True, slots=True)
class KeyState:
    """Enough of a stream to re-check a live publisher: still enabled, still this key."""

    enabled: bool
    stream_key_hash: str
    backup_stream_key_hash: str | None = None  # the backup encoder's key, if the stream has one

    def admits(self, stream_key_hash: str) -> bool:
        """A publisher with this key hash may still publish (primary or backup key)."""
        return stream_key_hash in (self.stream_key_hash, self.backup_stream_key_hash)


@dataclass(frozen=True, slots=True)
class BroadcastStart:
    """A new broadcast as the directory records it."""

    stream_id: str
    broadcast_id: str
    protocol: str
    remote_address: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class RecoveredBroadcast:
    """A broadcast a killed node left open, closed at startup by `recover_broadcasts`."""

    stream_id: str
    broadcast_id: str
    ended_at: datetime  # when media was last seen on it (its start when none came)
    publisher_connected: bool  # no `disconnected` was recorded for it before the crash


class DirectoryUnavailable(Exception):
    """A lifecycle write failed for a reason that passes (disk full, database away).

    The same write may succeed later; the hub retries it, in order, with backoff.
    """


class StreamDirectory(Protocol):
    """The streams as the hub sees them: lookups before publishing, lifecycle after."""

    async def policy_for_key_hash(self, stream_key_hash: str) -> StreamPolicy | None:
        """The stream whose stream key or backup key hashes to this
        (`golive.core.secrets.hash_stream_key`)."""
        ...

    async def policy(self, stream_id: str) -> StreamPolicy | None:
        """The stream's current policy; None once it was deleted."""
        ...

    async def key_states(self, stream_ids: Sequence[str]) -> Mapping[str, KeyState]:
        """One cheap lookup for many live streams; deleted streams are missing."""
        ...

    async def broadcast_started(self, start: BroadcastStart) -> None:
        """Record a new broadcast (a no-op when the stream was deleted meanwhile)."""
        ...

    async def broadcast_active(self, stream_id: str, broadcast_id: str) -> None:
        """Media flows: the stream is live with this broadcast (never revives a disabled one)."""
        ...

    async def broadcast_ended(self, stream_id: str, broadcast_id: str, ended_at: datetime) -> None:
        """The broadcast is over; a stream still marked live with it goes idle."""
        ...

    async def media_seen(self, stream_id: str, broadcast_id: str, at: datetime) -> None:
        """Media flowed at `at` (the hub says so every few seconds, not per tag)."""
        ...

    async def recover_broadcasts(self) -> Sequence[RecoveredBroadcast]:
        """Close every broadcast still open (a node was killed), each when media was last
        seen on it, and set live streams idle; return what was closed, oldest first."""
        ...
