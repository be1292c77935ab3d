"""Every live broadcast's ingest and encoder figures, kept for its post-event report (health).

The alert engine measures each live broadcast every `alerts_interval` (`StreamSignals`);
`IngestHistory.observe` keeps one of those measurements per broadcast every `interval`
seconds as a sample (`sample_data`: the publisher's bitrate, frame rate and keyframe
interval, how fast its media arrives, the encoder's speed and degrade step, the SRT
link's round trip and loss, the A/V offset, whether a publisher was connected), and
writes what it kept to the store every `interval`, all broadcasts in one transaction.
The report (`golive.health.report`) draws them per time bucket.

`IngestHistoryRetention` deletes samples older than `ingest_history_retention`.

Bounds: at most `max_pending` samples wait for the store; past that (the store away or
slow) the oldest are dropped and counted (`dropped`), and a failed write is logged
(once per interval at most) and its samples dropped: the report of that stretch has no
ingest figures, the broadcast itself is untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from golive.core import PeriodicSweep, RepeatedLog, utcnow
from golive.health.diagnosis import StreamSignals
from golive.store import BroadcastSampleRecord
from golive.stream import Broadcast

log = logging.getLogger(__name__)

Writer = Callable[[Sequence[BroadcastSampleRecord]], Awaitable[int]]
MAX_PENDING = 10_000  # samples waiting for the store: 10 s apart, 1,000 broadcasts' 100 s


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def sample_data(signals: StreamSignals) -> dict[str, Any]:
    """The figures a sample keeps (None where not measured), by their report names."""
    facts = signals.ingest
    srt, encoder = signals.srt, signals.encoder
    return {
        "connected": signals.connected,
        "bitrate_kbps": _r(facts.total_bitrate_kbps, 1) if signals.connected else None,
        "video_bitrate_kbps": _r(facts.video_bitrate_kbps, 1) if signals.connected else None,
        "frame_rate": _r(facts.frame_rate, 2),
        "keyframe_interval_s": _r(facts.keyframe_interval_s),
        "ingest_speed": _r(signals.ingest_speed),
        "av_drift_s": _r(facts.av_drift_s),
        "encoder_speed": _r(encoder.live_speed) if encoder is not None else None,
        "degrade_step": encoder.degrade_step if encoder is not None else None,
        "srt_rtt_ms": _r(srt.rtt_ms, 1) if srt is not None else None,
        "srt_loss_percentage": (_r(100 * srt.loss_ratio, 3)
                                if srt is not None and srt.loss_ratio is not None else None),
    }


class IngestHistory:
    """Samples of every live broadcast, written to the store in batches."""

    def __init__(self, write: Writer, *, interval: float = 10.0,
                 max_pending: int = MAX_PENDING,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self._write = write
        self.interval = interval
        self._clock = clock
        self._pending: deque[BroadcastSampleRecord] = deque(maxlen=max_pending)
        self._last: dict[str, float] = {}  # broadcast id -> when its last sample was taken
        self._task: asyncio.Task[None] | None = None
        self._log = RepeatedLog(log)
        self.written = 0
        self.dropped = 0  # waited too long (the store away), or their write failed

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-history")

    async def close(self) -> None:
        """Stop, writing what is pending first."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    def observe(self, broadcast: Broadcast, signals: StreamSignals) -> None:
        """One measurement of a live broadcast: kept when its last sample is `interval` old."""
        now = self._clock()
        last = self._last.get(broadcast.id)
        if last is not None and now - last < self.interval:
            return
        self._last[broadcast.id] = now
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1  # the deque drops its oldest
        self._pending.append(BroadcastSampleRecord(
            stream_id=broadcast.stream_id, broadcast_id=broadcast.id, at=utcnow(),
            data=sample_data(signals)))

    def ended(self, broadcast: Broadcast) -> None:
        self._last.pop(broadcast.id, None)

    async def flush(self) -> None:
        """Write what is pending now (one transaction)."""
        if not self._pending:
            return
        batch = list(self._pending)
        self._pending.clear()
        try:
            self.written += await self._write(batch)
        except Exception as exc:  # the store is away: this stretch goes without figures
            self.dropped += len(batch)
            self._log.warning("write", self._clock(),
                              "ingest history not written samples=%d error=%s", len(batch), exc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()


class IngestHistoryRetention(PeriodicSweep):
    """Every `interval` seconds, the samples older than `retention` seconds are deleted
    (a batch at a time: a long-kept table is not locked for one long delete)."""

    name = "ingest-history-retention"
    done = "ingest history pruned samples=%d"
    logger = log

    def __init__(self, prune: Callable[[datetime], Awaitable[int]], *, retention: float,
                 interval: float, clock: Callable[[], datetime] = utcnow) -> None:
        if retention <= 0:
            raise ValueError("retention must be positive")
        super().__init__(interval=interval)
        self._prune = prune
        self._retention = timedelta(seconds=retention)
        self._clock = clock

    async def sweep(self) -> int:
        before = self._clock() - self._retention
        done = 0
        while (pruned := await self._prune(before)) > 0:
            done += pruned
        return done
