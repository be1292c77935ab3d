"""Native HLS clients play a node's LL-HLS in real time: GStreamer playbin3, ffmpeg and VLC.

None is a browser: GStreamer's hlsdemux2 (adaptivedemux2), ffmpeg's hls demuxer and
VLC's adaptive module are independent implementations of the playlist rules, with their
own way of picking a variant, joining a live window and following playlist reloads. Each plays the
multivariant playlist for about 20 s; the test counts the frames it decoded against
wall time and reads its errors. ffmpeg's position (with -copyts, the encoder's own
timeline) is compared with the newest part at the origin for its delay behind live;
gst-launch exposes no such position (its timestamps start at zero), so only its rate
is measured. VLC remuxes what it fetched and demuxed to MPEG-TS on its stdout, whose
tracks' lengths are compared with the wall time it ran.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from tests.e2e.conftest import create_stream, eventually, wait_status
from tests.media.mp4info import read_fragment, read_init
from tests.mediatools import FFMPEG, GST_LAUNCH, ffmpeg_publish, ffprobe, stop

from golive.app import Golive

pytestmark = pytest.mark.slow

PLAY_SECONDS = 20.0
FRAME_RATE = 30.0  # the test sources'
# A client following a live stream decodes as many frames per second of wall time as
# the origin publishes (the node's encoder may run a little under real time on a busy
# machine, so that is measured in the same run): fewer mean it skipped or stalled, more
# for long cannot be.
RATE_TOLERANCE = 0.1
CVLC = shutil.which("cvlc")
_GST_FRAME = re.compile(r"chain +\*+ \(vsink:sink\) .*?pts: (\d+):(\d\d):(\d\d\.\d+)")


@dataclass
class Frames:
    """What a client's output said, with the wall time each line was read."""

    times: list[float] = field(default_factory=list)  # monotonic, per frame or report
    values: list[float] = field(default_factory=list)  # pts, or frames decoded so far
    positions: list[float] = field(default_factory=list)  # ffmpeg: out_time, seconds
    errors: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


async def go_live(
    node: Golive, api: httpx.AsyncClient, source: Path
) -> tuple[subprocess.Popen[bytes], str, httpx.AsyncClient]:
    stream = await create_stream(api, name="native")
    proc = ffmpeg_publish(source, node.rtmp_url(stream["stream_key"]), loop=True)
    await wait_status(api, stream["id"], "active")
    pid = stream["playback_ids"][0]["id"]
    hls = httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30)

    async def ready() -> bool:
        response = await hls.get(f"{pid}.m3u8")
        if response.status_code != 200:
            return False
        for uri in re.findall(r"^(?!#)(\S+)$", response.text, re.M):
            if (await hls.get(uri)).text.count("#EXTINF") < 3:
                return False
        return True

    await eventually(ready, timeout=60, what="LL-HLS playlists with three segments")
    return proc, pid, hls


@contextmanager
def reading(stream: IO[bytes], parse: Any) -> Iterator[Frames]:
    """Read a client's output in a thread (it must never wait on the event loop)."""
    frames = Frames()

    def run() -> None:
        try:
            for raw in stream:
                parse(raw.decode(errors="replace"), time.monotonic(), frames)
        finally:
            frames.done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield frames
    finally:
        thread.join(timeout=10)


def parse_gst(line: str, now: float, frames: Frames) -> None:
    match = _GST_FRAME.search(line)
    if match is not None:
        h, m, s = match.groups()
        frames.times.append(now)
        frames.values.append(int(h) * 3600 + int(m) * 60 + float(s))
    elif line.startswith(("ERROR", "WARNING")):
        frames.errors.append(line.strip())


def parse_ffmpeg(line: str, now: float, frames: Frames) -> None:
    key, _, value = line.strip().partition("=")
    if key == "frame":
        frames.values.append(float(value))
        frames.times.append(now)
    elif key == "out_time_us" and value.lstrip("-").isdigit():
        frames.positions.append(int(value) / 1e6)


async def played(frames: Frames, seconds: float, timeout: float) -> None:
    """Wait until the client has reported for `seconds` since its first frame, or ended."""

    async def enough() -> bool:
        times = frames.times
        return frames.done.is_set() or (bool(times) and times[-1] - times[0] >= seconds)

    await eventually(enough, timeout=timeout, what=f"{seconds:.0f} s of playback")


