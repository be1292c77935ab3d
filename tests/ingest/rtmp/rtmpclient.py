"""A small RTMP publisher for tests, built from golive's own chunk and AMF0 codecs.

It speaks to `ServerSession` directly (sans-IO) or to a server over a socket, and
lets tests send exactly the messages they want, including broken ones.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from golive.formats import amf0
from golive.ingest.rtmp.chunk import ChunkReader, ChunkWriter, Message

C0C1 = b"\x03" + bytes(8) + os.urandom(1528)


class ClientCodec:
    def __init__(self) -> None:
        self.writer = ChunkWriter()
        self.reader = ChunkReader()
        self.txid = 0.0

    def command(self, name: str, *args: Any, stream_id: int = 0, txid: float | None = None) -> bytes:
        if txid is None:
            self.txid += 1
            txid = self.txid
        body = amf0.encode_all([name, txid, *args])
        return self.writer.write(3 if stream_id == 0 else 8, 20, stream_id, 0, body)

    def media(self, type_id: int, timestamp: int, body: bytes, stream_id: int = 1) -> bytes:
        return self.writer.write(6 if type_id == 9 else 4, type_id, stream_id, timestamp, body)

    def publish_sequence(self, key: str, app: str = "live") -> list[bytes]:
        return [
            self.command("connect", {"app": app, "tcUrl": f"rtmp://127.0.0.1/{app}",
                                     "type": "nonprivate"}),
            self.command("releaseStream", None, key),
            self.command("FCPublish", None, key),
            self.command("createStream", None),
            self.command("publish", None, key, "live", stream_id=1),
        ]

    def parse(self, data: bytes) -> list[tuple[Message, list[Any]]]:
        out: list[tuple[Message, list[Any]]] = []
        for message in self.reader.feed(data):
            values = amf0.decode_all(message.payload) if message.type_id == 20 else []
            out.append((message, values))
        return out


def status_codes(parsed: list[tuple[Message, list[Any]]]) -> list[str]:
    return [
        values[3]["code"]
        for _message, values in parsed
        if values and values[0] in ("onStatus", "_error") and isinstance(values[3], dict)
    ]


class SocketClient:
    """A publisher over TCP: handshake, then whatever the test sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.codec = ClientCodec()
        self.received: list[tuple[Message, list[Any]]] = []

    @classmethod
    async def connect(cls, port: int, *, source: str | None = None,
                      host: str = "127.0.0.1") -> SocketClient:
        """Connect and shake hands; `source` picks the local address (any of 127.0.0.0/8)."""
        reader, writer = await asyncio.open_connection(
            host, port, local_addr=(source, 0) if source else None
        )
        client = cls(reader, writer)
        writer.write(C0C1)
        s0s1s2 = await reader.readexactly(1 + 2 * 1536)
        writer.write(s0s1s2[1:1537])  # C2 echoes S1
        await writer.drain()
        return client

    async def send(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.writer.write(chunk)
        await self.writer.drain()

    async def wait_status(self, timeout: float = 10) -> str:
        """Read until an onStatus/_error arrives; return its code."""
        async def read() -> str:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("server closed the connection before a status")
                self.received += self.codec.parse(data)
                codes = status_codes(self.received)
                if codes:
                    return codes[-1]
        return await asyncio.wait_for(read(), timeout)

    async def closed_by_server(self, timeout: float = 10) -> bool:
        async def read() -> bool:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return True
        return await asyncio.wait_for(read(), timeout)

    def close(self) -> None:
        self.writer.close()
