"""A fresh store for each test, on SQLite and on PostgreSQL (also used by tests/api).

The PostgreSQL store is a copy of a template migrated once per session, so each test
starts from an empty schema at head without running the migrations again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.pgserver import PostgresServer

from golive.store import Store


async def open_store(
    request: pytest.FixtureRequest, tmp_path: Path, event_history: int = 1000
) -> AsyncIterator[Store]:
    """The store the test's `backend` parameter names, closed (and dropped) afterwards."""
    if request.param == "sqlite":
        s = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite", event_history=event_history)
        try:
            yield s
        finally:
            await s.close()
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    database = server.create_database(template=request.getfixturevalue("postgres_template"))
    s = await Store.open(server.url(database), event_history=event_history)
    try:
        yield s
    finally:
        await s.close()
        server.drop_database(database)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async for s in open_store(request, tmp_path):
        yield s
