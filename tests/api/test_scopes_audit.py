"""API token scopes and expiry, and the audit log, against a real Store (SQLite in tmp_path)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from tests.api.conftest import NoBroadcasts

from golive.api import (
    SCOPES,
    STUDIO_CLIENT_HEADER,
    STUDIO_SCOPE_KEY,
    AuditTrail,
    Authenticator,
    audit_router,
    create_api_app,
    webhooks_router,
)
from golive.core import EventBus, utcnow
from golive.settings import Settings
from golive.store import TOKEN_SCOPES, Store
from golive.store.models import ApiToken

ADMIN = "test-admin-token"
PUBLIC_URL = "http://93.184.215.14/hook"  # a public address; nothing is sent in these tests


@dataclass
class Api:
    app: Any
    client: httpx.AsyncClient
    store: Store
    woken: list[str] = field(default_factory=list)

    async def token(self, *scopes: str, **body: Any) -> tuple[str, str]:
        r = await self.client.post("/tokens", json={"name": "t", "scopes": list(scopes), **body})
        assert r.status_code == 201, r.text
        data = r.json()["data"]
        return data["id"], data["token"]

    def as_token(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN, public_host="live.example.com")
    store = await Store.open(settings.resolved_database_url)
    auth = Authenticator(settings, store)
    app = create_api_app(settings=settings, store=store, bus=EventBus(),
                         broadcasts=NoBroadcasts(), auth=auth)
    woken: list[str] = []

    def wake(ids: Sequence[str]) -> None:
        woken.extend(ids)

    app.include_router(webhooks_router(auth, store, settings, AuditTrail(store), wake))
    app.include_router(audit_router(auth, store))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test",
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        yield Api(app, client, store, woken)
    await store.close()


def reason(r: httpx.Response) -> str:
    message: str = r.json()["error"]["messages"][0]
    return message


def test_the_api_and_the_store_know_the_same_scopes() -> None:
    assert set(SCOPES) == set(TOKEN_SCOPES)


async def test_every_route_needs_its_scope(api: Api) -> None:
    _, reader = await api.token("streams:read")
    _, writer = await api.token("streams:write")
    _, hooks = await api.token("webhooks")
    _, moderator = await api.token("chat:moderate", "assets:read")

    r = await api.client.get("/live-streams", headers=api.as_token(reader))
    assert r.status_code == 200
    r = await api.client.post("/live-streams", json={"name": "x"}, headers=api.as_token(reader))
    assert r.status_code == 403
    assert "lacks the 'streams:write' scope" in reason(r) and "streams:read" in reason(r)

    # streams:write includes streams:read.
    r = await api.client.post("/live-streams", json={"name": "x"}, headers=api.as_token(writer))
    assert r.status_code == 201
    stream_id = r.json()["data"]["id"]
    assert (await api.client.get(f"/live-streams/{stream_id}",
                                 headers=api.as_token(writer))).status_code == 200
    r = await api.client.post("/webhooks", json={"url": PUBLIC_URL},
                              headers=api.as_token(writer))
    assert r.status_code == 403 and "'webhooks'" in reason(r)

    r = await api.client.post("/webhooks", json={"url": PUBLIC_URL}, headers=api.as_token(hooks))
    assert r.status_code == 201, r.text
    r = await api.client.get("/live-streams", headers=api.as_token(hooks))
    assert r.status_code == 403 and "'streams:read'" in reason(r)
    r = await api.client.get("/live-streams", headers=api.as_token(moderator))
    assert r.status_code == 403

    # Tokens and the audit log are admin's alone.
    for token in (reader, writer, hooks, moderator):
        assert (await api.client.get("/tokens", headers=api.as_token(token))).status_code == 403
        assert (await api.client.get("/audit", headers=api.as_token(token))).status_code == 403
        r = await api.client.post("/tokens", json={"name": "escalate"},
                                  headers=api.as_token(token))
        assert r.status_code == 403 and "'admin'" in reason(r)

    # Every route of the API declares a scope: nothing answers without a token.
    for route in api.app.routes:
        path = getattr(route, "path", "")
        if path in {"/openapi.json", "/docs", "/docs/oauth2-redirect"} or not path:
            continue
        for method in getattr(route, "methods", ()):
            if method == "HEAD":
                continue
            url = path.replace("{", "").replace("}", "")
            r = await api.client.request(method, url, headers={"Authorization": ""})
            assert r.status_code == 401, (method, path, r.status_code)


async def test_token_expiry_and_listing(api: Api) -> None:
    r = await api.client.post("/tokens", json={"name": "old", "expires_at": "2020-01-01T00:00"})
    assert r.status_code == 422 and "future" in reason(r)
    soon = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    token_id, token = await api.token("streams:read", expires_at=soon.isoformat())
    listed = {t["id"]: t for t in (await api.client.get("/tokens")).json()["data"]}
    assert listed[token_id]["scopes"] == ["streams:read"]
    assert listed[token_id]["expires_at"].startswith(soon.isoformat()[:19])
    assert (await api.client.get("/live-streams", headers=api.as_token(token))).status_code \
        == 200
    async with api.store._write.begin() as session:  # an hour later
        await session.execute(update(ApiToken).where(ApiToken.id == token_id)
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
    r = await api.client.get("/live-streams", headers=api.as_token(token))
    assert r.status_code == 401 and "expired" in reason(r)


async def test_audit_log_of_changes_with_filters_and_pages(api: Api) -> None:
    token_id, token = await api.token("streams:write")
    as_writer = api.as_token(token)
    stream = (await api.client.post("/live-streams", json={"name": "a"},
                                    headers=as_writer)).json()["data"]
    sid = stream["id"]
    assert (await api.client.patch(f"/live-streams/{sid}", json={"srt_passphrase":
                                   "secret-passphrase"}, headers=as_writer)).status_code == 200
    assert (await api.client.post(f"/live-streams/{sid}/reset-stream-key",
                                  headers=as_writer)).status_code == 200
    assert (await api.client.put(f"/live-streams/{sid}/disable",
                                 headers=as_writer)).status_code == 200
    assert (await api.client.put(f"/live-streams/{sid}/enable",
                                 headers=as_writer)).status_code == 200
    assert (await api.client.delete(f"/live-streams/{sid}",
                                    headers=as_writer)).status_code == 204
    assert (await api.client.delete(f"/tokens/{token_id}")).status_code == 204

    entries = (await api.client.get("/audit")).json()["data"]
    assert [e["action"] for e in entries] == [
        "api_token.revoke", "live_stream.delete", "live_stream.enable", "live_stream.disable",
        "live_stream.reset_stream_key", "live_stream.update", "live_stream.create",
        "api_token.create",
    ]
    by_writer = entries[1]
    assert by_writer["actor"] == {"type": "token", "id": token_id, "name": "t"}
    assert by_writer["target"] == {"type": "live_stream", "id": sid}
    assert by_writer["remote_address"] == "127.0.0.1"
    assert entries[0]["actor"]["type"] == "admin_token"
    # A secret never reaches the log.
    assert entries[5]["details"]["changes"] == {"srt_passphrase": "(changed)"}
    assert "secret-passphrase" not in str(entries)

    r = await api.client.get("/audit", params={"action": "live_stream.*", "actor_id": token_id})
    assert len(r.json()["data"]) == 6
    r = await api.client.get("/audit", params={"target_type": "api_token"})
    assert [e["action"] for e in r.json()["data"]] == ["api_token.revoke", "api_token.create"]
    # Keyset pages: newest first, `before` the last id seen; nothing repeats or goes missing.
    seen: list[int] = []
    before: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if before is not None:
            params["before"] = before
        page = (await api.client.get("/audit", params=params)).json()["data"]
        if not page:
            break
        seen += [e["id"] for e in page]
        before = page[-1]["id"]
    assert seen == [e["id"] for e in entries]
    future = (utcnow() + timedelta(minutes=1)).replace(tzinfo=None).isoformat()
    assert (await api.client.get("/audit", params={"since": future})).json()["data"] == []
    r = await api.client.get("/audit", params={"limit": 0})
    assert r.status_code == 422


async def test_studio_changes_name_the_studio_and_the_browser(api: Api) -> None:
    """The studio's in-process route marks its requests; only then is its header believed."""
    app = api.app

    async def via_studio(scope: Any, receive: Any, send: Any) -> None:
        await app({**scope, STUDIO_SCOPE_KEY: True}, receive, send)

    headers = {"Authorization": f"Bearer {ADMIN}", STUDIO_CLIENT_HEADER: "198.51.100.7"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=via_studio),
                                 base_url="http://test", headers=headers) as studio:
        assert (await studio.post("/live-streams", json={"name": "s"})).status_code == 201
    # The same header from anyone else is ignored.
    r = await api.client.post("/live-streams", json={"name": "o"}, headers=headers)
    assert r.status_code == 201
    outside, inside = (await api.client.get("/audit")).json()["data"]
    assert inside["actor"]["type"] == "studio" and inside["remote_address"] == "198.51.100.7"
    assert outside["actor"]["type"] == "admin_token" and outside["remote_address"] == "127.0.0.1"


