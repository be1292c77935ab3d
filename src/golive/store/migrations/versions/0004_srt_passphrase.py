"""SRT passphrase per live stream.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("live_streams") as batch:
        batch.add_column(sa.Column("srt_passphrase", sa.String(80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("live_streams") as batch:
        batch.drop_column("srt_passphrase")
