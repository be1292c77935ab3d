"""A TCP proxy whose client-to-server direction is capped to a bitrate: a publisher's
uplink that cannot carry its stream, in front of a real ingest server."""

from __future__ import annotations

import asyncio
import contextlib
import time

from golive.core import TokenBucket

CHUNK = 1400  # about one packet per read: the cap applies smoothly, not in bursts


class CappedProxy:
    """Listens on 127.0.0.1; forwards each connection to `target_port`, the upload
    (client to server) at most `kbps` kbit/s, the download unthrottled."""

    def __init__(self, target_port: int, kbps: float) -> None:
        self.target_port = target_port
        self.rate = kbps * 1000 / 8  # bytes per second
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.forwarded = 0

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
        bucket = TokenBucket(self.rate, CHUNK * 4, time.monotonic())
        upload = asyncio.create_task(self._pump(reader, up_writer, bucket))
        download = asyncio.create_task(self._pump(up_reader, writer, None))
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
                    bucket: TokenBucket | None) -> None:
        while data := await reader.read(CHUNK):
            if bucket is not None:
                now = time.monotonic()
                wait = bucket.wait_time(now, len(data))
                if wait > 0:
                    await asyncio.sleep(wait)
                bucket.spend(time.monotonic(), len(data))
                self.forwarded += len(data)
            writer.write(data)
            await writer.drain()
