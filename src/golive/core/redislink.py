"""One node's link to the cluster's Redis for shared state: rate limits and studio sessions (core).

Used only when `redis_url` is set. Every call goes through `RedisLink.call`, which turns
an unreachable or frozen Redis into None after at most `timeout` seconds, so the caller
falls back to what it keeps on this node. The link logs one line when Redis goes away and
one when it answers again; while it is away it does not try again for `retry_after`
seconds, so a request never waits on a dead server twice in a row. Keys start with
`prefix`, shared by the nodes of one cluster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

T = TypeVar("T")


def peer_payload(data: object, own_node: str, max_bytes: int) -> dict[str, Any] | None:
    """A message another node published on a Redis channel, as a JSON object; None when it
    is not bytes, is larger than `max_bytes`, is not a JSON object, or is this node's own
    (`"node"` equal to `own_node`). What is inside is still the caller's to check."""
    if not isinstance(data, bytes) or len(data) > max_bytes:
        return None
    try:
        payload = json.loads(data)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("node") == own_node:
        return None
    return payload


class RedisLink:
    """A Redis client with an up/down state that callers read as "use Redis or count locally"."""

    def __init__(self, url: str, prefix: str, *, timeout: float = 0.5, retry_after: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.prefix = prefix
        self.retry_after = retry_after
        self.client = aioredis.Redis.from_url(url, socket_timeout=timeout,
                                              socket_connect_timeout=timeout)
        self._clock = clock
        self._down_until = 0.0
        self._down = False
        self.failures = 0  # calls that fell back to this node since the link was made

    @property
    def available(self) -> bool:
        """False while Redis is marked away (until the next try is due)."""
        return not self._down or self._clock() >= self._down_until

    @property
    def reachable(self) -> bool:
        """Whether the last call reached Redis (True before the first)."""
        return not self._down

    async def call(self, doing: str, command: Callable[[aioredis.Redis], Awaitable[T]]
                   ) -> T | None:
        """`command(client)`'s result; None when Redis is away or fails (the caller falls back)."""
        if not self.available:
            self.failures += 1
            return None
        try:
            result = await command(self.client)
        except (RedisError, OSError) as exc:
            self.failures += 1
            self._down_until = self._clock() + self.retry_after
            if not self._down:
                self._down = True
                log.warning("shared state: Redis unreachable (%s while %s: %s); rate limits and "
                            "studio sessions count on this node only until it answers",
                            self.url, doing, exc)
            return None
        if self._down:
            self._down = False
            log.warning("shared state: Redis reachable again (%s); rate limits and studio "
                        "sessions are shared across nodes again", self.url)
        return result

    async def eval(self, doing: str, script: str, keys: list[str],
                   args: list[str | int | float]) -> Any | None:
        """Run a Lua script (one round trip); its reply, or None when Redis is away."""
        values = [str(a) for a in args]
        return await self.call(doing, lambda client: cast(
            Awaitable[Any], client.eval(script, len(keys), *keys, *values)))

    async def close(self) -> None:
        await self.client.aclose()


STOP_SECONDS = 5.0  # the longest a stop waits for its Redis tasks to end


async def stop_tasks(tasks: Collection[asyncio.Task[Any]], limit: float = STOP_SECONDS
                     ) -> None:
    """Cancel a Redis link's background tasks and wait for them to end, at most `limit`
    seconds, then go on: a node's stop must not wait for ever on one. (A test's node stop
    hung for its whole timeout after a Redis outage, twice on 2026-12-06, with one node's
    chat listener not yet back; the cause was not found.) An error a task ended with, or
    a task still running, is logged."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=limit)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("Redis task failed name=%s error=%r", task.get_name(), task.exception())
    for task in pending:
        log.warning("Redis task did not stop within %g s name=%s", limit, task.get_name())
