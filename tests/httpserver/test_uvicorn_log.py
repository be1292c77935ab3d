"""What uvicorn logs per client: no line per WebSocket (nor its token), and its warnings
about malformed requests at most once per interval (golive.httpserver.server)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
import websockets
from tests.e2e.conftest import ADMIN, create_stream, node_settings

from golive.app import Golive
from golive.httpserver.server import UvicornLogFilter

HANG = 30.0


def record(message: str, level: int = logging.WARNING, args: tuple[object, ...] = ()
           ) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", level, __file__, 1, message, args, None)


def test_the_filter_lets_one_warning_through_per_interval_with_a_count() -> None:
    now = [0.0]
    quiet = UvicornLogFilter(interval=10.0, clock=lambda: now[0])
    assert quiet.filter(record("Invalid HTTP request received."))
    assert not any(quiet.filter(record("Invalid HTTP request received.")) for _ in range(50))
    assert quiet.filter(record("Unsupported upgrade request."))  # another warning: its own
    now[0] = 10.5
    later = record("Invalid HTTP request received.")
    assert quiet.filter(later)
    assert later.getMessage() == ("Invalid HTTP request received. "
                                  "(50 more like this in the last 10 s)")
    # Warnings with arguments, and errors, are not uvicorn's per-client ones: untouched.
    assert all(quiet.filter(record("Exception in ASGI application\n", logging.ERROR))
               for _ in range(3))
    assert not quiet.filter(record('%s - "WebSocket %s" [accepted]', logging.INFO,
                                   ("127.0.0.1:5", "/chat/p?token=t")))


async def test_a_node_logs_no_websocket_token_and_bad_requests_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with Golive(node_settings(tmp_path)) as node, httpx.AsyncClient(
            base_url=f"{node.http_url}/api/v1", timeout=HANG,
            headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        stream = await create_stream(api)
        pid = stream["playback_ids"][0]["id"]
        with caplog.at_level(logging.INFO):
            chat = await websockets.connect(
                f"ws://127.0.0.1:{node.http_port}/chat/{pid}?token=SECRET-IN-QUERY",
                open_timeout=HANG)
            await chat.close()
            for _ in range(20):
                reader, writer = await asyncio.open_connection("127.0.0.1", node.http_port)
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
                assert (await asyncio.wait_for(reader.read(), HANG)).startswith(
                    b"HTTP/1.1 400 ")
                writer.close()
        text = caplog.text
        assert "SECRET-IN-QUERY" not in text and '"WebSocket' not in text
        assert text.count("Invalid HTTP request received.") == 1
