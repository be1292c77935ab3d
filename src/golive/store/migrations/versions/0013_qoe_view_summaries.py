"""QoE retention: a view's summary kept after its raw beacon events are pruned.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("playback_views") as batch:
        batch.add_column(sa.Column("summary", sa.JSON(), nullable=True))
    op.create_index("ix_playback_views_last_seen_at", "playback_views", ["last_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_playback_views_last_seen_at", "playback_views")
    with op.batch_alter_table("playback_views") as batch:
        batch.drop_column("summary")
