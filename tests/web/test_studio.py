"""The studio: session cookie signing, CSRF and login checks, and a real-browser walk-through."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import ADMIN
from tests.mediatools import ffmpeg_publish, stop
from tests.web.helpers import ConsoleLog, join_chat

from golive.app import Golive
from golive.web.session import SESSION_COOKIE, SessionSigner, StudioSessions

SECRET = b"0123456789abcdef0123456789abcdef"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


# Session cookie signing ------------------------------------------------------------------


def test_a_signed_session_cookie_reads_back_until_it_expires() -> None:
    signer = SessionSigner(SECRET)
    value = signer.sign("abc_DEF-123", 1000)
    assert signer.read(value, now=999) == "abc_DEF-123"
    assert signer.read(value, now=1000) is None  # expired


@pytest.mark.parametrize("tamper", [
    lambda v: v.replace("abc", "abd", 1),             # another session id
    lambda v: v.replace(".1000.", ".9999.", 1),       # a later expiry
    lambda v: v[:-2] + ("AA" if not v.endswith("AA") else "BB"),  # a forged MAC
    lambda v: v + ".x",
    lambda v: "",
    lambda v: "abc.1000",
])
def test_a_tampered_session_cookie_is_refused(tamper: Any) -> None:
    signer = SessionSigner(SECRET)
    assert signer.read(tamper(signer.sign("abc", 1000)), now=0) is None


def test_keys_differ_per_secret_and_purpose() -> None:
    signer = SessionSigner(SECRET)
    other = SessionSigner(b"another secret of 32 bytes......")
    assert other.read(signer.sign("abc", 1000), now=0) is None
    csrf = signer.csrf_token("abc")
    assert signer.check_csrf("abc", csrf)
    assert not signer.check_csrf("abd", csrf)
    assert not signer.check_csrf("abc", None)
    assert not signer.check_csrf("abc", "")
    assert not other.check_csrf("abc", csrf)
    assert csrf not in signer.sign("abc", 1000)
    with pytest.raises(ValueError):
        SessionSigner(b"short")


def test_sessions_expire_and_are_bounded() -> None:
    sessions = StudioSessions(ttl=10, size=2)
    first = sessions.create("token-1", "one", now=0)
    assert sessions.get(first.id, now=5) == first
    assert sessions.get(first.id, now=10) is None
    a = sessions.create("t", "a", now=0)
    b = sessions.create("t", "b", now=0)
    c = sessions.create("t", "c", now=0)
    assert sessions.get(a.id, now=1) is None and len(sessions) == 2
    sessions.drop(b.id)
    assert sessions.get(b.id, now=1) is None
    assert sessions.get(c.id, now=1) == c


# Login, session and CSRF over HTTP -------------------------------------------------------


async def _login(client: httpx.AsyncClient, token: str = ADMIN) -> httpx.Response:
    return await client.post("/studio/login", data={"token": token})


async def _csrf(client: httpx.AsyncClient) -> str:
    page = await client.get("/studio")
    assert page.status_code == 200, page.text
    found = CSRF_META.search(page.text)
    assert found is not None
    return found.group(1)


@pytest.fixture
async def web(node: Golive) -> Any:
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
        yield client


async def test_pages_and_json_need_a_session(web: httpx.AsyncClient) -> None:
    page = await web.get("/studio")
    assert page.status_code == 303 and page.headers["location"] == "/studio/login"
    assert (await web.get("/studio/streams/abc")).status_code == 303
    answer = await web.get("/studio/api/live-streams", headers={"X-CSRF-Token": "x"})
    assert answer.status_code == 401
    web.cookies.set(SESSION_COOKIE, "forged.9999999999.AAAA", path="/studio")
    assert (await web.get("/studio/api/live-streams")).status_code == 401


async def test_a_wrong_token_is_refused_and_the_admin_token_signs_in(
    web: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    login = await web.get("/studio/login")
    assert login.status_code == 200 and 'name="token"' in login.text
    wrong = await _login(web, "not-a-token")
    assert wrong.status_code == 401 and "not valid" in wrong.text
    assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")

    created = await api.post("/tokens", json={"name": "reader", "scopes": ["streams:read"]})
    assert created.status_code == 201, created.text
    reader = await _login(web, created.json()["data"]["token"])
    assert reader.status_code == 403 and "admin token" in reader.text

    ok = await _login(web)
    assert ok.status_code == 303 and ok.headers["location"] == "/studio"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/studio" in cookie
    assert "max-age=43200" in cookie
    assert "secure" not in cookie  # plain http here; https gets Secure
    assert ADMIN not in ok.headers["set-cookie"]  # the token stays on the server


async def test_json_endpoints_need_the_csrf_token(
    web: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    await _login(web)
    csrf = await _csrf(web)
    assert (await web.get("/studio/api/live-streams")).status_code == 403
    bad = await web.post("/studio/api/live-streams", json={"name": "x"},
                         headers={"X-CSRF-Token": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")})
    assert bad.status_code == 403
    assert (await api.get("/live-streams")).json()["data"] == []

    good = await web.post("/studio/api/live-streams", json={"name": "From the studio"},
                          headers={"X-CSRF-Token": csrf})
    assert good.status_code == 201, good.text
    assert good.json()["data"]["stream_key"]
    listed = await web.get("/studio/api/live-streams", headers={"X-CSRF-Token": csrf})
    assert [s["name"] for s in listed.json()["data"]] == ["From the studio"]
    assert "stream_key" not in listed.json()["data"][0]
    # Only the stream endpoints are reachable through the studio.
    tokens = await web.get("/studio/api/tokens", headers={"X-CSRF-Token": csrf})
    assert tokens.status_code == 404


async def test_cross_site_login_and_logout_are_refused(web: httpx.AsyncClient) -> None:
    evil = await web.post("/studio/login", data={"token": ADMIN},
                          headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403 and SESSION_COOKIE not in evil.headers.get("set-cookie", "")
    await _login(web)
    csrf = await _csrf(web)
    assert (await web.post("/studio/logout", data={"csrf": "nope"})).status_code == 403
    assert (await web.get("/studio")).status_code == 200  # still signed in
    out = await web.post("/studio/logout", data={"csrf": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/studio/login"
    assert (await web.get("/studio")).status_code == 303


async def test_logout_ends_the_session_on_the_server(web: httpx.AsyncClient) -> None:
    await _login(web)
    csrf = await _csrf(web)
    cookie = web.cookies.get(SESSION_COOKIE)
    assert cookie
    await web.post("/studio/logout", data={"csrf": csrf})
    # Replaying the old cookie does not work either.
    web.cookies.set(SESSION_COOKIE, cookie, path="/studio")
    answer = await web.get("/studio/api/live-streams", headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 401


async def test_the_moderator_chat_token_is_minted_for_the_session(
    node: Golive, web: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    stream = (await api.post("/live-streams", json={"name": "s"})).json()["data"]
    await _login(web)
    csrf = await _csrf(web)
    answer = await web.post(f"/studio/api/chat-token/{stream['id']}",
                            headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 201, answer.text
    assert node.chat is not None
    user = node.chat.signer.read_token(answer.json()["data"]["token"])
    assert user.can_moderate and user.stream_id == stream["id"] and user.name == "Host"
    page = await web.get(f"/studio/streams/{stream['id']}")
    assert page.status_code == 200 and stream["stream_key"] not in page.text
    assert stream["stream_key_prefix"] in page.text
    assert page.headers["x-frame-options"] == "DENY"


# The studio in a real browser ------------------------------------------------------------


@pytest.mark.slow
async def test_studio_log_in_create_a_stream_see_its_key_once_see_it_go_live(
    node: Golive, browser: Any, source_480p: Path, artifacts: Path
) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    console = ConsoleLog(page)
    base = node.http_url

    await page.goto(f"{base}/studio")
    assert page.url.endswith("/studio/login")
    await page.fill("#token", "wrong-token")
    await page.click("button[type=submit]")
    await page.locator("#login-error").wait_for(timeout=10_000)
    assert "not valid" in await page.locator("#login-error").inner_text()

    await page.fill("#token", ADMIN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/studio", timeout=10_000)
    assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
    assert await page.evaluate("localStorage.length") == 0

    await page.fill("#new-name", "Studio show")
    await page.click("#new-stream button")
    await page.locator("#key-reveal").wait_for(state="visible", timeout=10_000)
    key = (await page.locator("#key-value").inner_text()).strip()
    assert len(key) >= 16
    backup_key = (await page.locator("#key-backup-value").inner_text()).strip()
    assert len(backup_key) >= 16 and backup_key != key
    await page.screenshot(path=str(artifacts / "studio-new-stream-key.png"))
    row = page.locator(".stream-row", has_text="Studio show")
    await row.wait_for(timeout=10_000)
    prefix = (await row.locator(".key-prefix").inner_text()).rstrip("…")
    assert key.startswith(prefix) and len(prefix) < len(key)

    # Shown once: after a reload only the prefix is anywhere in the page.
    await page.reload()
    await row.wait_for(timeout=10_000)
    assert await page.locator("#key-reveal").is_hidden()
    assert key not in await page.content()
    assert backup_key not in await page.content()
    assert await row.locator(".key-prefix").inner_text() == f"{prefix}…"

    await row.locator("a").click()
    await page.wait_for_url(re.compile(r".*/studio/streams/.+"), timeout=10_000)
    assert await page.locator("#stream-status").text_content() == "idle"
    assert key not in await page.content()
    assert backup_key not in await page.content()
    rtmp_server = (await page.locator("#ingest-rtmp").inner_text()).strip()
    assert rtmp_server.startswith("rtmp://")
    await page.locator("#chat-send").wait_for(state="visible", timeout=10_000)  # moderator chat
    await _moderate(browser, page, base)

    proc = ffmpeg_publish(source_480p, node.rtmp_url(key), loop=True)
    try:
        await page.wait_for_function(
            "document.getElementById('stream-status').textContent === 'live'", timeout=30_000)
        await page.wait_for_function(
            "['chart-bitrate', 'chart-fps', 'chart-gop'].every("
            "id => Number(document.getElementById(id).dataset.points) >= 3)",
            timeout=30_000, polling=500)
        bitrate = await page.locator("#fact-bitrate").inner_text()
        assert bitrate.endswith("kbit/s") and float(bitrate.split()[0]) > 100
        # Progressive, without captions: the codec and size alone.
        assert re.fullmatch(r"h264 \d+\u00d7\d+", await page.locator("#fact-video").inner_text())
        # The transcoder's level meter: the source's sine, a picture that is not black.
        await page.wait_for_function(
            "/dBFS \\(peak/.test(document.getElementById('fact-audio').textContent)",
            timeout=15_000, polling=500)
        audio = await page.locator("#fact-audio").inner_text()
        assert -40 < float(audio.split()[0]) < -10 and "silent" not in audio, audio
        assert await page.locator("#fact-picture").inner_text() == "not black"
        await page.locator("#event-list li", has_text="live_stream.active").first.wait_for(timeout=15_000)
        # The preview is a view too: its first frame reaches the viewer experience panel.
        # (pagehide makes its reporter send what it queued now, not at its 10 s flush.)
        await page.wait_for_function(
            "(() => { dispatchEvent(new Event('pagehide'));"
            " return /^\\d+\\.\\d s \\//.test(document.getElementById('qoe-startup').textContent);"
            " })()", timeout=40_000, polling=1000)
        assert (await page.locator("#qoe-views").inner_text()).endswith("started)")
        assert await page.locator("#qoe-failures").inner_text() == "0.0 %"
        await asyncio.sleep(2)  # let the preview draw a frame for the screenshot
        await page.screenshot(path=str(artifacts / "studio-stream.png"), full_page=True)
        phone = await browser.new_context(viewport={"width": 390, "height": 844},
                                          device_scale_factor=2, is_mobile=True,
                                          storage_state=await context.storage_state())
        phone_page = await phone.new_page()
        await phone_page.goto(page.url)
        await phone_page.locator("#chat-send").wait_for(state="visible", timeout=10_000)
        await phone_page.screenshot(path=str(artifacts / "studio-stream-phone.png"),
                                    full_page=True)
        width = await phone_page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the stream page scrolls sideways on a phone ({width}px)"
        await phone.close()
    finally:
        stop(proc)

    await page.click("#logout")
    await page.wait_for_url(f"{base}/studio/login", timeout=10_000)
    await page.goto(f"{base}/studio")
    assert page.url.endswith("/studio/login")
    assert [e for e in console.errors if "pageerror" in e] == []
    await context.close()


async def _moderate(browser: Any, studio: Any, base: str) -> None:
    """A viewer chats on the watch page; the studio deletes the message, then bans them."""
    studio.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    watch_url = await studio.get_attribute("a[href^='/watch/']", "href")
    viewer_context, viewer = await join_chat(browser, f"{base}{watch_url}", "troll")
    await viewer.fill("#chat-text", "first!!!")
    await viewer.press("#chat-text", "Enter")

    line = studio.locator(".chat-message", has_text="first!!!")
    await line.wait_for(timeout=10_000)
    await line.locator("button[data-action=delete]").click()
    await viewer.locator(".chat-message", has_text="first!!!").wait_for(
        state="detached", timeout=10_000)

    await studio.fill("#chat-text", "welcome, everyone")
    await studio.press("#chat-text", "Enter")
    await viewer.locator(".chat-message", has_text="welcome, everyone").wait_for(timeout=10_000)

    await viewer.fill("#chat-text", "again")
    await viewer.press("#chat-text", "Enter")
    await studio.locator(".chat-message", has_text="again").locator(
        "button[data-action=ban]").click()
    await asyncio.sleep(0.5)
    await viewer.fill("#chat-text", "can I still talk")
    await viewer.press("#chat-text", "Enter")
    error = viewer.locator("#chat-error")
    await error.wait_for(state="visible", timeout=10_000)
    assert "ban" in (await error.inner_text()).lower()

    # Blocked terms, typed in the studio: another viewer's message with one is refused.
    await studio.click("#chat-terms summary")
    await studio.fill("#chat-terms-text", "Troll*\n\nfree  crypto\nfree crypto")
    await studio.click("#chat-terms-save")
    await studio.wait_for_function(
        "document.getElementById('chat-terms-state').textContent === 'saved'", timeout=10_000)
    assert await studio.input_value("#chat-terms-text") == "troll*\nfree crypto"
    assert await studio.inner_text("#chat-terms-count") == "(2)"
    second, other = await join_chat(browser, f"{base}{watch_url}", "visitor")
    await other.fill("#chat-text", "FREE crypto here")
    await other.press("#chat-text", "Enter")
    refused = other.locator("#chat-error")
    await refused.wait_for(state="visible", timeout=10_000)
    assert "does not allow" in await refused.inner_text()
    await other.fill("#chat-text", "nice stream")
    await other.press("#chat-text", "Enter")
    await studio.locator(".chat-message", has_text="nice stream").wait_for(timeout=10_000)
    assert await studio.locator(".chat-message", has_text="crypto").count() == 0
    await second.close()

    await studio.select_option("#chat-slow", "10")
    await studio.locator("#chat-signed-in").check()
    await studio.wait_for_timeout(500)
    await studio.reload()
    await studio.locator("#chat-send").wait_for(state="visible", timeout=10_000)
    await studio.wait_for_function(
        "document.getElementById('chat-slow').value === '10'"
        " && document.getElementById('chat-signed-in').checked"
        " && document.getElementById('chat-terms-text').value === 'troll*\\nfree crypto'",
        timeout=10_000)
    await viewer_context.close()


async def test_revoking_the_token_ends_the_studio_session(
    web: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    created = (await api.post("/tokens", json={"name": "laptop", "scopes": ["admin"]})).json()["data"]
    assert (await _login(web, created["token"])).status_code == 303
    csrf = await _csrf(web)
    assert (await web.get("/studio/api/live-streams", headers={"X-CSRF-Token": csrf})
            ).status_code == 200
    assert (await api.delete(f"/tokens/{created['id']}")).status_code == 204
    assert (await web.get("/studio/api/live-streams", headers={"X-CSRF-Token": csrf})
            ).status_code == 401
    assert (await web.get("/studio")).status_code == 303  # the session itself is gone
