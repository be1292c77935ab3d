"""RFC 9112: an HTTP/1.1 request with no Host header, or with two (3.2), and an HTTP/1.0
request with a Transfer-Encoding (6.1), are a 400."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.e2e.conftest import node_settings

from golive.app import Golive

HANG = 30.0


async def status_and_body(port: int, request: bytes) -> tuple[bytes, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG)
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        body = await asyncio.wait_for(reader.readexactly(length), HANG)
        return head.split(b"\r\n", 1)[0], body
    finally:
        writer.close()


async def test_one_host_of_http_1_1_and_no_transfer_encoding_of_http_1_0(tmp_path: Path) -> None:
    async with Golive(node_settings(tmp_path)) as node:
        port = node.http_port
        refused = [
            b"GET /healthz HTTP/1.1\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET /live/nothing.m3u8 HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",  # the fast path
            b"POST /api/v1/live-streams HTTP/1.1\r\nHost: a\r\nHost: b\r\n"
            b"Content-Length: 2\r\n\r\n{}",
        ]
        for request in refused:
            status, body = await status_and_body(port, request)
            assert status == b"HTTP/1.1 400 Bad Request", request
            assert json.loads(body)["error"]["messages"] == [
                "an HTTP/1.1 request needs exactly one Host header"]
        status, body = await status_and_body(
            port, b"POST /api/v1/live-streams HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"2\r\n{}\r\n0\r\n\r\n")
        assert status == b"HTTP/1.1 400 Bad Request"
        assert json.loads(body)["error"]["messages"] == [
            "an HTTP/1.0 request cannot have a Transfer-Encoding"]
        for request in (b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
                        b"GET /healthz HTTP/1.0\r\n\r\n"):  # HTTP/1.0 needs none
            assert (await status_and_body(port, request))[0] == b"HTTP/1.1 200 OK", request
