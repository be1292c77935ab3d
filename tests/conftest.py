"""Session-wide servers shared by several test packages (started only when asked for)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.pgserver import PostgresServer, available, postgres_server

from golive.store import Store


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole session, stopped by pid at the end."""
    if not available():
        pytest.skip("PostgreSQL 15 is not installed (scripts/install-system-deps.sh)")
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresServer) -> str:
    """A database migrated to head once; each test copies it (CREATE DATABASE ... TEMPLATE)."""
    name = postgres.create_database()

    async def migrate() -> None:
        store = await Store.open(postgres.url(name))
        await store.close()

    # In a thread of its own: the fixture may be asked for from inside a running loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, migrate()).result()
    return name
