"""Persists every completed segment of a recorded broadcast, and turns it into an asset (recording).

The live path only hands segments over (`SegmentObserver` calls append to a queue and
return). Writer tasks store each object, then index it, retrying with backoff while
storage or the database is away. While storage fails, and past `queue_segments`
waiting in memory, waiting objects move to the spool on disk (bounded by
`spool_bytes`; past it the newest segments are dropped, counted and warned about), and
the broadcast's stream gets a `live_stream.warning`; uploads resume from the spool when
storage returns. When the presentation ends (after the reconnect window) and everything it
handed over is stored, the asset is finished: `recording.ready` and `asset.ready`.

A node killed mid-broadcast loses at most what was in flight: the index only names
stored objects, the spool is whole files, and `start()` uploads what the spool holds
and finishes every recording the last run left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from golive.core import Backoff, Cooldown, Event, EventBus, EventType, new_playback_id, random_id
from golive.formats import InitSegment
from golive.packaging import CompletedSegment, RenditionInfo, measure_segments
from golive.recording import spool
from golive.recording.jobs import Job, job_from_spool
from golive.recording.storage import SegmentStorage, StorageError, segment_key
from golive.store import (
    AssetInitRecord,
    AssetRecord,
    AssetRenditionRecord,
    AssetSegmentRecord,
    AssetStore,
    Store,
    is_outage,
)

__all__ = ["Recorder", "RecorderStats", "RecordingSession"]

log = logging.getLogger(__name__)

LAG_SAMPLES = 10_000
"""Upload lags kept for the percentiles `stats()` reports."""

WARNING_INTERVAL = 30.0
"""Seconds between two `live_stream.warning`s about one recording's storage trouble."""


@dataclass(frozen=True, slots=True)
class RecorderStats:
    recordings: int  # open recordings
    stored: int  # objects stored and indexed since start
    queued: int  # waiting in memory
    spooled: int  # waiting on disk
    spool_bytes: int
    dropped: int  # segments lost because memory and spool were full
    storage_failures: int  # storage requests that failed (and were retried)
    lag_p50: float | None  # seconds from segment complete to stored and indexed
    lag_p99: float | None


class RecordingSession:
    """One broadcast being recorded: the `SegmentObserver` a presentation reports to."""

    def __init__(
        self,
        recorder: Recorder,
        *,
        asset_id: str,
        stream_id: str,
        broadcast_id: str,
        playback_id: str,
    ) -> None:
        self._recorder = recorder
        self.asset_id = asset_id
        self.stream_id = stream_id
        self.broadcast_id = broadcast_id
        self.playback_id = playback_id
        self.pending = 0  # jobs handed over and not yet stored (or dropped)
        self.ended = False
        self.finishing = False
        self.recovered = False  # left open by a previous run: it ended when its media did
        self.captions = False  # its pictures carry CEA-608 captions
        self.caption_channels: frozenset[str] = frozenset()  # found besides CC1
        self.failed = False  # its asset row could not be written: nothing of it is stored
        self.created = asyncio.get_running_loop().create_future()
        self.renditions_indexed: set[str] = set()
        self._first_segment: set[str] = set()

    # SegmentObserver -------------------------------------------------------------------

    def init_segment(self, rendition: RenditionInfo, generation: int, init: InitSegment) -> None:
        video = init.video
        info = AssetRenditionRecord(
            name=rendition.name,
            bandwidth=rendition.bandwidth,
            average_bandwidth=rendition.average_bandwidth,
            frame_rate=rendition.frame_rate,
            codecs=init.codecs,
            width=(video.width or 0) if video is not None else 0,
            height=(video.height or 0) if video is not None else 0,
        )
        self._recorder._submit(Job(
            self, "init", rendition.name, generation, init.data, len(init.data),
            time.monotonic(), rendition_info=info,
        ))

    def segment_completed(self, segment: CompletedSegment) -> None:
        if self.ended:
            return
        # A rendition's first stored segment opens its timeline in the VOD playlist; the
        # live window only marks later timelines.
        first = segment.rendition not in self._first_segment
        self._first_segment.add(segment.rendition)
        record = AssetSegmentRecord(
            rendition=segment.rendition,
            msn=segment.msn,
            generation=segment.generation,
            media_start=segment.media_start,
            duration=segment.duration,
            program_date_time=segment.program_date_time,
            size=len(segment.data),
            discontinuity=segment.discontinuity and not first,
            key=segment_key(self.asset_id, segment.rendition, segment.msn),
        )
        self._recorder._submit(Job(
            self, "segment", segment.rendition, segment.generation, segment.data,
            len(segment.data), time.monotonic(), segment=record,
        ))

    def captions_found(self, channels: Collection[str]) -> None:
        wanted = self.caption_channels | frozenset(channels)
        if not self.captions or wanted != self.caption_channels:
            self.captions = True
            self.caption_channels = wanted
            self._recorder._spawn(self._recorder._mark_captions(self))

    def presentation_ended(self) -> None:
        if not self.ended:
            self.ended = True
            self._recorder._maybe_finish(self)


