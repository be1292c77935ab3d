"""Release profiles: every published profile version, immutable, each stream's pins, and
preflight sessions with their results.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "profile_versions",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name="pk_profile_versions"),
    )
    op.create_table(
        "profile_pins",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("stream_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pinned_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.ForeignKeyConstraint(["stream_id"], ["live_streams.id"], ondelete="CASCADE",
                                name="fk_profile_pins_stream_id_live_streams"),
        sa.ForeignKeyConstraint(["name", "version"],
                                ["profile_versions.name", "profile_versions.version"],
                                name="fk_profile_pins_name_profile_versions"),
    )
    op.create_index("ix_profile_pins_stream", "profile_pins", ["stream_id", "id"])
    op.create_table(
        "preflights",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("stream_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verdict", sa.String(8), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(1000), nullable=True),
        sa.ForeignKeyConstraint(["stream_id"], ["live_streams.id"], ondelete="CASCADE",
                                name="fk_preflights_stream_id_live_streams"),
    )
    op.create_index("ix_preflights_stream", "preflights", ["stream_id", "created_at"])
    # Existing streams have a profile name only; golive pins them to the latest published
    # version of that name when it starts (a migration cannot read the profile files).
    with op.batch_alter_table("live_streams") as batch:
        batch.add_column(sa.Column("profile_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("live_streams") as batch:
        batch.drop_column("profile_version")
    op.drop_index("ix_preflights_stream", "preflights")
    op.drop_table("preflights")
    op.drop_index("ix_profile_pins_stream", "profile_pins")
    op.drop_table("profile_pins")
    op.drop_table("profile_versions")
