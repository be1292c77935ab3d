"""A real HTTP receiver for webhook tests: records every request; per path it answers 200,
500, or hangs until released."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when answered
    answered: int | None
    started: float  # time.monotonic() when its body had been read

    def json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


class Receiver:
    """`modes[path]`: "ok" (200 with a long body), "fail" (500), "hang" (until `release`),
    or an int N: 500 for the first N requests, then 200."""

    def __init__(self, port: int = 0) -> None:
        self.modes: dict[str, str | int] = {}
        self.requests: list[Received] = []
        self.hanging = threading.Event()  # a "hang" request is being held
        self.held = 0  # "hang" requests being held now
        self.most_held = 0
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = min(int(self.headers.get("content-length", "0")), 1 << 20)
                body = self.rfile.read(length)
                started = time.monotonic()
                status = receiver._answer(self.path)
                if status is None:
                    with receiver._lock:
                        receiver.held += 1
                        receiver.most_held = max(receiver.most_held, receiver.held)
                    receiver.hanging.set()
                    receiver.release.wait(60)
                    with receiver._lock:
                        receiver.held -= 1
                    status = 200
                with receiver._lock:
                    receiver.requests.append(Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                        time.monotonic(), status, started))
                reply = b"x" * 5000 if status == 200 else b"receiver says no"
                self.send_response(status)
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _answer(self, path: str) -> int | None:
        with self._lock:
            mode = self.modes.get(path, "ok")
            if isinstance(mode, int):
                if mode > 0:
                    self.modes[path] = mode - 1
                    return 500
                return 200
        return {"ok": 200, "fail": 500, "hang": None}[mode]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def at(self, path: str, *, status: int | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests
                    if r.path == path and (status is None or r.answered == status)]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
