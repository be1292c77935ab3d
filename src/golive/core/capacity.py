"""How many sockets a listener may hold within the process's open-file limit (core).

Past the open-file limit `accept` fails for every socket of the node, and so does
opening a recording's file or starting an ffmpeg: one port that fills the table stops
ingest, transcoding and playback alike. `raise_open_file_limit` raises the soft limit
toward the hard one where the system allows; `connection_ceiling` keeps a listener's
configured connection limit (`http_max_connections`, `chat_max_connections`) under it,
with `RESERVED_FILES` left for everything else.
"""

from __future__ import annotations

import logging
import resource

__all__ = ["RESERVED_FILES", "connection_ceiling", "raise_open_file_limit"]

log = logging.getLogger(__name__)

# Descriptors kept for everything but a listener's connections: the database, listening
# sockets, ingest connections, recordings, subprocess pipes.
RESERVED_FILES = 1024


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
            log.info("open file limit not raised soft=%d hard=%d", soft, hard)
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft


def connection_ceiling(configured: int, open_files: int, setting: str) -> int:
    """`configured` (the value of `setting`), or fewer when the open-file limit cannot hold
    that many sockets besides `RESERVED_FILES`.

    `open_files` is the soft RLIMIT_NOFILE; RLIM_INFINITY (-1) means no limit.
    """
    if open_files < 0:
        return configured
    room = max(1, open_files - min(RESERVED_FILES, open_files // 2))
    if configured <= room:
        return configured
    log.warning("%s lowered configured=%d effective=%d open_file_limit=%d "
                "reason=open_file_limit; raise the limit (ulimit -n, LimitNOFILE=) to allow more",
                setting, configured, room, open_files)
    return room
