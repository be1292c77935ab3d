"""S3-compatible object storage for recordings, through obstore (recording).

The one adapter over obstore: it is checked at start (`check_obstore`) and pinned in
pyproject. obstore's own retries are off: the recorder retries with its backoff and
spools to disk meanwhile, so one request never hangs the writer for minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store

from golive.recording.storage import ObjectMissing, StorageError, validate_key

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig

__all__ = ["S3Storage", "check_obstore"]

TESTED_OBSTORE = ("0.12",)
_DELETE_BATCH = 1000


def check_obstore() -> None:
    """Fail loudly on an obstore this adapter was not tested with."""
    version = getattr(obstore, "__version__", "")
    if not any(version == v or version.startswith(v + ".") for v in TESTED_OBSTORE):
        raise RuntimeError(
            f"golive's S3 storage was tested with obstore {', '.join(TESTED_OBSTORE)}.x; "
            f"found {version or 'an unknown version'}: install the version pyproject pins"
        )


def _failed(key: str, exc: BaseException) -> StorageError:
    # obstore's messages can be long (they carry the response body); keep the first line.
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return StorageError(f"S3 request for {key} failed: {text}")


class S3Storage:
    """Objects in one bucket under one prefix (`s3://BUCKET/PREFIX`)."""

    def __init__(
        self,
        url: str,
        *,
        endpoint: str = "",
        region: str = "us-east-1",
        access_key_id: str = "",
        secret_access_key: str = "",
        path_style: bool = True,
        timeout: float = 10.0,
    ) -> None:
        check_obstore()
        if not url.startswith("s3://"):
            raise ValueError("an S3 storage URL starts with s3://")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self._where = f"s3://{bucket}/{prefix}" + (f" at {endpoint}" if endpoint else "")
        client: ClientConfig = {
            "timeout": timedelta(seconds=timeout),
            "connect_timeout": timedelta(seconds=min(timeout, 5.0)),
            "allow_http": endpoint.startswith("http://"),
        }
        retry: RetryConfig = {"max_retries": 0, "retry_timeout": timedelta(seconds=timeout)}
        options: dict[str, str | bool] = {
            "region": region,
            "virtual_hosted_style_request": not path_style,
        }
        if endpoint:
            options["endpoint"] = endpoint
        if access_key_id:
            options["access_key_id"] = access_key_id
            options["secret_access_key"] = secret_access_key
        else:
            options["skip_signature"] = True
        self._store = S3Store(
            bucket,
            prefix=prefix.strip("/") or None,
            client_options=client,
            retry_config=retry,
            **options,  # type: ignore[arg-type]
        )

    @property
    def description(self) -> str:
        return self._where

    async def put(self, key: str, data: bytes) -> None:
        validate_key(key)
        try:
            await obstore.put_async(self._store, key, data)
        except (TimeoutError, BaseError, OSError) as exc:
            raise _failed(key, exc) from exc

    async def read(self, key: str) -> bytes:
        validate_key(key)
        try:
            result = await obstore.get_async(self._store, key)
            return bytes(await result.bytes_async())
        except (NotFoundError, FileNotFoundError) as exc:
            raise ObjectMissing(key) from exc
        except (BaseError, OSError) as exc:
            raise _failed(key, exc) from exc

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        if start < 0 or end < start:
            raise ValueError("bad range")
        validate_key(key)
        if end == start:
            return b""
        try:
            size = await self.size(key)
            if start >= size:
                return b""
            data = await obstore.get_range_async(self._store, key, start=start, end=min(end, size))
            return bytes(data)
        except (NotFoundError, FileNotFoundError) as exc:
            raise ObjectMissing(key) from exc
        except (BaseError, OSError) as exc:
            raise _failed(key, exc) from exc

    async def size(self, key: str) -> int:
        validate_key(key)
        try:
            meta = await obstore.head_async(self._store, key)
            return int(meta["size"])
        except (NotFoundError, FileNotFoundError) as exc:
            raise ObjectMissing(key) from exc
        except (BaseError, OSError) as exc:
            raise _failed(key, exc) from exc

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            validate_key(key)
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = list(keys[start : start + _DELETE_BATCH])
            try:
                await obstore.delete_async(self._store, batch)
            except (NotFoundError, FileNotFoundError):
                continue
            except (BaseError, OSError) as exc:
                raise _failed(batch[0], exc) from exc

    async def delete_prefix(self, prefix: str) -> int:
        if not prefix.endswith("/"):
            raise ValueError("a prefix ends in '/'")
        validate_key(prefix.rstrip("/"))
        keys: list[str] = []
        try:
            async for batch in obstore.list(self._store, prefix, chunk_size=_DELETE_BATCH):
                keys.extend(meta["path"] for meta in batch)
        except (BaseError, OSError) as exc:
            raise _failed(prefix, exc) from exc
        await self.delete(keys)
        return len(keys)

    async def close(self) -> None:
        return None
