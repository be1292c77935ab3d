"""How many connections the HTTP port holds: in all, and per client address (HTTP server).

Every open connection costs the node a file descriptor and some memory, whatever it
does; heads, bodies and idle time are bounded per connection (`golive.httpserver.headers`,
`bodies`), but nothing else stopped one client from opening connections until the
open-file limit, past which `accept` fails for every port and no recording file or
ffmpeg can be opened either. `ConnectionBudget` is what nginx's `worker_connections`
and `limit_conn` are to it:

- at most `per_address` connections from one client address (an IPv6 client's /64:
  `golive.core.client_key`, as every per-address limit counts): past
  it the new connection is closed at once, unread. Counted on the socket's peer, as it
  must be before a request is read: `trusted` proxies (whose connections carry many
  clients) are not capped;
- at most `most` in all (`http_max_connections`, lowered to fit the open-file limit):
  when it is reached the connection idle the longest is closed to make room, as nginx
  reuses its idle keep-alive connections when it runs short. Idle means between two
  requests, or open without a first byte yet; a request being read or answered (a held
  LL-HLS reload, a download) is never cut. When none is idle the new connection is
  closed at once.

Chat WebSockets count too (they hold a socket like any connection) until they close;
the chat's own `chat_max_connections` and per-address limit are within these. A TLS
connection is counted once its handshake is done (handshakes are bounded by
`golive.core.HandshakeGate`).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Protocol

from golive.core import RepeatedLog, address_of, client_key

__all__ = ["ConnectionBudget", "Reusable"]

log = logging.getLogger(__name__)


class Reusable(Protocol):
    """A connection the budget may close while it is idle."""

    def close_idle(self) -> None: ...


class ConnectionBudget:
    """The connections open on one HTTP port, at most `most` and `per_address` each."""

    def __init__(self, most: int, per_address: int, trusted: Iterable[str] = (), *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if most < 1 or per_address < 1:
            raise ValueError("connection limits must be at least 1")
        self.most = most
        self.per_address = per_address
        self._trusted = [ipaddress.ip_network(network, strict=False) for network in trusted]
        self._clock = clock
        self.open = 0
        # What each counted connection (by its transport) is counted against; None: a
        # trusted proxy, or no address (a Unix socket).
        self._held: dict[object, str | None] = {}
        self._by_address: dict[str, int] = {}
        # The idle connections, idle the longest first. The HTTP protocol enters and leaves
        # it directly (no call: it does so twice per request), as `idle` and `busy` do.
        self.idle_table: OrderedDict[Reusable, None] = OrderedDict()
        self.refused_per_address = 0
        self.refused_full = 0
        self.closed_idle = 0
        self._log = RepeatedLog(log)

    @property
    def idle_count(self) -> int:
        return len(self.idle_table)

    def count(self, host: str) -> int:
        """Open connections counted against `host`'s client."""
        return self._by_address.get(client_key(host), 0)

    def admit(self, transport: object, host: str | None) -> bool:
        """Count a new connection from `host`; False: it must be closed at once (counted
        as refused, and logged at most once per 10 s per reason and address)."""
        key = None if host is None or self._is_trusted(host) else client_key(host)
        if key is not None and self._by_address.get(key, 0) >= self.per_address:
            self.refused_per_address += 1
            self._log.warning(f"address:{key}", self._clock(),
                              "http connection refused address=%s reason=per_address_limit "
                              "limit=%d (http_max_connections_per_address)", key,
                              self.per_address)
            return False
        if self.open >= self.most:
            if not self.idle_table:
                self.refused_full += 1
                self._log.warning("full", self._clock(),
                                  "http connection refused reason=connection_limit limit=%d "
                                  "(http_max_connections): none is idle", self.most)
                return False
            victim, _ = self.idle_table.popitem(last=False)
            self.closed_idle += 1
            victim.close_idle()  # released there, before this one is counted
        self.open += 1
        self._held[transport] = key
        if key is not None:
            self._by_address[key] = self._by_address.get(key, 0) + 1
        return True

    def release(self, transport: object, connection: Reusable | None = None) -> None:
        """A counted connection closed (its protocol's `connection_lost`, or made room);
        again for the same one, nothing."""
        if connection is not None:
            self.idle_table.pop(connection, None)
        if transport not in self._held:
            return
        key = self._held.pop(transport)
        self.open -= 1
        if key is not None:
            left = self._by_address[key] - 1
            if left:
                self._by_address[key] = left
            else:
                del self._by_address[key]  # only addresses with connections are held

    def idle(self, connection: Reusable) -> None:
        """`connection` waits for a request: the newest idle one."""
        self.idle_table[connection] = None
        self.idle_table.move_to_end(connection)

    def busy(self, connection: Reusable) -> None:
        """`connection` is reading or answering a request: not to be closed for room."""
        self.idle_table.pop(connection, None)

    def _is_trusted(self, host: str) -> bool:
        if not self._trusted:
            return False
        try:  # (an IPv4-mapped address as its IPv4, as address_of gives it)
            address = ipaddress.ip_address(address_of(host).split("%", 1)[0])
        except ValueError:
            return False
        return any(address in network for network in self._trusted)
