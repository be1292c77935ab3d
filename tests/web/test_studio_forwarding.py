"""The studio's forwarding to the API: only allowlisted routes, whatever the request's Host says."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.e2e.conftest import ADMIN

from golive.app import Golive

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture
async def signed_in(node: Golive) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A browser-like client with a studio session, and that session's CSRF token."""
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as web:
        login = await web.post("/studio/login", data={"token": ADMIN})
        assert login.status_code == 303, login.text
        page = await web.get("/studio")
        found = CSRF_META.search(page.text)
        assert page.status_code == 200 and found is not None
        yield web, found.group(1)


@pytest.mark.parametrize("suffix", ["/tokens?", "/tokens#", "/api/v1/tokens?", "/../tokens?"])
async def test_a_host_header_cannot_reroute_a_studio_call_to_tokens(
    node: Golive, api: httpx.AsyncClient, signed_in: tuple[httpx.AsyncClient, str], suffix: str
) -> None:
    web, csrf = signed_in
    before = (await api.get("/tokens")).json()["data"]
    answer = await web.post(
        "/studio/api/live-streams",
        json={"name": "attacker"},  # a valid body for POST /tokens too (admin by default)
        headers={"X-CSRF-Token": csrf, "Host": f"127.0.0.1:{node.http_port}{suffix}"},
    )
    # The call reached the route it names (a stream was created), not /tokens.
    assert answer.status_code == 201, answer.text
    assert "stream_key" in answer.json()["data"]
    assert "token" not in answer.json()["data"]
    assert (await api.get("/tokens")).json()["data"] == before == []


async def test_the_ingest_urls_show_the_host_the_browser_used(
    node: Golive, signed_in: tuple[httpx.AsyncClient, str]
) -> None:
    web, csrf = signed_in
    answer = await web.post("/studio/api/live-streams", json={"name": "show"},
                            headers={"X-CSRF-Token": csrf, "Host": "studio.example:8080"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["data"]["ingest"]["rtmp"].startswith("rtmp://studio.example:")


async def test_studio_changes_are_audited_as_the_studio_from_the_browser(
    node: Golive, api: httpx.AsyncClient, signed_in: tuple[httpx.AsyncClient, str]
) -> None:
    web, csrf = signed_in
    created = await web.post("/studio/api/live-streams", json={"name": "audited"},
                             headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.text
    log = await web.get("/studio/api/audit", headers={"X-CSRF-Token": csrf})
    assert log.status_code == 200, log.text
    entry = log.json()["data"][0]
    assert entry["action"] == "live_stream.create"
    assert entry["target"] == {"type": "live_stream", "id": created.json()["data"]["id"]}
    assert entry["actor"]["type"] == "studio" and entry["actor"]["name"] == "admin_token"
    assert entry["remote_address"] == "127.0.0.1"  # the browser's address, not the studio's
    # The page that shows it, and a direct API call with the studio's header is not believed.
    assert 'id="audit-table"' in (await web.get("/studio")).text
    r = await api.post("/live-streams", json={"name": "x"},
                       headers={"x-golive-studio-client": "203.0.113.9"})
    assert r.status_code == 201
    latest = (await api.get("/audit")).json()["data"][0]
    assert latest["actor"]["type"] == "admin_token" and latest["remote_address"] == "127.0.0.1"
