"""WHIP ingest end to end: ffmpeg's whip muxer, an aiortc client and Chromium publish.

ICE runs on 127.0.0.1 only (`webrtc_host_addresses`), with no STUN or TURN server.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import (
    create_stream,
    eventually,
    get_stream,
    node_settings,
    wait_process,
    wait_status,
)
from tests.mediatools import FFMPEG
from tests.webrtc_client import whip_publish

from golive.app import Golive

CHROMIUM = Path("/usr/bin/chromium")
HAS_CHROMIUM = CHROMIUM.exists()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Golive]:
    """A node whose WebRTC side gathers on loopback only (overrides conftest's)."""
    async with Golive(node_settings(tmp_path, webrtc_host_addresses=["127.0.0.1"])) as n:
        yield n


def ffmpeg_whip(url: str, key: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
         "-f", "lavfi", "-i", "testsrc2=s=640x360:r=30", "-f", "lavfi", "-i", "sine",
         "-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast",
         "-tune", "zerolatency", "-g", "30", "-bf", "0",
         "-c:a", "libopus", "-ar", "48000", "-ac", "2",
         "-f", "whip", "-authorization", key, url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def has_whip_muxer() -> bool:
    out = subprocess.run([FFMPEG, "-hide_banner", "-muxers"], capture_output=True, text=True,
                         timeout=30)
    return bool(re.search(r"^\s*E\s+whip\b", out.stdout, re.M))


async def wait_llhls(node: Golive, playback_id: str, segments: int = 3) -> str:
    """The multivariant playlist once every media playlist lists `segments` segments."""
    async with httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30) as hls:
        async def ready() -> str | None:
            response = await hls.get(f"{playback_id}.m3u8")
            if response.status_code != 200:
                return None
            for uri in re.findall(r"^(?!#)(\S+)$", response.text, re.M):
                media = await hls.get(uri)
                if media.status_code != 200 or media.text.count("#EXTINF") < segments:
                    return None
            return response.text

        return await eventually(ready, timeout=60, what="LL-HLS playlists with segments")


def ingest(node: Golive, stream_id: str) -> dict[str, Any]:
    assert node.hub is not None
    facts = node.hub.ingest_facts(stream_id)
    assert facts is not None
    return facts


@pytest.mark.slow
async def test_ffmpeg_whip_muxer_goes_live_and_plays_over_llhls(
    node: Golive, api: httpx.AsyncClient
) -> None:
    if not has_whip_muxer():
        pytest.skip("this ffmpeg has no whip muxer")
    stream = await create_stream(api, name="whip-ffmpeg")
    proc = ffmpeg_whip(f"{node.http_url}/whip", stream["stream_key"])
    try:
        await wait_status(api, stream["id"], "active")
        multivariant = await wait_llhls(node, stream["playback_ids"][0]["id"])
        assert "avc1." in multivariant and "mp4a.40.2" in multivariant, multivariant
        facts = ingest(node, stream["id"])
        assert facts["protocol"] == "whip"
        assert (facts["video_codec"], facts["audio_codec"]) == ("h264", "aac"), facts
        assert (facts["width"], facts["height"]) == (640, 360)
        # ffmpeg ends its WHIP session with DELETE when interrupted.
        proc.send_signal(signal.SIGINT)
        await wait_process(proc, timeout=20)
        whip = node.whip
        assert whip is not None
        await eventually(lambda: _true(not whip.sessions), timeout=10,
                         what="the session to end")
        await wait_status(api, stream["id"], "idle")
    finally:
        if proc.poll() is None:
            proc.kill()


async def _true(value: bool) -> bool:
    return value


@pytest.mark.slow
async def test_aiortc_h264_publisher_is_passed_through_and_delete_ends_it(
    node: Golive, api: httpx.AsyncClient
) -> None:
    stream = await create_stream(api, name="whip-aiortc")
    publisher = await whip_publish(node.http_url, stream["stream_key"], video_codec="H264")
    try:
        assert re.fullmatch(r"/whip/[\w-]+", publisher.location)
        # Only loopback candidates, no reflexive or relayed ones.
        candidates = re.findall(r"a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ (\w+)",
                                publisher.answer)
        assert candidates and all(c == ("127.0.0.1", "host") for c in candidates), candidates
        await wait_status(api, stream["id"], "active")

        async def video_known() -> dict[str, Any] | None:
            facts = ingest(node, stream["id"])
            return facts if facts["video_codec"] and facts["audio_codec"] else None

        facts = await eventually(video_known, what="video and audio facts")
        assert (facts["video_codec"], facts["width"], facts["height"]) == ("h264", 320, 240)
        assert facts["audio_codec"] == "aac"
        assert node.whip is not None
        [session] = node.whip.sessions
        assert session.media is not None and session.media.video_codec == "h264"

        response = await publisher.delete()
        assert response.status_code == 200
        assert (await publisher.delete()).status_code == 404
        await wait_status(api, stream["id"], "idle")
        assert node.whip.sessions == []
    finally:
        await publisher.close()


@pytest.mark.slow
async def test_vp8_publisher_is_encoded_to_h264_once(
    node: Golive, api: httpx.AsyncClient
) -> None:
    stream = await create_stream(api, name="whip-vp8")
    publisher = await whip_publish(node.http_url, stream["stream_key"], video_codec="VP8")
    try:
        assert "VP8/90000" in publisher.answer and "H264" not in publisher.answer
        await wait_status(api, stream["id"], "active")

        async def video_known() -> dict[str, Any] | None:
            facts = ingest(node, stream["id"])
            return facts if facts["video_codec"] and facts["keyframes"] else None

        facts = await eventually(video_known, what="transcoded video")
        assert (facts["video_codec"], facts["width"], facts["height"]) == ("h264", 320, 240)
    finally:
        await publisher.close()


@pytest.mark.slow
async def test_a_microphone_without_a_camera_goes_live_as_sound_alone(
    node: Golive, api: httpx.AsyncClient
) -> None:
    stream = await create_stream(api, name="whip-radio")
    publisher = await whip_publish(node.http_url, stream["stream_key"], video_codec=None)
    pid = stream["playback_ids"][0]["id"]
    try:
        assert "m=video" not in publisher.answer and "opus/48000" in publisher.answer.lower()
        await wait_status(api, stream["id"], "active")
        async with httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30) as hls:

            async def sound() -> str | None:
                response = await hls.get(f"{pid}/audio.m3u8")
                return response.text if response.text.count("INDEPENDENT=YES") >= 5 else None

            media = await eventually(sound, timeout=60, what="the audio-only playlist")
            multivariant = (await hls.get(f"{pid}.m3u8")).text
        assert 'CODECS="mp4a.40.2"\n' in multivariant and "RESOLUTION" not in multivariant
        assert "#EXT-X-PART-INF:PART-TARGET=0.192" in media
        facts = ingest(node, stream["id"])
        assert (facts["audio_codec"], facts["video_codec"], facts["video_frames"]) == (
            "aac", None, 0)
    finally:
        await publisher.close()


