"""Watch page metadata (OpenGraph, schema.org JSON-LD) and the studio's live thumbnails,
read by real Chromium; a stream name full of markup must come out as plain text."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, eventually, wait_status
from tests.mediatools import ffmpeg_publish, stop
from tests.web.helpers import ConsoleLog

from golive.app import Golive
from golive.delivery import mint_playback_token

pytestmark = pytest.mark.slow

HOSTILE = "Show </script><script>window.pwned=1</script> \"q\" & 'a' <b>bold</b> \u2603"

METADATA = """() => {
  const meta = {};
  for (const el of document.querySelectorAll('meta[property], meta[name]')) {
    meta[el.getAttribute('property') || el.getAttribute('name')] = el.getAttribute('content');
  }
  const ld = [...document.querySelectorAll('script[type="application/ld+json"]')]
    .map((s) => JSON.parse(s.textContent));
  const canonical = document.querySelector('link[rel=canonical]');
  return {meta, ld, canonical: canonical && canonical.href, pwned: window.pwned === 1};
}"""


async def read_metadata(page: Any, url: str) -> dict[str, Any]:
    await page.goto(url)
    value: dict[str, Any] = await page.evaluate(METADATA)
    return value


async def test_live_watch_page_metadata_and_studio_thumbnail(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any, artifacts: Path
) -> None:
    stream = await create_stream(api, name=HOSTILE)
    pid = stream["playback_ids"][0]["id"]
    base = node.http_url
    page = await browser.new_page()
    console = ConsoleLog(page)

    idle = await read_metadata(page, f"{base}/watch/{pid}")
    assert idle["meta"]["og:title"] == HOSTILE and not idle["pwned"]
    assert "og:image" not in idle["meta"]  # nothing to show while offline
    (video,) = idle["ld"]
    assert video["@type"] == "VideoObject" and video["name"] == HOSTILE
    assert "publication" not in video and "thumbnailUrl" not in video

    started = time.time()
    proc = ffmpeg_publish(source_480p, node.rtmp_url(stream["stream_key"]), loop=True)
    try:
        await wait_status(api, stream["id"], "active")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:

            async def thumbnail_ready() -> bool:
                return (await http.get(f"/thumbnail/{pid}.jpg?width=160")).status_code == 200

            await eventually(thumbnail_ready, timeout=40, what="a live thumbnail")
            live = await read_metadata(page, f"{base}/watch/{pid}")
            meta = live["meta"]
            assert not live["pwned"]
            assert meta["og:type"] == "video.other"
            assert meta["og:title"] == HOSTILE
            assert meta["og:url"] == live["canonical"] == f"{base}/watch/{pid}"
            assert HOSTILE in meta["og:description"] and "live" in meta["og:description"]
            assert meta["og:image"] == f"{base}/thumbnail/{pid}.jpg?width=1280"
            assert meta["twitter:card"] == "summary_large_image"
            assert "robots" not in meta
            (video,) = live["ld"]
            assert video["@context"] == "https://schema.org"
            assert video["@type"] == "VideoObject" and video["name"] == HOSTILE
            assert video["thumbnailUrl"] == [meta["og:image"]]
            assert video["embedUrl"] == f"{base}/embed/{pid}"
            publication = video["publication"]
            assert publication["@type"] == "BroadcastEvent"
            assert publication["isLiveBroadcast"] is True
            start = datetime.fromisoformat(publication["startDate"]).timestamp()
            assert started - 5 <= start <= time.time()
            datetime.fromisoformat(video["uploadDate"])
            image = await http.get(meta["og:image"])
            assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
            # The markup is escaped, not just harmless: the raw page never closes the
            # JSON-LD script early.
            html = (await http.get(f"/watch/{pid}")).text
            assert "</script><script>window.pwned" not in html

        # The studio's stream list shows the live stream's thumbnail.
        context = await browser.new_context()
        studio = await context.new_page()
        await studio.goto(f"{base}/studio/login")
        await studio.fill("#token", ADMIN)
        await studio.click("button[type=submit]")
        await studio.wait_for_url(f"{base}/studio", timeout=10_000)
        thumb = studio.locator(f'.stream-row[data-id="{stream["id"]}"] img.stream-thumb')
        await thumb.wait_for(timeout=15_000)
        await studio.wait_for_function(
            "(el) => el.complete && el.naturalWidth === 160", arg=await thumb.element_handle(),
            timeout=15_000)
        assert (await thumb.get_attribute("src") or "").startswith(
            f"/thumbnail/{pid}.jpg?width=160")
        await studio.screenshot(path=str(artifacts / "studio-thumbnails.png"))
        await context.close()
        assert console.errors == []
    finally:
        stop(proc)


async def test_signed_watch_page_is_not_indexed_and_has_no_image(
    node: Golive, api: httpx.AsyncClient, browser: Any
) -> None:
    stream = await create_stream(api, playback_policy="signed")
    pid = stream["playback_ids"][0]["id"]
    key = (await api.post("/signing-keys", json={"algorithm": "ES256"})).json()["data"]
    token = mint_playback_token(key["private_key"], key_id=key["id"], playback_id=pid,
                                audience="v", expires_in=600)
    page = await browser.new_page()
    found = await read_metadata(page, f"{node.http_url}/watch/{pid}?token={token}")
    assert found["meta"]["robots"] == "noindex"
    assert "og:image" not in found["meta"]
    assert json.dumps(found["ld"]).count("thumbnailUrl") == 0
