"""The store's frozen records: what leaves the store instead of ORM rows (control plane).

Nothing outside `golive.store` ever holds an ORM object, so nothing can trigger a
lazy load or keep a transaction open; these records are what it gets instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class PlaybackIdRecord:
    id: str
    policy: str  # "public" | "signed"
    created_at: datetime
    # Hosts whose pages may play this id (None: any); whether a request without a referrer may.
    allowed_referrers: tuple[str, ...] | None = None
    allow_empty_referrer: bool = True


@dataclass(frozen=True)
class StreamRecord:
    id: str
    name: str
    status: str  # "idle" | "active" | "disabled"
    latency_mode: str  # "low" | "standard"
    reconnect_window: float
    profile: str
    recording: bool
    created_at: datetime
    updated_at: datetime
    active_broadcast_id: str | None
    stream_key_prefix: str
    playback_ids: tuple[PlaybackIdRecord, ...]
    srt_encrypted: bool = False  # an SRT passphrase is set (the passphrase never leaves)
    recording_retention_days: int | None = None  # None: the node's setting
    access_hook_url: str | None = None  # this stream's own access hook
    webrtc_playback: bool = False  # broadcasts also play over WHEP (one more encode)
    dvr_window: int = 0  # seconds live playlists list for seeking back (0: off)
    profile_version: int | None = None  # the pinned version of `profile` (None: not yet)
    backup_stream_key_prefix: str | None = None  # None: the stream has no backup key

    @property
    def profile_label(self) -> str:
        """`name@version` as the API shows the pin (just the name until one is pinned)."""
        if self.profile_version is None:
            return self.profile
        return f"{self.profile}@{self.profile_version}"


@dataclass(frozen=True)
class BroadcastRecord:
    id: str
    stream_id: str
    started_at: datetime
    ended_at: datetime | None
    protocol: str
    remote_address: str
    last_media_at: datetime | None = None  # to within the hub's media-seen interval


@dataclass(frozen=True)
class BroadcastSampleRecord:
    """A live broadcast's figures at `at` (`golive.health.history` says which)."""

    stream_id: str
    broadcast_id: str
    at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class RecoveredBroadcastRecord:
    """A broadcast a killed node left open, as `recover_open_broadcasts` closed it."""

    id: str
    stream_id: str
    ended_at: datetime  # when media was last seen; its start when none came
    publisher_connected: bool  # its log has no `disconnected` after the last `connected`


@dataclass(frozen=True)
class EventRecord:
    id: int
    stream_id: str
    broadcast_id: str | None
    type: str
    at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class ApiTokenRecord:
    id: str
    name: str
    scopes: tuple[str, ...]  # sorted names from models.TOKEN_SCOPES
    token_prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class WebhookEndpointRecord:
    id: str
    url: str
    event_types: tuple[str, ...]  # empty: every event
    enabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class WebhookDeliveryRecord:
    id: int
    endpoint_id: str
    event_id: str
    event_type: str
    created_at: datetime
    state: str  # "pending" | "delivered" | "failed"
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    response_status: int | None
    latency_ms: float | None
    error: str | None
    response_excerpt: str | None
    redelivery_of: int | None


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor_type: str  # "token" | "admin_token" | "studio" | "cli"
    actor_id: str | None
    actor_name: str
    remote_address: str
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class SigningKeyRecord:
    id: str
    algorithm: str  # "RS256" | "ES256"
    public_key: str  # PEM (SubjectPublicKeyInfo)
    created_at: datetime


@dataclass(frozen=True)
class ProfileVersionRecord:
    """A published, immutable profile version."""

    name: str
    version: int
    document: str  # the TOML text as published
    content_hash: str
    author: str
    source: str
    created_at: datetime

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ProfilePinRecord:
    """One pin of a stream to a profile version."""

    id: int
    stream_id: str
    name: str
    version: int
    pinned_at: datetime
    pinned_by: str
    reason: str | None
    forced: bool

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class PreflightRecord:
    """A preflight session; `result` holds the checks once it is done."""

    id: str
    stream_id: str
    status: str  # waiting | capturing | analyzing | done | expired | failed
    profile: str
    duration: float
    created_at: datetime
    finished_at: datetime | None
    verdict: str | None  # go | no_go
    result: dict[str, Any] | None
    error: str | None
