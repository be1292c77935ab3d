"""A player's next head on its connection, when only its request line is new, skips the
parser (`HeadBoundedHttp._answer_repeat`): the same answers, and nothing else skips it.

Every answer here is compared with the one a fresh connection gets for the same bytes,
which the parser reads whole: the shortcut may never change an answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tests.delivery.test_origin import HANG, Directory, Feed, served
from tests.media.conftest import until
from uvicorn.server import ServerState

from golive.chat import chat_websocket_protocol
from golive.delivery.origin import create_origin_app
from golive.httpserver import HttpLimits, server_config
from golive.httpserver.headers import HeadBoundedHttp

# The header lines Chromium sends with hls.js's fetches (as bench/origin.py's viewers do).
TAIL = (b"Host: origin.example.com\r\nConnection: keep-alive\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0 Safari/537.36\r\n"
        b'sec-ch-ua: "Chromium";v="131"\r\nAccept: */*\r\nOrigin: https://www.example.com\r\n'
        b"Referer: https://www.example.com/\r\nAccept-Language: en-US,en;q=0.9\r\n\r\n")
PLAYLIST = b"GET /live/p1/video.m3u8 HTTP/1.1\r\n"
PART = b"GET /live/p1/video/part-0.1.m4s HTTP/1.1\r\n"

Response = tuple[int, dict[str, str], bytes]


@pytest.fixture
async def port(directory: Directory) -> AsyncIterator[int]:
    async with served(create_origin_app(directory)) as server:
        yield server.port


@pytest.fixture
def repeats(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """What each `_answer_repeat` call said (True: answered without the parser)."""
    said: list[bool] = []
    real = HeadBoundedHttp._answer_repeat

    def spy(self: HeadBoundedHttp, data: bytes, tail: bytes) -> bool:
        said.append(real(self, data, tail))
        return said[-1]

    monkeypatch.setattr(HeadBoundedHttp, "_answer_repeat", spy)
    yield said


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The size of every read the server's HTTP protocol is given."""
    sizes: list[int] = []
    real = HeadBoundedHttp.data_received

    def spy(self: HeadBoundedHttp, data: bytes) -> None:
        sizes.append(len(data))
        real(self, data)

    monkeypatch.setattr(HeadBoundedHttp, "data_received", spy)
    yield sizes


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False
                        ) -> Response | None:
    """One response (status, headers but the date, body: none for a HEAD); None at the
    end of the stream."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG)
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    headers.pop("date", None)
    length = 0 if head_only else int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), HANG)
    return int(lines[0].split(" ")[1]), headers, body


class Connection:
    """One client connection that writes heads and reads their answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def ask(self, *pieces: bytes, answers: int = 1,
                  reads: list[int] | None = None) -> list[Response | None]:
        """Write `pieces` and read `answers`; with `reads` (the `reads` fixture's), each
        piece is written once the server has read the one before, so each is a read."""
        head_only = pieces[0].startswith(b"HEAD ")
        for piece in pieces:
            read = len(reads) if reads is not None else 0
            self.writer.write(piece)
            await self.writer.drain()
            if reads is not None:
                await until(lambda: len(reads) > read, limit=HANG,  # noqa: B023
                            what="the server's read")
        return [await read_response(self.reader, head_only=head_only) for _ in range(answers)]


async def connect(port: int) -> Connection:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), HANG)
    return Connection(reader, writer)


async def fresh(port: int, data: bytes, answers: int = 1) -> list[Response | None]:
    """The answers to `data` on a new connection: the parser reads every byte."""
    connection = await connect(port)
    try:
        return await connection.ask(data, answers=answers)
    finally:
        connection.writer.close()


async def test_a_repeated_head_skips_the_parser_and_gets_the_same_answers(
        port: int, repeats: list[bool]) -> None:
    connection = await connect(port)
    first = await connection.ask(PLAYLIST + TAIL)
    assert repeats == []  # nothing to repeat yet: the parser read it
    again = [await connection.ask(line + TAIL) for line in (PART, PLAYLIST, PART)]
    assert repeats == [True, True, True]
    assert first == again[1] and first[0] is not None and first[0][0] == 200
    assert again[0] == again[2] == await fresh(port, PART + TAIL)
    assert again[0][0] is not None and again[0][0][0] == 200
    # A HEAD repeats too: the length, no body.
    head = await connection.ask(b"HEAD" + PART[3:] + TAIL)
    assert repeats[-1] is True and head == await fresh(port, b"HEAD" + PART[3:] + TAIL)
    connection.writer.close()


