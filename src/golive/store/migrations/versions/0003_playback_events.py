"""Playback views and the QoE events their players report.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "playback_views",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("playback_id", sa.String(64), nullable=False),
        sa.Column("stream_id", sa.String(40), nullable=False),
        _ts("started_at"),
        _ts("last_seen_at"),
        sa.Column("user_agent", sa.String(300), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["live_streams.id"],
            name=op.f("fk_playback_views_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playback_views")),
    )
    op.create_index("ix_playback_views_stream_id_started_at", "playback_views",
                    ["stream_id", "started_at"])
    op.create_index("ix_playback_views_playback_id_last_seen_at", "playback_views",
                    ["playback_id", "last_seen_at"])

    op.create_table(
        "playback_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("view_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        _ts("at"),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["view_id"],
            ["playback_views.id"],
            name=op.f("fk_playback_events_view_id_playback_views"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playback_events")),
    )
    op.create_index("ix_playback_events_view_id_id", "playback_events", ["view_id", "id"])


def downgrade() -> None:
    op.drop_table("playback_events")
    op.drop_table("playback_views")
