"""Chat replay in real Chromium: a message shows beside the video when the video reaches
the moment it was sent (by the player's program date-time), also after seeks: on a
recorded asset's page, and on a live stream's page with `?chat=replay`.
"""

from __future__ import annotations

import asyncio
import math
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
from tests.mediatools import ffmpeg_publish, make_source, stop
from tests.web.helpers import ConsoleLog, wait_advancing, wait_playing

from golive.app import Golive

pytestmark = pytest.mark.slow

# The line of a message, once shown: where it appeared on the player's clock, and when.
SHOWN = """(id) => {
  const line = document.querySelector(`#chat-log [data-id="${id}"]`);
  if (!line) return null;
  return {shownAt: Number(line.dataset.shownAt), wall: Date.now(),
          delay: Number(document.getElementById('player').dataset.delay)};
}"""


async def test_replayed_message_appears_when_the_video_reaches_it(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, browser: Any, artifacts: Path
) -> None:
    stream = await create_stream(api)
    pid = stream["playback_ids"][0]["id"]
    proc = ffmpeg_publish(source_480p, node.rtmp_url(stream["stream_key"]), loop=True)
    chat: ChatClient | None = None
    try:
        await wait_status(api, stream["id"], "active")

        async def live() -> bool:
            async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
                return bool((await client.get(f"/watch/{pid}/status")).json()["live"])

        await eventually(live, timeout=30, what="the stream to be live")
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        console = ConsoleLog(page)
        await page.goto(f"{node.http_url}/watch/{pid}?chat=replay")
        await wait_playing(page)
        await wait_advancing(page, 1)
        assert await page.inner_text("#chat-state") == "replay"
        assert await page.is_hidden("#chat-join")
        await page.wait_for_function(
            "() => Number(document.getElementById('player').dataset.delay) > 0",
            timeout=30_000)

        ws = await websockets.connect(
            f"ws://127.0.0.1:{node.http_port}/chat/{pid}", open_timeout=10)
        chat = ChatClient(ws)
        await chat.send(type="join", name="Ann")
        await chat.wait_type("identity")
        await chat.send(type="send", text="goal!")
        message = await chat.wait_type("message", text="goal!")
        sent_at = _epoch_ms(message["sent_at"])

        shown = await (await page.wait_for_function(
            SHOWN, arg=message["id"], timeout=30_000, polling=100)).json_value()
        # On the player's clock it appeared at the moment it was sent, not before it...
        assert 0 <= shown["shownAt"] - sent_at <= 1000, (shown, sent_at)
        # ... and, read off the wall clock and the player's own delay readout, the same.
        assert abs((shown["wall"] - shown["delay"] * 1000) - sent_at) <= 1500, (shown, sent_at)
        assert await page.inner_text(f'#chat-log [data-id="{message["id"]}"] .chat-text') \
            == "goal!"
        await page.screenshot(path=str(artifacts / "watch-chat-replay.png"))

        # Seek back to before the message: it goes, and comes back when the video gets there.
        await page.evaluate("document.querySelector('video').currentTime -= 4")
        await page.wait_for_function(
            "(id) => !document.querySelector(`#chat-log [data-id=\"${id}\"]`)",
            arg=message["id"], timeout=10_000, polling=100)
        again = await (await page.wait_for_function(
            SHOWN, arg=message["id"], timeout=30_000, polling=100)).json_value()
        assert 0 <= again["shownAt"] - sent_at <= 1000, (again, sent_at)
        assert console.errors == []
    finally:
        if chat is not None:
            await chat.close()
        stop(proc)


def _epoch_ms(iso: str) -> float:
    """A `sent_at` in whole milliseconds, as the page's `Date.parse` reads it (it drops
    the microseconds): a line shown in the millisecond its message was sent is not early
    (CI saw shownAt 0.849 ms "before" the unrounded time)."""
    return math.floor(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture(scope="module")
def source_12s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("media") / "source-12s.flv", seconds=12,
                       size="854x480", video_kbps=1500)


async def test_recording_replays_its_chat_in_time_with_the_video(
    node: Golive, api: httpx.AsyncClient, source_12s: Path, browser: Any, artifacts: Path
) -> None:
    stream = await create_stream(api, name="show", recording=True, reconnect_window=1)
    live_pid = stream["playback_ids"][0]["id"]
    proc = ffmpeg_publish(source_12s, node.rtmp_url(stream["stream_key"]))
    await wait_status(api, stream["id"], "active")
    ws = await websockets.connect(f"ws://127.0.0.1:{node.http_port}/chat/{live_pid}",
                                  open_timeout=10)
    chat = ChatClient(ws)
    try:
        await chat.send(type="join", name="Ann")
        await chat.wait_type("identity")
        await asyncio.sleep(3)  # a few seconds into the broadcast, on the publisher's pace
        await chat.send(type="send", text="recorded goal!")
        message = await chat.wait_type("message", text="recorded goal!")
    finally:
        await chat.close()
    sent_at = _epoch_ms(message["sent_at"])
    assert await wait_process(proc) == 0

    asset = await wait_ready_asset(api, stream["id"])
    pid = asset["playback_ids"][0]["id"]
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    console = ConsoleLog(page)
    await page.goto(f"{node.http_url}/watch/{pid}")
    assert await page.inner_text("#chat-state") == "replay"
    await wait_playing(page)
    shown = await (await page.wait_for_function(
        SHOWN, arg=message["id"], timeout=30_000, polling=100)).json_value()
    assert 0 <= shown["shownAt"] - sent_at <= 1000, (shown, sent_at)
    position = await page.evaluate("document.querySelector('video').currentTime")
    assert 1.5 < position < asset["duration"] - 1  # it came while the video played on
    await page.screenshot(path=str(artifacts / "vod-chat-replay.png"))

    # Back to the start: the message goes, and comes back at its moment again.
    await page.evaluate("document.querySelector('video').currentTime = 0")
    await page.wait_for_function(
        "(id) => !document.querySelector(`#chat-log [data-id=\"${id}\"]`)",
        arg=message["id"], timeout=10_000, polling=100)
    again = await (await page.wait_for_function(
        SHOWN, arg=message["id"], timeout=30_000, polling=100)).json_value()
    assert 0 <= again["shownAt"] - sent_at <= 1000, (again, sent_at)
    # Back to the start, then past it: it is there at once, with what came before.
    await page.evaluate("document.querySelector('video').currentTime = 0")
    await page.wait_for_function(
        "(id) => !document.querySelector(`#chat-log [data-id=\"${id}\"]`)",
        arg=message["id"], timeout=10_000, polling=100)
    await page.evaluate(f"document.querySelector('video').currentTime = {asset['duration'] - 1.5}")
    past = await (await page.wait_for_function(
        SHOWN, arg=message["id"], timeout=10_000, polling=100)).json_value()
    assert past["shownAt"] > sent_at + 1000  # shown as history, not at its moment
    assert console.errors == []