@pytest.mark.slow
async def test_refusals_on_a_real_node(node: Golive, api: httpx.AsyncClient) -> None:
    stream = await create_stream(api, name="whip-refusals")
    publisher = await whip_publish(node.http_url, stream["stream_key"])
    try:
        await wait_status(api, stream["id"], "active")
        # A second publisher on a live key is refused before any negotiation.
        with pytest.raises(Exception, match="403"):
            await whip_publish(node.http_url, stream["stream_key"])
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            bad = await http.post("/whip", content="v=0\r\nnonsense",
                                  headers={"Content-Type": "application/sdp",
                                           "Authorization": "Bearer whatever"})
            assert bad.status_code == 400, bad.text
            unknown = await http.post("/whip", content=publisher.pc.localDescription.sdp,
                                      headers={"Content-Type": "application/sdp",
                                               "Authorization": "Bearer not-a-key"})
            assert unknown.status_code == 401
            assert unknown.json()["error"]["reason"] == "unknown_key"
            preflight = await http.options("/whip", headers={
                "Origin": "https://studio.example", "Access-Control-Request-Method": "POST"})
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-origin"] == "*"
            assert "Location" in preflight.headers["access-control-expose-headers"]
            # Trickle ICE: end-of-candidates is accepted, an ICE restart is not.
            patch_headers = {"Content-Type": "application/trickle-ice-sdpfrag",
                             "Authorization": f"Bearer {stream['stream_key']}"}
            done = await http.patch(publisher.location, headers=patch_headers,
                                    content="a=mid:0\r\na=end-of-candidates\r\n")
            assert done.status_code == 204, done.text
            restart = await http.patch(
                publisher.location, headers={**patch_headers, "If-Match": "*"},
                content="a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n")
            assert restart.status_code == 422
        # Disabling the stream closes the WebRTC session from golive's side.
        assert (await api.post(f"/live-streams/{stream['id']}/disable")).status_code == 200
        whip = node.whip
        assert whip is not None
        await eventually(lambda: _true(not whip.sessions), what="the session to close")
        await eventually(lambda: _true(publisher.pc.connectionState in ("closed", "failed")),
                         timeout=45, what="the client to notice")
        assert (await get_stream(api, stream["id"]))["status"] == "disabled"
    finally:
        await publisher.close()


