"""Hostile clients against one live node: what each attack costs the node and its viewers.

Starts `golive serve` as its own process with one live publisher (ffmpeg over RTMP) and
LL-HLS viewers (bench/origin.py's simulated low-latency viewer, in a load process),
then runs each attack of issue 9 in turn for a fixed time, repeating it while the time
lasts, after a baseline with no attack in the same run: HTTP (huge heads, heads and
bodies that never finish, huge bodies, huge WebSocket frames), RTMP (idle sockets,
partial messages before `connect`, wrong keys), SRT (an induction flood; callers with
valid keys that send no media), WHEP (offers that never connect), chat (socket and frame floods), QoE beacons with fresh view ids,
API token and studio login guessing. For each it prints the attacker's answer, the
node's peak RSS growth (VmHWM, reset per phase), the viewers' longest gap between two
parts, and whether a new publisher went live (over the attacked protocol: SRT for the
SRT flood, else RTMP) and a new viewer got a playlist and a part while the attack ran.
The verdict compares each row with the goal: RSS growth <= 100 MiB, longest gap <= the
baseline's + 2 part targets, both newcomers in.

Every attacker comes from a loopback address of its own (127.0.0.0/8), so the node's
per-address limits aim at it and not at the viewers, the probes or the bench's own API
client (127.0.0.1). The attacks themselves are the tests' (tests/httpserver/attacks.py,
tests/ingest/attacks.py). Adding one is a small async function registered with
`@attack("name")`: it gets the `Target` and returns what the node answered.

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
import socket
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
    chat_frame_flood,
    chat_socket_flood,
    connection_flood,
    huge_body,
    huge_head,
    huge_ws_frame,
    never_connecting_offer,
    peak_rss_kib,
    qoe_fresh_views,
    reset_peak_rss,
    rss_kib,
    studio_logins,
    trickled_body,
    whep_offers,
    wrong_api_tokens,
)
from tests.ingest.attacks import (  # noqa: E402
    InductionFlood,
    idle_rtmp_sockets,
    partial_rtmp_messages,
    srt_callers_without_media,
    wrong_rtmp_keys,
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
    srt_port: int
    playback_id: str
    head_timeout: float
    body_timeout: float
    spare_keys: list[str]  # stream keys of streams nobody publishes (for SRT squatters)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


Attack = Callable[[Target], Awaitable[str]]
ATTACKS: dict[str, Attack] = {}
PROBES: dict[str, str] = {}  # attack name -> protocol of its new-publisher probe (else rtmp)


def attack(name: str, probe: str = "rtmp") -> Callable[[Attack], Attack]:
    def register(fn: Attack) -> Attack:
        ATTACKS[name] = fn
        PROBES[name] = probe
        return fn
    return register


def counted(counter: collections.Counter[Any]) -> str:
    return ",".join(f"{n}x{what}" for what, n in counter.most_common())


# Attacks (one round each; the phase repeats them while it lasts) ---------------------


@attack("huge head (300 MB header)")
async def _huge_head(t: Target) -> str:
    return str((await huge_head(t.http_port, 300 * MiB)).status or "reset")


@attack("1,000 heads never finished")
async def _slow_heads(t: Target) -> str:
    slow = SlowHeads(t.http_port, 1000, source="127.0.20.1")
    try:
        await slow.start()
        await slow.all_closed(timeout=t.head_timeout * 3)
    except TimeoutError:
        return f"{slow.open} still open after {t.head_timeout * 3:g} s"
    finally:
        await slow.abort()
    counts = collections.Counter(o.status for o in slow.outcomes)
    return ",".join(f"{n}x{s or 'closed'}" for s, n in counts.most_common())


@attack("HTTP 3,000 idle sockets, 1 address")
async def _http_sockets(t: Target) -> str:
    # Past http_max_connections_per_address (1,000) the node closes them unread.
    return counted(await connection_flood(t.http_port, 3000, source="127.0.21.1", hold=1.0))


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


@attack("100 bodies trickling in")
async def _slow_bodies(t: Target) -> str:
    outcomes = await asyncio.gather(*(
        trickled_body(t.http_port, f"/chat/{t.playback_id}/identity", 1000, interval=0.2,
                      timeout=t.body_timeout * 3) for _ in range(100)))
    return counted(collections.Counter(o.status or "open" for o in outcomes))


@attack("RTMP 205 idle sockets")
async def _rtmp_idle(t: Target) -> str:
    opened, closed = await idle_rtmp_sockets(t.rtmp_port, 205, source="127.0.10.1", hold=3.0)
    return f"{closed}/{opened} closed in 3 s"


@attack("RTMP 64x16 MiB partials")
async def _rtmp_partials(t: Target) -> str:
    # Ten connections (ten addresses), each 64 chunk streams with a 16 MiB message begun.
    closed = await partial_rtmp_messages(t.rtmp_port,
                                         sources=[f"127.0.11.{i + 1}" for i in range(10)])
    return f"{closed}/10 closed"  # or refused at the handshake


@attack("RTMP 1,000 wrong keys")
async def _rtmp_keys(t: Target) -> str:
    codes = await wrong_rtmp_keys(t.rtmp_port, 1000, source="127.0.12.1")
    return counted(collections.Counter({k.removeprefix("NetStream.Publish."): n
                                        for k, n in codes.items()}))


@attack("SRT 5,000 inductions/s", probe="srt")
async def _srt_inductions(t: Target) -> str:
    flood = InductionFlood(t.srt_port, rate=5000, source="127.0.13.1")
    await flood.run(seconds=5.0)
    return f"{flood.answered}/{flood.sent} answered"


@attack("SRT 10 valid keys, no media", probe="srt")
async def _srt_squatters(t: Target) -> str:
    # Past srt_media_timeout (10 s) the node drops each; before it did, they held for ever.
    return counted(await srt_callers_without_media(t.srt_port, t.spare_keys, 13.0,
                                                   source="127.0.13.2"))


_OFFER: list[str] = []


@attack("WHEP 20 offers never connecting")
async def _whep(t: Target) -> str:
    if not _OFFER:
        _OFFER.append(await never_connecting_offer())
    # 20 addresses, one offer each (the 20 offers; one address gets 2 at most).
    codes = await whep_offers(t.url, t.playback_id, _OFFER[0],
                              [f"127.0.14.{i + 1}" for i in range(20)])
    return counted(codes)


@attack("chat 400 sockets, 1 address")
async def _chat_sockets(t: Target) -> str:
    return counted(await chat_socket_flood(t.http_port, f"/chat/{t.playback_id}", 400,
                                           source="127.0.15.1"))


@attack("chat frame flood, 4 sockets")
async def _chat_frames(t: Target) -> str:
    return counted(await chat_frame_flood(t.http_port, f"/chat/{t.playback_id}", sockets=4,
                                          frames=20_000, source="127.0.16.1"))


@attack("QoE 1,000 fresh view ids")
async def _qoe(t: Target) -> str:
    return counted(await qoe_fresh_views(t.url, t.playback_id, 1000, source="127.0.17.1"))


@attack("API 2,000 wrong tokens")
async def _api_tokens(t: Target) -> str:
    return counted(await wrong_api_tokens(t.url, 2000, source="127.0.18.1"))


@attack("studio 100 logins")
async def _studio(t: Target) -> str:
    return counted(await studio_logins(t.url, 100, source="127.0.19.1"))


# The node ----------------------------------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Node:
    """`golive serve` in its own process, on free ports, with a data dir of its own."""

    def __init__(self, tmp: Path, head_timeout: float, body_timeout: float) -> None:
        self.http_port = origin.free_port()
        self.rtmp_port = origin.free_port()
        self.srt_port = free_udp_port()
        self.head_timeout = head_timeout
        self.body_timeout = body_timeout
        env = {**os.environ, "GOLIVE_DATA_DIR": str(tmp / "data"), "GOLIVE_HOST": "127.0.0.1",
               "GOLIVE_HTTP_PORT": str(self.http_port), "GOLIVE_RTMP_PORT": str(self.rtmp_port),
               "GOLIVE_SRT_PORT": str(self.srt_port), "GOLIVE_ADMIN_TOKEN": ADMIN,
               "GOLIVE_WEBRTC_PLAYBACK": "true",  # mounts /whep/, one of the attacked routes
               "GOLIVE_HTTP_HEAD_TIMEOUT": str(head_timeout),
               "GOLIVE_HTTP_BODY_TIMEOUT": str(body_timeout), "GOLIVE_LOG_LEVEL": "warning"}
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
        tasks = [asyncio.create_task(origin.viewer(port, r, halt, True, None)) for r in results]
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


async def new_publisher(node: Node, source: Path, stream: dict[str, Any], timeout: float,
                        protocol: str = "rtmp") -> float | None:
    """Seconds for a fresh RTMP (or SRT) publisher to make its stream active (None: it did not)."""
    start = time.monotonic()
    key = stream["stream_key"]
    proc = (ffmpeg_publish(source, f"srt://127.0.0.1:{node.srt_port}?streamid={key}",
                           loop=True, muxer="mpegts") if protocol == "srt" else
            ffmpeg_publish(source, f"rtmp://127.0.0.1:{node.rtmp_port}/live/{key}", loop=True))
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
        new_publisher(node, source, stream, timeout=20, protocol=PROBES.get(name, "rtmp")))
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
        node = Node(tmp, args.head_timeout, args.body_timeout)
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
                    media = await node.api.get(f"{node.url}/live/{uris[0]}")
                    found = re.search(r"PART-TARGET=([0-9.]+)", media.text)
                    args.part_target = float(found[1]) if found else 0.0
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
            spare = [(await node.create_stream(f"squatted {i}"))["stream_key"]
                     for i in range(10)]
            target = Target(node.http_port, node.rtmp_port, node.srt_port, playback_id,
                            args.head_timeout, args.body_timeout, spare)
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


RSS_GOAL_MIB = 100.0
GAP_GOAL_PARTS = 2  # part targets a viewer's longest gap may grow by over the baseline


def verdict(row: Row, baseline: Row, part_target: float) -> str:
    misses = []
    if row.rss_growth_mib > RSS_GOAL_MIB:
        misses.append("rss")
    if row.longest_gap > baseline.longest_gap + GAP_GOAL_PARTS * part_target:
        misses.append("gap")
    if row.publisher_in is None:
        misses.append("publisher")
    if row.viewer_in is None:
        misses.append("viewer")
    return "ok" if not misses else "MISS " + "+".join(misses)


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    part_target: float = getattr(args, "part_target", 0.0)
    print(f"\nHostile clients against one node: 1 live RTMP publisher, {args.viewers} LL-HLS "
          f"viewers, {args.seconds:g} s per attack (repeated while it lasts), head timeout "
          f"{args.head_timeout:g} s, body timeout {args.body_timeout:g} s, part target "
          f"{part_target:g} s, {os.cpu_count()} cores")
    header = (f"{'attack':<31} {'rounds':>6} {'answers':<34} {'peak RSS +MiB':>13} "
              f"{'longest gap s':>13} {'new publisher':>13} {'new viewer':>10}  goal")
    print(header)
    print("-" * len(header))

    def seconds(value: float | None) -> str:
        return "no" if value is None else f"{value:.1f} s"

    baseline = rows[0]
    for r in rows:
        print(f"{r.name:<31} {r.rounds:>6} {r.answers[:34]:<34} {r.rss_growth_mib:>13.1f} "
              f"{r.longest_gap:>13.2f} {seconds(r.publisher_in):>13} {seconds(r.viewer_in):>10}"
              f"  {verdict(r, baseline, part_target)}")
    print("answers: what the node answered per round (HTTP statuses, WebSocket close codes, "
          "RTMP NetStream.Publish codes; NxWHAT: N times WHAT; reset: the connection was reset "
          "before the answer was read); peak RSS: the node process's VmHWM growth during the "
          "phase; longest gap: the longest any viewer went without a new part; new "
          "publisher/viewer: time to go live (SRT for the SRT flood, else RTMP) / to get a "
          "playlist and a part while the attack ran; goal: RSS growth <= "
          f"{RSS_GOAL_MIB:g} MiB, longest gap <= baseline + {GAP_GOAL_PARTS} part targets, both "
          "newcomers in")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=50, help="simulated LL-HLS viewers")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--head-timeout", type=float, default=10.0,
                        help="the node's http_head_timeout")
    parser.add_argument("--body-timeout", type=float, default=10.0,
                        help="the node's http_body_timeout")
    parser.add_argument("--only", action="append",
                        help="run only attacks whose name contains this (repeatable)")
    args = parser.parse_args()
    print_table(asyncio.run(run(args)), args)


if __name__ == "__main__":
    main()
