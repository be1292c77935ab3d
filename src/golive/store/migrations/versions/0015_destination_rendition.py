"""Destinations: which output a destination gets, `source` or a ladder rendition's name.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stream_destinations") as batch:
        batch.add_column(sa.Column("rendition", sa.String(64), nullable=False,
                                   server_default="source"))


def downgrade() -> None:
    with op.batch_alter_table("stream_destinations") as batch:
        batch.drop_column("rendition")
