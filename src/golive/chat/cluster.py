"""Chat across several nodes over Redis: message ids, fan-out, moderation, viewer counts (chat).

Used by `ChatService` only when `redis_url` is set; without it a node's chat stays in
one process. Keys and channels start with `redis_prefix`, so several clusters (or
tests) can share one Redis:

- `{prefix}chat:message_id`: the last message id handed out by any node. Raised to
  the database's highest id (a script: never lowered) on first use and after every
  outage, then INCR, so ids stay unique and increasing across nodes even after Redis
  restarted empty or a node stored messages while Redis was away.
- `{prefix}chat:stream:{stream_id}` (pub/sub): every frame the service publishes to a
  stream (message, deleted, cleared, system) and every invalidation (bans, settings),
  as JSON carrying the origin node's id, so a node skips what it sent itself.
- `{prefix}chat:viewers:{playback_id}:{node}`: this node's viewers of a room, renewed
  by the service's ticker with a short TTL, listed in the set
  `{prefix}chat:viewer-nodes:{playback_id}`; a room shows the sum over live nodes, and
  a dead node's count expires.

When Redis cannot be reached the node logs it once (and once when it is back), keeps
serving its own viewers, and `next_id` returns None: the service then lets the database
pick the id in the write transaction. Frames relayed while Redis is away are lost to
the other nodes (their viewers still get what was sent on their own node).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from golive.core import Backoff, peer_payload, stop_tasks

log = logging.getLogger(__name__)

VIEWERS_TTL_SECONDS = 5
CHECK_SECONDS = 1.0  # while Redis is marked away, how often the listener asks it again
RELAY_QUEUE = 10_000  # frames waiting to be published; beyond it they are dropped
MAX_PAYLOAD_BYTES = 256 * 1024  # a relayed payload larger than this is ignored
RELOADS = frozenset({"bans", "settings"})
# Raise the counter to at least ARGV[1] (never lower it), then hand out the next id.
_SEED_AND_INCR = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('INCR', KEYS[1])
"""

FrameHandler = Callable[[str, dict[str, Any]], None]
ReloadHandler = Callable[[str, str], Awaitable[None]]


