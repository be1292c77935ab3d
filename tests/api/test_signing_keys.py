"""/api/v1/signing-keys and playback id referrer restrictions, against a real Store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from tests.api.conftest import NoBroadcasts

from golive.api import AuditTrail, Authenticator, create_api_app, signing_keys_router
from golive.core import EventBus
from golive.settings import Settings
from golive.store import Store

ADMIN = "test-admin-token"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Store]]:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN)
    store = await Store.open(settings.resolved_database_url)
    auth = Authenticator(settings, store)
    app = create_api_app(settings=settings, store=store, bus=EventBus(),
                         broadcasts=NoBroadcasts(), auth=auth)
    app.include_router(signing_keys_router(auth, store, AuditTrail(store)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        yield c, store
    await store.close()


async def test_keys_are_created_listed_and_deleted(
    client: tuple[httpx.AsyncClient, Store]
) -> None:
    c, _ = client
    r = await c.post("/signing-keys")
    assert r.status_code == 201, r.text
    rsa = r.json()["data"]
    assert rsa["algorithm"] == "RS256" and rsa["id"].startswith("key_")
    assert load_pem_private_key(rsa["private_key"].encode(), None).key_size == 2048  # type: ignore[union-attr]
    r = await c.post("/signing-keys", json={"algorithm": "ES256"})
    es = r.json()["data"]
    assert es["algorithm"] == "ES256" and "BEGIN PRIVATE KEY" in es["private_key"]

    listed = (await c.get("/signing-keys")).json()["data"]
    assert [k["id"] for k in listed] == [rsa["id"], es["id"]]
    assert all("private_key" not in k for k in listed)  # shown once, never again
    one = (await c.get(f"/signing-keys/{es['id']}")).json()["data"]
    assert "private_key" not in one and one["public_key"].startswith("-----BEGIN PUBLIC KEY")

    assert (await c.delete(f"/signing-keys/{rsa['id']}")).status_code == 204
    assert (await c.delete(f"/signing-keys/{rsa['id']}")).status_code == 404
    assert (await c.get(f"/signing-keys/{rsa['id']}")).status_code == 404
    assert [k["id"] for k in (await c.get("/signing-keys")).json()["data"]] == [es["id"]]


async def test_bad_requests(client: tuple[httpx.AsyncClient, Store]) -> None:
    c, store = client
    r = await c.post("/signing-keys", json={"algorithm": "HS256"})
    assert r.status_code == 422 and "algorithm" in r.text
    r = await c.post("/signing-keys", json={"algorithm": "ES256", "private_key": "x"})
    assert r.status_code == 422
    _, read_token = await store.create_api_token(name="reader", scopes=["streams:read"])
    r = await c.post("/signing-keys", headers={"Authorization": f"Bearer {read_token}"})
    assert r.status_code == 403
    assert (await c.get("/signing-keys", headers={"Authorization": "Bearer nope"})
            ).status_code == 401


async def test_referrer_restriction(client: tuple[httpx.AsyncClient, Store]) -> None:
    c, store = client
    stream, _ = await store.create_stream(name="shop", playback_policy="signed")
    pid = stream.playback_ids[0].id
    r = await c.put(f"/playback-ids/{pid}/referrer",
                    json={"allowed_referrers": ["Example.com", "*.shop.example"],
                          "allow_empty_referrer": False})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"playback_id": pid,
                                "allowed_referrers": ["example.com", "*.shop.example"],
                                "allow_empty_referrer": False}
    found = await store.find_stream_by_playback_id(pid)
    assert found is not None and found[1].allowed_referrers == ("example.com", "*.shop.example")
    r = await c.put(f"/playback-ids/{pid}/referrer",
                    json={"allowed_referrers": ["https://example.com/page"]})
    assert r.status_code == 422 and "not a host name" in r.text
    r = await c.put(f"/playback-ids/{pid}/referrer", json={"allowed_referrers": ["a.b"] * 51})
    assert r.status_code == 422
    r = await c.put("/playback-ids/nope/referrer", json={"allowed_referrers": None})
    assert r.status_code == 404
    r = await c.put(f"/playback-ids/{pid}/referrer", json={"allowed_referrers": None})
    assert r.json()["data"]["allowed_referrers"] is None
