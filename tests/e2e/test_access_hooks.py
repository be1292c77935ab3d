"""Access hooks on a whole node: ffmpeg publishing, LL-HLS players and chat, a real hook server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from tests.delivery.hookserver import HookServer, hook_server
from tests.e2e.conftest import (
    ADMIN,
    create_stream,
    eventually,
    get_stream,
    node_settings,
    wait_process,
    wait_status,
)
from tests.mediatools import ffmpeg_publish, stop

from golive.app import Golive

pytestmark = pytest.mark.slow


class Rules:
    publishing_open = False

    def __call__(self, question: dict[str, Any]) -> tuple[int, Any]:
        if question["action"] == "publish":
            # Not cached: the next attempt is asked again.
            return 200, {"allow": self.publishing_open, "reason": "the event starts at 8 pm",
                         "cache_seconds": 0}
        if question["user_agent"] == "freeloader":
            return 200, {"allow": False, "reason": "buy a ticket first", "cache_seconds": 60}
        return 200, {"allow": True, "cache_seconds": 600}


@pytest.fixture
async def hook() -> AsyncIterator[HookServer]:
    async with hook_server(Rules()) as server:
        yield server


@pytest.fixture
async def node(tmp_path: Path, hook: HookServer) -> AsyncIterator[Golive]:
    async with Golive(node_settings(tmp_path, access_hook_url=hook.url)) as n:
        yield n


@pytest.fixture
async def api(node: Golive) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1",
                                 headers={"Authorization": f"Bearer {ADMIN}"},
                                 timeout=10) as client:
        yield client


def asked(hook: HookServer, action: str) -> list[dict[str, Any]]:
    return [q for q in hook.questions if q["action"] == action]


async def test_hook_gates_publish_play_and_chat(
    node: Golive, api: httpx.AsyncClient, hook: HookServer, source_flv: Path
) -> None:
    stream = await create_stream(api)
    pid = stream["playback_ids"][0]["id"]
    refused = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]))
    assert await wait_process(refused) != 0
    assert (await get_stream(api, stream["id"]))["status"] == "idle"
    (question,) = asked(hook, "publish")
    assert question["protocol"] == "rtmp" and question["stream_id"] == stream["id"]

    rules = hook.answer
    assert isinstance(rules, Rules)
    rules.publishing_open = True
    proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
    try:
        await wait_status(api, stream["id"], "active")
        assert len(asked(hook, "publish")) == 2
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10,
                                     headers={"User-Agent": "paying-player"}) as player:
            async def playlist() -> str | None:
                r = await player.get(f"/live/{pid}.m3u8")
                return r.text if r.status_code == 200 else None

            multivariant = await eventually(playlist, timeout=60, what="the multivariant")
            media_uri = next(line for line in multivariant.splitlines()
                             if line and not line.startswith("#"))
            for _ in range(20):  # a player's reloads: the session was decided once
                assert (await player.get(f"/live/{media_uri}")).status_code == 200
            # The same viewer's page is the same session (address and user agent).
            assert (await player.get(f"/watch/{pid}/status")).status_code == 200
        plays = asked(hook, "play")
        assert [(q["protocol"], q["user_agent"]) for q in plays] == [("hls", "paying-player")]

        async with httpx.AsyncClient(base_url=node.http_url, timeout=10,
                                     headers={"User-Agent": "freeloader"}) as freeloader:
            r = await freeloader.get(f"/live/{pid}.m3u8")
            assert r.status_code == 403 and r.text == "access hook: buy a ticket first\n"

        base = node.http_url.replace("http://", "ws://")
        async with websockets.connect(f"{base}/chat/{pid}", open_timeout=10,
                                      user_agent_header="freeloader") as ws:
            frame = json.loads(await ws.recv())
            assert frame == {"type": "error", "reason": "access hook: buy a ticket first"}
        assert asked(hook, "chat")[-1]["user_agent"] == "freeloader"

        async with httpx.AsyncClient(timeout=10) as http:
            metrics = (await http.get(f"{node.http_url}/metrics")).text
        assert "golive_access_hook_errors_total 0.0" in metrics
        assert f"golive_access_hook_calls_total {float(len(hook.questions))}" in metrics
    finally:
        stop(proc)


async def test_a_stream_hook_overrides_the_node_hook(
    node: Golive, api: httpx.AsyncClient, hook: HookServer
) -> None:
    stream = await create_stream(api)
    pid = stream["playback_ids"][0]["id"]
    async with hook_server(lambda q: (200, {"allow": False, "reason": "own rules"})) as own:
        r = await api.put(f"/live-streams/{stream['id']}/access-hook", json={"url": own.url})
        assert r.status_code == 200 and r.json()["data"] == {
            "stream_id": stream["id"], "url": own.url, "node_url": hook.url}
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            async def own_rules() -> str | None:
                r = await http.get(f"/watch/{pid}/status")
                return r.text if r.status_code == 403 else None

            assert "own rules" in await eventually(own_rules, what="the stream's hook")
        assert own.questions and not asked(hook, "play")
    bad = await api.put(f"/live-streams/{stream['id']}/access-hook", json={"url": "ftp://x"})
    assert bad.status_code == 422
    assert (await api.put("/live-streams/nope/access-hook", json={"url": None})).status_code == 404
