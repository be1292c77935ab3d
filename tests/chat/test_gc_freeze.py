"""`golive serve` freezes the start-up heap once the node runs (chat delivery tail, issue 15)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.chat.conftest import chat_settings

from golive.app import freeze_startup_heap, serve_forever


class Cycle:
    self: Cycle | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test session collects as usual


def test_freeze_moves_the_live_heap_out_of_collections(unfrozen: None) -> None:
    assert gc.get_freeze_count() == 0
    kept = [object() for _ in range(10)]
    cycle = Cycle()
    cycle.self = cycle
    garbage = weakref.ref(cycle)
    del cycle
    frozen = freeze_startup_heap()
    assert frozen == gc.get_freeze_count() > len(kept)
    assert garbage() is None  # collected first: start-up garbage is not pinned for good


async def test_serve_freezes_after_start(tmp_path: Path, unfrozen: None) -> None:
    server = asyncio.create_task(serve_forever(chat_settings(tmp_path)))
    try:
        async with asyncio.timeout(60):  # a hang guard: start-up takes about a second
            while gc.get_freeze_count() == 0:
                assert not server.done(), server
                await asyncio.sleep(0.05)
        assert gc.get_freeze_count() > 10_000  # modules, app, routes: a real start-up heap
        os.kill(os.getpid(), signal.SIGINT)  # how `golive serve` is stopped
        async with asyncio.timeout(60):
            await server
    finally:
        server.cancel()
