"""A flood of fresh QoE view ids from one address, over HTTP against a node in-process.

Each client is the node's own ASGI app with a chosen peer address, so two "machines"
can post without a proxy in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import text
from tests.e2e.conftest import create_stream

from golive.app import Golive
from golive.store import db
from golive.store.views import PlaybackViewStore
from golive.web.qoe import QoeLimits

FLOOD = 60


@asynccontextmanager
async def client_at(node: Golive, address: str) -> AsyncIterator[httpx.AsyncClient]:
    assert node.http is not None
    transport = httpx.ASGITransport(app=node.http, client=(address, 40_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        yield client


def batch(view: str) -> dict[str, object]:
    return {"view_id": view, "sent": 5000,
            "events": [{"type": "latency", "t": 4000, "seconds": 1.5}]}


async def test_fresh_view_ids_from_one_address_are_refused_and_rows_stay_bounded(
    node: Golive, api: httpx.AsyncClient
) -> None:
    stream = await create_stream(api)
    pid = stream["playback_ids"][0]["id"]
    bound = int(QoeLimits().new_view_burst_per_address)
    async with client_at(node, "192.0.2.66") as flood:
        answers = [await flood.post(f"/qoe/{pid}", json=batch(f"flood{i:020d}"))
                   for i in range(FLOOD)]
    codes = [a.status_code for a in answers]
    assert set(codes) == {204, 429}
    admitted = codes.count(204)
    # The burst, plus at most what refilled while the flood ran (one view per 6 s).
    assert bound <= admitted < bound + 5
    assert codes[:bound] == [204] * bound
    refused = answers[codes.index(429)]
    assert int(refused.headers["retry-after"]) >= 1
    assert "too many" in refused.json()["error"]

    assert node.store is not None
    views = await PlaybackViewStore(node.store.engine).list_views(stream["id"], limit=1000)
    assert len(views) == admitted

    # Another address still gets in, and the watch page counts two viewers, not eleven.
    async with client_at(node, "198.51.100.7") as viewer:
        ok = await viewer.post(f"/qoe/{pid}", json=batch("viewer" + "x" * 20))
        assert ok.status_code == 204, ok.text
        status = await viewer.get(f"/watch/{pid}/status")
    assert status.json()["viewers"] == 2


async def test_a_beacon_behind_a_queue_of_writers_is_answered_503_and_lands_when_sent_again(
    node: Golive, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = await create_stream(api)
    pid = stream["playback_ids"][0]["id"]
    assert node.store is not None
    monkeypatch.setattr(db, "WRITE_QUEUE_TIMEOUT", 0.3)
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with db.WriterSessions(node.store.engine).begin() as session:  # type: ignore[union-attr]
            await session.execute(text("SELECT 1"))
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    async with client_at(node, "192.0.2.80") as viewer:
        busy = await viewer.post(f"/qoe/{pid}", json=batch("queued" + "q" * 20))
        assert busy.status_code == 503, busy.text
        assert int(busy.headers["retry-after"]) >= 1
        assert "busy" in busy.json()["error"]
        release.set()
        await holder
        again = await viewer.post(f"/qoe/{pid}", json=batch("queued" + "q" * 20))
        assert again.status_code == 204, again.text
    views = await PlaybackViewStore(node.store.engine).list_views(stream["id"])
    assert [v.id for v in views] == ["queued" + "q" * 20]
