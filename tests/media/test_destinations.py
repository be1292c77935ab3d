"""Destination forwarders: URL checks, key masking, real ffmpeg to real nginx-rtmp and SRT targets."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from tests.media.conftest import feed, read_flv
from tests.mediatools import FFMPEG, ffprobe, make_radio
from tests.nginxedge import NGINX, free_port, nginx_rtmp_conf, wait_listening

from golive.core import Backoff
from golive.formats import Fragment, InitSegment, MediaTag, TagType
from golive.formats.mpegts import TsDemuxer
from golive.media.destinations import (
    DestinationRefused,
    DestinationState,
    Forwarder,
    ForwarderStatus,
    RenditionForwarder,
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


LIVE, ERRORED = DestinationState.LIVE, DestinationState.ERRORED


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


@contextlib.asynccontextmanager
async def targets(tmp_path: Path) -> AsyncIterator[tuple[int, int, Path]]:
    """A real SRT listener writing what it receives to a file, and nginx-rtmp recording
    under tmp_path/rec: (SRT port, RTMP port, the SRT file); both stopped after."""
    port, rtmp_port = free_port(), free_port()
    received = tmp_path / "received.ts"
    with received.open("wb") as out:
        listener = await asyncio.create_subprocess_exec(
            SRT_LIVE_TRANSMIT, "-q", f"srt://127.0.0.1:{port}?mode=listener", "file://con",
            stdout=out, stderr=subprocess.DEVNULL,
        )
    nginx = await asyncio.create_subprocess_exec(
        str(NGINX), "-p", str(tmp_path), "-c", str(nginx_rtmp_conf(tmp_path, rtmp_port)),
        "-g", "daemon off; error_log stderr warn;", stderr=subprocess.DEVNULL,
    )
    try:
        await wait_listening(rtmp_port, nginx)
        yield port, rtmp_port, received
    finally:
        if nginx.returncode is None:
            nginx.terminate()
        async with asyncio.timeout(10):
            await nginx.wait()
        listener.terminate()
        async with asyncio.timeout(10):
            await listener.wait()


@pytest.mark.slow
async def test_forwards_to_an_srt_listener_and_a_dead_target_errors_and_retries(
    source_360p: Path, tmp_path: Path
) -> None:
    dead_port = free_port()  # nothing listens: the RTMP connect is refused
    changed = asyncio.Event()
    good: list[ForwarderStatus] = []
    dead: list[ForwarderStatus] = []
    wrong_app: list[ForwarderStatus] = []
    async with targets(tmp_path) as (port, rtmp_port, received):
        to_srt = forwarder(f"srt://127.0.0.1:{port}?streamid=x", good, changed)
        to_rtmp = forwarder(f"rtmp://127.0.0.1:{rtmp_port}/live/key1", good, changed)
        to_wrong = forwarder(f"rtmp://127.0.0.1:{rtmp_port}/nosuchapp/key2", wrong_app, changed)
        to_dead = forwarder(f"rtmp://127.0.0.1:{dead_port}/app/live_secretkey123", dead, changed)
        try:
            for f in (to_srt, to_rtmp, to_wrong, to_dead):
                f.start()
            tags = read_flv(source_360p)

            def push(tag: MediaTag) -> None:
                for f in (to_srt, to_rtmp, to_wrong, to_dead):
                    f.push(tag)

            pushing = asyncio.create_task(feed(push, tags, pace=4))
            await until(changed, lambda: to_srt.status.state is to_rtmp.status.state is LIVE)
            await until(changed, lambda: sum(s.state is ERRORED for s in wrong_app) >= 2)
            await until(changed, lambda: sum(s.state is ERRORED for s in dead) >= 2)
            await pushing
            assert to_srt.status.state is to_rtmp.status.state is LIVE
            assert to_srt.status.dropped_frames == to_rtmp.status.dropped_frames == 0
        finally:
            for f in (to_srt, to_rtmp, to_wrong, to_dead):
                await f.stop()
    reasons = [s.reason or "" for s in dead if s.state is ERRORED]
    reason = reasons[0]
    assert "Connection refused" in reason or "Input/output" in reason, reason
    assert "secretkey" not in reason
    assert not any(s.state is LIVE for s in dead + wrong_app)
    assert all(s.reason for s in wrong_app if s.state is ERRORED)
    for path in (received, tmp_path / "rec" / "key1.flv"):
        streams = {s["codec_type"]: s["codec_name"] for s in ffprobe(path)["streams"]}
        assert streams == {"video": "h264", "audio": "aac"}, path


async def forward_to_rtmp_and_srt(tags: list[MediaTag], tmp_path: Path) -> Path:
    """`tags` through one forwarder to nginx-rtmp (recorded as tmp_path/rec/key1.flv) and
    one to an SRT listener, at twice real time, once both are live; the SRT file."""
    changed = asyncio.Event()
    states: list[ForwarderStatus] = []
    async with targets(tmp_path) as (port, rtmp_port, received):
        to_rtmp = forwarder(f"rtmp://127.0.0.1:{rtmp_port}/live/key1", states, changed)
        to_srt = forwarder(f"srt://127.0.0.1:{port}?streamid=x", states, changed)
        try:
            for f in (to_rtmp, to_srt):
                f.start()

            def push(tag: MediaTag) -> None:
                for f in (to_rtmp, to_srt):
                    f.push(tag)

            pushing = asyncio.create_task(feed(push, tags, pace=2))
            await until(changed, lambda: to_srt.status.state is to_rtmp.status.state is LIVE)
            await pushing
        finally:
            for f in (to_rtmp, to_srt):
                await f.stop()
    return received


@pytest.mark.slow
async def test_an_srt_publishers_mp2_reaches_rtmp_as_aac_and_srt_as_it_is(tmp_path: Path) -> None:
    # An SRT publisher's MPEG-1 Layer II comes to the forwarder as Enhanced RTMP audio,
    # which RTMP platforms do not take: it is encoded to AAC for them, copied for SRT.
    ts = tmp_path / "mp2.ts"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", "testsrc2=size=320x180:rate=30", "-f", "lavfi", "-i", "sine=sample_rate=48000",
         "-t", "6", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "mp2",
         "-f", "mpegts", str(ts)],
        check=True, timeout=120,
    )  # fmt: skip
    demuxer = TsDemuxer()
    tags = demuxer.feed(ts.read_bytes()) + demuxer.flush()
    assert any(t.type is TagType.AUDIO and t.body[:5] == b"\x91.mp3" for t in tags)
    received = await forward_to_rtmp_and_srt(tags, tmp_path)
    for path, audio in ((tmp_path / "rec" / "key1.flv", "aac"), (received, "mp2")):
        streams = {s["codec_type"]: s["codec_name"] for s in ffprobe(path)["streams"]}
        assert streams == {"video": "h264", "audio": audio}, path


@pytest.mark.slow
async def test_a_source_of_sound_alone_is_forwarded(tmp_path: Path) -> None:
    # A radio show: AAC and no picture. There is no keyframe to start at, so the forwarder
    # starts at its sound once as many tags as the probe takes have shown no video.
    flv = make_radio(tmp_path / "radio.flv")
    received = await forward_to_rtmp_and_srt(read_flv(flv), tmp_path)
    for path in (tmp_path / "rec" / "key1.flv", received):
        probe = ffprobe(path)
        streams = {s["codec_type"]: s["codec_name"] for s in probe["streams"]}
        assert streams == {"audio": "aac"}, path
        assert float(probe["format"]["duration"]) > 3, path


@pytest.mark.slow
async def test_a_target_that_stops_reading_drops_whole_gops_and_counts_them(
    source_360p: Path,
) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # accepts the TCP connection, never answers the handshake

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    states: list[ForwarderStatus] = []
    stuck = Forwarder(
        f"rtmp://127.0.0.1:{port}/live/key", ffmpeg=FFMPEG, queue_bytes=256 * 1024,
        has_audio=True, allow_private=True, backoff=Backoff(first=0.2, longest=0.5),
        on_state=lambda s: states.append(ForwarderStatus(s.state, s.reason, s.attempts)),
    )  # fmt: skip
    try:
        stuck.start()
        tags = read_flv(source_360p)
        for lap in range(10):  # 60 s: far more than ffmpeg's probe, the pipe and the queue
            for tag in tags:
                stuck.push(MediaTag(tag.type, tag.timestamp + lap * 6000, tag.body))
                await asyncio.sleep(0)
        assert stuck.status.dropped_frames > 0
        assert not any(s.state is LIVE for s in states)
        assert stuck.input.feed.size <= 256 * 1024
    finally:
        await stuck.stop()
        server.close()
        for writer in accepted:
            writer.close()


async def test_a_rendition_forwarder_starts_on_an_independent_fragment_and_drops_whole_gops(
) -> None:
    """The feed a rendition's run reads: init first, then fragments from an independent
    one; when the queue is full, everything up to the next independent fragment goes."""
    tap = RenditionForwarder(
        "rtmp://127.0.0.1:1/live/k", "360p", ffmpeg=FFMPEG, queue_bytes=1000,
        allow_private=True, backoff=Backoff(first=0.2, longest=0.5), on_state=lambda s: None)
    assert tap.rendition == "360p"
    init = InitSegment(b"I" * 100, ())

    def fragment(n: int, independent: bool, size: int = 100) -> Fragment:
        return Fragment(bytes([n]) * size, n, independent, n * 0.5, 0.5)

    feed = tap._next_feed()  # what the next ffmpeg run reads
    tap.on_fragment(fragment(1, True))  # no init yet: nothing to start with
    tap.on_init(init)
    tap.on_fragment(fragment(2, False))  # not independent: the run waits
    assert feed.size == 0
    tap.on_fragment(fragment(3, True))
    tap.on_fragment(fragment(4, False))
    assert b"".join(feed.chunks) == init.data + bytes([3]) * 100 + bytes([4]) * 100
    tap.on_fragment(fragment(5, False, size=800))  # over the 1000-byte queue: dropped
    tap.on_fragment(fragment(6, False))  # the rest of that GOP goes too
    tap.on_fragment(fragment(7, True))  # the next GOP is taken again
    assert b"".join(feed.chunks).endswith(bytes([4]) * 100 + bytes([7]) * 100)
    assert (tap.status.dropped_frames, tap.status.dropped_bytes) == (2, 900)
    # A new init (the transcoder restarted) on a run that has begun ends that run.
    tap._reading = feed
    tap.on_init(InitSegment(b"J" * 100, ()))
    assert feed.closed
