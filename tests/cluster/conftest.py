from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.e2e.conftest import source_flv  # noqa: F401  (the fixture, for these tests too)
from tests.redisserver import RedisServer, redis_server


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests keep apart by `redis.prefix()`."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server
