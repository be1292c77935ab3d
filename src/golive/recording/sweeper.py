"""Deletes assets whose retention ran out (recording).

Every `interval` seconds: the expired assets (their stream's
`recording_retention_days`, else the node's, counted from the recording's start)
are deleted through the library, objects first. A failure is logged and retried at
the next sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from golive.recording.library import RecordingLibrary

__all__ = ["RetentionSweeper"]

log = logging.getLogger(__name__)


class RetentionSweeper:
    def __init__(
        self,
        library: RecordingLibrary,
        *,
        interval: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._library = library
        self._interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.deleted = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="recording-retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def sweep(self) -> int:
        """Delete what has expired now; returns how many assets went."""
        deleted = 0
        while True:
            expired = await self._library.assets.expired(self._clock())
            if not expired:
                return deleted
            for asset_id in expired:
                await self._library.delete(asset_id)
                deleted += 1
                self.deleted += 1

    async def _run(self) -> None:
        while True:
            try:
                count = await self.sweep()
                if count:
                    log.info("expired assets deleted count=%d", count)
            except Exception as exc:
                log.warning("retention sweep failed, retrying next interval error=%s", exc)
            await asyncio.sleep(self._interval)
