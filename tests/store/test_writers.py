"""Write transactions queue in process on SQLite (`golive.store.db.WriterSessions`).

A crowd's beacons used to each take a pooled connection and then wait on SQLite's one
write lock, starving readers and, past the busy timeout, failing with "database is
locked". Writers now queue before they take a connection, and one that queues too long
is told the store is busy (answered 503, retried by writers with a backoff).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from golive.store import Store, StoreBusy, is_outage
from golive.store.db import WriterSessions, is_sqlite
from golive.store.views import NewPlaybackEvent, PlaybackViewStore

BURST = 60


async def _hold_writer(writers: WriterSessions, holding: asyncio.Event,
                       release: asyncio.Event) -> None:
    async with writers.begin() as session:
        await session.execute(text("SELECT 1"))
        holding.set()
        await release.wait()


async def test_a_burst_of_writes_holds_one_connection_and_leaves_reads_free(store: Store) -> None:
    stream, _ = await store.create_stream(name="s")
    pid = stream.playback_ids[0].id
    views = PlaybackViewStore(store.engine)
    now = datetime.now(UTC)
    writers = WriterSessions(store.engine)
    holding, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold_writer(writers, holding, release))
    await holding.wait()
    burst = [asyncio.create_task(views.record(
        view_id=f"view-{i:012d}", playback_id=pid, stream_id=stream.id, user_agent="ua",
        events=[NewPlaybackEvent("latency", now, {"seconds": 1.0})], now=now))
        for i in range(BURST)]
    await asyncio.sleep(0)  # let every writer reach its queue (or, unqueued, the pool)
    for _ in range(20):
        await asyncio.sleep(0.01)
    pool = store.engine.sync_engine.pool
    checked_out = pool.checkedout()  # type: ignore[attr-defined]
    # A read answers while the writer holds the lock and sixty more wait.
    async with asyncio.timeout(30):
        seen = await views.list_views(stream.id, limit=1000)
    if is_sqlite(store.engine):
        assert seen == []  # nothing committed while the lock is held
    release.set()
    async with asyncio.timeout(60):
        await holder
        kept = await asyncio.gather(*burst)
    assert kept == [1] * BURST
    assert len(await views.list_views(stream.id, limit=1000)) == BURST
    if is_sqlite(store.engine):
        # The holder alone: the queued writers took no connection.
        assert checked_out == 1


async def test_a_writer_that_queues_too_long_is_told_the_store_is_busy(store: Store) -> None:
    if not is_sqlite(store.engine):
        pytest.skip("PostgreSQL writers do not queue in process")
    writers = WriterSessions(store.engine)
    impatient = WriterSessions(store.engine, queue_timeout=0.2)
    holding, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold_writer(writers, holding, release))
    await holding.wait()
    with pytest.raises(StoreBusy) as raised:
        async with impatient.begin():
            pass
    assert "try again" in str(raised.value)
    assert is_outage(raised.value)  # writers with a backoff keep the write and retry
    release.set()
    await holder
    async with impatient.begin() as session:  # free again
        assert (await session.execute(text("SELECT 1"))).scalar() == 1
