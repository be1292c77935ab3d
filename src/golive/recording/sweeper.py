"""Deletes assets whose retention ran out (recording).

Every `interval` seconds: the expired assets (their stream's
`recording_retention_days`, else the node's, counted from the recording's start)
are deleted through the library, objects first. A failure is logged and retried at
the next sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from golive.core import PeriodicSweep
from golive.recording.library import RecordingLibrary

__all__ = ["RetentionSweeper"]

log = logging.getLogger(__name__)


class RetentionSweeper(PeriodicSweep):
    name = "recording-retention"
    done = "expired assets deleted count=%d"
    logger = log

    def __init__(
        self,
        library: RecordingLibrary,
        *,
        interval: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(interval=interval)
        self._library = library
        self._clock = clock
        self.deleted = 0

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
