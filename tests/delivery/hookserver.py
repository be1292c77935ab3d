"""A real HTTP access hook for tests: uvicorn on a free 127.0.0.1 port, answers set per test."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from tests.media.conftest import until

Answer = Callable[[dict[str, Any]], tuple[int, Any]]


def allow_all(question: dict[str, Any]) -> tuple[int, Any]:
    return 200, {"allow": True, "cache_seconds": 300}


@dataclass
class HookServer:
    """Records every question; `answer` decides; while `hanging` is set, nothing is answered."""

    answer: Answer = allow_all
    questions: list[dict[str, Any]] = field(default_factory=list)
    hanging: bool = False
    url: str = ""
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self._release.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        question = json.loads(body)
        self.questions.append(question)
        if self.hanging:
            await self._release.wait()  # until the test ends: the caller's timeout decides
        status, payload = self.answer(question)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})


@asynccontextmanager
async def hook_server(answer: Answer = allow_all) -> AsyncIterator[HookServer]:
    hook = HookServer(answer)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    hook.url = f"http://127.0.0.1:{sock.getsockname()[1]}/access"
    server = uvicorn.Server(uvicorn.Config(hook, log_level="warning", lifespan="off",
                                           access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started, limit=30, what="the hook server to start")
        yield hook
    finally:
        hook.release()
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