@asynccontextmanager
async def origin_edge(
    hls: httpx.AsyncClient, pid: str, uri: str
) -> AsyncIterator[list[tuple[float, float]]]:
    """(monotonic, end of the newest part's video) of a rendition at the origin, each second.

    In the encoder's timeline: the peer a client's rate and position are measured against.
    """
    edges: list[tuple[float, float]] = []

    async def follow() -> None:
        timescale: dict[str, int] = {}
        while True:
            text = (await hls.get(uri)).text
            init_uri = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)[-1]
            if init_uri not in timescale:
                init = read_init((await hls.get(f"{pid}/{init_uri}")).content)
                timescale[init_uri] = next(
                    t.timescale for t in init.values() if t.handler == "vide"
                )
            part = re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', text)[-1]
            runs = read_fragment((await hls.get(f"{pid}/{part}")).content)
            video = min(runs.values(), key=lambda r: r.track_id)  # ffmpeg writes video first
            scale = timescale[init_uri]
            edges.append((time.monotonic(), (video.decode_time + video.duration) / scale))
            await asyncio.sleep(1)

    task = asyncio.create_task(follow())
    try:
        yield edges
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def origin_fps(edges: list[tuple[float, float]], since: float) -> float:
    """Frames per second of wall time the origin published (its encoder's real speed)."""
    later = [(at, edge) for at, edge in edges if at >= since]
    if len(later) < 2:
        return FRAME_RATE
    (t0, e0), (t1, e1) = later[0], later[-1]
    return (e1 - e0) / (t1 - t0) * FRAME_RATE


