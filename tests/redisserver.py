"""A real Redis server (Debian's redis-server) on loopback, for tests and benches.

Started as a subprocess on a free port with persistence off, in its own directory,
and stopped by its pid. `stopped()` takes it away (SIGTERM) and brings it back on the
same port, empty, as a restart would; `paused()` freezes it (SIGSTOP) so commands hang
as they would against a network partition. Tests stay independent by each using its
own key prefix (`RedisServer.prefix()`), never FLUSHALL.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from tests.nginxedge import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    _prefixes: Iterator[int] = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def prefix(self) -> str:
        """A key prefix no other test in this session uses."""
        return f"t{next(self._prefixes)}:"

    def client(self) -> redis.Redis:
        """A blocking client, for assertions from the test's side."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The server gone (connections refused); started again, empty, on leaving."""
        _stop(self.process)
        try:
            yield
        finally:
            self.process = _start(self.port, self.directory)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The server frozen: connections are accepted by the kernel and never answered."""
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)


def _start(port: int, directory: Path) -> subprocess.Popen[bytes]:
    log = (directory / "redis.log").open("ab")
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.monotonic() + 30
    with closing(redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)) as client:
        while True:
            try:
                if client.ping():
                    return process
            except redis.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                raise RuntimeError(f"redis-server did not start; see {directory / 'redis.log'}")
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGCONT)
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = RedisServer(port, directory, _start(port, directory))
    try:
        yield server
    finally:
        _stop(server.process)
