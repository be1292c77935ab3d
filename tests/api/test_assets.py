"""The assets API against a real store and local storage: list, get, delete, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.recording.helpers import recorded_asset

from golive.api import AuditTrail, assets_router, create_api_app
from golive.api.auth import Authenticator
from golive.core import EventBus, EventType
from golive.recording import LocalStorage, RecordingLibrary
from golive.settings import Settings
from golive.store import AssetStore, Store

ADMIN = "test-admin-token"


@pytest.fixture
async def client(store: Store, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN)
    bus = EventBus()
    library = RecordingLibrary(AssetStore(store.engine), LocalStorage(tmp_path / "rec"), bus)

    class NoBroadcasts:
        def ingest_facts(self, stream_id: str) -> None:
            return None

        async def stream_changed(self, stream_id: str) -> None:
            return None

    auth = Authenticator(settings, store)
    app = create_api_app(settings=settings, store=store, bus=bus, broadcasts=NoBroadcasts(),
                         auth=auth)
    app.include_router(assets_router(auth, library, AuditTrail(store)))
    app.state.bus_events = bus.subscribe()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        yield c


async def test_list_get_and_delete(client: httpx.AsyncClient, store: Store, tmp_path: Path
                                   ) -> None:
    first = await recorded_asset(store, tmp_path / "rec", count=3)
    second = await recorded_asset(store, tmp_path / "rec", count=2)
    listed = (await client.get("/assets")).json()["data"]
    assert [a["id"] for a in listed] == [first, second]
    page = (await client.get("/assets", params={"limit": 1, "after": first})).json()["data"]
    assert [a["id"] for a in page] == [second]
    got = (await client.get(f"/assets/{first}")).json()["data"]
    assert got["status"] == "ready" and got["duration"] == 3.0
    # Its bandwidth as its segments measure (100 bytes a second), not as planned.
    assert got["renditions"] == [{"name": "360p", "width": 640, "height": 360,
                                  "bandwidth": 800, "codecs": "avc1.42c01e",
                                  "frame_rate": 30.0}]
    assert got["bytes"] == 3 * 100 + len(b"init-bytes")
    assert got["closed_captions"] is False  # the recorder found none in its pictures
    assert got["playback_ids"][0]["policy"] == "public"
    assert got["broadcast_id"].startswith("br_") and got["live_stream_id"].startswith("ls_")

    assert (await client.delete(f"/assets/{first}")).status_code == 204
    assert not (tmp_path / "rec" / first).exists()
    assert (tmp_path / "rec" / second).exists()  # nothing else
    assert (await client.get(f"/assets/{first}")).status_code == 404
    assert (await client.delete(f"/assets/{first}")).status_code == 404
    events = client._transport.app.state.bus_events  # type: ignore[attr-defined]
    deleted = [e for e in iter(events.get_nowait, None) if e.type == EventType.ASSET_DELETED]
    assert [e.data["asset_id"] for e in deleted] == [first]


async def test_bad_requests_get_clear_errors(client: httpx.AsyncClient) -> None:
    response = await client.get("/assets", params={"after": "as_gone"})
    assert response.status_code == 422 and "no such asset" in response.text
    assert (await client.get("/assets", params={"limit": 0})).status_code == 422
    assert (await client.get("/assets/as_nothing")).status_code == 404
    anonymous = await client.get("/assets", headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_a_recording_in_progress_cannot_be_deleted(
    client: httpx.AsyncClient, store: Store
) -> None:
    stream, _ = await store.create_stream(name="live", recording=True)
    assets = AssetStore(store.engine)
    from datetime import UTC, datetime

    await assets.create_asset(asset_id="as_live", stream_id=stream.id, broadcast_id="br_live",
                              playback_id="pbLive", playback_policy="public",
                              created_at=datetime.now(UTC), expires_at=None)
    got = (await client.get("/assets/as_live")).json()["data"]
    assert got["status"] == "preparing"
    response = await client.delete("/assets/as_live")
    assert response.status_code == 409 and "still recording" in response.text


async def test_scopes_and_audit(client: httpx.AsyncClient, store: Store, tmp_path: Path) -> None:
    asset = await recorded_asset(store, tmp_path / "rec", count=1)
    _, streams_only = await store.create_api_token(name="streams", scopes=["streams:read"])
    _, reader = await store.create_api_token(name="assets", scopes=["assets:read"])
    refused = await client.get("/assets", headers={"Authorization": f"Bearer {streams_only}"})
    assert refused.status_code == 403 and "assets:read" in refused.json()["error"]["messages"][0]
    listed = await client.get("/assets", headers={"Authorization": f"Bearer {reader}"})
    assert [a["id"] for a in listed.json()["data"]] == [asset]
    denied = await client.delete(f"/assets/{asset}", headers={"Authorization": f"Bearer {reader}"})
    assert denied.status_code == 403 and "assets:write" in denied.json()["error"]["messages"][0]
    assert (await client.delete(f"/assets/{asset}")).status_code == 204
    entries = await store.list_audit(limit=10)
    assert [(e.action, e.target_id) for e in entries] == [("asset.delete", asset)]
