"""Webhook throughput benchmark: events/s recorded and delivered to a local receiver, and
what that costs the node's event loop (the loop ingest runs on).

A golive node runs in this process on uvloop (no transcoding); a receiver (a bare
asyncio HTTP/1.1 server answering 204, keep-alive) runs in its own process so it
does not share the node's loop. Events are published on the node's bus at a fixed
rate for a few seconds, first with no webhook (the baseline: recorder only), then
with 1 and then 4 endpoints subscribed. Each event carries its publish time; the
receiver reports when each delivery arrived. A probe task measures how late the
node's loop wakes from a 5 ms sleep (the delay any RTMP read would see).

Prints one table: events/s published, recorded and delivered (as the receiver saw
them, first arrival to last), delivery latency p50/p99 and p50 of the last tenth
published (growth over the run means the lane falls behind), the recorder's queue
delay p99 (publish to written, the wait every event including ingest's sees), loop lag
p50/p99, against the goal (1,000 events/s delivered, loop lag p99 within 5 ms of the
baseline measured in the same run).

    .venv/bin/python bench/webhooks.py
    .venv/bin/python bench/webhooks.py --rate 500 --duration 5
    GOLIVE_WEBHOOK_WINDOW=1 .venv/bin/python bench/webhooks.py --receiver-delay-ms 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

ADMIN = "bench-admin-token-0123456789-abcdefgh"
GOAL_RATE = 1000.0
GOAL_LAG_MS = 5.0


def run_loop(main: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(main)
    return uvloop.run(main)


# Receiver process -----------------------------------------------------------------------


def receiver(conn: Connection, delay: float = 0.0) -> None:
    """Answers every POST 204 (after `delay` s: a receiver further away, or slower);
    sends back (path, arrival wall time, publish time) batches."""
    arrivals: list[tuple[str, float, float]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                arrivals.append((path, time.time(), json.loads(body)["data"]["sent"]))
                if delay:
                    await asyncio.sleep(delay)
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        conn.send(server.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "stop":
                break
            conn.send(list(arrivals))
            arrivals.clear()
        server.close()

    run_loop(main())


# Node (this process) --------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def lag_probe(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.005)
        samples.append((time.perf_counter() - start - 0.005) * 1000)


async def recorder_probe(recorder: Any, published: list[int], base: int, samples: list[float],
                         stop: asyncio.Event) -> None:
    """How long the event published last waits before the recorder has written it (events
    are recorded in order, so `recorded` passing its number means it is in the database)."""
    while not stop.is_set():
        start = time.perf_counter()
        await recorder.wait_recorded(base + published[0])
        samples.append((time.perf_counter() - start) * 1000)
        await asyncio.sleep(0.05)


async def phase(node: Any, api: httpx.AsyncClient, conn: Connection, stream_id: str,
                endpoints: int, port: int, rate: float, duration: float) -> dict[str, Any]:
    from golive.core import Event, EventType

    hooks = []
    for i in range(endpoints):
        r = await api.post("/webhooks", json={"url": f"http://127.0.0.1:{port}/e{i}",
                                              "event_types": ["live_stream.warning"]})
        r.raise_for_status()
        hooks.append(r.json()["data"]["id"])
    recorder = node._recorder
    recorded_before = recorder.recorded
    lags: list[float] = []
    queue_delays: list[float] = []
    stop = asyncio.Event()
    counter = [0]
    probe = asyncio.create_task(lag_probe(lags, stop))
    queued = asyncio.create_task(recorder_probe(recorder, counter, recorded_before,
                                                queue_delays, stop))
    published = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < duration:
        due = int(elapsed * rate) + 1
        while published < due:
            node.bus.publish(Event(type=EventType.LIVE_STREAM_WARNING, stream_id=stream_id,
                                   data={"sent": time.time(), "n": published}))
            published += 1
        counter[0] = published
        await asyncio.sleep(0.002)
    stop.set()
    await probe
    await queued
    publish_s = time.monotonic() - start
    # Let the recorder and the lanes drain (bounded), then collect.
    deadline = time.monotonic() + 60
    expected = published * endpoints
    arrivals: list[tuple[str, float, float]] = []
    recorded_s: float | None = None
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        if recorded_s is None and recorder.recorded - recorded_before >= published:
            recorded_s = time.monotonic() - start
        conn.send("collect")
        arrivals += await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        if recorded_s is not None and len(arrivals) >= expected:
            break
    recorded_s = recorded_s or time.monotonic() - start
    for hook in hooks:
        await api.delete(f"/webhooks/{hook}")
    latencies = [(at - sent) * 1000 for _, at, sent in arrivals]
    # The last tenth (by publish time) against all: a lane falling behind shows as growth.
    last_tenth = sorted(arrivals, key=lambda a: a[2])[len(arrivals) * 9 // 10:]
    times = [at for _, at, _ in arrivals]
    return {
        "endpoints": endpoints, "published": published / publish_s,
        "recorded": (recorder.recorded - recorded_before) / recorded_s,
        # As the receiver saw them: first arrival to last.
        "delivered": len(arrivals) / max(1e-9, max(times) - min(times)) if arrivals else 0.0,
        "complete": f"{len(arrivals)}/{expected}",
        "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
        "late50": percentile([(at - sent) * 1000 for _, at, sent in last_tenth], 50),
        "queue99": percentile(queue_delays, 99),
        "lag50": statistics.median(lags) if lags else float("nan"),
        "lag99": percentile(lags, 99), "dropped": recorder.dropped,
    }


async def bench(rate: float, duration: float, delay: float) -> list[dict[str, Any]]:
    from golive.app import Golive
    from golive.settings import Settings

    parent, child = mp.Pipe()
    proc = mp.Process(target=receiver, args=(child, delay), daemon=True)
    proc.start()
    port = parent.recv()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), host="127.0.0.1", http_port=0, rtmp_port=0,
                            srt_port=None, admin_token=ADMIN, transcode=False,
                            webhook_allow_private_targets=True, log_level="warning")
        rows = []
        async with Golive(settings) as node, httpx.AsyncClient(
                base_url=f"{node.http_url}/api/v1", timeout=30,
                headers={"Authorization": f"Bearer {ADMIN}"}) as api:
            stream = (await api.post("/live-streams", json={"name": "bench"})).json()["data"]
            for endpoints in (0, 1, 4):
                rows.append(await phase(node, api, parent, stream["id"], endpoints, port,
                                        rate, duration))
    parent.send("stop")
    proc.join(5)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=GOAL_RATE, help="events/s published")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--receiver-delay-ms", type=float, default=0.0,
                        help="the receiver answers each request this much later (a receiver "
                        "further away; the window of requests in flight, GOLIVE_WEBHOOK_WINDOW, "
                        "then sets the rate one endpoint can take)")
    args = parser.parse_args()
    rows = run_loop(bench(args.rate, args.duration, args.receiver_delay_ms / 1000))
    head = (f"{'endpoints':>9} {'published/s':>11} {'recorded/s':>10} {'delivered/s':>11} "
            f"{'complete':>11} {'deliv p50 ms':>12} {'deliv p99 ms':>12} "
            f"{'last10% p50':>11} {'rec queue p99':>13} {'lag p50 ms':>10} {'lag p99 ms':>10} "
            f"{'dropped':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['endpoints']:>9} {r['published']:>11.0f} {r['recorded']:>10.0f} "
              f"{r['delivered']:>11.0f} {r['complete']:>11} {r['p50']:>12.1f} "
              f"{r['p99']:>12.1f} {r['late50']:>11.1f} {r['queue99']:>13.1f} "
              f"{r['lag50']:>10.2f} {r['lag99']:>10.2f} {r['dropped']:>7}")
    base = rows[0]["lag99"]
    one = rows[1]
    print(f"goal: >= {GOAL_RATE:.0f} events/s delivered to one endpoint "
          f"(got {one['delivered']:.0f}); loop lag p99 within {GOAL_LAG_MS:.0f} ms of the "
          f"baseline {base:.2f} ms (got {one['lag99']:.2f} ms with 1 endpoint, "
          f"{rows[2]['lag99']:.2f} ms with 4); recorder queue delay p99 "
          f"{rows[0]['queue99']:.1f} ms with no endpoint, {one['queue99']:.1f} ms with 1, "
          f"{rows[2]['queue99']:.1f} ms with 4")


if __name__ == "__main__":
    main()