class ChatCluster:
    """This node's link to the other nodes' chat, through one Redis."""

    def __init__(self, url: str, prefix: str, node_id: str, *, on_frame: FrameHandler,
                 on_reload: ReloadHandler, seed: Callable[[], Awaitable[int]],
                 timeout: float = 2.0) -> None:
        self.node_id = node_id
        self.prefix = prefix
        self._url = url
        self._on_frame = on_frame
        self._on_reload = on_reload
        self._seed = seed
        self._client = aioredis.Redis.from_url(url, socket_timeout=timeout,
                                               socket_connect_timeout=timeout)
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue(RELAY_QUEUE)
        self._tasks: list[asyncio.Task[None]] = []
        self._seeded = False
        self.available = False
        self.closed = False
        self._warned = False
        self.relayed = 0
        self.received = 0

    def _channel(self, stream_id: str) -> str:
        return f"{self.prefix}chat:stream:{stream_id}"

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._listen(), name="chat-cluster-listen"))
        self._tasks.append(asyncio.create_task(self._send(), name="chat-cluster-send"))

    async def close(self) -> None:
        self.closed = True
        self.available = False
        await stop_tasks(self._tasks)
        self._tasks.clear()
        await self._client.aclose()

    def _down(self, exc: BaseException, doing: str) -> None:
        self.available = False
        self._seeded = False
        if not self._warned:
            self._warned = True
            log.warning("chat cluster: Redis unreachable (%s while %s: %s); serving this "
                        "node's chat only, message ids from the database", self._url, doing,
                        exc)

    def _up(self) -> None:
        self.available = True
        if self._warned:
            self._warned = False
            log.warning("chat cluster: Redis reachable again (%s); relaying resumed", self._url)

    # Message ids ----------------------------------------------------------------------------

    async def next_id(self) -> int | None:
        """The next message id of the cluster; None while Redis is away (the database picks)."""
        if not self.available:
            return None
        key = f"{self.prefix}chat:message_id"
        try:
            if self._seeded:
                return int(await self._client.incr(key))
            floor = await self._seed()
            value = int(await self._client.eval(_SEED_AND_INCR, 1, key, floor))
            self._seeded = True
            return value
        except (RedisError, OSError) as exc:
            self._down(exc, "taking a message id")
            return None

    # Relay --------------------------------------------------------------------------------

    def relay(self, stream_id: str, frame: dict[str, Any]) -> None:
        self._enqueue(stream_id, {"node": self.node_id, "stream": stream_id, "frame": frame})

    def reload(self, stream_id: str, what: str) -> None:
        """Tell the other nodes to re-read `what` (bans, settings) of a stream."""
        assert what in RELOADS
        self._enqueue(stream_id, {"node": self.node_id, "stream": stream_id, "reload": what})

    def _enqueue(self, stream_id: str, payload: dict[str, Any]) -> None:
        if not self.available:
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait((self._channel(stream_id),
                                     json.dumps(payload, separators=(",", ":"))))

    async def _send(self) -> None:
        while True:
            channel, data = await self._outbox.get()
            try:
                await self._client.publish(channel, data)
                self.relayed += 1
            except (RedisError, OSError) as exc:
                self._down(exc, "relaying a frame")

    async def _listen(self) -> None:
        backoff = Backoff(first=0.2, longest=5.0, jitter=0.2)
        pattern = f"{self.prefix}chat:stream:*"
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                self._up()
                backoff.reset()
                while True:
                    message = await pubsub.get_message(timeout=CHECK_SECONDS)
                    if message is not None:
                        await self._handle(message.get("data"))
                    elif not self.available:
                        # A command failed (a frozen server, say) while this subscription
                        # stayed open: back once Redis answers again.
                        await self._client.ping()
                        self._up()
            except (RedisError, OSError) as exc:
                self._down(exc, "listening")
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(backoff.next_delay())

    async def _handle(self, data: object) -> None:
        payload = peer_payload(data, self.node_id, MAX_PAYLOAD_BYTES)
        if payload is None:
            return
        stream_id = payload.get("stream")
        if not isinstance(stream_id, str):
            return
        self.received += 1
        frame = payload.get("frame")
        what = payload.get("reload")
        if isinstance(frame, dict):
            self._on_frame(stream_id, frame)
        elif what in RELOADS:
            try:
                await self._on_reload(stream_id, str(what))
            except Exception:
                log.exception("chat cluster: reloading %s of stream %s failed", what, stream_id)

    # Viewer counts -----------------------------------------------------------------------

    async def viewers(self, local: dict[str, int]) -> dict[str, int] | None:
        """Publish this node's count per playback id; the other live nodes' sums, or None.

        Returns, per playback id in `local`, the viewers on the other nodes.
        """
        if not self.available or not local:
            return None
        p = self.prefix
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for playback_id, count in local.items():
                    nodes = f"{p}chat:viewer-nodes:{playback_id}"
                    pipe.set(f"{p}chat:viewers:{playback_id}:{self.node_id}", count,
                             ex=VIEWERS_TTL_SECONDS)
                    pipe.sadd(nodes, self.node_id)
                    pipe.expire(nodes, VIEWERS_TTL_SECONDS * 12)
                    pipe.smembers(nodes)
                replies = await pipe.execute()
            others: dict[str, list[str]] = {}
            for index, playback_id in enumerate(local):
                members = replies[index * 4 + 3]
                others[playback_id] = sorted(
                    m.decode() for m in members if m.decode() != self.node_id)
            async with self._client.pipeline(transaction=False) as pipe:
                for playback_id, nodes_of in others.items():
                    if nodes_of:
                        pipe.mget([f"{p}chat:viewers:{playback_id}:{n}" for n in nodes_of])
                counts = await pipe.execute()
                sums: dict[str, int] = {}
                gone: list[tuple[str, str]] = []
                at = 0
                for playback_id, nodes_of in others.items():
                    if not nodes_of:
                        sums[playback_id] = 0
                        continue
                    values = counts[at]
                    at += 1
                    sums[playback_id] = sum(int(v) for v in values if v is not None)
                    gone.extend((playback_id, n) for n, v in zip(nodes_of, values, strict=True)
                                if v is None)
                for playback_id, n in gone:
                    pipe.srem(f"{p}chat:viewer-nodes:{playback_id}", n)
                if gone:
                    await pipe.execute()
            return sums
        except (RedisError, OSError) as exc:
            self._down(exc, "counting viewers")
            return None

    async def forget_viewers(self, playback_id: str) -> None:
        """This node has no room for a playback id any more: drop its count at once."""
        if not self.available:
            return
        with contextlib.suppress(RedisError, OSError):
            await self._client.delete(f"{self.prefix}chat:viewers:{playback_id}:{self.node_id}")