async def test_gstreamer_playbin3_plays_ll_hls_in_real_time(
    node: Golive, api: httpx.AsyncClient, source_480p: Path
) -> None:
    if GST_LAUNCH is None:
        pytest.skip("gst-launch-1.0 missing: run scripts/install-system-deps.sh")
    proc, pid, hls = await go_live(node, api, source_480p)
    top = re.findall(r"^(?!#)(\S+)$", (await hls.get(f"{pid}.m3u8")).text, re.M)[0]
    client = subprocess.Popen(  # noqa: ASYNC220  (its output is read in a thread)
        [GST_LAUNCH, "-v", "playbin3", f"uri={node.http_url}/live/{pid}.m3u8",
         "video-sink=fakesink name=vsink sync=true silent=false",
         "audio-sink=fakesink sync=true"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert client.stdout is not None
        async with origin_edge(hls, pid, top) as edges:
            with reading(client.stdout, parse_gst) as frames:
                await played(frames, PLAY_SECONDS, timeout=PLAY_SECONDS + 60)
                assert client.poll() is None, f"gst-launch exited: {frames.errors}"
                client.send_signal(signal.SIGINT)  # stops the pipeline (no EOS wait without -e)
                await asyncio.to_thread(client.wait, 20)
        assert frames.errors == [], frames.errors
        # The first second is start-up (a sink that syncs to the clock still prerolls).
        start = next(i for i, t in enumerate(frames.times) if t - frames.times[0] >= 1.0)
        wall = frames.times[-1] - frames.times[start]
        fps = (len(frames.times) - 1 - start) / wall
        media = frames.values[-1] - frames.values[start]
        gaps = [b - a for a, b in zip(frames.times[start:], frames.times[start + 1 :], strict=False)]
        origin = origin_fps(edges, frames.times[start])
        print(
            f"\ngstreamer playbin3: {fps:.1f} frames/s over {wall:.1f} s (origin {origin:.1f}), "
            f"media/wall {media / wall:.3f}, longest gap between frames {max(gaps) * 1000:.0f} ms"
        )
        assert abs(fps / origin - 1) <= RATE_TOLERANCE, (fps, origin)
        assert 0.9 <= media / wall <= 1.1, (media, wall)
    finally:
        stop(client)
        stop(proc)
        await hls.aclose()


async def test_ffmpeg_plays_ll_hls_in_real_time_and_near_live(
    node: Golive, api: httpx.AsyncClient, source_480p: Path
) -> None:
    proc, pid, hls = await go_live(node, api, source_480p)
    top = re.findall(r"^(?!#)(\S+)$", (await hls.get(f"{pid}.m3u8")).text, re.M)[0]
    # ffmpeg plays the first variant's video (-map 0:v:0): the top one.
    client = subprocess.Popen(  # noqa: ASYNC220  (its output is read in a thread)
        [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "warning", "-copyts",
         "-i", f"{node.http_url}/live/{pid}.m3u8", "-map", "0:v:0",
         "-frames:v", str(round((PLAY_SECONDS + 4) * FRAME_RATE)),
         "-f", "null", "-", "-progress", "pipe:1", "-stats_period", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert client.stdout is not None and client.stderr is not None
        async with origin_edge(hls, pid, top) as edges:
            with reading(client.stdout, parse_ffmpeg) as frames:
                code = await asyncio.to_thread(client.wait, PLAY_SECONDS + 60)
        errors = client.stderr.read().decode(errors="replace")
        assert code == 0, errors
        # Its warnings are printed, not failed on: see the module docstring.
        if errors:
            print(f"\nffmpeg said:\n{errors}")
        # After its first seconds (it joins three segments back and reads them at once)
        # it can only decode as fast as the origin publishes.
        start = next(i for i, t in enumerate(frames.times) if t - frames.times[0] >= 5.0)
        wall = frames.times[-1] - frames.times[start]
        fps = (frames.values[-1] - frames.values[start]) / wall
        decoded = frames.values[-1]
        assert decoded == round((PLAY_SECONDS + 4) * FRAME_RATE), decoded
        delays = [
            edge - _position_at(frames, at) for at, edge in edges if frames.times[start] <= at
        ]
        p50 = statistics.median(delays) if delays else float("nan")
        origin = origin_fps(edges, frames.times[start])
        print(
            f"\nffmpeg: {fps:.1f} frames/s over {wall:.1f} s (origin {origin:.1f}); delay behind the origin's newest "
            f"part p50 {p50:.2f} s (min {min(delays, default=float('nan')):.2f}, "
            f"max {max(delays, default=float('nan')):.2f}, {len(delays)} samples)"
        )
        assert abs(fps / origin - 1) <= RATE_TOLERANCE, (fps, origin)
        assert delays and 0 <= p50 < 15, delays
    finally:
        stop(client)
        stop(proc)
        await hls.aclose()


def _position_at(frames: Frames, at: float) -> float:
    """ffmpeg's position (its last out_time reported at or before `at`)."""
    position = frames.positions[0] if frames.positions else 0.0
    for when, value in zip(frames.times, frames.positions, strict=False):
        if when > at:
            break
        position = value
    return position


async def test_vlc_plays_ll_hls_in_real_time(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, tmp_path: Path
) -> None:
    if CVLC is None:
        pytest.skip("cvlc missing: run scripts/install-system-deps.sh")
    proc, pid, hls = await go_live(node, api, source_480p)
    out = tmp_path / "vlc.ts"
    # VLC refuses to run as root (a CI machine's user): it runs as nobody there, with a
    # home of its own it may write.
    as_nobody = (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
                 if os.geteuid() == 0 else [])
    with tempfile.TemporaryDirectory() as home, out.open("wb") as sink:
        os.chmod(home, 0o777)
        client = subprocess.Popen(  # noqa: ASYNC220  (waited for in a thread)
            [*as_nobody, CVLC, "-I", "dummy", "--no-media-library", "--play-and-exit",
             f"--run-time={PLAY_SECONDS:.0f}", f"{node.http_url}/live/{pid}.m3u8",
             "--sout=#std{access=file,mux=ts,dst=-}"],
            stdout=sink, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            env={"HOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )  # fmt: skip
        try:
            started = time.monotonic()
            code = await asyncio.to_thread(client.wait, PLAY_SECONDS + 60)
            wall = time.monotonic() - started
            assert client.stderr is not None
            said = client.stderr.read().decode(errors="replace")
        finally:
            stop(client)
            stop(proc)
            await hls.aclose()
    assert code == 0, said
    streams = {s["codec_type"]: s for s in ffprobe(out, "-count_packets")["streams"]}
    assert set(streams) == {"video", "audio"}, streams
    video = float(streams["video"]["duration"])
    frames = int(streams["video"]["nb_read_packets"])
    audio = float(streams["audio"]["duration"])
    print(f"\nvlc: {video:.1f} s of video ({frames} frames), {audio:.1f} s of audio in "
          f"{wall:.1f} s")
    # It joins a few segments behind live and follows the playlist from there: what it
    # took in its run is the run's length, give or take the segments it joined behind.
    assert PLAY_SECONDS * 0.8 <= video <= wall + 10, (video, wall, said[-2000:])
    # Both tracks, the whole run long (the muxer may close one a segment before the other).
    assert PLAY_SECONDS * 0.8 <= audio <= wall + 10, (audio, video)
    assert abs(frames / video - FRAME_RATE) < FRAME_RATE * RATE_TOLERANCE, (frames, video)
