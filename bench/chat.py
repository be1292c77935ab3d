"""Chat fan-out benchmark: N WebSocket viewers in one room, M messages/s from a few senders.

Starts a golive node in its own process (chat only: no transcoding) under uvloop,
as `golive serve` runs it, then load generator processes (also on uvloop) that
each hold many viewers on a minimal asyncio WebSocket client (raw frames, no
library per message). Measuring starts once every viewer is connected and has its
first frame (history and viewer count) and every sender has its identity. Senders
embed a monotonic send time in each message; a sample of viewers decodes every
frame to measure delivery latency, all viewers count the benchmark's messages.
Prints one table with p50/p99 latency, messages delivered per second, the
server's CPU and memory and the load generator's CPU, against the goal (p99 under
250 ms at 10,000 viewers x 50 msg/s).

    .venv/bin/python bench/chat.py                       # 1,000 and 10,000 viewers
    .venv/bin/python bench/chat.py --clients 2000 --rate 20 --duration 10
    .venv/bin/python bench/chat.py --clients 10000 --database sqlite,postgresql
    .venv/bin/python bench/chat.py --clients 30000 --nodes 3   # a cluster: PostgreSQL + Redis

With `--nodes N`, N nodes share one PostgreSQL and one Redis (started by the bench, as
the tests start them), every load process spreads its viewers and senders over the
nodes in turn, and a message sent on one node is timed at viewers on every node (the
Redis fan-out included). srv cpu is then the nodes' CPU together.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import multiprocessing as mp
import os
import resource
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/ (the PostgreSQL and Redis of --nodes)

import httpx  # noqa: E402

ADMIN = "bench-admin-token"
GOAL_P99_MS = 250.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_TEXT = b'"text":"bench '  # in every message the senders send, and only in those


def run_loop(main: Any) -> Any:
    """Run a coroutine on uvloop, as `golive serve` does (asyncio's loop without it)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(main)
    return uvloop.run(main)


# Server process ------------------------------------------------------------------------


class GcTimer:
    """Times the node's garbage collections (gc callbacks): the longest pause, and of gen 2."""

    def __init__(self) -> None:
        self.started = 0.0
        self.max_ms = 0.0
        self.full_max_ms = 0.0
        self.full = 0
        self.measuring = False

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        if not self.measuring:
            return
        ms = (time.perf_counter() - self.started) * 1000
        self.max_ms = max(self.max_ms, ms)
        if info["generation"] == 2:
            self.full += 1
            self.full_max_ms = max(self.full_max_ms, ms)


def run_server(conn: Connection, stop: MpEvent, release: MpEvent, measure: MpEvent,
               data_dir: str, rate: float, senders: int, freeze: str, clients: int,
               shared: dict[str, str]) -> None:
    from golive.app import Golive, freeze_startup_heap
    from golive.core import tune_garbage_collector
    from golive.settings import Settings

    tune_garbage_collector()  # as `golive serve` does, in both rows

    per_sender = rate / max(1, senders)
    fields: dict[str, Any] = dict(
        data_dir=Path(data_dir), host="127.0.0.1", http_port=0, rtmp_port=0, srt_port=None,
        admin_token=ADMIN, transcode=False, log_level="warning",
        chat_user_rate=per_sender * 2 + 1, chat_user_burst=20,
        chat_room_rate=rate * 4 + 10, chat_room_burst=int(rate * 4 + 10),
        chat_max_connections_per_address=clients,  # every viewer comes from 127.0.0.1
        http_max_connections_per_address=clients + 100,  # and the bench's own API calls
    )
    fields.update(shared)  # a cluster's database and Redis
    settings = Settings(**fields)

    timer = GcTimer()
    gc.callbacks.append(timer)

    async def main() -> None:
        async with Golive(settings) as node:
            frozen = freeze_startup_heap() if freeze != "off" else 0  # as `golive serve` does
            conn.send(node.http_port)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, measure.wait)
            if freeze == "ramp":  # again once every viewer is in: not what serve does
                frozen = freeze_startup_heap()
            timer.measuring = True
            conn.send("measuring")  # senders start only now: a ramp freeze is not measured
            await loop.run_in_executor(None, stop.wait)
            timer.measuring = False
            conn.send((frozen, timer.max_ms, timer.full_max_ms, timer.full))
            # The viewers leave only now: their teardown (and the collection it brings) is
            # not part of the run.
            await loop.run_in_executor(None, release.wait)

    run_loop(main())


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem(pid: int) -> tuple[float, float]:
    """RSS and peak RSS in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


# Load generator ------------------------------------------------------------------------


@dataclass
class WorkerResult:
    connected: int = 0
    failed: int = 0
    delivered: int = 0
    sent: int = 0
    refused: int = 0
    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0
    closed_early: int = 0


class Viewer(asyncio.Protocol):
    """A minimal WebSocket client: handshake, unmasked server frames, zero-mask client frames."""

    def __init__(self, path: str, sample: bool, result: WorkerResult) -> None:
        self.path = path
        self.sample = sample
        self.result = result
        self.buffer = bytearray()
        self.handshaken = False
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.first_frame: asyncio.Future[None] = loop.create_future()  # history + viewers
        self.identity: asyncio.Future[None] | None = None  # senders: their join answered
        self.transport: asyncio.Transport | None = None
        self.measuring = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during handshake"))
        for waiter in (self.first_frame, self.identity):
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError("closed before the run"))
        if self.measuring:
            self.result.closed_early += 1

    def send_text(self, text: str) -> bool:
        data = text.encode()
        n = len(data)
        header = bytes([0x81, 0x80 | n]) if n < 126 else struct.pack("!BBH", 0x81, 0xFE, n)
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(header + b"\0\0\0\0" + data)  # a zero mask key: payload as is
        return True

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buf[:end]:
                self.ready.set_exception(ConnectionError(bytes(buf[:end]).decode()))
                return
            del buf[: end + 4]
            self.handshaken = True
            self.ready.set_result(None)
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            length = buf[1] & 0x7F
            head = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = struct.unpack_from("!H", buf, 2)[0]
                head = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = struct.unpack_from("!Q", buf, 2)[0]
                head = 10
            if len(buf) < head + length:
                return
            payload = bytes(buf[head: head + length])
            del buf[: head + length]
            if opcode == 1:
                if self.measuring:
                    self.on_text(payload)
                else:
                    self.before_run(payload)
            elif opcode == 9 and self.transport is not None:  # ping: answer with a pong
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)

    def before_run(self, payload: bytes) -> None:
        if not self.first_frame.done():
            self.first_frame.set_result(None)
        if self.identity is not None and not self.identity.done() \
                and b'"type":"identity"' in payload:
            self.identity.set_result(None)

    def on_text(self, payload: bytes) -> None:
        count = payload.count(BENCH_TEXT)
        self.result.delivered += count
        if self.sample and count:
            now = time.monotonic()
            value = json.loads(payload)
            for frame in value if isinstance(value, list) else [value]:
                if frame.get("type") == "message" and frame["text"].startswith("bench "):
                    self.result.latencies.append(now - float(frame["text"].split()[2]))
        if b'"type":"error"' in payload:  # only a sender's own refusals come as errors
            self.result.refused += payload.count(b'"type":"error"')


async def worker_main(
    ports: list[int], pid: str, clients: int, senders: int, rate: float, sample_every: int,
    duration: float, index: int, ready: Connection, start: MpEvent, out: Connection,
    release: MpEvent,
) -> None:
    loop = asyncio.get_running_loop()
    result = WorkerResult()
    viewers: list[Viewer] = []
    gate = asyncio.Semaphore(100)

    async def connect(i: int) -> None:
        async with gate:
            viewer = Viewer(f"/chat/{pid}", i % sample_every == 0, result)
            try:
                # Viewers (and so senders, the first ones) take the nodes in turn.
                port = ports[i % len(ports)]
                await loop.create_connection(lambda: viewer, "127.0.0.1", port)
                await asyncio.wait_for(viewer.ready, 30)
                await asyncio.wait_for(viewer.first_frame, 30)
            except (OSError, TimeoutError, ConnectionError):
                result.failed += 1
                return
            viewers.append(viewer)
            result.connected += 1

    await asyncio.gather(*(connect(i) for i in range(clients)))
    speakers = viewers[:senders]
    for n, viewer in enumerate(speakers):
        viewer.identity = loop.create_future()
        viewer.send_text(json.dumps({"type": "join", "name": f"sender-{index}-{n}"}))
    for viewer in speakers:
        assert viewer.identity is not None
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(viewer.identity, 30)
    # No collection while measuring: a full one of this process's heap (thousands of
    # viewers) stalls every viewer it holds, and that pause would land in the delivery
    # delays it measures as the node's; what it would free waits for the end of the run.
    gc.collect()
    gc.freeze()
    gc.disable()
    ready.send((result.connected, result.failed))
    await loop.run_in_executor(None, start.wait)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    for viewer in viewers:
        viewer.measuring = True

    async def speak(viewer: Viewer, offset: float) -> None:
        interval = len(speakers) / rate if speakers else 1.0
        await asyncio.sleep(offset * interval)
        t0 = loop.time()
        k = 0
        while loop.time() - t0 < duration:
            if viewer.send_text(json.dumps({"type": "send",
                                            "text": f"bench {index}.{k} {time.monotonic():.6f}"})):
                result.sent += 1
            k += 1
            await asyncio.sleep(max(0.0, t0 + k * interval - loop.time()))

    if speakers and rate > 0:
        await asyncio.gather(*(speak(v, n / len(speakers)) for n, v in enumerate(speakers)))
    else:
        await asyncio.sleep(duration)
    await asyncio.sleep(2.0)  # let the last batches arrive
    for viewer in viewers:
        viewer.measuring = False
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    out.send(result)
    await loop.run_in_executor(None, release.wait)  # the nodes have stopped measuring
    for viewer in viewers:
        if viewer.transport is not None:
            viewer.transport.close()


def run_worker(ports: list[int], pid: str, clients: int, senders: int, rate: float,
               sample_every: int, duration: float, index: int, ready: Connection,
               start: MpEvent, out: Connection, release: MpEvent) -> None:
    run_loop(worker_main(ports, pid, clients, senders, rate, sample_every, duration, index,
                         ready, start, out, release))


# One run ------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_once(clients: int, rate: float, senders: int, duration: float, workers: int,
             sample_every: int, freeze: str, nodes: int = 1,
             database: str = "sqlite") -> dict[str, Any]:
    ctx = mp.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="golive-bench-chat-") as data_dir, \
            contextlib.ExitStack() as stack:
        shared: dict[str, str] = {}
        if nodes > 1 or database == "postgresql":
            # A cluster's PostgreSQL (and Redis), started as the tests start them.
            from tests.pgserver import postgres_server

            postgres = stack.enter_context(postgres_server())
            shared["database_url"] = postgres.url(postgres.create_database())
        if nodes > 1:
            from tests.redisserver import redis_server

            redis = stack.enter_context(redis_server(Path(data_dir) / "redis"))
            shared.update({"redis_url": redis.url, "redis_prefix": redis.prefix(),
                           "chat_secret": base64.b64encode(os.urandom(32)).decode()})
        stop = ctx.Event()
        release = ctx.Event()
        measure = ctx.Event()
        servers: list[tuple[Any, Connection]] = []
        for n in range(nodes):
            port_rx, port_tx = ctx.Pipe(duplex=False)
            node_dir = Path(data_dir) / f"node{n}"
            node_dir.mkdir()
            server = ctx.Process(target=run_server,
                                 args=(port_tx, stop, release, measure, str(node_dir), rate,
                                       senders, freeze, clients, shared),
                                 daemon=True)
            server.start()
            servers.append((server, port_rx))
        gc_stats: list[tuple[int, float, float, int]] = []
        try:
            ports: list[int] = []
            for _, port_rx in servers:
                if not port_rx.poll(120):
                    raise RuntimeError("a node did not start")
                ports.append(port_rx.recv())
            server_pids = [cast(int, server.pid) for server, _ in servers]
            rss_start = sum(proc_mem(p)[0] for p in server_pids)  # before any viewer
            with httpx.Client(base_url=f"http://127.0.0.1:{ports[0]}/api/v1",
                              headers={"Authorization": f"Bearer {ADMIN}"}) as api:
                stream = api.post("/live-streams", json={"name": "bench"}).json()["data"]
            pid = stream["playback_ids"][0]["id"]
            start = ctx.Event()
            procs, readies, outs = [], [], []
            for w in range(workers):
                share = clients // workers + (1 if w < clients % workers else 0)
                speak = senders // workers + (1 if w < senders % workers else 0)
                ready_rx, ready_tx = ctx.Pipe(duplex=False)
                out_rx, out_tx = ctx.Pipe(duplex=False)
                # Each load process starts at another node, so the nodes share evenly.
                order = ports[w % nodes:] + ports[:w % nodes]
                proc = ctx.Process(
                    target=run_worker,
                    args=(order, pid, share, speak, rate * speak / max(1, senders), sample_every,
                          duration, w, ready_tx, start, out_tx, release),
                    daemon=True,
                )
                proc.start()
                procs.append(proc)
                readies.append(ready_rx)
                outs.append(out_rx)
            connected = failed = 0
            for ready_rx in readies:
                if not ready_rx.poll(600):
                    raise RuntimeError("viewers did not connect in time")
                c, f = ready_rx.recv()
                connected, failed = connected + c, failed + f
            time.sleep(1.5)  # joins and the first viewer-count push settle
            measure.set()
            for _, port_rx in servers:
                if not port_rx.poll(60) or port_rx.recv() != "measuring":
                    raise RuntimeError("a node did not start measuring")
            rss_before = sum(proc_mem(p)[0] for p in server_pids)
            cpu0 = sum(proc_cpu(p) for p in server_pids)
            t0 = time.monotonic()
            start.set()
            results: list[WorkerResult] = []
            for out_rx in outs:
                if not out_rx.poll(duration + 180):
                    raise RuntimeError("a load generator did not finish")
                results.append(out_rx.recv())
            elapsed = time.monotonic() - t0
            server_cpu = sum(proc_cpu(p) for p in server_pids) - cpu0
            rss = sum(proc_mem(p)[0] for p in server_pids)
            peak = sum(proc_mem(p)[1] for p in server_pids)
            stop.set()
            for _, port_rx in servers:
                if port_rx.poll(30):
                    gc_stats.append(port_rx.recv())
            release.set()
            for proc in procs:
                proc.join(10)
        finally:
            stop.set()
            release.set()
            for server, _ in servers:
                server.join(15)
                if server.is_alive():
                    server.kill()
    latencies = [x * 1000 for r in results for x in r.latencies]
    sent = sum(r.sent for r in results)
    delivered = sum(r.delivered for r in results)
    return {
        "nodes": nodes, "database": "postgresql" if nodes > 1 else database,
        "clients": connected, "failed": failed, "rate": rate, "sent": sent,
        "refused": sum(r.refused for r in results),
        "expected": (sent - sum(r.refused for r in results)) * connected,
        "delivered": delivered,
        "delivered_per_s": delivered / elapsed,
        "p50": percentile(latencies, 0.50), "p99": percentile(latencies, 0.99),
        "max": max(latencies) if latencies else float("nan"), "samples": len(latencies),
        "server_cpu": server_cpu, "elapsed": elapsed, "rss": rss, "rss_idle": rss_before,
        "peak": peak, "client_cpu": sum(r.cpu for r in results),
        "dropped": sum(r.closed_early for r in results),
        "freeze": freeze, "frozen": max((g[0] for g in gc_stats), default=0),
        "gc_max": max((g[1] for g in gc_stats), default=float("nan")),
        "gc_full_max": max((g[2] for g in gc_stats), default=float("nan")),
        "gc_full": sum(g[3] for g in gc_stats), "rss_start": rss_start,
    }


def raise_fd_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1000,5000,10000",
                        help="comma-separated viewer counts, one run each")
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second in all")
    parser.add_argument("--senders", type=int, default=50, help="viewers that also send")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of sending")
    parser.add_argument("--workers", type=int, default=2, help="load generator processes")
    parser.add_argument("--nodes", type=int, default=1,
                        help="nodes sharing one PostgreSQL and one Redis (a cluster)")
    parser.add_argument("--database", default="sqlite",
                        help="comma-separated stores of a one-node run, a row each: sqlite "
                             "(the default), postgresql (started by the bench); a cluster "
                             "always runs on PostgreSQL")
    parser.add_argument("--freeze", default="off,on,ramp",
                        help="comma-separated gc.freeze rows: off, on (as serve), ramp")
    parser.add_argument("--sample-every", type=int, default=20,
                        help="one viewer in this many measures latency")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",") if c]
    limit = raise_fd_limit(max(counts) + 1000)
    if limit < max(counts) + 200:
        print(f"warning: open-file limit {limit} is low for {max(counts)} viewers",
              file=sys.stderr)
    rows = []
    databases = ["postgresql"] if args.nodes > 1 else [d for d in args.database.split(",") if d]
    for database in databases:
        if database not in {"sqlite", "postgresql"}:
            parser.error(f"--database: unknown store {database!r}")
    for count in counts:
        for database in databases:
            for freeze in [f for f in args.freeze.split(",") if f]:
                print(f"running {count} viewers x {args.rate:g} msg/s for {args.duration:g} s "
                      f"on {database}, gc.freeze {freeze} ...", file=sys.stderr, flush=True)
                rows.append(run_once(count, args.rate, args.senders, args.duration,
                                     args.workers, args.sample_every, freeze, args.nodes,
                                     database))
    print_table(rows, args)


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    cores = os.cpu_count()
    where = f"{args.nodes} nodes with PostgreSQL and Redis" if args.nodes > 1 else "one node"
    print(f"\nchat fan-out, one room on {where}, {args.senders} senders, {args.duration:g} s, "
          f"{args.workers} load processes, {cores} cores; goal p99 < {GOAL_P99_MS:g} ms; "
          "peers: the same node with gc.freeze off, or on PostgreSQL")
    header = (f"{'viewers':>8} {'store':>10} {'freeze':>6} {'msg/s':>6} {'sent':>6} {'refused':>7} "
              f"{'lost':>7} {'deliv/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
              f"{'srv cpu':>8} {'KB/conn':>7} {'gc max':>7} {'full gc':>11} {'gen cpu':>8} "
              f"{'drops':>5} {'goal':>5}")
    print(header)
    print("-" * len(header))
    for r in rows:
        lost = r["expected"] - r["delivered"]
        srv = r["server_cpu"] / r["elapsed"]
        gen = r["client_cpu"] / r["elapsed"]
        per_conn = (r["rss_idle"] - r["rss_start"]) * 1024 / max(1, r["clients"])
        full = f"{r['gc_full']}x{r['gc_full_max']:.0f}ms"
        goal = "ok" if r["p99"] < GOAL_P99_MS and lost == 0 else "miss"
        print(f"{r['clients']:>8} {r['database']:>10} {r['freeze']:>6} {r['rate']:>6g} "
              f"{r['sent']:>6} {r['refused']:>7} "
              f"{lost:>7} {r['delivered_per_s']:>9.0f} {r['p50']:>7.1f} {r['p99']:>7.1f} "
              f"{r['max']:>7.0f} {srv:>8.0%} {per_conn:>7.1f} {r['gc_max']:>5.0f}ms "
              f"{full:>11} {gen:>8.0%} {r['dropped']:>5} {goal:>5}")
    print("freeze: gc.freeze() after start-up, as `golive serve` does (on), and again once "
          "every viewer is connected (ramp; serve does not); srv cpu / gen cpu: CPU "
          "time of the node(s) / the load generators per wall second (100% = one core); "
          "store: the node's database (its chat messages are stored before they are shown); "
          "KB/conn: node RSS growth from start-up to all viewers connected, per viewer; "
          "gc max: the longest collection while sending; full gc: gen-2 collections while "
          "sending x the longest; refused: messages the node refused (rate limits); lost: "
          "accepted messages x viewers not seen by a viewer; drops: viewers disconnected "
          "during the run")


if __name__ == "__main__":
    main()
