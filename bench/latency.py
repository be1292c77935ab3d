"""Glass-to-glass delay in Chromium: golive LL-HLS (hls.js low-latency) against nginx-rtmp HLS.

A method that trusts nothing of ours. This process draws every video frame itself
and pipes it to ffmpeg, which encodes once and publishes the same stream over RTMP
to golive and to nginx-rtmp (`hls on`) at the same time. Every 2 s a "flash"
frame goes out: a white bar plus the flash's number in binary (white/black
stripes), and we note the wall-clock instant it was written. Headless Chromium
plays both outputs with hls.js; the page reads each displayed frame back through
a canvas (requestVideoFrameCallback), decodes the flash number and records the
wall-clock instant it appeared. Delay = appeared - written, per flash, same clock.

    python bench/latency.py [--seconds 70] [--size 854x480]

golive runs its full default ladder for the source (854x480 → 480p + 360p).
Prints p50/p95 per server; goal: golive p50 <= 1.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import imageio_ffmpeg

ROOT = Path(__file__).resolve().parents[1]
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HLS_JS = ROOT / "node_modules" / "hls.js" / "dist" / "hls.min.js"
ADMIN = "bench-admin-token-0123456789abcdef"  # serve refuses admin tokens under 32 characters
FPS = 30
FLASH_EVERY = 2.0  # seconds
FLASH_FRAMES = 3
BITS = 10  # flash numbers up to 1023

PAGE = """<!doctype html><html><body style="margin:0;background:#000">
<video id="v" muted autoplay playsinline style="width:427px"></video>
<canvas id="c" width="64" height="16" style="display:none"></canvas>
<script src="/hls.min.js"></script>
<script>
const params = new URLSearchParams(location.search);
const video = document.getElementById("v");
const canvas = document.getElementById("c");
const ctx = canvas.getContext("2d", { willReadFrequently: true });
window.flashes = []; window.errors = []; window.latencies = [];
let lastSeen = -1;
const lowLatency = params.get("ll") === "1";
// golive's player settings: low-latency mode, and catching up (up to 1.5x speed) when
// playback has fallen behind the target the playlist's PART-HOLD-BACK sets.
const hls = new Hls(lowLatency ? { lowLatencyMode: true, backBufferLength: 10,
                                   maxLiveSyncPlaybackRate: 1.5 }
                               : { lowLatencyMode: false });
