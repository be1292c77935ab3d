"""Three golive nodes behind one name: three `golive serve` processes, one PostgreSQL,
one Redis and an nginx edge in front of all three, on loopback.

ffmpeg publishes to node A; hls.js in Chromium plays through the edge and through node C
(which holds nothing: it answers from A); chat sent on B reaches a viewer on C. Then A
is killed (SIGKILL) and the publisher restarted against B: B continues the broadcast
under the same playback id after A's media sequence numbers with one discontinuity, C and
the edge relay B's segments whole, both players play on past the kill without a fatal
error or a stall, and the chat history has every message sent before and after."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from playwright.async_api import TimeoutError as PlaywrightTimeout
from tests.chat.conftest import ChatClient
from tests.clusternodes import ADMIN, NodeProcess, edge_over, start_node, wait_ready
from tests.e2e.conftest import create_stream, eventually, wait_status
from tests.mediatools import ffmpeg_publish, stop
from tests.pgserver import PostgresServer
from tests.redisserver import RedisServer
from tests.web.conftest import browser, chromium  # noqa: F401  (fixtures reused here)
from tests.web.test_players import (  # noqa: F401  (the players fixture)
    Sample,
    page_url,
    players,
    wait_first_frame,
    wait_played,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

_MEDIA_SEQUENCE = re.compile(r"#EXT-X-MEDIA-SEQUENCE:(\d+)")


async def _chat(node: NodeProcess, pid: str, name: str) -> ChatClient:
    ws = await websockets.connect(f"ws://127.0.0.1:{node.http_port}/chat/{pid}",
                                  open_timeout=10)
    client = ChatClient(ws)
    await client.wait_type("viewers")
    await client.send(type="join", name=name)
    await client.wait_type("identity")
    return client


async def _say(sender: ChatClient, viewers: list[ChatClient], text: str) -> None:
    await sender.send(type="send", text=text)
    for viewer in viewers:
        await viewer.wait_for(lambda f: f.get("type") == "message" and f["text"] == text,
                              timeout=20)


def _last_msn(playlist: str) -> int:
    """The newest segment number a media playlist lists (its parts' numbers included)."""
    numbers = [int(n) for n in re.findall(r"(?:part|seg)-(\d+)", playlist)]
    return max(numbers)


async def _hls_state(page: Any) -> dict[str, Any]:
    """Where hls.js's stream controller stands: the fragment it continues from and its
    fragments' dates and times (how it picks the next fragment across a takeover)."""
    state: dict[str, Any] = await page.evaluate("""() => {
      const controller = window.player.streamController;
      const details = window.player.levels[0].details;
      const describe = (f) => f ? {sn: f.sn, cc: f.cc, start: f.start, duration: f.duration,
                                   date: f.programDateTime} : null;
      return {previous: describe(controller.fragPrevious), state: controller.state,
              fragments: details ? details.fragments.map(describe) : null};
    }""")
    return state


async def test_three_nodes_behind_one_edge_survive_a_kill(
        tmp_path: Path, redis: RedisServer, postgres: PostgresServer, postgres_template: str,
        source_flv: Path, browser: Any, players: str) -> None:  # noqa: F811
    database = postgres.create_database(template=postgres_template)
    prefix = redis.prefix()
    nodes = [start_node(name, tmp_path, database_url=postgres.url(database),
                        redis_url=redis.url, redis_prefix=prefix, cluster_entry_ttl="1.5",
                        chat_user_rate="50", chat_user_burst="50")
             for name in ("a", "b", "c")]
    a, b, c = nodes
    publisher = None
    clients: list[ChatClient] = []
    try:
        await asyncio.gather(*(wait_ready(node) for node in nodes))
        async with edge_over(tmp_path / "edge", nodes) as edge, httpx.AsyncClient(
                base_url=f"{b.url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"},
                timeout=10) as api, httpx.AsyncClient(timeout=30) as http:
            stream = await create_stream(api, name="cluster", profile="passthrough",
                                         reconnect_window=30)
            sid, pid, key = stream["id"], stream["playback_ids"][0]["id"], stream["stream_key"]
            publisher = ffmpeg_publish(source_flv, a.rtmp_url(key), loop=True)
            await wait_status(api, sid, "active")

            # Viewers: hls.js through the edge and through node C, once both answer (as on
            # one node, a playback id is a 404 until its presentation has media).
            manifests = (f"{edge}/live/{pid}.m3u8", f"{c.url}/live/{pid}.m3u8")

            async def answering() -> bool:
                return all([(await http.get(m)).status_code == 200 for m in manifests])

            await eventually(answering, timeout=60, what="the multivariant via edge and C")
            pages = []
            for manifest in manifests:
                page = await browser.new_page()
                await page.goto(page_url(players, "hlsjs", manifest))
                pages.append(page)
            for page in pages:
                await wait_first_frame(page, timeout=90)
                await wait_played(page, (await Sample.take(page)).current_time, 2, timeout=60)

            # Chat: sent on B, seen by a viewer on C (and on B).
            viewer = await _chat(c, pid, "carol")
            sender = await _chat(b, pid, "bob")
            clients += [viewer, sender]
            sent = [f"before the kill {i}" for i in range(3)]
            for text in sent:
                await _say(sender, [viewer], text)

            multivariant = (await http.get(f"{c.url}/live/{pid}.m3u8")).text
            rendition = next(line for line in multivariant.splitlines()
                             if line.endswith(".m3u8"))
            media_url = f"{c.url}/live/{rendition}"
            served_by_a = _last_msn((await http.get(media_url)).text)
            played = [(await Sample.take(page)).current_time for page in pages]

            # Node A dies; the publisher comes back on node B.
            a.kill()
            stop(publisher)
            publisher = ffmpeg_publish(source_flv, b.rtmp_url(key), loop=True)
            for i in range(3):
                text = f"after the kill {i}"
                sent.append(text)
                await _say(sender, [viewer], text)

            # B continues A's numbers after one discontinuity; C answers from B.
            async def continued() -> str | None:
                response = await http.get(media_url)
                if response.status_code != 200:
                    return None
                text = response.text
                first = int(_MEDIA_SEQUENCE.findall(text)[0])
                return text if first > served_by_a and "#EXT-X-DISCONTINUITY\n" in text else None

            playlist = await eventually(continued, timeout=60, what="B's playlist through C")
            # A non-owner relays B's media whole: its first segment (larger than one socket
            # read) through C and through the edge is the segment B serves.
            segment = next(line for line in playlist.splitlines() if "/seg-" in line)
            media_base = media_url.rsplit("/", 1)[0]
            own = (await http.get(f"{media_base.replace(c.url, b.url)}/{segment}")).content
            assert len(own) > 64 * 1024, len(own)
            for base in (media_base, media_base.replace(c.url, edge)):
                relayed = await http.get(f"{base}/{segment}")
                assert relayed.status_code == 200, (base, relayed.status_code)
                assert relayed.content == own, (base, len(relayed.content), len(own))
            first = int(_MEDIA_SEQUENCE.findall(playlist)[0])
            assert first <= served_by_a + 3, (served_by_a, first)  # continued, not renumbered
            # B's first segment opens the playlist, tagged: timeline 1 after A's 0.
            assert "#EXT-X-DISCONTINUITY-SEQUENCE" not in playlist
            # The registry names B now (A's entry did not wait to expire).
            owner = redis.client().get(f"{prefix}live:owner:{pid}")
            assert isinstance(owner, bytes) and json.loads(owner)["url"] == b.url
            assert playlist.count("#EXT-X-DISCONTINUITY\n") == 1

            # Nothing in the chat history is lost.
            history = (await api.get(f"/live-streams/{sid}/chat/messages",
                                     params={"limit": 100})).json()["data"]
            assert sorted(m["text"] for m in history) == sorted(sent)
            assert len({m["id"] for m in history}) == len(sent)

            # Both players play on past the kill, without a fatal error or a reload.
            for page, at in zip(pages, played, strict=True):
                try:
                    await wait_played(page, at, 10, timeout=60)
                except PlaywrightTimeout:
                    sample = await Sample.take(page)
                    raise AssertionError(
                        f"{page.url}: no progress past {sample.current_time:.1f} s after the "
                        f"takeover; warnings {sample.warnings}; hls.js {await _hls_state(page)}"
                    ) from None
                sample = await Sample.take(page)
                assert sample.fatal == [], (page.url, sample.fatal, sample.fatal_state)
    finally:
        for client in clients:
            await client.close()
        if publisher is not None:
            stop(publisher)
        for node in nodes:
            node.stop()
        with contextlib.suppress(Exception):
            postgres.drop_database(database)
        # Where a failure came from: the nodes' own words.
        for node in nodes:
            print(f"--- node {node.name} (exit {node.process.returncode}) ---\n"
                  f"{node.log_tail(15)}")
