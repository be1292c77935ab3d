"""Cluster benchmark: the three-node test's numbers (issue 15).

Three `golive serve` processes (tests/clusternodes.py), one PostgreSQL, one Redis, on
loopback; ffmpeg publishes a looped 640x360 source to node A (passthrough profile, so
the numbers are the cluster's and not the encoder's). Measured in one run, each beside
a peer measured the same way in the same run:

- publish-to-play: from starting the publisher to the first part's bytes, asked on node
  C (which holds nothing and relays from A) and, as the peer, on A itself;
- chat delay: messages sent on B, received by a viewer on C (across Redis) and, as the
  peer, by a viewer on B (same node), p50 and p99;
- failover: A killed (SIGKILL), the publisher restarted against B; from the restart to
  the first part of B's continued presentation served by C, and, as the peer, the cold
  publish-to-play on C from above (a takeover is a cold start plus the registry).

    .venv/bin/python bench/cluster.py
    .venv/bin/python bench/cluster.py --messages 500 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import websockets  # noqa: E402
from tests.clusternodes import ADMIN, NodeProcess, start_node, wait_ready  # noqa: E402
from tests.mediatools import ffmpeg_publish, make_source, stop  # noqa: E402
from tests.pgserver import postgres_server  # noqa: E402
from tests.redisserver import redis_server  # noqa: E402

_PART_URI = re.compile(r'#EXT-X-PART:[^\n]*URI="([^"]+)"')
_MEDIA_SEQUENCE = re.compile(r"#EXT-X-MEDIA-SEQUENCE:(\d+)")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def first_part(http: httpx.AsyncClient, node: NodeProcess, pid: str, *,
                     after_msn: int = -1, timeout: float = 60) -> tuple[float, int]:
    """When the first part (of a segment numbered above `after_msn`) came back from
    `node`, polling its playlists; and that segment's number."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            multivariant = await http.get(f"{node.url}/live/{pid}.m3u8")
            if multivariant.status_code == 200:
                rendition = next(line for line in multivariant.text.splitlines()
                                 if line.endswith(".m3u8"))
                playlist = await http.get(f"{node.url}/live/{rendition}")
                first = _MEDIA_SEQUENCE.search(playlist.text) if playlist.status_code == 200 \
                    else None
                uris = _PART_URI.findall(playlist.text) if first else []
                if first is not None and uris and int(first.group(1)) > after_msn:
                    base = rendition.rsplit("/", 1)[0]
                    part = await http.get(f"{node.url}/live/{base}/{uris[0]}")
                    if part.status_code == 200 and part.content:
                        return time.monotonic(), int(first.group(1))
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.02)
    raise RuntimeError(f"no part from node {node.name} in {timeout} s")


async def newest_msn(http: httpx.AsyncClient, node: NodeProcess, pid: str) -> int:
    """The newest segment number `node`'s media playlist lists (parts included)."""
    multivariant = await http.get(f"{node.url}/live/{pid}.m3u8")
    rendition = next(line for line in multivariant.text.splitlines() if line.endswith(".m3u8"))
    playlist = await http.get(f"{node.url}/live/{rendition}")
    return max(int(n) for n in re.findall(r"(?:part|seg)-(\d+)", playlist.text))


async def chat_delays(b: NodeProcess, c: NodeProcess, pid: str, messages: int,
                      rate: float) -> tuple[list[float], list[float]]:
    """Delays (s) of messages sent on B, as seen by a viewer on C and one on B."""
    async def joined(node: NodeProcess, name: str) -> websockets.ClientConnection:
        ws = await websockets.connect(f"ws://127.0.0.1:{node.http_port}/chat/{pid}")
        await ws.send(json.dumps({"type": "join", "name": name}))
        return ws

    sender = await joined(b, "sender")
    on_c, on_b = await joined(c, "far"), await joined(b, "near")
    sent: dict[str, float] = {}
    seen: dict[str, dict[str, float]] = {"c": {}, "b": {}}

    async def read(ws: websockets.ClientConnection, key: str) -> None:
        async for raw in ws:
            now = time.monotonic()
            value = json.loads(raw)
            for frame in value if isinstance(value, list) else [value]:
                if frame.get("type") == "message" and frame["text"] in sent:
                    seen[key].setdefault(frame["text"], now)
            if len(seen[key]) >= messages:
                return

    readers = [asyncio.create_task(read(on_c, "c")), asyncio.create_task(read(on_b, "b"))]
    await asyncio.sleep(1.0)  # both viewers joined and subscribed
    for i in range(messages):
        text = f"m{i}"
        sent[text] = time.monotonic()
        await sender.send(json.dumps({"type": "send", "text": text}))
        await asyncio.sleep(1 / rate)
    await asyncio.wait(readers, timeout=30)
    for ws in (sender, on_c, on_b):
        await ws.close()
    far = [seen["c"][t] - sent[t] for t in seen["c"]]
    near = [seen["b"][t] - sent[t] for t in seen["b"]]
    if len(far) < messages or len(near) < messages:
        print(f"warning: {messages - len(far)} messages missing on C, "
              f"{messages - len(near)} on B")
    return far, near