hls.on(Hls.Events.ERROR, (_e, d) => { if (d.fatal) window.errors.push(d.type + ":" + d.details); });
hls.loadSource(params.get("src"));
hls.attachMedia(video);
video.play().catch(() => {});
setInterval(() => { if (hls.latency) window.latencies.push(hls.latency); }, 1000);
function onFrame(now, meta) {
  // Bits are stripes across the top quarter; the bottom half is the "flash" marker.
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
</script></body></html>"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


class Frames:
    """YUV420p frames: dark grey, and flash frames that carry their number in stripes."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        chroma = bytes([128]) * (width * height // 2)
        self._chroma = chroma
        # Dark frames with a bar moving through the middle band, so the encoder has real
        # work (a static frame compresses to almost nothing) without touching the
        # regions the page reads.
        self.dark_frames = []
        for step in range(FPS):
            y = bytearray([40]) * (width * height)
            x0 = step * width // FPS
            for row in range(height // 4 + 8, height // 2 - 8):
                end = min(width, x0 + width // 8)
                y[row * width + x0 : row * width + end] = b"\x90" * (end - x0)
            self.dark_frames.append(bytes(y) + chroma)

    def flash(self, number: int) -> bytes:
        w, h = self.width, self.height
        y = bytearray([40]) * (w * h)
        white = b"\xeb"
        for row in range(h // 2, h):  # the marker: bottom half white
            y[row * w : (row + 1) * w] = white * w
        stripe = w // BITS
        for bit in range(BITS):
            if number >> bit & 1:
                for row in range(0, h // 4):
                    start = row * w + bit * stripe + stripe // 4
                    y[start : start + stripe // 2] = white * (stripe // 2)
        return bytes(y) + self._chroma


def publisher(urls: list[str], size: str, stop: threading.Event,
              flashes: dict[int, float]) -> threading.Thread:
    width, height = (int(v) for v in size.split("x"))
    frames = Frames(width, height)
    tee = "|".join(f"[f=flv:onfail=ignore]{url}" for url in urls)
    proc = subprocess.Popen(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p",
         "-s", size, "-r", str(FPS), "-i", "pipe:0",
         "-re", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo",
         "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast",
         "-tune", "zerolatency", "-g", str(FPS), "-keyint_min", str(FPS), "-sc_threshold", "0",
         "-b:v", "1500k", "-maxrate", "1500k", "-bufsize", "1500k", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "64k", "-f", "tee", tee],
        stdin=subprocess.PIPE,
    )

    def run() -> None:
        assert proc.stdin is not None
        start = time.time()
        i = 0
        number = 0
        every = int(FLASH_EVERY * FPS)
        try:
            while not stop.is_set():
                due = start + i / FPS
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
                phase = i % every
                if phase < FLASH_FRAMES and i >= every:
                    if phase == 0:
                        number = (number + 1) % (1 << BITS)
                        frame = frames.flash(number)
                        proc.stdin.write(frame)
                        proc.stdin.flush()
                        flashes[number] = time.time()
                    else:
                        proc.stdin.write(frames.flash(number))
                else:
                    proc.stdin.write(frames.dark_frames[i % FPS])
                i += 1
        except BrokenPipeError:
            pass
        finally:
            with _suppress():
                proc.stdin.close()
            proc.terminate()
            proc.wait(10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def start_golive(workdir: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    http, rtmp = free_port(), free_port()
    env = dict(os.environ, GOLIVE_DATA_DIR=str(workdir / "golive"), GOLIVE_HOST="127.0.0.1",
               GOLIVE_HTTP_PORT=str(http), GOLIVE_RTMP_PORT=str(rtmp), GOLIVE_SRT_PORT="0",
               GOLIVE_ADMIN_TOKEN=ADMIN, GOLIVE_LOG_LEVEL="warning")
    proc = subprocess.Popen([sys.executable, "-m", "golive", "serve"], env=env,
                            stdout=subprocess.DEVNULL)
    wait_port(http, proc)
    wait_port(rtmp, proc)
    return proc, http, rtmp


def start_nginx(workdir: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    rtmp, http = free_port(), free_port()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    (workdir / "hls").mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = workdir / "nginx.conf"
    # nginx-rtmp's HLS at its lowest sensible settings: 1 s fragments (= the GOP).
    conf.write_text(
        f"load_module {RTMP_MODULE};\n{user}worker_processes 1;\npid {workdir}/nginx.pid;\n"
        f"error_log {workdir}/logs/error.log warn;\nevents {{ worker_connections 1024; }}\n"
        f"rtmp {{ server {{ listen 127.0.0.1:{rtmp}; chunk_size 4096;\n"
        f"  application live {{ live on; hls on; hls_path {workdir}/hls; hls_fragment 1s;\n"
        "    hls_playlist_length 4s; hls_continuous on; } } }\n"
        f"http {{ access_log off; server {{ listen 127.0.0.1:{http};\n"
        f"  location /hls/ {{ alias {workdir}/hls/;\n"
        "    types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }\n"
        "    add_header Cache-Control no-cache; add_header Access-Control-Allow-Origin *; } } }\n"
    )
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / kind).mkdir(exist_ok=True)
    proc = subprocess.Popen([NGINX, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"])
    wait_port(rtmp, proc)
    wait_port(http, proc)
    return proc, http, rtmp


def api(http: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{http}/api/v1{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def serve_page(directory: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "index.html").write_text(PAGE % {"bits": BITS})
    shutil.copy(HLS_JS, directory / "hls.min.js")
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, directory=str(directory), **k)

        def log_message(self, *a: Any) -> None:
            pass

    handler = Handler
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


async def watch(page_url: str, players: dict[str, str], seconds: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
        )
        pages = {}
        for name, src in players.items():
            page = await browser.new_page()
            ll = "1" if name == "golive" else "0"
            await page.goto(f"{page_url}/index.html?ll={ll}&src={src}")
            pages[name] = page
        await asyncio.sleep(seconds)
        result = {}
        for name, page in pages.items():
            result[name] = await page.evaluate(
                "({flashes: window.flashes, errors: window.errors, latencies: window.latencies,"
                " t: document.getElementById('v').currentTime})")
        await browser.close()
        return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=75.0, help="how long the pages watch")
    parser.add_argument("--warmup", type=float, default=12.0)
    parser.add_argument("--size", default="854x480")
    args = parser.parse_args()
    for need, what in ((HLS_JS, "hls.js: run scripts/build-web.sh (npm ci)"),
                       (Path(CHROMIUM), "chromium: run scripts/install-system-deps.sh"),
                       (Path(RTMP_MODULE), "nginx RTMP module: scripts/install-system-deps.sh")):
        if not Path(need).exists():
            sys.exit(f"missing {what}")

    with tempfile.TemporaryDirectory(prefix="golive-latency-") as tmp:
        work = Path(tmp)
        golive, g_http, g_rtmp = start_golive(work)
        nginx, n_http, n_rtmp = start_nginx(work / "nginx")
        stop = threading.Event()
        flashes: dict[int, float] = {}
        pub: threading.Thread | None = None
        try:
            stream = api(g_http, "POST", "/live-streams", {"name": "latency bench"})
            pid = stream["playback_ids"][0]["id"]
            pub = publisher(
                [f"rtmp://127.0.0.1:{g_rtmp}/live/{stream['stream_key']}",
                 f"rtmp://127.0.0.1:{n_rtmp}/live/bench"],
                args.size, stop, flashes,
            )
            time.sleep(args.warmup)  # ladder started, nginx has a few fragments
            page_server, page_port = serve_page(work / "page")
            players = {
                "golive": f"http://127.0.0.1:{g_http}/live/{pid}.m3u8",
                "nginx-rtmp": f"http://127.0.0.1:{n_http}/hls/bench.m3u8",
            }
            seen = asyncio.run(watch(f"http://127.0.0.1:{page_port}", players, args.seconds))
            page_server.shutdown()
            facts = api(g_http, "GET", f"/live-streams/{stream['id']}").get("live") or {}
        finally:
            stop.set()
            if pub is not None:
                pub.join(15)
            for proc in (golive, nginx):
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()

    print()
    print(f"Glass-to-glass delay, Chromium + hls.js, source {args.size}@{FPS}, "
          f"flash every {FLASH_EVERY:g} s, {args.seconds:.0f} s watched")
    print(f"{'server':12} | {'flashes':>7} | {'p50 s':>6} | {'p95 s':>6} | {'min s':>6} | "
          f"{'max s':>6} | {'hls.js latency p50':>18} | errors")
    print("-" * 92)
    summary: dict[str, float] = {}
    for name, data in seen.items():
        delays = [at - flashes[n] for n, at in data["flashes"] if n in flashes and at > flashes[n]]
        errors = ",".join(data["errors"]) or "-"
        hls_latency = statistics.median(data["latencies"]) if data["latencies"] else float("nan")
        if not delays:
            print(f"{name:12} | {0:>7} | {'-':>6} | {'-':>6} | {'-':>6} | {'-':>6} | "
                  f"{hls_latency:>18.2f} | {errors} (video time {data['t']:.1f})")
            continue
        summary[name] = percentile(delays, 0.5)
        print(f"{name:12} | {len(delays):>7} | {percentile(delays, 0.5):>6.2f} | "
              f"{percentile(delays, 0.95):>6.2f} | {min(delays):>6.2f} | {max(delays):>6.2f} | "
              f"{hls_latency:>18.2f} | {errors}")
    pipeline = facts.get("pipeline") or {}
    print(f"\ngolive ladder: {pipeline.get('renditions')}, encoder: {pipeline.get('encoder')}")
    golive_p50 = summary.get("golive")
    verdict = "MET" if golive_p50 is not None and golive_p50 <= 1.5 else "NOT MET"
    shown = f"{golive_p50:.2f} s" if golive_p50 is not None else "no flashes seen"
    print(f"goal: golive p50 <= 1.5 s (on the way to 1.0 s): {shown} -> {verdict}")


if __name__ == "__main__":
    main()
