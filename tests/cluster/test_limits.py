"""Named rate limits (core/limits.py) behave the same counted on this node and in a real Redis:
bursts, all-or-nothing checks, looking without spending, spending capped at an empty
bucket; and a link whose Redis stops falls back to the node's tables (logged once each way).
Redis keeps its own clock, so waits are checked as bounds, never as exact durations."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from tests.e2e.conftest import eventually
from tests.redisserver import RedisServer

from golive.core import Limit, RateLimits, RedisLink

SLOW = Limit("slow", rate=0.5, burst=3)  # a token each 2 s
ONE = Limit("one", rate=0.5, burst=1)


@pytest.fixture(params=["local", "redis"])
async def limits(request: pytest.FixtureRequest) -> AsyncIterator[RateLimits]:
    if request.param == "local":
        yield RateLimits()
        return
    redis: RedisServer = request.getfixturevalue("redis")
    link = RedisLink(redis.url, redis.prefix())
    try:
        yield RateLimits(link)
    finally:
        await link.close()


async def test_a_burst_then_a_token_per_interval(limits: RateLimits) -> None:
    for _ in range(3):
        assert (await limits.take((SLOW, "k"))).allowed
    refused = await limits.take((SLOW, "k"))
    assert refused.refused_by is SLOW and 0 < refused.wait <= 2.0
    assert (await limits.take((SLOW, "other"))).allowed  # keys count apart


async def test_several_limits_are_taken_all_or_nothing(limits: RateLimits) -> None:
    assert (await limits.take((ONE, "k"), (SLOW, "k"))).allowed
    refused = await limits.take((SLOW, "k"), (ONE, "k"))
    assert refused.refused_by is ONE
    # SLOW spent nothing on the refused take: two tokens are left, not one.
    assert (await limits.take((SLOW, "k"))).allowed
    assert (await limits.take((SLOW, "k"))).allowed
    assert not (await limits.take((SLOW, "k"))).allowed


async def test_wait_looks_and_spend_is_capped(limits: RateLimits) -> None:
    assert await limits.wait(SLOW, "k") == 0
    assert await limits.wait(SLOW, "k") == 0  # looking spent nothing
    for _ in range(10):
        await limits.spend(SLOW, "k")  # failures keep coming
    # An empty bucket, not a debt of seven more tokens: one interval at most.
    assert 0 < await limits.wait(SLOW, "k") <= 2.0


async def test_a_stopped_redis_falls_back_to_the_node_and_back(
        redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="golive.core.redislink")
    link = RedisLink(redis.url, redis.prefix(), retry_after=0.2)
    limits = RateLimits(link)
    try:
        assert (await limits.take((ONE, "k"))).allowed and link.reachable
        with redis.stopped():
            # Counted on this node from a full bucket: the Redis one is out of reach.
            assert (await limits.take((ONE, "k"))).allowed
            assert not (await limits.take((ONE, "k"))).allowed
            assert not link.reachable and link.failures >= 2
        lines = [r.getMessage() for r in caplog.records]
        assert sum("Redis unreachable" in line for line in lines) == 1

        async def shared_again() -> bool:
            # Redis restarted empty: its bucket for the key is full again.
            return (await limits.take((ONE, "fresh"))).allowed and link.reachable

        await eventually(shared_again, what="the link using Redis again")
        assert any("Redis reachable again" in r.getMessage() for r in caplog.records)
    finally:
        await link.close()
