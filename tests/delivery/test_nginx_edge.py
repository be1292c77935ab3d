"""deploy/nginx/edge.conf in front of a real origin: the real nginx, the real uvicorn."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets.asyncio.client
from tests.media.conftest import until
from tests.nginxedge import NGINX, free_port, render_edge, wait_listening

from golive.delivery import PlaybackAccess
from golive.delivery.origin import create_origin_app
from golive.formats.isobmff import Fragment, InitSegment, TrackInfo
from golive.packaging.presentation import Presentation
from golive.packaging.window import RenditionWindow

pytestmark = pytest.mark.skipif(
    not NGINX.exists(), reason="needs nginx at /usr/sbin/nginx (apt-get install nginx-light)"
)

PART = 0.25
VIDEO = TrackInfo(
    track_id=1, kind="video", timescale=90000, codec="avc1.64001f", width=1280, height=720
)
INIT = InitSegment(data=b"\x00\x00\x00\x10ftypiso6" + b"moov" * 8, tracks=(VIDEO,))
# Seconds anything here may take: only a guard against hangs.
HANG = 30


def fragment(n: int) -> Fragment:
    return Fragment(
        data=f"moof+mdat #{n:05d}|".encode() * 8,
        sequence_number=n + 1,
        independent=n % 4 == 0,
        decode_time=n * PART,
        duration=PART,
    )


class Directory:
    def __init__(self, presentation: Presentation) -> None:
        self.current = presentation

    def presentation(self, playback_id: str) -> Presentation | None:
        return self.current if playback_id == self.current.playback_id else None


@dataclass
class Counted:
    """An ASGI wrapper that records what reached the origin."""

    app: Any
    seen: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.seen.append(
                (scope["method"], scope["path"], scope["query_string"].decode(), headers)
            )
        await self.app(scope, receive, send)

    def count(self, path: str, query: str = "") -> int:
        return sum(1 for _, p, q, _ in self.seen if p == path and q == query)


@dataclass
class Edge:
    url: str
    origin: Counted
    presentation: Presentation
    sent: list[Fragment]

    @property
    def window(self) -> RenditionWindow:
        return self.presentation.renditions["video"]

    def add(self) -> None:
        frag = fragment(len(self.sent))
        self.window.add_fragment(frag, datetime.now(UTC))
        self.sent.append(frag)


def listening_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


@asynccontextmanager
async def running_edge(tmp_path: Path, access: PlaybackAccess | None = None
                       ) -> AsyncIterator[Edge]:
    """nginx with edge.conf in front of an origin serving presentation "p1" (10 parts in)."""
    presentation = Presentation("p1", low_latency=True, part_target=PART, clock=lambda: 0.0)
    window = presentation.add_rendition(
        "video", bandwidth=3_000_000, average_bandwidth=2_700_000, frame_rate=30.0
    )
    window.set_init(INIT)
    counted = Counted(create_origin_app(Directory(presentation), access=access))
    sock = listening_socket()
    origin_port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(counted, log_level="warning", lifespan="off", access_log=False)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))

    edge_port = free_port()
    conf = render_edge(tmp_path, f"127.0.0.1:{origin_port}", f"127.0.0.1:{edge_port}")
    proc = await asyncio.create_subprocess_exec(
        str(NGINX), "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off; error_log stderr warn;"
    )
    try:
        await until(lambda: server.started, limit=HANG, what="the origin to serve")
        await wait_listening(edge_port, proc, timeout=HANG)
        e = Edge(f"http://127.0.0.1:{edge_port}", counted, presentation, [])
        for _ in range(10):
            e.add()
        yield e
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), HANG)
        server.should_exit = True
        await asyncio.wait_for(serving, HANG)


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    async with running_edge(tmp_path) as e:
        yield e


@pytest.fixture
async def client(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=edge.url, timeout=30) as c:
        yield c


async def test_segment_is_served_from_the_edge_cache(edge: Edge, client: httpx.AsyncClient) -> None:
    path = "/live/p1/video/seg-0.m4s"
    first = await client.get(path)
    second = await client.get(path)
    assert first.status_code == second.status_code == 200
    assert first.headers["x-cache-status"] == "MISS"
    assert second.headers["x-cache-status"] == "HIT"
    assert first.content == second.content == edge.window.segment_bytes(0)
    assert edge.origin.count(path) == 1


async def test_blocking_reloads_are_collapsed(edge: Edge, client: httpx.AsyncClient) -> None:
    msn, idx = edge.window.next_part()
    query = f"_HLS_msn={msn}&_HLS_part={idx}"
    path = "/live/p1/video.m3u8"
    tasks = [asyncio.create_task(client.get(f"{path}?{query}")) for _ in range(20)]
    # The one request nginx let through is parked on the part's future at the origin.
    await until(
        lambda: edge.window.waiter_count > 0 or any(t.done() for t in tasks),
        limit=HANG,
        what="the reload held at the origin",
    )
    assert not any(t.done() for t in tasks)
    assert edge.window.waiter_count == 1
    assert edge.origin.count(path, query) == 1
    edge.add()
    responses = await asyncio.wait_for(asyncio.gather(*tasks), HANG)
    assert all(r.status_code == 200 for r in responses)
    assert len({r.text for r in responses}) == 1
    assert f"video/part-{msn}.{idx}.m4s" in responses[0].text
    assert edge.origin.count(path, query) == 1


async def test_preload_hinted_part_through_the_edge(edge: Edge, client: httpx.AsyncClient) -> None:
    msn, idx = edge.window.next_part()
    path = f"/live/p1/video/part-{msn}.{idx}.m4s"
    tasks = [asyncio.create_task(client.get(path)) for _ in range(5)]
    await until(
        lambda: edge.window.waiter_count > 0 or any(t.done() for t in tasks),
        limit=HANG,
        what="the part request held at the origin",
    )
    assert not any(t.done() for t in tasks)
    assert edge.window.waiter_count == 1
    edge.add()
    responses = await asyncio.wait_for(asyncio.gather(*tasks), HANG)
    assert all(r.content == edge.sent[-1].data for r in responses)
    assert edge.origin.count(path) == 1


async def test_cors_through_the_edge(edge: Edge, client: httpx.AsyncClient) -> None:
    r = await client.options(
        "/live/p1/video/seg-0.m4s",
        headers={
            "Origin": "https://player.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert "Range" in r.headers["access-control-allow-headers"]
    for _ in range(2):  # a miss, then a hit: the cached copy keeps the CORS headers
        r = await client.get(
            "/live/p1/video/seg-1.m4s", headers={"Origin": "https://player.example"}
        )
        assert r.headers["access-control-allow-origin"] == "*"
        assert "Content-Range" in r.headers["access-control-expose-headers"]


async def test_ranges_through_the_edge(edge: Edge, client: httpx.AsyncClient) -> None:
    path = "/live/p1/video/part-1.2.m4s"
    data = edge.window.part_bytes(1, 2)
    assert data is not None
    for expected_cache in ("MISS", "HIT"):
        r = await client.get(path, headers={"Range": "bytes=3-10"})
        assert r.status_code == 206
        assert r.headers["content-range"] == f"bytes 3-10/{len(data)}"
        assert r.content == data[3:11]
        assert r.headers["x-cache-status"] == expected_cache
    r = await client.get(path, headers={"Range": "bytes=-4"})
    assert r.status_code == 206 and r.content == data[-4:]
    r = await client.get(path, headers={"Range": f"bytes={len(data) + 1}-"})
    assert r.status_code == 416
    # The edge fetched the whole object once and cut every range from its copy.
    assert edge.origin.count(path) == 1
    origin_request = next(h for _, p, _, h in edge.origin.seen if p == path)
    assert "range" not in origin_request


async def test_an_expired_playlist_is_fetched_again_never_served_stale(
    edge: Edge, client: httpx.AsyncClient
) -> None:
    path = "/live/p1/video.m3u8"
    first = await client.get(path)
    assert first.status_code == 200 and first.headers["x-cache-status"] == "MISS"
    for _ in range(8):  # the live edge moves on while the edge holds the old copy
        edge.add()
    msn, idx = edge.window.next_part()
    hint = f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="video/part-{msn}.{idx}.m4s"'

    async def refreshed() -> httpx.Response | None:
        r = await client.get(path)
        # A stale copy would be the playlist from before the new parts (12 s old, in the
        # report that found this); the edge must go to the origin instead.
        assert r.headers["x-cache-status"] != "STALE", r.headers
        return None if r.headers["x-cache-status"] == "HIT" else r

    deadline = asyncio.get_running_loop().time() + HANG
    while (answer := await refreshed()) is None:
        assert asyncio.get_running_loop().time() < deadline, "the cached playlist never expired"
        await asyncio.sleep(0.05)
    assert answer.headers["x-cache-status"] in ("EXPIRED", "MISS")
    assert hint not in first.text
    assert hint in answer.text


@asynccontextmanager
async def serving(app: Any, sock: socket.socket) -> AsyncIterator[None]:
    """`app` on uvicorn over `sock`, until the block ends (then its port refuses)."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           access_log=False, ws="websockets-sansio"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started, limit=HANG, what="an origin to serve")
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, HANG)


