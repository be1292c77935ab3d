"""The Redis fixture the cluster tests stand on: reachable over redis-py's asyncio
API, prefixes that keep tests apart, and an outage that looks like one."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tests.redisserver import RedisServer


async def test_prefixes_keep_tests_apart(redis: RedisServer) -> None:
    a, b = redis.prefix(), redis.prefix()
    assert a != b
    client = aioredis.Redis.from_url(redis.url)
    try:
        await client.set(f"{a}k", "1")
        assert await client.get(f"{a}k") == b"1"
        assert await client.get(f"{b}k") is None
    finally:
        await client.aclose()


async def test_stopped_refuses_then_comes_back_empty(redis: RedisServer) -> None:
    key = f"{redis.prefix()}k"
    client = aioredis.Redis.from_url(redis.url, socket_timeout=5)
    try:
        await client.set(key, "1")
        with redis.stopped():
            with pytest.raises(RedisConnectionError):
                await client.get(key)
        # Persistence is off: a restarted server has forgotten everything.
        assert await client.get(key) is None
    finally:
        await client.aclose()


async def test_paused_hangs_until_resumed(redis: RedisServer) -> None:
    key = f"{redis.prefix()}k"
    client = aioredis.Redis.from_url(redis.url, socket_timeout=0.5)
    try:
        await client.set(key, "1")
        with redis.paused():
            with pytest.raises(RedisTimeoutError):
                await client.get(key)
        fresh = aioredis.Redis.from_url(redis.url, socket_timeout=5)
        try:
            assert await fresh.get(key) == b"1"
        finally:
            await fresh.aclose()
    finally:
        await client.aclose()
