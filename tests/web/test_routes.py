"""The web routes over HTTP against a node in-process: pages, status, assets, QoE intake."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.e2e.conftest import create_stream

from golive.app import Golive
from golive.store.views import PlaybackViewStore
from golive.web.assets import VERSIONED_CACHE
from golive.web.qoe import MAX_BODY_BYTES


@pytest.fixture
async def site(node: Golive) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
        yield client


def _batch(view: str, *events: dict[str, object]) -> dict[str, object]:
    return {"view_id": view, "sent": 5000,
            "events": list(events) or [{"type": "latency", "t": 4000, "seconds": 1.5}]}


async def test_watch_page_escapes_the_title_and_links_versioned_assets(
    site: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    stream = await create_stream(api, name='<script>alert("x")</script>')
    pid = stream["playback_ids"][0]["id"]
    page = await site.get(f"/watch/{pid}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert" in page.text
    config = json.loads(re.search(
        r'<script type="application/json" id="golive-config">(.*?)</script>', page.text,
        re.S).group(1))  # type: ignore[union-attr]
    assert config["manifestUrl"] == f"/live/{pid}.m3u8"
    assert config["live"] is False
    assert config["realtime"] is None  # the stream has no webrtc_playback (the default)
    assert "https://" not in page.text.replace("https:", "")  # nothing from a CDN
    for url in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        response = await site.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == VERSIONED_CACHE
        again = await site.get(url.split("?")[0],
                               headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304
        assert "no-cache" in again.headers["cache-control"]


def _config(page: httpx.Response) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="golive-config">(.*?)</script>',
                      page.text, re.S)
    assert found is not None
    config: dict[str, object] = json.loads(found.group(1))
    return config


async def test_real_time_is_offered_only_for_streams_with_webrtc_playback(
    site: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    realtime = await create_stream(api, webrtc_playback=True)
    plain = await create_stream(api, webrtc_playback=False)
    signed = await create_stream(api, webrtc_playback=True, playback_policy="signed")
    pid = realtime["playback_ids"][0]["id"]
    for path in (f"/watch/{pid}", f"/embed/{pid}"):
        assert _config(await site.get(path))["realtime"] == {
            "whepUrl": f"/whep/{pid}", "iceServers": []}
    assert _config(await site.get(f"/watch/{plain['playback_ids'][0]['id']}"))["realtime"] is None
    # A signed playback id's page (and so its WHEP offer) needs a valid token first.
    signed_pid = signed["playback_ids"][0]["id"]
    refused = await site.get(f"/watch/{signed_pid}?token=x")
    assert refused.status_code == 403 and "golive-config" not in refused.text


async def test_status_is_small_and_cacheable(
    site: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    stream = await create_stream(api, name="Show")
    pid = stream["playback_ids"][0]["id"]
    response = await site.get(f"/watch/{pid}/status")
    assert response.json() == {"live": False, "title": "Show", "viewers": 0, "captions": False}
    assert response.headers["cache-control"] == "public, max-age=1"
    assert (await site.get("/watch/nosuchid/status")).status_code == 404
    assert (await site.get("/static/../app.py")).status_code == 404
    assert (await site.get("/watch/bad%20id")).status_code == 404


async def test_qoe_batches_are_stored_validated_and_rate_limited(
    node: Golive, site: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    stream = await create_stream(api)
    other = await create_stream(api)
    pid = stream["playback_ids"][0]["id"]
    view = "v" * 32
    response = await site.post(f"/qoe/{pid}", json=_batch(
        view, {"type": "start", "t": 100, "muted": True},
        {"type": "first_frame", "t": 100, "ms": 700}), headers={"User-Agent": "test-agent"})
    assert response.status_code == 204, response.text
    assert node.store is not None
    views = PlaybackViewStore(node.store.engine)
    record = await views.get_view(view)
    assert record is not None and record.playback_id == pid and record.stream_id == stream["id"]
    assert record.user_agent == "test-agent"
    events = await views.list_events(view)
    assert [(e.type, e.data) for e in events] == [
        ("start", {"muted": True, "native": False, "rendition": ""}), ("first_frame", {"ms": 700.0})]

    # A view id cannot move to another stream; unknown playback ids and bad bodies are refused.
    other_pid = other["playback_ids"][0]["id"]
    assert (await site.post(f"/qoe/{other_pid}", json=_batch(view))).status_code == 409
    assert (await site.post("/qoe/nosuchid", json=_batch("w" * 32))).status_code == 404
    bad = await site.post(f"/qoe/{pid}", json=_batch("x" * 32, {"type": "nope", "t": 1}))
    assert bad.status_code == 422 and "nope" in bad.json()["error"]
    big = await site.post(f"/qoe/{pid}", content=b" " * (MAX_BODY_BYTES + 1))
    assert big.status_code == 413

    # Per view: a burst passes, then 429 with Retry-After.
    codes = [(await site.post(f"/qoe/{pid}", json=_batch("y" * 32))).status_code
             for _ in range(10)]
    assert codes[0] == 204 and codes[-1] == 429
    limited = await site.post(f"/qoe/{pid}", json=_batch("y" * 32))
    assert int(limited.headers["retry-after"]) >= 1
    assert (await site.post(f"/qoe/{pid}", json=_batch("z" * 32))).status_code == 204

    # Deleting the stream deletes its views and their events.
    assert (await api.delete(f"/live-streams/{stream['id']}")).status_code == 204
    assert await views.get_view(view) is None
    assert await views.list_events(view) == []


async def test_the_site_root_points_a_person_at_the_studio_and_the_publish_page(
    site: httpx.AsyncClient,
) -> None:
    # `make run` prints the node's address: opening it gave {"detail": "Not Found"}.
    response = await site.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "text/html")
    links = re.findall(r'<a href="([^"]+)">', response.text)
    assert links == ["/studio", "/publish", "/api/v1/docs"]
    for link in links:
        assert (await site.get(link, follow_redirects=True)).status_code == 200, link
    assert '<meta name="robots" content="noindex">' in response.text
