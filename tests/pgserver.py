"""A throwaway PostgreSQL cluster on loopback, for tests.

One cluster per test session: `initdb` into a fresh directory, `postgres` started as a
subprocess on a free 127.0.0.1 port (no Unix socket) and stopped by its pid. Tests get
their own database with `CREATE DATABASE ... TEMPLATE`, which copies a migrated
template in milliseconds instead of running the migrations again.

PostgreSQL refuses to run as root; when the tests run as root the server runs as the
Debian `postgres` user over a directory handed to it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

from tests.nginxedge import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "golive"


def available() -> bool:
    return (PG_BIN / "initdb").exists() and (PG_BIN / "postgres").exists()


@dataclass
class PostgresServer:
    port: int
    process: subprocess.Popen[bytes]
    _names: Iterator[int] = field(default_factory=lambda: count(1))

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> None:
        """Run one statement as the superuser (CREATE DATABASE cannot run in a transaction)."""
        subprocess.run(
            [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql],
            check=True, capture_output=True, timeout=60,
        )

    def create_database(self, template: str = "template0") -> str:
        """A new empty (or template-copied) database; returns its name."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    # Not under pytest's tmp dir: that is private to root, and the server may run as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="golive-pg-"))
    data = root / "data"
    user = _run_as()
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    run_kwargs: dict[str, object] = {} if user is None else {
        "user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    port = free_port()
    log = (root / "postgres.log").open("wb")
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            check=True, capture_output=True, timeout=120, cwd=root, **run_kwargs,  # type: ignore[call-overload]
        )
        process = subprocess.Popen(  # type: ignore[call-overload]
            [str(PG_BIN / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
             "-k", "", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, cwd=root, **run_kwargs,
        )
        assert process is not None
        server = PostgresServer(port, process)
        deadline = time.monotonic() + 60
        while True:
            ready = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER],
                capture_output=True, timeout=30,
            )
            if ready.returncode == 0:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start; see {root / 'postgres.log'}")
            time.sleep(0.1)
        yield server
    finally:
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGINT)  # fast shutdown
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RuntimeError("running as root needs a `postgres` user to run the server") from exc
