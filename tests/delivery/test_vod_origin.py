"""The origin's `/vod/` routes over a VodDirectory: paths, answers, cache headers, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import httpx
import pytest

from golive.delivery import UNAVAILABLE, Unavailable, create_origin_app
from golive.packaging import Presentation

PLAYLIST = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-ENDLIST\n"


class NoLive:
    def presentation(self, playback_id: str) -> Presentation | None:
        return None

    async def authorize(self, playback_id: str, token: str | None) -> bool:
        return True


class Vod:
    def __init__(self) -> None:
        self.down = False
        self.asked: list[tuple[str, str, str, int]] = []

    async def authorize(self, playback_id: str, token: str | None) -> bool:
        return playback_id != "private"

    async def playlist(self, playback_id: str, rendition: str | None) -> str | Unavailable | None:
        if self.down:
            return UNAVAILABLE
        if playback_id != "pb1" or rendition not in (None, "high"):
            return None
        return PLAYLIST + f'#EXT-X-MAP:URI="{rendition}/init-0.mp4"\n' if rendition else PLAYLIST

    async def media(self, playback_id: str, rendition: str, kind: Literal["init", "segment"],
                    number: int) -> bytes | Unavailable | None:
        self.asked.append((playback_id, rendition, kind, number))
        if self.down:
            return UNAVAILABLE
        if playback_id == "pb1" and rendition == "high" and number == 7:
            return b"0123456789"
        return None


@pytest.fixture
def vod() -> Vod:
    return Vod()


@pytest.fixture
async def client(vod: Vod) -> AsyncIterator[httpx.AsyncClient]:
    app = create_origin_app(NoLive(), vod=vod)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://origin") as c:
        yield c


async def test_playlists_and_media_with_their_cache_headers(
    client: httpx.AsyncClient, vod: Vod
) -> None:
    response = await client.get("/vod/pb1.m3u8")
    assert response.status_code == 200 and response.text == PLAYLIST
    assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert response.headers["cache-control"] == "public, max-age=60"
    media = await client.get("/vod/pb1/high.m3u8", params={"token": "t k"})
    assert 'URI="high/init-0.mp4?token=t%20k"' in media.text  # the token travels on
    segment = await client.get("/vod/pb1/high/seg-7.m4s")
    assert segment.status_code == 200 and segment.content == b"0123456789"
    assert segment.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert segment.headers["content-type"] == "video/iso.segment"
    ranged = await client.get("/vod/pb1/high/seg-7.m4s", headers={"Range": "bytes=2-4"})
    assert ranged.status_code == 206 and ranged.content == b"234"
    init = await client.get("/vod/pb1/high/init-7.mp4")
    assert init.status_code == 200 and init.headers["content-type"] == "video/mp4"
    assert vod.asked[-1] == ("pb1", "high", "init", 7)
    head = await client.head("/vod/pb1/high/seg-7.m4s")
    assert head.status_code == 200 and head.content == b""


async def test_unknown_forbidden_hostile_and_unavailable(
    client: httpx.AsyncClient, vod: Vod
) -> None:
    assert (await client.get("/vod/nope.m3u8")).status_code == 404
    assert (await client.get("/vod/pb1/low.m3u8")).status_code == 404
    assert (await client.get("/vod/pb1/high/seg-8.m4s")).status_code == 404
    assert (await client.get("/vod/private.m3u8")).status_code == 403
    for path in ("/vod/pb1/../x.m3u8", "/vod/pb1/high/seg-01.m4s", "/vod/pb1/high/part-7.0.m4s",
                 "/vod/" + "a" * 65 + ".m3u8", "/vod/pb1/high/seg-7.m4s/x"):
        assert (await client.get(path)).status_code == 404, path
    assert (await client.post("/vod/pb1.m3u8")).status_code == 405
    vod.down = True
    unavailable = await client.get("/vod/pb1/high/seg-7.m4s")
    assert unavailable.status_code == 503 and unavailable.headers["retry-after"] == "2"
    assert unavailable.headers["cache-control"] == "no-cache"  # an edge must not keep it
    assert (await client.get("/vod/pb1.m3u8")).status_code == 503


async def test_without_a_vod_directory_vod_is_not_found() -> None:
    app = create_origin_app(NoLive())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://origin") as c:
        assert (await c.get("/vod/pb1.m3u8")).status_code == 404
