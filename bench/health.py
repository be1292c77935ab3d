"""What metrics cost a node: per request on the origin's hot path, and per scrape.

Two measurements, one table:

- Per origin request: what golive adds to each request for metrics (classify the path,
  count the answer by kind and status, bytes out, the part latency histogram, the viewer
  map), against the same accounting done with prometheus-client objects (a labelled
  Counter's `inc` and a Histogram's `observe`) timed in the same run. Goal: <= ~1 us.
- Per scrape: `/metrics` of an in-process node with N live broadcasts (passthrough
  profile, `-re -c copy` ffmpeg publishers, each with one player fetching its playlist
  and a part), timed in the node (render) and from a client (HTTP). Goal: < 50 ms at 20.

    python bench/health.py [--streams 20] [--scrapes 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: E402
from tests.mediatools import ffmpeg_publish, make_source, stop  # noqa: E402

from golive.app import Golive  # noqa: E402
from golive.delivery import PART_LATENCY_BUCKETS, OriginStats  # noqa: E402
from golive.delivery.origin import _live_kind  # noqa: E402
from golive.settings import Settings  # noqa: E402

ADMIN = "bench-admin-token-0123456789abcdef"
PART_PATH = "/live/AbCdEf0123/480p/part-123456.3.m4s"
PLAYLIST_PATH = "/live/AbCdEf0123/480p.m3u8"


def per_request_ns(rounds: int) -> tuple[float, float, float]:
    """(golive's part request, golive's playlist request, prometheus-client's part) in ns."""
    stats = OriginStats()
    perf, mono = time.perf_counter, time.monotonic

    def golive_part() -> None:
        started = perf()
        kind = _live_kind(PART_PATH)
        stats.answered(kind, 200, 1234)
        stats.part_answered(perf() - started)

    def golive_playlist() -> None:
        started = perf()
        kind = _live_kind(PLAYLIST_PATH)
        stats.viewer_seen("AbCdEf0123", "ll-hls", "192.0.2.7", mono())
        stats.answered(kind, 200, 2345)
        perf() - started

    registry = CollectorRegistry()
    requests = Counter("bench_requests", "", ["kind", "status"], registry=registry)
    sent = Counter("bench_sent_bytes", "", registry=registry)
    latency = Histogram("bench_part_seconds", "", buckets=PART_LATENCY_BUCKETS, registry=registry)

    def prometheus_part() -> None:
        started = perf()
        kind = _live_kind(PART_PATH)
        requests.labels(kind, "200").inc()
        sent.inc(1234)
        latency.observe(perf() - started)

    def best(fn: object) -> float:
        times = timeit.repeat(fn, number=rounds, repeat=5)  # type: ignore[arg-type]
        return min(times) / rounds * 1e9

    return best(golive_part), best(golive_playlist), best(prometheus_part)


async def scrape_times(streams: int, scrapes: int, workdir: Path
                       ) -> tuple[list[float], list[float], list[float], int]:
    """(render ms, /metrics over HTTP ms, /healthz over HTTP ms, bytes of one /metrics
    answer) with `streams` live broadcasts."""
    source = make_source(workdir / "source.flv", gop=30)
    settings = Settings(data_dir=workdir / "data", host="127.0.0.1", http_port=0, rtmp_port=0,
                        srt_port=None, admin_token=ADMIN, max_publishers=max(50, streams))
    publishers = []
    async with Golive(settings) as node, \
            httpx.AsyncClient(base_url=node.http_url, timeout=30,
                              headers={"Authorization": f"Bearer {ADMIN}"}) as http:
        try:
            pids = []
            for i in range(streams):
                created = await http.post("/api/v1/live-streams",
                                          json={"name": f"bench {i}", "profile": "passthrough"})
                data = created.json()["data"]
                pids.append(data["playback_ids"][0]["id"])
                publishers.append(ffmpeg_publish(source, node.rtmp_url(data["stream_key"]),
                                                 loop=True))
            deadline = time.monotonic() + 120
            ready: set[str] = set()
            while len(ready) < streams and time.monotonic() < deadline:
                for pid in pids:
                    if pid not in ready and (await http.get(f"/live/{pid}.m3u8")).status_code == 200:
                        ready.add(pid)
                await asyncio.sleep(0.5)
            for pid in pids:  # one player each: origin, viewer and part series
                playlist = (await http.get(f"/live/{pid}/source.m3u8")).text
                parts = [line.split('URI="')[1].split('"')[0] for line in playlist.splitlines()
                         if line.startswith("#EXT-X-PART:")]
                if parts:
                    await http.get(f"/live/{pid}/{parts[-1]}")
            assert node.metrics is not None
            render, over_http, healthz, size = [], [], [], 0
            for _ in range(scrapes):
                started = time.perf_counter()
                await http.get("/healthz")  # the peer: a trivial answer on the same loop
                healthz.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                node.metrics.render()
                render.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                answer = await http.get("/metrics")
                over_http.append((time.perf_counter() - started) * 1000)
                size = len(answer.content)
            live = sum(1 for line in answer.text.splitlines()
                       if line.startswith("golive_ingest_bytes_total{"))
            if live != streams:
                print(f"note: {live} of {streams} streams were live at the scrape", flush=True)
            return render, over_http, healthz, size
        finally:
            for proc in publishers:
                stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=200_000)
    args = parser.parse_args()
    part, playlist, peer = per_request_ns(args.rounds)
    with tempfile.TemporaryDirectory(prefix="golive-bench-health-") as tmp:
        render, over_http, healthz, size = asyncio.run(scrape_times(args.streams, args.scrapes, Path(tmp)))

    def q(values: list[float], p: float) -> float:
        return statistics.quantiles(values, n=100)[int(p) - 1] if len(values) > 1 else values[0]

    print(f"\nmetrics cost ({args.rounds} requests x5, best; {args.streams} live broadcasts, "
          f"{args.scrapes} scrapes)")
    print("| measurement                                   | value       | peer / goal            |")
    print("|-----------------------------------------------|-------------|------------------------|")
    print(f"| per part request (count, bytes, histogram)    | {part:8.0f} ns | prometheus-client "
          f"{peer:4.0f} ns |")
    print(f"| per media playlist request (count, viewer)    | {playlist:8.0f} ns | goal <= 1000 ns        |")
    print(f"| /metrics render, p50 / p95                    | {q(render, 50):5.1f} / {q(render, 95):4.1f} ms"
          f" | goal < 50 ms           |")
    print(f"| /metrics over HTTP, p50 / p95                 | {q(over_http, 50):5.1f} / "
          f"{q(over_http, 95):4.1f} ms | /healthz {q(healthz, 50):4.1f} / {q(healthz, 95):4.1f} ms |")
    print(f"| /metrics size                                 | {size / 1024:8.1f} KiB |                        |")


if __name__ == "__main__":
    main()
