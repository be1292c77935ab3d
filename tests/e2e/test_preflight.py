"""Preflight against real publishers: a good source with a backup encoder on the backup key
is a go (the session fails over to the backup and back); 44.1 kHz audio, a programme at
-5 LUFS and 8 s keyframes are each a no-go naming the check, the measured value and the fix;
without a backup it is a no-go naming the backup; a destination with a wrong key (nginx-rtmp
whose on_publish refuses it, an SRT listener with another passphrase) is a no-go with the
target's refusal. Nothing of it goes on the air: the stream stays idle, no broadcast starts."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from click.testing import CliRunner
from tests.e2e.conftest import (
    ADMIN,
    create_stream,
    eventually,
    get_stream,
    node_settings,
    srt_caller,
)
from tests.ingest.srt.srtpeers import LossyProxy
from tests.mediatools import ffmpeg_publish, ffprobe, make_source, stop
from tests.nginxedge import NGINX, free_port, nginx_rtmp_conf, wait_listening

from golive.app import Golive
from golive.cli import cli

SRT_LIVE_TRANSMIT = shutil.which("srt-live-transmit") or "/usr/bin/srt-live-transmit"

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


async def finished(api: httpx.AsyncClient, sid: str, session_id: str) -> dict[str, Any]:
    """The preflight session once it is over (done, failed or expired)."""
    async def over() -> dict[str, Any] | None:
        data: dict[str, Any] = (await api.get(
            f"/live-streams/{sid}/preflights/{session_id}")).json()["data"]
        return data if data["status"] in ("done", "failed", "expired") else None

    return await eventually(over, timeout=60, what=f"preflight {session_id}")


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

    # The backup encoder shows another picture: the drill decodes both.
    backup_source = make_source(media / "backup.flv", seconds=4, video="smptebars")
    results: dict[str, dict[str, Any]] = {}
    for name, options, _, _ in CASES:
        source = make_source(media / f"{name}.flv", seconds=4, **options)
        r = await api.post(f"/live-streams/{sid}/preflight", json={"duration": 3})
        assert r.status_code == 201, r.text
        session = r.json()["data"]
        assert (session["status"], session["profile"]) == ("waiting", "event@1")
        again = await api.post(f"/live-streams/{sid}/preflight", json={"duration": 3})
        assert again.status_code == 409  # one waiting session per stream
        backup = (ffmpeg_publish(backup_source, node.rtmp_url(stream["backup_stream_key"]),
                                 loop=True) if name == "good" else None)
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
            if backup is not None:
                stop(backup)

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
            # Loopback: a TCP round trip of well under 150 ms; the tracks start together.
            assert checks["tcp_round_trip"]["measured"].endswith(")"), checks
            assert checks["av_sync"]["status"] == "pass"
            assert checks["backup_ingest"]["measured"].startswith("640x360 h264, 48000 Hz")
            assert " s on the backup" in checks["failover"]["measured"], checks["failover"]
            print("\n" + "\n".join(f"{k}: {checks[k]['measured']}" for k in (
                "tcp_round_trip", "av_sync", "backup_ingest", "failover")))
            continue
        # No backup publisher: a no-go that names it (beside the case's own fault).
        assert checks["backup_ingest"]["status"] == "fail", checks
        assert "backup_stream_key" in checks["backup_ingest"]["fix"]
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
    # Without a backup encoder: no-go, naming the backup and the failover not exercised.
    assert failed == ["backup_ingest", "failover", "monitoring_owner"], verdict["checks"]


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
    url = srt_caller(f"srt://127.0.0.1:{port}?streamid={stream['stream_key']}&latency=400000")
    proc = ffmpeg_publish(source_flv, url, loop=True, muxer="mpegts")
    try:
        result = await finished(api, sid, session["id"])
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


@pytest.mark.timeout(120)
async def test_a_relay_in_mpeg2_video_is_named_before_the_event(
    node: Golive, api: httpx.AsyncClient, source_flv: Path
) -> None:
    """A DVB relay's SD service over SRT: the demuxer leaves its MPEG-2 video out, and the
    preflight names it (the live `video_unsupported` alert's words) instead of "no video"."""
    stream = await create_stream(api)
    sid = stream["id"]
    assert node.srt is not None
    session = (await api.post(f"/live-streams/{sid}/preflight",
                              json={"duration": 2})).json()["data"]
    proc = ffmpeg_publish(source_flv, srt_caller(node.srt_url(stream["stream_key"])),
                          loop=True, extra=["-c:v", "mpeg2video", "-c:a", "mp2"],
                          muxer="mpegts")
    try:
        result = await finished(api, sid, session["id"])
    finally:
        stop(proc)
    assert result["verdict"] == "no_go", result
    checks = {c["name"]: c for c in result["checks"]}
    codec = checks["video_codec"]
    assert codec["status"] == "fail", codec
    assert codec["measured"].startswith("MPEG-2 video (stream type 0x02)"), codec
    assert "H.264" in codec["fix"]
    assert checks["audio_sample_rate"]["status"] == "pass"  # the sound came through


def srt_listener(port: int, passphrase: str, into: Path) -> subprocess.Popen[bytes]:
    """srt-live-transmit listening on `port` for callers with `passphrase`, into a file."""
    with into.open("wb") as out:
        return subprocess.Popen(
            [SRT_LIVE_TRANSMIT, "-q",
             f"srt://127.0.0.1:{port}?mode=listener&passphrase={passphrase}", "file://con"],
            stdout=out, stderr=subprocess.DEVNULL)


async def publish_hook(allowed: str, asked: list[str]) -> asyncio.Server:
    """nginx-rtmp's on_publish: 200 for the `allowed` stream key, 403 for any other."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        form = parse_qs((await reader.readexactly(length)).decode())
        key = form.get("name", [""])[0]
        asked.append(key)
        status = "200 OK" if key == allowed else "403 Forbidden"
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                     .encode())
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


@pytest.mark.timeout(180)
async def test_destinations_are_pushed_with_their_credentials(
    tmp_path: Path, source_flv: Path
) -> None:
    right, wrong = "live_rightkey_1234", "live_wrongkey_5678"
    passphrase, bad_passphrase = "therightpassphrase", "awrongpassphrase"
    asked: list[str] = []
    hook = await publish_hook(right, asked)
    hook_port = hook.sockets[0].getsockname()[1]
    rtmp_port, srt_good, srt_bad = free_port(), free_port(), free_port()
    nginx = await asyncio.create_subprocess_exec(
        str(NGINX), "-p", str(tmp_path), "-c",
        str(nginx_rtmp_conf(tmp_path, rtmp_port, on_publish=hook_port)),
        "-g", "daemon off; error_log stderr warn;", stderr=subprocess.DEVNULL)
    listeners = [srt_listener(srt_good, passphrase, tmp_path / "good.ts"),
                 srt_listener(srt_bad, passphrase, tmp_path / "bad.ts")]
    proc: subprocess.Popen[bytes] | None = None
    try:
        await wait_listening(rtmp_port, nginx)
        settings = node_settings(tmp_path / "node", destination_allow_private_targets=True)
        async with Golive(settings) as node, httpx.AsyncClient(
            base_url=f"{node.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=10,
        ) as api:
            stream = await create_stream(api)
            sid = stream["id"]
            path = f"/live-streams/{sid}/destinations"
            for name, url, key in (
                ("nginx", f"rtmp://127.0.0.1:{rtmp_port}/live", right),
                ("nginx-wrong", f"rtmp://127.0.0.1:{rtmp_port}/live", wrong),
                ("srt", f"srt://127.0.0.1:{srt_good}", passphrase),
                ("srt-wrong", f"srt://127.0.0.1:{srt_bad}", bad_passphrase),
            ):
                r = await api.post(path, json={"name": name, "url": url, "key": key})
                assert r.status_code == 201, r.text
            session = (await api.post(f"/live-streams/{sid}/preflight",
                                      json={"duration": 3})).json()["data"]
            proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)

            async def done() -> dict[str, Any] | None:
                data: dict[str, Any] = (await api.get(
                    f"/live-streams/{sid}/preflights/{session['id']}")).json()["data"]
                return data if data["status"] in ("done", "failed", "expired") else None

            result = await eventually(done, timeout=90, what="the preflight")
            text = json.dumps(result)
            assert (await get_stream(api, sid))["status"] == "idle"
    finally:
        if proc is not None:
            stop(proc)
        for listener in listeners:
            stop(listener)
        if nginx.returncode is None:
            nginx.terminate()
            await nginx.wait()
        hook.close()
    assert result["verdict"] == "no_go", result
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["destination:nginx"]["status"] == "pass", checks["destination:nginx"]
    assert checks["destination:srt"]["status"] == "pass", checks["destination:srt"]
    for name in ("destination:nginx-wrong", "destination:srt-wrong"):
        refused = checks[name]
        assert refused["status"] == "fail" and refused["fix"], refused
        assert "ffmpeg exited" in refused["measured"], refused
    assert wrong not in text and bad_passphrase not in text and passphrase not in text
    assert right in asked and wrong in asked  # nginx asked about both keys
    print("\nrefusals:", checks["destination:nginx-wrong"]["measured"], "|",
          checks["destination:srt-wrong"]["measured"])
    # What the right keys pushed is the capture's H.264 and AAC.
    got = ffprobe(tmp_path / "rec" / f"{right}.flv")
    assert {s["codec_name"] for s in got["streams"]} == {"h264", "aac"}, got
    codecs = {s["codec_name"] for s in ffprobe(tmp_path / "good.ts")["streams"]}
    assert codecs == {"h264", "aac"}, codecs
