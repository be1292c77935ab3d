"""How many chat sockets this node takes: per address, and within the open-file limit (chat).

`AddressSlots` counts the open chat connections of each client address so that one
address cannot fill the node with anonymous sockets (which would also dodge the
per-user send rate, as every socket is a new anonymous user). `connection_ceiling`
keeps `chat_max_connections` below the process's open-file limit, raised first
toward the hard limit where the system allows: past that limit `accept` fails for
every socket of the node, HTTP and ingest included, not just for chat.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

# Descriptors kept for everything but chat sockets: the database, listening sockets,
# ingest and playback connections, recordings, subprocess pipes.
RESERVED_FILES = 1024


class AddressSlots:
    """Open connections per client address, at most `limit` each."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the per-address connection limit must be at least 1")
        self.limit = limit
        self._open: dict[str, int] = {}

    def take(self, address: str) -> bool:
        """Count one more connection from `address`; False (nothing counted) when it is full."""
        count = self._open.get(address, 0)
        if count >= self.limit:
            return False
        self._open[address] = count + 1
        return True

    def give_back(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)  # the table holds only addresses with sockets

    def count(self, address: str) -> int:
        return self._open.get(address, 0)

    def __len__(self) -> int:
        return len(self._open)


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed; the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        # An unlimited hard limit still has a kernel ceiling (nr_open); ask for a
        # large finite value and keep the old one if it is refused.
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            log.info("chat open file limit not raised soft=%d hard=%d", soft, hard)
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft


def connection_ceiling(configured: int, open_files: int) -> int:
    """`configured`, or fewer when the open-file limit cannot hold that many sockets.

    `open_files` is the soft RLIMIT_NOFILE; RLIM_INFINITY (-1) means no limit.
    """
    if open_files < 0:
        return configured
    room = max(1, open_files - min(RESERVED_FILES, open_files // 2))
    if configured <= room:
        return configured
    log.warning("chat_max_connections lowered configured=%d effective=%d open_file_limit=%d "
                "reason=open_file_limit; raise the limit (ulimit -n, LimitNOFILE=) to allow more",
                configured, room, open_files)
    return room
