"""Chat message ids through an outage of Redis, on a real PostgreSQL (store/chat.py,
chat/cluster.py): ids from Redis, one still unstored when Redis stops, ids
the database picks during the outage, and Redis ids again after it restarts empty - all
unique, and increasing in the order they were handed out. (SQLite is a one-node database;
a cluster's nodes share PostgreSQL.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import eventually
from tests.redisserver import RedisServer
from tests.store.conftest import open_store

from golive.chat.cluster import ChatCluster
from golive.store import ChatStore, NewChatMessage, Store


@pytest.fixture(params=["postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async for s in open_store(request, tmp_path):
        yield s


def _message(stream_id: str, message_id: int | None, n: int) -> NewChatMessage:
    return NewChatMessage(stream_id=stream_id, user_id=f"u{n}", user_name=f"n{n}",
                          text=f"message {n}", ip="192.0.2.1", sent_at=datetime.now(UTC),
                          id=message_id)


async def test_ids_stay_unique_and_increasing_through_an_outage(
        store: Store, redis: RedisServer) -> None:
    chat = ChatStore(store.engine)
    stream, _ = await store.create_stream(name="ids")
    ignored: list[Any] = []

    async def reload(stream_id: str, what: str) -> None:
        ignored.append((stream_id, what))

    cluster = ChatCluster(redis.url, redis.prefix(), "node", on_frame=lambda *a: None,
                          on_reload=reload, seed=chat.max_message_id)
    await cluster.start()

    async def up() -> bool:
        return cluster.available

    try:
        await eventually(up, what="the cluster linked to Redis")
        handed: list[int] = []  # every id in the order it was handed out
        # Before: ids from Redis, stored explicitly.
        for n in range(3):
            message_id = await cluster.next_id()
            assert message_id is not None
            handed.append(message_id)
            await chat.add_messages([_message(stream.id, message_id, n)])
        in_flight = await cluster.next_id()  # taken, its commit still to come
        assert in_flight is not None
        handed.append(in_flight)

        with redis.stopped():
            assert await cluster.next_id() is None  # the service lets the database pick
            await chat.prepare_database_ids(100)
            picked = await chat.add_messages([_message(stream.id, None, n) for n in range(3, 6)])
            handed += [m.id for m in picked]
            # The message whose id Redis gave out before the outage lands now.
            await chat.add_messages([_message(stream.id, in_flight, 6)])
            picked = await chat.add_messages([_message(stream.id, None, 7)])
            handed += [m.id for m in picked]

        await eventually(up, what="the cluster linked to Redis again")
        for n in range(8, 10):
            message_id = await cluster.next_id()  # Redis restarted empty: seeded again
            assert message_id is not None
            handed.append(message_id)
            await chat.add_messages([_message(stream.id, message_id, n)])
        picked = await chat.add_messages([_message(stream.id, None, 10)])  # e.g. another node
        handed += [m.id for m in picked]

        assert handed == sorted(handed) and len(set(handed)) == len(handed) == 11, handed
        stored = await chat.list_messages(stream.id, limit=100)
        assert sorted(m.id for m in stored) == handed
    finally:
        await cluster.close()
