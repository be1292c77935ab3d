"""Closed captions a publisher's pictures carry reach viewers, live and recorded.

A real ffmpeg publishes H.264 carrying CEA-608 captions (CC1, as broadcast encoders,
caption services and OBS send them, and a second language on CC3) over RTMP. The node's
encoder keeps them in every rendition; the multivariant playlists (live and VOD) offer
both channels, so Shaka Player shows them in Chromium (as Safari's own player does), and
so does golive's watch page (hls.js) once the viewer presses "CC" (CC1, then CC3 at the
next press); the recording's MP4 keeps them too. ffmpeg's CEA-608 decoder reads CC1 back.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.captions import captioned_flv, read_captions
from tests.e2e.conftest import ADMIN, create_stream, eventually, wait_process, wait_ready_asset
from tests.llhls_rules import check_multivariant
from tests.mediatools import ffmpeg_publish
from tests.web.helpers import wait_playing
from tests.web.test_players import page_url, players  # noqa: F401  (a fixture)

from golive.app import Golive

pytestmark = pytest.mark.slow

SECONDS = 16

CAPTION_CUES = """() => {
  const tracks = Array.from(document.querySelector('video').textTracks).filter(t => t.cues);
  return tracks.flatMap(t => Array.from(t.cues).map(c => c.text));
}"""
SHOWN_CUES = """() => {
  const tracks = Array.from(document.querySelector('video').textTracks)
    .filter(t => t.mode === 'showing' && t.cues);
  return tracks.flatMap(t => Array.from(t.cues).map(c => c.text));
}"""


@pytest.fixture(scope="module")
def captioned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return captioned_flv(tmp_path_factory.mktemp("cc") / "captioned.flv", seconds=SECONDS,
                         cc3=True)


def numbers(captions: list[str]) -> list[int]:
    return [int(text.split()[1]) for text in captions]


async def test_captions_in_the_pictures_are_offered_live_and_in_the_recording(
    node: Golive, api: httpx.AsyncClient, captioned: Path, browser: Any, players: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    stream = await create_stream(api, name="captioned", recording=True, reconnect_window=1)
    pid = stream["playback_ids"][0]["id"]
    proc = ffmpeg_publish(captioned, node.rtmp_url(stream["stream_key"]))
    http = httpx.AsyncClient(base_url=node.http_url, timeout=30)
    page = await browser.new_page()
    watch = await browser.new_page()
    operator = await browser.new_page()
    try:
        async def offered() -> str | None:
            response = await http.get(f"/live/{pid}.m3u8")
            ok = response.status_code == 200 and 'INSTREAM-ID="CC3"' in response.text
            return response.text if ok else None

        multivariant = await eventually(offered, timeout=60, what="captions offered")
        check_multivariant(multivariant)
        assert multivariant.count('CLOSED-CAPTIONS="cc"') == multivariant.count("#EXT-X-STREAM-INF")
        assert 'INSTREAM-ID="CC1"' in multivariant and 'NAME="Captions CC3"' in multivariant

        # The rendition's own segments carry them (the encoder kept the SEI).
        uri = next(line for line in multivariant.splitlines() if line.endswith(".m3u8"))
        name = uri.rsplit("/", 1)[1].removesuffix(".m3u8")

        async def segments() -> list[str] | None:
            media = (await http.get(f"/live/{uri}")).text
            found = re.findall(rf"^{name}/seg-\d+\.m4s$", media, re.M)
            return found if len(found) >= 4 else None

        listed = await eventually(segments, timeout=60, what="four segments")
        media = (await http.get(f"/live/{uri}")).text
        init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', media)
        assert init is not None
        rendition = tmp_path / "rendition.mp4"
        parts = [(await http.get(f"/live/{pid}/{init[1]}")).content]
        parts += [(await http.get(f"/live/{pid}/{seg}")).content for seg in listed]
        rendition.write_bytes(b"".join(parts))
        live = numbers(read_captions(rendition))
        assert len(live) >= 2 and live == sorted(live), live

        # Shaka Player in Chromium shows them (a captions track, CC1, with the cues), and so
        # does the watch page (hls.js, LL-HLS parts) once the viewer turns them on.
        async def shaka() -> None:
            await page.goto(page_url(players, "shaka", f"{node.http_url}/live/{pid}.m3u8"))
            await page.wait_for_function("window.player && window.player.getTextTracks().length > 0",
                                         timeout=40_000, polling=250)
            await page.evaluate("""() => { const p = window.player;
                p.selectTextTrack(p.getTextTracks()[0]); }""")
            await page.wait_for_function(
                f"({CAPTION_CUES})().some(text => /CAPTION \\d+/.test(text))",
                timeout=40_000, polling=250)

        async def golive_player() -> None:
            await watch.goto(f"{node.http_url}/watch/{pid}")
            button = watch.locator(".player-captions")
            await button.click(timeout=40_000)  # shown once the playlist offers captions
            assert await button.get_attribute("aria-pressed") == "true"
            await watch.wait_for_function(
                f"({SHOWN_CUES})().some(text => /CAPTION \\d+/.test(text))",
                timeout=40_000, polling=250)
            shown = numbers(re.findall(r"CAPTION \d+", " ".join(await watch.evaluate(SHOWN_CUES))))
            assert shown == sorted(shown), shown
            assert await watch.evaluate("localStorage.getItem('golive.captions')") == "on"
            # The next press: the second channel (CC3) instead; the one after: off.
            await watch.wait_for_function(
                "Array.from(document.querySelector('video').textTracks).length >= 2",
                timeout=40_000, polling=250)
            await button.click()
            assert await button.get_attribute("aria-label") == "Captions: Captions CC3"
            await watch.wait_for_function(
                f"({SHOWN_CUES})().some(text => /LEYENDA \\d+/.test(text))",
                timeout=40_000, polling=250)
            assert not re.findall(r"CAPTION \d+", " ".join(await watch.evaluate(SHOWN_CUES)))
            await button.click()
            assert await button.get_attribute("aria-pressed") == "false"
            assert await watch.evaluate(SHOWN_CUES) == []

        async def studio() -> None:  # the operator sees them arrive
            await operator.goto(f"{node.http_url}/studio/login")
            await operator.fill("#token", ADMIN)
            await operator.click("button[type=submit]")
            await operator.wait_for_url(f"{node.http_url}/studio", timeout=10_000)
            await operator.goto(f"{node.http_url}/studio/streams/{stream['id']}")
            await operator.wait_for_function(
                "document.getElementById('fact-video').textContent.endsWith('captions (CC1, CC3)')",
                timeout=30_000, polling=250)

        await asyncio.gather(shaka(), golive_player(), studio())
        assert await wait_process(proc) == 0
    finally:
        proc.kill()
        await page.close()
        await watch.close()
        await operator.close()

    try:
        asset = await wait_ready_asset(api, stream["id"])
        assert asset["closed_captions"] is True and asset["caption_channels"] == ["CC3"]
        apid = asset["playback_ids"][0]["id"]
        vod = (await http.get(f"/vod/{apid}.m3u8")).text
        check_multivariant(vod)
        assert 'CLOSED-CAPTIONS="cc"' in vod and 'INSTREAM-ID="CC1"' in vod
        assert 'INSTREAM-ID="CC3"' in vod
        # The recording's watch page shows them too (hls.js, whole segments).
        recorded_page = await browser.new_page()
        try:
            await recorded_page.goto(f"{node.http_url}/watch/{apid}")
            await recorded_page.locator(".player-captions").click(timeout=40_000)
            await recorded_page.wait_for_function(
                f"({SHOWN_CUES})().some(text => /CAPTION \\d+/.test(text))",
                timeout=40_000, polling=250)
        finally:
            await recorded_page.close()
        mp4 = await http.get(f"/vod/{apid}/high.mp4")
        assert mp4.status_code == 200
        path = tmp_path / "recording.mp4"
        path.write_bytes(mp4.content)
        recorded = numbers(read_captions(path))
        # Every caption after the first second (the ladder starts at the probe's end).
        assert recorded == list(range(recorded[0], SECONDS // 2)) and recorded[0] <= 1, recorded
    finally:
        await http.aclose()


async def test_captions_that_begin_after_the_viewer_came_are_offered_by_the_watch_page(
    node: Golive, api: httpx.AsyncClient, browser: Any, tmp_path: Path
) -> None:
    # A captioner often starts after the broadcast: the playlists the player loaded said
    # CLOSED-CAPTIONS=NONE, and hls.js reads no captions then. The watch page learns of
    # them from its status poll, shows CC, and loads the playlists again when pressed.
    source = captioned_flv(tmp_path / "late.flv", seconds=40, start_s=14)
    stream = await create_stream(api, name="captioned later")
    pid = stream["playback_ids"][0]["id"]
    proc = ffmpeg_publish(source, node.rtmp_url(stream["stream_key"]))
    page = await browser.new_page()
    try:
        await page.goto(f"{node.http_url}/watch/{pid}")
        await wait_playing(page)
        button = page.locator(".player-captions")
        assert not await button.is_visible()  # nothing to offer yet
        await button.click(timeout=40_000)  # shown once the status says captions
        await page.wait_for_function(
            f"({SHOWN_CUES})().some(text => /CAPTION \\d+/.test(text))",
            timeout=40_000, polling=250)
        shown = numbers(re.findall(r"CAPTION \d+", " ".join(await page.evaluate(SHOWN_CUES))))
        assert shown and min(shown) >= 7, shown  # none before they began (14 s: CAPTION 7)
    finally:
        proc.kill()
        await page.close()
