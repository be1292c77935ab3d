"""A real varnishd running deploy/varnish/golive.vcl in front of an origin, for tests and benches."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.nginxedge import free_port, wait_listening

VARNISHD = Path("/usr/sbin/varnishd")
EDGE_VCL = Path(__file__).resolve().parents[1] / "deploy" / "varnish" / "golive.vcl"


def render_vcl(tmp: Path, origin_port: int) -> Path:
    """Write the VCL with the origin's address filled in into `tmp`; returns its path."""
    rendered = (EDGE_VCL.read_text()
                .replace("{{ORIGIN_HOST}}", "127.0.0.1")
                .replace("{{ORIGIN_PORT}}", str(origin_port)))
    assert "{{" not in rendered
    path = tmp / "golive.vcl"
    path.write_text(rendered)
    return path


def varnishd_command(tmp: Path, origin_port: int, port: int, *,
                     memory: str = "256m") -> list[str]:
    """varnishd in the foreground, its working directory in `tmp`, listening on `port`.

    `-j none`: no privilege separation (tests run as whoever runs them, root included,
    with a working directory only they can write); `esi_disable_xml_check`: playlists
    are ESI-processed (see the VCL).
    """
    vcl = render_vcl(tmp, origin_port)
    return [str(VARNISHD), "-F", "-j", "none", "-n", str(tmp / "varnish"),
            "-a", f"127.0.0.1:{port}", "-f", str(vcl), "-s", f"malloc,{memory}",
            "-p", "feature=+esi_disable_xml_check", "-T", "none"]


@asynccontextmanager
async def varnish_edge(tmp: Path, origin_port: int) -> AsyncIterator[str]:
    """varnishd with golive.vcl proxying to 127.0.0.1:origin_port; yields the edge's base URL."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *varnishd_command(tmp, origin_port, port),
        stdout=subprocess.DEVNULL)
    try:
        await wait_listening(port, proc, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
