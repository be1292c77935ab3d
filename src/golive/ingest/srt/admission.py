"""Who may try an SRT conclusion now, and what callers who were turned away were told (ingest).

Inductions cost the listener nothing (a SYN cookie, no state), so they need no
limit. A conclusion with a valid cookie starts real work (a key lookup, PBKDF2 for
a passphrase, the hub), so conclusions are budgeted: a token bucket per source
(an IPv4 address, an IPv6 /64: `golive.core.client_key`) and one global bucket
behind it. A flood from one source empties only its own bucket; the global cap
still bounds the total. A caller over budget gets no answer and retransmits its
conclusion, as libsrt callers do every 250 ms. Both structures hold a bounded
number of entries and take `now` from the caller.
"""

from __future__ import annotations

from collections import OrderedDict

from golive.core import BucketTable, TokenBucket

MAX_SOURCES = 4096  # buckets kept; the least recently seen source is forgotten first
MAX_REJECTIONS = 1024
REJECTION_MEMORY = 5.0  # seconds a rejection is repeated to a caller that asks again


class HandshakeBudget:
    """Conclusions allowed per source (`per_source` a second, `source_burst` at once) and
    in all (`total` a second, as many at once)."""

    def __init__(self, *, per_source: float = 10.0, source_burst: float = 20.0,
                 total: float = 50.0, now: float = 0.0,
                 max_sources: int = MAX_SOURCES) -> None:
        if per_source <= 0 or total <= 0 or source_burst < 1:
            raise ValueError("conclusion rates must be positive and the burst at least 1")
        self.per_source = per_source
        self.source_burst = source_burst
        self.total = total
        self.max_sources = max_sources
        self.refused = 0
        self._global = TokenBucket(total, total, now)
        self._sources = BucketTable(per_source, source_burst, max_sources)

    def allow(self, source: str, now: float) -> bool:
        """Spend one conclusion for `source` if both its bucket and the global one allow."""
        bucket = self._sources.bucket(source, now)
        if bucket.wait_time(now) > 0 or self._global.wait_time(now) > 0:
            self.refused += 1
            return False
        bucket.take(now)
        self._global.take(now)
        return True

    def __len__(self) -> int:
        """How many sources have a bucket."""
        return len(self._sources)


class RejectionMemory:
    """The rejection datagram last sent to each (address, caller socket), for a few seconds.

    A rejected caller retransmits its conclusion until the answer arrives; repeating the
    answer from here keeps those copies from being checked (and budgeted) again.
    """

    def __init__(self, *, ttl: float = REJECTION_MEMORY, limit: int = MAX_REJECTIONS) -> None:
        self.ttl = ttl
        self.limit = limit
        # Insertion order is expiry order: every entry lives `ttl` from when it was stored.
        self._entries: OrderedDict[object, tuple[bytes, float]] = OrderedDict()

    def remember(self, key: object, datagram: bytes, now: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (datagram, now + self.ttl)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)

    def recall(self, key: object, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def get_timer(self) -> float | None:
        """When the oldest rejection is forgotten; None when nothing is remembered."""
        for _, expiry in self._entries.values():
            return expiry
        return None

    def expire(self, now: float) -> None:
        while self._entries:
            key, (_, expiry) = next(iter(self._entries.items()))
            if expiry > now:
                return
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
