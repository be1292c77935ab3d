"""A full disk on demand: an engine hook that fails every write the way the database does.

While `full` is set, every INSERT, UPDATE and DELETE raises the driver's own error from
inside the engine, so it reaches the store wrapped exactly like the real thing: on
SQLite sqlite3's `OperationalError("database or disk is full")`, on PostgreSQL asyncpg's
`DiskFullError` (SQLSTATE 53100) as SQLAlchemy's asyncpg adapter translates it. Reads
still work, as they do when a disk fills. `refused` counts the writes refused, and `refusals(n)` waits for them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

WRITES = ("INSERT", "UPDATE", "DELETE")


class DiskFull:
    def __init__(self, engine: AsyncEngine) -> None:
        self.full = False
        self.refused = 0
        self._changed = asyncio.Condition()
        self._loop = asyncio.get_running_loop()
        self._dialect = engine.dialect
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)

    def _before(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if self.full and statement.lstrip().upper().startswith(WRITES):
            self.refused += 1
            self._loop.call_soon_threadsafe(self._announce)
            if self._dialect.name == "sqlite":
                raise sqlite3.OperationalError("database or disk is full")
            message = "could not extend file: No space left on device"
            raise self._dialect.loaded_dbapi.Error(message, asyncpg.exceptions.DiskFullError(message))

    def _announce(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        self._loop.create_task(notify())

    async def refusals(self, count: int) -> None:
        """Wait until at least `count` writes were refused."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.refused >= count)
