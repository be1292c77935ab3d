"""Webhook wake-ups across nodes, over Redis pub/sub (cluster).

Events are recorded, with their webhook deliveries, in the shared database by the node
where they happen (`golive.store.EventRecorder`), and exactly one node sends each
endpoint's deliveries: the one holding the endpoint's lease in the database. What that
node lacks in a cluster is the news: a node that queued deliveries wakes only its own
worker, and the lease holder would find them at its next sweep (30 s). So every node
publishes the endpoint ids it queued for on `{prefix}webhooks:queued`, and every other
node wakes its worker for them; the lease keeps the delivery single.

The event bus itself stays per node: its other subscribers are per broadcast (alerts,
the pipeline) or already relayed (chat system messages, through the chat cluster), so
relaying events would only deliver them twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from golive.core import Backoff, peer_payload, stop_tasks

log = logging.getLogger(__name__)

MAX_IDS = 1000  # endpoint ids in one wake-up; a longer list is cut
MAX_ID_LENGTH = 64
MAX_PAYLOAD_BYTES = 128 * 1024
OUTBOX = 10_000  # wake-ups waiting to be published; beyond it they are dropped (the sweep)


class WebhookWakeups:
    """This node's side of the wake-up channel."""

    def __init__(self, url: str, prefix: str, node_id: str, *,
                 wake: Callable[[Sequence[str]], None], timeout: float = 2.0) -> None:
        self.node_id = node_id
        self._channel = f"{prefix}webhooks:queued"
        self._url = url
        self._wake = wake
        self._client = aioredis.Redis.from_url(url, socket_timeout=timeout,
                                               socket_connect_timeout=timeout)
        self._outbox: asyncio.Queue[str] = asyncio.Queue(OUTBOX)
        self._tasks: list[asyncio.Task[None]] = []
        self._warned = False
        self.subscribed = asyncio.Event()
        self.received = 0

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._send(), name="webhook-wakeups-send"),
                       asyncio.create_task(self._listen(), name="webhook-wakeups-listen")]

    async def close(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks.clear()
        await self._client.aclose()

    def queued(self, endpoint_ids: Sequence[str]) -> None:
        """Deliveries were queued for these endpoints here: wake this node and the others."""
        self._wake(endpoint_ids)
        payload = json.dumps({"node": self.node_id, "endpoints": list(endpoint_ids[:MAX_IDS])},
                             separators=(",", ":"))
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(payload)

    def _down(self, exc: BaseException, doing: str) -> None:
        self.subscribed.clear()
        if not self._warned:
            self._warned = True
            log.warning("webhook wake-ups: Redis unreachable (%s while %s: %s); other nodes "
                        "find new deliveries at their next sweep", self._url, doing, exc)

    async def _send(self) -> None:
        while True:
            payload = await self._outbox.get()
            try:
                await self._client.publish(self._channel, payload)
            except (RedisError, OSError) as exc:
                self._down(exc, "publishing")

    async def _listen(self) -> None:
        backoff = Backoff(first=0.2, longest=5.0, jitter=0.2)
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self.subscribed.set()
                if self._warned:
                    self._warned = False
                    log.warning("webhook wake-ups: Redis reachable again (%s)", self._url)
                backoff.reset()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._handle(message.get("data"))
            except (RedisError, OSError) as exc:
                self._down(exc, "listening")
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(backoff.next_delay())

    def _handle(self, data: object) -> None:
        payload = peer_payload(data, self.node_id, MAX_PAYLOAD_BYTES)
        if payload is None:
            return
        endpoints = payload.get("endpoints")
        if not isinstance(endpoints, list):
            return
        ids = [e for e in endpoints[:MAX_IDS]
               if isinstance(e, str) and 0 < len(e) <= MAX_ID_LENGTH]
        if ids:
            self.received += 1
            self._wake(ids)