def two_nodes() -> tuple[Edge, Counted, list[socket.socket]]:
    """An Edge (url unset) on presentation "p1" (10 parts in), two origin apps of it (any
    node answers any playback id) and a listening socket for each."""
    presentation = Presentation("p1", low_latency=True, part_target=PART, clock=lambda: 0.0)
    presentation.add_rendition("video", bandwidth=3_000_000, average_bandwidth=2_700_000,
                               frame_rate=30.0).set_init(INIT)
    first, second = (Counted(create_origin_app(Directory(presentation))) for _ in range(2))
    e = Edge("", first, presentation, [])
    for _ in range(10):
        e.add()
    return e, second, [listening_socket(), listening_socket()]


def newest_part(e: Edge) -> str:
    e.add()
    return f"/live/p1/video/part-{e.window.last_msn}.{e.window.last_part}.m4s"


async def test_the_edge_asks_another_node_when_one_refuses(tmp_path: Path) -> None:
    """Two nodes in the upstream: nginx shares the fetches between them, and once one
    refuses connections the other answers each request at once (no error reaches a
    viewer), as edge.conf says."""
    e, second, sockets = two_nodes()
    first = e.origin
    ports = [s.getsockname()[1] for s in sockets]
    edge_port = free_port()
    conf = render_edge(tmp_path, f"127.0.0.1:{ports[0]}", f"127.0.0.1:{edge_port}",
                       more_origins=(f"127.0.0.1:{ports[1]}",))
    async with serving(second, sockets[1]):
        proc = await asyncio.create_subprocess_exec(
            str(NGINX), "-p", str(tmp_path), "-c", str(conf),
            "-g", "daemon off; error_log stderr crit;")
        try:
            await wait_listening(edge_port, proc, timeout=HANG)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{edge_port}",
                                         timeout=HANG) as client:
                async with serving(first, sockets[0]):
                    paths = [newest_part(e) for _ in range(4)]
                    for path in paths:
                        assert (await client.get(path)).status_code == 200
                    assert sum(first.count(p) for p in paths) == 2
                    assert sum(second.count(p) for p in paths) == 2
                for _ in range(4):  # the first node's port refuses now
                    path = newest_part(e)
                    assert (await client.get(path)).status_code == 200
                    assert (first.count(path), second.count(path)) == (0, 1)
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), HANG)


