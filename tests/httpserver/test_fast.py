"""The `/live/` fast path (golive.httpserver.fast) on one keep-alive connection, byte by byte.

tests/delivery/test_origin.py runs every origin test through it too (the `http` variants);
these are what only a raw connection shows: order, HEAD, hang-ups and a client that
never reads.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from tests.delivery.test_origin import HANG, Directory, Feed, fragment, make_feed, served
from tests.media.conftest import until
from tests.tlscerts import make_server_certificate

from golive.chat import chat_websocket_protocol
from golive.delivery.origin import Origin, create_origin_app
from golive.formats.isobmff import Fragment
from golive.httpserver import HandshakeGate, HttpLimits, TlsLimits, server_config
from golive.httpserver.fast import FastHold, FastRoutes, SharedBody


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a content-length (status, headers, body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    return status, headers, await asyncio.wait_for(reader.readexactly(length), HANG)


def big_part_directory(size: int) -> tuple[Directory, bytes]:
    """A presentation whose part 0.0 is `size` bytes (and its bytes)."""
    big = make_feed()
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    part = Fragment(data=data, sequence_number=1, independent=True, decode_time=0.0,
                    duration=0.25)
    for window in big.presentation.renditions.values():
        window.add_fragment(part, datetime.now(UTC))
    directory = Directory()
    directory.presentations["p1"] = big.presentation
    return directory, data


@pytest.fixture
async def connection(directory: Directory
                     ) -> AsyncIterator[tuple[Origin, asyncio.StreamReader, asyncio.StreamWriter]]:
    origin = create_origin_app(directory, hold_limit_factor=100.0)  # holds end by the event
    async with served(origin) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            yield origin, reader, writer
        finally:
            writer.close()
            await writer.wait_closed()


async def test_pipelined_requests_are_answered_in_order_behind_a_held_one(
    connection: tuple[Origin, asyncio.StreamReader, asyncio.StreamWriter], feed: Feed
) -> None:
    origin, reader, writer = connection
    msn, idx = feed.window.next_part()
    # A held blocking reload, then a path the ASGI app answers, then a ready part.
    writer.write(
        f"GET /live/p1/video.m3u8?_HLS_msn={msn}&_HLS_part={idx} HTTP/1.1\r\nHost: o\r\n\r\n"
        "GET /elsewhere HTTP/1.1\r\nHost: o\r\n\r\n"
        "GET /live/p1/video/part-0.0.m4s HTTP/1.1\r\nHost: o\r\n\r\n".encode())
    await writer.drain()
    await until(lambda: origin.held_requests == 1, limit=HANG, what="the reload held")
    feed.add()
    status, _, body = await read_response(reader)
    assert status == 200 and f"part-{msn}.{idx}.m4s" in body.decode()
    status, _, body = await read_response(reader)
    assert (status, body) == (404, b"not found\n")
    status, headers, body = await read_response(reader)
    assert status == 200 and body == fragment(0).data
    assert headers["content-type"] == "video/iso.segment"
    assert "date" in headers  # the server's default headers, as uvicorn writes them


async def test_head_has_the_length_and_no_body(
    connection: tuple[Origin, asyncio.StreamReader, asyncio.StreamWriter], feed: Feed
) -> None:
    _, reader, writer = connection
    writer.write(b"HEAD /live/p1/video/part-0.1.m4s HTTP/1.1\r\nHost: o\r\n\r\n"
                 b"GET /live/p1/video/part-0.1.m4s HTTP/1.1\r\nHost: o\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert f"content-length: {len(fragment(1).data)}\r\n".encode() in head
    # The next bytes are the GET's answer: the HEAD sent no body.
    status, _, body = await read_response(reader)
    assert status == 200 and body == fragment(1).data


async def test_a_client_that_hangs_up_releases_its_held_request_at_once(
    connection: tuple[Origin, asyncio.StreamReader, asyncio.StreamWriter], feed: Feed
) -> None:
    origin, _, writer = connection
    msn, idx = feed.window.next_part()
    writer.write(f"GET /live/p1/video/part-{msn}.{idx}.m4s HTTP/1.1\r\nHost: o\r\n\r\n".encode())
    await writer.drain()
    await until(lambda: feed.window.waiter_count == 1, limit=HANG, what="the part held")
    writer.close()
    await writer.wait_closed()
    # The hold limit is 100 target durations: only the hang-up can end it this soon.
    await until(lambda: feed.window.waiter_count == 0 and origin.held_requests == 0,
                limit=HANG, what="the hang-up to release the hold")


async def test_a_client_that_never_reads_is_held_to_one_answer_past_the_buffer() -> None:
    size = 1_000_000
    directory, _ = big_part_directory(size)
    origin = create_origin_app(directory)
    async with served(origin) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            request = b"GET /live/p1/video/part-0.0.m4s HTTP/1.1\r\nHost: o\r\n\r\n"
            writer.write(request * 200)  # 200 MB of answers asked for, none read
            await writer.drain()
            # The node queues a request behind one that waits for the client to read, and
            # stops reading the connection.
            await until(lambda: any(c.pipeline for c in server.connections()),
                        limit=HANG, what="the node to stop reading")
            (held,) = [c for c in server.connections() if c.pipeline]
            # What the node holds for it: at most the answer that filled the buffer (the
            # kernel's socket buffers took a few more).
            assert held.transport.get_write_buffer_size() <= 2 * size
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as other:
                # Another client is served meanwhile.
                assert (await other.get("/live/p1/video/part-0.0.m4s")).status_code == 200
            # Reading on, the client gets every answer, in order.
            for _ in range(200):
                status, _, body = await read_response(reader)
                assert status == 200 and len(body) == size
        finally:
            writer.close()
            await writer.wait_closed()


async def test_held_reloads_and_parts_wait_without_a_task(directory: Directory,
                                                          feed: Feed) -> None:
    origin = create_origin_app(directory, hold_limit_factor=100.0)
    async with served(origin) as server:
        msn, idx = feed.window.next_part()
        streams = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        try:
            (_, reload), (_, part) = streams
            reload.write(f"GET /live/p1/video.m3u8?_HLS_msn={msn}&_HLS_part={idx}&_HLS_skip=YES"
                         " HTTP/1.1\r\nHost: o\r\n\r\n".encode())
            part.write(f"GET /live/p1/video/part-{msn}.{idx}.m4s HTTP/1.1\r\nHost: o\r\n\r\n"
                       .encode())
            await until(lambda: origin.held_requests == 2, limit=HANG, what="both held")
            # A callback on the window's future and a shared deadline each: no task.
            assert not server.server.server_state.tasks
            feed.add()
            (playlist_reader, _), (part_reader, _) = streams
            status, _, body = await read_response(playlist_reader)
            assert status == 200 and f"part-{msn}.{idx}.m4s" in body.decode()
            status, _, body = await read_response(part_reader)
            assert status == 200 and body == fragment(feed.count - 1).data
            assert origin.held_requests == 0 and feed.window.waiter_count == 0
            assert origin.stats.holds == 2 and origin.stats.hold_timeouts == 0
        finally:
            for _, writer in streams:
                writer.close()
                await writer.wait_closed()


@pytest.fixture
def cyclic_garbage() -> Iterator[Callable[[], list[object]]]:
    """What only the cycle collector would free of what was made since the fixture began
    (the collector off meanwhile, so that nothing is freed before it is looked at)."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()

    def found() -> list[object]:
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            garbage = list(gc.garbage)
            gc.garbage.clear()
        finally:
            gc.set_debug(0)
        return garbage

    try:
        yield found
    finally:
        if enabled:
            gc.enable()


