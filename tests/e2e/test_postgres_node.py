"""A node whose store is a real PostgreSQL: the same walk as on SQLite, end to end.

One broadcast covers it: create a stream over the API, publish with ffmpeg, play the
LL-HLS playlist and a segment, send a chat message and read it back from the database,
and see the webhook outbox row for the stream's events delivered to a real receiver.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from tests.chat.conftest import ChatClient
from tests.e2e.conftest import ADMIN, create_stream, eventually, node_settings, wait_status
from tests.mediatools import ffmpeg_publish, stop
from tests.pgserver import PostgresServer
from tests.webhooks.receiver import Receiver

from golive.app import Golive

pytestmark = pytest.mark.slow


async def test_a_node_on_postgresql_streams_chats_and_sends_webhooks(
    tmp_path: Path, source_flv: Path, postgres: PostgresServer, postgres_template: str
) -> None:
    database = postgres.create_database(template=postgres_template)
    settings = node_settings(tmp_path, database_url=postgres.url(database),
                             webhook_allow_private_targets=True)
    try:
        with Receiver() as receiver:
            async with Golive(settings) as node, httpx.AsyncClient(
                base_url=f"{node.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"},
                timeout=10,
            ) as api, httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30) as hls:
                hook = await api.post("/webhooks", json={"url": f"{receiver.url}/hook"})
                assert hook.status_code == 201, hook.text
                hook_id = hook.json()["data"]["id"]
                stream = await create_stream(api, name="on-postgres")
                pid = stream["playback_ids"][0]["id"]
                proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
                try:
                    await wait_status(api, stream["id"], "active", timeout=60)

                    async def segment() -> bytes | None:
                        top = await hls.get(f"{pid}.m3u8")
                        if top.status_code != 200:
                            return None
                        media_uri = next(u for u in top.text.splitlines() if u and u[0] != "#")
                        media = await hls.get(media_uri)
                        names = re.findall(r"^(?!#)(\S+)$", media.text, re.M)
                        if media.status_code != 200 or not names:
                            return None
                        base = media_uri.rsplit("/", 1)[0] + "/" if "/" in media_uri else ""
                        got = await hls.get(base + names[0])
                        return got.content if got.status_code == 200 else None

                    assert len(await eventually(segment, timeout=60, what="an LL-HLS segment")) > 0

                    ws = await websockets.connect(
                        f"ws://127.0.0.1:{node.http_port}/chat/{pid}", open_timeout=10)
                    try:
                        chat = ChatClient(ws)
                        await chat.send(type="join", name="Ann")
                        await chat.wait_type("identity")
                        await chat.send(type="send", text="from postgres")
                        await chat.wait_type("message", text="from postgres")
                    finally:
                        await ws.close()
                    listed = await api.get(f"/live-streams/{stream['id']}/chat/messages")
                    assert listed.status_code == 200, listed.text
                    assert [m["text"] for m in listed.json()["data"]] == ["from postgres"]
                finally:
                    stop(proc)

                async def delivered() -> list[dict[str, Any]] | None:
                    r = await api.get(f"/webhooks/{hook_id}/deliveries",
                                      params={"state": "delivered"})
                    rows: list[dict[str, Any]] = r.json()["data"]
                    kinds = {row["event_type"] for row in rows}
                    return rows if "live_stream.active" in kinds else None

                rows = await eventually(delivered, timeout=30, what="a delivered webhook row")
                assert receiver.at("/hook", status=200)
                assert all(row["created_at"].endswith(("Z", "+00:00")) for row in rows)
    finally:
        postgres.drop_database(database)
