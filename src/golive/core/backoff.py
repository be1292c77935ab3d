"""How long to wait before retrying something that failed for a passing reason (core).

A database outage (the event recorder, the hub's broadcast writes) is retried after
`first` seconds, then twice as long each time up to `longest`, and from `first` again
once a try succeeds. With `jitter` (a fraction), each wait is shortened by a random
part of up to that fraction, so many clients retrying one server spread out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Seconds to wait before each retry: `first`, doubling up to `longest`; `reset` on success."""

    first: float = 0.5
    longest: float = 30.0
    jitter: float = 0.0
    _next: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.first <= 0 or self.longest < self.first:
            raise ValueError("backoff needs 0 < first <= longest")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter is a fraction: 0 <= jitter < 1")
        self._next = self.first

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.longest, self._next * 2)
        if self.jitter:
            delay *= 1 - self.jitter * random.random()
        return delay

    def reset(self) -> None:
        self._next = self.first
