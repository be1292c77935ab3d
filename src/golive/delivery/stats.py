"""What the origin counts per request, for metrics (delivery stage).

Plain ints and floats the request path adds to, read by the metrics collector at
scrape time: every viewer asks for a playlist and a part several times a second,
so a Prometheus object (a lock and a label lookup per call) per request would cost
more than the answer itself. The event loop is the only writer.
"""

from __future__ import annotations

import bisect
from typing import Literal

__all__ = ["PART_LATENCY_BUCKETS", "OriginStats", "RequestKind", "ViewerProtocol"]

RequestKind = Literal["playlist", "part", "segment", "init", "vod", "access", "whep", "other"]
ViewerProtocol = Literal["ll-hls", "hls"]

PART_LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
"""Upper bounds (seconds) of the part delivery latency histogram: from request to answer,
a preload-hinted part's hold included (about one part duration at the live edge)."""

VIEWER_WINDOW_S = 15.0
"""A viewer counts while it asked for a media playlist this recently (players reload
every part or target duration, a few seconds at most)."""

MAX_VIEWERS_PER_PLAYBACK_ID = 100_000
"""Client addresses remembered per playback id and protocol; past it, new ones are not
counted until old ones age out (memory stays bounded whatever clients send)."""


class OriginStats:
    """Counters of one origin; the request path writes, the metrics collector reads."""

    __slots__ = ("_viewers", "bytes_out", "hold_seconds", "hold_timeouts", "holds",
                 "part_latency_buckets", "part_latency_count", "part_latency_sum", "requests")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        """Answers by (kind, HTTP status)."""
        self.bytes_out = 0
        """Body bytes sent (HEAD and streamed MP4 bodies are not counted)."""
        self.holds = 0
        """Requests held for media or a playlist update that did not exist yet."""
        self.hold_timeouts = 0
        self.hold_seconds = 0.0
        self.part_latency_buckets = [0] * (len(PART_LATENCY_BUCKETS) + 1)  # the last: +Inf
        self.part_latency_sum = 0.0
        self.part_latency_count = 0
        # (playback id, protocol) -> client address -> last media playlist request (monotonic)
        self._viewers: dict[tuple[str, str], dict[str, float]] = {}

    def answered(self, kind: str, status: int, body_bytes: int) -> None:
        key = (kind, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        self.bytes_out += body_bytes

    def part_answered(self, seconds: float) -> None:
        self.part_latency_buckets[bisect.bisect_left(PART_LATENCY_BUCKETS, seconds)] += 1
        self.part_latency_sum += seconds
        self.part_latency_count += 1

    def held(self, seconds: float, *, timed_out: bool) -> None:
        self.holds += 1
        self.hold_seconds += seconds
        if timed_out:
            self.hold_timeouts += 1

    def viewer_seen(self, playback_id: str, protocol: ViewerProtocol, client: str,
                    now: float) -> None:
        """A media playlist request: the client watches `playback_id` over `protocol`."""
        key = (playback_id, protocol)
        clients = self._viewers.get(key)
        if clients is None:
            clients = self._viewers[key] = {}
        if client not in clients and len(clients) >= MAX_VIEWERS_PER_PLAYBACK_ID:
            # Full: forget the viewers gone quiet (also when nobody scrapes), else skip.
            horizon = now - VIEWER_WINDOW_S
            for stale in [c for c, seen in clients.items() if seen < horizon]:
                del clients[stale]
            if len(clients) >= MAX_VIEWERS_PER_PLAYBACK_ID:
                return
        clients[client] = now

    def viewers(self, now: float) -> dict[tuple[str, str], int]:
        """Distinct clients per (playback id, protocol) seen within `VIEWER_WINDOW_S`;
        forgets the older ones. Behind an edge cache the edge counts as one client."""
        horizon = now - VIEWER_WINDOW_S
        counts: dict[tuple[str, str], int] = {}
        for key, clients in list(self._viewers.items()):
            stale = [client for client, seen in clients.items() if seen < horizon]
            for client in stale:
                del clients[client]
            if clients:
                counts[key] = len(clients)
            else:
                del self._viewers[key]
        return counts
