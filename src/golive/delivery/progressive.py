"""Progressive MP4 downloads with byte ranges, streamed from stored fragments (delivery).

`/vod/PLAYBACK_ID/high.mp4` (and `low.mp4`) are remuxed on the fly: a
`ProgressiveSource` holds the planned file (`golive.formats.ProgressiveMp4`: the moov
and where each byte of the mdat comes from) and loads one stored segment at a time, so
a request for any range reads only the segments under it and holds at most one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal, Protocol

from starlette.types import Message, Receive, Send

from golive.formats import ProgressiveMp4, Span

__all__ = [
    "MP4_CACHE",
    "MP4_CHUNK",
    "ProgressiveDirectory",
    "ProgressiveSource",
    "StreamedResponse",
    "progressive_response",
]

MP4_CHUNK = 256 * 1024
"""Bytes per body message: small enough to keep a slow client's buffer bounded."""
MP4_TYPE = "video/mp4"
MP4_CACHE = "public, max-age=3600"
"""A ready asset's MP4 never changes, but it can be deleted: edges keep it an hour."""


class ProgressiveSource(Protocol):
    """A planned progressive MP4 and the stored fragments (segments) it copies from."""

    @property
    def plan(self) -> ProgressiveMp4: ...

    @property
    def etag(self) -> str:
        """A strong validator naming this file (asset, rendition, size)."""
        ...

    async def fragment(self, index: int) -> bytes:
        """The bytes of input fragment `index` of the plan; raises if storage cannot answer."""
        ...


class ProgressiveDirectory(Protocol):
    """Recorded assets' progressive MP4s by playback id and quality."""

    async def progressive(self, playback_id: str, quality: Literal["high", "low"]
                          ) -> ProgressiveSource | Literal["unavailable"] | None:
        """The planned MP4; None: no such asset (or none an MP4 can hold); "unavailable":
        storage cannot answer now."""
        ...


class StreamedResponse:
    """An HTTP answer whose body is produced while it is sent; stops when the client goes."""

    __slots__ = ("body", "headers", "status_code")

    def __init__(self, body: AsyncIterator[bytes], status_code: int,
                 headers: dict[str, str]) -> None:
        self.body = body
        self.status_code = status_code
        self.headers = headers

    async def stream(self, send: Send, receive: Receive, *, head: bool) -> None:
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status_code, "headers": raw})
        if head:
            await send({"type": "http.response.body", "body": b""})
            return
        gone = asyncio.Event()

        async def watch() -> None:
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    return

        watcher = asyncio.create_task(watch())
        try:
            async for chunk in self.body:
                if gone.is_set():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            watcher.cancel()
            aclose = getattr(self.body, "aclose", None)
            if aclose is not None:
                await aclose()


def progressive_response(source: ProgressiveSource, first: int, last: int, *, status: int,
                         headers: dict[str, str]) -> StreamedResponse:
    """Bytes [first, last] of the planned file as a streamed response with `headers`."""
    plan = source.plan
    body = _body(source, plan, first, last + 1)
    return StreamedResponse(body, status, {**headers, "Content-Type": MP4_TYPE,
                                           "Content-Length": str(last + 1 - first)})


async def _body(source: ProgressiveSource, plan: ProgressiveMp4, start: int,
                end: int) -> AsyncIterator[bytes]:
    loaded: tuple[int, bytes] | None = None  # spans of one segment follow each other
    for piece in plan.pieces(start, end):
        if isinstance(piece, Span):
            if loaded is None or loaded[0] != piece.fragment:
                loaded = (piece.fragment, await source.fragment(piece.fragment))
            data = loaded[1]
            if piece.offset + piece.length > len(data):
                raise RuntimeError(f"stored segment {piece.fragment} is shorter than planned")
            for at in range(piece.offset, piece.offset + piece.length, MP4_CHUNK):
                yield data[at : min(at + MP4_CHUNK, piece.offset + piece.length)]
        else:
            for at in range(0, len(piece), MP4_CHUNK):
                yield piece[at : at + MP4_CHUNK]
