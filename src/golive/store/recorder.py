"""Records every event on the bus in the store, with its timestamp (control plane).

The one path by which events reach the database: publishers (the broadcast hub,
the API, the pipeline) only publish on the bus, so a slow database never slows
them down; this recorder's bounded inbox absorbs bursts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from golive.core.events import EventBus
from golive.store.facade import Store

log = logging.getLogger(__name__)


class EventRecorder:
    def __init__(self, store: Store, bus: EventBus, *, backlog: int = 10_000) -> None:
        self._store = store
        self._subscription = bus.subscribe(maxsize=backlog)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-recorder")

    async def _run(self) -> None:
        async for event in self._subscription:
            try:
                await self._store.record_event(event)
            except Exception:
                log.exception("event not recorded type=%s stream_id=%s", event.type,
                              event.stream_id)

    async def stop(self) -> None:
        """Record what is still queued, then stop."""
        self._subscription.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._subscription.dropped:
            log.warning("events dropped before recording count=%d", self._subscription.dropped)
