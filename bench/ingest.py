"""RTMP ingest cost: golive against nginx-rtmp, measured in the same run.

N ffmpeg publishers each send a pre-encoded 3 Mbit/s FLV (`-re -c copy`) to the
server for a fixed window. We read the server's CPU time (utime + stime of every
server process, from /proc) before and after the window and divide by the bits
ingested in it. golive runs with GOLIVE_TRANSCODE=false so only ingest is
measured, which is all nginx-rtmp does here (`live on`, no players).

    python bench/ingest.py [--counts 1,10,50] [--seconds 15]

Prints one table: CPU seconds per ingested gigabit for each server and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
ADMIN = "bench-admin-token-0123456789abcdef"  # serve refuses admin tokens under 32 characters
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CACHE = Path(os.environ.get("GOLIVE_BENCH_CACHE", Path(tempfile.gettempdir()) / "golive-bench"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def source_file(kbps: int = 3000, seconds: int = 20) -> Path:
    """A 720p30 H.264 + AAC FLV at ~3 Mbit/s (CBR-ish), encoded once and cached."""
    path = CACHE / f"source-{kbps}k-{seconds}s.flv"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    video = kbps - 128
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast",
         "-b:v", f"{video}k", "-minrate", f"{video}k", "-maxrate", f"{video}k",
         "-bufsize", f"{video}k", "-x264-params", "nal-hrd=cbr", "-g", "60",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv", str(path)],
        check=True,
    )
    return path


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def children(pid: int) -> list[int]:
    out = [pid]
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return out
    for child in text.split():
        out += children(int(child))
    return out


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    keys: list[str]

    def pids(self) -> list[int]:
        return children(self.proc.pid)

    def url(self, i: int) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{self.keys[i]}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_nginx(workdir: Path, count: int) -> Server:
    port = free_port()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"load_module {RTMP_MODULE};\n"
        "worker_processes 1;\n"  # golive is one process too
        f"pid {workdir}/nginx.pid;\n"
        f"error_log {workdir}/logs/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        f"rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n"
        "  application live { live on; record off; } } }\n"
    )
    proc = subprocess.Popen(
        [NGINX, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    wait_port(port, proc)
    return Server("nginx-rtmp", proc, port, [f"stream{i}" for i in range(count)])


def start_golive(workdir: Path, count: int, read_batch_ms: float | None = None) -> Server:
    rtmp, http = free_port(), free_port()
    env = dict(
        os.environ,
        GOLIVE_DATA_DIR=str(workdir / "data"),
        GOLIVE_HOST="127.0.0.1",
        GOLIVE_HTTP_PORT=str(http),
        GOLIVE_RTMP_PORT=str(rtmp),
        GOLIVE_SRT_PORT="0",
        GOLIVE_ADMIN_TOKEN=ADMIN,
        GOLIVE_TRANSCODE="false",
        GOLIVE_LOG_LEVEL="warning",
        GOLIVE_MAX_PUBLISHERS=str(max(100, count * 2)),
    )
    if read_batch_ms is not None:
        env["GOLIVE_RTMP_READ_BATCH_MS"] = str(read_batch_ms)
    proc = subprocess.Popen(
        [sys.executable, "-m", "golive", "serve"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    wait_port(rtmp, proc)
    wait_port(http, proc)
    keys = []
    for i in range(count):
        body = json.dumps({"name": f"bench {i}"}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{http}/api/v1/live-streams", data=body, method="POST",
            headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            keys.append(json.load(response)["data"]["stream_key"])
    name = "golive" if read_batch_ms is None else f"golive-batch{read_batch_ms:g}"
    server = Server(name, proc, rtmp, keys)
    server.http_port = http  # type: ignore[attr-defined]
    return server


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"server exited: {err[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def publish(url: str, source: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-stream_loop", "-1",
         "-i", str(source), "-c", "copy", "-f", "flv", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def golive_bytes(server: Server) -> int:
    """Bytes received by golive across all streams, from its Prometheus endpoint."""
    port = server.http_port  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("golive_ingest_bytes_total{"))


@dataclass
class Result:
    server: str
    publishers: int
    seconds: float
    cpu: float
    gigabits: float
    measured_gigabits: float | None
    alive: int

    @property
    def cpu_per_gbit(self) -> float:
        return self.cpu / self.gigabits if self.gigabits else float("nan")


def measure(server: Server, source: Path, count: int, seconds: float, warmup: float) -> Result:
    bitrate = source.stat().st_size * 8 / probe_duration(source)
    publishers = [publish(server.url(i), source) for i in range(count)]
    try:
        time.sleep(warmup)
        bytes_before = golive_bytes(server) if server.name.startswith("golive") else None
        cpu_before = cpu_seconds(server.pids())
        start = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        cpu = cpu_seconds(server.pids()) - cpu_before
        measured = None
        if bytes_before is not None:
            measured = (golive_bytes(server) - bytes_before) * 8 / 1e9
        alive = sum(1 for p in publishers if p.poll() is None)
    finally:
        for p in publishers:
            p.send_signal(signal.SIGINT)
        for p in publishers:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    gigabits = bitrate * count * elapsed / 1e9 * alive / count
    return Result(server.name, count, elapsed, cpu, gigabits, measured, alive)


def probe_duration(source: Path) -> float:
    out = subprocess.run([FFMPEG, "-hide_banner", "-i", str(source)], capture_output=True,
                         text=True).stderr
    for line in out.splitlines():
        if "Duration:" in line:
            h, m, s = line.split("Duration:")[1].split(",")[0].strip().split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
    raise RuntimeError("cannot read the source duration")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,10,50")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    if not Path(RTMP_MODULE).exists():
        sys.exit(f"nginx RTMP module missing ({RTMP_MODULE}): run scripts/install-system-deps.sh")
    source = source_file()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="golive-bench-") as tmp:
        for count in counts:
            for name in ("nginx-rtmp", "golive", "golive-batch0"):
                workdir = Path(tmp) / f"{name}-{count}"
                if name == "nginx-rtmp":
                    server = start_nginx(workdir, count)
                else:
                    server = start_golive(workdir, count, 0 if name == "golive-batch0" else None)
                try:
                    result = measure(server, source, count, args.seconds, args.warmup)
                finally:
                    server.stop()
                results.append(result)
                print(f"  {name:10} N={count:<3} cpu={result.cpu:.2f}s "
                      f"ingested={result.gigabits:.3f} Gbit alive={result.alive}/{count}",
                      file=sys.stderr, flush=True)
    print()
    print(f"RTMP ingest, {source.name}, {args.seconds:.0f} s window per run "
          "(CPU seconds per ingested gigabit; lower is better)")
    print(f"{'N':>4} | {'nginx-rtmp':>10} | {'golive':>8} | {'ratio':>6} | "
          f"{'golive, no read batching':>24} | {'ratio':>6} | {'golive measured Gbit':>20} | alive")
    print("-" * 108)
    by = {(r.server, r.publishers): r for r in results}
    worst = 0.0
    for count in counts:
        ng, gl, raw = (by[(name, count)] for name in ("nginx-rtmp", "golive", "golive-batch0"))
        ratio = gl.cpu_per_gbit / ng.cpu_per_gbit if ng.cpu_per_gbit else float("inf")
        raw_ratio = raw.cpu_per_gbit / ng.cpu_per_gbit if ng.cpu_per_gbit else float("inf")
        worst = max(worst, ratio) if ratio == ratio else float("inf")  # nan: a run failed
        measured = f"{gl.measured_gigabits:.3f} of {gl.gigabits:.3f}" if gl.measured_gigabits else "-"
        print(f"{count:>4} | {ng.cpu_per_gbit:>10.2f} | {gl.cpu_per_gbit:>8.2f} | {ratio:>5.2f}x | "
              f"{raw.cpu_per_gbit:>24.2f} | {raw_ratio:>5.2f}x | {measured:>20} | "
              f"{ng.alive}/{gl.alive}/{raw.alive} of {count}")
    print("\ngolive: default settings (RTMP reads batched for up to 40 ms once live); "
          "no read batching: GOLIVE_RTMP_READ_BATCH_MS=0")
    print(f"\ngoal: golive within 2x of nginx-rtmp; worst ratio {worst:.2f}x "
          f"-> {'MET' if worst <= 2 else 'NOT MET'}")


if __name__ == "__main__":
    main()
