"""Assets: the CEA-608 channels the recorded pictures carry besides CC1 ("CC3": a second
language), which the VOD playlist offers too.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch:
        batch.add_column(sa.Column("caption_channels", sa.String(20), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("assets") as batch:
        batch.drop_column("caption_channels")
