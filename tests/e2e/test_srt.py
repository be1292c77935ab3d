"""SRT ingest through a whole node: ffmpeg's libsrt caller, clear and encrypted, and
GStreamer's srtsink after its own MPEG-TS muxer."""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import (
    ADMIN,
    create_stream,
    eventually,
    get_stream,
    node_settings,
    srt_caller,
    wait_process,
    wait_status,
)
from tests.mediatools import FFMPEG, GST_LAUNCH, ffmpeg_publish, stop

from golive.app import Golive

pytestmark = pytest.mark.slow


def srt_publish(source: Path, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-stream_loop", "-1",
         "-i", str(source), "-c", "copy", "-f", "mpegts", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


async def test_srt_publish_goes_live_with_srt_facts_and_ll_hls(
    node: Golive, api: httpx.AsyncClient, source_flv: Path
) -> None:
    stream = await create_stream(api)
    assert stream["ingest"]["srt"].endswith(f"?streamid={stream['stream_key']}")
    # ffmpeg's SRT latency option is in microseconds.
    proc = srt_publish(source_flv, srt_caller(node.srt_url(stream["stream_key"]) + "&latency=200000"))
    try:
        await wait_status(api, stream["id"], "active")

        async def facts() -> dict[str, object] | None:
            live = (await get_stream(api, stream["id"]))["live"]
            return live if live and live.get("srt") and live.get("video_codec") else None

        live = await eventually(facts, what="SRT ingest facts")
        assert live["protocol"] == "srt"
        assert (live["width"], live["height"]) == (640, 360)
        srt = live["srt"]
        assert srt["packets_received"] > 0 and srt["rtt_ms"] >= 0  # type: ignore[index]

        pid = stream["playback_ids"][0]["id"]
        async with httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30) as hls:
            async def playlist() -> str | None:
                response = await hls.get(f"{pid}.m3u8")
                return response.text if response.status_code == 200 else None

            assert "avc1" in await eventually(playlist, timeout=60, what="LL-HLS from SRT")
    finally:
        stop(proc)


