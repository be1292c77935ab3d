"""Hostile clients against one live node: what each attack costs the node and its viewers.

Starts `golive serve` as its own process with one live publisher (ffmpeg over RTMP) and
LL-HLS viewers (bench/origin.py's simulated low-latency viewer, in a load process),
then runs each attack in turn for a fixed time, repeating it while the time lasts,
after a baseline with no attack in the same run. For each it prints the attacker's
answer, the node's peak RSS growth (VmHWM, reset per phase), the viewers' longest gap
between two parts, and whether a new publisher went live and a new viewer got a
playlist and a part while the attack ran.

Adding an attack is one small async function registered with `@attack("name")`: it
gets the `Target` (ports, playback id) and returns a short description of what the
node answered. RTMP, SRT and chat attacks belong here too.

    .venv/bin/python bench/hostile.py
    .venv/bin/python bench/hostile.py --seconds 8 --viewers 50 --only "huge head"
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.util
import itertools
import multiprocessing as mp
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.httpserver.attacks import (  # noqa: E402
    SlowHeads,
    huge_body,
    huge_head,
    huge_ws_frame,
    peak_rss_kib,
    reset_peak_rss,
    rss_kib,
)
from tests.mediatools import ffmpeg_publish, make_source, stop  # noqa: E402

MiB = 1024 * 1024
ADMIN = secrets.token_urlsafe(32)


def _origin_bench() -> Any:
    """bench/origin.py as a module, for its simulated LL-HLS viewer."""
    spec = importlib.util.spec_from_file_location("bench_origin", ROOT / "bench" / "origin.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


origin = _origin_bench()


@dataclass
class Target:
    """What an attack may aim at: one node with one live broadcast."""

    http_port: int
    rtmp_port: int
    playback_id: str
    head_timeout: float


Attack = Callable[[Target], Awaitable[str]]
ATTACKS: dict[str, Attack] = {}


def attack(name: str) -> Callable[[Attack], Attack]:
    def register(fn: Attack) -> Attack:
        ATTACKS[name] = fn
        return fn
    return register


# Attacks (one round each; the phase repeats them while it lasts) ---------------------


@attack("huge head (300 MB header)")
async def _huge_head(t: Target) -> str:
    return str((await huge_head(t.http_port, 300 * MiB)).status or "reset")


@attack("1,000 heads never finished")
async def _slow_heads(t: Target) -> str:
    slow = SlowHeads(t.http_port, 1000)
    try:
        await slow.start()
        await slow.all_closed(timeout=t.head_timeout * 3)
    except TimeoutError:
        return f"{slow.open} still open after {t.head_timeout * 3:g} s"
    finally:
        await slow.abort()
    counts = collections.Counter(o.status for o in slow.outcomes)
    return ",".join(f"{n}x{s or 'closed'}" for s, n in counts.most_common())


@attack("chat identity body 300 MB")
async def _identity_body(t: Target) -> str:
    outcome = await huge_body(t.http_port, f"/chat/{t.playback_id}/identity", 300 * MiB,
                              declared=300 * MiB)
    return str(outcome.status or "reset")


@attack("WHEP body 400 MB chunked")
async def _whep_body(t: Target) -> str:
    outcome = await huge_body(t.http_port, f"/whep/{t.playback_id}", 400 * MiB, declared=None,
                              content_type="application/sdp")
    return str(outcome.status or "reset")


@attack("20 chat frames of 15 MB")
async def _ws_frames(t: Target) -> str:
    outcomes = await asyncio.gather(*(
        huge_ws_frame(t.http_port, f"/chat/{t.playback_id}", 15 * MiB, 15 * MiB)
        for _ in range(20)))
    counts = collections.Counter(o.close_code for o in outcomes)
    return ",".join(f"{n}x{code or 'reset'}" for code, n in counts.most_common())


# The node ----------------------------------------------------------------------------


class Node:
    """`golive serve` in its own process, on free ports, with a data dir of its own."""

    def __init__(self, tmp: Path, head_timeout: float) -> None:
        self.http_port = origin.free_port()
        self.rtmp_port = origin.free_port()
        self.head_timeout = head_timeout
        env = {**os.environ, "GOLIVE_DATA_DIR": str(tmp / "data"), "GOLIVE_HOST": "127.0.0.1",
               "GOLIVE_HTTP_PORT": str(self.http_port), "GOLIVE_RTMP_PORT": str(self.rtmp_port),
               "GOLIVE_SRT_PORT": str(origin.free_port()), "GOLIVE_ADMIN_TOKEN": ADMIN,
               "GOLIVE_WEBRTC_PLAYBACK": "true",  # mounts /whep/, one of the attacked routes
               "GOLIVE_HTTP_HEAD_TIMEOUT": str(head_timeout), "GOLIVE_LOG_LEVEL": "warning"}
        self.proc = subprocess.Popen([sys.executable, "-m", "golive", "serve"], cwd=tmp, env=env,
                                     stdout=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.api = httpx.AsyncClient(base_url=f"{self.url}/api/v1", timeout=20,
                                     headers={"Authorization": f"Bearer {ADMIN}"})

    async def ready(self) -> None:
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"golive serve exited with {self.proc.returncode}")
            try:
                if (await self.api.get(f"{self.url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("golive serve did not answer /healthz")

    async def create_stream(self, name: str) -> dict[str, Any]:
        response = await self.api.post("/live-streams", json={"name": name})
        response.raise_for_status()
        data: dict[str, Any] = response.json()["data"]
        return data

    async def status(self, stream_id: str) -> str:
        response = await self.api.get(f"/live-streams/{stream_id}")
        return str(response.json()["data"]["status"]) if response.status_code == 200 else ""

    async def close(self) -> None:
        await self.api.aclose()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# Viewers and probes ------------------------------------------------------------------


def run_viewers(port: int, playback_id: str, rendition: str, count: int, ready: Connection,
                stop_event: MpEvent, out: Connection) -> None:
    """A load process: `count` of bench/origin.py's LL-HLS viewers; sends each one's part times."""
    import uvloop

    origin.PID, origin.RENDITION = playback_id, rendition

    async def main() -> list[list[float]]:
        results = [origin.LoadResult() for _ in range(count)]
        halt = asyncio.Event()
        tasks = [asyncio.create_task(origin.viewer(port, r, halt, True)) for r in results]
        for _ in range(600):
            if all(r.joined for r in results):
                break
            await asyncio.sleep(0.05)
        ready.send(sum(1 for r in results if r.joined))
        await asyncio.get_running_loop().run_in_executor(None, stop_event.wait)
        halt.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return [[at for _, at in r.deliveries] for r in results]

    out.send(uvloop.run(main()))


async def new_viewer(node: Node, playback_id: str, timeout: float) -> float | None:
    """Seconds for a fresh viewer to get the multivariant, a media playlist and a part."""
    start = time.monotonic()
    try:
        async with httpx.AsyncClient(base_url=f"{node.url}/live/", timeout=timeout) as client:
            multivariant = await client.get(f"{playback_id}.m3u8")
            uri = next(line for line in multivariant.text.splitlines()
                       if line and not line.startswith("#"))
            media = await client.get(uri)
            part = re.findall(r'#EXT-X-PART:.*URI="([^"]+)"', media.text)[-1]
            got = await client.get(f"{uri.rsplit('/', 1)[0]}/{part}")
            if got.status_code != 200 or not got.content:
                return None
    except (httpx.HTTPError, StopIteration, IndexError):
        return None
    return time.monotonic() - start


async def new_publisher(node: Node, source: Path, stream: dict[str, Any],
                        timeout: float) -> float | None:
    """Seconds for a fresh RTMP publisher to make its stream active (None: it did not)."""
    start = time.monotonic()
    proc = ffmpeg_publish(source, f"rtmp://127.0.0.1:{node.rtmp_port}/live/{stream['stream_key']}",
                          loop=True)
    try:
        while time.monotonic() - start < timeout:
            try:
                if await node.status(stream["id"]) == "active":
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        return None
    finally:
        stop(proc)


# Phases ------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    rounds: int
    answers: str
    rss_growth_mib: float
    longest_gap: float
    publisher_in: float | None
    viewer_in: float | None
    t0: float = 0.0
    t1: float = 0.0


async def phase(name: str, fn: Attack | None, node: Node, target: Target, source: Path,
                seconds: float) -> Row:
    stream = await node.create_stream(f"probe {name}")
    before = rss_kib(node.proc.pid)
    reset_peak_rss(node.proc.pid)
    t0 = time.time()
    end = time.monotonic() + seconds
    answers: collections.Counter[str] = collections.Counter()
    rounds = 0

    async def keep_attacking() -> None:
        nonlocal rounds
        while fn is not None and time.monotonic() < end and rounds < 100:
            answers[await fn(target)] += 1
            rounds += 1

    attacking = asyncio.create_task(keep_attacking())
    await asyncio.sleep(min(1.0, seconds / 4))  # the attack under way before the probes
    viewer_in, publisher_in = await asyncio.gather(
        new_viewer(node, target.playback_id, timeout=20),
        new_publisher(node, source, stream, timeout=20))
    await attacking
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    growth = (peak_rss_kib(node.proc.pid) - before) / 1024
    shown = ", ".join(f"{a} ({n})" if len(answers) > 1 else a for a, n in answers.most_common())
    return Row(name, rounds, shown or "-", growth,
               0.0, publisher_in, viewer_in, t0, time.time())


def longest_gap(viewers: list[list[float]], t0: float, t1: float) -> float:
    """The longest time any viewer went without a new part inside [t0, t1]."""
    worst = 0.0
    for times in viewers:
        inside = [t0, *(t for t in times if t0 <= t <= t1), t1]
        worst = max(worst, max(b - a for a, b in itertools.pairwise(inside)))
    return worst


async def run(args: argparse.Namespace) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="golive-bench-hostile-") as tmp_name:
        tmp = Path(tmp_name)
        source = make_source(tmp / "source.flv", seconds=6)
        node = Node(tmp, args.head_timeout)
        ctx = mp.get_context("fork")
        publisher: subprocess.Popen[bytes] | None = None
        load: Any = None
        stop_event = ctx.Event()
        try:
            await node.ready()
            stream = await node.create_stream("live")
            publisher = ffmpeg_publish(
                source, f"rtmp://127.0.0.1:{node.rtmp_port}/live/{stream['stream_key']}", loop=True)
            playback_id = stream["playback_ids"][0]["id"]
            rendition = ""
            for _ in range(600):
                response = await node.api.get(f"{node.url}/live/{playback_id}.m3u8")
                uris = [line for line in response.text.splitlines()
                        if line and not line.startswith("#")]
                if response.status_code == 200 and uris:
                    rendition = uris[0].rsplit("/", 1)[-1].removesuffix(".m3u8")
                    break
                await asyncio.sleep(0.1)
            if not rendition:
                raise RuntimeError("the live stream did not come up")
            await asyncio.sleep(3)  # a few segments in the window before viewers join
            ready_rx, ready_tx = ctx.Pipe(duplex=False)
            out_rx, out_tx = ctx.Pipe(duplex=False)
            load = ctx.Process(target=run_viewers, daemon=True, args=(
                node.http_port, playback_id, rendition, args.viewers, ready_tx, stop_event, out_tx))
            load.start()
            joined = await asyncio.get_running_loop().run_in_executor(None, ready_rx.recv)
            print(f"{joined} of {args.viewers} viewers watching", file=sys.stderr, flush=True)
            target = Target(node.http_port, node.rtmp_port, playback_id, args.head_timeout)
            chosen = [(n, f) for n, f in ATTACKS.items()
                      if not args.only or any(o in n for o in args.only)]
            rows = []
            for name, fn in [("none (baseline)", None), *chosen]:
                print(f"{name} for {args.seconds:g} s ...", file=sys.stderr, flush=True)
                rows.append(await phase(name, fn, node, target, source, args.seconds))
                await asyncio.sleep(2)  # let the node settle between phases
            stop_event.set()
            viewers: list[list[float]] = await asyncio.get_running_loop().run_in_executor(
                None, lambda: out_rx.recv() if out_rx.poll(60) else [])
            for row in rows:
                row.longest_gap = longest_gap(viewers, row.t0, row.t1)
            return rows
        finally:
            stop_event.set()
            if load is not None:
                load.join(10)
                if load.is_alive():
                    load.kill()
            if publisher is not None:
                stop(publisher)
            await node.close()


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    print(f"\nHostile clients against one node: 1 live RTMP publisher, {args.viewers} LL-HLS "
          f"viewers, {args.seconds:g} s per attack (repeated while it lasts), head timeout "
          f"{args.head_timeout:g} s, {os.cpu_count()} cores")
    header = (f"{'attack':<28} {'rounds':>6} {'answers':<22} {'peak RSS +MiB':>13} "
              f"{'longest gap s':>13} {'new publisher':>13} {'new viewer':>10}")
    print(header)
    print("-" * len(header))

    def seconds(value: float | None) -> str:
        return "no" if value is None else f"{value:.1f} s"

    for r in rows:
        print(f"{r.name:<28} {r.rounds:>6} {r.answers[:22]:<22} {r.rss_growth_mib:>13.1f} "
              f"{r.longest_gap:>13.2f} {seconds(r.publisher_in):>13} {seconds(r.viewer_in):>10}")
    print("answers: the node's HTTP status or WebSocket close code per round (reset: the "
          "connection was reset before the answer was read); peak RSS: the "
          "node process's VmHWM growth during the phase; longest gap: the longest any viewer "
          "went without a new part; new publisher/viewer: time to go live / to get a playlist "
          "and a part while the attack ran")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=50, help="simulated LL-HLS viewers")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--head-timeout", type=float, default=10.0,
                        help="the node's http_head_timeout")
    parser.add_argument("--only", action="append",
                        help="run only attacks whose name contains this (repeatable)")
    args = parser.parse_args()
    print_table(asyncio.run(run(args)), args)


if __name__ == "__main__":
    main()