@pytest.mark.parametrize("ending", ["answered", "timed out"])
async def test_a_held_request_leaves_nothing_for_the_cycle_collector(
    directory: Directory, feed: Feed, ending: str,
    cyclic_garbage: Callable[[], list[object]],
) -> None:
    # Thousands of viewers are held per part: a reference cycle per held request (a hold
    # keeping the callback that keeps it) kept each one's scope, request and answer alive
    # until a collection, and made the collector run ten times a second at 2,000 viewers.
    origin = create_origin_app(directory, hold_limit_factor=100.0 if ending == "answered"
                               else 0.2)  # fmt: skip
    async with served(origin) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            for _ in range(3):
                msn, idx = feed.window.next_part()
                writer.write(f"GET /live/p1/video.m3u8?_HLS_msn={msn}&_HLS_part={idx}"
                             " HTTP/1.1\r\nHost: o\r\n\r\n".encode())
                if ending == "answered":
                    await until(lambda: origin.held_requests == 1, limit=HANG, what="held")
                    feed.add()
                status, _, _ = await read_response(reader)
                assert status == (200 if ending == "answered" else 503)
            assert origin.held_requests == 0
            # While the connection is still open: its own objects are not garbage yet.
            kinds = {type(o).__qualname__ for o in cyclic_garbage()
                     if type(o).__module__.startswith("golive.")}
            assert not kinds & {"_Held", "_HeldAnswer", "FastCycle", "Request"}, kinds
        finally:
            writer.close()
            await writer.wait_closed()


