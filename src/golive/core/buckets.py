"""Token buckets and a bounded table of them: the one rate limit every stage uses (core).

Chat messages and frames, QoE beacons, SRT handshakes, ffmpeg's log lines and the
failure throttle (`golive.core.throttle`) all count with these. Pure and clock-free:
every call takes `now` (monotonic seconds), so tests drive time by hand.
"""

from __future__ import annotations

from collections import OrderedDict


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; one token per message."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are enough; False (and nothing spent) otherwise."""
        self._refill(now)
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def wait_time(self, now: float, cost: float = 1.0) -> float:
        """Seconds until `cost` tokens are available."""
        self._refill(now)
        return max(0.0, (cost - self._tokens) / self.rate)

    def spend(self, now: float, cost: float = 1.0) -> None:
        """Spend `cost` tokens whether or not there are enough (never below zero)."""
        self._refill(now)
        self._tokens = max(0.0, self._tokens - cost)

    def full(self, now: float) -> bool:
        self._refill(now)
        return self._tokens >= self.burst


class BucketTable:
    """One token bucket per key (a user id, an address, a stream), at most `max_keys` of them.

    When full, the least recently used bucket is forgotten: that key starts again
    with a full bucket, which errs towards letting people through.
    """

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("a bucket table needs rate > 0, burst >= 1 and max_keys >= 1")
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def get(self, key: str) -> TokenBucket | None:
        """`key`'s bucket if it has one; looking neither creates nor refreshes it."""
        return self._buckets.get(key)

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` has a token; 0 now. Looking costs nothing and stores nothing."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait_time(now)

    def spend(self, key: str, now: float) -> None:
        """Spend one of `key`'s tokens, whether or not it has one (never below zero)."""
        self.bucket(key, now).spend(now)

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)

    def __len__(self) -> int:
        return len(self._buckets)
