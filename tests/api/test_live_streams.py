"""The REST API against a real Store (SQLite in tmp_path), a real EventBus, a fake hub."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from golive.api.app import create_api_app
from golive.api.auth import Authenticator
from golive.core.events import Event, EventBus, EventType, Subscription
from golive.settings import Settings
from golive.store import Store

ADMIN = "test-admin-token"


@dataclass
class FakeBroadcasts:
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)

    def ingest_facts(self, stream_id: str) -> dict[str, Any] | None:
        return self.facts.get(stream_id)

    async def stream_changed(self, stream_id: str) -> None:
        self.changed.append(stream_id)


@dataclass
class Api:
    client: httpx.AsyncClient
    store: Store
    bus: EventBus
    events: Subscription
    broadcasts: FakeBroadcasts

    def drain(self) -> list[Event]:
        out = []
        while (event := self.events.get_nowait()) is not None:
            out.append(event)
        return out

    async def create(self, **body: Any) -> dict[str, Any]:
        body.setdefault("name", "show")
        r = await self.client.post("/live-streams", json=body)
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()["data"]
        return data


@contextlib.asynccontextmanager
async def open_api(tmp_path: Path, **overrides: Any) -> AsyncIterator[Api]:
    """The API app on a fresh store, with `overrides` on the test settings."""
    settings = Settings(**{
        "data_dir": tmp_path,
        "public_host": "live.example.com",
        "admin_token": ADMIN,
        "rtmp_port": 1935,
        "srt_port": 9000,
        "default_reconnect_window": 30.0,
        **overrides,
    })
    store = await Store.open(settings.resolved_database_url)
    bus = EventBus()
    broadcasts = FakeBroadcasts()
    app = create_api_app(settings=settings, store=store, bus=bus, broadcasts=broadcasts,
                         auth=Authenticator(settings, store))
    events = bus.subscribe()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {ADMIN}"},
    ) as client:
        try:
            yield Api(client, store, bus, events, broadcasts)
        finally:
            events.close()
            await store.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with open_api(tmp_path) as opened:
        yield opened


def error_of(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["type"], str)
    assert body["error"]["messages"] and all(isinstance(m, str) for m in body["error"]["messages"])
    error: dict[str, Any] = body["error"]
    return error


async def test_create_shows_key_once_and_get_hides_it(api: Api) -> None:
    created = await api.create(name="Launch party", latency_mode="standard", recording=True)
    key = created["stream_key"]
    assert key and created["stream_key_prefix"] and key.startswith(created["stream_key_prefix"])
    # The backup key is made with the stream key and shown with it this once.
    backup = created["backup_stream_key"]
    assert backup and backup != key and backup.startswith(created["backup_stream_key_prefix"])
    assert created["status"] == "idle"
    assert created["latency_mode"] == "standard"
    assert created["recording"] is True
    assert created["reconnect_window"] == 30.0  # the server default
    assert created["created_at"] and created["updated_at"]
    assert [p["policy"] for p in created["playback_ids"]] == ["public"]
    assert set(created["playback_ids"][0]) == {"id", "policy"}
    ingest = created["ingest"]
    assert ingest["rtmp"] == "rtmp://live.example.com:1935/live"
    assert ingest["rtmp_url"] == f"rtmp://live.example.com:1935/live/{key}"
    assert ingest["srt"] == f"srt://live.example.com:9000?streamid={key}"
    assert ingest["rtmps"] is None

    r = await api.client.get(f"/live-streams/{created['id']}")
    assert r.status_code == 200
    shown = r.json()["data"]
    assert "stream_key" not in shown and "backup_stream_key" not in shown
    assert key not in r.text and backup not in r.text
    assert shown["stream_key_prefix"] == created["stream_key_prefix"]
    assert shown["backup_stream_key_prefix"] == created["backup_stream_key_prefix"]
    # Both publish to this stream; the store keeps only their hashes.
    for plain in (key, backup):
        found = await api.store.find_stream_by_key(plain)
        assert found is not None and found.id == created["id"]
    assert shown["ingest"]["rtmp_url"] is None
    assert shown["live"] is None

    api.broadcasts.facts[created["id"]] = {"connected": True, "bitrate": 1000}
    r = await api.client.get(f"/live-streams/{created['id']}")
    assert r.json()["data"]["live"] == {"connected": True, "bitrate": 1000}

    r = await api.client.get("/live-streams")
    assert key not in r.text


async def test_list_and_pagination(api: Api) -> None:
    ids = [(await api.create(name=f"s{i}"))["id"] for i in range(5)]
    r = await api.client.get("/live-streams")
    assert r.status_code == 200
    assert [s["id"] for s in r.json()["data"]] == ids

    page1 = (await api.client.get("/live-streams", params={"limit": 2})).json()["data"]
    page2 = (
        await api.client.get("/live-streams", params={"limit": 2, "after": page1[-1]["id"]})
    ).json()["data"]
    page3 = (
        await api.client.get("/live-streams", params={"limit": 2, "after": page2[-1]["id"]})
    ).json()["data"]
    assert [s["id"] for s in page1 + page2 + page3] == ids
    assert len(page3) == 1

    r = await api.client.get("/live-streams", params={"limit": 0})
    assert r.status_code == 422
    assert any(m.startswith("limit:") for m in error_of(r)["messages"])


async def test_patch(api: Api) -> None:
    created = await api.create(name="old")
    api.drain()
    r = await api.client.patch(
        f"/live-streams/{created['id']}",
        json={"name": "new", "reconnect_window": 120, "latency_mode": "standard"},
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert (data["name"], data["reconnect_window"], data["latency_mode"]) == (
        "new",
        120.0,
        "standard",
    )
    assert "stream_key" not in data
    got = (await api.client.get(f"/live-streams/{created['id']}")).json()["data"]
    assert got["name"] == "new"
    [event] = api.drain()
    assert event.type is EventType.LIVE_STREAM_UPDATED
    assert event.data["changes"]["name"] == "new"

    r = await api.client.patch(f"/live-streams/{created['id']}", json={"name": None})
    assert r.status_code == 422
    assert error_of(r)["messages"] == ["name: may not be null"]

    r = await api.client.patch(f"/live-streams/{created['id']}", json={"status": "active"})
    assert r.status_code == 422
    assert "status" in error_of(r)["messages"][0]


async def test_webrtc_playback_per_stream(api: Api) -> None:
    """Off by default (the node's default); set on create, changed by PATCH, shown in GET."""
    plain = await api.create(name="plain")
    realtime = await api.create(name="realtime", webrtc_playback=True)
    assert plain["webrtc_playback"] is False
    assert realtime["webrtc_playback"] is True
    got = (await api.client.get(f"/live-streams/{realtime['id']}")).json()["data"]
    assert got["webrtc_playback"] is True
    listed = {s["id"]: s["webrtc_playback"]
              for s in (await api.client.get("/live-streams")).json()["data"]}
    assert listed == {plain["id"]: False, realtime["id"]: True}
    api.drain()

    r = await api.client.patch(f"/live-streams/{plain['id']}", json={"webrtc_playback": True})
    assert r.status_code == 200 and r.json()["data"]["webrtc_playback"] is True
    [event] = api.drain()
    assert event.data["changes"] == {"webrtc_playback": True}
    r = await api.client.patch(f"/live-streams/{realtime['id']}", json={"webrtc_playback": False})
    assert r.status_code == 200 and r.json()["data"]["webrtc_playback"] is False

    for bad in ("yes", 1, None):
        r = await api.client.patch(f"/live-streams/{plain['id']}", json={"webrtc_playback": bad})
        assert r.status_code == 422, bad
        assert error_of(r)["messages"][0].startswith("webrtc_playback:")
    r = await api.client.post("/live-streams", json={"name": "x", "webrtc_playback": "on"})
    assert r.status_code == 422
    assert error_of(r)["messages"][0].startswith("webrtc_playback:")
    schema = (await api.client.get("/openapi.json")).json()["components"]["schemas"]
    assert "webrtc_playback" in schema["LiveStream"]["properties"]


async def test_dvr_window_per_stream_needs_recording(api: Api) -> None:
    """Off by default; set on create, changed by PATCH, shown in GET; only with recording."""
    plain = await api.create(name="plain")
    assert plain["dvr_window"] == 0
    dvr = await api.create(name="dvr", recording=True, dvr_window=600)
    assert dvr["dvr_window"] == 600
    got = (await api.client.get(f"/live-streams/{dvr['id']}")).json()["data"]
    assert got["dvr_window"] == 600

    r = await api.client.post("/live-streams", json={"name": "x", "dvr_window": 60})
    assert r.status_code == 422 and "dvr_window needs recording" in error_of(r)["messages"][0]
    r = await api.client.patch(f"/live-streams/{plain['id']}", json={"dvr_window": 60})
    assert r.status_code == 422 and "needs recording" in error_of(r)["messages"][0]
    # A refused change changes nothing; both together are fine.
    assert (await api.client.get(f"/live-streams/{plain['id']}")).json()["data"]["dvr_window"] == 0
    r = await api.client.patch(f"/live-streams/{plain['id']}",
                               json={"dvr_window": 21600, "recording": True})
    assert r.status_code == 200 and r.json()["data"]["dvr_window"] == 21600
    r = await api.client.patch(f"/live-streams/{dvr['id']}", json={"recording": False})
    assert r.status_code == 422  # turning recording off would leave the window unserved
    r = await api.client.patch(f"/live-streams/{dvr['id']}",
                               json={"recording": False, "dvr_window": 0})
    assert r.status_code == 200 and r.json()["data"]["dvr_window"] == 0

    for bad in (-1, 21601, "60", 1.5, True, None):
        r = await api.client.patch(f"/live-streams/{plain['id']}", json={"dvr_window": bad})
        assert r.status_code == 422, bad
        assert error_of(r)["messages"][0].startswith("dvr_window:"), bad


async def test_webrtc_playback_setting_is_the_default_for_new_streams(tmp_path: Path) -> None:
    async with open_api(tmp_path, webrtc_playback=True) as api:
        assert (await api.create(name="default"))["webrtc_playback"] is True
        assert (await api.create(name="off", webrtc_playback=False))["webrtc_playback"] is False


async def test_validation_messages_name_the_field(api: Api) -> None:
    r = await api.client.post("/live-streams", json={"name": ""})
    assert r.status_code == 422
    err = error_of(r)
    assert err["type"] == "invalid_parameters"
    assert err["messages"][0].startswith("name:")

    r = await api.client.post("/live-streams", json={})
    assert error_of(r)["messages"] == ["name: field required"]

    r = await api.client.post("/live-streams", json={"name": "x" * 201})
    assert r.status_code == 422 and error_of(r)["messages"][0].startswith("name:")

    r = await api.client.post("/live-streams", json={"name": "a", "reconnect_window": 1801})
    assert r.status_code == 422
    assert error_of(r)["messages"][0].startswith("reconnect_window:")

    r = await api.client.post("/live-streams", json={"name": "a", "latency_mode": "ultra"})
    assert error_of(r)["messages"][0].startswith("latency_mode:")

    r = await api.client.post("/live-streams", json={"name": "a", "colour": "red"})
    assert r.status_code == 422
    assert error_of(r)["messages"] == ["colour: unknown field"]

    r = await api.client.post(
        "/live-streams", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert error_of(r)["messages"][0].startswith("body:")

    assert (await api.client.get("/live-streams")).json()["data"] == []


async def test_body_over_64k_is_413(api: Api) -> None:
    r = await api.client.post("/live-streams", json={"name": "a", "profile": "x" * 70_000})
    assert r.status_code == 413
    assert error_of(r)["type"] == "payload_too_large"


async def test_auth(api: Api) -> None:
    r = await api.client.get("/live-streams", headers={"Authorization": ""})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert error_of(r)["type"] == "unauthorized"

    r = await api.client.get("/live-streams", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"

    r = await api.client.get("/live-streams", headers={"Authorization": f"Basic {ADMIN}"})
    assert r.status_code == 401

    # A store token with the streams:read scope reads but cannot write.
    r = await api.client.post("/tokens", json={"name": "dashboard", "scopes": ["streams:read"]})
    assert r.status_code == 201, r.text
    read = r.json()["data"]
    assert read["scopes"] == ["streams:read"] and read["token"].startswith(read["token_prefix"])
    as_reader = {"Authorization": f"Bearer {read['token']}"}
    assert (await api.client.get("/live-streams", headers=as_reader)).status_code == 200
    r = await api.client.post("/live-streams", json={"name": "x"}, headers=as_reader)
    assert r.status_code == 403
    assert error_of(r)["type"] == "forbidden"
    assert (await api.client.get("/tokens", headers=as_reader)).status_code == 403

    # A store token with admin scope writes; once revoked it is refused.
    admin = (await api.client.post("/tokens", json={"name": "ci"})).json()["data"]
    as_admin = {"Authorization": f"Bearer {admin['token']}"}
    r = await api.client.post("/live-streams", json={"name": "x"}, headers=as_admin)
    assert r.status_code == 201
    listed = (await api.client.get("/tokens")).json()["data"]
    assert {t["id"] for t in listed} == {read["id"], admin["id"]}
    assert all("token" not in t for t in listed)
    assert admin["token"] not in (await api.client.get("/tokens")).text
    assert (await api.client.delete(f"/tokens/{admin['id']}")).status_code == 204
    r = await api.client.get("/live-streams", headers=as_admin)
    assert r.status_code == 401
    assert (await api.client.delete("/tokens/nope")).status_code == 404
    r = await api.client.post("/tokens", json={"name": "x", "scopes": ["root"]})
    assert error_of(r)["messages"][0].startswith("scopes[0]:")


async def test_not_found(api: Api) -> None:
    for method, path in [
        ("GET", "/live-streams/nope"),
        ("PATCH", "/live-streams/nope"),
        ("DELETE", "/live-streams/nope"),
        ("POST", "/live-streams/nope/reset-stream-key"),
        ("POST", "/live-streams/nope/reset-backup-stream-key"),
        ("PUT", "/live-streams/nope/enable"),
        ("PUT", "/live-streams/nope/disable"),
        ("POST", "/live-streams/nope/playback-ids"),
        ("DELETE", "/live-streams/nope/playback-ids/p"),
        ("GET", "/live-streams/nope/events"),
        ("GET", "/no-such-thing"),
    ]:
        body = {"name": "x"} if method == "PATCH" else None
        r = await api.client.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert error_of(r)["type"] == "not_found"
    r = await api.client.get("/live-streams/nope")
    assert "nope" in error_of(r)["messages"][0]


async def test_reset_stream_key(api: Api) -> None:
    created = await api.create()
    api.drain()
    r = await api.client.post(f"/live-streams/{created['id']}/reset-stream-key")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["stream_key"] and data["stream_key"] != created["stream_key"]
    assert data["ingest"]["rtmp_url"].endswith("/" + data["stream_key"])
    # The backup key is replaced with it: both new keys are shown this once.
    assert data["backup_stream_key"] not in (created["backup_stream_key"], data["stream_key"])
    assert data["backup_stream_key"].startswith(data["backup_stream_key_prefix"])
    assert api.broadcasts.changed == [created["id"]]
    [event] = api.drain()
    assert event.type is EventType.LIVE_STREAM_UPDATED
    assert event.data["changes"] == {"stream_key": "reset", "backup_stream_key": "reset"}
    for plain in (created["stream_key"], created["backup_stream_key"],
                  data["stream_key"], data["backup_stream_key"]):
        assert plain not in str(event.data)
    for old in (created["stream_key"], created["backup_stream_key"]):
        assert await api.store.find_stream_by_key(old) is None
    for new in (data["stream_key"], data["backup_stream_key"]):
        found = await api.store.find_stream_by_key(new)
        assert found is not None and found.id == created["id"]


async def test_backup_stream_key_made_and_replaced(api: Api) -> None:
    # A stream made before backup keys existed (straight in the store) has none until
    # reset-backup-stream-key (or reset-stream-key) makes one.
    record, key = await api.store.create_stream(name="Older stream")
    assert record.backup_stream_key_prefix is None
    created = {"id": record.id, "stream_key": key,
               "stream_key_prefix": record.stream_key_prefix}
    api.drain()
    path = f"/live-streams/{created['id']}/reset-backup-stream-key"
    r = await api.client.post(path)
    assert r.status_code == 200, r.text
    first = r.json()["data"]
    backup = first["backup_stream_key"]
    assert backup and backup != created["stream_key"]
    assert backup.startswith(first["backup_stream_key_prefix"])
    assert first["stream_key_prefix"] == created["stream_key_prefix"]
    assert "stream_key" not in first
    assert api.broadcasts.changed == [created["id"]]
    [event] = api.drain()
    assert event.type is EventType.LIVE_STREAM_UPDATED
    assert event.data["changes"] == {"backup_stream_key": "reset"}
    assert backup not in str(event.data)
    # Shown afterwards by its prefix only; a second reset replaces it.
    shown = (await api.client.get(f"/live-streams/{created['id']}")).json()["data"]
    assert shown["backup_stream_key_prefix"] == first["backup_stream_key_prefix"]
    assert "backup_stream_key" not in shown
    r = await api.client.post(path)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["backup_stream_key"] != backup
    found = await api.store.find_stream_by_key(r.json()["data"]["backup_stream_key"])
    assert found is not None and found.id == created["id"]
    assert await api.store.find_stream_by_key(backup) is None


async def test_disable_enable_call_stream_changed(api: Api) -> None:
    sid = (await api.create())["id"]
    api.drain()
    r = await api.client.put(f"/live-streams/{sid}/disable")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "disabled"
    assert api.broadcasts.changed == [sid]
    # POST is accepted too.
    r = await api.client.post(f"/live-streams/{sid}/enable")
    assert r.status_code == 200
    assert r.json()["data"]["status"] == "idle"
    assert api.broadcasts.changed == [sid, sid]
    assert [e.type for e in api.drain()] == [
        EventType.LIVE_STREAM_DISABLED,
        EventType.LIVE_STREAM_ENABLED,
    ]
    # Enabling an enabled stream changes nothing and announces nothing.
    assert (await api.client.put(f"/live-streams/{sid}/enable")).status_code == 200
    assert api.drain() == []


async def test_delete(api: Api) -> None:
    sid = (await api.create())["id"]
    api.drain()
    r = await api.client.delete(f"/live-streams/{sid}")
    assert r.status_code == 204
    assert r.content == b""
    assert api.broadcasts.changed == [sid]
    assert (await api.client.get(f"/live-streams/{sid}")).status_code == 404
    [event] = api.drain()
    assert (event.type, event.stream_id) == (EventType.LIVE_STREAM_DELETED, sid)


async def test_playback_ids(api: Api) -> None:
    created = await api.create()
    sid = created["id"]
    r = await api.client.post(f"/live-streams/{sid}/playback-ids", json={"policy": "signed"})
    assert r.status_code == 201, r.text
    pid = r.json()["data"]
    assert pid["policy"] == "signed"
    got = (await api.client.get(f"/live-streams/{sid}")).json()["data"]
    assert [p["id"] for p in got["playback_ids"]] == [created["playback_ids"][0]["id"], pid["id"]]
    r = await api.client.post(f"/live-streams/{sid}/playback-ids", json={"policy": "secret"})
    assert r.status_code == 422
    assert (
        await api.client.delete(f"/live-streams/{sid}/playback-ids/{pid['id']}")
    ).status_code == 204
    assert (
        await api.client.delete(f"/live-streams/{sid}/playback-ids/{pid['id']}")
    ).status_code == 404


async def test_events_published_on_the_bus_and_listed(api: Api) -> None:
    created = await api.create(name="evented")
    [event] = api.drain()
    assert event.type is EventType.LIVE_STREAM_CREATED
    assert event.stream_id == created["id"]
    assert event.data["name"] == "evented"
    assert created["stream_key"] not in str(event.data)

    # The API does not write events itself (the recorder does); store some to list.
    for i in range(3):
        await api.store.record_event(
            Event(type=EventType.LIVE_STREAM_WARNING, stream_id=created["id"], data={"n": i})
        )
    r = await api.client.get(f"/live-streams/{created['id']}/events")
    assert r.status_code == 200, r.text
    listed = r.json()["data"]
    assert [e["data"]["n"] for e in listed] == [2, 1, 0]
    assert listed[0]["type"] == "live_stream.warning"
    r = await api.client.get(
        f"/live-streams/{created['id']}/events", params={"limit": 1, "before": listed[0]["id"]}
    )
    assert [e["data"]["n"] for e in r.json()["data"]] == [1]


async def test_openapi_and_docs_served(api: Api) -> None:
    r = await api.client.get("/openapi.json", headers={"Authorization": ""})
    assert r.status_code == 200
    spec = r.json()
    assert "/live-streams" in spec["paths"]
    assert "/live-streams/{stream_id}/reset-stream-key" in spec["paths"]
    assert "/tokens" in spec["paths"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    r = await api.client.get("/docs", headers={"Authorization": ""})
    assert r.status_code == 200 and "openapi.json" in r.text


async def test_mounted_under_api_v1(tmp_path: Path) -> None:
    from fastapi import FastAPI

    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN)
    try:
        root = FastAPI()
        root.mount(
            "/api/v1",
            create_api_app(
                settings=settings,
                store=store,
                bus=EventBus(),
                broadcasts=FakeBroadcasts(),
                auth=Authenticator(settings, store),
            ),
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=root), base_url="http://localhost"
        ) as client:
            r = await client.get("/api/v1/openapi.json")
            assert r.status_code == 200 and "/live-streams" in r.json()["paths"]
            r = await client.get("/api/v1/docs")
            assert "/api/v1/openapi.json" in r.text
            r = await client.post(
                "/api/v1/live-streams",
                json={"name": "m"},
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
            assert r.status_code == 201
            # Without public_host the URLs use the host the request came in on.
            assert r.json()["data"]["ingest"]["rtmp"] == "rtmp://localhost:1935/live"
    finally:
        await store.close()
