"""A real S3-compatible server (moto's server mode) on loopback, for tests and benches.

Started as a subprocess on a free port and stopped by its pid; `paused()` freezes it
(SIGSTOP) so requests hang as they would against a storage outage, then lets it go on
with its objects intact.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from tests.nginxedge import free_port

MOTO_SERVER = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
BUCKET = "golive-test"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]

    def storage_settings(self, prefix: str = "recordings") -> dict[str, object]:
        """Settings that point a node at this server's bucket."""
        return {
            "storage_url": f"s3://{BUCKET}/{prefix}",
            "storage_s3_endpoint": self.endpoint,
            "storage_s3_access_key_id": ACCESS_KEY,
            "storage_s3_secret_access_key": SECRET_KEY,
            "storage_s3_region": "us-east-1",
            "storage_s3_path_style": True,
        }

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under `prefix` (ListObjectsV2, paged)."""
        keys: list[str] = []
        token: str | None = None
        with httpx.Client(timeout=10) as client:
            while True:
                params = {"list-type": "2", "prefix": prefix}
                if token:
                    params["continuation-token"] = token
                body = client.get(f"{self.endpoint}/{BUCKET}", params=params).text
                keys += [part.split("</Key>")[0] for part in body.split("<Key>")[1:]]
                if "<IsTruncated>true</IsTruncated>" not in body:
                    return keys
                token = body.split("<NextContinuationToken>")[1].split("<")[0]

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The server frozen: connections are accepted by the kernel and never answered."""
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)


@contextmanager
def s3_server(tmp: Path) -> Iterator[S3Server]:
    port = free_port()
    log = (tmp / "moto.log").open("wb")
    process = subprocess.Popen(
        [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MOTO_CALL_RESET_API": "false"},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.put(f"{endpoint}/{BUCKET}", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not start; see {tmp / 'moto.log'}")
            time.sleep(0.2)
        yield S3Server(endpoint, process)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
