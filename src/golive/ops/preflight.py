"""Preflight sessions (control plane): the operator publishes the real scene for N seconds
on the stream's own ingest path (same URL, same key), golive keeps it off the air, measures
it and answers go / no-go with every check (`golive.ops.preflight_checks`).

`PreflightDesk.arm` opens a session for an idle stream; the next publisher presenting that
stream's key is taken by `PreflightPublishTarget` (in front of the broadcast hub) instead of
starting a broadcast: no playback id serves it, no webhook hears of it. A publisher on the
stream's backup key joins the same session as its backup: once the primary has sent a
second, the session's failover drill (`FailoverDrill`) switches its programme to the
backup for a few seconds and back, and ffmpeg decodes that programme. Once the primary has
sent the session's seconds of media (and the drill is over, or no backup came), both
connections are closed; ffmpeg's ebur128 filter measures loudness and true peak from the
captured FLV (piped, never written to disk), and the capture is pushed for a few seconds
to each enabled destination of the stream, with its credentials. The result is stored with
the stream (`Store.update_preflight`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from golive.core import hash_stream_key
from golive.formats import MediaTag
from golive.media import push_sample, redact_url
from golive.ops.failover_drill import FailoverDrill
from golive.ops.preflight_checks import (
    DestinationReport,
    FailoverReport,
    PreflightCapture,
    SrtStats,
    TcpStats,
    judge,
    parse_ebur128,
)
from golive.ops.profiles import ProfileCatalog, document_profile
from golive.store import PreflightRecord, Store, StreamRecord
from golive.stream import Disconnect, Publisher, PublishRefused, PublishTarget, RefusalReason

log = logging.getLogger(__name__)

PREFLIGHT_MIN_DURATION, PREFLIGHT_MAX_DURATION = 2.0, 120.0  # seconds of media
MAX_CAPTURE_BYTES = 64 * 1024 * 1024  # 120 s at ~4 Mbit/s; a longer capture stops early
WAIT_SECONDS = 600.0  # an armed session nobody publishes to expires
ANALYSIS_TIMEOUT = 120.0
DRILL_SWITCH_AFTER = 1.0  # seconds of the primary before the drill switches to the backup
DRILL_BACKUP_SECONDS = 2.0  # of the backup's media carried before switching back
DRILL_GRACE = 10.0  # media seconds past the duration a session waits for the drill
MAX_DRILL_BYTES = 32 * 1024 * 1024
DESTINATION_PUSH_SECONDS = 3.0
DECODE_ERROR_LINES = 4

Role = Literal["primary", "backup"]


@dataclass(frozen=True)
class PreflightDestination:
    """A destination the stream forwards to: its name and full URL (with its secret)."""

    name: str
    url: str


class PreflightRefused(Exception):
    """The stream cannot take a preflight now (live, or one already waiting)."""


@dataclass(eq=False)
class _Session:
    record: PreflightRecord
    stream_id: str
    key_hash: str
    backup_key_hash: str | None
    latency_mode: str
    drill: FailoverDrill
    expiry: asyncio.TimerHandle | None = None
    capturing: asyncio.Task[None] | None = None  # the status write the analysis waits for
    protocol: str = ""
    claimed: set[str] = field(default_factory=set)  # roles with a publisher (or claiming)
    backup: PreflightPublisher | None = None  # connected now
    backup_capture: PreflightCapture | None = None  # the latest backup publisher's
    done: bool = False


class PreflightDesk:
    """Armed preflight sessions, by stream key hash, and the analyses they start."""

    def __init__(self, store: Store, catalog: ProfileCatalog, ffmpeg: str, *,
                 wait_seconds: float = WAIT_SECONDS, max_bytes: int = MAX_CAPTURE_BYTES,
                 srt_stats: Callable[[str], SrtStats | None] | None = None,
                 tcp_stats: Callable[[str], TcpStats | None] | None = None,
                 destinations: Callable[[str], Awaitable[Sequence[PreflightDestination]]]
                 | None = None,
                 allow_private_destinations: bool = False,
                 push_seconds: float = DESTINATION_PUSH_SECONDS) -> None:
        """`srt_stats(stream_key)` / `tcp_stats(stream_key)`: the SRT figures or the TCP
        round trip of that key's connected publisher; `destinations(stream_id)`: the
        stream's enabled destinations, each pushed `push_seconds` of the capture."""
        self._store = store
        self._srt_stats = srt_stats
        self._tcp_stats = tcp_stats
        self._destinations = destinations
        self._allow_private = allow_private_destinations
        self._push_seconds = push_seconds
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
        _, key_hash, backup_hash = states[stream.id]
        pinned = await self._catalog.current(stream)
        record = await self._store.create_preflight(stream.id, pinned.label, duration)
        drill = FailoverDrill(switch_after=DRILL_SWITCH_AFTER,
                              backup_seconds=DRILL_BACKUP_SECONDS, max_bytes=MAX_DRILL_BYTES)
        session = _Session(record, stream.id, key_hash, backup_hash, stream.latency_mode, drill)
        self._armed[key_hash] = session
        if backup_hash is not None:
            self._armed[backup_hash] = session
        session.expiry = asyncio.get_running_loop().call_later(
            self._wait, lambda: self._spawn(self._expire(session)))
        log.info("preflight armed stream_id=%s preflight_id=%s duration=%g", stream.id,
                 record.id, duration)
        return record

    async def claim(self, stream_key: str) -> tuple[_Session, Role] | None:
        """The waiting session this key publishes to, and as what (None: none). The primary
        takes the session off the desk; a backup may join (and rejoin) until it ends.
        Raises PublishRefused when its stream was disabled since (the hub is not asked) or
        the key already has a publisher in the session."""
        key_hash = hash_stream_key(stream_key)
        session = self._armed.get(key_hash)
        if session is None:
            return None
        role: Role = "primary" if key_hash == session.key_hash else "backup"
        if role in session.claimed:
            raise PublishRefused(RefusalReason.ALREADY_LIVE,
                                 f"a preflight {role} publisher is already connected")
        session.claimed.add(role)
        if role == "primary":
            del self._armed[key_hash]
            if session.expiry is not None:
                session.expiry.cancel()
        state = (await self._store.publish_states([session.stream_id])).get(session.stream_id)
        current = None if state is None else state[1] if role == "primary" else state[2]
        if state is None or state[0] == "disabled" or current != key_hash:
            session.claimed.discard(role)
            if role == "primary":
                self._forget(session)
                session.done = True
                if session.backup is not None:
                    session.backup.end("the stream was disabled or deleted")
                await self._store.update_preflight(session.record.id, status="failed",
                                                   error="the stream was disabled or deleted")
            raise PublishRefused(RefusalReason.DISABLED, "live stream is disabled")
        if session.done:  # the primary finished while this backup's key was checked
            session.claimed.discard(role)
            raise PublishRefused(RefusalReason.ALREADY_LIVE, "the preflight session has ended")
        return session, role

    def capture(self, session: _Session, role: Role, stream_key: str, protocol: str,
                remote_address: str, disconnect: Disconnect | None) -> PreflightPublisher:
        log.info("preflight capturing stream_id=%s preflight_id=%s role=%s protocol=%s "
                 "remote=%s", session.stream_id, session.record.id, role, protocol,
                 remote_address)
        if role == "backup":
            publisher = PreflightPublisher(self, session, role, stream_key, disconnect,
                                           PreflightCapture(max_bytes=0, keep_flv=False))
            session.backup, session.backup_capture = publisher, publisher.capture
            return publisher
        session.protocol = protocol
        session.capturing = self._spawn(self._set_status(session, "capturing"))
        return PreflightPublisher(self, session, role, stream_key, disconnect,
                                  PreflightCapture(max_bytes=self._max_bytes))

    def primary_done(self, session: _Session, capture: PreflightCapture) -> bool:
        """The primary has sent enough: its seconds, and the drill is over (or never began
        because no backup came, or ran out of grace)."""
        media, duration = capture.media_seconds, session.record.duration
        if capture.full:
            return True
        if media < duration:
            return False
        drill = session.drill
        if drill.settled or session.backup_capture is None:
            return True
        return media >= duration + DRILL_GRACE

    def backup_left(self, session: _Session, publisher: PreflightPublisher) -> None:
        if session.backup is publisher:
            session.backup = None
            session.claimed.discard("backup")
            session.drill.backup_left()

    def finished(self, session: _Session, capture: PreflightCapture, stream_key: str) -> None:
        """The primary is done (or left): end the session and judge it."""
        if session.done:
            return
        session.done = True
        self._forget(session)
        # The link's figures now, while the publisher is still connected.
        srt = tcp = None
        if session.protocol == "srt" and self._srt_stats is not None:
            srt = self._srt_stats(stream_key)
        if session.protocol in ("rtmp", "rtmps") and self._tcp_stats is not None:
            tcp = self._tcp_stats(stream_key)
        drill = session.drill
        if session.backup_capture is None:
            drill.give_up("no backup publisher connected")
        else:
            drill.give_up(f"the preflight ended in state {drill.state.value}: the backup "
                          "sent no keyframe in time, or the primary none after it")
        if session.backup is not None:
            session.backup.end("preflight complete")
        self._spawn(self._analyse(session, capture, srt, tcp))

    def _forget(self, session: _Session) -> None:
        for key_hash in (session.key_hash, session.backup_key_hash):
            if key_hash is not None and self._armed.get(key_hash) is session:
                del self._armed[key_hash]
        if session.expiry is not None:
            session.expiry.cancel()

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
            self._forget(session)
            if session.backup is not None:
                session.backup.end("preflight expired")
            await self._store.update_preflight(
                session.record.id, status="expired",
                error=f"nobody published within {self._wait:g} s")

    async def _analyse(self, session: _Session, capture: PreflightCapture,
                       srt: SrtStats | None, tcp: TcpStats | None) -> None:
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
            flv = bytes(capture.flv)
            failover, destinations = await asyncio.gather(
                self._failover(session), self._push_destinations(session.stream_id, flv))
            pinned = await self._catalog.resolve(record.profile)
            verdict = judge(capture, document_profile(pinned), loudness,
                            latency_mode=session.latency_mode, srt=srt, tcp=tcp,
                            failover=failover, destinations=destinations)
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

    async def _failover(self, session: _Session) -> FailoverReport:
        drill = session.drill
        decoded, error = 0, None
        if drill.switched:
            decoded, error = await self._decode(bytes(drill.flv))
        backup = session.backup_capture
        return FailoverReport(
            backup=backup if backup is not None and backup.first_media_ms is not None
            else None,
            switched=drill.switched, returned=drill.returned,
            backup_seconds=drill.backup_media_ms / 1000, frames_written=drill.video_frames,
            frames_decoded=decoded, decode_error=error, reason=drill.reason)

    async def _push_destinations(self, stream_id: str, flv: bytes
                                 ) -> list[DestinationReport]:
        if self._destinations is None:
            return []
        targets = await self._destinations(stream_id)

        async def push(target: PreflightDestination) -> DestinationReport:
            error = await push_sample(self._ffmpeg, target.url, flv,
                                      seconds=self._push_seconds,
                                      allow_private=self._allow_private)
            return DestinationReport(target.name, redact_url(target.url), error,
                                     0.0 if error else self._push_seconds)

        return list(await asyncio.gather(*(push(t) for t in targets)))

    async def _decode(self, flv: bytes) -> tuple[int, str | None]:
        """Video frames ffmpeg decodes from the drill's programme, and its first complaint."""
        proc = await asyncio.create_subprocess_exec(
            self._ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-f", "flv",
            "-i", "pipe:0", "-map", "0:v", "-f", "null", "-progress", "pipe:1", "-",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(flv), ANALYSIS_TIMEOUT)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        frames = 0
        for line in out.decode("ascii", "replace").splitlines():
            key, _, value = line.partition("=")
            if key == "frame" and value.strip().isdigit():
                frames = int(value)
        complaints: deque[str] = deque(maxlen=DECODE_ERROR_LINES)
        complaints.extend(line.strip()[:300] for line in
                          err.decode("utf-8", "replace").splitlines() if line.strip())
        if proc.returncode != 0 and not complaints:
            complaints.append(f"ffmpeg exited with status {proc.returncode}")
        return frames, complaints[0] if complaints else None

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
    """A publisher whose media goes to a preflight session, never to a broadcast."""

    def __init__(self, desk: PreflightDesk, session: _Session, role: Role, stream_key: str,
                 disconnect: Disconnect | None, capture: PreflightCapture) -> None:
        self._desk = desk
        self._session = session
        self._role = role
        self._stream_key = stream_key  # to find its link figures; never logged nor stored
        self._disconnect = disconnect
        self.capture = capture
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
        if self._role == "backup":
            self._session.drill.backup(tag)
            return
        self._session.drill.primary(tag)
        if self._desk.primary_done(self._session, self.capture):
            self.end("preflight complete")

    def close(self, reason: str) -> None:
        self._finish()

    def end(self, reason: str) -> None:
        """Finish and close the publisher's connection."""
        self._finish()
        if self._disconnect is not None:
            self._disconnect(reason)

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        if self._role == "backup":
            self._desk.backup_left(self._session, self)
        else:
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
        claimed = await self._desk.claim(stream_key)
        if claimed is None:
            return await self._target.open_publisher(
                stream_key, protocol=protocol, remote_address=remote_address,
                disconnect=disconnect)
        session, role = claimed
        return self._desk.capture(session, role, stream_key, protocol, remote_address,
                                  disconnect)
