"""A sweep that runs now and then every `interval` seconds until closed (core).

Retention jobs (recordings, QoE beacons) share it: a failed sweep is logged and tried
again at the next interval, and `close()` cancels the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod


class PeriodicSweep(ABC):
    """Subclasses say what a sweep does (`sweep`, returning how many things it handled)
    and name themselves (`name`, `done`: a log message with one `%d`, `logger`)."""

    name = "sweep"
    done = "swept count=%d"
    logger = logging.getLogger(__name__)

    def __init__(self, *, interval: float) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def sweep(self) -> int:
        """One pass now; how many things it handled."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                count = await self.sweep()
                if count:
                    self.logger.info(self.done, count)
            except Exception as exc:
                self.logger.warning("%s failed, retrying next interval error=%s",
                                    self.name, exc)
            await asyncio.sleep(self._interval)
