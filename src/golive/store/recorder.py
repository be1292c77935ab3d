"""Records every event on the bus in the store, with its timestamp (control plane).

The one path by which events reach the database: publishers (the broadcast hub,
the API, the pipeline) only publish on the bus, so a slow database never slows
them down. The webhook outbox is written in the same transaction as the events'
rows (`on_queued` then wakes the delivery worker). This recorder's bounded inbox
absorbs bursts, and what waits in it is written in one transaction (up to `BATCH`
events, at most one transaction per `SPACING` under load). When the database has an outage (disk full, database away:
`golive.store.outage`) the batch being written is kept and retried with backoff,
and the events behind it wait in the inbox, so they land in order once space
returns; past `backlog` waiting events the oldest are dropped, counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from golive.core import Backoff, Event, EventBus, RepeatedLog
from golive.store.facade import Store
from golive.store.outage import is_outage

log = logging.getLogger(__name__)

BATCH = 200
SPACING = 0.02


class EventRecorder:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        *,
        backlog: int = 10_000,
        backoff: Backoff | None = None,
        on_queued: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        """`on_queued` hears which webhook endpoints got deliveries from each event."""
        self._store = store
        self._on_queued = on_queued
        self._subscription = bus.subscribe(maxsize=backlog)
        self._backoff = backoff if backoff is not None else Backoff()
        self._task: asyncio.Task[None] | None = None
        self._warnings = RepeatedLog(log)
        self._progress = asyncio.Condition()
        self._dropped_seen = 0
        self.recorded = 0  # events written (or given up for a reason that is not an outage)
        self.retries = 0  # attempts that met an outage

    @property
    def dropped(self) -> int:
        """Events dropped before recording because the inbox was full."""
        return self._subscription.dropped

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-recorder")

    async def wait_recorded(self, count: int) -> None:
        """Wait until `count` events have been handled since the recorder started."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.recorded >= count)

    async def _run(self) -> None:
        # What waits in the inbox is written together: one transaction for up to `BATCH`.
        # Under a steady stream of events a transaction starts at most every `SPACING`
        # after the last one ended, so batches grow instead of transactions multiplying
        # (each costs more than its rows); an event after a quiet spell is written at once.
        written = -SPACING
        async for event in self._subscription:
            wait = written + SPACING - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            batch = [event]
            while len(batch) < BATCH and (more := self._subscription.get_nowait()) is not None:
                batch.append(more)
            await self._record(batch)
            written = time.monotonic()
            async with self._progress:
                self.recorded += len(batch)
                self._progress.notify_all()

    async def _record(self, batch: list[Event]) -> None:
        while True:
            try:
                queued = await self._store.record_events(batch)
                self._backoff.reset()
                if queued and self._on_queued is not None:
                    self._on_queued(queued)
                return
            except Exception as exc:
                if not is_outage(exc):
                    if len(batch) > 1:  # one bad event must not cost the others
                        for event in batch:
                            await self._record([event])
                        return
                    log.exception("event not recorded type=%s stream_id=%s", batch[0].type,
                                  batch[0].stream_id)
                    return
                self.retries += 1
                delay = self._backoff.next_delay()
                self._warn_outage(exc, delay)
            await asyncio.sleep(delay)

    def _warn_outage(self, exc: BaseException, delay: float) -> None:
        now = time.monotonic()
        self._warnings.warning(
            "outage", now, "events not recorded yet, database unavailable: %s; "
            "retrying in %.1f s", getattr(exc, "orig", None) or exc, delay,
        )
        if self.dropped > self._dropped_seen:
            self._dropped_seen = self.dropped
            self._warnings.warning(
                "dropped", now, "events dropped while the database was unavailable "
                "(inbox full) dropped so far=%d", self.dropped,
            )

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
