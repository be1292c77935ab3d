"""A real nginx running deploy/nginx/edge.conf in front of an origin, for tests and benches."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

NGINX = Path("/usr/sbin/nginx")
EDGE_CONF = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "edge.conf"


RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"  # libnginx-mod-rtmp


def nginx_rtmp_conf(tmp: Path, port: int, *, on_publish: int | None = None) -> Path:
    """nginx-rtmp with one application, `live`, recording each stream to tmp/rec/KEY.flv;
    with `on_publish`, it asks http://127.0.0.1:ON_PUBLISH/publish before taking one."""
    (tmp / "rec").mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""
    hook = f"  on_publish http://127.0.0.1:{on_publish}/publish;\n" if on_publish else ""
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"load_module {RTMP_MODULE};\n{user}worker_processes 1;\npid {tmp / 'nginx.pid'};\n"
        "events { worker_connections 64; }\n"
        f"rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on;\n{hook}"
        f"  record all; record_path {tmp / 'rec'}; record_unique off; }} }} }}\n"
    )
    return conf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main_config(tmp: Path, edge_conf: Path) -> str:
    temp = "\n".join(
        f"    {kind}_temp_path {tmp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # Workers of a root master switch to "nobody", who could not write the cache in tmp.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\npid {tmp / 'nginx.pid'};\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n    access_log off;\n{temp}\n    include {edge_conf};\n}}\n"
    )


def render_edge(tmp: Path, origin: str, listen: str, more_origins: tuple[str, ...] = ()) -> Path:
    """Write nginx.conf + the rendered edge.conf into `tmp`; returns nginx.conf.
    `more_origins`: further nodes (host:port), a `server` line each, as edge.conf says."""
    cache_dir = tmp / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    line = "    server {{ORIGIN}};\n"
    template = EDGE_CONF.read_text()
    assert template.count(line) == 1
    rendered = (
        template.replace(line, "".join(f"    server {o};\n" for o in (origin, *more_origins)))
        .replace("{{ORIGIN}}", origin)  # (the header's comment)
        .replace("{{LISTEN}}", listen)
        .replace("{{CACHE_DIR}}", str(cache_dir))
    )
    assert "{{" not in rendered
    (tmp / "edge.conf").write_text(rendered)
    (tmp / "nginx.conf").write_text(main_config(tmp, tmp / "edge.conf"))
    return tmp / "nginx.conf"


async def wait_listening(
    port: int, proc: asyncio.subprocess.Process, *, timeout: float = 30
) -> None:
    """Return once nginx accepts connections on `port`; `timeout` only guards against hangs."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.returncode is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start listening in {timeout} s") from None
            await asyncio.sleep(0.025)
            continue
        writer.close()
        await writer.wait_closed()
        return


@asynccontextmanager
async def served(proc: asyncio.subprocess.Process, port: int, url: str) -> AsyncIterator[str]:
    """`url` once the server process `proc` accepts connections on `port`; stopped (by its
    process) when the block ends."""
    try:
        await wait_listening(port, proc)
        yield url
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


@asynccontextmanager
async def edge_cache(tmp: Path, origin_port: int) -> AsyncIterator[str]:
    """nginx with edge.conf proxying to 127.0.0.1:origin_port; yields the edge's base URL."""
    port = free_port()
    conf = render_edge(tmp, f"127.0.0.1:{origin_port}", f"127.0.0.1:{port}")
    proc = await asyncio.create_subprocess_exec(
        str(NGINX), "-p", str(tmp), "-c", str(conf), "-g", "daemon off; error_log stderr warn;"
    )
    async with served(proc, port, f"http://127.0.0.1:{port}") as url:
        yield url
