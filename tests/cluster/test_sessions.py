"""Studio sessions in a real Redis (web/session.py `SessionBook`): bounded like the node's
(the sessions that expire first go), expiring, unreadable with another secret, and the
API token never stored in clear."""

from __future__ import annotations

import logging
from typing import cast

import pytest
from tests.redisserver import RedisServer

from golive.core import RedisLink
from golive.web.session import SessionBook, StudioSessions

SECRET = b"0123456789abcdef0123456789abcdef"


async def test_sessions_are_bounded_expire_and_stay_sealed(
        redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    link = RedisLink(redis.url, redis.prefix())
    book = SessionBook(StudioSessions(ttl=60, size=2), link=link, secret=SECRET)
    client = redis.client()
    try:
        first = await book.create("token-one", "one", now=1000)
        second = await book.create("token-two", "two", now=1001)
        assert await book.get(first.id, now=1002) == first
        third = await book.create("token-three", "three", now=1002)
        # Two at most: the one that expires first went, from the index and the keys.
        assert await book.get(first.id, now=1003) is None
        assert await book.get(second.id, now=1003) == second
        assert await book.get(third.id, now=1003) == third
        assert len(book.local) == 0  # nothing kept on the node while Redis answers
        keys = cast(list[bytes], client.keys(f"{link.prefix}studio:session:*"))
        assert len(keys) == 2
        for key in keys:
            assert b"token-" not in cast(bytes, client.get(key))
            assert 0 < cast(int, client.pttl(key)) <= 60_000
        # Past its expiry a session is over even while Redis still holds its key.
        assert await book.get(second.id, now=1001 + 60) is None

        # Nodes with another secret cannot open it (and say so), never trust it.
        caplog.set_level(logging.WARNING, logger="golive.web.session")
        other = SessionBook(StudioSessions(), link=link, secret=b"another-secret-of-32-bytes-long!")
        assert await other.get(third.id, now=1003) is None
        assert any("could not be read" in r.getMessage() for r in caplog.records)

        await book.drop(third.id)
        assert await book.get(third.id, now=1003) is None
    finally:
        client.close()
        await link.close()