async def run(args: argparse.Namespace, tmp: Path) -> None:
    source = make_source(tmp / "source.flv")
    with postgres_server() as postgres, redis_server(tmp / "redis") as redis:
        database = postgres.create_database()
        common = {"database_url": postgres.url(database), "redis_url": redis.url,
                  "redis_prefix": redis.prefix()}
        settings = {"cluster_entry_ttl": str(args.ttl), "chat_user_rate": "1000",
                    "chat_user_burst": "1000", "chat_room_rate": "1000",
                    "chat_room_burst": "1000"}
        a = start_node("a", tmp, **common, **settings)  # migrates the empty database
        nodes = [a]
        publisher = None
        try:
            await wait_ready(a)
            nodes += [start_node(n, tmp, **common, **settings) for n in ("b", "c")]
            b, c = nodes[1], nodes[2]
            await asyncio.gather(wait_ready(b), wait_ready(c))
            async with httpx.AsyncClient(timeout=30) as http:
                created = await http.post(
                    f"{a.url}/api/v1/live-streams", headers={"Authorization": f"Bearer {ADMIN}"},
                    json={"name": "bench", "profile": "passthrough", "reconnect_window": 30})
                stream = created.json()["data"]
                pid, key = stream["playback_ids"][0]["id"], stream["stream_key"]

                started = time.monotonic()
                publisher = ffmpeg_publish(source, a.rtmp_url(key), loop=True)
                (on_c, _), (on_a, _) = await asyncio.gather(
                    first_part(http, c, pid), first_part(http, a, pid))
                play_c, play_a = on_c - started, on_a - started

                far, near = await chat_delays(b, c, pid, args.messages, args.rate)

                await asyncio.sleep(2)  # a few heartbeats with the newest numbers
                playlist_msn = await newest_msn(http, c, pid)
                a.kill()
                killed = time.monotonic()
                stop(publisher)
                restarted = time.monotonic()
                publisher = ffmpeg_publish(source, b.rtmp_url(key), loop=True)
                back, new_msn = await first_part(http, c, pid, after_msn=playlist_msn)
                failover = back - restarted
        finally:
            if publisher is not None:
                stop(publisher)
            for node in nodes:
                node.stop()

    print(f"\nCluster of 3 golive nodes + PostgreSQL + Redis on loopback, passthrough "
          f"640x360 source, cluster_entry_ttl {args.ttl:g} s; chat {args.messages} messages "
          f"at {args.rate:g}/s")
    print(f"{'measure':<34} {'cluster':>10} {'peer':>10}  peer is")
    print(f"{'publish-to-play, non-owner (s)':<34} {play_c:>10.2f} {play_a:>10.2f}  "
          "the owner node itself")
    print(f"{'chat delay B->C p50 (ms)':<34} {percentile(far, 0.5) * 1000:>10.1f} "
          f"{percentile(near, 0.5) * 1000:>10.1f}  a viewer on B (same node)")
    print(f"{'chat delay B->C p99 (ms)':<34} {percentile(far, 0.99) * 1000:>10.1f} "
          f"{percentile(near, 0.99) * 1000:>10.1f}  a viewer on B (same node)")
    print(f"{'failover: restart -> part on C (s)':<34} {failover:>10.2f} {play_c:>10.2f}  "
          "cold publish-to-play on C")
    print(f"{'failover: kill -> part on C (s)':<34} {back - killed:>10.2f} {'':>10}  "
          f"(publisher restarted {restarted - killed:.2f} s after the kill)")
    print(f"continued numbering: the newest msn C relayed from A just before the kill was "
          f"{playlist_msn}; B's first msn is {new_msn} (registry: last heartbeat's + 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=30.0, help="chat messages per second")
    parser.add_argument("--ttl", type=float, default=3.0, help="cluster_entry_ttl of the nodes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="golive-bench-cluster-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
