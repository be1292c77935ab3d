"""Every page golive serves, checked by axe-core in real Chromium (WCAG 2.1 A and AA)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, wait_process, wait_ready_asset, wait_status
from tests.mediatools import ffmpeg_publish, stop
from tests.web.helpers import wait_playing
from tests.web.test_watch import _live

from golive.app import Golive

pytestmark = pytest.mark.slow

AXE = Path(__file__).resolve().parents[2] / "build" / "players" / "axe.min.js"
# The rules a public service is held to (EN 301 549, Section 508): WCAG 2.1 A and AA.
STANDARDS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


async def violations(page: Any) -> list[str]:
    """axe-core's findings on the page as it stands: each rule broken, and where."""
    await page.add_script_tag(path=str(AXE))
    found = await page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
        ".violations.flatMap(v => v.nodes.map(n =>"
        " `${v.id} (${v.impact}) at ${n.target.join(' ')}: ${n.failureSummary}`))",
        STANDARDS,
    )
    return list(found)


async def test_every_page_passes_axe(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any
) -> None:
    # A recorded show that ended (its recording, its report), then one live now.
    show = await create_stream(api, name="Show", recording=True, reconnect_window=1)
    assert await wait_process(ffmpeg_publish(source_480p, node.rtmp_url(show["stream_key"]))) == 0
    await wait_status(api, show["id"], "idle")
    asset = await wait_ready_asset(api, show["id"])
    [broadcast] = (await api.get(f"/live-streams/{show['id']}/broadcasts")).json()["data"]
    stream, proc = await _live(node, api, source_480p)
    pid = stream["playback_ids"][0]["id"]
    offline = await create_stream(api, name="Later")
    base = node.http_url
    found: dict[str, list[str]] = {}
    try:
        # The pages' own CSP would refuse the injected axe script.
        context = await browser.new_context(viewport={"width": 1280, "height": 800},
                                            bypass_csp=True)
        page = await context.new_page()
        for name, path in [("home", "/"), ("publish", "/publish"), ("login", "/studio/login"),
                           ("offline watch page", f"/watch/{offline['playback_ids'][0]['id']}"),
                           ("unknown playback id", "/watch/nosuchid")]:
            await page.goto(base + path)
            found[name] = await violations(page)
        for name, path in [("watch page", f"/watch/{pid}"), ("embed", f"/embed/{pid}"),
                           ("recording", f"/watch/{asset['playback_ids'][0]['id']}")]:
            await page.goto(base + path)
            await wait_playing(page)
            found[name] = await violations(page)
            await page.keyboard.press("Tab")  # the player's bar as a keyboard user meets it
            found[f"{name}, focused"] = await violations(page)
        # The chat once joined, with a message in it.
        await page.goto(f"{base}/watch/{pid}")
        await page.fill("#chat-name", "Ada")
        await page.click("#chat-join button")
        await page.fill("#chat-text", "hello from a screen reader")
        await page.press("#chat-text", "Enter")
        await page.locator(".chat-message", has_text="hello from a screen reader").wait_for()
        found["chat"] = await violations(page)

        await page.goto(f"{base}/studio/login")
        await page.fill("#token", ADMIN)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/studio", timeout=10_000)
        await page.locator(".stream-row", has_text="Later").wait_for(timeout=10_000)
        found["studio"] = await violations(page)
        await page.goto(f"{base}/studio/streams/{stream['id']}")
        await page.wait_for_function(
            "document.getElementById('stream-status').textContent === 'live'", timeout=30_000)
        await page.click("#chat-terms summary")  # the blocked terms' controls shown too
        found["studio stream page"] = await violations(page)
        await page.goto(f"{base}/studio/streams/{show['id']}")
        await page.locator(".recording-row").wait_for(timeout=10_000)
        await page.locator(".broadcast-row").wait_for(timeout=10_000)
        found["studio page of a past show"] = await violations(page)
        await page.goto(f"{base}/studio/broadcasts/{broadcast['id']}/report")
        found["report"] = await violations(page)
    finally:
        stop(proc)
    broken = {name: rules for name, rules in found.items() if rules}
    assert not broken, "\n".join(f"{name}: {rule}" for name, rules in broken.items()
                                 for rule in rules)
