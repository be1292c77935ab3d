"""Broadcast samples: a live broadcast's ingest and encoder figures every few seconds, for
its post-event report.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broadcast_samples",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("stream_id", sa.String(40), nullable=False),
        sa.Column("broadcast_id", sa.String(40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["live_streams.id"],
            name=op.f("fk_broadcast_samples_stream_id_live_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_samples")),
    )
    op.create_index("ix_broadcast_samples_broadcast_id_at", "broadcast_samples",
                    ["broadcast_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_broadcast_samples_broadcast_id_at", table_name="broadcast_samples")
    op.drop_table("broadcast_samples")
