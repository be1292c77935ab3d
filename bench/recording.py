"""What recording costs a node: N recorded broadcasts against the same without recording.

For N = 1 and 10 passthrough broadcasts (`-re -c copy` ffmpeg publishers, 1 s GOP) the
bench runs `golive serve` three times in one run: without recording, recording to local
disk, and recording to a real S3-compatible server (moto, started here). Each broadcast
has one LL-HLS viewer that follows preload hints with blocking playlist reloads.

    python bench/recording.py [--counts 1,10] [--seconds 20]

One table, per storage and N: golive's own CPU (its Python process, not the ffmpeg
children) and that above the no-recording run per recorded stream (goal <= 1% of a
core); live part delivery delay p99 (a part's response time past its media end, less
the run's best) against the no-recording run; upload lag p50/p99 (segment complete ->
stored and indexed, from /metrics); time from the publishers stopping to every asset
ready, less the reconnect window (goal <= 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import ADMIN, CACHE, FFMPEG, cpu_seconds, free_port, wait_port  # noqa: E402
from tests.s3server import S3Server, s3_server  # noqa: E402

RECONNECT_WINDOW = 2.0
GOAL_CPU_PERCENT = 1.0
GOAL_ASSET_SECONDS = 2.0
_HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]*part-(\d+)\.(\d+)\.m4s)"')
_PART = re.compile(r'#EXT-X-PART:DURATION=([0-9.]+),URI="([^"]*part-(\d+)\.(\d+)\.m4s)"')


def source_file(seconds: int = 30) -> Path:
    """640x360 30 fps H.264 (1 s GOP) + AAC at ~1 Mbit/s, encoded once and cached."""
    path = CACHE / f"recording-source-{seconds}s.flv"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-b:v", "900k",
         "-maxrate", "900k", "-bufsize", "900k", "-g", "30", "-keyint_min", "30",
         "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "96k", "-f", "flv", str(path)],
        check=True,
    )
    return path


@dataclass
class Node:
    proc: subprocess.Popen[bytes]
    http: int
    rtmp: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def api(self, method: str, path: str, body: object | None = None) -> object:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}/api/v1{path}", data=data, method=method,
            headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("golive_recording"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def golive(workdir: Path, count: int, storage: dict[str, str]) -> Iterator[Node]:
    rtmp, http = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLIVE_")}
    env.update(
        GOLIVE_DATA_DIR=str(workdir / "data"), GOLIVE_HOST="127.0.0.1",
        GOLIVE_HTTP_PORT=str(http), GOLIVE_RTMP_PORT=str(rtmp), GOLIVE_SRT_PORT="0",
        GOLIVE_ADMIN_TOKEN=ADMIN, GOLIVE_LOG_LEVEL="warning",
        GOLIVE_MAX_PUBLISHERS=str(max(100, count * 2)),
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), *sys.path]),
        **storage,
    )
    log = (workdir / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "golive", "serve"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    node = Node(proc, http, rtmp)
    try:
        wait_port(http, proc)
        wait_port(rtmp, proc)
        yield node
    finally:
        node.stop()
        log.close()


@dataclass
class Viewer:
    """Follows one broadcast's preload hints with blocking reloads, like an LL-HLS player."""

    playback_id: str
    delays: list[float] = field(default_factory=list)  # response time past the part's end
    errors: int = 0

    async def run(self, client: httpx.AsyncClient, until: float) -> None:
        rendition = ""
        while not rendition and time.monotonic() < until:
            response = await client.get(f"/live/{self.playback_id}.m3u8")
            if response.status_code == 200:
                rendition = next(
                    (line for line in response.text.splitlines() if line and line[0] != "#"), "")
            else:
                await asyncio.sleep(0.2)
        if not rendition:
            self.errors += 1
            return
        text = (await client.get(f"/live/{rendition}")).text
        media_end = 0.0
        started: float | None = None
        while time.monotonic() < until:
            hint = _HINT.search(text)
            if hint is None:
                self.errors += 1
                return
            msn, part = hint[2], hint[3]
            response = await client.get(f"/live/{rendition}",
                                        params={"_HLS_msn": msn, "_HLS_part": part})
            now = time.monotonic()
            if response.status_code != 200:
                self.errors += 1
                await asyncio.sleep(0.2)
                text = (await client.get(f"/live/{rendition}")).text
                continue
            text = response.text
            wanted = next((m for m in _PART.finditer(text) if (m[3], m[4]) == (msn, part)), None)
            if wanted is None:
                continue  # a new segment came first; follow the new hint
            media = await client.get(f"/live/{self.playback_id}/{wanted[2]}")
            if media.status_code != 200:
                self.errors += 1
            media_end += float(wanted[1])
            if started is None:
                started = now - media_end
            self.delays.append(now - (started + media_end))


