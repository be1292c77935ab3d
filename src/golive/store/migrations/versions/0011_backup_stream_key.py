"""Backup stream key per live stream: a second encoder may publish the same stream.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing streams have no backup key until one is asked for (reset-backup-stream-key).
    with op.batch_alter_table("live_streams") as batch:
        batch.add_column(sa.Column("backup_stream_key_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("backup_stream_key_prefix", sa.String(16), nullable=True))
        batch.create_unique_constraint(
            op.f("uq_live_streams_backup_stream_key_hash"), ["backup_stream_key_hash"]
        )


def downgrade() -> None:
    with op.batch_alter_table("live_streams") as batch:
        batch.drop_constraint(op.f("uq_live_streams_backup_stream_key_hash"), type_="unique")
        batch.drop_column("backup_stream_key_prefix")
        batch.drop_column("backup_stream_key_hash")
