"""Bringing a database up to the current schema: `alembic upgrade head`, in code (control plane).

No alembic.ini is needed: the config is built here and points at the migrations
shipped inside the package. Safe to call on every start (a database already at
head is left alone) and from async code (it runs on the engine's connection via
`run_sync`). On SQLite the whole upgrade is one `BEGIN IMMEDIATE` transaction,
so a server and a CLI starting at the same moment do not race each other. On
PostgreSQL the upgrade's transaction first takes an advisory lock, so the nodes of a
cluster started together against an empty database migrate it once, one after the
other (without it they raced to create `alembic_version` and all but one failed).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from golive.store.db import WRITE_OPTION

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 0x676F6C6976650002  # PostgreSQL advisory lock key: "golive" + 2


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An alembic `Config` for golive's migrations, bound to a connection or a URL."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Held until this transaction ends: a second node waits here, then finds head.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    if current_revision(connection) == head_revision():
        return
    command.upgrade(alembic_config(connection), "head")


async def upgrade(engine: AsyncEngine) -> None:
    """Apply every migration the database is missing; a no-op when it is at head."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(**{WRITE_OPTION: True})
        async with connection.begin():
            await connection.run_sync(_upgrade)


async def revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    async with engine.connect() as connection:
        return await connection.run_sync(current_revision)