async def test_a_held_request_past_its_limit_gets_the_timeout_answer(directory: Directory,
                                                                     feed: Feed) -> None:
    origin = create_origin_app(directory, hold_limit_factor=0.2)  # 0.2 s: nothing comes
    async with served(origin) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            msn, idx = feed.window.next_part()
            writer.write(f"GET /live/p1/video/part-{msn}.{idx}.m4s HTTP/1.1\r\nHost: o\r\n\r\n"
                         "GET /live/p1/video/part-0.0.m4s HTTP/1.1\r\nHost: o\r\n\r\n".encode())
            status, _, body = await read_response(reader)
            assert (status, body) == (503, b"media did not arrive in time\n")
            status, _, body = await read_response(reader)  # the connection goes on
            assert status == 200 and body == fragment(0).data
            assert feed.window.waiter_count == 0 and origin.held_requests == 0
            assert origin.stats.hold_timeouts == 1
        finally:
            writer.close()
            await writer.wait_closed()


async def test_a_part_answered_again_has_the_servers_current_date_and_ranges_stay_exact(
        directory: Directory, feed: Feed) -> None:
    # A part's answer, head included, is built once and shared; the head follows the
    # server's default headers, which uvicorn renews each second with the date.
    origin = create_origin_app(directory, hold_limit_factor=100.0)
    async with served(origin) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            get = b"GET /live/p1/video/part-0.1.m4s HTTP/1.1\r\nHost: o\r\n\r\n"
            writer.write(get)
            status, _, body = await read_response(reader)
            assert status == 200 and body == fragment(1).data
            state = server.server.server_state
            first = state.default_headers
            await until(lambda: state.default_headers is not first, limit=HANG,
                        what="the server's next default headers")
            now = dict(state.default_headers)[b"date"].decode()
            writer.write(get)
            status, again, body = await read_response(reader)
            assert status == 200 and body == fragment(1).data and again["date"] == now
            writer.write(b"HEAD /live/p1/video/part-0.1.m4s HTTP/1.1\r\nHost: o\r\n\r\n"
                         b"GET /live/p1/video/part-0.1.m4s HTTP/1.1\r\nHost: o\r\n"
                         b"Range: bytes=2-5\r\n\r\n" + get)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")  # and no body:
            status, ranged, body = await read_response(reader)
            assert status == 206 and body == fragment(1).data[2:6]
            assert ranged["content-range"] == f"bytes 2-5/{len(fragment(1).data)}"
            status, _, body = await read_response(reader)
            assert status == 200 and body == fragment(1).data
        finally:
            writer.close()
            await writer.wait_closed()


