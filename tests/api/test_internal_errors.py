"""Errors nobody handled (a full disk, a bug) still answer the API's JSON error shape."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.api.conftest import NoBroadcasts
from tests.store.faults import DiskFull

from golive.api.app import create_api_app
from golive.api.auth import Authenticator
from golive.core.events import EventBus
from golive.settings import Settings
from golive.store import Store

ADMIN = "test-admin-token"


@pytest.fixture
async def client(tmp_path: Path, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN)
    app = create_api_app(settings=settings, store=store, bus=EventBus(),
                         broadcasts=NoBroadcasts(), auth=Authenticator(settings, store))
    # raise_app_exceptions stays on: an exception that escaped the app fails the test.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test",
        headers={"Authorization": f"Bearer {ADMIN}"},
    ) as c:
        yield c


async def test_a_full_disk_answers_json_500_without_internals(
    store: Store, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    created = await client.post("/live-streams", json={"name": "before"})
    assert created.status_code == 201
    disk = DiskFull(store.engine)
    disk.full = True
    with caplog.at_level(logging.ERROR, logger="golive.api.errors"):
        r = await client.post("/live-streams", json={"name": "during"})
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": {"type": "internal", "messages": [
        "internal error; the server logged the details"]}}
    for secret in ("sqlite", "INSERT", "disk", "Traceback", "live_streams"):
        assert secret not in r.text
    # Logged once, on the server, with the cause.
    [logged] = [rec for rec in caplog.records if rec.name == "golive.api.errors"]
    assert logged.exc_info is not None
    # SQLite's "database or disk is full", PostgreSQL's "No space left on device".
    assert any(cause in str(logged.exc_info[1]) for cause in ("disk is full", "No space left"))
    assert "path=/live-streams" in logged.getMessage()

    # Reads still work while the disk is full, and writes again once it is not.
    listed = await client.get("/live-streams")
    assert listed.status_code == 200 and len(listed.json()["data"]) == 1
    disk.full = False
    assert (await client.post("/live-streams", json={"name": "after"})).status_code == 201
