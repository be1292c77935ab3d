"""The watch page's chat panel in real Chromium: two viewers chat, a moderator steps in."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.e2e.conftest import create_stream
from tests.web.helpers import ConsoleLog, join_chat

from golive.app import Golive

pytestmark = pytest.mark.slow


async def _say(page: Any, text: str) -> None:
    await page.fill("#chat-text", text)
    await page.press("#chat-text", "Enter")


async def test_two_viewers_chat_and_a_moderator_deletes_and_bans(
    node: Golive, api: httpx.AsyncClient, browser: Any
) -> None:
    stream = await create_stream(api, name="Chat show")
    url = f"{node.http_url}/watch/{stream['playback_ids'][0]['id']}"
    alice_context, alice = await join_chat(browser, url, "alice")
    bob_context, bob = await join_chat(browser, url, "bob")
    console = ConsoleLog(alice)

    await _say(alice, "hello from alice")
    line = bob.locator(".chat-message", has_text="hello from alice")
    await line.wait_for(timeout=10_000)
    assert await line.locator(".chat-name").inner_text() == "alice"
    await _say(bob, "hi alice, bob here")
    await alice.locator(".chat-message", has_text="bob here").wait_for(timeout=10_000)
    await alice.wait_for_function(
        "document.getElementById('chat-viewers').textContent === '2 in chat'", timeout=10_000)

    # The stream owner deletes alice's message over the API: gone for everyone at once.
    message_id = await line.get_attribute("data-id")
    alice_id = await line.get_attribute("data-user")
    response = await api.delete(f"/live-streams/{stream['id']}/chat/messages/{message_id}")
    assert response.status_code == 204, response.text
    for page in (alice, bob):
        await page.locator(f'.chat-message[data-id="{message_id}"]').wait_for(
            state="detached", timeout=10_000)

    # A banned viewer is told why their message did not go out.
    response = await api.post(f"/live-streams/{stream['id']}/chat/bans",
                              json={"user_id": alice_id, "reason": "test"})
    assert response.status_code == 201, response.text
    await _say(alice, "can anyone hear me")
    error = alice.locator("#chat-error")
    await error.wait_for(state="visible", timeout=10_000)
    assert "ban" in (await error.inner_text()).lower()
    assert await bob.locator(".chat-message", has_text="can anyone hear me").count() == 0

    # Too long a message: the reason is shown, nothing is sent.
    await _say(bob, "x" * 600)
    bob_error = bob.locator("#chat-error")
    await bob_error.wait_for(state="visible", timeout=10_000)
    assert "500" in await bob_error.inner_text()

    # The name survives a reload (the signed identity kept by the page).
    await bob.reload()
    await bob.wait_for_selector("#chat-send", state="visible", timeout=10_000)
    assert "bob" in (await bob.get_attribute("#chat-text", "placeholder") or "")
    assert console.errors == []
    await alice_context.close()
    await bob_context.close()


async def test_rate_limit_reason_is_shown_to_the_sender(
    node: Golive, api: httpx.AsyncClient, browser: Any
) -> None:
    stream = await create_stream(api, name="Busy chat")
    url = f"{node.http_url}/watch/{stream['playback_ids'][0]['id']}"
    context, page = await join_chat(browser, url, "speedy")
    # The default burst is 5 messages, refilled at 1 per second: the burst goes out,
    # the rest of a quick flurry is refused with a reason the sender sees.
    for i in range(8):
        await _say(page, f"flurry {i}")
    error = page.locator("#chat-error")
    await error.wait_for(state="visible", timeout=10_000)
    assert "too fast" in (await error.inner_text()).lower()
    await page.locator(".chat-message", has_text="flurry 0").wait_for(timeout=10_000)
    await context.close()


async def test_a_refused_message_goes_back_into_the_box(
    node: Golive, api: httpx.AsyncClient, browser: Any
) -> None:
    stream = await create_stream(api, name="Careful chat")
    response = await api.patch(f"/live-streams/{stream['id']}/chat",
                               json={"blocked_terms": ["scam"]})
    assert response.status_code == 200, response.text
    url = f"{node.http_url}/watch/{stream['playback_ids'][0]['id']}"
    context, page = await join_chat(browser, url, "typist")
    await _say(page, "this is no SCAM, honest")
    error = page.locator("#chat-error")
    await error.wait_for(state="visible", timeout=10_000)
    assert "does not allow" in await error.inner_text()
    # The text is back to edit, not lost; sent again without the term, it goes out and
    # the box stays empty.
    assert await page.input_value("#chat-text") == "this is no SCAM, honest"
    await page.fill("#chat-text", "this is honest")
    await page.press("#chat-text", "Enter")
    await page.locator(".chat-message", has_text="this is honest").wait_for(timeout=10_000)
    assert await page.input_value("#chat-text") == ""
    assert await page.locator(".chat-message", has_text="SCAM").count() == 0
    await context.close()
