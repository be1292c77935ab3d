"""Alerts on a real node, each fault induced for real with an ffmpeg publisher over RTMP:
a 4 s keyframe interval (`-g 240` at 60 fps), audio offset with `-itsoffset`, a publisher
that stalls (SIGSTOP, then SIGCONT), and an uplink capped to 60% of the stream's bitrate
by a TCP proxy (one node, four streams at once; the alerts are checked through the API,
the stream's recorded events and a webhook receiver); and an SRT publisher behind a
proxy that loses packets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import (
    ADMIN,
    create_stream,
    eventually,
    get_stream,
    node_settings,
    srt_caller,
    wait_status,
)
from tests.health.capped_proxy import CappedProxy
from tests.health.quick import quick_alert_settings
from tests.ingest.srt.srtpeers import LossyProxy
from tests.mediatools import FFMPEG, ffmpeg_publish, make_source, stop
from tests.webhooks.receiver import Receiver

from golive.app import Golive

pytestmark = pytest.mark.slow

@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Golive]:
    settings = quick_alert_settings(tmp_path, webhook_allow_private_targets=True,
                                    default_reconnect_window=10.0)
    async with Golive(settings) as n:
        yield n


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s of 60 fps video with a keyframe every 240 frames (4 s)."""
    return make_source(tmp_path_factory.mktemp("alerts") / "gop240.flv", seconds=12,
                       size="320x180", fps=60, gop=240, video_kbps=300)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s of 640x360 30 fps H.264 + AAC (~900 kbit/s), a keyframe every second."""
    return make_source(tmp_path_factory.mktemp("alerts") / "source.flv", seconds=12)


def offset_audio_publish(source: Path, url: str, offset: float) -> subprocess.Popen[bytes]:
    """The source's video with its own audio stamped `offset` seconds late."""
    return subprocess.Popen(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin",
         "-re", "-stream_loop", "-1", "-i", str(source),
         "-itsoffset", str(offset), "-re", "-stream_loop", "-1", "-i", str(source),
         "-map", "0:v", "-map", "1:a", "-c", "copy", "-f", "flv", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def alert_event(api: httpx.AsyncClient, stream_id: str, kind: str, rule: str,
                      timeout: float = 60) -> dict[str, Any]:
    """The stream's recorded `kind` event for `rule` (waits for it)."""
    async def find() -> dict[str, Any] | None:
        events = (await api.get(f"/live-streams/{stream_id}/events")).json()["data"]
        for event in events:
            if event["type"] == kind and event["data"]["rule"] == rule:
                found: dict[str, Any] = event
                return found
        return None

    return await eventually(find, timeout=timeout, what=f"{kind} {rule} on {stream_id}")


async def alerts(api: httpx.AsyncClient, stream_id: str) -> dict[str, Any]:
    r = await api.get(f"/live-streams/{stream_id}/alerts")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


@contextlib.contextmanager
def running(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)  # a stopped process cannot take SIGTERM
        stop(proc)


@pytest.mark.timeout(240)
async def test_induced_ingest_faults_fire_alerts_that_name_cause_and_fix(
    node: Golive, receiver: Receiver, long_gop: Path, source: Path
) -> None:
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        hook = await api.post("/webhooks", json={"url": f"{receiver.url}/alerts",
                                                 "event_types": ["alert.*"]})
        assert hook.status_code == 201, hook.text
        gop = await create_stream(api, name="gop", profile="quickalerts")
        drift = await create_stream(api, name="drift", profile="quickalerts")
        stall = await create_stream(api, name="stall", profile="quickalerts")
        uplink = await create_stream(api, name="uplink", profile="quickalerts")
        # 60% of the ~900 kbit/s the source sends.
        async with CappedProxy(node.rtmp_port, kbps=540) as proxy:
            capped_url = f"rtmp://127.0.0.1:{proxy.port}/live/{uplink['stream_key']}"
            with running(ffmpeg_publish(long_gop, node.rtmp_url(gop["stream_key"]), loop=True)), \
                    running(offset_audio_publish(source, node.rtmp_url(drift["stream_key"]),
                                                 1.5)), \
                    running(ffmpeg_publish(source, node.rtmp_url(stall["stream_key"]),
                                           loop=True)) as stalled, \
                    running(ffmpeg_publish(source, capped_url, loop=True)):
                for stream in (gop, drift, stall, uplink):
                    await wait_status(api, stream["id"], "active", timeout=30)

                # -g 240 at 60 fps: a keyframe every 4 s; the fix names OBS's setting.
                fired = await alert_event(api, gop["id"], "alert.firing", "keyframe_interval")
                assert fired["data"]["value"] == pytest.approx(4.0, abs=0.2)
                assert fired["data"]["threshold"] == 2.0
                assert "Keyframe Interval" in fired["data"]["fix"]

                # -itsoffset 1.5 on the audio: 1.5 s apart at ingest.
                fired = await alert_event(api, drift["id"], "alert.firing", "av_drift")
                assert fired["data"]["value"] == pytest.approx(1.5, abs=0.1)
                assert "timestamp offset at ingest" in fired["data"]["cause"]

                # An uplink that carries 60% of the stream: arrives slower than real time.
                fired = await alert_event(api, uplink["id"], "alert.firing", "ingest_slow")
                assert 0.3 < fired["data"]["value"] < 0.9
                assert "uplink cannot carry the bitrate" in fired["data"]["cause"]
                assert "contribute over SRT" in fired["data"]["fix"]
                assert fired["data"]["related"]["protocol"] == "rtmp"

                # The stall: SIGSTOP the publisher (its connection stays open), then resume.
                os.kill(stalled.pid, signal.SIGSTOP)
                fired = await alert_event(api, stall["id"], "alert.firing", "ingest_stalled")
                assert "connection stays open" in fired["data"]["cause"]
                active = (await alerts(api, stall["id"]))["active"]
                assert [a["alert_id"] for a in active if a["rule"] == "ingest_stalled"
                        and a["state"] == "firing"] == [fired["data"]["alert_id"]]
                os.kill(stalled.pid, signal.SIGCONT)
                resolved = await alert_event(api, stall["id"], "alert.resolved",
                                             "ingest_stalled")
                assert resolved["data"]["alert_id"] == fired["data"]["alert_id"]
                assert resolved["data"]["reason"] == "condition cleared"
                assert resolved["data"]["peak"] >= 1.5
                stall_alerts = await alerts(api, stall["id"])
                assert fired["data"]["alert_id"] in [a["alert_id"]
                                                     for a in stall_alerts["recent"]]
                assert "ingest_stalled" not in [a["rule"] for a in stall_alerts["active"]]
                assert proxy.forwarded > 0

        # Webhooks got the same events, once per alert transition.
        async def delivered() -> list[dict[str, Any]] | None:
            bodies = [r.json() for r in receiver.at("/alerts")]
            rules = {(b["type"], b["data"]["rule"]) for b in bodies}
            want = {("alert.firing", "keyframe_interval"), ("alert.firing", "av_drift"),
                    ("alert.firing", "ingest_slow"), ("alert.resolved", "ingest_stalled")}
            return bodies if want <= rules else None

        bodies = await eventually(delivered, timeout=30, what="alert webhooks")
        firing = [b for b in bodies if b["type"] == "alert.firing"]
        assert all({"cause", "fix", "value", "threshold", "related"} <= b["data"].keys()
                   for b in firing)
        # An unknown stream is a 404, like every other stream route.
        assert (await api.get("/live-streams/ls_nope/alerts")).status_code == 404


async def test_alerts_route_absent_when_alerts_are_off(tmp_path: Path) -> None:
    async with Golive(node_settings(tmp_path, transcode=False, alerts=False)) as off, \
            httpx.AsyncClient(base_url=f"{off.http_url}/api/v1", timeout=10,
                              headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        stream = await create_stream(api, name="quiet")
        assert off.alerts is None
        assert (await api.get(f"/live-streams/{stream['id']}/alerts")).status_code == 404


@pytest.mark.timeout(120)
async def test_a_lossy_srt_path_fires_srt_loss_with_its_cause(node: Golive, source: Path) -> None:
    loop = asyncio.get_running_loop()
    assert node.srt is not None
    proxy = LossyProxy(("127.0.0.1", node.srt.port), loss=0.06, delay=0.01)
    transport, _ = await loop.create_datagram_endpoint(lambda: proxy,
                                                        local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                                     headers={"Authorization": f"Bearer {ADMIN}"}) as api:
            stream = await create_stream(api, name="srt", profile="quickalerts")
            url = srt_caller(f"srt://127.0.0.1:{port}?streamid={stream['stream_key']}"
                             "&latency=1000000")
            with running(ffmpeg_publish(source, url, loop=True, muxer="mpegts")):
                await wait_status(api, stream["id"], "active", timeout=30)
                fired = await alert_event(api, stream["id"], "alert.firing", "srt_loss")
                assert 0.02 < fired["data"]["value"] < 0.5
                assert fired["data"]["related"]["protocol"] == "srt"
                assert fired["data"]["related"]["srt_rtt_ms"] > 0
                assert "loses packets" in fired["data"]["cause"]
    finally:
        transport.close()
    assert proxy.originals_dropped > 0


@pytest.mark.timeout(240)
async def test_audio_golive_cannot_decode_fires_audio_unsupported_naming_it(
    node: Golive, source: Path
) -> None:
    # Opus in 5.1 (an OBS profile with surround sound): the broadcast goes out silent,
    # and the operator is told why.
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        stream = await create_stream(api, name="surround", profile="quickalerts")
        surround = ["-af", "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0", "-c:a", "libopus",
                    "-mapping_family", "1"]
        with running(ffmpeg_publish(source, srt_caller(node.srt_url(stream["stream_key"])),
                                    loop=True, extra=surround, muxer="mpegts")):
            await wait_status(api, stream["id"], "active", timeout=30)
            fired = await alert_event(api, stream["id"], "alert.firing", "audio_unsupported")
            data = fired["data"]
            named = "Opus with more than two channels (stream type 0x06)"
            assert data["related"]["unsupported_audio"] == named
            assert named in data["summary"] and "set the encoder's audio codec" in data["fix"]
            live = (await get_stream(api, stream["id"]))["live"]
            assert live["srt"]["unsupported_audio"] == named
            assert live["audio_codec"] is None


@pytest.mark.timeout(240)
async def test_video_golive_cannot_decode_fires_video_unsupported_and_the_sound_goes_out(
    node: Golive, source: Path
) -> None:
    # A DVB relay's SD service: MPEG-2 video and Layer II sound. golive took it for a radio
    # show and said nothing.
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        stream = await create_stream(api, name="dvb", profile="quickalerts")
        with running(ffmpeg_publish(source, srt_caller(node.srt_url(stream["stream_key"])),
                                    loop=True, extra=["-c:v", "mpeg2video", "-c:a", "mp2"],
                                    muxer="mpegts")):
            await wait_status(api, stream["id"], "active", timeout=30)
            fired = await alert_event(api, stream["id"], "alert.firing", "video_unsupported")
            data = fired["data"]
            named = "MPEG-2 video (stream type 0x02)"
            assert data["related"]["unsupported_video"] == named
            assert named in data["summary"] and "set the encoder's video codec" in data["fix"]
            live = (await get_stream(api, stream["id"]))["live"]
            assert live["srt"]["unsupported_video"] == named
            assert live["video_codec"] is None and live["audio_codec"] == "mp3"