class ChatEcho:
    """An origin whose WebSockets (chat's) say what path and X-Forwarded-For they came
    with, then send every text frame back; anything else goes to `app`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        forwarded = dict(scope["headers"]).get(b"x-forwarded-for", b"-").decode()
        await send({"type": "websocket.send", "text": f"{scope['path']} for {forwarded}"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text") or ""})


async def chat_through(edge_url: str) -> list[str]:
    """What a chat WebSocket through the edge hears: its greeting, then two echoes."""
    url = edge_url.replace("http://", "ws://") + "/chat/p1"
    async with websockets.asyncio.client.connect(url, open_timeout=HANG) as ws:
        heard = [str(await asyncio.wait_for(ws.recv(), HANG))]
        for text in ("hello", "again"):
            await ws.send(text)
            heard.append(str(await asyncio.wait_for(ws.recv(), HANG)))
    return heard


async def test_chat_websockets_pass_through_the_edge(tmp_path: Path) -> None:
    """/chat/ through edge.conf: the upgrade reaches the node, frames go both ways, and
    the node sees the viewer's address."""
    e, _, sockets = two_nodes()
    port = sockets[0].getsockname()[1]
    edge_port = free_port()
    conf = render_edge(tmp_path, f"127.0.0.1:{port}", f"127.0.0.1:{edge_port}")
    async with serving(ChatEcho(e.origin), sockets[0]):
        proc = await asyncio.create_subprocess_exec(
            str(NGINX), "-p", str(tmp_path), "-c", str(conf),
            "-g", "daemon off; error_log stderr crit;")
        try:
            await wait_listening(edge_port, proc, timeout=HANG)
            heard = await chat_through(f"http://127.0.0.1:{edge_port}")
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), HANG)
    assert heard == ["/chat/p1 for 127.0.0.1", "hello", "again"]
