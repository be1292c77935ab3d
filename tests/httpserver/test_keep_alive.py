"""How long the node keeps an idle connection, and the shipped edges' pools under it.

A proxy keeps idle connections to the origin to reuse them. When the origin closes one
as the proxy sends a request on it, that request fails (a 502 to a viewer, or a retry);
so the origin must keep idle connections longer than any proxy in front keeps them.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from tests.e2e.conftest import node_settings

from golive.app import Golive
from golive.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
HANG = 30.0
NGINX_UPSTREAM_DEFAULT = 60.0  # nginx's upstream keepalive_timeout when a file sets none
VARNISH_BACKEND_IDLE_DEFAULT = 60.0  # varnishd's backend_idle_timeout parameter


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    await asyncio.wait_for(reader.readexactly(length), HANG)
    return head.split(b"\r\n", 1)[0]


async def test_an_idle_connection_lasts_the_keep_alive_timeout_then_closes(tmp_path: Path) -> None:
    keep_alive = 6  # past uvicorn's own 5 s, which closed the connection under proxies
    async with Golive(node_settings(tmp_path, http_keep_alive_timeout=keep_alive)) as node:
        reader, writer = await asyncio.open_connection("127.0.0.1", node.http_port)
        try:
            assert await get(reader, writer) == b"HTTP/1.1 200 OK"
            await asyncio.sleep(keep_alive - 0.5)  # idle, under the timeout: still usable
            assert await get(reader, writer) == b"HTTP/1.1 200 OK"
            answered = time.monotonic()
            assert await asyncio.wait_for(reader.read(), HANG) == b""  # then closed
            assert time.monotonic() - answered >= keep_alive - 0.05  # not before its time
        finally:
            writer.close()


def seconds(text: str, pattern: str) -> list[float]:
    return [float(value) for value in re.findall(pattern, text)]


def test_the_shipped_edges_drop_idle_origin_connections_before_the_node_does() -> None:
    node = Settings.model_fields["http_keep_alive_timeout"].default
    assert node > 60, "above AWS ALB's and the edges' 60 s"
    edge = (DEPLOY / "nginx" / "edge.conf").read_text()
    tls = (DEPLOY / "nginx" / "tls-proxy.conf").read_text()
    caddy = (DEPLOY / "caddy" / "Caddyfile").read_text()
    varnish = "\n".join(path.read_text() for path in sorted((DEPLOY / "varnish").iterdir()))
    pools = {
        "nginx edge": seconds(edge, r"\n\s*keepalive_timeout\s+(\d+)s;") or [NGINX_UPSTREAM_DEFAULT],
        "nginx TLS proxy": (seconds(tls, r"\n\s*keepalive_timeout\s+(\d+)s;")
                            or [NGINX_UPSTREAM_DEFAULT]),
        # Caddy's own default is 2 minutes: the file must set one.
        "Caddy": seconds(caddy, r"\n\s*keepalive\s+(\d+)s"),
        # VCL cannot set it: varnishd's parameter, at its default unless deploy/varnish
        # (the VCL, its README's command lines, render.sh) sets it.
        "Varnish": (seconds(varnish, r"backend_idle_timeout[= ](\d+)")
                    or [VARNISH_BACKEND_IDLE_DEFAULT]),
    }
    for edge_name, values in pools.items():
        assert values, f"{edge_name}: no idle timeout found"
        assert max(values) < node, f"{edge_name} keeps idle origin connections {max(values)} s"