class Recorder:
    """Every recording of one node: the queue, the spool, the writer tasks."""

    def __init__(
        self,
        *,
        store: Store,
        assets: AssetStore,
        storage: SegmentStorage,
        bus: EventBus,
        spool_dir: Path,
        queue_segments: int = 256,
        spool_bytes: int = 2 * 1024**3,
        retention_days: int | None = None,
        writers: int = 4,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if queue_segments < 1 or writers < 1 or spool_bytes < 0:
            raise ValueError("queue_segments and writers must be positive, spool_bytes >= 0")
        self._store = store
        self.assets = assets
        self.storage = storage
        self._bus = bus
        self._spool_dir = spool_dir
        self._queue_limit = queue_segments
        self._spool_limit = spool_bytes
        self._retention_days = retention_days
        self._writer_count = writers
        self._clock = clock
        self._memory: deque[Job] = deque()
        self._spooled: deque[Job] = deque()
        self._spool_used = 0
        self._spool_names = itertools.count()
        self._recordings: dict[str, RecordingSession] = {}  # by asset id
        self._work = asyncio.Event()
        self._spill = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._lags: deque[float] = deque(maxlen=LAG_SAMPLES)
        self._warned = Cooldown(WARNING_INTERVAL)
        self._outage = False  # the last storage request failed
        self._changed = asyncio.Event()  # set on every change `_idle` depends on
        self.stored = 0
        self.dropped = 0
        self.storage_failures = 0

    # Lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover what a previous run left (spool, open recordings), then start writing."""
        self._spool_names = itertools.count(int(time.time() * 1000) * 1000)
        await self._recover()
        for index in range(self._writer_count):
            self._tasks.append(asyncio.create_task(self._writer(), name=f"recording-writer-{index}"))
        self._tasks.append(asyncio.create_task(self._spiller(), name="recording-spiller"))

    async def close(self, *, drain_timeout: float = 10.0) -> None:
        """Store what is queued (for at most `drain_timeout`), spool the rest, stop."""
        try:
            async with asyncio.timeout(drain_timeout):
                await self.wait_idle()
        except TimeoutError:
            log.warning("recording writers stopped before storage took everything; "
                        "the rest is spooled and uploaded at the next start")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        # What never reached storage waits in the spool for the next start.
        memory, self._memory = list(self._memory), deque()
        for job in memory:
            with contextlib.suppress(OSError, ValueError):
                await asyncio.to_thread(self._write_spool, job)
        for task in list(self._side_tasks):
            task.cancel()
        await self.storage.close()

    def _idle(self) -> bool:
        busy = any(r.pending or (r.ended and not r.finishing) for r in self._recordings.values())
        return not (self._memory or self._spooled or busy or self._side_tasks)

    async def wait_idle(self) -> None:
        """Return once nothing is queued, spooled or finishing (for tests and benchmarks)."""
        while not self._idle():
            self._changed.clear()
            await self._changed.wait()

    # Starting a recording (from the composition root) ---------------------------------

    def begin(
        self, *, stream_id: str, broadcast_id: str, signed: bool
    ) -> RecordingSession:
        """A new recording of a broadcast; its asset row is written in the background."""
        session = RecordingSession(
            self,
            asset_id=random_id("as"),
            stream_id=stream_id,
            broadcast_id=broadcast_id,
            playback_id=new_playback_id(),
        )
        self._recordings[session.asset_id] = session
        log.info("recording started stream_id=%s broadcast_id=%s asset_id=%s", stream_id,
                 broadcast_id, session.asset_id)
        self._spawn(self._create(session, "signed" if signed else "public"))
        return session

    async def _create(self, session: RecordingSession, policy: str) -> None:
        backoff = Backoff(first=0.5, longest=10.0)
        while True:
            try:
                stream = await self._store.get_stream(session.stream_id)
                days = stream.recording_retention_days if stream is not None else None
                days = days or self._retention_days
                now = self._clock()
                await self.assets.create_asset(
                    asset_id=session.asset_id,
                    stream_id=session.stream_id,
                    broadcast_id=session.broadcast_id,
                    playback_id=session.playback_id,
                    playback_policy=policy,
                    created_at=now,
                    expires_at=now + timedelta(days=days) if days else None,
                )
                break
            except Exception as exc:
                if not is_outage(exc):
                    # Not a passing outage: retrying would never succeed. Nothing of this
                    # recording is stored, rather than objects no index names.
                    log.error("recording not started stream_id=%s asset_id=%s error=%s",
                              session.stream_id, session.asset_id, exc)
                    self._warn(session, "recording_failed",
                               f"this broadcast cannot be recorded: {exc}")
                    session.failed = True
                    break
                self._warn(session, "recording_index_unavailable",
                           f"the recording index cannot be written yet: {exc}")
                await asyncio.sleep(backoff.next_delay())
        if not session.created.done():
            session.created.set_result(None)

    # Queue -----------------------------------------------------------------------------

    def _submit(self, job: Job) -> None:
        """From the live path: never blocks, never raises."""
        session = job.recording
        session.pending += 1
        self._memory.append(job)
        if len(self._memory) > self._queue_limit:
            self._spill.set()
            if len(self._memory) > 2 * self._queue_limit:
                # The spool cannot keep up either: the newest media segment goes (inits,
                # without which a whole run is unplayable, are always kept).
                for index in range(len(self._memory) - 1, -1, -1):
                    victim = self._memory[index]
                    if victim.kind == "segment":
                        del self._memory[index]
                        self._drop(victim, "the recording queue and spool are full")
                        break
        self._work.set()

    def _drop(self, job: Job, why: str) -> None:
        self.dropped += 1
        session = job.recording
        self._warn(session, "recording_segment_dropped",
                   f"a recorded segment was dropped: {why}", rendition=job.rendition)
        self._job_done(job)

    async def _take(self) -> Job:
        while True:
            if self._memory:
                return self._memory.popleft()
            if self._spooled:
                job = self._spooled.popleft()
                assert job.spooled is not None
                try:
                    _, job.data = await asyncio.to_thread(spool.read_entry, job.spooled.path)
                except (OSError, ValueError) as exc:
                    self._spool_used -= job.size
                    self._drop(job, f"its spool file could not be read ({exc})")
                    continue
                return job
            self._work.clear()
            await self._work.wait()

    async def _spiller(self) -> None:
        """Moves waiting objects to the spool: all of them while storage fails (a crash
        then loses nothing already handed over), else the newest beyond the memory limit."""
        while True:
            await self._spill.wait()
            self._spill.clear()
            while self._memory and (self._outage or len(self._memory) > self._queue_limit):
                job = self._memory.pop()
                if self._spool_used + job.size > self._spool_limit:
                    self._drop(job, "the spool is full (recording_spool_bytes)")
                    continue
                self._spool_used += job.size
                try:
                    await asyncio.to_thread(self._write_spool, job)
                except (OSError, ValueError) as exc:
                    self._spool_used -= job.size
                    self._drop(job, f"it could not be spooled ({exc})")
                    continue
                job.data = None
                self._spooled.append(job)
                self._work.set()

    def _write_spool(self, job: Job) -> None:
        assert job.data is not None
        name = f"{next(self._spool_names):020d}"
        job.spooled = spool.write_entry(self._spool_dir, name, job.header(), job.data)

    # Writing ---------------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            job = await self._take()
            try:
                await self._store_job(job)
            except asyncio.CancelledError:
                if job.data is not None and job.spooled is None:
                    self._memory.appendleft(job)  # close() spools it
                raise
            except Exception:
                # A bug, not an outage (those are retried inside): this writer goes on.
                log.exception("recorded object lost asset_id=%s key=%s",
                              job.recording.asset_id, job.key)
                self.dropped += 1
            self._job_done(job)

    async def _store_job(self, job: Job) -> None:
        session = job.recording
        assert job.data is not None
        await session.created
        if session.failed:
            await self._discard(job)
            return
        backoff = Backoff(first=0.5, longest=10.0)
        while True:
            try:
                await self.storage.put(job.key, job.data)
                self._outage = False
                break
            except StorageError as exc:
                self.storage_failures += 1
                self._outage = True
                self._spill.set()
                self._warn(session, "recording_storage_unavailable",
                           f"recording storage is unavailable ({exc}); segments are kept "
                           "on local disk and uploaded when it returns")
                await asyncio.sleep(backoff.next_delay())
        backoff.reset()
        while True:
            try:
                await self._index(job)
                break
            except Exception as exc:
                if not is_outage(exc):
                    # The asset went (deleted meanwhile) or the row is refused for good:
                    # the object is not left behind unindexed.
                    log.error("recorded object not indexed asset_id=%s key=%s error=%s",
                              session.asset_id, job.key, exc)
                    with contextlib.suppress(StorageError):
                        await self.storage.delete([job.key])
                    await self._discard(job)
                    return
                self._warn(session, "recording_index_unavailable",
                           f"the recording index cannot be written yet: {exc}")
                await asyncio.sleep(backoff.next_delay())
        await self._discard(job)
        self.stored += 1
        self._lags.append(time.monotonic() - job.completed_at)

    async def _discard(self, job: Job) -> None:
        """Forget a job's bytes and its spool file (stored, or never to be)."""
        if job.spooled is not None:
            await asyncio.to_thread(job.spooled.path.unlink, missing_ok=True)
            self._spool_used -= job.size
            job.spooled = None
        job.data = None

    async def _index(self, job: Job) -> None:
        session = job.recording
        if job.kind == "init":
            info = job.rendition_info
            if info is not None and info.name not in session.renditions_indexed:
                await self.assets.add_rendition(session.asset_id, info)
                session.renditions_indexed.add(info.name)
            init = AssetInitRecord(job.rendition, job.generation, job.key, job.size)
            await self.assets.add_stored(session.asset_id, [init], [])
        else:
            assert job.segment is not None
            await self.assets.add_stored(session.asset_id, [], [job.segment])

    def _job_done(self, job: Job) -> None:
        session = job.recording
        session.pending -= 1
        self._maybe_finish(session)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()

    # Finishing -------------------------------------------------------------------------

    def _maybe_finish(self, session: RecordingSession) -> None:
        if session.ended and session.pending == 0 and not session.finishing:
            session.finishing = True
            self._spawn(self._finish(session))

    async def _finish(self, session: RecordingSession) -> None:
        await session.created
        if session.failed:
            self._recordings.pop(session.asset_id, None)
            return
        ended = await self._end_of(session.asset_id) if session.recovered else self._clock()
        backoff = Backoff(first=0.5, longest=10.0)
        asset: AssetRecord | None = None
        while True:
            try:
                asset = await self.assets.finish(session.asset_id, ended_at=ended, status="ready",
                                                 captions=session.captions,
                                                 caption_channels=session.caption_channels,
                                                 bandwidths=await self._measured(session.asset_id))
                break
            except Exception as exc:
                self._warn(session, "recording_index_unavailable",
                           f"the recording cannot be finished yet: {exc}")
                await asyncio.sleep(backoff.next_delay())
        self._recordings.pop(session.asset_id, None)
        if asset is None:
            return  # deleted meanwhile
        log.info("recording finished stream_id=%s asset_id=%s status=%s duration=%.3f bytes=%d",
                 asset.stream_id, asset.id, asset.status, asset.duration, asset.bytes)
        data = {"asset_id": asset.id, "playback_id": asset.playback_id,
                "duration": asset.duration, "status": asset.status}
        self._bus.publish(Event(type=EventType.RECORDING_READY, stream_id=asset.stream_id,
                                broadcast_id=asset.broadcast_id, data=data))
        if asset.status == "ready":
            self._bus.publish(Event(type=EventType.ASSET_READY, stream_id=asset.stream_id,
                                    broadcast_id=asset.broadcast_id, data=data))

    async def _measured(self, asset_id: str) -> dict[str, tuple[int, int]]:
        """Each stored rendition's (peak, average) segment bit rates (RFC 8216bis 4.4.6.2):
        what the asset's playlists must declare now that all of its segments exist."""
        asset = await self.assets.get(asset_id)
        if asset is None:
            return {}
        measured = {}
        for rendition in asset.renditions:
            segments = await self.assets.segments(asset_id, rendition.name)
            measured[rendition.name] = measure_segments((s.size, s.duration) for s in segments)
        return measured

    async def _mark_captions(self, session: RecordingSession) -> None:
        """Store at once that the recording carries captions (`finish` stores it too: a
        failure here only matters if the node also dies before then)."""
        await session.created
        if session.failed:
            return
        try:
            await self.assets.mark_captions(session.asset_id, session.caption_channels)
        except Exception as exc:
            log.warning("recording captions not stored yet asset_id=%s error=%r",
                        session.asset_id, exc)

    # Recovery --------------------------------------------------------------------------

    async def _recover(self) -> None:
        entries = await asyncio.to_thread(spool.scan, self._spool_dir)
        unfinished = {asset.id: asset for asset in await self.assets.unfinished()}
        sessions: dict[str, RecordingSession] = {}
        for asset in unfinished.values():
            session = RecordingSession(
                self, asset_id=asset.id, stream_id=asset.stream_id,
                broadcast_id=asset.broadcast_id, playback_id=asset.playback_id,
            )
            session.ended = True
            session.recovered = True
            session.created.set_result(None)
            sessions[asset.id] = session
            self._recordings[asset.id] = session
        for entry in entries:
            owner = sessions.get(str(entry.header.get("asset_id")))
            job = job_from_spool(owner, entry) if owner is not None else None
            if job is None:
                log.warning("spooled recording data of no open recording removed file=%s",
                            entry.path.name)
                entry.path.unlink(missing_ok=True)
                continue
            job.recording.pending += 1
            self._spool_used += job.size
            self._spooled.append(job)
        for session in sessions.values():
            log.info("recording left open by the last run is being finished asset_id=%s "
                     "spooled=%d", session.asset_id, session.pending)
            self._maybe_finish(session)  # else when the writers have stored its spool

    async def _end_of(self, asset_id: str) -> datetime:
        """When a recording a killed run left open ended: its last stored media's end."""
        asset = await self.assets.get(asset_id)
        if asset is None:
            return self._clock()
        ends = []
        for rendition in asset.renditions:
            segments = await self.assets.segments(asset_id, rendition.name)
            if segments:
                last = segments[-1]
                ends.append(last.program_date_time + timedelta(seconds=last.duration))
        return max(ends, default=asset.created_at)

    # Facts -----------------------------------------------------------------------------

    def stats(self) -> RecorderStats:
        lags = sorted(self._lags)

        def pick(q: float) -> float | None:
            return lags[min(len(lags) - 1, int(q * len(lags)))] if lags else None

        return RecorderStats(
            recordings=len(self._recordings),
            stored=self.stored,
            queued=len(self._memory),
            spooled=len(self._spooled),
            spool_bytes=self._spool_used,
            dropped=self.dropped,
            storage_failures=self.storage_failures,
            lag_p50=pick(0.5),
            lag_p99=pick(0.99),
        )

    # Internals -------------------------------------------------------------------------

    def _warn(self, session: RecordingSession, code: str, message: str, **data: Any) -> None:
        if not self._warned.allow(f"{session.asset_id}/{code}", time.monotonic()):
            return
        log.warning("stream warning stream_id=%s asset_id=%s code=%s message=%s",
                    session.stream_id, session.asset_id, code, message)
        self._bus.publish(Event(
            type=EventType.LIVE_STREAM_WARNING, stream_id=session.stream_id,
            broadcast_id=session.broadcast_id,
            data={"code": code, "message": message, "asset_id": session.asset_id, **data},
        ))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_done)

    def _side_done(self, task: asyncio.Task[Any]) -> None:
        self._side_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("recording task failed error=%r", task.exception())
        self._changed.set()
