"""A signed stream's recording, end to end: its page plays in Chromium with a playback
token (aud v) and replays the chat with a chat token (aud c), and says why without one;
its MP4 plays with a v token, its thumbnails and storyboard with a t token."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from tests.chat.conftest import ChatClient
from tests.e2e.conftest import (
    create_stream,
    eventually,
    wait_process,
    wait_ready_asset,
    wait_status,
)
from tests.mediatools import ffmpeg_publish, make_source
from tests.web.helpers import ConsoleLog, wait_playing
from tests.web.test_chat_replay import SHOWN

from golive.app import Golive
from golive.delivery import Audience, mint_playback_token

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def source_8s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("media") / "source-8s.flv", seconds=8,
                       size="854x480", video_kbps=1500)


async def test_signed_recording_plays_with_its_tokens_and_says_why_without(
    node: Golive, api: httpx.AsyncClient, source_8s: Path, browser: Any, artifacts: Path
) -> None:
    key = (await api.post("/signing-keys", json={"algorithm": "ES256"})).json()["data"]

    def token(playback_id: str, aud: Audience) -> str:
        return mint_playback_token(key["private_key"], key_id=key["id"],
                                   playback_id=playback_id, audience=aud, expires_in=600)

    stream = await create_stream(api, name="private show", playback_policy="signed",
                                 recording=True, reconnect_window=1)
    live_pid = stream["playback_ids"][0]["id"]
    proc = ffmpeg_publish(source_8s, node.rtmp_url(stream["stream_key"]))
    await wait_status(api, stream["id"], "active")
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
        async def live() -> bool:
            status = await http.get(f"/watch/{live_pid}/status",
                                    params={"token": token(live_pid, "v")})
            return bool(status.json()["live"])

        await eventually(live, timeout=30, what="the stream to be live")
        ws = await websockets.connect(f"ws://127.0.0.1:{node.http_port}/chat/{live_pid}"
                                      f"?playback_token={token(live_pid, 'c')}", open_timeout=10)
        chat = ChatClient(ws)
        try:
            await chat.send(type="join", name="Ann")
            await chat.wait_type("identity")
            await chat.send(type="send", text="private goal!")
            message = await chat.wait_type("message", text="private goal!")
        finally:
            await chat.close()
        assert await wait_process(proc) == 0

        asset = await wait_ready_asset(api, stream["id"])
        pid = asset["playback_ids"][0]["id"]
        assert asset["playback_ids"][0]["policy"] == "signed"
        v, c, t = token(pid, "v"), token(pid, "c"), token(pid, "t")

        # The page: refused without a token, or with another playback id's, saying why.
        page = await http.get(f"/watch/{pid}")
        assert page.status_code == 403
        assert "This recording needs a token" in page.text
        assert "a playback token is required" in page.text
        page = await http.get(f"/watch/{pid}", params={"token": token(live_pid, "v")})
        assert page.status_code == 403
        assert "This recording cannot be played here" in page.text
        page = await http.get(f"/watch/{pid}", params={"token": v})
        assert page.status_code == 200 and 'name="robots" content="noindex' in page.text
        # Its seek bar previews only with a thumbnail token (aud t) the thumbnails take.
        assert page_config(page.text)["previewUrl"] is None
        for wrong in (v, token(live_pid, "t"), "x" * 100):
            page = await http.get(f"/watch/{pid}", params={"token": v, "thumbnail_token": wrong})
            assert page.status_code == 200 and page_config(page.text)["previewUrl"] is None
        page = await http.get(f"/watch/{pid}", params={"token": v, "thumbnail_token": t})
        config = page_config(page.text)
        assert config["previewUrl"] == f"/thumbnail/{pid}.jpg" and config["previewToken"] == t
        too_long = await http.get(f"/watch/{pid}", params={"token": v,
                                                            "thumbnail_token": "x" * 5000})
        assert too_long.status_code == 400 and "thumbnail token" in too_long.text

        # Chat replay: aud c only.
        sent = datetime.fromisoformat(message["sent_at"].replace("Z", "+00:00")).timestamp()
        span = {"from": f"{sent - 60:.3f}", "to": f"{sent + 60:.3f}"}
        for given, status in ((None, 403), (v, 403), (c, 200)):
            replay = await http.get(f"/chat/{pid}/replay", params={
                **span, **({"playback_token": given} if given else {})})
            assert replay.status_code == status, replay.text
        texts = [m["text"] for m in replay.json()["messages"]]
        assert texts == ["private goal!"]
        assert "public" not in replay.headers["cache-control"]

        # The progressive MP4 with a playback token; thumbnails with a thumbnail token.
        assert (await http.get(f"/vod/{pid}/high.mp4")).status_code == 403
        mp4 = await http.get(f"/vod/{pid}/high.mp4", params={"token": v},
                             headers={"Range": "bytes=0-15"})
        assert mp4.status_code == 206 and mp4.content[4:8] == b"ftyp"
        still = {"time": "2"}
        assert (await http.get(f"/thumbnail/{pid}.jpg", params={**still, "token": v})
                ).status_code == 403
        jpeg = await http.get(f"/thumbnail/{pid}.jpg", params={**still, "token": t})
        assert jpeg.status_code == 200 and jpeg.content[:3] == b"\xff\xd8\xff"
        # The storyboard with a thumbnail token too, which every cue's still carries on.
        assert (await http.get(f"/storyboard/{pid}.vtt")).status_code == 403
        assert (await http.get(f"/storyboard/{pid}.vtt", params={"token": v})).status_code == 403
        board = await http.get(f"/storyboard/{pid}.vtt", params={"token": t})
        assert board.status_code == 200, board.text
        stills = [line for line in board.text.split("\n") if line.startswith("/thumbnail/")]
        assert stills and all(line.endswith(f"&token={t}") for line in stills)
        assert (await http.get(stills[-1])).status_code == 200

    browser_page = await browser.new_page(viewport={"width": 1280, "height": 800})
    await browser_page.goto(f"{node.http_url}/watch/{pid}")
    assert "a playback token is required" in await browser_page.inner_text("body")

    # With a playback token the recording plays; with only that, the chat replay says why.
    console = ConsoleLog(browser_page)
    await browser_page.goto(f"{node.http_url}/watch/{pid}?token={v}")
    await wait_playing(browser_page)
    await browser_page.wait_for_function(
        "() => document.getElementById('chat-state').textContent.includes('token')",
        timeout=15_000)
    assert "playback token is required" in await browser_page.inner_text("#chat-state")

    # With both tokens the chat replays beside it.
    await browser_page.goto(f"{node.http_url}/watch/{pid}?token={v}&chat_token={c}")
    assert await browser_page.inner_text("#chat-state") == "replay"
    await wait_playing(browser_page)
    await browser_page.wait_for_function(SHOWN, arg=message["id"], timeout=30_000, polling=100)
    await browser_page.screenshot(path=str(artifacts / "signed-asset-watch.png"))
    # The 403 of the replay without a chat token is the only error the browser logged.
    assert all("403" in error for error in console.errors), console.errors

    # With a thumbnail token its seek bar previews where it would go, the token on each still.
    await browser_page.goto(f"{node.http_url}/watch/{pid}?token={v}&thumbnail_token={t}")
    await wait_playing(browser_page)
    box = await browser_page.locator(".player-seek").bounding_box()
    assert box is not None
    await browser_page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await browser_page.wait_for_function(
        "(t) => { const i = document.querySelector('.player-preview img');"
        " return i && i.src.includes('token=' + t) && i.complete && i.naturalWidth === 160; }",
        arg=t, timeout=30_000)


def page_config(html: str) -> dict[str, Any]:
    """The player's configuration a watch page carries."""
    found = re.search(r'<script type="application/json" id="golive-config">(.*?)</script>',
                      html, re.S)
    assert found is not None
    return dict(json.loads(found[1]))
