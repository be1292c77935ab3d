"""The watch page and the embeddable player in real Chromium, playing a stream ffmpeg publishes."""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import create_stream, eventually, wait_status
from tests.mediatools import FFMPEG, ffmpeg_publish, stop
from tests.web.helpers import (
    ConsoleLog,
    player_state,
    serve_site,
    wait_advancing,
    wait_playing,
)

from golive.app import Golive
from golive.delivery import mint_playback_token
from golive.store.views import PlaybackViewStore

pytestmark = pytest.mark.slow


# What the page's QoE reporter sends, kept in `window.__qoe` (a beacon's body does not
# show in the browser's request events).
QOE_SPY = """
window.__qoe = [];
const keep = (body) => { try { window.__qoe.push(...JSON.parse(body).events); } catch {} };
const beacon = navigator.sendBeacon.bind(navigator);
navigator.sendBeacon = (url, data) => {
  if (String(url).includes("/qoe/")) data.text().then(keep);
  return beacon(url, data);
};
const fetched = window.fetch.bind(window);
window.fetch = (url, init) => {
  if (String(url).includes("/qoe/") && init && typeof init.body === "string") keep(init.body);
  return fetched(url, init);
};
"""


@contextlib.contextmanager
def _serve_page(html: str) -> Iterator[str]:
    """A one-page web site on its own port: the other origin of embed tests."""
    body = html.encode()
    with serve_site(lambda path: (body, "text/html")) as base:
        yield f"{base}/host.html"


async def _live(node: Golive, api: httpx.AsyncClient, source: Path) -> tuple[dict[str, Any], Any]:
    stream = await create_stream(api)
    proc = ffmpeg_publish(source, node.rtmp_url(stream["stream_key"]), loop=True)
    await wait_status(api, stream["id"], "active")
    pid = stream["playback_ids"][0]["id"]

    async def playlist_ready() -> bool:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
            response = await client.get(f"/watch/{pid}/status")
            return bool(response.json()["live"])

    await eventually(playlist_ready, timeout=30, what="the stream to be live")
    return stream, proc


async def test_watch_page_plays_live_stream(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any, artifacts: Path
) -> None:
    stream, proc = await _live(node, api, source_480p)
    pid = stream["playback_ids"][0]["id"]
    try:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        console = ConsoleLog(page)
        await page.add_init_script(QOE_SPY)
        await page.goto(f"{node.http_url}/watch/{pid}")
        await wait_playing(page)
        await wait_advancing(page, 1.5)
        assert await player_state(page) == "playing"

        # The delay readout settles below 3 s behind live.
        await page.wait_for_function(
            "() => { const d = Number(document.getElementById('player').dataset.delay);"
            " return d > 0 && d < 3; }",
            timeout=30_000,
        )
        readout = await page.inner_text(".player-delay")
        assert re.fullmatch(r"\d+\.\d s behind", readout), readout
        assert await page.is_visible(".badge-live")
        assert await page.inner_text("#title") == stream["name"]
        await page.screenshot(path=str(artifacts / "watch-page.png"))
        # Pause holds the picture while the broadcast goes on (the readout shows it falling
        # behind); the k key, wherever focus is in the player, plays on from there.
        paused_at = await page.evaluate("performance.now()")
        await page.click(".player-play")
        await page.wait_for_function("() => document.querySelector('video').paused")
        await page.locator('.player-play[aria-label="Play"]').wait_for()  # its event comes after
        await page.wait_for_function(
            "() => Number(document.getElementById('player').dataset.delay) > 4", timeout=30_000)
        await page.keyboard.press("k")
        await wait_advancing(page, 1.0)
        await page.locator('.player-play[aria-label="Pause"]').wait_for()
        behind = float(await page.get_attribute("#player", "data-delay") or 0)
        assert behind > 3.5  # on from where it paused
        # A pause that outlasts the playlist's window (six 1 s segments, no DVR here) plays
        # on at live.
        await page.keyboard.press("k")
        await page.wait_for_function(
            "() => Number(document.getElementById('player').dataset.delay) > 12", timeout=30_000)
        live_again_at = await page.evaluate("performance.now()")
        await page.keyboard.press("k")
        await page.wait_for_function(
            "() => Number(document.getElementById('player').dataset.delay) < 3", timeout=30_000)
        # QoE: no latency sample while the viewer kept the picture behind live (their doing,
        # not the stream's), and each pause, reported (in ms) when the picture played again,
        # is no watch time. Leaving the page sends what is queued.
        await page.evaluate("() => dispatchEvent(new Event('pagehide'))")
        await page.wait_for_function(
            "() => window.__qoe.filter(e => e.type === 'pause').length >= 2")
        sent: list[dict[str, Any]] = await page.evaluate("window.__qoe")
        chosen = [e for e in sent if e["type"] == "latency" and paused_at < e["t"] < live_again_at]
        assert chosen == [], chosen
        pauses = [e["ms"] for e in sent if e["type"] == "pause"]
        assert pauses[0] > 2000 and pauses[1] > 6000, pauses
        # On a phone the chat goes below the video.
        await page.set_viewport_size({"width": 390, "height": 844})
        video_box = await page.locator("#player").bounding_box()
        chat_box = await page.locator("#chat").bounding_box()
        assert video_box is not None and chat_box is not None
        assert chat_box["y"] >= video_box["y"] + video_box["height"]
        assert video_box["width"] <= 390
        # Every control of the bar still fits in the player, the last one too.
        last = await page.locator(".player-fullscreen").bounding_box()
        assert last is not None and last["x"] + last["width"] <= video_box["x"] + video_box["width"]
        await page.screenshot(path=str(artifacts / "watch-page-phone.png"), full_page=True)
        assert console.errors == []
    finally:
        stop(proc)


