"""A fresh store on SQLite for each test (also used by tests/api)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from golive.store import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    try:
        yield s
    finally:
        await s.close()
