"""Chat: messages, bans and per-stream chat settings.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _stream_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["stream_id"],
        ["live_streams.id"],
        name=op.f(f"fk_{table}_stream_id_live_streams"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "chat_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("stream_id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("text", sa.String(2000), nullable=False),
        _ts("sent_at"),
        _ts("deleted_at", nullable=True),
        sa.Column("ip", sa.String(64), nullable=False),
        _stream_fk("chat_messages"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
    )
    op.create_index("ix_chat_messages_stream_id_id", "chat_messages", ["stream_id", "id"])

    op.create_table(
        "chat_bans",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("stream_id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        _ts("until", nullable=True),
        sa.Column("reason", sa.String(200), nullable=False),
        _ts("created_at"),
        _stream_fk("chat_bans"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_bans")),
    )
    op.create_index("ix_chat_bans_stream_id", "chat_bans", ["stream_id"])

    op.create_table(
        "chat_settings",
        sa.Column("stream_id", sa.String(40), nullable=False),
        sa.Column("slow_mode", sa.Integer(), nullable=False),
        sa.Column("signed_in_only", sa.Boolean(), nullable=False),
        sa.Column("review_hook_url", sa.String(2000), nullable=True),
        sa.Column("review_hook_fallback", sa.String(8), nullable=False),
        _ts("updated_at"),
        sa.CheckConstraint(
            "review_hook_fallback IN ('allow', 'deny')",
            name=op.f("ck_chat_settings_review_hook_fallback"),
        ),
        sa.CheckConstraint("slow_mode >= 0", name=op.f("ck_chat_settings_slow_mode")),
        _stream_fk("chat_settings"),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_chat_settings")),
    )


def downgrade() -> None:
    op.drop_table("chat_settings")
    op.drop_table("chat_bans")
    op.drop_table("chat_messages")
