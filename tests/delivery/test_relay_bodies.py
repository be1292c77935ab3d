"""The relay takes an owner's answer whole or not at all (issue 15).

A segment is larger than one socket read (~130 KB for one second of 1 Mb/s video). The
relay read the owner's answer with one bounded `read`, which returns what has arrived so
far: non-owner nodes kept the first 60-130 KB of a segment and gave it to every viewer
and edge as the whole segment (hls.js then failed appending it after a takeover). An
owner that hangs up mid-answer must not leave a cut answer kept either.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from golive.delivery.relay import OwnerRelay, OwnerUnknown, Relayed

Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


class Owner:
    """The owner node: one fixed URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.failed = 0

    async def owner_url(self, playback_id: str) -> str | OwnerUnknown | None:
        return self.url

    def owner_failed(self, playback_id: str, url: str) -> None:
        self.failed += 1


@asynccontextmanager
async def owner_serving(answer: Answer) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A bare HTTP/1.1 server on loopback answering every request with `answer`; yields
    its base URL and the request heads it got."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            await answer(writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", heads
    finally:
        server.close()
        await server.wait_closed()


def segment_body(size: int) -> bytes:
    return bytes(range(256)) * (size // 256)


def head(length: int | None) -> bytes:
    sized = b"content-length: %d\r\n" % length if length is not None else b"connection: close\r\n"
    return (b"HTTP/1.1 200 OK\r\ncontent-type: video/iso.segment\r\n"
            b"cache-control: public, max-age=60\r\n" + sized + b"\r\n")


async def test_a_body_larger_than_one_read_is_relayed_and_kept_whole() -> None:
    body = segment_body(1024 * 1024)

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(head(len(body)))
        for at in range(0, len(body), 64 * 1024):  # as a segment leaves an owner: in pieces
            writer.write(body[at:at + 64 * 1024])
            await writer.drain()

    async with owner_serving(answer) as (url, heads):
        relay = OwnerRelay(Owner(url), timeout=10.0)
        try:
            first = await relay.answer("p1", "p1/video/seg-7.m4s", {}, None)
            again = await relay.answer("p1", "p1/video/seg-7.m4s", {}, None)
        finally:
            await relay.close()
    assert isinstance(first, Relayed) and first.status == 200
    assert len(first.body) == len(body) and first.body == body
    assert again is first  # kept, whole
    assert len(heads) == 1


async def test_an_answer_cut_short_by_the_owner_is_neither_given_nor_kept() -> None:
    body = segment_body(512 * 1024)
    cut = asyncio.Event()

    async def answer(writer: asyncio.StreamWriter) -> None:
        if cut.is_set():
            writer.write(head(len(body)) + body)
            return
        cut.set()
        writer.write(head(len(body)) + body[:200 * 1024])  # then the owner dies
        await writer.drain()

    async with owner_serving(answer) as (url, heads):
        owner = Owner(url)
        relay = OwnerRelay(owner, timeout=10.0, takeover_hold=0.0)
        try:
            refused = await relay.answer("p1", "p1/video/seg-7.m4s", {}, None)
            assert refused == "failed"  # a 503 with Retry-After, not a cut segment
            assert owner.failed == 1
            whole = await relay.answer("p1", "p1/video/seg-7.m4s", {}, None)
        finally:
            await relay.close()
    assert isinstance(whole, Relayed) and whole.body == body
    assert len(heads) == 2  # nothing of the cut answer was kept


async def test_a_body_without_a_length_is_read_to_its_end_within_the_limit() -> None:
    body = segment_body(300 * 1024)

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(head(None))
        for at in range(0, len(body), 32 * 1024):
            writer.write(body[at:at + 32 * 1024])
            await writer.drain()

    async with owner_serving(answer) as (url, _):
        relay = OwnerRelay(Owner(url), timeout=10.0, takeover_hold=0.0)
        small = OwnerRelay(Owner(url), timeout=10.0, takeover_hold=0.0, max_body=256 * 1024)
        try:
            whole = await relay.answer("p1", "p1/video/seg-7.m4s", {}, None)
            refused = await small.answer("p1", "p1/video/seg-7.m4s", {}, None)
        finally:
            await relay.close()
            await small.close()
    assert isinstance(whole, Relayed) and whole.body == body
    assert refused == "failed"
