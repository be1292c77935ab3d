"""Destinations (simulcast): the outside RTMP(S)/SRT targets a stream is forwarded to.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stream_destinations",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("stream_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret", sa.String(512), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["live_streams.id"],
            name=op.f("fk_stream_destinations_stream_id_live_streams"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_destinations")),
    )
    op.create_index("ix_stream_destinations_stream_id", "stream_destinations",
                    ["stream_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_stream_destinations_stream_id", "stream_destinations")
    op.drop_table("stream_destinations")
