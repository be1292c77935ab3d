"""Signed playback end to end: keys over the API, tokens, ffmpeg publishing, refusals everywhere."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from tests.e2e.conftest import create_stream, eventually, wait_status
from tests.mediatools import ffmpeg_publish, stop

from golive.app import Golive
from golive.delivery import Audience, mint_playback_token

pytestmark = pytest.mark.slow


async def new_key(api: httpx.AsyncClient, algorithm: str) -> dict[str, Any]:
    response = await api.post("/signing-keys", json={"algorithm": algorithm})
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()["data"]
    return key


def sign(key: dict[str, Any], playback_id: str, *, aud: Audience = "v",
         expires_in: float = 3600) -> str:
    return mint_playback_token(key["private_key"], key_id=key["id"], playback_id=playback_id,
                               audience=aud, expires_in=expires_in)


def unsigned(key: dict[str, Any], playback_id: str) -> str:
    """An `alg: none` token: the header and claims of a real one, no signature."""
    def b64(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"sub": playback_id, "aud": "v", "exp": int(time.time()) + 600}
    return f"{b64({'alg': 'none', 'kid': key['id']})}.{b64(claims)}."


async def answers(http: httpx.AsyncClient, path: str, token: str | None = None
                  ) -> tuple[int, str]:
    response = await http.get(path, params={"token": token} if token else None)
    return response.status_code, response.text


async def test_signed_playback(node: Golive, api: httpx.AsyncClient, source_flv: Path) -> None:
    es = await new_key(api, "ES256")
    rs = await new_key(api, "RS256")
    stream = await create_stream(api, playback_policy="signed")
    pid = stream["playback_ids"][0]["id"]
    other = await create_stream(api, playback_policy="signed")
    other_pid = other["playback_ids"][0]["id"]
    good = sign(es, pid)
    refusals = {
        "no token": None,
        "garbage": "not-a-jwt",
        "alg none": unsigned(es, pid),
        "other stream": sign(es, other_pid),
        "chat token": sign(es, pid, aud="c"),
        "RS256 under the ES256 kid": sign({**rs, "id": es["id"]}, pid),
    }
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
        paths = [f"/live/{pid}.m3u8", f"/live/{pid}/360p.m3u8", f"/live/{pid}/360p/part-1.0.m4s",
                 f"/live/{pid}/360p/init-0.mp4",
                 f"/watch/{pid}/status"]

        async def refused_everywhere() -> dict[str, list[tuple[int, str]]]:
            seen = {}
            for name, token in refusals.items():
                seen[name] = [await answers(http, path, token) for path in paths]
                assert all(status == 403 for status, _ in seen[name]), (name, seen[name])
            return seen

        # Not live: every refusal, and what it says, is the same as it will be live.
        before = await refused_everywhere()
        assert "token is required" in before["no token"][0][1]
        assert "'none' is not accepted" in before["alg none"][0][1]
        assert "another playback id" in before["other stream"][0][1]
        assert "not for playback" in before["chat token"][0][1]
        assert "signed with RS256, but its key is ES256" in before[
            "RS256 under the ES256 kid"][0][1]
        assert (await answers(http, f"/live/{pid}.m3u8", good))[0] == 404
        status = await http.get(f"/watch/{pid}/status", params={"token": good})
        assert status.status_code == 200 and status.json()["live"] is False

        proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, stream["id"], "active")

            async def playable() -> str | None:
                code, text = await answers(http, f"/live/{pid}.m3u8", good)
                return text if code == 200 else None

            multivariant = await eventually(playable, timeout=60, what="a signed multivariant")
            after = await refused_everywhere()
            assert after == before  # no liveness leak
            # A player needs the JWT only once: the multivariant lists each media playlist
            # below the short session token the node derived from it, and every URI of
            # those playlists resolves below it (docs/signed-playback.md).
            media_uri = next(line for line in multivariant.splitlines()
                             if line and not line.startswith("#"))
            session = media_uri.split("/")[1]
            assert session.startswith("gs1.") and len(session) < len(good) and good not in multivariant
            media = await http.get(f"/live/{media_uri}")
            assert media.status_code == 200 and "token=" not in media.text
            uris = re.findall(r'URI="([^"]+)"', media.text) + [
                line for line in media.text.splitlines() if line and not line.startswith("#")]
            rendition = media_uri.split(".m3u8")[0].split("/")[-1]
            assert uris and all(u.startswith(f"{rendition}/") or u.endswith(".m3u8") for u in uris)
            part = next(u for u in uris if "/part-" in u)
            assert (await http.get(f"/live/{pid}/{session}/{part}")).status_code == 200
            assert (await http.get(f"/live/{pid}/{part}")).status_code == 403
            live = await http.get(f"/watch/{pid}/status", params={"token": good})
            assert live.json()["live"] is True

            # A token that expires mid-playback: its media is refused from then on.
            short = sign(es, pid, expires_in=3)
            init = next(u for u in uris if "init-" in u).split("?")[0]
            assert (await answers(http, f"/live/{pid}/{init}", short))[0] == 200
            code, text = await answers(http, f"/live/{pid}/{rendition}.m3u8", short)
            assert code == 200
            short_session = re.findall(r"\?token=([^\s\"]+)", text)[0]
            assert short_session.startswith("gs1.") and short_session != session

            async def expired() -> str | None:
                refusals = [await answers(http, f"/live/{pid}/{init}", given)
                            for given in (short, short_session)]
                return " / ".join(text for _, text in refusals) if all(
                    code == 403 for code, _ in refusals) else None

            reasons = await eventually(expired, timeout=30, what="the token to expire")
            assert reasons.count("expired") == 2, reasons

            # Rotation: the RS256 key's tokens work beside the ES256 key's until it is deleted.
            rotated = sign(rs, pid)
            assert (await answers(http, f"/live/{pid}/{rendition}.m3u8", rotated))[0] == 200
            assert (await api.delete(f"/signing-keys/{rs['id']}")).status_code == 204

            async def key_gone() -> str | None:
                code, text = await answers(http, f"/live/{pid}/{init}", rotated)
                return text if code == 403 else None

            assert "no longer exists" in await eventually(key_gone, timeout=30,
                                                           what="the deleted key's tokens to end")
            assert (await answers(http, f"/live/{pid}/{init}", good))[0] == 200
        finally:
            stop(proc)


async def test_signed_chat_needs_a_chat_token(node: Golive, api: httpx.AsyncClient) -> None:
    key = await new_key(api, "ES256")
    stream = await create_stream(api, playback_policy="signed")
    pid = stream["playback_ids"][0]["id"]
    base = node.http_url.replace("http://", "ws://")

    async def first_frame(query: str) -> tuple[dict[str, Any], int | None]:
        async with websockets.connect(f"{base}/chat/{pid}{query}", open_timeout=10) as ws:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed as closed:
                return frame, closed.rcvd.code if closed.rcvd else None
            return frame, None

    for query in ("", "?playback_token=junk", f"?playback_token={sign(key, pid, aud='v')}"):
        frame, code = await first_frame(query)
        assert frame["type"] == "error" and code == 4403, (query, frame, code)
    assert "not for chat" in frame["reason"]
    ok = f"?playback_token={sign(key, pid, aud='c')}"
    async with websockets.connect(f"{base}/chat/{pid}{ok}", open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "join", "name": "ann"}))
        seen: list[dict[str, Any]] = []
        while not any(f.get("type") == "identity" for f in seen):
            raw = json.loads(await asyncio.wait_for(ws.recv(), 10))
            seen.extend(raw if isinstance(raw, list) else [raw])
        assert not any(f.get("type") == "error" for f in seen), seen