async def test_webhook_api_validates_and_audits(api: Api) -> None:
    r = await api.client.post("/webhooks", json={"url": PUBLIC_URL, "event_types": ["x.y"]})
    assert r.status_code == 422 and "not an event type" in reason(r)
    r = await api.client.post("/webhooks", json={"url": PUBLIC_URL, "extra": 1})
    assert r.status_code == 422
    hook = (await api.client.post("/webhooks", json={
        "url": PUBLIC_URL, "event_types": ["asset.*", "live_stream.active"]})).json()["data"]
    assert hook["event_types"] == ["asset.*", "live_stream.active"]
    r = await api.client.patch(f"/webhooks/{hook['id']}", json={"enabled": False})
    assert r.status_code == 200 and r.json()["data"]["enabled"] is False
    r = await api.client.patch(f"/webhooks/{hook['id']}", json={"url": "http://127.0.0.1/"})
    assert r.status_code == 422 and "not a public address" in reason(r)
    r = await api.client.patch(f"/webhooks/{hook['id']}", json={"enabled": True})
    assert r.status_code == 200 and api.woken == [hook["id"]]
    assert (await api.client.get(f"/webhooks/{hook['id']}")).json()["data"]["enabled"]
    assert (await api.client.get(f"/webhooks/{hook['id']}/deliveries")).json()["data"] == []
    assert (await api.client.delete(f"/webhooks/{hook['id']}")).status_code == 204
    assert (await api.client.get(f"/webhooks/{hook['id']}")).status_code == 404
    actions = [e["action"] for e in (await api.client.get(
        "/audit", params={"target_id": hook["id"]})).json()["data"]]
    assert actions == ["webhook.delete", "webhook.update", "webhook.update", "webhook.create"]
