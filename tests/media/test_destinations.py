"""Destination forwarders: URL checks, key masking, real ffmpeg to a real SRT listener."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.media.conftest import feed, read_flv
from tests.mediatools import FFMPEG, ffprobe
from tests.nginxedge import free_port

from golive.core import Backoff
from golive.formats import MediaTag
from golive.media.destinations import (
    DestinationRefused,
    DestinationState,
    Forwarder,
    ForwarderStatus,
    check_destination_url,
    mask_secret,
    redact_url,
)

SRT_LIVE_TRANSMIT = shutil.which("srt-live-transmit") or "/usr/bin/srt-live-transmit"


def test_secrets_are_masked_and_urls_redacted() -> None:
    assert mask_secret("abc") == "***"
    assert mask_secret("live_1234567890") == "***********7890"
    assert redact_url("rtmp://a.example/app/live_1234567890") == (
        "rtmp://a.example/app/***********7890")
    assert "secret" not in redact_url("srt://a.example:9000?passphrase=secretsecret")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://a.example/app/key", "rtmp://, rtmps:// or srt://"),
        ("rtmp:///app/key", "rtmp://, rtmps:// or srt://"),
        ("srt://127.0.0.1?streamid=x", "needs a port"),
        ("srt://127.0.0.1:9000?mode=listener", "mode=caller"),
        ("rtmp://127.0.0.1/app/key", "not a public address"),
        ("rtmp://10.1.2.3/app/key", "not a public address"),
        ("rtmp://a.example/app/k ey", "control characters"),
        ("rtmp://a.example/" + "k" * 3000, "longer than"),
    ],
)
async def test_refused_urls_say_why(url: str, why: str) -> None:
    with pytest.raises(DestinationRefused, match=why):
        await check_destination_url(url, allow_private=False)


async def test_private_targets_only_with_the_setting() -> None:
    await check_destination_url("rtmp://127.0.0.1:1935/app/key", allow_private=True)
    await check_destination_url("srt://127.0.0.1:9000?streamid=a", allow_private=True)


def forwarder(url: str, states: list[ForwarderStatus], changed: asyncio.Event) -> Forwarder:
    def seen(status: ForwarderStatus) -> None:
        states.append(ForwarderStatus(status.state, status.reason, status.attempts))
        changed.set()

    return Forwarder(
        url, ffmpeg=FFMPEG, queue_bytes=8 << 20, has_audio=True, allow_private=True,
        backoff=Backoff(first=0.2, longest=0.5), on_state=seen,
    )  # fmt: skip


async def until(changed: asyncio.Event, done: Callable[[], bool]) -> None:
    """Wait for a state change that makes `done` true (30 s only to catch a hang)."""
    async with asyncio.timeout(30):
        while not done():
            changed.clear()
            await changed.wait()


@pytest.mark.slow
async def test_forwards_to_an_srt_listener_and_a_dead_target_errors_and_retries(
    source_360p: Path, tmp_path: Path
) -> None:
    port = free_port()
    received = tmp_path / "received.ts"
    with received.open("wb") as out:
        listener = await asyncio.create_subprocess_exec(
            SRT_LIVE_TRANSMIT, "-q", f"srt://127.0.0.1:{port}?mode=listener", "file://con",
            stdout=out, stderr=subprocess.DEVNULL,
        )
    dead_port = free_port()  # nothing listens: the RTMP connect is refused
    changed = asyncio.Event()
    good: list[ForwarderStatus] = []
    dead: list[ForwarderStatus] = []
    to_srt = forwarder(f"srt://127.0.0.1:{port}?streamid=x", good, changed)
    to_dead = forwarder(f"rtmp://127.0.0.1:{dead_port}/app/live_secretkey123", dead, changed)
    try:
        to_srt.start()
        to_dead.start()
        tags = read_flv(source_360p)

        def push(tag: MediaTag) -> None:
            to_srt.push(tag)
            to_dead.push(tag)

        pushing = asyncio.create_task(feed(push, tags, pace=4))
        await until(changed, lambda: any(s.state is DestinationState.LIVE for s in good))
        await until(changed, lambda: sum(s.state is DestinationState.ERRORED for s in dead) >= 2)
        await pushing
        assert to_srt.status.state is DestinationState.LIVE
        assert to_srt.status.dropped_frames == 0
    finally:
        await to_srt.stop()
        await to_dead.stop()
        listener.terminate()
        async with asyncio.timeout(10):
            await listener.wait()
    reasons = [s.reason or "" for s in dead if s.state is DestinationState.ERRORED]
    reason = reasons[0]
    assert "Connection refused" in reason or "Input/output" in reason, reason
    assert "secretkey" not in reason
    assert not any(s.state is DestinationState.LIVE for s in dead)
    streams = {s["codec_type"]: s["codec_name"] for s in ffprobe(received)["streams"]}
    assert streams == {"video": "h264", "audio": "aac"}
