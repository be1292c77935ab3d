"""Per-address limits on repeated failures and repeated log lines (core).

`FailureThrottle` slows down guessing: every failed attempt (a wrong stream key, a
wrong API token, a bad studio login) spends one token of the source address's
bucket, which refills at a steady rate; an address with an empty bucket is refused
before any check runs. Successful attempts cost nothing, so a real publisher or
operator is never slowed by the throttle unless it shares an address with a guesser
that already spent the burst. An IPv6 source counts by its /64 (`client_key`, which
every per-address limit of the node uses). `RepeatedLog` (on a `Cooldown` per key) lets
one line through per interval and counts the ones it held back, so a flood cannot fill
the log. Both take `now` from the caller and hold a bounded number of addresses; the
buckets are `golive.core.buckets`'. Given shared `RateLimits`, `check` and `record`
count the failures across the cluster's nodes in Redis instead (and on this node while
it is away).
"""

from __future__ import annotations

import ipaddress
import logging
from collections import OrderedDict

from golive.core.buckets import BucketTable
from golive.core.limits import Limit, RateLimits


def client_key(remote: str) -> str:
    """The client a per-address limit counts `remote` ("ip:port", "[v6]:port" or a bare
    address) as: an IPv4 address, or an IPv6 address's /64 (an IPv4-mapped one as its
    IPv4). One subscriber usually holds a whole /64 and may send from any address in it,
    so a limit per IPv6 address would be no limit. Anything else as `address_of` gives it."""
    host = address_of(remote)
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    return f"{ipaddress.IPv6Address(int(address) >> 64 << 64)}/64"


def address_of(remote: str) -> str:
    """The host part of "ip:port", "[v6]:port" or a bare address, an IPv4-mapped IPv6
    address (how a dual-stack socket sees an IPv4 client) as its IPv4; the input if it is
    neither."""
    remote = remote.strip()
    if remote.startswith("["):
        end = remote.find("]")
        host = remote[1:end] if end > 0 else remote
    elif remote.count(":") == 1:
        host = remote.split(":", 1)[0]
    else:
        host = remote
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def remote_of(host: str, port: int) -> str:
    """"ip:port" of a peer, "[v6]:port" for IPv6 (unbracketed, the port reads as part of the
    address), an IPv4-mapped address as its IPv4: what `address_of` takes back apart."""
    host = address_of(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class FailureThrottle:
    """A token bucket of failures per source address.

    `burst` failures are allowed at once; after that one more each `1 / rate` seconds.
    """

    def __init__(self, *, burst: int = 10, rate: float = 0.5, max_addresses: int = 10_000,
                 limits: RateLimits | None = None, name: str = "failures") -> None:
        if burst < 1 or rate <= 0:
            raise ValueError("burst must be >= 1 and rate > 0")
        self.burst = burst
        self.rate = rate
        self.max_addresses = max_addresses
        self._buckets = BucketTable(rate, burst, max_addresses)
        self.limits = limits
        self.limit = Limit(name, rate, burst, max_addresses)
        self.refused = 0  # attempts refused while an address was throttled

    async def check(self, remote: str, now: float) -> float:
        """`retry_after`, counted across the cluster when the throttle has shared limits."""
        if self.limits is None:
            return self.retry_after(remote, now)
        wait = await self.limits.wait(self.limit, client_key(remote))
        if wait > 0:
            self.refused += 1
        return wait

    async def record(self, remote: str, now: float) -> None:
        """`failed`, counted across the cluster when the throttle has shared limits."""
        if self.limits is None:
            self.failed(remote, now)
        else:
            await self.limits.spend(self.limit, client_key(remote))

    def retry_after(self, remote: str, now: float) -> float:
        """Seconds until `remote` may try again; 0 when it may try now."""
        address = client_key(remote)
        bucket = self._buckets.get(address)
        if bucket is None:
            return 0.0
        if bucket.full(now):
            self._buckets.forget(address)  # a full bucket is the same as no entry
            return 0.0
        wait = bucket.wait_time(now)
        if wait > 0:
            self.refused += 1
        return wait

    def failed(self, remote: str, now: float) -> None:
        """Record one failed attempt from `remote`."""
        self._buckets.spend(client_key(remote), now)

    def __len__(self) -> int:
        return len(self._buckets)


class Cooldown:
    """Lets each key through at most once per `span` seconds; remembers at most `max_keys`
    (the longest-quiet first forgotten, which only lets that key through again)."""

    def __init__(self, span: float, *, max_keys: int = 1024) -> None:
        self.span = span
        self._max_keys = max_keys
        self._last: OrderedDict[str, float] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        last = self._last.get(key)
        if last is not None and now - last < self.span:
            return False
        self._last.pop(key, None)
        self._last[key] = now
        while len(self._last) > self._max_keys:
            self._last.popitem(last=False)
        return True


class RepeatedLog:
    """Logs the first occurrence, then at most one line per `interval` with a count of the rest."""

    def __init__(self, logger: logging.Logger, *, interval: float = 10.0,
                 max_keys: int = 1024) -> None:
        self._log = logger
        self.interval = interval
        self._gate = Cooldown(interval, max_keys=max_keys)
        self._held: dict[str, int] = {}
        self._max_keys = max_keys

    def warning(self, key: str, now: float, message: str, *args: object) -> None:
        if not self._gate.allow(key, now):
            # Counted for keys already counting, or while there is room: a flood of
            # distinct keys (addresses) must not grow the table without bound.
            if key in self._held or len(self._held) < self._max_keys:
                self._held[key] = self._held.get(key, 0) + 1
            return
        held = self._held.pop(key, 0)
        if held:
            message += " (%d more like this in the last %.0f s)"
            args = (*args, held, self.interval)
        self._log.warning(message, *args)
