"""The message review hook, answered by a tiny HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.chat.conftest import ChatNode


class HookServer:
    """Answers each review by the message text: `deny`, `replace`, `slow` or allow."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode().split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":")[1])
                body = json.loads(await reader.readexactly(length))
                self.seen.append(body)
                text = body["message"]["text"]
                answer: dict[str, Any] = {"result": "allow"}
                if text == "deny":
                    answer = {"result": "deny", "reason": "no shouting"}
                elif text == "replace":
                    answer = {"result": "allow", "text": "r*****e"}
                elif text == "slow":
                    await asyncio.sleep(2)
                data = json.dumps(answer).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def hook() -> AsyncIterator[HookServer]:
    server = HookServer()
    await server.start()
    yield server
    await server.close()


async def configure(chat: ChatNode, url: str, fallback: str) -> None:
    stream_id = (await chat.api.get("/live-streams?limit=1")).json()["data"][0]["id"]
    response = await chat.api.patch(
        f"/live-streams/{stream_id}/chat",
        json={"review_hook_url": url, "review_hook_fallback": fallback},
    )
    assert response.status_code == 200, response.text


async def test_allow_deny_replace(chat: ChatNode, pid: str, hook: HookServer) -> None:
    await configure(chat, f"http://127.0.0.1:{hook.port}/review", "deny")
    client = await chat.connect(pid, "alice")
    await client.send(type="send", text="fine")
    await client.wait_type("message", text="fine")
    assert hook.seen[0]["message"]["user"]["name"] == "alice"
    await client.send(type="send", text="deny")
    assert await client.error() == "no shouting"
    await client.send(type="send", text="replace")
    await client.wait_type("message", text="r*****e")


async def test_timeout_applies_the_fallback(chat: ChatNode, pid: str, hook: HookServer) -> None:
    await configure(chat, f"http://127.0.0.1:{hook.port}/review", "deny")
    client = await chat.connect(pid, "alice")
    await client.send(type="send", text="slow")
    assert "could not be reviewed" in await client.error()
    await configure(chat, f"http://127.0.0.1:{hook.port}/review", "allow")
    await client.send(type="send", text="slow")
    await client.wait_type("message", text="slow")


async def test_unreachable_hook_applies_the_fallback(chat: ChatNode, pid: str) -> None:
    await configure(chat, "http://127.0.0.1:9/nothing-here", "allow")
    client = await chat.connect(pid, "alice")
    await client.send(type="send", text="anyway")
    await client.wait_type("message", text="anyway")