async def test_srt_passphrase_is_required_and_checked(
    node: Golive, api: httpx.AsyncClient, source_flv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "correct horse battery"
    stream = await create_stream(api, srt_passphrase=secret)
    assert stream["srt_encrypted"] is True and "srt_passphrase" not in stream
    url = srt_caller(node.srt_url(stream["stream_key"]))
    caplog.set_level(logging.INFO, logger="golive.ingest.srt")
    for wrong, reason in (("", "UNSECURE: the stream needs a passphrase"),
                          ("&passphrase=wrong-passphrase", "BADSECRET: wrong passphrase")):
        proc = srt_publish(source_flv, url + wrong)
        try:
            # Turned away by the node (a caller that is never answered gives up too).
            assert await wait_process(proc, 30) != 0
            assert f"reason={reason}" in caplog.text
        finally:
            stop(proc)
    assert (await get_stream(api, stream["id"]))["status"] == "idle"

    proc = srt_publish(source_flv, url + f"&passphrase={secret.replace(' ', '%20')}")
    try:
        live = await wait_status(api, stream["id"], "active")
        assert live["srt_encrypted"] is True
    finally:
        stop(proc)


@pytest.mark.parametrize(("encoder", "codec"), [("mp2", "mp3"), ("libopus", "opus"), ("ac3", "ac3"),
                                              ("eac3", "eac3"), ("aac-latm", "aac")])
async def test_audio_other_than_aac_over_srt_is_heard(
    node: Golive, api: httpx.AsyncClient, source_flv: Path, tmp_path: Path, encoder: str,
    codec: str,
) -> None:
    # Contribution encoders often send MPEG-1 Layer II audio in their transport stream,
    # and OBS's SRT output can send Opus; golive took only AAC and the broadcast went out
    # silent. DVB chains carry AAC in LATM, which golive took for no audio at all.
    stream = await create_stream(api)
    encode = ["-c:a", "aac", "-mpegts_flags", "latm"] if encoder == "aac-latm" \
        else ["-c:a", encoder]
    proc = ffmpeg_publish(source_flv, srt_caller(node.srt_url(stream["stream_key"])), loop=True,
                          extra=[*encode, "-b:a", "128k"], muxer="mpegts")
    pid = stream["playback_ids"][0]["id"]
    try:
        await wait_status(api, stream["id"], "active")
        async with httpx.AsyncClient(base_url=f"{node.http_url}/live/{pid}/", timeout=30) as hls:

            async def segment() -> bytes | None:
                text = (await hls.get("360p.m3u8")).text
                inits = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)
                segments = [line for line in text.splitlines() if "/seg-" in line]
                if not inits or not segments:
                    return None
                return (await hls.get(inits[-1])).content + (await hls.get(segments[-1])).content

            media = await eventually(segment, timeout=60, what="a whole segment")
        live = (await get_stream(api, stream["id"]))["live"]
        assert live["audio_codec"] == codec  # ("mp3": the MPEG audio family, Layer II here)
        path = tmp_path / "segment.mp4"
        path.write_bytes(media)
        out = subprocess.run(
            [FFMPEG, "-hide_banner", "-nostats", "-i", str(path), "-vn", "-af",
             "astats=measure_perchannel=none:measure_overall=RMS_level", "-f", "null", "-"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stderr  # fmt: skip
        level = float(out.rsplit("RMS level dB:", 1)[1].split()[0])
        assert -30 < level < -15, level  # the source's sine, not silence
    finally:
        stop(proc)


def gst_srt_publish(url: str, *, alignment: int | None) -> subprocess.Popen[bytes]:
    """GStreamer: x264enc and avenc_aac into mpegtsmux, then srtsink (libsrt's caller)."""
    assert GST_LAUNCH, "gst-launch-1.0 missing: run scripts/install-system-deps.sh"
    mux = "mpegtsmux name=m" + (f" alignment={alignment}" if alignment is not None else "")
    pipeline = (
        "videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=30/1 "
        "! x264enc tune=zerolatency key-int-max=30 speed-preset=ultrafast ! h264parse ! queue "
        f"! {mux} ! srtsink uri={url} "
        "audiotestsrc is-live=true ! audio/x-raw,rate=48000,channels=2 ! audioconvert "
        "! avenc_aac ! aacparse ! queue ! m."
    )
    return subprocess.Popen([GST_LAUNCH, "-q", *pipeline.split()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def test_gstreamer_srtsink_publishes_and_one_that_loses_its_keyframes_is_told_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Without alignment=7, srtsink hands libsrt whole PES buffers; its live mode sends
    # 1316-byte messages and drops larger ones, every keyframe among them, before they
    # leave (srt-live-transmit gets the same). golive gets pictures it can never start
    # from and drops the publisher for sending no media: its log says what to look at.
    caplog.set_level(logging.INFO, logger="golive.ingest.srt")
    async with Golive(node_settings(tmp_path, srt_media_timeout=6)) as node, \
            httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                              headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        stream = await create_stream(api)
        url = node.srt_url(stream["stream_key"])
        proc = gst_srt_publish(url, alignment=None)
        try:
            async def told() -> bool:
                return "mpegtsmux alignment=7" in caplog.text

            await eventually(told, timeout=30, what="the no-media drop's hint")
        finally:
            stop(proc)
        assert "video_skipped=" in caplog.text
        # (srtsink reconnects by itself: the next publish is another stream's.)
        stream = await create_stream(api)
        proc = gst_srt_publish(node.srt_url(stream["stream_key"]), alignment=7)
        try:
            live = (await wait_status(api, stream["id"], "active"))["live"]
            assert live["protocol"] == "srt"

            async def facts() -> dict[str, object] | None:
                live = (await get_stream(api, stream["id"]))["live"]
                return live if live and live.get("video_codec") and live.get("audio_codec") \
                    else None

            live = await eventually(facts, what="video and audio facts")
            assert (live["video_codec"], live["width"], live["audio_codec"]) == ("h264", 640, "aac")
            pid = stream["playback_ids"][0]["id"]
            async with httpx.AsyncClient(base_url=f"{node.http_url}/live/{pid}/",
                                         timeout=10) as hls:
                async def segment() -> bool:
                    return "/seg-" in (await hls.get("360p.m3u8")).text

                await eventually(segment, timeout=60, what="a whole segment")
        finally:
            stop(proc)
