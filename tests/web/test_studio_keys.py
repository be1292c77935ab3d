"""The studio's signing keys in Chromium: create one (its private key shown once, copied,
and it signs tokens the node accepts), list, delete; through the studio's allowlist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, eventually
from tests.web.helpers import ConsoleLog

from golive.app import Golive
from golive.delivery import mint_playback_token

pytestmark = pytest.mark.slow


async def test_studio_creates_shows_once_and_deletes_a_signing_key(
    node: Golive, api: httpx.AsyncClient, browser: Any, artifacts: Path
) -> None:
    stream = await create_stream(api, name="private", playback_policy="signed")
    pid = stream["playback_ids"][0]["id"]
    base = node.http_url
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = await context.new_page()
    console = ConsoleLog(page)
    await page.goto(f"{base}/studio/login")
    await page.fill("#token", ADMIN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/studio", timeout=10_000)
    await page.locator("#signing-key-rows >> text=No signing keys yet").wait_for(timeout=10_000)

    await page.select_option("#signing-key-algorithm", "ES256")
    await page.click("#new-signing-key button")
    await page.locator("#signing-key-reveal").wait_for(state="visible", timeout=10_000)
    key_id = (await page.inner_text("#signing-key-id")).strip()
    private = (await page.inner_text("#signing-key-private")).strip()
    assert private.startswith("-----BEGIN PRIVATE KEY-----"), private[:40]
    await page.locator(f'.signing-key-row[data-id="{key_id}"]').wait_for(timeout=10_000)
    await page.click('#signing-key-reveal button[data-copy="signing-key-private"]')
    assert (await page.evaluate("navigator.clipboard.readText()")).strip() == private
    await page.screenshot(path=str(artifacts / "studio-signing-key.png"))

    # The key the page showed signs tokens the node accepts for a signed playback id.
    token = mint_playback_token(private, key_id=key_id, playback_id=pid, audience="v",
                                expires_in=600)
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        assert (await http.get(f"/watch/{pid}", params={"token": token})).status_code == 200

        # Shown once: dismissed, then reloaded, the private key is nowhere in the page.
        await page.click("#signing-key-done")
        assert await page.locator("#signing-key-reveal").is_hidden()
        await page.reload()
        row = page.locator(f'.signing-key-row[data-id="{key_id}"]')
        await row.wait_for(timeout=10_000)
        assert "ES256" in await row.inner_text()
        content = await page.content()
        assert "PRIVATE KEY" not in content and private.splitlines()[1] not in content

        page.once("dialog", lambda dialog: dialog.accept())
        await row.locator("button.danger").click()
        await page.locator("#signing-key-rows >> text=No signing keys yet").wait_for(
            timeout=10_000)
        assert (await api.get("/signing-keys")).json()["data"] == []

        # Nodes trust a key they looked up for key_ttl (10 s): then its tokens are refused.
        async def refused() -> bool:
            answer = await http.get(f"/watch/{pid}", params={"token": token})
            return answer.status_code == 403 and "signing key" in answer.text

        await eventually(refused, timeout=30, what="the deleted key's token to be refused")
    assert console.errors == [], console.errors
    await context.close()