_PAGE = """<!doctype html><meta charset="utf-8"><title>publish</title>
<script>
async function publish(url, key, codec) {
  const media = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 360},
                                                           audio: true});
  const pc = new RTCPeerConnection({iceServers: []});
  const video = pc.addTransceiver(media.getVideoTracks()[0], {direction: "sendonly"});
  pc.addTransceiver(media.getAudioTracks()[0], {direction: "sendonly"});
  const codecs = RTCRtpSender.getCapabilities("video").codecs
    .filter(c => c.mimeType.toLowerCase() === "video/" + codec.toLowerCase());
  if (codecs.length) video.setCodecPreferences(codecs);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(done => {
    if (pc.iceGatheringState === "complete") return done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
    setTimeout(done, 3000);
  });
  const response = await fetch(url, {method: "POST", body: pc.localDescription.sdp,
    headers: {"Content-Type": "application/sdp", "Authorization": "Bearer " + key}});
  if (response.status !== 201) return "refused " + response.status;
  await pc.setRemoteDescription({type: "answer", sdp: await response.text()});
  window.pc = pc;
  return "ok";
}
</script>"""


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["H264", "VP8"])
async def test_chromium_fake_camera_publishes(
    node: Golive, api: httpx.AsyncClient, tmp_path: Path, codec: str
) -> None:
    if not HAS_CHROMIUM:
        pytest.skip("no /usr/bin/chromium")
    from playwright.async_api import async_playwright

    stream = await create_stream(api, name=f"whip-chromium-{codec}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--use-fake-device-for-media-stream",
                  "--use-fake-ui-for-media-stream"],
        )
        try:
            page = await browser.new_page()
            # The page appears to come from the node (Playwright answers for that one URL):
            # http://127.0.0.1 is a secure context, so getUserMedia works.
            page_url = f"{node.http_url}/publish-test.html"
            await page.route(page_url, lambda route: route.fulfill(
                status=200, content_type="text/html", body=_PAGE))
            await page.goto(page_url)
            result = await page.evaluate(
                "([u, k, c]) => publish(u, k, c)",
                [f"{node.http_url}/whip", stream["stream_key"], codec],
            )
            assert result == "ok", result
            await wait_status(api, stream["id"], "active", timeout=30)

            async def video_known() -> dict[str, Any] | None:
                facts = ingest(node, stream["id"])
                return facts if facts["video_codec"] and facts["keyframes"] else None

            facts = await eventually(video_known, timeout=30, what="video facts")
            assert facts["video_codec"] == "h264"
            assert node.whip is not None
            [session] = node.whip.sessions
            assert session.media is not None
            assert session.media.video_codec == codec.lower()
            await page.evaluate("window.pc.close()")
            await asyncio.sleep(0)
        finally:
            await browser.close()
