"""RTMP ingest end to end: real publishers against a whole node, checked through the API."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import (
    DumpObserver,
    create_stream,
    eventually,
    get_stream,
    wait_process,
    wait_status,
)
from tests.mediatools import count_packets, ffmpeg_publish, ffprobe, gst_publish, stop

from golive.app import Golive

pytestmark = pytest.mark.slow


async def test_ffmpeg_publish_goes_active_with_live_facts_and_clean_flv(
    node: Golive, api: httpx.AsyncClient, source_flv: Path, tmp_path: Path
) -> None:
    observer = DumpObserver(tmp_path)
    assert node.hub is not None
    node.hub.add_observer(observer)
    stream = await create_stream(api, name="Friday show")
    assert stream["status"] == "idle"

    proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]))
    try:
        live = await wait_status(api, stream["id"], "active")

        async def facts_settled() -> dict[str, object] | None:
            facts = (await get_stream(api, stream["id"]))["live"]
            ready = facts and facts.get("keyframe_interval_s") and facts.get("frame_rate")
            return facts if ready and facts["video_bitrate_kbps"] else None

        facts = await eventually(facts_settled, what="measured ingest facts")
        assert live["active_broadcast_id"] or facts["broadcast_id"]
        assert facts["video_codec"] == "h264"
        assert facts["audio_codec"] == "aac"
        assert (facts["width"], facts["height"]) == (640, 360)
        assert 27 <= float(facts["frame_rate"]) <= 33  # type: ignore[arg-type]
        assert 0.8 <= float(facts["keyframe_interval_s"]) <= 1.2  # type: ignore[arg-type]
        assert float(facts["video_bitrate_kbps"]) > 100  # type: ignore[arg-type]
        assert facts["connected_since"]
        assert str(facts["remote_address"]).startswith("127.0.0.1:")
        assert facts["protocol"] == "rtmp"

        assert await wait_process(proc) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        stop(proc)

    await wait_status(api, stream["id"], "idle", timeout=15)
    dump = observer.dumps[stream["id"]]
    source, received = ffprobe(source_flv), ffprobe(dump.path)
    for src, got in zip(
        sorted(source["streams"], key=lambda s: s["codec_type"]),
        sorted(received["streams"], key=lambda s: s["codec_type"]),
        strict=True,
    ):
        assert got["codec_name"] == src["codec_name"]
        assert got.get("width") == src.get("width")
        assert got.get("height") == src.get("height")
        assert got.get("sample_rate") == src.get("sample_rate")
    assert count_packets(dump.path) == count_packets(source_flv)

    events = (await api.get(f"/live-streams/{stream['id']}/events")).json()["data"]
    names = [e["type"] for e in events]
    for name in (
        "live_stream.connected",
        "live_stream.active",
        "live_stream.disconnected",
        "live_stream.idle",
    ):
        assert name in names, names
    assert all(e["at"] for e in events)


async def test_gstreamer_rtmp2sink_publishes(
    node: Golive, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    observer = DumpObserver(tmp_path)
    assert node.hub is not None
    node.hub.add_observer(observer)
    stream = await create_stream(api)
    proc = gst_publish(node.rtmp_url(stream["stream_key"]), buffers=120)
    try:
        await wait_status(api, stream["id"], "active")
        code = await wait_process(proc)
        assert code == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        stop(proc)
    await wait_status(api, stream["id"], "idle", timeout=15)
    probe = ffprobe(observer.dumps[stream["id"]].path)
    kinds = {s["codec_type"]: s for s in probe["streams"]}
    assert kinds["video"]["codec_name"] == "h264"
    assert (kinds["video"]["width"], kinds["video"]["height"]) == (640, 360)
    assert kinds["audio"]["codec_name"] == "aac"
    assert count_packets(observer.dumps[stream["id"]].path)["video"] >= 100


async def test_two_publishers_on_two_keys(
    node: Golive, api: httpx.AsyncClient, source_flv: Path
) -> None:
    a, b = await create_stream(api, name="a"), await create_stream(api, name="b")
    procs = [ffmpeg_publish(source_flv, node.rtmp_url(s["stream_key"]), loop=True) for s in (a, b)]
    try:
        await wait_status(api, a["id"], "active")
        await wait_status(api, b["id"], "active")
        fa, fb = (await get_stream(api, a["id"]))["live"], (await get_stream(api, b["id"]))["live"]
        assert fa["broadcast_id"] != fb["broadcast_id"]
    finally:
        for p in procs:
            stop(p)


@pytest.mark.parametrize("case", ["wrong", "disabled", "deleted"])
async def test_refused_keys_close_the_connection(
    node: Golive, api: httpx.AsyncClient, source_flv: Path, case: str
) -> None:
    stream = await create_stream(api)
    key = stream["stream_key"]
    if case == "wrong":
        key = key[:-4] + "zzzz"
    elif case == "disabled":
        assert (await api.post(f"/live-streams/{stream['id']}/disable")).status_code == 200
    else:
        assert (await api.delete(f"/live-streams/{stream['id']}")).status_code == 204
    proc = ffmpeg_publish(source_flv, node.rtmp_url(key))
    code = await wait_process(proc, timeout=30)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert code != 0
    assert "NetStream.Publish" in err or "rror" in err, err
    if case != "deleted":
        assert (await get_stream(api, stream["id"]))["live"] is None


async def test_second_publisher_on_a_live_key_is_refused(
    node: Golive, api: httpx.AsyncClient, source_flv: Path
) -> None:
    stream = await create_stream(api)
    url = node.rtmp_url(stream["stream_key"])
    first = ffmpeg_publish(source_flv, url, loop=True)
    try:
        live = await wait_status(api, stream["id"], "active")
        second = ffmpeg_publish(source_flv, url)
        assert await wait_process(second, timeout=30) != 0
        err = second.stderr.read().decode() if second.stderr else ""
        assert "NetStream.Publish" in err or "rror" in err, err
        assert first.poll() is None, "the live publisher must be unaffected"
        again = await get_stream(api, stream["id"])
        assert again["live"]["broadcast_id"] == live["live"]["broadcast_id"]
    finally:
        stop(first)


async def test_killed_publisher_goes_idle_after_window_and_reconnect_keeps_broadcast(
    node: Golive, api: httpx.AsyncClient, source_flv: Path
) -> None:
    stream = await create_stream(api, reconnect_window=3)
    url = node.rtmp_url(stream["stream_key"])
    proc = ffmpeg_publish(source_flv, url, loop=True)
    live = await wait_status(api, stream["id"], "active")
    broadcast_id = live["live"]["broadcast_id"]

    async def disconnected() -> dict[str, Any] | None:
        """The stream as the server reports it once it has noticed the publisher is gone."""
        data = await get_stream(api, stream["id"])
        return data if data["live"] and not data["live"]["connected"] else None

    # Killed without a word: the server notices the dead TCP connection.
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # One answer shows both: the publisher is gone and the stream, inside its window, is
    # still active.
    lost = await eventually(disconnected, what="publisher loss noticed")
    assert lost["status"] == "active"

    proc = ffmpeg_publish(source_flv, url, loop=True)
    try:

        async def reconnected() -> dict[str, object] | None:
            facts = (await get_stream(api, stream["id"]))["live"]
            return facts if facts and facts["connected"] else None

        facts = await eventually(reconnected, what="publisher back")
        assert facts["broadcast_id"] == broadcast_id
        assert facts["reconnects"] == 1
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    lost = await eventually(disconnected, what="second publisher loss noticed")
    assert lost["status"] == "active"
    assert lost["live"]["broadcast_id"] == broadcast_id
    idle = await wait_status(api, stream["id"], "idle")
    assert idle["live"] is None
    events = (await api.get(f"/live-streams/{stream['id']}/events")).json()["data"]
    names = [e["type"] for e in events]
    assert names.count("live_stream.connected") == 2
    assert names.count("live_stream.idle") == 1
