"""Streaming a planned progressive MP4: ranges read only the segments under them, one at a
time, and a client that goes away stops the reading."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.formats.test_progressive import encode, segments

from golive.delivery.progressive import MP4_CHUNK, StreamedResponse, progressive_response
from golive.formats import ProgressiveMp4, plan_progressive


class StoredSegments:
    """Segments as a storage would hand them out, counting reads."""

    def __init__(self, init: bytes, stored: list[bytes]) -> None:
        self.stored = stored
        self.reads: list[int] = []
        self.plan: ProgressiveMp4 = plan_progressive(init, stored)
        self.etag = f'"test-{self.plan.size}"'

    async def fragment(self, index: int) -> bytes:
        self.reads.append(index)
        await asyncio.sleep(0)
        return self.stored[index]


@pytest.fixture(scope="module")
def stored() -> tuple[bytes, list[bytes]]:
    init, fragments = encode(4)
    return init, segments(fragments, 5)


async def run(response: StreamedResponse, *, disconnect_after: int | None = None,
              head: bool = False) -> tuple[list[dict[str, Any]], bytes]:
    sent: list[dict[str, Any]] = []
    gone = asyncio.Event()

    async def send(message: Any) -> None:
        sent.append(message)
        if disconnect_after is not None and len(sent) > disconnect_after:
            gone.set()
        await asyncio.sleep(0)

    async def receive() -> Any:
        await gone.wait()
        return {"type": "http.disconnect"}

    await response.stream(send, receive, head=head)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent, body


async def test_whole_file_and_ranges(stored: tuple[bytes, list[bytes]]) -> None:
    source = StoredSegments(*stored)
    plan = source.plan
    whole = plan.read(0, plan.size, source.stored)
    sent, body = await run(progressive_response(source, 0, plan.size - 1, status=200,
                                                headers={}))
    assert body == whole
    start = dict(sent[0])
    assert start["status"] == 200
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert headers["content-type"] == "video/mp4"
    assert headers["content-length"] == str(plan.size)
    assert all(len(m.get("body", b"")) <= MP4_CHUNK for m in sent[1:])
    assert source.reads == sorted(set(source.reads))  # each segment read once, in order

    # A range inside the last segment reads only that segment.
    source.reads.clear()
    assert plan.spans[-1].fragment == len(source.stored) - 1
    first, last = plan.span_starts[-1] + 1, plan.size - 1
    _, body = await run(progressive_response(source, first, last, status=206, headers={}))
    assert body == whole[first:]
    assert source.reads == [len(source.stored) - 1]

    # The header (moov) needs no segment at all.
    source.reads.clear()
    _, body = await run(progressive_response(source, 0, len(plan.header) - 1, status=206,
                                             headers={}))
    assert body == plan.header and source.reads == []


async def test_head_and_disconnect_read_nothing_more(
    stored: tuple[bytes, list[bytes]]
) -> None:
    source = StoredSegments(*stored)
    plan = source.plan
    sent, body = await run(progressive_response(source, 0, plan.size - 1, status=200,
                                                headers={}), head=True)
    assert body == b"" and source.reads == []
    sent, _ = await run(progressive_response(source, 0, plan.size - 1, status=200,
                                             headers={}), disconnect_after=3)
    assert len(source.reads) < len(source.stored)
    assert sent[-1].get("more_body") is True  # never finished: the client was gone
