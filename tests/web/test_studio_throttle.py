"""Studio logins with wrong tokens share the API's per-address throttle (web/studio.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from tests.api.conftest import Clock, NoBroadcasts

from golive.api.app import create_api_app
from golive.api.auth import Authenticator
from golive.core import FailureThrottle
from golive.core.events import EventBus
from golive.settings import Settings
from golive.store import Store
from golive.web import AssetCatalog, Studio, studio_routes

ADMIN = "test-admin-token-of-some-length"
SECRET = b"0123456789abcdef0123456789abcdef"
GUESSER = ("198.51.100.7", 40000)
OPERATOR = ("203.0.113.9", 40001)


@dataclass
class Site:
    app: Starlette
    api: Any
    clock: Clock

    def client(self, address: tuple[str, int]) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app, client=address),
                                 base_url="http://studio.test")


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN)
    store = await Store.open(settings.resolved_database_url)
    clock = Clock()
    # One authenticator for the API and the studio, as the composition root builds it.
    auth = Authenticator(settings, store, throttle=FailureThrottle(burst=5, rate=0.5),
                         clock=clock)
    api = create_api_app(settings=settings, store=store, bus=EventBus(),
                         broadcasts=NoBroadcasts(), auth=auth)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://api.internal/") as forward:
        studio = Studio(auth=auth, api=forward, secret=SECRET, assets=AssetCatalog())
        yield Site(Starlette(routes=studio_routes(studio)), api, clock)
    await store.close()


async def _login(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/studio/login", data={"token": token})


async def test_a_login_flood_is_answered_429_and_other_addresses_still_sign_in(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="golive.api.auth")
    async with site.client(GUESSER) as guesser, site.client(OPERATOR) as operator:
        wrong = [await _login(guesser, f"guess-{n}") for n in range(5)]
        assert [r.status_code for r in wrong] == [401] * 5

        flood = [await _login(guesser, f"guess-{n}") for n in range(100)]
        assert {r.status_code for r in flood} == {429}
        assert "try again in" in flood[0].text
        assert int(flood[0].headers["retry-after"]) >= 1
        assert "set-cookie" not in flood[0].headers
        # The right token from the guessing address waits too; from elsewhere it signs in.
        assert (await _login(guesser, ADMIN)).status_code == 429
        ok = await _login(operator, ADMIN)
        assert ok.status_code == 303 and ok.headers["location"] == "/studio"

        lines = [r for r in caplog.records if "token check throttled" in r.getMessage()]
        assert len(lines) == 1 and "surface=studio" in lines[0].getMessage()

        site.clock.now += int(flood[0].headers["retry-after"])
        assert (await _login(guesser, ADMIN)).status_code == 303


async def test_the_api_and_the_studio_share_one_budget_per_address(site: Site) -> None:
    async with site.client(GUESSER) as guesser, httpx.AsyncClient(
        transport=httpx.ASGITransport(app=site.api, client=GUESSER), base_url="http://test",
        headers={"Authorization": "Bearer guess"},
    ) as api:
        for _ in range(5):
            assert (await api.get("/live-streams")).status_code == 401
        assert (await _login(guesser, "another-guess")).status_code == 429
