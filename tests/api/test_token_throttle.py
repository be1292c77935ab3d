"""Wrong API tokens are throttled per source address before any lookup (api/auth.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import Clock, NoBroadcasts

from golive.api.app import create_api_app
from golive.api.auth import Authenticator
from golive.core import FailureThrottle
from golive.core.events import EventBus
from golive.settings import Settings
from golive.store import Store

ADMIN = "test-admin-token-of-some-length"
GUESSER = ("198.51.100.7", 40000)
OPERATOR = ("203.0.113.9", 40001)


@dataclass
class Node:
    app: Any
    store: Store
    clock: Clock
    lookups: list[str]

    def client(self, address: tuple[str, int], token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app, client=address),
                                 base_url="http://test",
                                 headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
async def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN)
    store = await Store.open(settings.resolved_database_url)
    lookups: list[str] = []
    original = store.authenticate_token

    async def counted(token: str) -> Any:
        lookups.append(token)
        return await original(token)

    monkeypatch.setattr(store, "authenticate_token", counted)
    clock = Clock()
    auth = Authenticator(settings, store, throttle=FailureThrottle(burst=5, rate=0.5),
                         clock=clock)
    app = create_api_app(settings=settings, store=store, bus=EventBus(),
                         broadcasts=NoBroadcasts(), auth=auth)
    yield Node(app, store, clock, lookups)
    await store.close()


async def test_guessing_tokens_is_answered_429_before_any_lookup(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="golive.api.auth")
    async with node.client(GUESSER, "guess") as guesser, \
            node.client(OPERATOR, ADMIN) as operator:
        statuses = [(await guesser.get("/live-streams")).status_code for _ in range(5)]
        assert statuses == [401] * 5
        assert len(node.lookups) == 5

        refused = [await guesser.get("/live-streams") for _ in range(50)]
        assert {r.status_code for r in refused} == {429}
        assert len(node.lookups) == 5  # no token was looked up while throttled
        body = refused[0].json()
        assert body["error"]["type"] == "too_many_requests"
        assert "retry in" in body["error"]["messages"][0]
        assert int(refused[0].headers["retry-after"]) >= 1

        # Even the right token waits out the throttle from a guessing address ...
        guesser.headers["Authorization"] = f"Bearer {ADMIN}"
        assert (await guesser.get("/live-streams")).status_code == 429
        # ... while it works from any other address.
        assert (await operator.get("/live-streams")).status_code == 200

        # One log line for the whole flood, not one per refusal.
        lines = [r for r in caplog.records if "token check throttled" in r.getMessage()]
        assert len(lines) == 1 and "198.51.100.7" in lines[0].getMessage()
        assert "guess" not in caplog.text and ADMIN not in caplog.text

        # The bucket refills: after its Retry-After the address may try again.
        node.clock.now += int(refused[0].headers["retry-after"])
        assert (await guesser.get("/live-streams")).status_code == 200


async def test_right_tokens_and_missing_tokens_spend_nothing(node: Node) -> None:
    async with node.client(OPERATOR, ADMIN) as operator:
        for _ in range(20):
            assert (await operator.get("/live-streams")).status_code == 200
        del operator.headers["Authorization"]
        for _ in range(20):
            assert (await operator.get("/live-streams")).status_code == 401
        operator.headers["Authorization"] = f"Bearer {ADMIN}"
        assert (await operator.get("/live-streams")).status_code == 200
