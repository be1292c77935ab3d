"""The asyncio RTMP(S) server around `ServerSession` (ingest).

One task per connection owns its socket and its session. The server enforces
the limits the sans-IO core cannot: the handshake-and-publish deadline, the idle
timeout, and the number of connections. Stream keys are checked by the
`PublishTarget`; the session's events are handled in order, so media that
arrives while the key check runs simply waits in the same task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from golive.ingest.publish import Publisher, PublishRefused, RefusalReason
from golive.ingest.rtmp.session import (
    PUBLISH_BAD_NAME,
    PUBLISH_REJECTED,
    MediaReceived,
    PublishRequested,
    RtmpError,
    ServerSession,
    Unpublished,
)

log = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024
_WRITE_TIMEOUT = 10.0

_REFUSAL_CODES = {
    RefusalReason.UNKNOWN_KEY: PUBLISH_BAD_NAME,
    RefusalReason.DISABLED: PUBLISH_BAD_NAME,
    RefusalReason.ALREADY_LIVE: PUBLISH_BAD_NAME,
    RefusalReason.TOO_MANY_PUBLISHERS: PUBLISH_REJECTED,
    RefusalReason.SHUTTING_DOWN: PUBLISH_REJECTED,
}


class RtmpPublishTarget(Protocol):
    def open_publisher(
        self,
        stream_key: str,
        *,
        protocol: str,
        remote_address: str,
        disconnect: Callable[[str], None] | None = None,
    ) -> Awaitable[Publisher]: ...


class RtmpServer:
    def __init__(
        self,
        target: RtmpPublishTarget,
        *,
        host: str = "0.0.0.0",
        port: int = 1935,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 10.0,
        idle_timeout: float = 20.0,
        max_message_size: int = 16 * 1024 * 1024,
        max_connections: int = 200,
    ) -> None:
        self._target = target
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._handshake_timeout = handshake_timeout
        self._idle_timeout = idle_timeout
        self._max_message_size = max_message_size
        self._max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.protocol = "rtmps" if ssl_context is not None else "rtmp"

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._port
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept,
            self._host,
            self._port,
            ssl=self._ssl,
            ssl_handshake_timeout=self._handshake_timeout if self._ssl else None,
            reuse_address=True,
            backlog=512,
        )
        log.info("%s listening host=%s port=%d", self.protocol, self._host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=5)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self._max_connections:
            log.warning("%s connection refused: limit of %d reached", self.protocol,
                        self._max_connections)
            writer.close()
            return
        self._connections.add(task)
        try:
            await _Connection(self, reader, writer).run()
        finally:
            self._connections.discard(task)


class _Connection:
    def __init__(self, server: RtmpServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.session = ServerSession(max_message_size=server._max_message_size,
                                     epoch_ms=int(time.time() * 1000))
        self.publisher: Publisher | None = None
        self.kicked: str | None = None
        self.task = asyncio.current_task()

    async def run(self) -> None:
        reason = "eof"
        deadline = asyncio.get_running_loop().time() + self.server._handshake_timeout
        try:
            while not self.session.closed and self.kicked is None:
                if self.publisher is None:
                    timeout = deadline - asyncio.get_running_loop().time()
                    if timeout <= 0:
                        reason = "timeout: no publish in time"
                        break
                else:
                    timeout = self.server._idle_timeout
                try:
                    data = await asyncio.wait_for(self.reader.read(_READ_SIZE), timeout)
                except TimeoutError:
                    reason = ("timeout: idle" if self.publisher is not None
                              else "timeout: no publish in time")
                    break
                if not data:
                    break
                events = self.session.receive_data(data)
                await self._flush()
                for event in events:
                    if isinstance(event, MediaReceived):
                        if self.publisher is not None:
                            self.publisher.push(event.tag)
                    elif isinstance(event, PublishRequested):
                        await self._open(event)
                    elif isinstance(event, Unpublished):
                        self._close_publisher("unpublish")
                        reason = "unpublish"
                await self._flush()
            if self.kicked is not None:
                reason = f"kicked: {self.kicked}"
        except RtmpError as exc:
            reason = f"error: {exc}"
            log.warning("rtmp protocol error remote=%s error=%s", self.remote, exc)
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            reason = f"error: {exc}"
        except asyncio.CancelledError:
            reason = f"kicked: {self.kicked}" if self.kicked is not None else "server closing"
            self._close_publisher(reason)
            self._abort()
            raise
        finally:
            self._close_publisher(reason)
        with contextlib.suppress(Exception):
            await self._flush()
        self._abort()

    async def _open(self, request: PublishRequested) -> None:
        try:
            self.publisher = await self.server._target.open_publisher(
                request.stream_key,
                protocol=self.server.protocol,
                remote_address=self.remote,
                disconnect=self._kick,
            )
        except PublishRefused as refused:
            log.info("publish refused remote=%s reason=%s", self.remote, refused.reason)
            self.session.reject_publish(_REFUSAL_CODES.get(refused.reason, PUBLISH_REJECTED),
                                        refused.message)
            return
        self.session.accept_publish()

    def _kick(self, reason: str) -> None:
        """Called by the broadcast hub: drop this publisher now."""
        if self.kicked is None:
            self.kicked = reason
            self.publisher = None  # the hub closes its side itself
            if self.task is not None and self.task is not asyncio.current_task():
                self.task.cancel()

    def _close_publisher(self, reason: str) -> None:
        publisher, self.publisher = self.publisher, None
        if publisher is not None:
            publisher.close(reason)

    async def _flush(self) -> None:
        data = self.session.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), _WRITE_TIMEOUT)

    def _abort(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
