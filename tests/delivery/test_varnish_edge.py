"""deploy/varnish/golive.vcl in front of a real origin: the real varnishd, the real uvicorn.

Varnish's waiting list collapses a crowd's identical requests into one origin request and
wakes the crowd the moment the answer arrives; signed playback keeps one cache entry per
object whatever the token, checks every request's token with the origin once per token,
and writes each viewer's token into the one cached playlist (ESI).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from tests.delivery.hookserver import hook_server
from tests.delivery.signing import KeyRing
from tests.delivery.test_nginx_edge import (
    HANG,
    INIT,
    PART,
    ChatEcho,
    Counted,
    Directory,
    Edge,
    chat_through,
    listening_socket,
    newest_part,
    serving,
    two_nodes,
)
from tests.delivery.test_nginx_edge_signed import each_viewer_decided, venue
from tests.llhls_rules import check_media_playlist, check_multivariant, check_reload
from tests.media.conftest import until
from tests.varnishedge import VARNISHD, Alive, run_render, varnish_edge

from golive.delivery import AccessHook, PlaybackAccess
from golive.delivery.origin import ESI_TOKEN_INCLUDE, TOKEN_PLACEHOLDER, create_origin_app
from golive.packaging.presentation import Presentation

pytestmark = pytest.mark.skipif(
    not VARNISHD.exists(), reason="needs varnishd at /usr/sbin/varnishd (apt-get install varnish)"
)
VIEWERS = 50


@dataclass
class VarnishEdge(Edge):
    origin_url: str = ""


@asynccontextmanager
async def running_varnish(tmp_path: Path, access: PlaybackAccess | None = None
                          ) -> AsyncIterator[VarnishEdge]:
    """varnishd with golive.vcl in front of an origin serving presentation "p1" (10 parts in)."""
    presentation = Presentation("p1", low_latency=True, part_target=PART, clock=lambda: 0.0)
    window = presentation.add_rendition(
        "video", bandwidth=3_000_000, average_bandwidth=2_700_000, frame_rate=30.0
    )
    window.set_init(INIT)
    counted = Counted(create_origin_app(Directory(presentation), access=access))
    sock = listening_socket()
    server = uvicorn.Server(
        uvicorn.Config(Alive(counted), log_level="warning", lifespan="off", access_log=False)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started, limit=HANG, what="the origin to serve")
        origin_port = sock.getsockname()[1]
        async with varnish_edge(tmp_path, origin_port) as url:
            e = VarnishEdge(url, counted, presentation, [], f"http://127.0.0.1:{origin_port}")
            for _ in range(10):
                e.add()
            yield e
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, HANG)


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[VarnishEdge]:
    async with running_varnish(tmp_path) as e:
        yield e


@pytest.fixture
async def client(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=VIEWERS * 2)
    async with httpx.AsyncClient(base_url=edge.url, timeout=HANG, limits=limits) as c:
        yield c


def access_checks(edge: Edge) -> int:
    return sum(1 for _, p, _, _ in edge.origin.seen if p == "/live/p1/access")


def media_requests(edge: Edge, path: str, query: str = "") -> int:
    return edge.origin.count(path, query)


async def test_objects_are_cached_with_the_origins_headers(
    edge: Edge, client: httpx.AsyncClient
) -> None:
    path = "/live/p1/video/seg-0.m4s"
    first, second = await client.get(path), await client.get(path)
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert first.content == second.content == edge.window.segment_bytes(0)
    assert first.headers["access-control-allow-origin"] == "*"
    assert edge.origin.count(path) == 1
    # A byte range is cut from the cached object; the origin was never asked for one.
    r = await client.get(path, headers={"Range": "bytes=3-10"})
    assert r.status_code == 206 and r.content == second.content[3:11]
    assert edge.origin.count(path) == 1
    assert all("range" not in h for _, p, _, h in edge.origin.seen if p == path)
    # A playlist is kept no longer than its max-age and never served stale.
    playlist = "/live/p1/video.m3u8"
    assert (await client.get(playlist)).headers["x-cache"] == "MISS"
    for _ in range(8):
        edge.add()
    msn, idx = edge.window.next_part()
    deadline = asyncio.get_running_loop().time() + HANG
    while f"part-{msn}.{idx}.m4s" not in (r := await client.get(playlist)).text:
        assert r.headers["x-cache"] == "HIT"
        assert asyncio.get_running_loop().time() < deadline, "the cached playlist never expired"
        await asyncio.sleep(0.05)
    assert r.headers["x-cache"] == "MISS"


async def test_fifty_viewers_cost_one_origin_request_per_object_and_wait_for_nothing_else(
    edge: Edge, client: httpx.AsyncClient
) -> None:
    msn, idx = edge.window.next_part()
    query = f"_HLS_msn={msn}&_HLS_part={idx}&_HLS_skip=YES"
    part = f"/live/p1/video/part-{msn}.{idx}.m4s"
    reloads = [asyncio.create_task(client.get(f"/live/p1/video.m3u8?{query}"))
               for _ in range(VIEWERS)]
    parts = [asyncio.create_task(client.get(part)) for _ in range(VIEWERS)]
    # One reload and one part request went through; the rest are parked in Varnish.
    await until(lambda: edge.window.waiter_count == 2 or any(t.done() for t in reloads + parts),
                limit=HANG, what="the two requests held at the origin")
    assert not any(t.done() for t in reloads + parts)
    edge.add()
    added = asyncio.get_running_loop().time()
    answers = await asyncio.wait_for(asyncio.gather(*reloads, *parts), HANG)
    woken = asyncio.get_running_loop().time() - added
    assert all(r.status_code == 200 for r in answers)
    assert len({r.text for r in answers[:VIEWERS]}) == 1
    assert f"part-{msn}.{idx}.m4s" in answers[0].text
    assert all(r.content == edge.sent[-1].data for r in answers[VIEWERS:])
    assert media_requests(edge, "/live/p1/video.m3u8", query) == 1
    assert media_requests(edge, part) == 1
    # nginx's cache lock wakes its waiters on a 500 ms timer; Varnish wakes them when the
    # answer arrives. (A bound far above the expected few ms, only to tell the two apart.)
    assert woken < 0.45, f"the crowd was woken {woken * 1000:.0f} ms after the part arrived"


async def test_llhls_playback_through_the_edge(edge: Edge, client: httpx.AsyncClient) -> None:
    """What hls.js does in low-latency mode, through the edge, with the playlist rules checked."""
    multivariant = await client.get("/live/p1.m3u8")
    assert multivariant.status_code == 200
    check_multivariant(multivariant.text)
    r = await client.get("/live/p1/video.m3u8")
    check_media_playlist(r.text, low_latency=True)
    init = await client.get("/live/p1/video/init-0.mp4")
    assert init.content == INIT.data
    previous = r.text
    for _ in range(6):  # six parts, each asked for before it exists
        msn, idx = edge.window.next_part()
        reload = asyncio.create_task(
            client.get("/live/p1/video.m3u8", params={"_HLS_msn": msn, "_HLS_part": idx}))
        hinted = asyncio.create_task(client.get(f"/live/p1/video/part-{msn}.{idx}.m4s"))
        await until(lambda: edge.window.waiter_count == 2, limit=HANG,
                    what="the reload and the hinted part held")
        edge.add()
        r, part = await asyncio.wait_for(asyncio.gather(reload, hinted), HANG)
        assert r.status_code == part.status_code == 200
        check_media_playlist(r.text, low_latency=True)
        check_reload(previous, r.text)
        assert f'URI="video/part-{msn}.{idx}.m4s"' in r.text
        assert part.content == edge.sent[-1].data
        previous = r.text


# Signed playback -----------------------------------------------------------------------


@pytest.fixture
def ring() -> KeyRing:
    r = KeyRing()
    r.add_key("k1")
    r.add_playback("p1", signed=True)
    return r


async def test_signed_playback_one_cache_entry_per_object_whatever_the_token(
    tmp_path: Path, ring: KeyRing
) -> None:
    async with running_varnish(tmp_path, PlaybackAccess(ring)) as edge, httpx.AsyncClient(
        base_url=edge.url, timeout=HANG, limits=httpx.Limits(max_connections=VIEWERS * 2)
    ) as client:
        # Refused at the edge, with the origin's reason, and nothing past the check asked.
        for path in ("/live/p1.m3u8", "/live/p1/video.m3u8", "/live/p1/video/seg-0.m4s"):
            r = await client.get(path)
            assert r.status_code == 403 and "token is required" in r.text, r.text
            r = await client.get(path, params={"token": ring.token("p2")})
            assert r.status_code == 403 and "another playback id" in r.text, r.text
            r = await client.get(path, params={"token": "x\"><esi:include src=/"})
            assert r.status_code == 403, r.text
        assert not [p for _, p, _, _ in edge.origin.seen if not p.endswith("/access")]
        checks_before = access_checks(edge)

        tokens = [ring.token("p1", expires_in=3600 + i) for i in range(VIEWERS)]

        async def watch(token: str) -> tuple[str, list[bytes]]:
            playlist = await client.get("/live/p1/video.m3u8", params={"token": token})
            assert playlist.status_code == 200, playlist.text
            uris = [line for line in playlist.text.splitlines()
                    if line and not line.startswith("#")][-2:]
            media = []
            for uri in uris:
                assert uri.endswith(f"?token={token}")  # the viewer's own, written in
                r = await client.get(f"/live/p1/{uri}")
                assert r.status_code == 200, r.text
                media.append(r.content)
            return playlist.text, media

        seen = await asyncio.gather(*(watch(t) for t in tokens))
        for text, _ in seen:
            assert TOKEN_PLACEHOLDER not in text and "esi:" not in text
            check_media_playlist(text, low_latency=True)
        assert len({tuple(media) for _, media in seen}) == 1
        fetched = [p for _, p, _, _ in edge.origin.seen if not p.endswith("/access")]
        assert fetched and all(fetched.count(p) == 1 for p in fetched), fetched
        assert access_checks(edge) - checks_before == VIEWERS  # once per token
        # The one cached playlist carries the include, not anyone's token.
        cached = [h for _, p, _, h in edge.origin.seen if p == "/live/p1/video.m3u8"]
        assert cached[0]["x-golive-edge"] == "esi"
        raw = await client.get(f"{edge.origin_url}/live/p1/video.m3u8",
                               params={"token": tokens[0]}, headers={"x-golive-edge": "esi"})
        assert ESI_TOKEN_INCLUDE in raw.text and tokens[0] not in raw.text

        # The next part, all 50 tokens at once: one origin request, no new access check.
        for _ in range(4):
            edge.add()
        msn, _ = edge.window.next_part()
        part = f"/live/p1/video/part-{msn - 1}.0.m4s"
        answers = await asyncio.gather(*(client.get(part, params={"token": t}) for t in tokens))
        assert all(r.status_code == 200 for r in answers)
        assert media_requests(edge, part, f"token={tokens[0]}") + sum(
            media_requests(edge, part, f"token={t}") for t in tokens[1:]) == 1
        assert access_checks(edge) - checks_before == VIEWERS


async def test_an_access_hook_behind_the_edge_decides_for_each_viewer_by_its_address(
    tmp_path: Path
) -> None:
    """A public playback id with an access hook: each viewer without a token is asked about
    by its own address (Varnish's X-Forwarded-For), and gets its own answer."""
    ring = KeyRing()
    ring.add_playback("p1", signed=False)
    async with hook_server(venue) as server:
        hook = AccessHook(timeout=HANG, fail_open=False)
        try:
            access = PlaybackAccess(ring, hook=hook, default_hook_url=server.url)
            async with running_varnish(tmp_path, access) as edge:
                await each_viewer_decided(edge.url, server)
                assert access_checks(edge) == 2  # the third request: the edge's answer
        finally:
            await hook.close()


async def test_the_edge_asks_the_next_node_while_the_first_is_down(tmp_path: Path) -> None:
    """Two nodes in the VCL's list (each answers any playback id): everything goes to the
    first while it answers; once it is down the second answers, at once (a fetch the first
    refuses is asked of the next node: no viewer gets a 503 while the probe still counts
    the first as healthy), then straight away once the probe skips it; once it is back,
    everything goes to it again."""
    e, second, sockets = two_nodes()
    first = e.origin
    ports = [s.getsockname()[1] for s in sockets]

    async def served_by(origin: Counted, client: httpx.AsyncClient) -> None:
        """Ask for new parts until one is answered (200) by `origin`."""
        deadline = asyncio.get_running_loop().time() + HANG
        while True:
            path = newest_part(e)
            r = await client.get(path)
            assert r.status_code == 200, r.status_code  # never a 503 in the switch
            if origin.count(path) == 1:
                return
            assert asyncio.get_running_loop().time() < deadline, "no failover"
            await asyncio.sleep(0.1)

    async with (serving(Alive(second), sockets[1]),
                varnish_edge(tmp_path, ports[0], more_origins=(ports[1],)) as url,
                httpx.AsyncClient(base_url=url, timeout=HANG) as client):
        async with serving(Alive(first), sockets[0]):
            for _ in range(3):
                path = newest_part(e)
                assert (await client.get(path)).status_code == 200
                assert (first.count(path), second.count(path)) == (1, 0)
        # The first node is gone: its port refuses.
        await served_by(second, client)
        for _ in range(3):  # marked sick now: the second is asked straight away
            path = newest_part(e)
            assert (await client.get(path)).status_code == 200 and second.count(path) == 1
        assert first.count(path) == 0
        # Back on its address: the first in the list again once its probes pass.
        back = listening_socket(ports[0])
        async with serving(Alive(first), back):
            await served_by(first, client)


def test_render_writes_a_backend_per_node_that_varnish_compiles(tmp_path: Path) -> None:
    """deploy/varnish/render.sh: one backend per HOST:PORT (an IPv6 address in brackets),
    each in the director in the order given, the template's placeholders all filled, and
    varnishd's compiler takes it; anything but HOST:PORT is refused before any output."""
    origins = ["127.0.0.1:8081", "[::1]:8082", "localhost:8083"]
    done = run_render(*origins)
    assert done.returncode == 0, done.stderr
    vcl = done.stdout
    hosts = re.findall(r'^backend (\w+) \{\n    \.host = "([^"]+)";\n    \.port = "(\d+)";',
                       vcl, re.M)
    assert hosts == [("golive", "127.0.0.1", "8081"), ("golive2", "::1", "8082"),
                     ("golive3", "localhost", "8083")]
    assert re.findall(r"^    origins\.add_backend\((\w+)\);$", vcl, re.M) == [
        "golive", "golive2", "golive3"]
    # A failed fetch asks the next node, each at most once, the first after the last.
    assert "if (bereq.retries < 2 && " in vcl
    assert re.findall(r'X-Golive-Failed == "(\w+)"\) \{\n        set bereq\.backend = (\w+);',
                      vcl) == [("golive", "golive2"), ("golive2", "golive3")]
    assert "} else {\n        set bereq.backend = golive;\n    }" in vcl
    assert "{{" not in vcl
    (tmp_path / "golive.vcl").write_text(vcl)
    compiled = subprocess.run([str(VARNISHD), "-C", "-j", "none", "-n", str(tmp_path / "v"),
                               "-f", str(tmp_path / "golive.vcl")],
                              capture_output=True, text=True, timeout=HANG, check=False)
    assert compiled.returncode == 0, compiled.stderr[-2000:]
    for bad in ([], ["127.0.0.1"], ["127.0.0.1:"], ["a b:1"], ["x:1;y"], ['"x":1']):
        refused = run_render(*bad)
        assert refused.returncode == 2 and not refused.stdout and refused.stderr, bad


async def test_chat_websockets_are_piped_to_the_node(tmp_path: Path) -> None:
    """/chat/ through golive.vcl: the upgrade reaches the node (piped), frames go both
    ways, and the node sees the viewer's address."""
    e, _, sockets = two_nodes()
    port = sockets[0].getsockname()[1]
    async with (serving(Alive(ChatEcho(e.origin)), sockets[0]),
                varnish_edge(tmp_path, port) as url):
        heard = await chat_through(url)
    assert heard == ["/chat/p1 for 127.0.0.1", "hello", "again"]
