"""WHEP playback: glass-to-glass delay in Chromium, and N WebRTC viewers of one broadcast.

Delay uses bench/latency.py's method: this process draws numbered flash frames,
ffmpeg publishes them over RTMP, and headless Chromium plays the stream through the
watch page's real-time (WHEP) option; the displayed frames are read back through a
canvas and each flash's appearance is timed on the same wall clock.

Viewers: a second stream (a looped file, `-c copy`, so the publisher costs nothing)
is watched by N aiortc WHEP viewers spread over several processes (`--per-process`
each; every process sends from its own loopback address, 127.0.0.K, as distinct
viewers would). Each viewer counts the video frames it receives, reassembled from
RTP but not decoded. A viewer counts only once ICE and DTLS are connected; one that
is refused, or does not connect within `--connect-timeout`, is a failure and counts
as 0 fps, and so does one that is connected but gets nothing in the window
("silent": golive gave up on it before its own side connected). Then, over one
window, per viewer count: viewers connected as the clients see it and as golive
counts them (its /metrics), failures by kind, the frame rate golive's WebRTC output
made (its /metrics: what every viewer should get), video fps per viewer (min, p5,
mean; failures included as 0), and the CPU of golive's Python process, of its
ffmpeg, of the viewer processes, and of the whole machine, each in % of one core.
golive's cost per viewer is its CPU over the no-viewer baseline, divided by N. Where
the machine is busy (near 100% x cores), the numbers measure the machine, not
golive: the table says so.

    python bench/webrtc.py [--viewers 1,10,50] [--window 15] [--no-browser]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("bench_latency", ROOT / "bench" / "latency.py")
assert _spec is not None and _spec.loader is not None
latency = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(latency)

from tests.mediatools import ffmpeg_publish, make_source, stop  # noqa: E402

DETECT = """() => {
  const video = document.querySelector("video");
  const canvas = document.createElement("canvas");
  canvas.width = 64; canvas.height = 16;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  window.flashes = []; let lastSeen = -1;
  function onFrame() {
    ctx.drawImage(video, 0, 0, 64, 16);
    const px = ctx.getImageData(0, 0, 64, 16).data;
    const lum = (x, y) => px[(y * 64 + x) * 4 + 1];
    if (lum(32, 12) > 160) {
      let n = 0;
      for (let b = 0; b < %(bits)d; b++) {
        const x = Math.floor((b + 0.5) * 64 / %(bits)d);
        if (lum(x, 2) > 128) n |= 1 << b;
      }
      if (n !== lastSeen) { lastSeen = n; window.flashes.push([n, Date.now() / 1000]); }
    }
    video.requestVideoFrameCallback(onFrame);
  }
  video.requestVideoFrameCallback(onFrame);
}"""

# A viewer's state, shared with the parent (one integer per viewer).
CONNECTING, CONNECTED, FAILED, REFUSED, DROPPED, ERROR = 0, 1, 2, 3, 4, 5
STATE_NAMES = {CONNECTING: "connecting", CONNECTED: "connected", FAILED: "no ICE/DTLS",
               REFUSED: "refused", DROPPED: "dropped", ERROR: "error"}


def start_golive(workdir: Path, max_viewers: int,
                 profile: str = "") -> tuple[subprocess.Popen[bytes], int, int]:
    http, rtmp = latency.free_port(), latency.free_port()
    env = dict(os.environ, GOLIVE_DATA_DIR=str(workdir / "golive"), GOLIVE_HOST="127.0.0.1",
               GOLIVE_HTTP_PORT=str(http), GOLIVE_RTMP_PORT=str(rtmp), GOLIVE_SRT_PORT="0",
               GOLIVE_ADMIN_TOKEN=latency.ADMIN, GOLIVE_LOG_LEVEL="warning",
               GOLIVE_WHEP_MAX_VIEWERS=str(max_viewers),
               GOLIVE_WEBRTC_HOST_ADDRESSES='["127.0.0.1"]')
    # cProfile writes its stats when serve returns (SIGTERM stops it cleanly).
    profiler = ["-m", "cProfile", "-o", profile] if profile else []
    proc = subprocess.Popen([sys.executable, *profiler, "-m", "golive", "serve"], env=env,
                            stdout=subprocess.DEVNULL)
    latency.wait_port(http, proc)
    latency.wait_port(rtmp, proc)
    return proc, http, rtmp


async def watch_realtime(url: str, seconds: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=latency.CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
        )
        page = await browser.new_page()
        await page.goto(url)
        button = page.locator(".player-realtime")
        await button.wait_for(state="visible", timeout=60_000)
        await button.click()
        await page.wait_for_function(
            "document.querySelector('video').srcObject instanceof MediaStream", timeout=30_000)
        await page.evaluate(DETECT % {"bits": latency.BITS})
        await asyncio.sleep(seconds)
        result: dict[str, Any] = await page.evaluate(
            "({flashes: window.flashes, mode: document.querySelector('[data-mode]')"
            "?.dataset.mode})")
        await browser.close()
        return result


# CPU accounting -----------------------------------------------------------------------


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_queue_wait(pid: int) -> float:
    """Seconds the process's threads have waited, runnable, for a CPU (/proc schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(task.read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total / 1e9


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    hz = os.sysconf("SC_CLK_TCK")
    return (total - idle) / hz, total / hz


