"""Several `golive serve` processes on loopback, for the cluster tests and bench/cluster.py.

Each node is a real subprocess (`python -m golive serve`) with its own ports and data
directory, configured through GOLIVE_* variables like a deployed node, sharing one
database and one Redis. Stopped by pid: SIGTERM (or SIGKILL, as a crash would) to the
process this module started, never by name. An nginx edge (deploy/nginx/edge.conf)
can stand in front of all of them, round-robin, as a load balancer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
from tests.nginxedge import NGINX, free_port, render_edge, served

SRC = Path(__file__).resolve().parents[1] / "src"
ADMIN = "cluster-test-admin-token-0123456789abcdef"
CHAT_SECRET = "cluster-test-chat-secret-0123456789abcdef"


@dataclass
class NodeProcess:
    name: str
    http_port: int
    rtmp_port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def rtmp_url(self, stream_key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{stream_key}"

    def kill(self) -> None:
        """SIGKILL, as a crash of the machine would: nothing is handed back."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def start_node(name: str, directory: Path, *, database_url: str, redis_url: str,
               redis_prefix: str, **settings: str) -> NodeProcess:
    """`golive serve` as node `name`, its data and log in `directory`/`name`."""
    data = directory / name
    data.mkdir(parents=True, exist_ok=True)
    http_port, rtmp_port, srt_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "GOLIVE_DATA_DIR": str(data / "data"),
        "GOLIVE_HOST": "127.0.0.1",
        "GOLIVE_HTTP_PORT": str(http_port),
        "GOLIVE_RTMP_PORT": str(rtmp_port),
        "GOLIVE_SRT_PORT": str(srt_port),
        "GOLIVE_ADMIN_TOKEN": ADMIN,
        "GOLIVE_CHAT_SECRET": CHAT_SECRET,
        "GOLIVE_DATABASE_URL": database_url,
        "GOLIVE_REDIS_URL": redis_url,
        "GOLIVE_REDIS_PREFIX": redis_prefix,
        **{f"GOLIVE_{key.upper()}": value for key, value in settings.items()},
    }
    log = data / "golive.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "golive", "serve"], env=env,
                                   stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    return NodeProcess(name, http_port, rtmp_port, data, process, log)


async def wait_ready(node: NodeProcess, timeout: float = 90) -> None:
    """Until the node answers /healthz (`timeout` only guards against a hang)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            if node.process.poll() is not None:
                raise AssertionError(f"node {node.name} exited:\n{node.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{node.url}/healthz")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"node {node.name} not ready:\n{node.log_tail()}")
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def edge_over(tmp: Path, nodes: Iterable[NodeProcess]) -> AsyncIterator[str]:
    """nginx with edge.conf in front of all `nodes` (its upstream lists each, round-robin,
    and moves on to the next one when a node refuses); yields the edge's base URL."""
    port = free_port()
    conf = render_edge(tmp, "golive-nodes", f"127.0.0.1:{port}")
    edge = tmp / "edge.conf"
    servers = "".join(f"    server 127.0.0.1:{n.http_port};\n" for n in nodes)
    edge.write_text(edge.read_text().replace("    server golive-nodes;\n", servers))
    proc = await asyncio.create_subprocess_exec(
        str(NGINX), "-p", str(tmp), "-c", str(conf), "-g", "daemon off; error_log stderr error;")
    async with served(proc, port, f"http://127.0.0.1:{port}") as url:
        yield url
