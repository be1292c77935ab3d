"""Any node answers any playback id: two golive nodes sharing one database (a SQLite
file) and one real Redis; a real ffmpeg publishes to node A and every /live/ request
made on node B is answered from A through the broadcast registry, collapsed to one
upstream request per object however many viewers ask."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from tests.e2e.conftest import ADMIN, create_stream, eventually, node_settings, wait_status
from tests.mediatools import ffmpeg_publish, stop
from tests.redisserver import RedisServer

from golive.app import Golive
from golive.delivery import mint_playback_token

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SHOP = "https://shop.example/watch/42"
_PART = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"')


@contextlib.asynccontextmanager
async def _pair(tmp_path: Path, redis: RedisServer) -> AsyncIterator[tuple[Golive, Golive]]:
    url = f"sqlite+aiosqlite:///{(tmp_path / 'shared.db').resolve()}"
    prefix = redis.prefix()
    common = {"database_url": url, "redis_url": redis.url, "redis_prefix": prefix,
              "cluster_entry_ttl": 1.5, "cluster_takeover_hold": 1.0,
              # Shared, as a cluster's nodes need it: relayed requests are sealed with it.
              "chat_secret": "relay-test-secret-" + "x" * 16}
    async with Golive(node_settings(tmp_path / "a", **common)) as a, \
            Golive(node_settings(tmp_path / "b", **common)) as b:
        yield a, b


async def test_a_non_owner_node_answers_from_the_owner(
        tmp_path: Path, redis: RedisServer, source_flv: Path) -> None:
    async with _pair(tmp_path, redis) as (a, b), httpx.AsyncClient(
            base_url=f"{a.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=10) as api, \
            httpx.AsyncClient(base_url=f"{b.http_url}/live/", timeout=30) as on_b, \
            httpx.AsyncClient(base_url=f"{a.http_url}/live/", timeout=30) as on_a:
        stream = await create_stream(api, name="relayed", profile="passthrough",
                                     reconnect_window=1)
        pid = stream["playback_ids"][0]["id"]
        idle = await create_stream(api, name="idle")
        idle_pid = idle["playback_ids"][0]["id"]
        assert a.registry is not None and b.registry is not None and b.relay is not None

        # Not live anywhere: a plain 404, as on one node.
        assert (await on_b.get(f"{pid}.m3u8")).status_code == 404

        publisher = ffmpeg_publish(source_flv, a.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, stream["id"], "active")

            async def claimed() -> bool:
                assert a.registry is not None
                entry = await a.registry.entry(pid)
                return entry is not None and entry.node == a.registry.node_id

            await eventually(claimed, what="node A's registry entry")
            entry = await b.registry.entry(pid)
            assert entry is not None and entry.url == a.http_url
            # An entry lives one TTL past its last heartbeat: a dead node's goes by itself.
            ttl_ms = redis.client().pttl(f"{b.registry.prefix}live:owner:{pid}")
            assert isinstance(ttl_ms, int) and 0 < ttl_ms <= 1500

            async def multivariant() -> httpx.Response | None:
                response = await on_b.get(f"{pid}.m3u8")
                return response if response.status_code == 200 else None

            relayed = await eventually(multivariant, what="the multivariant playlist via B")
            assert relayed.text == (await on_a.get(f"{pid}.m3u8")).text
            assert relayed.headers["content-type"] == "application/vnd.apple.mpegurl"
            assert "max-age=" in relayed.headers["cache-control"]
            rendition = next(line for line in relayed.text.splitlines()
                             if line.endswith(".m3u8"))

            playlist = await on_b.get(rendition)
            assert playlist.status_code == 200 and "#EXTM3U" in playlist.text
            hint = _PART.search(playlist.text)
            assert hint is not None
            base = rendition.rsplit("/", 1)[0]
            part_path = f"{base}/{hint.group(1)}"
            msn_text, index_text = re.findall(r"part-(\d+)\.(\d+)\.m4s", part_path)[0]
            msn, index = int(msn_text), int(index_text)

            # Many viewers on B ask at once for the part the hint names (not made yet) and
            # block on the playlist that will list it: one upstream request each.
            before = b.relay.upstream_requests
            parts = [on_b.get(part_path) for _ in range(20)]
            reloads = [on_b.get(rendition, params={"_HLS_msn": msn, "_HLS_part": index})
                       for _ in range(20)]
            answers = await asyncio.gather(*parts, *reloads)
            assert b.relay.upstream_requests - before == 2
            part_answers, reload_answers = answers[:20], answers[20:]
            assert {r.status_code for r in answers} == {200}
            assert len({r.content for r in part_answers}) == 1
            assert part_answers[0].headers["cache-control"] == \
                "public, max-age=31536000, immutable"
            assert part_answers[0].content == (await on_a.get(part_path)).content
            assert hint.group(1) in reload_answers[0].text
            assert reload_answers[0].headers["content-type"] == \
                "application/vnd.apple.mpegurl"

            # WHEP on B: a 307 to the owner's WHEP URL, the method and offer kept.
            whep = await on_b.post(f"{b.http_url}/whep/{pid}", content=b"v=0\r\n",
                                   headers={"Content-Type": "application/sdp"})
            assert whep.status_code == 307, whep.text
            assert whep.headers["location"] == f"{a.http_url}/whep/{pid}"

            # A bad directive is refused on B itself.
            bad = await on_b.get(rendition, params={"_HLS_msn": "x"})
            assert bad.status_code == 400

            # Live a moment ago, owned by no node now (being taken over): held for the
            # takeover hold, then 503 + Retry-After.
            client = aioredis.Redis.from_url(redis.url)
            try:
                await client.set(f"{b.registry.prefix}live:sequence:{idle_pid}", json.dumps({
                    "node": "node_gone", "msn": 10, "discontinuity": 0, "at": time.time(),
                    "window": 30, "ended": False}), ex=60)
            finally:
                await client.aclose()
            asked = time.monotonic()
            unknown = await on_b.get(f"{idle_pid}.m3u8")
            assert time.monotonic() - asked >= 1.0
            assert unknown.status_code == 503
            assert unknown.headers["retry-after"] == "1"
        finally:
            stop(publisher)

        # The broadcast ends (reconnect window of 1 s): A hands the playback id back and
        # B answers 404 again.
        await wait_status(api, stream["id"], "idle")

        async def released() -> bool:
            assert a.registry is not None
            return await a.registry.entry(pid) is None

        await eventually(released, what="A's entry gone")

        async def not_found() -> bool:
            return (await on_b.get(f"{pid}.m3u8")).status_code == 404

        await eventually(not_found, what="a 404 on B after the end")
        async with httpx.AsyncClient(timeout=10) as http:
            whep = await http.post(f"{b.http_url}/whep/{pid}", content=b"v=0\r\n",
                                   headers={"Content-Type": "application/sdp"})
        assert whep.status_code == 404


async def test_signed_playback_through_a_non_owner_node(
        tmp_path: Path, redis: RedisServer, source_flv: Path) -> None:
    """Tokens are checked on the node the viewer reached, before relaying; each viewer's
    own token (or the edge's ESI include) is written into the owner's playlist, while
    viewers with different tokens share one upstream request."""
    async with _pair(tmp_path, redis) as (a, b), httpx.AsyncClient(
            base_url=f"{a.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=10) as api, \
            httpx.AsyncClient(base_url=f"{b.http_url}/live/", timeout=30,
                              headers={"Referer": SHOP}) as on_b:
        key = (await api.post("/signing-keys", json={"algorithm": "ES256"})).json()["data"]
        stream = await create_stream(api, name="signed", profile="passthrough",
                                     playback_policy="signed", reconnect_window=1)
        pid = stream["playback_ids"][0]["id"]
        # Only from the shop's pages: the owner never sees the viewer's Referer, so it has
        # to trust node B's check (the sealed relay) for any of this to play.
        restricted = await api.put(f"/playback-ids/{pid}/referrer", json={
            "allowed_referrers": ["shop.example"], "allow_empty_referrer": False})
        assert restricted.status_code == 200, restricted.text
        first, second = (mint_playback_token(key["private_key"], key_id=key["id"],
                                             playback_id=pid, audience="v", expires_in=600 + i)
                         for i in range(2))
        assert first != second and b.relay is not None
        publisher = ffmpeg_publish(source_flv, a.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, stream["id"], "active")

            async def playable() -> httpx.Response | None:
                response = await on_b.get(f"{pid}.m3u8", params={"token": first})
                return response if response.status_code == 200 else None

            await eventually(playable, what="the signed multivariant via B")
            refused = await on_b.get(f"{pid}.m3u8")
            assert refused.status_code in (401, 403), refused.text
            before = b.relay.upstream_requests
            with_first = await on_b.get(f"{pid}.m3u8", params={"token": first})
            with_second = await on_b.get(f"{pid}.m3u8", params={"token": second})
            esi = await on_b.get(f"{pid}.m3u8", params={"token": second},
                                 headers={"X-Golive-Edge": "esi"})
            assert b.relay.upstream_requests - before <= 1  # one kept answer serves all three
            # Each viewer's media playlists are listed below the short session token B
            # derived from its JWT.
            carried = [{line.split("/")[1] for line in r.text.splitlines()
                        if line.endswith(".m3u8")} for r in (with_first, with_second)]
            assert all(len(sessions) == 1 for sessions in carried), carried
            (first_session,), (second_session,) = carried
            assert first_session.startswith("gs1.") and first_session != second_session
            assert "token=" not in with_first.text + with_second.text
            assert '<esi:include src="/_golive/token"/>' in esi.text
            assert "token=" not in esi.text and "GOLIVE_EDGE_TOKEN" not in with_first.text
            assert with_first.headers["content-length"] == str(len(with_first.content))

            # Without the shop's Referer, B refuses; the media B relays plays with it.
            async with httpx.AsyncClient(base_url=f"{b.http_url}/live/", timeout=30) as bare:
                no_referrer = await bare.get(f"{pid}.m3u8", params={"token": first})
            assert no_referrer.status_code == 403 and "referer" in no_referrer.text.lower()
            rendition, other_rendition = (
                next(line for line in r.text.splitlines()
                     if ".m3u8" in line and not line.startswith("#"))
                for r in (with_first, with_second))
            media = await on_b.get(rendition)
            assert media.status_code == 200 and "token=" not in media.text
            init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', media.text)
            assert init is not None
            base = rendition.split("?")[0].rsplit("/", 1)[0]
            before = b.relay.upstream_requests
            assert (await on_b.get(f"{base}/{init.group(1)}")).status_code == 200
            # Another viewer's session asks the owner nothing more: one object upstream.
            other_base = other_rendition.rsplit("/", 1)[0]
            assert other_base != base
            assert (await on_b.get(f"{other_base}/{init.group(1)}")).status_code == 200
            assert b.relay.upstream_requests - before <= 1
            # The owner, which never saw the JWT, verifies B's session token itself (the
            # same chat_secret): a viewer may reach any node with it.
            async with httpx.AsyncClient(base_url=f"{a.http_url}/live/", timeout=30,
                                         headers={"Referer": SHOP}) as on_a:
                direct = await on_a.get(f"{base}/{init.group(1)}")
            assert direct.status_code == 200, direct.text

            # A live thumbnail of A's broadcast, asked of B with a thumbnail token.
            thumb = mint_playback_token(key["private_key"], key_id=key["id"], playback_id=pid,
                                        audience="t", expires_in=600)
            async with httpx.AsyncClient(base_url=b.http_url, timeout=30,
                                         headers={"Referer": SHOP}) as web_b:
                async def thumbnail() -> httpx.Response | None:
                    answer = await web_b.get(f"/thumbnail/{pid}.jpg",
                                             params={"token": thumb, "width": 160})
                    return answer if answer.status_code == 200 else None

                picture = await eventually(thumbnail, what="the owner's thumbnail via B")
                assert picture.headers["content-type"] == "image/jpeg"
                assert picture.content[:2] == b"\xff\xd8"
                unsigned = await web_b.get(f"/thumbnail/{pid}.jpg", params={"width": 160})
                assert unsigned.status_code in (401, 403)
                # A request that claims to be relayed, with a made-up seal, gets no pass.
                forged = await web_b.get(f"/thumbnail/{pid}.jpg", params={"width": 160},
                                         headers={"X-Golive-Relay": f"{int(time.time())}.{'0' * 64}"})
                assert forged.status_code in (401, 403)
        finally:
            stop(publisher)
