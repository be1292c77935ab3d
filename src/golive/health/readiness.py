"""`/readyz`: can this node take work now? The reasons it cannot, checked on request (health).

Liveness (`/healthz`) says the process answers; readiness says a load balancer or an
orchestrator should send it publishers and viewers: the database answers, ffmpeg is
there to transcode and make thumbnails, and the data disk (spool, database, profiles)
has room. Each check is bounded in time; the disk and file checks run in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["Readiness"]

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0


class Readiness:
    """Runs the checks; `last_reasons` is what the latest check found (None before one)."""

    def __init__(self, *, engine: AsyncEngine, ffmpeg: str | None, data_dir: Path,
                 min_free_percent: float, timeout: float = CHECK_TIMEOUT_S) -> None:
        self._engine = engine
        self._ffmpeg = ffmpeg
        self._data_dir = data_dir
        self._min_free_percent = min_free_percent
        self._timeout = timeout
        self.last_reasons: tuple[str, ...] | None = None
        self._checked_at = -float("inf")  # time.monotonic() of the latest check
        self._running: asyncio.Task[tuple[str, ...]] | None = None  # a check in progress

    async def check(self) -> tuple[str, ...]:
        """Why the node is not ready; empty when it is."""
        reasons: list[str] = []
        database = await self._database()
        if database is not None:
            reasons.append(database)
        reasons.extend(await asyncio.to_thread(self._local))
        self.last_reasons = tuple(reasons)
        self._checked_at = time.monotonic()
        return self.last_reasons

    async def recent(self, max_age: float, *, wait: float | None = None
                     ) -> tuple[str, ...] | None:
        """The latest check's reasons if it is at most `max_age` seconds old, else a new
        check's (a scrape every second need not query the database every second).

        A new check still running after `wait` seconds goes on in the background (one at a
        time) and the latest reasons are answered meanwhile (the first check is waited
        for whole): /metrics
        must not wait for a database whose connections are all busy, which under a load
        of beacon writes made each scrape take a second (bench/health.py)."""
        if self.last_reasons is not None and time.monotonic() - self._checked_at <= max_age:
            return self.last_reasons
        if self._running is None:
            self._running = asyncio.create_task(self.check())
            self._running.add_done_callback(self._checked)
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(self._running),
                                          wait if self.last_reasons is not None else None)
        return self.last_reasons

    def _checked(self, task: asyncio.Task[tuple[str, ...]]) -> None:
        self._running = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("readiness check failed", exc_info=task.exception())

    async def _database(self) -> str | None:
        try:
            async with asyncio.timeout(self._timeout), self._engine.connect() as connection:
                await connection.exec_driver_sql("SELECT 1")
        except TimeoutError:
            return f"database unreachable: no answer within {self._timeout:g} s"
        except Exception as exc:  # any driver error means the same thing here
            return f"database unreachable: {type(exc).__name__}: {str(exc)[:200]}"
        return None

    def _local(self) -> list[str]:
        reasons = []
        ffmpeg = self._ffmpeg
        if ffmpeg is None:
            reasons.append("ffmpeg missing: not configured and not on PATH")
        else:
            found = shutil.which(ffmpeg)
            if found is None or not os.access(found, os.X_OK):
                reasons.append(f"ffmpeg missing: {ffmpeg} is not an executable file")
        try:
            usage = shutil.disk_usage(self._data_dir)
        except OSError as exc:
            reasons.append(f"data disk unusable: {self._data_dir}: {exc.strerror}")
        else:
            free = 100.0 * usage.free / usage.total if usage.total else 0.0
            if free < self._min_free_percent:
                reasons.append(f"data disk nearly full: {free:.1f}% free at {self._data_dir}, "
                               f"below readyz_min_free_percent={self._min_free_percent:g}")
        return reasons
