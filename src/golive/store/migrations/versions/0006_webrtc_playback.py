"""WebRTC (WHEP) playback per live stream.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing streams keep what they had: a node-wide switch that defaulted to off.
    with op.batch_alter_table("live_streams") as batch:
        batch.add_column(sa.Column("webrtc_playback", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("live_streams") as batch:
        batch.drop_column("webrtc_playback")
