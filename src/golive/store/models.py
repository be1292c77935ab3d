"""SQLAlchemy table models of the store (control plane).

Portable across SQLite and PostgreSQL: no dialect-specific SQL, string ids, and
every timestamp a timezone-aware UTC `datetime` (stored naive-UTC on SQLite,
`timestamptz` on PostgreSQL). Migrations in `store/migrations/` create exactly
these tables; change both together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

STREAM_STATUSES = ("idle", "active", "disabled")
LATENCY_MODES = ("low", "standard")
PLAYBACK_POLICIES = ("public", "signed")
# What an API token may do; `admin` may do everything (see golive.api.auth).
TOKEN_SCOPES = (
    "streams:read",
    "streams:write",
    "chat:moderate",
    "assets:read",
    "assets:write",
    "webhooks",
    "admin",
)
WEBHOOK_DELIVERY_STATES = ("pending", "delivered", "failed")
SIGNING_ALGORITHMS = ("RS256", "ES256")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
EventId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, always stored and returned in UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class LiveStream(Base):
    __tablename__ = "live_streams"
    __table_args__ = (
        CheckConstraint(_in("status", STREAM_STATUSES), name="status"),
        CheckConstraint(_in("latency_mode", LATENCY_MODES), name="latency_mode"),
        CheckConstraint("reconnect_window >= 0 AND reconnect_window <= 1800",
                        name="reconnect_window"),
        Index("ix_live_streams_created_at", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    stream_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    stream_key_prefix: Mapped[str] = mapped_column(String(16))
    # A second key for a backup encoder (hashed like the first); None until one is made.
    backup_stream_key_hash: Mapped[str | None] = mapped_column(String(64), unique=True,
                                                               default=None)
    backup_stream_key_prefix: Mapped[str | None] = mapped_column(String(16), default=None)
    status: Mapped[str] = mapped_column(String(16), default="idle")
    latency_mode: Mapped[str] = mapped_column(String(16), default="low")
    reconnect_window: Mapped[float] = mapped_column(Float)
    profile: Mapped[str] = mapped_column(String(64), default="default")
    # The pinned published version of `profile` (None only for streams made before
    # versioning, until golive pins them to the latest at start).
    profile_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recording: Mapped[bool] = mapped_column(Boolean, default=False)
    # WHEP playback: the transcoder adds one WebRTC-safe output for this stream's broadcasts.
    webrtc_playback: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Seconds of the broadcast its live playlists list for seeking back (0: off); needs recording.
    dvr_window: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    active_broadcast_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    srt_passphrase: Mapped[str | None] = mapped_column(String(80), nullable=True)
    # Days a recording of this stream is kept; None: the node's recording_retention_days.
    recording_retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Asked before a publish, a play session or a chat join (None: the node's, if any).
    access_hook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)

    playback_ids: Mapped[list[PlaybackId]] = relationship(
        back_populates="stream",
        lazy="selectin",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="PlaybackId.created_at, PlaybackId.id",
    )


class PlaybackId(Base):
    __tablename__ = "playback_ids"
    __table_args__ = (CheckConstraint(_in("policy", PLAYBACK_POLICIES), name="policy"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    stream_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("live_streams.id", ondelete="CASCADE"), index=True
    )
    policy: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Playback restriction (like Mux's): hosts whose pages may play it; None: any page.
    allowed_referrers: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    allow_empty_referrer: Mapped[bool] = mapped_column(Boolean, default=True,
                                                       server_default=true())

    stream: Mapped[LiveStream] = relationship(back_populates="playback_ids")


class SigningKey(Base):
    """A public key that verifies signed playback tokens; golive never keeps the private one."""

    __tablename__ = "signing_keys"
    __table_args__ = (CheckConstraint(_in("algorithm", SIGNING_ALGORITHMS), name="algorithm"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(8))
    public_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(16))
    # Space-separated, sorted names from TOKEN_SCOPES (checked by the repository).
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ProfileVersion(Base):
    """A published profile version: immutable once written (golive.ops.profiles)."""

    __tablename__ = "profile_versions"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[str] = mapped_column(Text)  # the TOML as published
    content_hash: Mapped[str] = mapped_column(String(64))  # StreamProfile.content_hash()
    author: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(1000))  # built-in NAME or the file's path
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProfilePin(Base):
    """One pin of a stream to a profile version; the newest is the stream's current one."""

    __tablename__ = "profile_pins"
    __table_args__ = (
        ForeignKeyConstraint(["name", "version"],
                             ["profile_versions.name", "profile_versions.version"]),
        Index("ix_profile_pins_stream", "stream_id", "id"),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    stream_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("live_streams.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    pinned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    pinned_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    forced: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Preflight(Base):
    """A preflight session of a stream and, once analysed, its go / no-go with every check."""

    __tablename__ = "preflights"
    __table_args__ = (Index("ix_preflights_stream", "stream_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    stream_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("live_streams.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16))  # waiting, capturing, analyzing, done, ...
    profile: Mapped[str] = mapped_column(String(64))  # NAME@VERSION judged against
    duration: Mapped[float] = mapped_column(Float)  # seconds of media asked for
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    verdict: Mapped[str | None] = mapped_column(String(8), nullable=True)  # go | no_go
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(String(1000), nullable=True)


class StreamEvent(Base):
    __tablename__ = "stream_events"
    __table_args__ = (Index("ix_stream_events_stream_id_id", "stream_id", "id"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    stream_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("live_streams.id", ondelete="CASCADE")
    )
    broadcast_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    type: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class Broadcast(Base):
    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_stream_id_started_at", "stream_id", "started_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    stream_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("live_streams.id", ondelete="CASCADE")
    )
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    protocol: Mapped[str] = mapped_column(String(16))
    remote_address: Mapped[str] = mapped_column(String(100))
    # Moved on every few seconds while media flows: where a killed node's broadcast ends.
    last_media_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class BroadcastSample(Base):
    """A live broadcast's ingest and encoder figures at one moment (`golive.health.history`),
    for its post-event report."""

    __tablename__ = "broadcast_samples"
    __table_args__ = (Index("ix_broadcast_samples_broadcast_id_at", "broadcast_id", "at"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    stream_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("live_streams.id", ondelete="CASCADE")
    )
    broadcast_id: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


# Chat (golive.chat) -------------------------------------------------------------------------

REVIEW_FALLBACKS = ("allow", "deny")


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_stream_id_id", "stream_id", "id"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    stream_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("live_streams.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(String(2000))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ip: Mapped[str] = mapped_column(String(64))


class ChatBan(Base):
    __tablename__ = "chat_bans"
    __table_args__ = (Index("ix_chat_bans_stream_id", "stream_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    stream_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("live_streams.id", ondelete="CASCADE")
    )
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChatSettings(Base):
    __tablename__ = "chat_settings"
    __table_args__ = (
        CheckConstraint(_in("review_hook_fallback", REVIEW_FALLBACKS),
                        name="review_hook_fallback"),
        CheckConstraint("slow_mode >= 0", name="slow_mode"),
    )

    stream_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("live_streams.id", ondelete="CASCADE"), primary_key=True
    )
    slow_mode: Mapped[int] = mapped_column(Integer, default=0)
    signed_in_only: Mapped[bool] = mapped_column(Boolean, default=False)
    review_hook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    review_hook_fallback: Mapped[str] = mapped_column(String(8), default="allow")
    # A JSON list of normalized terms (golive.store.chat.normalize_term).
    blocked_terms: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# Destinations (simulcast, golive.media.destinations) ------------------------------------------


class StreamDestination(Base):
    """An outside RTMP(S)/SRT target a stream is forwarded to while live.

    `url` is stored without its secret; `secret` (the stream key appended to an RTMP
    URL, or an SRT passphrase) is never returned in full by the API.
    """

    __tablename__ = "stream_destinations"
    __table_args__ = (Index("ix_stream_destinations_stream_id", "stream_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    stream_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("live_streams.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str | None] = mapped_column(String(512), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # `source`, or the name of a ladder rendition whose encoded output is forwarded.
    rendition: Mapped[str] = mapped_column(String(64), server_default="source",
                                           default="source")


# Playback views and their QoE events (golive.web) --------------------------------------------


class PlaybackView(Base):
    """One player on one page: created by the player's first QoE batch."""

    __tablename__ = "playback_views"
    __table_args__ = (
        Index("ix_playback_views_stream_id_started_at", "stream_id", "started_at"),
        Index("ix_playback_views_playback_id_last_seen_at", "playback_id", "last_seen_at"),
        Index("ix_playback_views_last_seen_at", "last_seen_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    playback_id: Mapped[str] = mapped_column(String(64))
    stream_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("live_streams.id", ondelete="CASCADE")
    )
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    user_agent: Mapped[str] = mapped_column(String(300))
    # The view's QoE once its raw events were pruned (golive.health's retention).
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


class PlaybackEvent(Base):
    __tablename__ = "playback_events"
    __table_args__ = (Index("ix_playback_events_view_id_id", "view_id", "id"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    view_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("playback_views.id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


# Webhooks (golive.webhooks) and the audit log ----------------------------------------------


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_created_at", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    # Event type names; an empty list means every event.
    event_types: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Kept in clear, like SRT passphrases: every delivery is signed with it.
    secret: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Which node sends this endpoint's deliveries, until when (one sender per endpoint).
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebhookDelivery(Base):
    """One event for one endpoint: the outbox row, then its delivery log entry."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_in("state", WEBHOOK_DELIVERY_STATES), name="state"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
        Index("ix_webhook_deliveries_state_endpoint_id_id", "state", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(64))
    # The exact bytes sent (UTF-8 JSON), rendered once so every attempt signs the same body.
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    response_excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)
    redelivery_of: Mapped[int | None] = mapped_column(EventId, nullable=True)


class AuditEntry(Base):
    """One control-plane change: who, from where, what, to which target, when."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_target_type_target_id_id", "target_type", "target_id", "id"),
        Index("ix_audit_log_actor_id_id", "actor_id", "id"),
        Index("ix_audit_log_action_id", "action", "id"),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    actor_name: Mapped[str] = mapped_column(String(200))
    remote_address: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
# Recordings and the assets they become (golive.recording) ------------------------------------

ASSET_STATUSES = ("recording", "preparing", "ready", "errored")


class Asset(Base):
    """One recorded broadcast: its segments are stored while it is live, then it is an asset.

    Not tied to the stream row by a foreign key: an asset outlives the stream that made
    it, and only deleting the asset removes its objects.
    """

    __tablename__ = "assets"
    __table_args__ = (
        CheckConstraint(_in("status", ASSET_STATUSES), name="status"),
        CheckConstraint(_in("playback_policy", PLAYBACK_POLICIES), name="playback_policy"),
        Index("ix_assets_created_at", "created_at", "id"),
        Index("ix_assets_stream_id", "stream_id"),
        Index("ix_assets_broadcast_id", "broadcast_id"),
        Index("ix_assets_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    stream_id: Mapped[str] = mapped_column(String(40))
    # Usually one per broadcast; two when a returning publisher forced a new presentation.
    broadcast_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    playback_id: Mapped[str] = mapped_column(String(64), unique=True)
    playback_policy: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # The pictures carry CEA-608 captions: the VOD playlist offers them.
    captions: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The channels found besides CC1 (always offered with captions), comma-separated: "CC3".
    caption_channels: Mapped[str] = mapped_column(String(20), default="", server_default="")


class AssetRendition(Base):
    """What a VOD multivariant playlist says of one rendition of an asset."""

    __tablename__ = "asset_renditions"

    asset_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    bandwidth: Mapped[int] = mapped_column(Integer)
    average_bandwidth: Mapped[int] = mapped_column(Integer)
    frame_rate: Mapped[float] = mapped_column(Float)
    codecs: Mapped[str] = mapped_column(String(200))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)


class AssetInit(Base):
    """One init segment (one per encoder run) of a rendition, once it is stored."""

    __tablename__ = "asset_inits"

    asset_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    rendition: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(Integer)


class AssetSegment(Base):
    """One stored media segment of a rendition: written once its object has landed."""

    __tablename__ = "asset_segments"

    asset_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    rendition: Mapped[str] = mapped_column(String(64), primary_key=True)
    msn: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger)
    media_start: Mapped[float] = mapped_column(Float)
    duration: Mapped[float] = mapped_column(Float)
    program_date_time: Mapped[datetime] = mapped_column(UTCDateTime())
    size: Mapped[int] = mapped_column(Integer)
    discontinuity: Mapped[bool] = mapped_column(Boolean)
    key: Mapped[str] = mapped_column(String(512))