def udp_counters() -> tuple[int, int]:
    """(datagrams delivered, datagrams dropped for a full receive buffer), machine-wide."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Udp:")]
    values = dict(zip(lines[0][1:], (int(v) for v in lines[1][1:]), strict=True))
    return values["InDatagrams"], values["RcvbufErrors"]


@dataclass
class CpuSample:
    golive: float
    golive_wait: float  # waiting for a CPU while runnable: the machine, not golive's work
    ffmpeg: dict[int, float]  # by pid: golive restarts its ffmpeg when it falls behind
    clients: float
    busy: float
    total: float
    at: float

    @classmethod
    def take(cls, golive: int, clients: list[int]) -> CpuSample:
        busy, total = machine_busy()
        return cls(cpu_of(golive), run_queue_wait(golive),
                   {p: cpu_of(p) for p in children_of(golive)},
                   sum(cpu_of(p) for p in clients), busy, total, time.monotonic())

    def percent(self, later: CpuSample) -> dict[str, float]:
        span = later.at - self.at
        # An ffmpeg that ended inside the window is missing its last part: a lower bound.
        ffmpeg = sum(cpu - self.ffmpeg.get(pid, 0.0) for pid, cpu in later.ffmpeg.items())
        return {
            "golive": (later.golive - self.golive) / span * 100,
            "golive_wait": (later.golive_wait - self.golive_wait) / span * 100,
            "ffmpeg": ffmpeg / span * 100,
            "ffmpeg_restarts": float(len(set(later.ffmpeg) - set(self.ffmpeg))),
            "clients": (later.clients - self.clients) / span * 100,
            # in % of one core, like the rest: 100 x cores is a machine with nothing idle
            "machine": (later.busy - self.busy) / span * 100,
        }


# Viewers ------------------------------------------------------------------------------


def viewers_process(base: str, pid: str, address: str, first: int, count: int,
                    frames: Any, states: Any, retries: Any, done: Any, stop_event: Any,
                    connect_timeout: float, pending: int) -> None:
    """`count` WHEP viewers from `address`; viewer k is `first + k` in the shared arrays."""
    import uvloop

    from golive.webrtc.ice import gather_on, install_host_address_hook
    from golive.webrtc.receive import tap_encoded_frames

    install_host_address_hook()  # this process runs no node to do it

    async def main() -> None:
        import httpx
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        peers: list[Any] = []
        # golive lets one address have only a few sessions still connecting at once.
        gate = asyncio.Semaphore(pending)
        transport = httpx.AsyncHTTPTransport(local_address=address)
        async with httpx.AsyncClient(base_url=base, timeout=30, transport=transport) as client:

            async def viewer(k: int) -> None:
                try:
                    await connect(k)
                except Exception as exc:  # a timeout, a reset: this viewer failed, not the run
                    states[first + k] = ERROR
                    print(f"viewer {first + k}: {exc!r}", file=sys.stderr)

            async def connect(k: int) -> None:
                slot = first + k
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                peers.append(pc)
                video = pc.addTransceiver("video", direction="recvonly")
                audio = pc.addTransceiver("audio", direction="recvonly")

                def count_frame(_receiver: Any, _codec: Any, _data: bytes, _ts: int) -> None:
                    frames[slot] += 1

                tap_encoded_frames(video.receiver, count_frame)
                tap_encoded_frames(audio.receiver, lambda *_: None)  # no Opus decoding
                connected = asyncio.Event()

                @pc.on("connectionstatechange")
                def changed() -> None:
                    if pc.connectionState == "connected":
                        connected.set()
                    elif pc.connectionState in ("failed", "closed") and states[slot] == CONNECTED:
                        states[slot] = DROPPED

                async with gate:
                    with gather_on([address]):
                        await pc.setLocalDescription(await pc.createOffer())
                    for _attempt in range(4):
                        response = await client.post(
                            f"/whep/{pid}", content=pc.localDescription.sdp,
                            headers={"Content-Type": "application/sdp"})
                        if response.status_code not in (429, 503):
                            break
                        # Our previous offer is connected here but not yet there: as a
                        # player would, wait as told (the bench counts these waits).
                        retries[slot] += 1
                        await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    if response.status_code != 201:
                        states[slot] = REFUSED
                        print(f"viewer {slot}: {response.status_code} {response.text[:200]}",
                              file=sys.stderr)
                        return
                    await pc.setRemoteDescription(
                        RTCSessionDescription(sdp=response.text, type="answer"))
                    try:
                        await asyncio.wait_for(connected.wait(), connect_timeout)
                    except TimeoutError:
                        states[slot] = FAILED
                        return
                    states[slot] = CONNECTED

            await asyncio.gather(*(viewer(k) for k in range(count)))
            done.set()
            await asyncio.get_running_loop().run_in_executor(None, stop_event.wait)
            await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)

    uvloop.run(main())


@dataclass
class ViewerRow:
    viewers: int
    connected: int
    failures: dict[str, int]
    fps: list[float]  # per viewer, failures as 0
    cpu: dict[str, float]
    connect_s: float
    retries: int  # offers answered 429/503 and sent again after Retry-After
    served: int  # connected viewers as golive counts them, at the end of the window
    output_fps: float  # video frames/s golive's WebRTC output made in the window
    udp_in: int  # datagrams the kernel delivered in the window (every socket)
    udp_dropped: int  # datagrams the kernel dropped: a receiver too slow to read them
    backlog: int  # most video frames a viewer had waiting in golive at the window's end


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def golive_metric(base: str, name: str, stream_id: str) -> int:
    """One of the stream's numbers from golive's /metrics (0 when it has none)."""
    import urllib.request

    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    prefix = f'{name}{{stream_id="{stream_id}"}} '
    return next((int(float(line[len(prefix):])) for line in text.splitlines()
                 if line.startswith(prefix)), 0)


def measure_viewers(golive: subprocess.Popen[bytes], base: str, pid: str, stream_id: str,
                    count: int, window: float, per_process: int, connect_timeout: float,
                    pending: int) -> ViewerRow:
    ctx = multiprocessing.get_context("spawn")
    frames = ctx.Array("q", count, lock=False)
    states = ctx.Array("b", count, lock=False)
    retries = ctx.Array("b", count, lock=False)
    stop_event = ctx.Event()
    processes: list[tuple[Any, Any]] = []
    started = time.monotonic()
    for index, first in enumerate(range(0, count, per_process)):
        done = ctx.Event()
        n = min(per_process, count - first)
        child = ctx.Process(target=viewers_process, args=(
            base, pid, f"127.0.0.{10 + index}", first, n, frames, states, retries, done,
            stop_event,
            connect_timeout, pending))
        child.start()
        processes.append((child, done))
    try:
        for child, done in processes:
            if not done.wait(connect_timeout * count + 60):
                raise RuntimeError(f"viewer process {child.pid} never finished connecting")
        connect_s = time.monotonic() - started
        time.sleep(2.0)  # past the wait for each viewer's first keyframe
        clients = [child.pid for child, _ in processes]
        output = golive_metric(base, "golive_webrtc_video_frames_total", stream_id)
        udp_before = udp_counters()
        before_frames, before = list(frames), CpuSample.take(golive.pid, clients)
        time.sleep(window)
        after_frames, after = list(frames), CpuSample.take(golive.pid, clients)
        udp_after = udp_counters()
        output = golive_metric(base, "golive_webrtc_video_frames_total", stream_id) - output
        served = golive_metric(base, "golive_whep_viewers", stream_id)
        backlog = golive_metric(base, "golive_whep_backlog_frames", stream_id)
        span = after.at - before.at
        fps = [(a - b) / span if states[i] == CONNECTED else 0.0
               for i, (a, b) in enumerate(zip(after_frames, before_frames, strict=True))]
        failures: dict[str, int] = {}
        for i, state in enumerate(states):
            # Connected here but nothing arrived in the window: a failure all the same.
            name = STATE_NAMES[state] if state != CONNECTED else "silent" if not fps[i] else ""
            if name:
                failures[name] = failures.get(name, 0) + 1
        return ViewerRow(count, sum(1 for s in states if s == CONNECTED), failures, fps,
                         before.percent(after), connect_s, sum(retries), served, output / span,
                         udp_after[0] - udp_before[0], udp_after[1] - udp_before[1], backlog)
    finally:
        stop_event.set()
        for child, _ in processes:
            child.join(30)
            if child.is_alive():
                child.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0,
                        help="how long Chromium watches for the delay")
    parser.add_argument("--no-browser", action="store_true", help="skip the delay measurement")
    parser.add_argument("--viewers", default="1,10,50")
    parser.add_argument("--window", type=float, default=15.0, help="seconds per viewer count")
    parser.add_argument("--per-process", type=int, default=10, help="viewers per client process")
    parser.add_argument("--connect-timeout", type=float, default=15.0,
                        help="seconds a viewer has to connect ICE and DTLS")
    parser.add_argument("--pending", type=int, default=2,
                        help="offers in flight per client process (golive allows 2 per address)")
    parser.add_argument("--profile", default="", metavar="FILE",
                        help="run golive under cProfile and write its stats to FILE")
    args = parser.parse_args()
    counts = [int(c) for c in args.viewers.split(",") if c]
    cores = os.cpu_count() or 1
    seen: dict[str, Any] = {}
    flashes: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="golive-webrtc-") as tmp:
        source = make_source(Path(tmp) / "source.flv", size="854x480", video_kbps=1500)
        golive, http, rtmp = start_golive(Path(tmp), max(counts) + 10, args.profile)
        base = f"http://127.0.0.1:{http}"
        stop_flashes = threading.Event()
        pub: threading.Thread | None = None
        looped: subprocess.Popen[bytes] | None = None
        try:
            if not args.no_browser:
                stream = latency.api(http, "POST", "/live-streams",
                                     {"name": "webrtc delay", "webrtc_playback": True})
                pid = stream["playback_ids"][0]["id"]
                pub = latency.publisher([f"rtmp://127.0.0.1:{rtmp}/live/{stream['stream_key']}"],
                                        "854x480", stop_flashes, flashes)
                time.sleep(8)
                seen = asyncio.run(watch_realtime(f"{base}/watch/{pid}", args.seconds))
                stop_flashes.set()
                pub.join(15)
                pub = None
                latency.api(http, "PUT", f"/live-streams/{stream['id']}/disable")

            stream = latency.api(http, "POST", "/live-streams",
                                 {"name": "webrtc viewers", "webrtc_playback": True})
            pid = stream["playback_ids"][0]["id"]
            looped = ffmpeg_publish(source, f"rtmp://127.0.0.1:{rtmp}/live/{stream['stream_key']}",
                                    loop=True)
            time.sleep(8)
            before = CpuSample.take(golive.pid, [])
            time.sleep(args.window)
            baseline = before.percent(CpuSample.take(golive.pid, []))
            rows = [measure_viewers(golive, base, pid, stream["id"], n, args.window,
                                    args.per_process, args.connect_timeout, args.pending)
                    for n in counts]
        finally:
            stop_flashes.set()
            if pub is not None:
                pub.join(15)
            if looped is not None:
                stop(looped)
            golive.send_signal(signal.SIGTERM)
            try:
                golive.wait(30 if args.profile else 10)
            except subprocess.TimeoutExpired:
                golive.kill()

    if not args.no_browser:
        delays = [at - flashes[n] for n, at in seen["flashes"]
                  if n in flashes and at > flashes[n]]
        print()
        print(f"WHEP glass-to-glass, Chromium watch page in real-time mode, {args.seconds:.0f} s")
        if delays:
            p50 = latency.percentile(delays, 0.5)
            print(f"flashes {len(delays)} | p50 {p50 * 1000:.0f} ms | "
                  f"p95 {latency.percentile(delays, 0.95) * 1000:.0f} ms | "
                  f"min {min(delays) * 1000:.0f} ms | max {max(delays) * 1000:.0f} ms "
                  f"| player mode {seen.get('mode')}")
            print(f"goal: under 300 ms: p50 {p50 * 1000:.0f} ms -> "
                  f"{'MET' if p50 < 0.3 else 'NOT MET'}")
        else:
            print(f"no flashes seen (player mode {seen.get('mode')})")
    print()
    print(f"WHEP viewers of one 854x480 broadcast (WebRTC output 640x360 30 fps), "
          f"{args.window:.0f} s windows, {args.per_process} viewers per client process; "
          f"CPU in % of one core, this machine has {cores}")
    print(f"baseline, no viewers: golive {baseline['golive']:.1f}% (waited for a CPU "
          f"{baseline['golive_wait']:.1f}%) | ffmpeg {baseline['ffmpeg']:.1f}% | machine "
          f"{baseline['machine']:.1f}%")
    header = (f"{'viewers':>7} | {'connected':>9} | {'golive':>6} | {'failed':>16} | "
              f"{'output fps':>10} | {'fps min':>7} | "
              f"{'p5':>5} | {'mean':>5} | {'golive %':>8} | {'/viewer':>7} | {'ffmpeg %':>8} | "
              f"{'waited %':>8} | {'clients %':>9} | {'machine %':>9} | {'udp drops':>9} | "
              f"{'connect s':>9} | "
              f"{'retried':>7}")
    print(header)
    print("-" * len(header))
    for row in rows:
        failed = ", ".join(f"{v} {k}" for k, v in row.failures.items()) or "0"
        per_viewer = (row.cpu["golive"] - baseline["golive"]) / row.viewers
        print(f"{row.viewers:>7} | {row.connected:>9} | {row.served:>6} | {failed:>16} | "
              f"{row.output_fps:>10.1f} | {min(row.fps):>7.1f} | "
              f"{percentile(row.fps, 0.05):>5.1f} | {sum(row.fps) / len(row.fps):>5.1f} | "
              f"{row.cpu['golive']:>8.1f} | {per_viewer:>7.2f} | {row.cpu['ffmpeg']:>8.1f} | "
              f"{row.cpu['golive_wait']:>8.1f} | "
              f"{row.cpu['clients']:>9.1f} | {row.cpu['machine']:>9.1f} | {row.udp_dropped:>9} | "
              f"{row.connect_s:>9.1f} | {row.retries:>7}")
    saturated = [r.viewers for r in rows if r.cpu["machine"] > 90 * cores]
    goal = [r for r in rows if r.viewers >= 50]
    for row in goal:
        met = row.connected == row.viewers and percentile(row.fps, 0.05) >= 29
        print(f"{row.viewers} viewers: p5 {percentile(row.fps, 0.05):.1f} fps of the "
              f"{row.output_fps:.1f} fps golive's WebRTC output made in the window "
              f"(ffmpeg restarts in the window: {row.cpu['ffmpeg_restarts']:.0f}; at its "
              f"end the most frames a viewer had waiting in golive: {row.backlog})")
        print(f"goal: {row.viewers} viewers connected at 30 fps each (p5 >= 29): "
              f"{'MET' if met else 'NOT MET'}")
    print("waited %: time golive's threads were runnable but had no CPU (schedstat), in % "
          "of the window; high means the machine, not golive's work, set its pace")
    print("udp drops: datagrams the kernel dropped in the window for full receive buffers, "
          "machine-wide (a receiver, here the viewer processes, that did not read in time)")
    if saturated:
        print(f"the machine had no idle CPU at {saturated} viewers: those rows measure the "
              "machine (golive, its ffmpeg and the clients together), not golive alone")


if __name__ == "__main__":
    main()
