"""SRT ingest through a whole node: ffmpeg's libsrt caller, clear and encrypted."""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import (
    create_stream,
    eventually,
    get_stream,
    srt_caller,
    wait_process,
    wait_status,
)
from tests.mediatools import FFMPEG, ffmpeg_publish, stop

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
