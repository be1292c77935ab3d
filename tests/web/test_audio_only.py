"""A broadcast of sound alone (a radio show, a podcast recorded live), end to end.

A real ffmpeg publishes AAC without video over RTMP; the node's ffmpeg encodes one AAC
rendition; the LL-HLS playlists follow the rules; ffmpeg reads them over HTTP; Chromium
plays the watch page; the recording becomes an asset whose VOD playlist and MP4 carry
the sound; stills and link previews say there is no picture instead of failing.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import (
    create_stream,
    eventually,
    node_settings,
    wait_process,
    wait_ready_asset,
    wait_status,
)
from tests.llhls_rules import check_media_playlist, check_multivariant
from tests.mediatools import FFMPEG, FFPROBE, ffmpeg_publish
from tests.web.helpers import ConsoleLog, wait_advancing, wait_playing
from tests.webrtc_client import rtc_config

from golive.app import Golive

pytestmark = pytest.mark.slow

SECONDS = 14


@pytest.fixture(scope="module")
def radio_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """14 s of a 440 Hz tone as AAC at 44.1 kHz in FLV, and nothing else."""
    path = tmp_path_factory.mktemp("media") / "radio.flv"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", str(SECONDS),
         "-c:a", "aac", "-b:a", "64k", "-ac", "2", "-f", "flv", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Golive]:
    """A node whose watch pages offer "Real-time" (WHEP) for streams with webrtc_playback
    (the shared `api` fixture follows it)."""
    async with Golive(node_settings(tmp_path, **rtc_config())) as n:
        yield n


def media_uri(multivariant: str) -> str:
    (uri,) = [line for line in multivariant.splitlines() if line and not line.startswith("#")]
    return uri


def json_ld(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    assert match is not None
    data: dict[str, Any] = json.loads(match[1])
    return data


def probe_streams(target: str | Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
         str(target)], check=True, capture_output=True, timeout=120,
    ).stdout  # fmt: skip
    streams: list[dict[str, Any]] = json.loads(out)["streams"]
    return streams


async def test_a_radio_show_plays_live_and_as_a_recording(
    node: Golive, api: httpx.AsyncClient, radio_flv: Path, browser: Any, artifacts: Path,
    tmp_path: Path,
) -> None:
    stream = await create_stream(api, name="radio", recording=True, reconnect_window=1,
                                 webrtc_playback=True)
    pid = stream["playback_ids"][0]["id"]
    proc = ffmpeg_publish(radio_flv, node.rtmp_url(stream["stream_key"]))
    http = httpx.AsyncClient(base_url=node.http_url, timeout=30)
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    console = ConsoleLog(page)
    try:
        await wait_status(api, stream["id"], "active")

        async def playing() -> tuple[str, str] | None:
            response = await http.get(f"/live/{pid}.m3u8")
            if response.status_code != 200:
                return None
            media = await http.get(f"/live/{media_uri(response.text)}")
            return (response.text, media.text) if media.text.count("#EXTINF") >= 2 else None

        multivariant, media = await eventually(playing, timeout=60, what="the audio playlists")
        # One rendition: AAC alone, no picture attributes.
        check_multivariant(multivariant)
        assert 'CODECS="mp4a.40.2"' in multivariant
        assert "RESOLUTION" not in multivariant and "FRAME-RATE" not in multivariant
        assert media_uri(multivariant).endswith("/audio.m3u8")
        # Parts of nine AAC frames at 48 kHz (192 ms), every one independent; segments of
        # five (the profile's 1 s GOP, to the nearest part).
        playlist = check_media_playlist(media, low_latency=True)
        assert "#EXT-X-PART-INF:PART-TARGET=0.192\n" in media
        parts = [p for s in playlist.segments for p in s.parts]
        assert parts and all(p.independent for p in parts)
        assert {p.duration for p in parts[:-1]} == {0.192}
        whole = [s for s in playlist.segments if s.uri]
        assert whole and {s.duration for s in whole} == {0.96}

        # ffmpeg reads the live playlist over HTTP and decodes the sound (in a thread: the
        # node answers on this event loop).
        read = await asyncio.to_thread(subprocess.run, [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-i",
            f"{node.http_url}/live/{pid}.m3u8", "-t", "3", "-f", "null", "-"],
            capture_output=True, text=True, timeout=60)  # fmt: skip
        assert read.returncode == 0 and "rror" not in read.stderr, read.stderr

        # A still says there is no picture, and the page offers none to link previews.
        still = await http.get(f"/thumbnail/{pid}.jpg")
        assert still.status_code == 404
        assert still.json() == {"error": "the broadcast is audio only: it has no picture"}
        watch = (await http.get(f"/watch/{pid}")).text
        assert json_ld(watch)["@type"] == "AudioObject"
        assert 'property="og:image"' not in watch
        assert '<meta property="og:type" content="website">' in watch

        # WHEP has nothing to offer: the real-time output carries video.
        whep = await http.post(f"/whep/{pid}", content="v=0\r\n",
                               headers={"Content-Type": "application/sdp"})
        assert whep.status_code == 404 and whep.json()["error"]["reason"] == "audio_only"
        assert whep.json()["error"]["fallback"]["protocol"] == "ll-hls"

        # Chromium plays it with hls.js and says where the picture would be (and offers
        # no "Real-time" button, though the stream has webrtc_playback).
        await page.goto(f"{node.http_url}/watch/{pid}")
        config = json.loads(await page.inner_text("#golive-config"))
        assert config["realtime"]["whepUrl"] == f"/whep/{pid}"  # offered, were there video
        await wait_playing(page)
        await wait_advancing(page, 2.0)
        assert await page.is_visible(".player-audio-only")
        assert await page.inner_text(".player-audio-only") == "Audio only"
        assert not await page.is_visible(".player-quality")
        assert not await page.is_visible(".player-realtime")
        assert await page.is_visible(".badge-live")
        await page.screenshot(path=str(artifacts / "audio-only-live.png"))
        assert not console.errors, console.errors

        assert await wait_process(proc) == 0  # the show ends
    finally:
        proc.kill()
        await page.close()

    try:
        asset = await wait_ready_asset(api, stream["id"])
        apid = asset["playback_ids"][0]["id"]
        assert abs(asset["duration"] - SECONDS) < 2, asset["duration"]
        assert [(r["name"], r["width"], r["height"], r["codecs"])
                for r in asset["renditions"]] == [("audio", 0, 0, "mp4a.40.2")], asset
        vod = (await http.get(f"/vod/{apid}.m3u8")).text
        assert 'CODECS="mp4a.40.2"' in vod and "RESOLUTION" not in vod
        mp4 = await http.get(f"/vod/{apid}/high.mp4")
        assert mp4.status_code == 200
        path = tmp_path / "radio.mp4"
        path.write_bytes(mp4.content)
        (sound,) = probe_streams(path)
        assert (sound["codec_type"], sound["codec_name"], sound["sample_rate"]) == (
            "audio", "aac", "48000")
        assert abs(float(sound["duration"]) - asset["duration"]) < 0.5
        still = await http.get(f"/thumbnail/{apid}.jpg", params={"time": "3"})
        assert still.status_code == 404
        assert still.json() == {"error": "the recording is audio only: it has no picture"}
        page = (await http.get(f"/watch/{apid}")).text
        assert json_ld(page)["@type"] == "AudioObject" and "thumbnailUrl" not in json_ld(page)
        assert 'property="og:image"' not in page
    finally:
        await http.aclose()
