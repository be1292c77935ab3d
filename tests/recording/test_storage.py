"""SegmentStorage: local disk and a real S3-compatible server (moto) behave alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.s3server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server, s3_server

from golive.recording import (
    LocalStorage,
    ObjectMissing,
    S3Storage,
    SegmentStorage,
    StorageError,
    init_key,
    segment_key,
)
from golive.recording.storage import asset_prefix, validate_key


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(params=["local", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, s3: S3Server
) -> AsyncIterator[SegmentStorage]:
    store: SegmentStorage
    if request.param == "local":
        store = LocalStorage(tmp_path / "recordings")
    else:
        store = S3Storage(f"s3://{BUCKET}/{tmp_path.name}", endpoint=s3.endpoint,
                          access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, timeout=5)
    yield store
    await store.close()


async def test_put_read_ranges_and_sizes(storage: SegmentStorage) -> None:
    key = segment_key("as_abc", "high", 3400000000)
    await storage.put(key, b"0123456789")
    assert await storage.read(key) == b"0123456789"
    assert await storage.size(key) == 10
    assert await storage.read_range(key, 2, 5) == b"234"
    assert await storage.read_range(key, 8, 100) == b"89"
    assert await storage.read_range(key, 20, 30) == b""
    await storage.put(key, b"new")  # replaced whole
    assert await storage.read(key) == b"new"


async def test_missing_objects_are_object_missing(storage: SegmentStorage) -> None:
    with pytest.raises(ObjectMissing):
        await storage.read(segment_key("as_none", "high", 1))
    with pytest.raises(ObjectMissing):
        await storage.size(init_key("as_none", "high", 0))
    await storage.delete([segment_key("as_none", "high", 1)])  # absent: not an error


async def test_delete_prefix_removes_one_asset_and_nothing_else(storage: SegmentStorage) -> None:
    for msn in range(5):
        await storage.put(segment_key("as_one", "high", msn), b"x")
    await storage.put(init_key("as_one", "low", 0), b"i")
    await storage.put(segment_key("as_onex", "high", 0), b"keep")  # same leading characters
    assert await storage.delete_prefix(asset_prefix("as_one")) == 6
    with pytest.raises(ObjectMissing):
        await storage.read(segment_key("as_one", "high", 0))
    assert await storage.read(segment_key("as_onex", "high", 0)) == b"keep"


def test_keys_are_built_only_from_safe_ids() -> None:
    assert segment_key("as_1", "high", 7) == "as_1/high/seg-7.m4s"
    assert init_key("as_1", "low", 2) == "as_1/low/init-2.mp4"
    for bad in ("../etc", "a/b", "", ".hidden", "x" * 100, "a b"):
        with pytest.raises(ValueError):
            segment_key(bad, "high", 1)
        with pytest.raises(ValueError):
            init_key("as_1", bad, 1)
    for key in ("../x", "a/../b", "/abs", "a//b", "a/..", "a\\b"):
        with pytest.raises(ValueError):
            validate_key(key)


async def test_local_writes_leave_no_partial_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "recordings")
    await storage.put(segment_key("as_a", "high", 1), b"data")
    files = sorted(p.name for p in (tmp_path / "recordings").rglob("*") if p.is_file())
    assert files == ["seg-1.m4s"]


async def test_unreachable_s3_is_a_storage_error_soon(tmp_path: Path) -> None:
    from tests.nginxedge import free_port

    storage = S3Storage(f"s3://{BUCKET}/x", endpoint=f"http://127.0.0.1:{free_port()}",
                        access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, timeout=2)
    with pytest.raises(StorageError) as caught:
        await storage.put(segment_key("as_a", "high", 1), b"data")
    assert isinstance(caught.value, StorageError) and not isinstance(caught.value, ObjectMissing)


async def test_a_paused_s3_server_times_out_and_recovers(s3: S3Server, tmp_path: Path) -> None:
    storage = S3Storage(f"s3://{BUCKET}/{tmp_path.name}", endpoint=s3.endpoint,
                        access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, timeout=1)
    key = segment_key("as_p", "high", 1)
    with s3.paused(), pytest.raises(StorageError):
        await storage.put(key, b"data")
    await storage.put(key, b"data")
    assert await storage.read(key) == b"data"
    assert f"{tmp_path.name}/{key}" in s3.keys(tmp_path.name)
