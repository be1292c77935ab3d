"""Preflight against real publishers: a good source is a go; 44.1 kHz audio, a programme at
-5 LUFS and 8 s keyframes are each a no-go naming the check, the measured value and the fix.
Nothing of it goes on the air: the stream stays idle and no broadcast starts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from tests.e2e.conftest import ADMIN, create_stream, eventually, get_stream
from tests.ingest.srt.srtpeers import LossyProxy
from tests.mediatools import ffmpeg_publish, make_source, stop

from golive.app import Golive
from golive.cli import cli

pytestmark = pytest.mark.slow

EVENT = """name = "event"
version = 1
owner = "ops on call"

[[renditions]]
name = "360p"
height = 360
video_bitrate_kbps = 700

[input]
min_video_bitrate_kbps = 300
max_video_bitrate_kbps = 3000

[audio]
sample_rate = 48000
channels = 2
loudness_target_lufs = -23
loudness_tolerance_lu = 2
true_peak_max_dbtp = -1
"""

CASES: list[tuple[str, dict[str, Any], str | None, str]] = [
    ("good", {}, None, ""),
    ("44k", {"sample_rate": 44100}, "audio_sample_rate", "44100 Hz"),
    ("loud", {"volume_db": 16.8}, "loudness", "-"),
    ("gop8", {"gop": 240}, "keyframe_interval", ">= 2.9"),
]


@pytest.mark.timeout(240)
async def test_preflight_go_and_no_go(
    node: Golive, api: httpx.AsyncClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    profiles = node.settings.resolved_profiles_dir
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "event.toml").write_text(EVENT)
    stream = await create_stream(api, profile="event")
    sid = stream["id"]
    media = tmp_path_factory.mktemp("preflight")

    results: dict[str, dict[str, Any]] = {}
    for name, options, _, _ in CASES:
        source = make_source(media / f"{name}.flv", seconds=4, **options)
        r = await api.post(f"/live-streams/{sid}/preflight", json={"duration": 3})
        assert r.status_code == 201, r.text
        session = r.json()["data"]
        assert (session["status"], session["profile"]) == ("waiting", "event@1")
        again = await api.post(f"/live-streams/{sid}/preflight", json={"duration": 3})
        assert again.status_code == 409  # one waiting session per stream
        proc = ffmpeg_publish(source, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            async def done(pf: str = session["id"]) -> dict[str, Any] | None:
                data: dict[str, Any] = (await api.get(
                    f"/live-streams/{sid}/preflights/{pf}")).json()["data"]
                return data if data["status"] in ("done", "failed", "expired") else None

            results[name] = await eventually(done, timeout=60, what=f"preflight {name}")
            assert (await get_stream(api, sid))["status"] == "idle"
        finally:
            stop(proc)

    for name, _, failing, measured in CASES:
        result = results[name]
        assert result["status"] == "done", result
        checks = {c["name"]: c for c in result["checks"]}
        assert result["media_seconds"] >= 2.9
        if failing is None:
            assert result["verdict"] == "go", result
            assert all(c["status"] == "pass" for c in checks.values()), checks
            loud = float(checks["loudness"]["measured"].split()[0])
            assert -25 <= loud <= -21
            continue
        assert result["verdict"] == "no_go", result
        bad = checks[failing]
        assert bad["status"] == "fail" and bad["fix"], bad
        assert bad["measured"].startswith(measured), bad
    loud = {c["name"]: c for c in results["loud"]["checks"]}["loudness"]
    assert -6 <= float(loud["measured"].split()[0]) <= -4 and "down by 18 dB" in loud["fix"]
    assert "48 kHz" in {c["name"]: c for c in results["44k"]["checks"]}[
        "audio_sample_rate"]["fix"]
    assert "Keyframe Interval = 1" in {c["name"]: c for c in results["gop8"]["checks"]}[
        "keyframe_interval"]["fix"]

    # Off the air all along: no broadcast, no live events; the sessions are kept.
    events = (await api.get(f"/live-streams/{sid}/events")).json()["data"]
    assert not [e for e in events if e["type"].startswith("live_stream.connected")]
    listed = (await api.get(f"/live-streams/{sid}/preflights")).json()["data"]
    assert len(listed) == len(CASES)


async def test_cli_preflight_waits_for_the_verdict(
    node: Golive, api: httpx.AsyncClient, source_flv: Path
) -> None:
    stream = await create_stream(api)  # the built-in default profile names no owner
    sid = stream["id"]
    env = {"GOLIVE_DATA_DIR": str(node.settings.data_dir), "GOLIVE_HOST": "127.0.0.1",
           "GOLIVE_HTTP_PORT": str(node.http_port), "GOLIVE_TOKEN": ADMIN}
    run = asyncio.create_task(asyncio.to_thread(
        CliRunner().invoke, cli, ["preflight", sid, "--duration", "2", "--json"], env=env))

    async def waiting() -> bool:
        listed = (await api.get(f"/live-streams/{sid}/preflights")).json()["data"]
        return bool(listed) and listed[0]["status"] == "waiting"

    await eventually(waiting, timeout=30, what="the CLI's session")
    proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
    try:
        result = await asyncio.wait_for(run, timeout=60)
    finally:
        stop(proc)
    assert result.exit_code == 1, result.output  # no-go
    verdict = json.loads(result.output)
    assert verdict["verdict"] == "no_go" and verdict["profile"] == "default@1"
    failed = [c["name"] for c in verdict["checks"] if c["status"] == "fail"]
    assert failed == ["monitoring_owner"], verdict["checks"]


async def test_srt_through_a_lossy_link_is_a_no_go(
    node: Golive, api: httpx.AsyncClient, source_flv: Path
) -> None:
    profiles = node.settings.resolved_profiles_dir
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "event.toml").write_text(EVENT)
    stream = await create_stream(api, profile="event")
    sid = stream["id"]
    assert node.srt is not None
    loop = asyncio.get_running_loop()
    proxy = LossyProxy(("127.0.0.1", node.srt.port), loss=0.10, delay=0.005)
    transport, _ = await loop.create_datagram_endpoint(lambda: proxy,
                                                        local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    session = (await api.post(f"/live-streams/{sid}/preflight",
                              json={"duration": 3})).json()["data"]
    url = f"srt://127.0.0.1:{port}?streamid={stream['stream_key']}&latency=400000"
    proc = ffmpeg_publish(source_flv, url, loop=True, muxer="mpegts")
    try:
        async def done() -> dict[str, Any] | None:
            data: dict[str, Any] = (await api.get(
                f"/live-streams/{sid}/preflights/{session['id']}")).json()["data"]
            return data if data["status"] in ("done", "failed", "expired") else None

        result = await eventually(done, timeout=60, what="the SRT preflight")
    finally:
        stop(proc)
        transport.close()
    assert result["verdict"] == "no_go", result
    checks = {c["name"]: c for c in result["checks"]}
    loss = checks["srt_loss"]
    assert loss["status"] == "fail" and "uplink" in loss["fix"], loss
    assert 5 <= float(loss["measured"].split("%")[0]) <= 20, loss
    assert checks["srt_round_trip"]["status"] == "pass", checks["srt_round_trip"]
    print(f"\nproxy dropped {proxy.data_drop_rate:.1%}; preflight: {loss['measured']}")
