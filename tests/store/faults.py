"""A full disk on demand: an engine hook that fails every write the way SQLite does.

While `full` is set, every INSERT, UPDATE and DELETE raises sqlite3's own
`OperationalError("database or disk is full")` from inside the engine, so it reaches
the store wrapped exactly like the real thing; reads still work, as they do when a
disk fills. `refused` counts the writes refused, and `refusals(n)` waits for them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

WRITES = ("INSERT", "UPDATE", "DELETE")


class DiskFull:
    def __init__(self, engine: AsyncEngine) -> None:
        self.full = False
        self.refused = 0
        self._changed = asyncio.Condition()
        self._loop = asyncio.get_running_loop()
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)

    def _before(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if self.full and statement.lstrip().upper().startswith(WRITES):
            self.refused += 1
            self._loop.call_soon_threadsafe(self._announce)
            raise sqlite3.OperationalError("database or disk is full")

    def _announce(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        self._loop.create_task(notify())

    async def refusals(self, count: int) -> None:
        """Wait until at least `count` writes were refused."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.refused >= count)
