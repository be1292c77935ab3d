"""The asyncio shell around `SrtListener`: one UDP socket for every SRT publisher (ingest).

It owns the socket, the hand-off to the broadcast hub (a `PublishTarget`: the stream
key and passphrase checks are async, so each requested connection gets a short
task, bounded by `check_timeout`: a check that never returns must not hold the
caller's connection slot, so the caller is rejected as unavailable) and one `loop.call_at` armed for the listener's next deadline; with nobody
connected nothing is armed. Delivered payloads are MPEG-TS; a `TsDemuxer` per
publisher turns them into media tags. Stream keys never reach the log: lines name
the hub's stream id when there is one and otherwise a few characters of the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from golive.core import bind_datagram
from golive.formats import TsDemuxer
from golive.ingest.srt.connection import ConnectionStats
from golive.ingest.srt.handshake import HandshakeRejected, RejectReason
from golive.ingest.srt.listener import (
    Address,
    ConnectionAccepted,
    ConnectionClosed,
    ConnectionRejected,
    ConnectionRequested,
    MediaReady,
    SrtListener,
    check_passphrase,
)
from golive.logs import printable
from golive.stream import Publisher, PublishRefused, PublishTarget, RefusalReason

log = logging.getLogger(__name__)

PassphraseLookup = Callable[[str], Awaitable[str | None]]
PayloadTap = Callable[[str, bytes], None]

_REFUSALS = {
    RefusalReason.UNKNOWN_KEY: RejectReason.X_FORBIDDEN,
    RefusalReason.DISABLED: RejectReason.X_FORBIDDEN,
    RefusalReason.ALREADY_LIVE: RejectReason.X_CONFLICT,
    RefusalReason.TOO_MANY_PUBLISHERS: RejectReason.X_OVERLOAD,
    RefusalReason.SHUTTING_DOWN: RejectReason.X_UNAVAILABLE,
    RefusalReason.THROTTLED: RejectReason.X_OVERLOAD,  # too many wrong keys from this address
}
_SOCKET_BUFFER = 4 * 1024 * 1024


def key_hint(stream_key: str | None) -> str:
    """A stream key as the log may show it: its first four characters, escaped."""
    if stream_key is None:
        return "-"
    return printable(stream_key[:4]) + "…"


@dataclass(frozen=True, slots=True)
class SrtPublisherFacts:
    """One live SRT publisher as the API shows it."""

    stream_key: str
    remote_address: str
    stats: ConnectionStats
    unsupported_audio: str | None = None
    """Audio its transport stream carries that golive cannot decode (and no other audio):
    what it is (`TsDemuxer.unsupported_audio`)."""
    unsupported_video: str | None = None
    """Likewise its video (`TsDemuxer.unsupported_video`): the broadcast is sound alone."""


@dataclass(eq=False)
class _Publishing:
    """What the shell keeps for one accepted connection."""

    socket_id: int
    remote: str
    stream_key: str
    publisher: Publisher | None
    stream: str  # what log lines name (stream_id=): the hub's id, never the key
    demuxer: TsDemuxer = field(default_factory=TsDemuxer)
    media_at: float = 0.0  # loop time of the last media tag (or of the accept, before one)
    watchdog: asyncio.TimerHandle | None = None


class SrtServer:
    """SRT ingest on one UDP port: `start()`, `close()`, and live publishers' facts."""

    def __init__(
        self,
        target: PublishTarget,
        *,
        host: str = "0.0.0.0",
        port: int = 9000,
        passphrase_for: PassphraseLookup | None = None,
        latency: float = 0.120,
        flow_window: int = 8192,
        max_connections: int = 200,
        handshake_rate: float = 50.0,
        handshake_rate_per_source: float = 10.0,
        idle_timeout: float = 5.0,
        check_timeout: float = 3.0,
        media_timeout: float = 10.0,
        on_payload: PayloadTap | None = None,
    ) -> None:
        if check_timeout <= 0:
            raise ValueError("check_timeout must be > 0")
        if media_timeout <= 0:
            raise ValueError("media_timeout must be > 0")
        self.target = target
        self.passphrase_for = passphrase_for
        self.on_payload = on_payload
        self.latency = latency
        self.flow_window = flow_window
        self.max_connections = max_connections
        self.handshake_rate = handshake_rate
        self.handshake_rate_per_source = handshake_rate_per_source
        self.idle_timeout = idle_timeout
        self.check_timeout = check_timeout
        self.media_timeout = media_timeout
        self._host = host
        self._port = port
        self._listener: SrtListener | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._publishing: dict[int, _Publishing] = {}
        self._checks: dict[int, asyncio.Task[None]] = {}
        self._flushing = False

    # Lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._transport is None:
            return self._port
        port: int = self._transport.get_extra_info("sockname")[1]
        return port

    @property
    def listener(self) -> SrtListener:
        if self._listener is None:
            raise RuntimeError("the SRT server is not started")
        return self._listener

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._listener = SrtListener(
            now=loop.time(), cookie_secret=os.urandom(32), latency=self.latency,
            flow_window=self.flow_window, max_connections=self.max_connections,
            conclusions_total=self.handshake_rate,
            conclusions_per_source=self.handshake_rate_per_source,
            # A few callers behind one NAT may all reconnect at once after a network blip.
            conclusion_burst_per_source=max(1.0, 2 * self.handshake_rate_per_source),
            idle_timeout=self.idle_timeout)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _SrtDatagramProtocol(self), sock=bind_datagram(self._host, self._port))
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        log.info("srt listening host=%s port=%d", self._host, self.port)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close_all("server closing", asyncio.get_running_loop().time())
            self._flush()
        for task in list(self._checks.values()):
            task.cancel()
        for task in list(self._checks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()

    def connection_facts(self) -> dict[str, SrtPublisherFacts]:
        """Live publishers by stream key, with their SRT figures."""
        facts = {}
        for p in self._publishing.values():
            stats = self.listener.stats(p.socket_id)
            if stats is not None:
                facts[p.stream_key] = SrtPublisherFacts(
                    p.stream_key, p.remote, stats, p.demuxer.unsupported_audio,
                    p.demuxer.unsupported_video)
        return facts

    @property
    def connection_count(self) -> int:
        return self._listener.connection_count if self._listener is not None else 0

    @property
    def ignored_datagrams(self) -> int:
        return self._listener.ignored_datagrams if self._listener is not None else 0

    # Datagrams and timers ----------------------------------------------------------------

    def datagram_received(self, data: bytes, address: Address) -> None:
        listener = self.listener
        listener.receive_datagram(data, address, asyncio.get_running_loop().time())
        self._flush()

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.listener.handle_timer(asyncio.get_running_loop().time())
        self._flush()

    def _arm(self) -> None:
        due = self.listener.get_timer()
        if due is None:
            return  # an armed timer may fire early; it finds nothing due and re-arms
        if self._timer is not None:
            # A later deadline than the armed one waits for that one to fire: re-arming
            # on every datagram would cost more than an early wake-up.
            if self._timer_at is not None and self._timer_at <= due:
                return
            self._timer.cancel()
        self._timer_at = due
        self._timer = asyncio.get_running_loop().call_at(due, self._on_timer)

    def _flush(self) -> None:
        """Send what the listener queued and act on its events (re-entrant calls return)."""
        if self._flushing:
            return
        self._flushing = True
        try:
            listener = self.listener
            while True:
                event = listener.next_event()
                if event is None:
                    break
                if isinstance(event, MediaReady):
                    self._deliver(event)
                elif isinstance(event, ConnectionRequested):
                    self._checks[event.request_id] = asyncio.get_running_loop().create_task(
                        self._check(event))
                elif isinstance(event, ConnectionAccepted):
                    publishing = self._publishing.get(event.socket_id)
                    log.info("srt publisher connected remote=%s stream_id=%s latency_ms=%d "
                             "encrypted=%s", event.remote,
                             publishing.stream if publishing else key_hint(event.stream_key),
                             event.latency_ms, event.encrypted)
                elif isinstance(event, ConnectionRejected):
                    log.info("srt handshake rejected remote=%s key=%s reason=%s: %s",
                             event.remote, key_hint(event.stream_key), event.reason.name,
                             printable(event.message))
                elif isinstance(event, ConnectionClosed):
                    self._end(event)
            transport = self._transport
            if transport is not None and not transport.is_closing():
                for datagram, address in listener.datagrams_to_send():
                    transport.sendto(datagram, address)
            else:
                listener.datagrams_to_send()
            self._arm()
        finally:
            self._flushing = False

    # Publishers --------------------------------------------------------------------------

    async def _check(self, event: ConnectionRequested) -> None:
        """Stream key and passphrase, then the hub; answers the listener either way."""
        listener = self.listener
        request = event.request
        loop = asyncio.get_running_loop()
        holder: list[_Publishing] = []
        publisher: Publisher | None = None
        try:
            # Both lookups only read until the hub registers the publisher (its last
            # step, after its one await), so cutting them off leaves nothing behind.
            async with asyncio.timeout(self.check_timeout):
                passphrase = None
                if self.passphrase_for is not None:
                    passphrase = await self.passphrase_for(request.stream.key)
                security = check_passphrase(request, passphrase)
                publisher = await self.target.open_publisher(
                    request.stream.key, protocol="srt", remote_address=event.remote,
                    disconnect=lambda reason: self._kick(holder, reason))
            stream = printable(publisher.stream_id, 64)
        except TimeoutError:
            log.warning("srt stream key check timed out remote=%s key=%s after=%gs",
                        event.remote, key_hint(request.stream.key), self.check_timeout)
            listener.reject(event.request_id,
                            HandshakeRejected(RejectReason.X_UNAVAILABLE,
                                              "stream key check timed out; try again"),
                            loop.time())
            return
        except HandshakeRejected as rejected:
            listener.reject(event.request_id, rejected, loop.time())
            return
        except PublishRefused as refused:
            reason = _REFUSALS.get(refused.reason, RejectReason.X_FORBIDDEN)
            listener.reject(event.request_id,
                            HandshakeRejected(reason, f"publish refused ({refused.reason})"),
                            loop.time())
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("srt stream key check failed remote=%s key=%s", event.remote,
                          key_hint(request.stream.key))
            if publisher is not None:
                publisher.close("error: server error")
            listener.reject(event.request_id,
                            HandshakeRejected(RejectReason.X_ISE, "server error"), loop.time())
            return
        finally:
            self._checks.pop(event.request_id, None)
            self._flush()
        socket_id = listener.accept(event.request_id, loop.time(), security)
        if socket_id is None:  # the server is closing
            publisher.close("server closing")
            return
        publishing = _Publishing(socket_id, event.remote, request.stream.key, publisher, stream,
                                 media_at=loop.time())
        holder.append(publishing)
        self._publishing[socket_id] = publishing
        publishing.watchdog = loop.call_at(publishing.media_at + self.media_timeout,
                                           self._check_media, publishing)
        self._flush()

    def _deliver(self, event: MediaReady) -> None:
        publishing = self._publishing.get(event.socket_id)
        if publishing is None:
            return
        if self.on_payload is not None:
            self.on_payload(publishing.stream_key, event.data)
        try:
            tags = publishing.demuxer.feed(event.data)
        except Exception:
            log.exception("srt demux failed stream_id=%s", publishing.stream)
            self.listener.close(event.socket_id, "error: demux failed",
                                asyncio.get_running_loop().time())
            return
        if tags:
            publishing.media_at = asyncio.get_running_loop().time()
        publisher = publishing.publisher
        if publisher is not None:
            for tag in tags:
                publisher.push(tag)

    def _check_media(self, publishing: _Publishing) -> None:
        """Drop a connection whose payloads gave no media tag for `media_timeout`.

        SRT keep-alives, or data that is not MPEG-TS media (null packets, another
        protocol's bytes, a PMT with no stream), keep the connection's idle timer fresh
        and would hold a publisher slot and the stream key's broadcast for ever.
        """
        publishing.watchdog = None
        if self._publishing.get(publishing.socket_id) is not publishing:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = publishing.media_at + self.media_timeout
        if now < due:
            publishing.watchdog = loop.call_at(due, self._check_media, publishing)
            return
        stats = self.listener.stats(publishing.socket_id)
        demuxer = publishing.demuxer
        ts = demuxer.stats
        # Pictures came, but never a keyframe with its parameter sets to start from: what
        # a sender that drops its largest messages (every keyframe) sends. GStreamer's
        # srtsink after an mpegtsmux without alignment=7 is one (libsrt's live mode takes
        # 1316-byte messages and drops larger ones before they leave).
        keyless = ts.video_frames == 0 and ts.video_skipped > 0
        log.warning("srt publisher dropped reason=no_media remote=%s stream_id=%s seconds=%g "
                    "packets_received=%d video_skipped=%d audio_skipped=%d "
                    "unsupported_video=%s unsupported_audio=%s%s",
                    publishing.remote, publishing.stream, self.media_timeout,
                    stats.packets_received if stats else 0, ts.video_skipped,
                    ts.audio_skipped, demuxer.unsupported_video, demuxer.unsupported_audio,
                    "; video came without a keyframe and its parameter sets: are the "
                    "encoder's keyframes lost on the way (GStreamer: mpegtsmux alignment=7)?"
                    if keyless else "")
        self.listener.close(publishing.socket_id, "timeout: no media", now)
        self._flush()

    def _end(self, event: ConnectionClosed) -> None:
        publishing = self._publishing.pop(event.socket_id, None)
        if publishing is None:
            return
        if publishing.watchdog is not None:
            publishing.watchdog.cancel()
            publishing.watchdog = None
        stream = publishing.stream
        publisher, publishing.publisher = publishing.publisher, None
        if publisher is not None:
            for tag in publishing.demuxer.flush():
                publisher.push(tag)
            publisher.close(event.reason)
        stats = event.stats
        log.info("srt publisher closed remote=%s stream_id=%s reason=%s received=%d lost=%d "
                 "retransmitted=%d dropped=%d rtt_ms=%.1f", publishing.remote, stream,
                 printable(event.reason), stats.packets_received, stats.packets_lost,
                 stats.retransmitted, stats.dropped, stats.rtt_ms)

    def _kick(self, holder: list[_Publishing], reason: str) -> None:
        """The broadcast hub drops this publisher (and closes its side itself)."""
        if not holder:
            return
        publishing = holder[0]
        publishing.publisher = None
        self.listener.close(publishing.socket_id, f"kicked: {reason}",
                            asyncio.get_running_loop().time())
        self._flush()


class _SrtDatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SrtServer) -> None:
        self._server = server

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self._server.datagram_received(data, addr)  # type: ignore[arg-type]

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (a caller that went away) surface here; the idle timeout handles them.
        log.debug("srt socket error=%r", exc)