async def test_a_connection_idle_past_the_keep_alive_closes_and_a_busy_or_held_one_does_not(
        directory: Directory, feed: Feed) -> None:
    # One timer per connection, moved on when it fires, stands in for uvicorn's timer per
    # answer: it must close only a connection that has been idle the whole timeout.
    keep_alive = 0.5
    origin = create_origin_app(directory, hold_limit_factor=100.0)
    async with served(origin, keep_alive=keep_alive) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            for _ in range(8):  # 1.6 s of requests, never more than 0.2 s apart
                writer.write(b"GET /live/p1/video/part-0.1.m4s HTTP/1.1\r\nHost: o\r\n\r\n")
                status, _, _ = await read_response(reader)
                assert status == 200
                await asyncio.sleep(keep_alive * 0.4)
            # Held for twice the timeout: busy, not idle.
            msn, idx = feed.window.next_part()
            writer.write(f"GET /live/p1/video/part-{msn}.{idx}.m4s HTTP/1.1\r\nHost: o\r\n\r\n"
                         .encode())
            await until(lambda: feed.window.waiter_count == 1, limit=HANG, what="the part held")
            await asyncio.sleep(keep_alive * 2)
            feed.add()
            status, _, body = await read_response(reader)
            assert status == 200 and body == fragment(feed.count - 1).data
            # Then idle: closed.
            assert await asyncio.wait_for(reader.read(), HANG) == b""
        finally:
            writer.close()
            await writer.wait_closed()


async def test_holds_that_share_a_deadline_each_get_their_timeout_answer(
        directory: Directory, feed: Feed) -> None:
    origin = create_origin_app(directory, hold_limit_factor=0.2)  # 0.2 s: nothing comes
    async with served(origin) as server:
        msn, idx = feed.window.next_part()
        streams = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(40)]
        try:
            for _, writer in streams:
                writer.write(f"GET /live/p1/video/part-{msn}.{idx}.m4s HTTP/1.1\r\nHost: o\r\n"
                             "\r\n".encode())
            await until(lambda: origin.held_requests == 40, limit=HANG, what="all held")
            for _, writer in streams[:5]:  # these hang up before their time
                writer.close()
            for reader, _ in streams[5:]:
                status, _, body = await read_response(reader)
                assert (status, body) == (503, b"media did not arrive in time\n")
            await until(lambda: origin.held_requests == 0, limit=HANG, what="every hold ended")
            assert feed.window.waiter_count == 0 and origin.stats.holds == 40
        finally:
            for _, writer in streams:
                writer.close()
                await writer.wait_closed()


@dataclass
class Answer:
    body: bytes
    status_code: int = 200
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    fast_head: tuple[list[tuple[bytes, bytes]], bytes] | None = None
    fast_shared: SharedBody | None = None


class WaitsTwice(FastHold):
    """A hold whose decision, once its event came, must wait again."""

    def __init__(self, future: asyncio.Future[None]) -> None:
        super().__init__(HANG)
        self.future = future

    def wait(self, ready: Callable[[], None]) -> bool:
        if self.future.done():
            return False
        self.future.add_done_callback(lambda _: ready())
        return True

    def resume(self) -> None:
        return None

    def carry_on(self, routes: FastRoutes, scope: Any) -> Awaitable[Answer]:
        async def from_here() -> Answer:
            return Answer(b"from where the hold left off\n")
        return from_here()

    def expire(self) -> Answer:
        return Answer(b"late\n", 503)

    def release(self) -> None:
        pass


class TwoWaitRoutes:
    """FastRoutes (and the ASGI app behind them) whose every answer is one `WaitsTwice`."""

    prefix = b"/live/"

    def __init__(self) -> None:
        self.event: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.from_start = 0

    def answer_now(self, scope: Any) -> WaitsTwice:
        return WaitsTwice(self.event)

    async def answer(self, scope: Any) -> Answer:
        self.from_start += 1  # every wait made again: what a carried-on hold must avoid
        return Answer(b"from the start\n")

    def answered(self, scope: Any, answer: Any, started: float) -> None:
        pass

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})


async def test_a_hold_that_must_wait_again_carries_on_from_where_it_was() -> None:
    # Origin's holds know the decision stage they passed (`_HeldAnswer.carry_on`): woken
    # into another wait, the request goes on from there in a task, rather than being
    # decided from the start again, which repeated the start-up holds already made.
    routes = TwoWaitRoutes()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    server = uvicorn.Server(
        server_config(routes, HttpLimits(), ws=chat_websocket_protocol(), fast=routes))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started or serving.done(), limit=HANG, what="the server")
        reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        writer.write(b"GET /live/p1/video.m3u8 HTTP/1.1\r\nHost: o\r\n\r\n")
        await writer.drain()
        routes.event.set_result(None)  # before or after the hold began: either way
        status, _, body = await read_response(reader)
        assert (status, body, routes.from_start) == (200, b"from where the hold left off\n", 0)
        writer.close()
        await writer.wait_closed()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, HANG)


