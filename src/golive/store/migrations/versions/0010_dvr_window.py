"""DVR window per live stream: seconds its live playlists list for seeking back.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing streams keep the live window only (0: off).
    with op.batch_alter_table("live_streams") as batch:
        batch.add_column(sa.Column("dvr_window", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("live_streams") as batch:
        batch.drop_column("dvr_window")
