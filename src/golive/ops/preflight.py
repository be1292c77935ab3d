"""Preflight sessions (control plane): the operator publishes the real scene for N seconds
on the stream's own ingest path (same URL, same key), golive keeps it off the air, measures
it and answers go / no-go with every check (`golive.ops.preflight_checks`).

`PreflightDesk.arm` opens a session for an idle stream; the next publisher presenting that
stream's key is taken by `PreflightPublishTarget` (in front of the broadcast hub) instead of
starting a broadcast: no playback id serves it, no webhook hears of it. Once it has sent the
session's seconds of media (or leaves), the connection is closed and ffmpeg's ebur128 filter
measures loudness and true peak from the captured FLV (piped, never written to disk). The
result is stored with the stream (`Store.update_preflight`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from golive.core import hash_stream_key
from golive.formats import MediaTag
from golive.ops.preflight_checks import PreflightCapture, SrtStats, judge, parse_ebur128
from golive.ops.profiles import ProfileCatalog, document_profile
from golive.store import PreflightRecord, Store, StreamRecord
from golive.stream import Disconnect, Publisher, PublishRefused, PublishTarget, RefusalReason

log = logging.getLogger(__name__)

PREFLIGHT_MIN_DURATION, PREFLIGHT_MAX_DURATION = 2.0, 120.0  # seconds of media
MAX_CAPTURE_BYTES = 64 * 1024 * 1024  # 120 s at ~4 Mbit/s; a longer capture stops early
WAIT_SECONDS = 600.0  # an armed session nobody publishes to expires
ANALYSIS_TIMEOUT = 120.0


class PreflightRefused(Exception):
    """The stream cannot take a preflight now (live, or one already waiting)."""


@dataclass
class _Session:
    record: PreflightRecord
    stream_id: str
    key_hash: str
    latency_mode: str
    expiry: asyncio.TimerHandle | None = None
    capturing: asyncio.Task[None] | None = None  # the status write the analysis waits for
    protocol: str = ""


class PreflightDesk:
    """Armed preflight sessions, by stream key hash, and the analyses they start."""

    def __init__(self, store: Store, catalog: ProfileCatalog, ffmpeg: str, *,
                 wait_seconds: float = WAIT_SECONDS, max_bytes: int = MAX_CAPTURE_BYTES,
                 srt_stats: Callable[[str], SrtStats | None] | None = None) -> None:
        """`srt_stats(stream_key)`: the SRT figures of that key's connected publisher."""
        self._store = store
        self._srt_stats = srt_stats
        self._catalog = catalog
        self._ffmpeg = ffmpeg
        self._wait = wait_seconds
        self._max_bytes = max_bytes
        self._armed: dict[str, _Session] = {}  # by key hash
        self._tasks: set[asyncio.Task[None]] = set()
        self._arming = asyncio.Lock()  # one check-then-arm at a time

    async def arm(self, stream: StreamRecord, duration: float) -> PreflightRecord:
        """A waiting session for `stream` (idle, enabled, none waiting yet)."""
        if not PREFLIGHT_MIN_DURATION <= duration <= PREFLIGHT_MAX_DURATION:
            raise ValueError(f"duration must be {PREFLIGHT_MIN_DURATION:g} to "
                             f"{PREFLIGHT_MAX_DURATION:g} seconds")
        async with self._arming:
            return await self._arm(stream, duration)

    async def _arm(self, stream: StreamRecord, duration: float) -> PreflightRecord:
        if stream.status == "disabled":
            raise PreflightRefused(f"live stream {stream.id} is disabled")
        if await self._store.open_broadcast_id(stream.id) is not None:
            raise PreflightRefused(f"live stream {stream.id} is live: preflight runs before "
                                   "the broadcast, on an idle stream")
        if any(s.stream_id == stream.id for s in self._armed.values()):
            raise PreflightRefused(f"live stream {stream.id} already has a preflight waiting")
        states = await self._store.publish_states([stream.id])
        if stream.id not in states:
            raise LookupError(stream.id)
        key_hash = states[stream.id][1]
        pinned = await self._catalog.current(stream)
        record = await self._store.create_preflight(stream.id, pinned.label, duration)
        session = _Session(record, stream.id, key_hash, stream.latency_mode)
        self._armed[key_hash] = session
        session.expiry = asyncio.get_running_loop().call_later(
            self._wait, lambda: self._spawn(self._expire(session)))
        log.info("preflight armed stream_id=%s preflight_id=%s duration=%g", stream.id,
                 record.id, duration)
        return record

    async def claim(self, stream_key: str) -> _Session | None:
        """The waiting session this key publishes to, taken off the desk (None: none).
        Raises PublishRefused when its stream was disabled since (the hub is not asked)."""
        key_hash = hash_stream_key(stream_key)
        session = self._armed.pop(key_hash, None)
        if session is None:
            return None
        if session.expiry is not None:
            session.expiry.cancel()
        state = (await self._store.publish_states([session.stream_id])).get(session.stream_id)
        if state is None or state[0] == "disabled" or state[1] != key_hash:
            await self._store.update_preflight(session.record.id, status="failed",
                                               error="the stream was disabled or deleted")
            raise PublishRefused(RefusalReason.DISABLED, "live stream is disabled")
        return session

    def capture(self, session: _Session, stream_key: str, protocol: str, remote_address: str,
                disconnect: Disconnect | None) -> PreflightPublisher:
        log.info("preflight capturing stream_id=%s preflight_id=%s protocol=%s remote=%s",
                 session.stream_id, session.record.id, protocol, remote_address)
        session.protocol = protocol
        session.capturing = self._spawn(self._set_status(session, "capturing"))
        return PreflightPublisher(self, session, stream_key, disconnect, self._max_bytes)

    def finished(self, session: _Session, capture: PreflightCapture, stream_key: str) -> None:
        # The link's figures now, while the publisher is still connected.
        srt = None
        if session.protocol == "srt" and self._srt_stats is not None:
            srt = self._srt_stats(stream_key)
        self._spawn(self._analyse(session, capture, srt))

    async def close(self) -> None:
        for session in self._armed.values():
            if session.expiry is not None:
                session.expiry.cancel()
        self._armed.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def recover(self) -> int:
        """Sessions a stopped node left unfinished are failed (their publisher is gone)."""
        return await self._store.fail_unfinished_preflights("the node restarted")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _set_status(self, session: _Session, status: str) -> None:
        await self._store.update_preflight(session.record.id, status=status)

    async def _expire(self, session: _Session) -> None:
        if self._armed.get(session.key_hash) is session:
            del self._armed[session.key_hash]
            await self._store.update_preflight(
                session.record.id, status="expired",
                error=f"nobody published within {self._wait:g} s")

    async def _analyse(self, session: _Session, capture: PreflightCapture,
                       srt: SrtStats | None) -> None:
        record = session.record
        try:
            if session.capturing is not None:
                await session.capturing  # statuses in order, whatever the publisher did
            await self._set_status(session, "analyzing")
            if capture.media_seconds < 1.0:
                await self._store.update_preflight(
                    record.id, status="failed",
                    error=f"the publisher sent {capture.media_seconds:.1f} s of media; "
                    f"publish for {record.duration:g} s")
                return
            loudness = None
            if capture.audio_bytes:
                loudness = parse_ebur128(await self._ebur128(bytes(capture.flv)))
            pinned = await self._catalog.resolve(record.profile)
            verdict = judge(capture, document_profile(pinned), loudness,
                            latency_mode=session.latency_mode, srt=srt)
            await self._store.update_preflight(
                record.id, status="done", verdict="go" if verdict.go else "no_go",
                result=verdict.as_dict())
            log.info("preflight done stream_id=%s preflight_id=%s verdict=%s",
                     session.stream_id, record.id, "go" if verdict.go else "no_go")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("preflight failed stream_id=%s preflight_id=%s", session.stream_id,
                          record.id)
            await self._store.update_preflight(record.id, status="failed",
                                               error=f"analysis failed: {exc}")

    async def _ebur128(self, flv: bytes) -> str:
        """ffmpeg's EBU R128 summary (integrated loudness, true peak) of the capture's audio."""
        proc = await asyncio.create_subprocess_exec(
            self._ffmpeg, "-hide_banner", "-nostats", "-nostdin", "-f", "flv", "-i", "pipe:0",
            "-vn", "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(flv), ANALYSIS_TIMEOUT)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        # The summary is the last lines (per-frame lines go to the verbose log level).
        return err.decode("utf-8", "replace")[-8192:]


class PreflightPublisher:
    """A publisher whose media goes to a preflight capture, never to a broadcast."""

    def __init__(self, desk: PreflightDesk, session: _Session, stream_key: str,
                 disconnect: Disconnect | None, max_bytes: int) -> None:
        self._desk = desk
        self._session = session
        self._stream_key = stream_key  # to find its SRT figures; never logged nor stored
        self._disconnect = disconnect
        self.capture = PreflightCapture(max_bytes=max_bytes)
        self._done = False

    @property
    def stream_id(self) -> str:
        return self._session.stream_id

    @property
    def broadcast_id(self) -> str:
        return self._session.record.id

    @property
    def webrtc_playback(self) -> bool:
        return False

    def push(self, tag: MediaTag) -> None:
        if self._done:
            return
        self.capture.observe(tag, time.monotonic())
        if self.capture.full or self.capture.media_seconds >= self._session.record.duration:
            self._finish()
            if self._disconnect is not None:
                self._disconnect("preflight complete")

    def close(self, reason: str) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._desk.finished(self._session, self.capture, self._stream_key)


class PreflightPublishTarget:
    """In front of the hub: a key with a waiting preflight publishes to it, others pass on."""

    def __init__(self, target: PublishTarget, desk: PreflightDesk) -> None:
        self._target = target
        self._desk = desk

    async def open_publisher(
        self, stream_key: str, *, protocol: str, remote_address: str,
        disconnect: Disconnect | None = None,
    ) -> Publisher:
        session = await self._desk.claim(stream_key)
        if session is None:
            return await self._target.open_publisher(
                stream_key, protocol=protocol, remote_address=remote_address,
                disconnect=disconnect)
        return self._desk.capture(session, stream_key, protocol, remote_address, disconnect)
