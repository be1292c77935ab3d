"""The hub's time: a monotonic clock and timers on it (stream).

The reconnect window is a timer. Passing the clock in, rather than calling
`loop.call_later` directly, lets a test move time forward by hand and see the
window close without waiting for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    """A scheduled callback that can still be called off (`asyncio.TimerHandle` is one)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds, and callbacks at a point on that scale."""

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer: ...


class LoopClock:
    """`time.monotonic` with timers on the running event loop."""

    def now(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        # Relative delay, not `loop.call_at`: the loop's own time scale need not be
        # `time.monotonic` (uvloop keeps its own, in milliseconds).
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, when - self.now()), callback)
