"""Async engine and session factory for the store (control plane).

One URL picks the database: `sqlite+aiosqlite:///PATH` for the embedded default,
`postgresql+asyncpg://...` when a node outgrows it. On SQLite every connection
gets WAL (readers never block the writer, so the CLI and a running server share
the file), enforced foreign keys, and a busy timeout; and transactions are
begun by us rather than by the driver, so DDL is transactional and write
transactions take the write lock up front (`BEGIN IMMEDIATE`) instead of failing
with "database is locked" when a read turns into a write.

SQLite has one write lock per file. Writers of one process therefore queue in process
(`WriterSessions`, one FIFO gate per engine and event loop) before they take a pooled
connection: a burst of writes (a crowd's QoE beacons) then holds one connection, not the
whole pool waiting on the file lock, so readers keep theirs and no writer outwaits the busy
timeout. A writer that waits longer than `WRITE_QUEUE_TIMEOUT` gets `StoreBusy`, which
callers answer as 503 with Retry-After (and writers with a backoff treat as an outage).
PostgreSQL has row locks and needs no gate.

A SQLite file's pool keeps `SQLITE_POOL_SIZE` connections (SQLAlchemy's default keeps
five): each connection is a thread and a file open with four pragmas, and a burst of
readers beyond the kept ones (the API, the studios' QoE panels and the alert engine
together) used to open and close the rest every time.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import Connection, CursorResult, Result, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_

# Execution option that marks a connection's transaction as a writer (see `_begin`).
WRITE_OPTION = "golive_write"

BUSY_TIMEOUT_MS = 10_000

# How long a SQLite writer may queue in process before it is told the store is busy; well
# under the busy timeout, so a queued writer never meets "database is locked" from us.
WRITE_QUEUE_TIMEOUT = 5.0


class StoreBusy(Exception):
    """The embedded database's writers queued past `WRITE_QUEUE_TIMEOUT`: try again later."""

    retry_after = 2

    def __init__(self, waited: float) -> None:
        super().__init__(f"the database is busy: a write queued {waited:.1f} s; "
                         f"try again in {self.retry_after} s")


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


SQLITE_POOL_SIZE = 10
SQLITE_MAX_OVERFLOW = 20


@dataclass(frozen=True)
class PoolOptions:
    """Connection pool of a server database (PostgreSQL); a SQLite file's pool is
    SQLAlchemy's queue pool sized by `SQLITE_POOL_SIZE` (module doc)."""

    size: int = 5
    max_overflow: int = 10
    pre_ping: bool = True  # test each connection on checkout: survives a database restart
    timeout: float = 30.0  # seconds to wait for a free connection before failing


def create_engine(url: str, pool: PoolOptions | None = None, **engine_options: Any) -> AsyncEngine:
    """An async engine for `url`, with the SQLite settings above when it is SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            if "poolclass" not in engine_options:  # a file: SQLAlchemy's queue pool
                engine_options.setdefault("pool_size", SQLITE_POOL_SIZE)
                engine_options.setdefault("max_overflow", SQLITE_MAX_OVERFLOW)
        engine = create_async_engine(url, **engine_options)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    pool = pool or PoolOptions()
    return create_async_engine(
        url, pool_size=pool.size, max_overflow=pool.max_overflow,
        pool_pre_ping=pool.pre_ping, pool_timeout=pool.timeout, **engine_options,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched."""
    return cast(CursorResult[Any], result).rowcount


# One gate per SQLite engine (its pool: `execution_options` copies share it) and loop.
_GATES: weakref.WeakKeyDictionary[Any, dict[asyncio.AbstractEventLoop, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _writer_gate(engine: AsyncEngine) -> asyncio.Lock:
    per_loop = _GATES.setdefault(engine.sync_engine.pool, {})
    loop = asyncio.get_running_loop()
    gate = per_loop.get(loop)
    if gate is None:
        for stale in [other for other in per_loop if other.is_closed()]:
            del per_loop[stale]
        gate = per_loop[loop] = asyncio.Lock()
    return gate


class WriterSessions:
    """Write transactions on `engine`: `async with writers.begin() as session: ...`.

    Marked with `WRITE_OPTION` (SQLite takes its write lock up front) and, on SQLite,
    admitted one at a time in arrival order before a connection is taken (module doc).
    """

    def __init__(self, engine: AsyncEngine, *, queue_timeout: float | None = None) -> None:
        self._engine = engine
        self._sessions = create_sessionmaker(engine.execution_options(**{WRITE_OPTION: True}))
        self._gated = is_sqlite(engine)
        self._queue_timeout = queue_timeout

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        if not self._gated:
            async with self._sessions.begin() as session:
                yield session
            return
        async with self._admitted(), self._sessions.begin() as session:
            yield session

    @asynccontextmanager
    async def sqlite_driver(self) -> AsyncIterator[aiosqlite.Connection]:
        """SQLite only: a pooled connection's own aiosqlite connection, admitted like a
        write transaction but outside any transaction.

        Each statement on it is then a transaction of its own, run in one call to the
        driver's thread (and one more for the pool's reset when it goes back). A write
        transaction through the session takes about twenty such calls (cursors, BEGIN
        IMMEDIATE, the statement, COMMIT, closes, the pool's reset; 20 for a chat batch),
        and each waits for the GIL and the event loop's next turn: under load, tens of ms.
        """
        if not self._gated:
            raise TypeError("sqlite_driver() is for SQLite engines")
        async with self._admitted(), self._engine.connect() as connection:
            raw = await connection.get_raw_connection()
            yield cast(aiosqlite.Connection, raw.driver_connection)

    @asynccontextmanager
    async def _admitted(self) -> AsyncIterator[None]:
        """Our turn at the engine's gate (FIFO), or `StoreBusy` past the queue timeout."""
        gate = _writer_gate(self._engine)
        loop = asyncio.get_running_loop()
        queued = loop.time()
        limit = WRITE_QUEUE_TIMEOUT if self._queue_timeout is None else self._queue_timeout
        try:
            async with asyncio.timeout(limit):
                await gate.acquire()
        except TimeoutError:
            raise StoreBusy(loop.time() - queued) from None
        try:
            yield
        finally:
            gate.release()


class Tables:
    """Base of the store's repositories: short sessions over one engine.

    Every method of a repository opens its own session and returns frozen records.
    Writes run in `_write` sessions (marked with `WRITE_OPTION`, so on SQLite they
    take the write lock up front); reads run in plain `_read` ones.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._read: async_sessionmaker[AsyncSession] = create_sessionmaker(engine)
        self._write = WriterSessions(engine)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy (not the sqlite3 module) decide when transactions begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _wal(cursor: Any) -> None:
    """Put the file in WAL mode. Switching a new file takes its lock without waiting on
    the busy timeout, so nodes opening a fresh database together could fail with
    "database is locked" (1 run in 6 here): retry within the timeout, yielding to the
    loop (engines are async: connections are made in SQLAlchemy's greenlet)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as exc:  # the driver's OperationalError, adapted or not
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        await_(asyncio.sleep(delay))
        delay = min(delay * 2, 0.1)


def _sqlite_begin(connection: Connection) -> None:
    if connection.get_execution_options().get(WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")