@pytest.mark.parametrize("line", [
    b"GET /live/p1/video.m3u8 HTTP/1.0\r\n",  # another version: keep-alive differs
    b"get /live/p1/video.m3u8 HTTP/1.1\r\n",  # methods are case-sensitive
    b"POST /live/p1/video.m3u8 HTTP/1.1\r\n",
    b"GET /live/p1/%76ideo.m3u8 HTTP/1.1\r\n",  # decoded by uvicorn's path
    b"GET /live/p1/video.m3u8#x HTTP/1.1\r\n",
    b"GET  /live/p1/video.m3u8 HTTP/1.1\r\n",  # two spaces
    b"GET /live/p1/video.m3u8 HTTP/1.1 \r\n",
    b"GET /live/p1/vid\x01eo.m3u8 HTTP/1.1\r\n",  # a control character
    b"GET /live/p1/vid\xffeo.m3u8 HTTP/1.1\r\n",
    b"GET /live/p1/video.m3u8 HTTP/1.1\n",  # a bare LF ends the line
    b"GET /elsewhere HTTP/1.1\r\n",  # not the fast path's prefix
    b"GET /live/p1/video.m3u8 HTTP/1.1\r\nContent-Length: 0\r\n",  # a header line more
    b"GET /live/p1/video.m3u8 HTTP/1.1\r\nConnection: close\r\n",
    b"GET /live/p1/video.m3u8 HTTP/1.1\r\n X-Folded: yes\r\n",  # obsolete line folding
], ids=lambda line: repr(line)[2:40])
async def test_any_other_head_ending_in_the_same_lines_goes_to_the_parser(
        port: int, repeats: list[bool], line: bytes) -> None:
    connection = await connect(port)
    await connection.ask(PART + TAIL)
    answered = await connection.ask(line + TAIL)
    assert not any(repeats), repeats
    assert answered == await fresh(port, line + TAIL)
    connection.writer.close()


async def test_pipelined_heads_are_never_taken_for_one(port: int, repeats: list[bool]) -> None:
    connection = await connect(port)
    await connection.ask(PART + TAIL)
    both = PLAYLIST + TAIL + PART + TAIL
    answered = await connection.ask(both, answers=2)
    assert not any(repeats)
    assert answered == await fresh(port, both, answers=2)
    connection.writer.close()


async def test_a_repeated_head_split_over_reads_is_parsed(
        port: int, repeats: list[bool], reads: list[int]) -> None:
    connection = await connect(port)
    await connection.ask(PART + TAIL)
    answered = await connection.ask(PLAYLIST, TAIL, reads=reads)
    assert repeats == []  # the second read is not a request's start
    assert answered == await fresh(port, PLAYLIST + TAIL)
    # ... and the head after it may repeat again.
    assert await connection.ask(PART + TAIL) == await fresh(port, PART + TAIL)
    assert repeats == [True]
    connection.writer.close()


class Transport(asyncio.Transport):
    """What the protocol writes, read whole: each `data_received` below is one read."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data: Any) -> None:
        self.written += data

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.written += data

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 80)}.get(name, default)


async def test_a_head_past_the_limit_in_one_read_is_left_to_the_parser(
        directory: Directory, repeats: list[bool]) -> None:
    origin = create_origin_app(directory)
    config = server_config(origin, HttpLimits(), ws=chat_websocket_protocol(), fast=origin)
    if not config.loaded:
        config.load()
    protocol_class = config.http
    assert isinstance(protocol_class, type) and issubclass(protocol_class, HeadBoundedHttp)
    protocol = protocol_class(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = Transport()
    protocol.connection_made(transport)
    protocol.data_received(PART + TAIL)
    assert transport.written.startswith(b"HTTP/1.1 200 ")
    # Twice the limit in one read: the parser's count of head bytes decides on it (it reads
    # one read past the limit), never the shortcut.
    line = b"GET /live/p1/" + b"a" * (2 * HttpLimits().head.max_head_bytes) + b" HTTP/1.1\r\n"
    protocol.data_received(line + TAIL)
    assert not any(repeats)
    protocol.data_received(PART + TAIL)
    assert repeats == [True]  # the head after it may repeat
    transport.closing = True
    protocol.connection_lost(None)


async def test_a_large_head_is_not_kept_for_a_repeat(port: int, repeats: list[bool]) -> None:
    big = b"Cookie: " + b"c" * 5000 + b"\r\n" + TAIL
    connection = await connect(port)
    await connection.ask(PART + big)
    assert await connection.ask(PLAYLIST + big) == await fresh(port, PLAYLIST + big)
    assert repeats == []  # its header lines were never kept
    connection.writer.close()


async def test_the_request_after_a_held_one_repeats_once_it_is_answered(
        port: int, feed: Feed, repeats: list[bool]) -> None:
    connection = await connect(port)
    msn, idx = feed.window.next_part()
    reload = f"GET /live/p1/video.m3u8?_HLS_msn={msn}&_HLS_part={idx} HTTP/1.1\r\n".encode()
    await connection.ask(PART + TAIL)
    connection.writer.write(reload + TAIL)
    await connection.writer.drain()
    feed.add()
    held: Any = await read_response(connection.reader)
    assert held[0] == 200 and f"part-{msn}.{idx}.m4s" in held[2].decode()
    assert repeats == [True]
    assert await connection.ask(PART + TAIL) == await fresh(port, PART + TAIL)
    assert repeats == [True, True]
    connection.writer.close()


async def test_what_the_repeated_headers_ask_for_is_still_answered(
        port: int, repeats: list[bool]) -> None:
    ranged = b"Range: bytes=2-9\r\n" + TAIL
    connection = await connect(port)
    await connection.ask(PLAYLIST + ranged)
    answered = await connection.ask(PART + ranged)
    assert repeats == [True]
    assert answered == await fresh(port, PART + ranged)
    assert answered[0] is not None and answered[0][0] == 206 and len(answered[0][2]) == 8
    connection.writer.close()
