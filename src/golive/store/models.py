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
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

STREAM_STATUSES = ("idle", "active", "disabled")
LATENCY_MODES = ("low", "standard")
PLAYBACK_POLICIES = ("public", "signed")
TOKEN_SCOPES = ("admin", "read")

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
    status: Mapped[str] = mapped_column(String(16), default="idle")
    latency_mode: Mapped[str] = mapped_column(String(16), default="low")
    reconnect_window: Mapped[float] = mapped_column(Float)
    profile: Mapped[str] = mapped_column(String(64), default="default")
    recording: Mapped[bool] = mapped_column(Boolean, default=False)
    # WHEP playback: the transcoder adds one WebRTC-safe output for this stream's broadcasts.
    webrtc_playback: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    active_broadcast_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    srt_passphrase: Mapped[str | None] = mapped_column(String(80), nullable=True)

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

    stream: Mapped[LiveStream] = relationship(back_populates="playback_ids")


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint(_in("scope", TOKEN_SCOPES), name="scope"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


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
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# Playback views and their QoE events (golive.web) --------------------------------------------


class PlaybackView(Base):
    """One player on one page: created by the player's first QoE batch."""

    __tablename__ = "playback_views"
    __table_args__ = (
        Index("ix_playback_views_stream_id_started_at", "stream_id", "started_at"),
        Index("ix_playback_views_playback_id_last_seen_at", "playback_id", "last_seen_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    playback_id: Mapped[str] = mapped_column(String(64))
    stream_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("live_streams.id", ondelete="CASCADE")
    )
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    user_agent: Mapped[str] = mapped_column(String(300))


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
