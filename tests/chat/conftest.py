"""A golive node with chat, started in-process, plus a small WebSocket chat client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from golive.app import Golive
from golive.settings import Settings

ADMIN = "test-admin-token"


def chat_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "host": "127.0.0.1",
        "http_port": 0,
        "rtmp_port": 0,
        "srt_port": None,
        "admin_token": ADMIN,
        "transcode": False,
    }
    values.update(overrides)
    return Settings(**values)


class ChatClient:
    """A chat participant: every frame received (arrays flattened) lands in `frames`."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.closed = asyncio.Event()
        self._new = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                assert isinstance(raw, str)
                self.raw.append(raw)
                value = json.loads(raw)
                self.frames.extend(value if isinstance(value, list) else [value])
                self._new.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()
            self._new.set()

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 10, start: int = 0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            for frame in self.frames[seen:]:
                if match(frame):
                    return frame
            seen = len(self.frames)
            left = deadline - time.monotonic()
            if left <= 0 or (self.closed.is_set() and seen == len(self.frames)):
                raise AssertionError(f"no matching frame; got {self.frames[-10:]}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except TimeoutError:
                pass

    async def wait_type(self, kind: str, timeout: float = 10, **fields: Any) -> dict[str, Any]:
        return await self.wait_for(
            lambda f: f.get("type") == kind and all(f.get(k) == v for k, v in fields.items()),
            timeout,
        )

    async def error(self, timeout: float = 10) -> str:
        start = len(self.frames)
        frame = await self.wait_for(lambda f: f.get("type") == "error", timeout, start=start)
        return str(frame["reason"])

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()


class ChatNode:
    def __init__(self, node: Golive, api: httpx.AsyncClient) -> None:
        self.node = node
        self.api = api
        self.clients: list[ChatClient] = []

    async def stream(self, **body: Any) -> dict[str, Any]:
        response = await self.api.post("/live-streams", json={"name": "chat test", **body})
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def ws_url(self, playback_id: str, **query: str) -> str:
        url = f"ws://127.0.0.1:{self.node.http_port}/chat/{playback_id}"
        if query:
            url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        return url

    async def connect(self, playback_id: str, name: str | None = None,
                      **query: str) -> ChatClient:
        ws = await websockets.connect(self.ws_url(playback_id, **query), open_timeout=10)
        client = ChatClient(ws)
        self.clients.append(client)
        await client.wait_type("viewers")
        if name is not None:
            await client.send(type="join", name=name)
            await client.wait_type("identity")
        return client

    async def token(self, user_id: str, name: str, caps: list[str]) -> str:
        response = await self.api.post("/chat-tokens", json={
            "user_id": user_id, "display_name": name, "capabilities": caps, "ttl": 600})
        assert response.status_code == 201, response.text
        return str(response.json()["data"]["token"])


async def start_chat_node(tmp_path: Path, **overrides: Any) -> AsyncIterator[ChatNode]:
    async with Golive(chat_settings(tmp_path, **overrides)) as node, httpx.AsyncClient(
        base_url=f"{node.http_url}/api/v1",
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ) as api:
        chat = ChatNode(node, api)
        try:
            yield chat
        finally:
            for client in chat.clients:
                await client.close()


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[ChatNode]:
    async for c in start_chat_node(tmp_path):
        yield c


@pytest.fixture
async def pid(chat: ChatNode) -> str:
    stream = await chat.stream()
    return str(stream["playback_ids"][0]["id"])
