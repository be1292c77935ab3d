"""Where recorded segments live: the `SegmentStorage` protocol, object keys, local disk (recording).

Object keys are built here only, from ids golive generated (asset ids, rendition
names that passed the profile's name pattern, segment numbers), never from a
user's string. Every write lands whole or not at all: a temporary file renamed
into place on disk, one PUT on S3, so a killed node leaves no half segment behind.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

__all__ = [
    "LocalStorage",
    "ObjectMissing",
    "SegmentStorage",
    "StorageError",
    "asset_prefix",
    "init_key",
    "segment_key",
    "validate_key",
]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_KEY_LENGTH = 512


class StorageError(Exception):
    """Storage could not do what was asked (unreachable, refused, disk full): retry later."""


class ObjectMissing(StorageError):
    """No object under that key."""


def validate_key(key: str) -> str:
    """`key` if it is one golive could have built: short, slash-separated safe names, no `..`."""
    parts = key.split("/")
    if len(key) > MAX_KEY_LENGTH or not all(_KEY_PART.match(part) for part in parts):
        raise ValueError(f"not a storage key golive builds: {key!r}")
    if any(part in (".", "..") or ".." in part for part in parts):
        raise ValueError(f"not a storage key golive builds: {key!r}")
    return key


def _checked_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise ValueError(f"invalid {what} for a storage key: {value!r}")
    return value


def segment_key(asset_id: str, rendition: str, msn: int) -> str:
    """The key of one media segment of an asset's rendition."""
    if msn < 0:
        raise ValueError("segment numbers are not negative")
    return f"{_checked_id(asset_id, 'asset id')}/{_checked_id(rendition, 'rendition')}/seg-{msn}.m4s"


def init_key(asset_id: str, rendition: str, generation: int) -> str:
    """The key of one init segment (one per encoder run) of an asset's rendition."""
    if generation < 0:
        raise ValueError("init generations are not negative")
    asset = _checked_id(asset_id, "asset id")
    return f"{asset}/{_checked_id(rendition, 'rendition')}/init-{generation}.mp4"


def asset_prefix(asset_id: str) -> str:
    """The prefix every object of one asset is under (what deleting the asset removes)."""
    return _checked_id(asset_id, "asset id") + "/"


class SegmentStorage(Protocol):
    """Whole objects by key: what the recorder writes and VOD playback reads.

    Implementations raise `ObjectMissing` for an absent key and `StorageError` for
    anything a later try may cure; no call blocks the event loop.
    """

    @property
    def description(self) -> str:
        """Where objects go, for logs (never a credential)."""
        ...

    async def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, atomically (readers see the old object or all of the new)."""
        ...

    async def read(self, key: str) -> bytes:
        """The whole object."""
        ...

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of the object (shorter if it ends first)."""
        ...

    async def size(self, key: str) -> int:
        """The object's length in bytes."""
        ...

    async def delete(self, keys: Sequence[str]) -> None:
        """Remove these objects; absent ones are not an error."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object under `prefix` (which ends in '/'); returns how many."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class LocalStorage:
    """Objects as files under one directory (the data dir's `recordings/` by default)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def description(self) -> str:
        return f"local:{self.root}"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    async def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        await asyncio.to_thread(self._put, path, data)

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".put-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                os.replace(temp, path)
            except BaseException:
                os.unlink(temp)
                raise
        except OSError as exc:
            raise StorageError(f"cannot write {path.name}: {exc.strerror or exc}") from exc

    async def read(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror or exc}") from exc

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        if start < 0 or end < start:
            raise ValueError("bad range")
        path = self._path(key)

        def read() -> bytes:
            with path.open("rb") as file:
                file.seek(start)
                return file.read(end - start)

        try:
            return await asyncio.to_thread(read)
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror or exc}") from exc

    async def size(self, key: str) -> int:
        path = self._path(key)
        try:
            return (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc

    async def delete(self, keys: Sequence[str]) -> None:
        paths = [self._path(key) for key in keys]

        def remove() -> None:
            for path in paths:
                path.unlink(missing_ok=True)

        await asyncio.to_thread(remove)

    async def delete_prefix(self, prefix: str) -> int:
        if not prefix.endswith("/"):
            raise ValueError("a prefix ends in '/'")
        directory = self._path(prefix.rstrip("/"))

        def remove() -> int:
            if not directory.is_dir():
                return 0
            count = sum(1 for p in directory.rglob("*") if p.is_file())
            shutil.rmtree(directory)
            return count

        return await asyncio.to_thread(remove)

    async def close(self) -> None:
        return None
