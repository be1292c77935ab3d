"""Initial schema: live streams, playback ids, API tokens, stream events, broadcasts.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "live_streams",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("stream_key_hash", sa.String(64), nullable=False),
        sa.Column("stream_key_prefix", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("latency_mode", sa.String(16), nullable=False),
        sa.Column("reconnect_window", sa.Float(), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("recording", sa.Boolean(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("active_broadcast_id", sa.String(40), nullable=True),
        sa.CheckConstraint("status IN ('idle', 'active', 'disabled')", name=op.f("ck_live_streams_status")),
        sa.CheckConstraint("latency_mode IN ('low', 'standard')", name=op.f("ck_live_streams_latency_mode")),
        sa.CheckConstraint(
            "reconnect_window >= 0 AND reconnect_window <= 1800", name=op.f("ck_live_streams_reconnect_window")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_streams")),
        sa.UniqueConstraint("stream_key_hash", name=op.f("uq_live_streams_stream_key_hash")),
    )
    op.create_index("ix_live_streams_created_at", "live_streams", ["created_at", "id"])

    op.create_table(
        "playback_ids",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("stream_id", sa.String(40), nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        _ts("created_at"),
        sa.CheckConstraint("policy IN ('public', 'signed')", name=op.f("ck_playback_ids_policy")),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["live_streams.id"],
            name=op.f("fk_playback_ids_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playback_ids")),
    )
    op.create_index(op.f("ix_playback_ids_stream_id"), "playback_ids", ["stream_id"])

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("token_prefix", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("last_used_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.CheckConstraint("scope IN ('admin', 'read')", name=op.f("ck_api_tokens_scope")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )

    op.create_table(
        "stream_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("stream_id", sa.String(40), nullable=False),
        sa.Column("broadcast_id", sa.String(40), nullable=True),
        sa.Column("type", sa.String(64), nullable=False),
        _ts("at"),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["live_streams.id"],
            name=op.f("fk_stream_events_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_events")),
    )
    op.create_index("ix_stream_events_stream_id_id", "stream_events", ["stream_id", "id"])

    op.create_table(
        "broadcasts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("stream_id", sa.String(40), nullable=False),
        _ts("started_at"),
        _ts("ended_at", nullable=True),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("remote_address", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["live_streams.id"],
            name=op.f("fk_broadcasts_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcasts")),
    )
    op.create_index(
        "ix_broadcasts_stream_id_started_at", "broadcasts", ["stream_id", "started_at"]
    )


def downgrade() -> None:
    op.drop_table("broadcasts")
    op.drop_table("stream_events")
    op.drop_table("api_tokens")
    op.drop_table("playback_ids")
    op.drop_table("live_streams")
