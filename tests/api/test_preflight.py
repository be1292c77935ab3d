"""Preflight sessions over the API, without a publisher: who may open one and when, bounds,
and a session nobody publishes to expiring. (Publishing to one: tests/e2e/test_preflight.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import NoBroadcasts
from tests.e2e.conftest import eventually
from tests.mediatools import FFMPEG

from golive.api import AuditTrail, preflight_router
from golive.api.app import create_api_app
from golive.api.auth import Authenticator
from golive.core import EventBus
from golive.ops import PreflightDesk, ProfileCatalog
from golive.settings import Settings
from golive.store import Store
from golive.stream import PublishRefused

ADMIN = "test-admin-token"


@pytest.fixture
async def api(tmp_path: Path, request: pytest.FixtureRequest,
              ) -> AsyncIterator[tuple[httpx.AsyncClient, Store, PreflightDesk]]:
    """The API with a preflight desk whose sessions wait `request.param` seconds (default:
    long enough that no test step outlives it, however slow the machine)."""
    wait = getattr(request, "param", 600.0)
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN)
    store = await Store.open(settings.resolved_database_url)
    auth = Authenticator(settings, store)
    catalog = ProfileCatalog(store, settings.resolved_profiles_dir)
    app = create_api_app(settings=settings, store=store, bus=EventBus(),
                         broadcasts=NoBroadcasts(), auth=auth, catalog=catalog)
    desk = PreflightDesk(store, catalog, FFMPEG, wait_seconds=wait)
    app.include_router(preflight_router(auth, store, desk, AuditTrail(store)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test",
        headers={"Authorization": f"Bearer {ADMIN}"},
    ) as client:
        yield client, store, desk
    await desk.close()
    await store.close()


async def test_sessions_open_only_on_an_idle_stream(
    api: tuple[httpx.AsyncClient, Store, PreflightDesk],
) -> None:
    client, store, _ = api
    assert (await client.post("/live-streams/ls_nope/preflight")).status_code == 404
    sid = (await client.post("/live-streams", json={"name": "a"})).json()["data"]["id"]
    for duration in (1, 121, "x"):
        r = await client.post(f"/live-streams/{sid}/preflight", json={"duration": duration})
        assert r.status_code == 422, r.text
    r = await client.post(f"/live-streams/{sid}/preflight")
    assert r.status_code == 201, r.text
    session = r.json()["data"]
    assert (session["status"], session["duration"], session["profile"]) == (
        "waiting", 10.0, "default@1")
    r = await client.post(f"/live-streams/{sid}/preflight")
    assert r.status_code == 409 and "already has a preflight waiting" in r.text
    [entry] = await store.list_audit(action="live_stream.preflight")
    assert entry.details["preflight_id"] == session["id"]

    other = (await client.post("/live-streams", json={"name": "b"})).json()["data"]["id"]
    assert (await client.get(f"/live-streams/{other}/preflights/{session['id']}")
            ).status_code == 404
    await store.start_broadcast(sid, "bc_1", "rtmp", "127.0.0.1", datetime.now(UTC))
    r = await client.post(f"/live-streams/{sid}/preflight")
    assert r.status_code == 409 and "is live" in r.text
    await client.put(f"/live-streams/{other}/disable")
    r = await client.post(f"/live-streams/{other}/preflight")
    assert r.status_code == 409 and "disabled" in r.text
    listed = (await client.get(f"/live-streams/{sid}/preflights")).json()["data"]
    assert [p["id"] for p in listed] == [session["id"]]


@pytest.mark.parametrize("api", [0.3], indirect=True)
async def test_a_session_nobody_publishes_to_expires_and_frees_the_stream(
    api: tuple[httpx.AsyncClient, Store, PreflightDesk],
) -> None:
    client, _, _ = api
    sid = (await client.post("/live-streams", json={"name": "a"})).json()["data"]["id"]
    session = (await client.post(f"/live-streams/{sid}/preflight")).json()["data"]
    url = f"/live-streams/{sid}/preflights/{session['id']}"

    async def expired_session() -> dict[str, Any] | None:
        data: dict[str, Any] = (await client.get(url)).json()["data"]
        return data if data["status"] == "expired" else None

    expired = await eventually(expired_session, timeout=30, what="the desk's 0.3 s wait")
    assert "nobody published within 0.3 s" in expired["error"]
    assert expired["verdict"] is None and expired["finished_at"] is not None
    again = await client.post(f"/live-streams/{sid}/preflight")
    assert again.status_code == 201, again.text
    assert again.json()["data"]["id"] != session["id"]


async def test_sessions_a_stopped_node_left_are_failed(
    api: tuple[httpx.AsyncClient, Store, PreflightDesk],
) -> None:
    client, store, _ = api
    sid = (await client.post("/live-streams", json={"name": "a"})).json()["data"]["id"]
    session = (await client.post(f"/live-streams/{sid}/preflight")).json()["data"]
    desk = PreflightDesk(store, ProfileCatalog(store, Path("/nonexistent")), FFMPEG)
    assert await desk.recover() == 1
    left = (await client.get(f"/live-streams/{sid}/preflights/{session['id']}")).json()["data"]
    assert (left["status"], left["error"]) == ("failed", "the node restarted")


async def test_a_stream_disabled_while_waiting_cannot_publish_to_its_preflight(
    api: tuple[httpx.AsyncClient, Store, PreflightDesk],
) -> None:
    client, _, desk = api
    created = (await client.post("/live-streams", json={"name": "a"})).json()["data"]
    sid, key = created["id"], created["stream_key"]
    session = (await client.post(f"/live-streams/{sid}/preflight")).json()["data"]
    assert await desk.claim("sk_not_this_one") is None
    await client.put(f"/live-streams/{sid}/disable")
    with pytest.raises(PublishRefused, match="disabled"):
        await desk.claim(key)
    left = (await client.get(f"/live-streams/{sid}/preflights/{session['id']}")).json()["data"]
    assert left["status"] == "failed"
