"""Players keep playing while the encoder is starved of CPU and gives a rendition up.

The node's ffmpeg is starved (tests/starvation.py) until the ladder is down to its last
step (360p given up, its playlist going on with EXT-X-GAP), then fed again until the
full ladder is back. The player must not raise a fatal error (none is forgiven: the part
a preload hint named before a degrade step restarted the encoder answers an empty 204,
not a 404 Shaka fails on), and no playlist request of the page may fail: a rendition it
loaded never answers 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from tests.e2e.conftest import (  # noqa: F401  (source_flv: fixture)
    ADMIN,
    create_stream,
    eventually,
    source_flv,
    wait_status,
)
from tests.mediatools import ffmpeg_publish, stop
from tests.starvation import DegradeWarnings, Starvation, starved_golive, transcoder_pid
from tests.web.test_players import (
    Sample,
    page_url,
    players,  # noqa: F401  (fixture)
    wait_first_frame,
    wait_played,
)

from golive.app import Golive

# serial: it starves the CPU on purpose, so it runs alone (make test).
pytestmark = [pytest.mark.slow, pytest.mark.serial]

# What the page holds when playback does not go on: the element's position, buffered
# ranges and state, and the player's warnings (the failure says why, not only that).
PLAYER_STATE = """() => {
  const video = document.querySelector('video');
  const buffered = [];
  for (let i = 0; i < video.buffered.length; i++) {
    buffered.push([video.buffered.start(i), video.buffered.end(i)]);
  }
  return {
    currentTime: video.currentTime, buffered, paused: video.paused,
    readyState: video.readyState, seeking: video.seeking,
    error: video.error && video.error.message, warnings: window.probe.warnings.slice(-20),
  };
}"""


@pytest.fixture
async def starved_node(tmp_path: Path) -> AsyncIterator[tuple[Golive, Starvation]]:
    async with starved_golive(tmp_path) as started:
        yield started


@pytest.mark.timeout(420)
@pytest.mark.parametrize("player", ["hlsjs", "shaka"])
async def test_player_plays_through_a_starved_encoder(
    starved_node: tuple[Golive, Starvation],
    source_flv: Path,  # noqa: F811
    browser: Any,
    players: str,  # noqa: F811
    player: str,
) -> None:
    node, starvation = starved_node
    warnings = DegradeWarnings(node)
    async with httpx.AsyncClient(
        base_url=f"{node.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ) as api:  # fmt: skip
        stream = await create_stream(api, name="starve", profile="starve")
        proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, stream["id"], "active")
            manifest = f"{node.http_url}/live/{stream['playback_ids'][0]['id']}.m3u8"

            async def complete_ladder() -> bool:
                async with httpx.AsyncClient(timeout=15) as client:
                    response = await client.get(manifest)
                    return response.text.count("#EXT-X-STREAM-INF") == 2

            await eventually(complete_ladder, timeout=60, what="both renditions listed")
            page = await browser.new_page()
            answers: list[tuple[str, int]] = []
            page.on("response", lambda r: answers.append((r.url, r.status)))
            await page.goto(page_url(players, player, manifest))
            await wait_first_frame(page)
            first = await Sample.take(page)
            assert first.fatal == [], first.fatal
            await wait_played(page, first.current_time, 3, timeout=60)

            starvation.start(transcoder_pid(node, stream["id"]))
            await warnings.step("slow_encode", 3)  # 360p given up
            during = await Sample.take(page)
            # Starved this hard even 180p alone runs below real time: the player may wait
            # for media, but must not fail; a while on the gapped ladder.
            await asyncio.sleep(10)
            starved = await Sample.take(page)
            assert starved.fatal == [], f"{player} {starved.version}: {starved.fatal}"
            starvation.stop(transcoder_pid(node, stream["id"]))
            await warnings.step("encode_recovered", 0)
            back = await Sample.take(page)
            try:
                await wait_played(page, back.current_time, 5, timeout=90)  # plays on afterwards
            except PlaywrightTimeoutError:
                state = await page.evaluate(PLAYER_STATE)
                pytest.fail(
                    f"{player} did not play on after recovery: {state}; degrade steps"
                    f" {warnings.steps()}; last answers {answers[-12:]}"
                )
            last = await Sample.take(page)
        finally:
            starvation.stop(None)
            warnings.close()
            stop(proc)
    assert last.fatal == [], f"{player} {last.version}: {last.fatal}"
    # No playlist answer but 200, except 503 to a blocking reload the starved encoder could
    # not satisfy in time (RFC 8216bis 6.2.5.2): a rendition the player holds never 404s.
    failed = [
        (url, status)
        for url, status in answers
        if ".m3u8" in url and status != 200 and not (status == 503 and "_HLS_msn=" in url)
    ]
    assert not failed, failed[:5]
    playlists = {url.split("?")[0].rsplit("/", 1)[-1] for url, _ in answers if ".m3u8" in url}
    media = [status for url, status in answers if url.split("?")[0].endswith(".m4s")]
    print(
        f"{player} {last.version}: playlists {sorted(playlists)}, media answers {len(media)}"
        f" ({media.count(404)} 404 on gaps, {media.count(204)} 204 on hinted parts never"
        f" produced), stalls {last.stalls}, delay {last.delay},"
        f" played while starved {starved.current_time - during.current_time:.1f} s"
    )
