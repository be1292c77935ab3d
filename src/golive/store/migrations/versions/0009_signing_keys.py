"""Signing keys for signed playback, referrer restrictions per playback id, access hook per stream.

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("algorithm", sa.String(8), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("algorithm IN ('RS256', 'ES256')", name=op.f("ck_signing_keys_algorithm")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
    )
    with op.batch_alter_table("live_streams") as batch:
        batch.add_column(sa.Column("access_hook_url", sa.String(2000), nullable=True))
    with op.batch_alter_table("playback_ids") as batch:
        batch.add_column(sa.Column("allowed_referrers", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("allow_empty_referrer", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("playback_ids") as batch:
        batch.drop_column("allow_empty_referrer")
        batch.drop_column("allowed_referrers")
    with op.batch_alter_table("live_streams") as batch:
        batch.drop_column("access_hook_url")
    op.drop_table("signing_keys")
