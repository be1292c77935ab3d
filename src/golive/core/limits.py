"""Named rate limits counted on this node, or across the cluster in Redis when it is linked (core).

A `Limit` is a token bucket per key (`rate` per second, `burst` saved up), the same
model as `golive.core.buckets`. `RateLimits.take` checks one or more (limit, key)
pairs together and spends a token of each only if every one has a token: all or
nothing, so a message refused by its room's limit does not use up its sender's.

With a `RedisLink` the buckets live in Redis as GCRA "theoretical arrival times": one
Lua script call checks and spends every bucket of a `take` in one round trip, on
Redis's clock (so the nodes' clocks need not agree), and each key expires once its
bucket is full again. While Redis is unreachable the same checks run on this node's
own bucket tables (the link logs that once); a node then lets through up to its own
budget, which errs towards letting people in for the length of the outage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from golive.core.buckets import BucketTable
from golive.core.redislink import RedisLink

# KEYS: the buckets. ARGV[1]: "take" (all or nothing), "spend" (always, capped at an empty
# bucket) or "peek" (nothing stored); then per key: microseconds per token, burst, cost.
# Returns {index (1-based) of the first bucket short of tokens or 0, its wait in us}.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = ARGV[1]
local news = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[i * 3 - 1])
  local burst = tonumber(ARGV[i * 3])
  local cost = tonumber(ARGV[i * 3 + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local limit = now + burst * interval
  local new = tat + cost * interval
  if new > limit then
    if mode ~= 'spend' then return {i, math.ceil(new - limit)} end
    new = limit
  end
  news[i] = new
end
if mode ~= 'peek' then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], string.format('%d', news[i]), 'PX',
               math.max(1, math.ceil((news[i] - now) / 1000)))
  end
end
return {0, 0}
"""


@dataclass(frozen=True, slots=True)
class Limit:
    """A token bucket per key: `name` scopes the keys (e.g. "chat-user"), one table per name."""

    name: str
    rate: float
    burst: float
    max_keys: int = 100_000  # keys remembered on this node while counting locally

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or not self.name or ":" in self.name:
            raise ValueError("a limit needs a name without ':', rate > 0 and burst >= 1")


@dataclass(frozen=True, slots=True)
class Admission:
    """What `take` decided: `refused_by` names the limit that had no token (None: taken)."""

    refused_by: Limit | None = None
    wait: float = 0.0  # seconds until that limit has a token

    @property
    def allowed(self) -> bool:
        return self.refused_by is None


Check = tuple[Limit, str]


class RateLimits:
    """Every named limit of a node; shared through Redis when `link` is given and answers."""

    def __init__(self, link: RedisLink | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.link = link
        self._clock = clock
        self._local: dict[str, BucketTable] = {}

    @property
    def shared(self) -> bool:
        """Whether the next call is counted in Redis (False: on this node only)."""
        return self.link is not None and self.link.available

    def _table(self, limit: Limit) -> BucketTable:
        table = self._local.get(limit.name)
        if table is None or table.rate != limit.rate or table.burst != limit.burst:
            # A changed rate (slow mode set to another value) starts that limit afresh.
            table = self._local[limit.name] = BucketTable(limit.rate, limit.burst,
                                                          limit.max_keys)
        return table

    async def _redis(self, mode: str, checks: Sequence[Check], cost: float
                     ) -> tuple[int, float] | None:
        link = self.link
        if link is None:
            return None
        keys = [f"{link.prefix}limit:{limit.name}:{key}" for limit, key in checks]
        args: list[str | int | float] = [mode]
        for limit, _ in checks:
            args += [1_000_000 / limit.rate, limit.burst, cost]
        reply = await link.eval(f"counting {checks[0][0].name}", _GCRA, keys, args)
        if reply is None:
            return None
        index, wait_us = int(reply[0]), int(reply[1])
        return index, wait_us / 1_000_000

    async def take(self, *checks: Check, cost: float = 1.0) -> Admission:
        """Spend `cost` of every bucket if each has it; otherwise spend nothing."""
        if not checks:
            return Admission()
        reply = await self._redis("take", checks, cost)
        if reply is not None:
            index, wait = reply
            return Admission() if index == 0 else Admission(checks[index - 1][0], wait)
        now = self._clock()
        for limit, key in checks:
            bucket = self._table(limit).get(key)
            wait = 0.0 if bucket is None else bucket.wait_time(now, cost)
            if wait > 0:
                return Admission(limit, wait)
        for limit, key in checks:
            self._table(limit).bucket(key, now).spend(now, cost)
        return Admission()

    async def wait(self, limit: Limit, key: str) -> float:
        """Seconds until `key` has a token of `limit`; 0 now. Spends nothing."""
        reply = await self._redis("peek", [(limit, key)], 1.0)
        if reply is not None:
            return reply[1]
        table = self._table(limit)
        bucket = table.get(key)
        if bucket is None:
            return 0.0
        now = self._clock()
        if bucket.full(now):
            table.forget(key)  # a full bucket is the same as none
            return 0.0
        return bucket.wait_time(now)

    async def spend(self, limit: Limit, key: str) -> None:
        """Spend a token of `key` whether or not it has one (never below an empty bucket)."""
        if await self._redis("spend", [(limit, key)], 1.0) is None:
            self._table(limit).spend(key, self._clock())

