"""Webhook endpoints and their delivery outbox, API token scopes and expiry, the audit log.

Existing tokens keep what they could do: `admin` tokens become `admin`, `read`
tokens become `streams:read assets:read` (read-only, as before).

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("scopes", sa.String(200), nullable=True))
        batch.add_column(_ts("expires_at", nullable=True))
    op.execute("UPDATE api_tokens SET scopes = 'admin' WHERE scope = 'admin'")
    op.execute("UPDATE api_tokens SET scopes = 'assets:read streams:read' WHERE scope <> 'admin'")
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("scopes", existing_type=sa.String(200), nullable=False)
        batch.drop_constraint(op.f("ck_api_tokens_scope"), type_="check")
        batch.drop_column("scope")

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("secret", sa.String(80), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        _ts("lease_until", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index("ix_webhook_endpoints_created_at", "webhook_endpoints",
                    ["created_at", "id"])

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("endpoint_id", sa.String(40), nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at", nullable=True),
        _ts("last_attempt_at", nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.String(300), nullable=True),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("redelivery_of", _ID, nullable=True),
        sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')",
                           name=op.f("ck_webhook_deliveries_state")),
        sa.ForeignKeyConstraint(
            ["endpoint_id"], ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index("ix_webhook_deliveries_endpoint_id_id", "webhook_deliveries",
                    ["endpoint_id", "id"])
    op.create_index("ix_webhook_deliveries_state_endpoint_id_id", "webhook_deliveries",
                    ["state", "endpoint_id", "id"])

    op.create_table(
        "audit_log",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        _ts("at"),
        sa.Column("actor_type", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=True),
        sa.Column("actor_name", sa.String(200), nullable=False),
        sa.Column("remote_address", sa.String(100), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_target_type_target_id_id", "audit_log",
                    ["target_type", "target_id", "id"])
    op.create_index("ix_audit_log_actor_id_id", "audit_log", ["actor_id", "id"])
    op.create_index("ix_audit_log_action_id", "audit_log", ["action", "id"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("scope", sa.String(16), nullable=True))
    op.execute("UPDATE api_tokens SET scope = CASE WHEN scopes = 'admin' THEN 'admin' "
               "ELSE 'read' END")
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("scope", existing_type=sa.String(16), nullable=False)
        batch.create_check_constraint("scope", "scope IN ('admin', 'read')")
        batch.drop_column("expires_at")
        batch.drop_column("scopes")
