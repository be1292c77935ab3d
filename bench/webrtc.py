"""WHEP playback: glass-to-glass delay in Chromium, and golive's CPU per WebRTC viewer.

Delay uses bench/latency.py's method: this process draws numbered flash frames,
ffmpeg publishes them over RTMP, and headless Chromium plays the stream through the
watch page's real-time (WHEP) option; the displayed frames are read back through a
canvas and each flash's appearance is timed on the same wall clock.

CPU: N aiortc WHEP viewers (1, 10, 50) in a separate process take the packets
without decoding them; golive's CPU over the window, minus the same window with no
viewers, divided by N, is the cost of one viewer.

    python bench/webrtc.py [--seconds 70] [--viewers 1,10,50]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("bench_latency", ROOT / "bench" / "latency.py")
assert _spec is not None and _spec.loader is not None
latency = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(latency)

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


def start_golive(workdir: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    http, rtmp = latency.free_port(), latency.free_port()
    env = dict(os.environ, GOLIVE_DATA_DIR=str(workdir / "golive"), GOLIVE_HOST="127.0.0.1",
               GOLIVE_HTTP_PORT=str(http), GOLIVE_RTMP_PORT=str(rtmp), GOLIVE_SRT_PORT="0",
               GOLIVE_ADMIN_TOKEN=latency.ADMIN, GOLIVE_LOG_LEVEL="warning",
               GOLIVE_WEBRTC_PLAYBACK="true", GOLIVE_WHEP_MAX_VIEWERS="200",
               GOLIVE_WEBRTC_HOST_ADDRESSES='["127.0.0.1"]')
    proc = subprocess.Popen([sys.executable, "-m", "golive", "serve"], env=env,
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


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def viewers_process(base: str, pid: str, count: int, ready: Any, stop: Any, out: Any) -> None:
    """N WHEP viewers that take packets without decoding (the client is not measured)."""
    import uvloop

    from golive.webrtc.ice import gather_on, install_host_address_hook
    from golive.webrtc.receive import tap_encoded_frames

    install_host_address_hook()  # this process runs no node to do it

    async def main() -> None:
        import httpx
        from aiortc import RTCPeerConnection, RTCSessionDescription

        counts = [0] * count
        peers = []
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for i in range(count):
                pc = RTCPeerConnection()
                video = pc.addTransceiver("video", direction="recvonly")
                pc.addTransceiver("audio", direction="recvonly")

                def sink(_receiver: Any, _codec: Any, _data: bytes, _ts: int, i: int = i) -> None:
                    counts[i] += 1

                tap_encoded_frames(video.receiver, sink)
                with gather_on(["127.0.0.1"]):
                    await pc.setLocalDescription(await pc.createOffer())
                response = await client.post(f"/whep/{pid}", content=pc.localDescription.sdp,
                                             headers={"Content-Type": "application/sdp"})
                response.raise_for_status()
                await pc.setRemoteDescription(
                    RTCSessionDescription(sdp=response.text, type="answer"))
                peers.append(pc)
            await asyncio.sleep(3)
            ready.set()
            before = list(counts)
            started = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(None, stop.wait)
            elapsed = time.monotonic() - started
            out.send([(c - b) / elapsed for c, b in zip(counts, before, strict=True)])
            for pc in peers:
                await pc.close()

    uvloop.run(main())


def measure_viewers(golive: subprocess.Popen[bytes], base: str, pid: str, count: int,
                    seconds: float) -> tuple[float, float, float]:
    """(golive CPU s over the window, mean video frames/s per viewer, min frames/s)."""
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=viewers_process, args=(base, pid, count, ready, stop, send))
    child.start()
    if not ready.wait(120):
        child.kill()
        raise RuntimeError(f"{count} WHEP viewers did not connect")
    before = cpu_of(golive.pid)
    time.sleep(seconds)
    cpu = cpu_of(golive.pid) - before
    stop.set()
    rates: list[float] = receive.recv() if receive.poll(60) else []
    child.join(30)
    if not rates:
        return cpu, 0.0, 0.0
    return cpu, sum(rates) / len(rates), min(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=70.0, help="how long the page watches")
    parser.add_argument("--viewers", default="1,10,50")
    parser.add_argument("--window", type=float, default=10.0, help="CPU window per viewer count")
    args = parser.parse_args()
    counts = [int(c) for c in args.viewers.split(",") if c]
    with tempfile.TemporaryDirectory(prefix="golive-webrtc-") as tmp:
        golive, http, rtmp = start_golive(Path(tmp))
        stop = threading.Event()
        flashes: dict[int, float] = {}
        pub: threading.Thread | None = None
        try:
            stream = latency.api(http, "POST", "/live-streams", {"name": "webrtc bench"})
            pid = stream["playback_ids"][0]["id"]
            pub = latency.publisher([f"rtmp://127.0.0.1:{rtmp}/live/{stream['stream_key']}"],
                                    "854x480", stop, flashes)
            time.sleep(8)
            seen = asyncio.run(watch_realtime(f"http://127.0.0.1:{http}/watch/{pid}",
                                              args.seconds))
            base = f"http://127.0.0.1:{http}"
            idle = cpu_of(golive.pid)
            time.sleep(args.window)
            baseline = cpu_of(golive.pid) - idle
            rows = [(n, *measure_viewers(golive, base, pid, n, args.window)) for n in counts]
        finally:
            stop.set()
            if pub is not None:
                pub.join(15)
            golive.send_signal(signal.SIGTERM)
            try:
                golive.wait(10)
            except subprocess.TimeoutExpired:
                golive.kill()

    delays = [at - flashes[n] for n, at in seen["flashes"] if n in flashes and at > flashes[n]]
    print()
    print(f"WHEP glass-to-glass, Chromium watch page in real-time mode, {args.seconds:.0f} s")
    if delays:
        print(f"flashes {len(delays)} | p50 {latency.percentile(delays, 0.5) * 1000:.0f} ms | "
              f"p95 {latency.percentile(delays, 0.95) * 1000:.0f} ms | "
              f"min {min(delays) * 1000:.0f} ms | max {max(delays) * 1000:.0f} ms "
              f"| player mode {seen.get('mode')}")
        p50 = latency.percentile(delays, 0.5)
        verdict = "MET" if p50 < 0.3 else "NOT MET"
        print(f"goal: under 300 ms: p50 {p50 * 1000:.0f} ms -> {verdict}")
    else:
        print(f"no flashes seen (player mode {seen.get('mode')})")
    print()
    print(f"golive CPU per WHEP viewer ({args.window:.0f} s windows; baseline with the "
          f"ladder and WebRTC output running, no viewers: {baseline / args.window * 100:.1f}% "
          "of a core)")
    print(f"{'viewers':>7} | {'golive CPU %':>12} | {'per viewer %':>12} | "
          f"{'video fps/viewer':>16} | {'min fps':>7}")
    print("-" * 66)
    for n, cpu, mean_fps, min_fps in rows:
        extra = (cpu - baseline) / args.window * 100
        print(f"{n:>7} | {cpu / args.window * 100:>12.1f} | {extra / n:>12.2f} | "
              f"{mean_fps:>16.1f} | {min_fps:>7.1f}")


if __name__ == "__main__":
    main()
