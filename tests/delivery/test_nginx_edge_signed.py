"""Signed playback through deploy/nginx/edge.conf: the real nginx, the real origin and tokens.

The edge keeps one cache entry per object whatever the token, refuses requests without
a valid one, and asks the origin once per token (its `/access` answer is cached); a
viewer without a token is asked about by its address, which an access hook hears.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.delivery.hookserver import HookServer, hook_server
from tests.delivery.signing import KeyRing
from tests.delivery.test_nginx_edge import HANG, Edge, running_edge

from golive.delivery import AccessHook, PlaybackAccess
from golive.delivery.origin import TOKEN_PLACEHOLDER
from golive.packaging.window import RenditionWindow

pytestmark = pytest.mark.skipif(
    not Path("/usr/sbin/nginx").exists(), reason="needs nginx at /usr/sbin/nginx"
)
VIEWERS = 50


@pytest.fixture
def ring() -> KeyRing:
    r = KeyRing()
    r.add_key("k1")
    r.add_playback("p1", signed=True)
    return r


@pytest.fixture
async def edge(tmp_path: Path, ring: KeyRing) -> AsyncIterator[Edge]:
    async with running_edge(tmp_path, PlaybackAccess(ring)) as e:
        yield e


@pytest.fixture
async def client(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=edge.url, timeout=HANG) as c:
        yield c


def media_requests(edge: Edge) -> list[str]:
    return [p for _, p, _, _ in edge.origin.seen if not p.endswith("/access")]


def access_requests(edge: Edge) -> int:
    return sum(1 for _, p, _, _ in edge.origin.seen if p == "/live/p1/access")


async def test_no_or_bad_token_is_refused_at_the_edge_with_the_reason(
    edge: Edge, client: httpx.AsyncClient, ring: KeyRing
) -> None:
    for path in ("/live/p1.m3u8", "/live/p1/video.m3u8", "/live/p1/video/seg-0.m4s"):
        r = await client.get(path)
        assert r.status_code == 403 and "token is required" in r.text, r.text
        r = await client.get(path, params={"token": ring.token("p2")})
        assert r.status_code == 403 and "another playback id" in r.text, r.text
    assert media_requests(edge) == []  # nothing past the access check reached the origin


async def test_fifty_viewers_with_fifty_tokens_cost_the_origin_one_request_per_object(
    edge: Edge, client: httpx.AsyncClient, ring: KeyRing
) -> None:
    tokens = [ring.token("p1", expires_in=3600 + i) for i in range(VIEWERS)]
    assert len(set(tokens)) == VIEWERS
    window: RenditionWindow = edge.window

    async def watch(token: str) -> tuple[str, list[bytes]]:
        playlist = await client.get("/live/p1/video.m3u8", params={"token": token})
        assert playlist.status_code == 200, playlist.text
        uris = [line for line in playlist.text.splitlines()
                if line and not line.startswith("#")][-2:]
        media = []
        for uri in uris:
            assert uri.endswith(f"?token={token}")  # the viewer's own, written in at the edge
            r = await client.get(f"/live/p1/{uri}")
            assert r.status_code == 200
            media.append(r.content)
        return playlist.text, media

    first = await asyncio.gather(*(watch(t) for t in tokens))
    assert all(TOKEN_PLACEHOLDER not in text for text, _ in first)
    assert len({tuple(m) for _, m in first}) == 1
    per_path = {p: media_requests(edge).count(p) for p in set(media_requests(edge))}
    assert per_path and all(n == 1 for n in per_path.values()), per_path
    assert access_requests(edge) == VIEWERS  # once per token

    # The next parts: the same 50 tokens, no new access check, one origin request each.
    for _ in range(4):
        edge.add()
    msn, _ = window.next_part()
    part = f"/live/p1/video/part-{msn - 1}.0.m4s"  # a closed segment's first part, new to all
    responses = await asyncio.gather(*(client.get(part, params={"token": t}) for t in tokens))
    assert all(r.status_code == 200 for r in responses)
    assert media_requests(edge).count(part) == 1
    assert access_requests(edge) == VIEWERS


async def test_an_expired_token_is_refused_at_the_edge(
    edge: Edge, client: httpx.AsyncClient, ring: KeyRing
) -> None:
    short = ring.token("p1", expires_in=3)
    path = "/live/p1/video/seg-0.m4s"
    assert (await client.get(path, params={"token": short})).status_code == 200
    deadline = asyncio.get_running_loop().time() + HANG
    while (r := await client.get(path, params={"token": short})).status_code == 200:
        assert asyncio.get_running_loop().time() < deadline, "the edge kept an expired token"
        await asyncio.sleep(0.2)
    assert r.status_code == 403 and "expired" in r.text


def venue(question: dict[str, object]) -> tuple[int, object]:
    """An access hook letting in a venue's addresses: 127.0.0.2 is outside it."""
    if question["remote_address"] == "127.0.0.2":
        return 200, {"allow": False, "reason": "not in the venue", "cache_seconds": 60}
    return 200, {"allow": True, "cache_seconds": 60}


async def each_viewer_decided(url: str, server: HookServer) -> None:
    """Through the edge at `url` to a public playback id "p1" whose access hook is `venue`:
    a viewer inside and one outside the venue each get their own answer, and the hook
    hears each one's address."""
    async def watch(address: str) -> httpx.Response:
        async with httpx.AsyncClient(
                base_url=url, timeout=HANG,
                transport=httpx.AsyncHTTPTransport(local_address=address)) as c:
            return await c.get("/live/p1/video.m3u8")

    assert (await watch("127.0.0.1")).status_code == 200
    refused = await watch("127.0.0.2")
    assert refused.status_code == 403 and "not in the venue" in refused.text
    assert (await watch("127.0.0.1")).status_code == 200
    assert sorted(str(q["remote_address"]) for q in server.questions) == [
        "127.0.0.1", "127.0.0.2"]


async def test_an_access_hook_behind_the_edge_decides_for_each_viewer_by_its_address(
    tmp_path: Path
) -> None:
    """A public playback id with an access hook (a venue's address range): the edge asked
    once for everyone without a token, the hook heard the edge's address, and the first
    viewer's decision was every viewer's."""
    ring = KeyRing()
    ring.add_playback("p1", signed=False)
    async with hook_server(venue) as server:
        hook = AccessHook(timeout=HANG, fail_open=False)
        try:
            access = PlaybackAccess(ring, hook=hook, default_hook_url=server.url)
            async with running_edge(tmp_path, access) as edge:
                await each_viewer_decided(edge.url, server)
                assert access_requests(edge) == 2  # the third request: the edge's answer
        finally:
            await hook.close()