def _publish_sound_that_stops(url: str) -> subprocess.Popen[bytes]:
    """30 s of picture whose sound ends 4 s in, encoded as it is sent, as an encoder would
    (ffmpeg's muxer would otherwise hold the picture for up to 10 s, waiting for sound to
    interleave)."""
    return subprocess.Popen(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin",
         "-re", "-t", "30", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
         "-re", "-t", "4", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
         "-bf", "0", "-c:a", "aac", "-b:a", "96k", "-max_interleave_delta", "100000",
         "-f", "flv", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


async def test_the_picture_plays_on_when_the_publishers_sound_stops(
    node: Golive, api: httpx.AsyncClient, browser: Any
) -> None:
    # The publisher's sound ends 4 s in while its picture goes on (an audio encoder that
    # failed, a source removed). The renditions keep their audio (silence), so the player
    # neither freezes where the sound ended nor sees its playlists end.
    stream = await create_stream(api)
    proc = _publish_sound_that_stops(node.rtmp_url(stream["stream_key"]))
    pid = stream["playback_ids"][0]["id"]
    try:
        page = await browser.new_page()
        await page.goto(f"{node.http_url}/watch/{pid}")
        await wait_playing(page)
        await page.wait_for_function("document.querySelector('video').currentTime > 5",
                                     timeout=30_000, polling=250)
        await wait_advancing(page, 8)  # well past the end of the sound
        assert await player_state(page) == "playing"
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
            multivariant = (await client.get(f"/live/{pid}.m3u8")).text
            assert "mp4a" in multivariant  # still with its audio
            media = (await client.get("/live/" + next(
                line for line in multivariant.splitlines() if line.endswith(".m3u8")))).text
            assert "#EXT-X-ENDLIST" not in media
        events = (await api.get(f"/live-streams/{stream['id']}/events")).json()["data"]
        codes = [(event.get("data") or {}).get("code") for event in events]
        assert "presentation_restarted" not in codes, codes
    finally:
        stop(proc)


async def test_offline_page_starts_playing_when_stream_goes_live(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any
) -> None:
    stream = await create_stream(api)
    pid = stream["playback_ids"][0]["id"]
    page = await browser.new_page()
    console = ConsoleLog(page)
    await page.goto(f"{node.http_url}/watch/{pid}")
    await page.wait_for_function(
        "document.getElementById('player').dataset.state === 'offline'", timeout=10_000
    )
    assert "offline" in (await page.inner_text(".player-message")).lower()
    await page.evaluate("window.sameDocument = true")

    proc = ffmpeg_publish(source_480p, node.rtmp_url(stream["stream_key"]), loop=True)
    try:
        await wait_playing(page, timeout=60)
        await wait_advancing(page, 1)
        assert await page.evaluate("window.sameDocument === true"), "the page was reloaded"
        assert console.errors == []
    finally:
        stop(proc)


async def test_playback_resumes_after_the_publisher_returns(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any
) -> None:
    stream, proc = await _live(node, api, source_480p)
    pid = stream["playback_ids"][0]["id"]
    try:
        page = await browser.new_page()
        await page.goto(f"{node.http_url}/watch/{pid}")
        await wait_playing(page)
        await page.evaluate("window.sameDocument = true")
        stop(proc)
        # The reconnect window (2 s in tests) passes: the broadcast ends, the page waits.
        await page.wait_for_function(
            "['offline', 'reconnecting', 'buffering', 'error']"
            ".includes(document.getElementById('player').dataset.state)",
            timeout=30_000,
        )
        await wait_status(api, stream["id"], "idle")
        proc = ffmpeg_publish(source_480p, node.rtmp_url(stream["stream_key"]), loop=True)
        await wait_status(api, stream["id"], "active")
        await wait_playing(page, timeout=60)
        await wait_advancing(page, 1)
        assert await page.evaluate("window.sameDocument === true")
    finally:
        stop(proc)


async def test_quality_menu_switches_rendition(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any
) -> None:
    stream, proc = await _live(node, api, source_480p)
    pid = stream["playback_ids"][0]["id"]
    try:
        page = await browser.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        await page.goto(f"{node.http_url}/watch/{pid}")
        await wait_playing(page)
        await page.wait_for_function(
            "document.querySelectorAll('.player-quality select option').length >= 3", timeout=10_000
        )
        assert await page.is_visible(".player-quality select")
        # A source without captions offers no CC button.
        assert not await page.is_visible(".player-captions")
        options = await page.eval_on_selector_all(
            ".player-quality select option", "os => os.map(o => [o.value, o.textContent])"
        )
        assert options[0][1].startswith("Auto")
        playing = await page.evaluate("document.getElementById('player').dataset.level")
        choice = next((value, text) for value, text in options[1:] if not text.startswith(playing))
        target = choice[1].split()[0]  # "360p"
        requests.clear()
        await page.select_option(".player-quality select", choice[0])

        pattern = re.compile(rf"/live/{pid}/{re.escape(target)}\.m3u8")

        async def loaded() -> bool:
            return any(pattern.search(url) for url in requests)

        await eventually(loaded, timeout=15, what=f"a request for the {target} playlist")
        await page.wait_for_function(
            f"document.getElementById('player').dataset.level === {target!r}", timeout=15_000
        )
        await wait_advancing(page, 1)
        assert (
            await page.eval_on_selector(
                ".player-quality select", "s => s.selectedOptions[0].textContent"
            )
            == f"{target} ✓"
        )
    finally:
        stop(proc)


async def test_qoe_events_are_stored_for_the_view(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any
) -> None:
    stream, proc = await _live(node, api, source_480p)
    pid = stream["playback_ids"][0]["id"]
    try:
        page = await browser.new_page()
        await page.goto(f"{node.http_url}/watch/{pid}")
        await wait_playing(page)
        assert node.store is not None
        views = PlaybackViewStore(node.store.engine)

        async def stored() -> Any:
            # The page goes away: the reporter sends what it has queued with sendBeacon.
            # It queues a latency sample only every 5 s of playback, so until one is
            # stored the page leaves again, each time sending what was queued since.
            await page.evaluate("dispatchEvent(new Event('pagehide'))")
            found = await views.list_views(stream["id"])
            if not found:
                return None
            events = await views.list_events(found[0].id)
            types = {e.type for e in events}
            return (
                (found[0], events)
                if {"start", "first_frame", "quality", "latency"} <= types
                else None
            )

        view, events = await eventually(stored, timeout=40, what="QoE events in the store")
        assert view.playback_id == pid
        assert "Chrome" in view.user_agent
        by_type = {e.type: e for e in events}
        assert 0 < by_type["first_frame"].data["ms"] < 60_000
        assert by_type["start"].data["muted"] is True
        assert (by_type["start"].data["protocol"], by_type["start"].data["player"]) == (
            "hls", "hls.js")
        assert by_type["quality"].data["height"] in (360, 480)
        assert 0 < by_type["latency"].data["seconds"] < 10
        assert all(
            view.started_at.timestamp() - 60 < e.at.timestamp() < view.last_seen_at.timestamp() + 1
            for e in events
        )

        # The viewer shows up in the status the page polls (once its short cache expires).
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:

            async def counted() -> Any:
                status = (await client.get(f"/watch/{pid}/status")).json()
                return status if status["viewers"] >= 1 else None

            await eventually(counted, what="the viewer counted in the status")

        # The API's QoE of the stream, while it is live: this view's startup and latency.
        r = await api.get(f"/live-streams/{stream['id']}/qoe", params={"group_by": "player"})
        assert r.status_code == 200, r.text
        qoe = r.json()["data"]
        summary = qoe["summary"]
        assert summary["views"] == 1 and summary["started_views"] == 1
        assert summary["playback_failure_percentage"] == 0.0
        assert summary["exits_before_video_start_percentage"] == 0.0
        assert 0 < summary["startup_time_p50_s"] == summary["startup_time_p95_s"] < 60
        assert summary["startup_time_p50_s"] == by_type["first_frame"].data["ms"] / 1000
        assert 0 < summary["live_latency_p50_s"] <= summary["live_latency_p95_s"] < 10
        assert summary["watch_time_s"] > 0
        assert sum(summary["rendition_time_share"].values()) == pytest.approx(1.0)
        assert 0 <= summary["viewer_experience_score"] <= 100
        assert list(qoe["groups"]) == ["hls.js"]
        [broadcast] = await node.store.list_broadcasts(stream["id"])
        r = await api.get(f"/broadcasts/{broadcast.id}/qoe")
        assert r.status_code == 200, r.text
        assert r.json()["data"]["summary"]["views"] == 1
    finally:
        stop(proc)


async def test_embed_page_plays_in_an_iframe(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any
) -> None:
    stream, proc = await _live(node, api, source_480p)
    pid = stream["playback_ids"][0]["id"]
    try:
        async with httpx.AsyncClient(base_url=node.http_url) as client:
            response = await client.get(f"/embed/{pid}")
            watch = await client.get(f"/watch/{pid}")
        assert response.status_code == 200
        assert response.headers["content-security-policy"] == "frame-ancestors *"
        assert "x-frame-options" not in response.headers
        assert watch.headers["x-frame-options"] == "SAMEORIGIN"

        page = await browser.new_page()
        console = ConsoleLog(page)
        await page.goto(f"{node.http_url}/watch/{pid}")
        snippet = await page.input_value("#embed-snippet")
        assert f'src="{node.http_url}/embed/{pid}"' in snippet

        # Another site (another origin: its own port) embeds the snippet.
        host = await browser.new_page()
        host_console = ConsoleLog(host)
        with _serve_page(f"<!doctype html><title>host</title><body>{snippet}</body>") as other:
            await host.goto(other)
            iframe = await host.wait_for_selector("iframe")
            frame = await iframe.content_frame()
            assert frame is not None and f"/embed/{pid}" in frame.url
            await wait_playing(frame)
            assert await frame.is_visible(".badge-live")
            assert not await frame.is_visible("#chat")
        assert console.errors == []
        assert host_console.errors == []
    finally:
        stop(proc)


async def test_unknown_and_signed_playback_ids(
    node: Golive, api: httpx.AsyncClient, browser: Any
) -> None:
    stream = await create_stream(api)
    response = await api.post(
        f"/live-streams/{stream['id']}/playback-ids", json={"policy": "signed"}
    )
    assert response.status_code in (200, 201), response.text
    signed = response.json()["data"]["id"]
    page = await browser.new_page()
    answer = await page.goto(f"{node.http_url}/watch/doesnotexist")
    assert answer is not None and answer.status == 404
    assert "not found" in (await page.inner_text("h1")).lower()
    answer = await page.goto(f"{node.http_url}/watch/{signed}")
    assert answer is not None and answer.status == 403
    assert "needs a token" in await page.inner_text("h1")
    answer = await page.goto(f"{node.http_url}/watch/{signed}?token=abc.def")
    assert answer is not None and answer.status == 403
    assert "not a JWT" in await page.inner_text("main")
    key = (await api.post("/signing-keys", json={"algorithm": "ES256"})).json()["data"]
    token = mint_playback_token(key["private_key"], key_id=key["id"], playback_id=signed,
                                audience="v", expires_in=600)
    chat_token = mint_playback_token(key["private_key"], key_id=key["id"], playback_id=signed,
                                     audience="c", expires_in=600)
    answer = await page.goto(f"{node.http_url}/watch/{signed}?token={token}"
                             f"&chat_token={chat_token}")
    assert answer is not None and answer.status == 200
    config = await page.evaluate("JSON.parse(document.getElementById('golive-config').textContent)")
    assert config["manifestUrl"] == f"/live/{signed}.m3u8?token={token}"
    assert config["statusUrl"] == f"/watch/{signed}/status?token={token}"
    assert config["chatUrl"] == f"/chat/{signed}?playback_token={chat_token}"
