"""Structured logging setup: one event per line, key=value text or JSON."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        line = f"{ts}Z level={record.levelname.lower()} logger={record.name} msg={record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload)


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx and httpcore log every request golive makes (webhooks, access hooks, owner
    # relays, its own in-process warm-up) at info, URL and all: noise, and a URL may carry
    # a playback token or a secret a hook's address holds. golive logs what they mean.
    for noisy in ("uvicorn.access", "aiosqlite", "sqlalchemy.engine", "alembic", "httpx",
                  "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def printable(value: str, limit: int = 200) -> str:
    """`value` safe to put in a log line: control characters escaped, at most `limit` characters.

    Client strings (SRT stream ids, user agents, names) go through this before they are
    logged: a raw newline would let a client forge a log line, and escape sequences could
    rewrite a terminal. Backslashes are doubled so an escape in the output is never the
    client's own text. A value cut short ends in "…".
    """
    out: list[str] = []
    size = 0
    for char in value:
        if char == "\\":
            piece = "\\\\"
        elif char.isprintable():
            piece = char
        else:
            code = ord(char)
            piece = f"\\x{code:02x}" if code < 0x100 else (
                f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        if size + len(piece) > limit:
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)