@dataclass
class Run:
    storage: str
    count: int
    cpu_percent: float  # of one core, golive's own process
    delays: list[float]
    lag_p50: float | None
    lag_p99: float | None
    to_asset: float | None  # publishers stopped -> every asset ready, less the window
    errors: int
    stored: int
    durations: list[float]

    def delay_p99_ms(self) -> float:
        if not self.delays:
            return float("nan")
        ordered = sorted(self.delays)
        best = ordered[0]
        return (ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] - best) * 1000


def publish_all(node: Node, keys: list[str], source: Path) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-stream_loop",
             "-1", "-i", str(source), "-c", "copy", "-f", "flv",
             f"rtmp://127.0.0.1:{node.rtmp}/live/{key}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for key in keys
    ]


def stop_all(publishers: list[subprocess.Popen[bytes]]) -> None:
    """SIGINT, as an encoder's operator stops it: ffmpeg closes the RTMP session cleanly."""
    for proc in publishers:
        proc.send_signal(signal.SIGINT)
    for proc in publishers:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def measure(node: Node, count: int, source: Path, seconds: float, warmup: float,
                  recording: bool, storage_name: str) -> Run:
    streams = []
    for i in range(count):
        body = {"name": f"bench {i}", "profile": "passthrough", "recording": recording,
                "reconnect_window": RECONNECT_WINDOW}
        created = node.api("POST", "/live-streams", body)
        assert isinstance(created, dict)
        streams.append(created["data"])
    publishers = publish_all(node, [s["stream_key"] for s in streams], source)
    viewers = [Viewer(s["playback_ids"][0]["id"]) for s in streams]
    try:
        async with httpx.AsyncClient(base_url=node.url, timeout=15,
                                     limits=httpx.Limits(max_connections=4 * count)) as client:
            until = time.monotonic() + warmup + seconds
            tasks = [asyncio.create_task(v.run(client, until)) for v in viewers]
            await asyncio.sleep(warmup)
            for v in viewers:
                v.delays.clear()
            cpu0, t0 = cpu_seconds([node.proc.pid]), time.monotonic()
            await asyncio.sleep(seconds)
            cpu1, t1 = cpu_seconds([node.proc.pid]), time.monotonic()
            await asyncio.gather(*tasks)
    finally:
        stopped = time.monotonic()
        await asyncio.to_thread(stop_all, publishers)
    metrics = node.metrics()
    to_asset: float | None = None
    durations: list[float] = []
    if recording:
        deadline = stopped + 120
        while time.monotonic() < deadline:
            listed = node.api("GET", "/assets?limit=1000")
            assert isinstance(listed, dict)
            ready = [a for a in listed["data"] if a["status"] != "preparing"]
            if len(ready) >= count:
                to_asset = time.monotonic() - stopped - RECONNECT_WINDOW
                durations = [a["duration"] for a in ready]
                break
            await asyncio.sleep(0.05)
        metrics = node.metrics()
    return Run(
        storage=storage_name, count=count, cpu_percent=100 * (cpu1 - cpu0) / (t1 - t0),
        delays=[d for v in viewers for d in v.delays],
        lag_p50=metrics.get('golive_recording_upload_lag_seconds{quantile="0.5"}'),
        lag_p99=metrics.get('golive_recording_upload_lag_seconds{quantile="0.99"}'),
        to_asset=to_asset, errors=sum(v.errors for v in viewers),
        stored=int(metrics.get("golive_recording_objects_stored_total", 0)),
        durations=durations,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,10")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=6.0)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    source = source_file()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="golive-bench-rec-") as tmp, \
            s3_server(Path(tmp)) as s3:
        for count in counts:
            for name, recording, storage in _storages(s3, count):
                workdir = Path(tmp) / f"{name}-{count}"
                workdir.mkdir()
                with golive(workdir, count, storage) as node:
                    run = asyncio.run(measure(node, count, source, args.seconds, args.warmup,
                                              recording, name))
                runs.append(run)
                print(f"  done: {name} N={count}", file=sys.stderr, flush=True)
    report(runs, args.seconds)


def _storages(s3: S3Server, count: int) -> list[tuple[str, bool, dict[str, str]]]:
    s3_env = {f"GOLIVE_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
              for k, v in s3.storage_settings(prefix=f"bench-{count}").items()}
    return [("none", False, {}), ("local", True, {}), ("s3", True, s3_env)]


def _ms(value: float | None) -> str:
    return f"{value * 1000:.1f}" if value is not None else "-"


def report(runs: list[Run], seconds: float) -> None:
    print(f"\nrecording cost, {seconds:g} s windows, passthrough 640x360 ~1 Mbit/s, "
          "one LL-HLS viewer per broadcast")
    header = (f"{'storage':<7} {'N':>3} {'cpu %':>6} {'+cpu %/stream':>13} {'part p99 ms':>11} "
              f"{'vs none':>8} {'lag p50 ms':>10} {'lag p99 ms':>10} {'to asset s':>10} "
              f"{'objects':>7} {'errors':>6}")
    print(header)
    print("-" * len(header))
    baseline = {r.count: r for r in runs if r.storage == "none"}
    for r in runs:
        base = baseline.get(r.count)
        extra = (r.cpu_percent - base.cpu_percent) / r.count if base and r.storage != "none" \
            else None
        vs = r.delay_p99_ms() - base.delay_p99_ms() if base and r.storage != "none" else None
        print(f"{r.storage:<7} {r.count:>3} {r.cpu_percent:>6.1f} "
              f"{(f'{extra:+.2f}' if extra is not None else '-'):>13} "
              f"{r.delay_p99_ms():>11.1f} {(f'{vs:+.1f}' if vs is not None else '-'):>8} "
              f"{_ms(r.lag_p50):>10} {_ms(r.lag_p99):>10} "
              f"{(f'{r.to_asset:.2f}' if r.to_asset is not None else '-'):>10} "
              f"{r.stored:>7} {r.errors:>6}")
    recorded = [r for r in runs if r.storage != "none" and r.count in baseline]
    worst_cpu = max(((r.cpu_percent - baseline[r.count].cpu_percent) / r.count
                     for r in recorded), default=0.0)
    worst_asset = max((r.to_asset for r in recorded if r.to_asset is not None), default=None)
    missing = [f"{r.storage} N={r.count}" for r in recorded if r.to_asset is None]
    print(f"\ngoal <= {GOAL_CPU_PERCENT:g}% of a core per recorded stream: worst "
          f"{worst_cpu:+.2f}% -> {'met' if worst_cpu <= GOAL_CPU_PERCENT else 'NOT MET'}")
    if worst_asset is not None:
        print(f"goal time-to-asset <= {GOAL_ASSET_SECONDS:g} s + reconnect window "
              f"({RECONNECT_WINDOW:g} s): worst {worst_asset:.2f} s past the window -> "
              f"{'met' if worst_asset <= GOAL_ASSET_SECONDS and not missing else 'NOT MET'}")
    if missing:
        print(f"assets not ready within 120 s: {', '.join(missing)}")


if __name__ == "__main__":
    main()
