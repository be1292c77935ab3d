"""A real varnishd running deploy/varnish/golive.vcl in front of an origin, for tests and benches."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.nginxedge import free_port, wait_listening

VARNISHD = Path("/usr/sbin/varnishd")
EDGE_VCL = Path(__file__).resolve().parents[1] / "deploy" / "varnish" / "golive.vcl"
RENDER = EDGE_VCL.with_name("render.sh")


LIVENESS_PATH = "/healthz"


async def answer_alive(send: Any) -> None:
    """What a golive node answers the edge's health probe (`probe golive_alive`)."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})


class Alive:
    """An origin app that answers the edge's health probe as a node does: the probe marks
    an origin without `/healthz` sick, and the edge then has no origin to ask."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == LIVENESS_PATH:
            await answer_alive(send)
            return
        await self.app(scope, receive, send)


def run_render(*origins: str) -> subprocess.CompletedProcess[str]:
    """deploy/varnish/render.sh run on golive.vcl for `origins` (HOST:PORT), as a user runs it."""
    return subprocess.run(["sh", str(RENDER), *origins], input=EDGE_VCL.read_text(),
                          capture_output=True, text=True, timeout=30, check=False)


def render_vcl(tmp: Path, origin_port: int, more_origins: tuple[int, ...] = ()) -> Path:
    """Write the VCL for the origin on 127.0.0.1:origin_port (then `more_origins`, in the
    order the edge tries them) into `tmp`, rendered by deploy/varnish/render.sh as a user
    would; returns its path."""
    origins = [f"127.0.0.1:{port}" for port in (origin_port, *more_origins)]
    done = run_render(*origins)
    assert done.returncode == 0, done.stderr
    rendered = done.stdout
    assert "{{" not in rendered
    assert rendered.count("\n    origins.add_backend(golive") == len(origins)
    path = tmp / "golive.vcl"
    path.write_text(rendered)
    return path


def varnishd_command(tmp: Path, origin_port: int, port: int, *, memory: str = "256m",
                     more_origins: tuple[int, ...] = ()) -> list[str]:
    """varnishd in the foreground, its working directory in `tmp`, listening on `port`.

    `-j none`: no privilege separation (tests run as whoever runs them, root included,
    with a working directory only they can write); `esi_disable_xml_check`: playlists
    are ESI-processed (see the VCL).
    """
    vcl = render_vcl(tmp, origin_port, more_origins)
    return [str(VARNISHD), "-F", "-j", "none", "-n", str(tmp / "varnish"),
            "-a", f"127.0.0.1:{port}", "-f", str(vcl), "-s", f"malloc,{memory}",
            "-p", "feature=+esi_disable_xml_check", "-T", "none"]


@asynccontextmanager
async def varnish_edge(tmp: Path, origin_port: int, more_origins: tuple[int, ...] = ()
                       ) -> AsyncIterator[str]:
    """varnishd with golive.vcl proxying to 127.0.0.1:origin_port (then `more_origins`, in
    order, while it is down); yields the edge's base URL."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *varnishd_command(tmp, origin_port, port, more_origins=more_origins),
        stdout=subprocess.DEVNULL)
    try:
        await wait_listening(port, proc, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
