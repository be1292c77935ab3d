"""Segments waiting for storage, kept on local disk while storage is slow or down (recording).

One file per waiting object: a length-prefixed JSON header (what the index needs) and
the bytes, written to a temporary name and renamed, so after a crash every spool
file is whole. The spool is bounded in bytes; what it holds survives a restart and
is uploaded then.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SpoolEntry", "read_entry", "scan", "write_entry"]

_HEADER = struct.Struct(">I")
MAX_HEADER = 16 * 1024


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    path: Path
    header: dict[str, Any]
    size: int  # payload bytes


def write_entry(directory: Path, name: str, header: dict[str, Any], data: bytes) -> SpoolEntry:
    """Write one entry atomically (blocking: call it in a thread)."""
    encoded = json.dumps(header, separators=(",", ":")).encode()
    if len(encoded) > MAX_HEADER:
        raise ValueError("spool header too large")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.spool"
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".spool-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(_HEADER.pack(len(encoded)))
            file.write(encoded)
            file.write(data)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    return SpoolEntry(path, header, len(data))


def read_entry(path: Path) -> tuple[dict[str, Any], bytes]:
    """An entry's header and payload (blocking: call it in a thread)."""
    raw = path.read_bytes()
    if len(raw) < _HEADER.size:
        raise ValueError(f"truncated spool file {path.name}")
    (length,) = _HEADER.unpack_from(raw)
    if length > MAX_HEADER or _HEADER.size + length > len(raw):
        raise ValueError(f"bad spool header in {path.name}")
    header = json.loads(raw[_HEADER.size : _HEADER.size + length])
    if not isinstance(header, dict):
        raise ValueError(f"bad spool header in {path.name}")
    return header, raw[_HEADER.size + length :]


def scan(directory: Path) -> list[SpoolEntry]:
    """Every whole entry a previous run left, oldest name first; unreadable ones are removed."""
    if not directory.is_dir():
        return []
    entries = []
    for path in sorted(directory.glob("*.spool")):
        try:
            header, data = read_entry(path)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        entries.append(SpoolEntry(path, header, len(data)))
    for temp in directory.glob(".spool-*.tmp"):
        temp.unlink(missing_ok=True)
    return entries
