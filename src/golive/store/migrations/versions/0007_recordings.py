"""Recordings and assets: each recorded broadcast, its renditions, inits and segments.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _asset_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["asset_id"], ["assets.id"], name=op.f(f"fk_{table}_asset_id_assets"), ondelete="CASCADE"
    )


def upgrade() -> None:
    with op.batch_alter_table("live_streams") as batch:
        batch.add_column(sa.Column("recording_retention_days", sa.Integer(), nullable=True))

    op.create_table(
        "assets",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("stream_id", sa.String(40), nullable=False),
        sa.Column("broadcast_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("playback_id", sa.String(64), nullable=False),
        sa.Column("playback_policy", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("ended_at", nullable=True),
        _ts("ready_at", nullable=True),
        _ts("expires_at", nullable=True),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.String(500), nullable=True),
        sa.CheckConstraint(
            "status IN ('recording', 'preparing', 'ready', 'errored')", name=op.f("ck_assets_status")
        ),
        sa.CheckConstraint(
            "playback_policy IN ('public', 'signed')", name=op.f("ck_assets_playback_policy")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("playback_id", name=op.f("uq_assets_playback_id")),
    )
    op.create_index("ix_assets_created_at", "assets", ["created_at", "id"])
    op.create_index("ix_assets_stream_id", "assets", ["stream_id"])
    op.create_index("ix_assets_broadcast_id", "assets", ["broadcast_id"])
    op.create_index("ix_assets_status", "assets", ["status"])

    op.create_table(
        "asset_renditions",
        sa.Column("asset_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("bandwidth", sa.Integer(), nullable=False),
        sa.Column("average_bandwidth", sa.Integer(), nullable=False),
        sa.Column("frame_rate", sa.Float(), nullable=False),
        sa.Column("codecs", sa.String(200), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        _asset_fk("asset_renditions"),
        sa.PrimaryKeyConstraint("asset_id", "name", name=op.f("pk_asset_renditions")),
    )
    op.create_table(
        "asset_inits",
        sa.Column("asset_id", sa.String(40), nullable=False),
        sa.Column("rendition", sa.String(64), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        _asset_fk("asset_inits"),
        sa.PrimaryKeyConstraint("asset_id", "rendition", "generation", name=op.f("pk_asset_inits")),
    )
    op.create_table(
        "asset_segments",
        sa.Column("asset_id", sa.String(40), nullable=False),
        sa.Column("rendition", sa.String(64), nullable=False),
        sa.Column("msn", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("media_start", sa.Float(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        _ts("program_date_time"),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("discontinuity", sa.Boolean(), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        _asset_fk("asset_segments"),
        sa.PrimaryKeyConstraint("asset_id", "rendition", "msn", name=op.f("pk_asset_segments")),
    )


def downgrade() -> None:
    op.drop_table("asset_segments")
    op.drop_table("asset_inits")
    op.drop_table("asset_renditions")
    op.drop_index("ix_assets_status", table_name="assets")
    op.drop_index("ix_assets_stream_id", table_name="assets")
    op.drop_index("ix_assets_created_at", table_name="assets")
    op.drop_table("assets")
    with op.batch_alter_table("live_streams") as batch:
        batch.drop_column("recording_retention_days")
