"""How many chat sockets one client address may hold (chat).

`AddressSlots` counts the open chat connections of each client address so that one
address cannot fill the node with anonymous sockets (which would also dodge the
per-user send rate, as every socket is a new anonymous user). The node's whole
`chat_max_connections` is kept under the open-file limit by
`golive.core.connection_ceiling`.
"""

from __future__ import annotations

from golive.core import client_key


class AddressSlots:
    """Open connections per client address (an IPv6 client's /64), at most `limit` each."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the per-address connection limit must be at least 1")
        self.limit = limit
        self._open: dict[str, int] = {}

    def take(self, address: str) -> bool:
        """Count one more connection from `address`; False (nothing counted) when it is full."""
        key = client_key(address)
        count = self._open.get(key, 0)
        if count >= self.limit:
            return False
        self._open[key] = count + 1
        return True

    def give_back(self, address: str) -> None:
        key = client_key(address)
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)  # the table holds only addresses with sockets

    def count(self, address: str) -> int:
        return self._open.get(client_key(address), 0)

    def __len__(self) -> int:
        return len(self._open)
