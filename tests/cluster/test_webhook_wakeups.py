"""Webhooks in a cluster: two golive nodes sharing one database (a SQLite file) and one
real Redis. An event on either node is delivered once, by the node holding the
endpoint's lease, and promptly: the node where it happened wakes the lease holder over
Redis instead of leaving the delivery to its next sweep (every 30 s)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import ADMIN, eventually, node_settings
from tests.redisserver import RedisServer
from tests.webhooks.receiver import Received, Receiver

from golive.app import Golive

pytestmark = pytest.mark.timeout(120)

SETTINGS = {"webhook_allow_private_targets": True, "webhook_retry_first": 0.2,
            "webhook_retry_longest": 2.0, "transcode": False, "cluster_entry_ttl": 1.5}
# Less than the dispatcher's sweep (SWEEP_EVERY, 30 s): a delivery that only the sweep
# would find does not arrive in this time.
WOKEN_WITHIN = 15.0


@contextlib.asynccontextmanager
async def _api(node: Golive) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        yield client


async def test_an_event_on_one_node_is_sent_once_by_the_lease_holder(
        tmp_path: Path, redis: RedisServer) -> None:
    url = f"sqlite+aiosqlite:///{(tmp_path / 'shared.db').resolve()}"
    common = {**SETTINGS, "database_url": url, "redis_url": redis.url,
              "redis_prefix": redis.prefix()}
    with Receiver() as receiver:
        async with Golive(node_settings(tmp_path / "a", **common)) as a, \
                Golive(node_settings(tmp_path / "b", **common)) as b, \
                _api(a) as api_a, _api(b) as api_b:
            for node in (a, b):
                assert node.wakeups is not None
                await asyncio.wait_for(node.wakeups.subscribed.wait(), 20)
            hook = await api_a.post("/webhooks", json={
                "url": f"{receiver.url}/hook", "event_types": ["live_stream.created"]})
            assert hook.status_code == 201, hook.text

            async def delivered(count: int) -> list[Received] | None:
                got = receiver.at("/hook", status=200)
                return got if len(got) >= count else None

            # A's event: A's worker takes the endpoint's lease and sends it.
            first = (await api_a.post("/live-streams", json={"name": "on a"})).json()["data"]
            await eventually(lambda: delivered(1), what="the delivery of A's event")

            # B's event: B cannot take the lease A holds; A hears of it over Redis.
            second = (await api_b.post("/live-streams", json={"name": "on b"})).json()["data"]
            got = await eventually(lambda: delivered(2), timeout=WOKEN_WITHIN,
                                   what="the delivery of B's event, woken over Redis")
            assert a.wakeups is not None and a.wakeups.received >= 1
            bodies = [r.json() for r in got]
            assert sorted(body["data"]["stream_id"] for body in bodies) == sorted(
                [first["id"], second["id"]])
            assert len({body["id"] for body in bodies}) == 2  # two events, each sent once