# Shared answers sent from a file (SharedBody) --------------------------------------------


@pytest.mark.parametrize("takes", ["all", "nothing", "part of the head", "part of the body"])
async def test_a_shared_part_is_whole_however_much_the_socket_takes_at_once(
        monkeypatch: pytest.MonkeyPatch, takes: str) -> None:
    directory, data = big_part_directory(300_000)
    calls: list[int] = []
    real_sendfile = os.sendfile

    def sendfile(out: int, in_fd: int, offset: int, count: int) -> int:
        calls.append(count)
        if takes == "nothing":
            raise BlockingIOError(11, "would block")
        limit = {"all": count, "part of the head": 20, "part of the body": count - 1000}[takes]
        return real_sendfile(out, in_fd, offset, limit)

    monkeypatch.setattr(os, "sendfile", sendfile)
    async with served(create_origin_app(directory)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            get = b"GET /live/p1/video/part-0.0.m4s HTTP/1.1\r\nHost: o\r\n\r\n"
            for _ in range(3):  # the same file each time, and the connection goes on
                writer.write(get)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG)
                lines = head.split(b"\r\n")  # one status line, then only headers
                assert lines[0] == b"HTTP/1.1 200 OK" and head.count(b"HTTP/1.1") == 1
                assert all(b": " in line for line in lines[1:-2]), head
                assert b"content-length: %d" % len(data) in lines
                assert await asyncio.wait_for(reader.readexactly(len(data)), HANG) == data
            writer.write(b"HEAD /live/p1/video/part-0.0.m4s HTTP/1.1\r\nHost: o\r\n\r\n" + get)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            status, _, body = await read_response(reader)  # (the HEAD had no body)
            assert status == 200 and body == data
        finally:
            writer.close()
            await writer.wait_closed()
    assert len(calls) >= 3 and all(count > len(data) for count in calls)


async def test_a_shared_part_reaches_many_readers_at_once_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    directory, data = big_part_directory(2_000_000)  # more than a socket takes at once
    sent: list[int] = []
    real_sendfile = os.sendfile

    def sendfile(out: int, in_fd: int, offset: int, count: int) -> int:
        n = real_sendfile(out, in_fd, offset, count)
        sent.append(n)
        return n

    monkeypatch.setattr(os, "sendfile", sendfile)

    async def read_slowly(port: int) -> bytes:
        # A reader with a small receive buffer, which the answer keeps waiting.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(b"GET /live/p1/video/part-0.0.m4s HTTP/1.1\r\nHost: o\r\n\r\n")
            status, _, body = await read_response(reader)
            assert status == 200
            return body
        finally:
            writer.close()
            await writer.wait_closed()

    async with served(create_origin_app(directory)) as server:
        for body in await asyncio.gather(*(read_slowly(server.port) for _ in range(8))):
            assert body == data
    # Each from the file (the kernel may take it whole: it queues the file's pages, not
    # a copy; what it does not take is covered above).
    assert len(sent) == 8


async def test_a_shared_part_is_never_sent_past_a_tls_layer(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    directory, data = big_part_directory(300_000)
    calls: list[int] = []

    def sendfile(out: int, in_fd: int, offset: int, count: int) -> int:
        calls.append(count)
        return 0

    monkeypatch.setattr(os, "sendfile", sendfile)
    certificate = make_server_certificate(tmp_path / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert, certificate.key)
    origin = create_origin_app(directory)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    server = uvicorn.Server(server_config(origin, HttpLimits(), ws=chat_websocket_protocol(),
                                          tls=HandshakeGate(context, TlsLimits()), fast=origin))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started or serving.done(), limit=HANG, what="the server")
        trust = ssl.create_default_context(cafile=str(certificate.ca))
        async with httpx.AsyncClient(verify=trust, timeout=HANG) as client:
            url = f"https://127.0.0.1:{sock.getsockname()[1]}/live/p1/video/part-0.0.m4s"
            for _ in range(2):
                answer = await client.get(url)
                assert answer.status_code == 200 and answer.content == data
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, HANG)
    assert calls == []
