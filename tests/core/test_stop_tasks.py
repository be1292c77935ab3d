"""A node's stop waits for its Redis tasks a bounded time (golive.core.redislink)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from golive.core import stop_tasks


async def test_a_task_that_does_not_end_when_cancelled_is_left_after_the_limit(
        caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # as a task stuck in a client's reconnect would behave

    async def plain() -> None:
        await asyncio.Event().wait()

    stuck = asyncio.create_task(stubborn(), name="stuck")
    ends = asyncio.create_task(plain(), name="ends")
    await asyncio.sleep(0)  # both running
    with caplog.at_level(logging.WARNING, logger="golive.core.redislink"):
        await asyncio.wait_for(stop_tasks([stuck, ends], limit=0.2), 30)
    assert ends.cancelled()
    assert not stuck.done()
    assert any("did not stop" in r.getMessage() and "stuck" in r.getMessage()
               for r in caplog.records)
    release.set()
    await stuck


async def test_an_error_a_task_ended_with_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise ValueError("broken")

    task = asyncio.create_task(fails(), name="fails")
    await asyncio.wait({task})
    with caplog.at_level(logging.ERROR, logger="golive.core.redislink"):
        await stop_tasks([task])
    assert any("broken" in r.getMessage() for r in caplog.records)
    await stop_tasks([])  # nothing to stop
