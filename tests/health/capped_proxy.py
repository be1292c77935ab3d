"""A TCP proxy with one direction capped to a bitrate: a publisher's uplink that cannot
carry its stream in front of a real ingest server, or a viewer's downlink that cannot
carry it in front of a real origin."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Literal

from golive.core import TokenBucket

CHUNK = 1400  # about one packet per read: the cap applies smoothly, not in bursts


class CappedProxy:
    """Listens on 127.0.0.1; forwards each connection to `target_port`.

    `direction="up"`: each connection's upload (client to server) at most `kbps` kbit/s,
    the download unthrottled (a publisher's uplink). `direction="down"`: the downloads
    of all connections together at most `kbps` kbit/s, the uploads unthrottled (a
    viewer's downlink, shared by the player's connections, as HTTP passes through it
    unchanged); `cap` changes that limit while connections run (None: no limit)."""

    def __init__(self, target_port: int, kbps: float | None, *,
                 direction: Literal["up", "down"] = "up") -> None:
        if direction == "up" and kbps is None:
            raise ValueError("an uplink cap needs a rate")
        self.target_port = target_port
        self.direction = direction
        self.rate = (kbps or 0) * 1000 / 8  # bytes per second
        self._link: TokenBucket | None = None
        if direction == "down":
            self.cap(kbps)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.forwarded = 0

    def cap(self, kbps: float | None) -> None:
        """The downlink's limit from now on (direction "down" only)."""
        assert self.direction == "down"
        if kbps is None:
            self._link = None
        else:
            self.rate = kbps * 1000 / 8
            self._link = TokenBucket(self.rate, CHUNK * 4, time.monotonic())

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def __aenter__(self) -> CappedProxy:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        if self.direction == "up":
            bucket = TokenBucket(self.rate, CHUNK * 4, time.monotonic())
            upload = asyncio.create_task(self._pump(reader, up_writer, lambda: bucket))
            download = asyncio.create_task(self._pump(up_reader, writer, lambda: None))
        else:
            upload = asyncio.create_task(self._pump(reader, up_writer, lambda: None))
            download = asyncio.create_task(self._pump(up_reader, writer, lambda: self._link))
        for task in (upload, download):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.wait({upload, download}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (upload, download):
                task.cancel()
            for w in (writer, up_writer):
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    bucket_now: Callable[[], TokenBucket | None]) -> None:
        while data := await reader.read(CHUNK):
            bucket = bucket_now()
            if bucket is not None:
                now = time.monotonic()
                wait = bucket.wait_time(now, len(data))
                if wait > 0:
                    await asyncio.sleep(wait)
                bucket.spend(time.monotonic(), len(data))
                self.forwarded += len(data)
            writer.write(data)
            await writer.drain()
