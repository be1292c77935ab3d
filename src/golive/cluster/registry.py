"""The broadcast registry: which node holds which live broadcast, in Redis (cluster).

Keys (each starting with `redis_prefix`):

- `live:owner:{playback_id}`: JSON `{"node", "url", "stream", "broadcast"}` of the node
  serving the playback id's live presentation, with a TTL of `cluster_entry_ttl`; the
  node renews it (heartbeat, several times per TTL) while the presentation runs and
  deletes it when the broadcast ends. A node that dies stops renewing: its entries are
  gone one TTL later. A node claims a playback id unconditionally when its own
  presentation of it first appears (the newest publisher wins: a publisher that moved
  here after its node died), and only renews an entry that is still its own, so the
  node it was taken from steps back instead of taking it back.
- `live:sequence:{playback_id}`: JSON `{"node", "msn", "discontinuity", "at", "window",
  "ended"}`: the newest media sequence number and discontinuity sequence the owner has
  served, written with each heartbeat. A node whose presentation of the playback id
  starts within the broadcast's reconnect window after another node's last heartbeat
  continues after those numbers (`continuation`), with one EXT-X-DISCONTINUITY. It also
  tells "being taken over" (503 + Retry-After for viewers on other nodes) from "not live"
  (404) while no node owns the playback id.

Numbers continue at msn + 2: the owner may have opened one more segment (and its parts
may sit in caches as immutable) between its last heartbeat and its death; a heartbeat
every `ttl / 6` seconds is shorter than any segment, so skipping one number never reuses
a URL. Lookups by other nodes are cached for LOOKUP_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from golive.core import stop_tasks
from golive.delivery import OWNER_UNKNOWN, OwnerUnknown
from golive.packaging import Continuation, Presentation
from golive.stream import Broadcast

log = logging.getLogger(__name__)

LOOKUP_SECONDS = 0.5  # how long another node's answer about a playback id is reused
MAX_ENTRY_BYTES = 4096  # a registry value larger than this is taken for garbage
SEQUENCE_SLACK = 60.0  # seconds a sequence entry outlives its broadcast's reconnect window
# Renew the entry only while it is this node's (or gone): a node a broadcast was taken
# from must not take it back.
_RENEW = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['node'] ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
# Delete the entry only if it is this node's.
_RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['node'] == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


class Presentations(Protocol):
    """Where this node's live presentations are (the live pipeline)."""

    def presentation(self, playback_id: str) -> Presentation | None: ...


@dataclass(frozen=True, slots=True)
class OwnerEntry:
    node: str
    url: str
    stream: str
    broadcast: str


@dataclass(frozen=True, slots=True)
class SequenceEntry:
    node: str
    msn: int
    discontinuity: int
    at: float
    window: float
    ended: bool
    date_end: float | None = None
    date_start: float | None = None  # where the newest segment starts (older nodes: absent)

    def recent(self, now: float, ttl: float) -> bool:
        """Within the broadcast's reconnect window after the owner's last heartbeat."""
        return not self.ended and now - self.at <= self.window + ttl


@dataclass(slots=True)
class _Held:
    broadcast: Broadcast
    claimed: bool = False  # this node's presentation appeared and was claimed
    lost: bool = False  # another node took it over


class BroadcastRegistry:
    """This node's entries in the registry, and its view of the other nodes' entries.

    A `BroadcastObserver` of the hub (add it before the live pipeline: it looks up the
    continuation as a broadcast starts, before the pipeline's presentation needs it) and
    the `OwnerDirectory` of the origin's relay.
    """

    def __init__(self, url: str, prefix: str, *, presentations: Presentations,
                 ttl: float = 3.0, node_id: str | None = None,
                 clock: Callable[[], float] = time.time, timeout: float = 2.0) -> None:
        self.node_id = node_id or "node_" + secrets.token_hex(8)
        self.node_url = ""
        self.ttl = ttl
        self.heartbeat = ttl / 6
        self.prefix = prefix
        self._url = url
        self._presentations = presentations
        self._clock = clock
        self._client = aioredis.Redis.from_url(url, socket_timeout=timeout,
                                               socket_connect_timeout=timeout)
        self._held: dict[str, _Held] = {}  # by playback id
        self._continuations: dict[str, Continuation] = {}  # by broadcast id
        self._looking: set[str] = set()  # broadcast ids whose continuation is being read
        self._lookups: dict[str, tuple[float, str | OwnerUnknown | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._beat: asyncio.Task[None] | None = None
        self._warned = False
        self.taken_over = 0
        """Broadcasts this node continued after another node (for tests and metrics)."""

    def _owner_key(self, playback_id: str) -> str:
        return f"{self.prefix}live:owner:{playback_id}"

    def _sequence_key(self, playback_id: str) -> str:
        return f"{self.prefix}live:sequence:{playback_id}"

    # Lifecycle -----------------------------------------------------------------------

    async def start(self, node_url: str) -> None:
        """Start the heartbeat; `node_url` is where the other nodes reach this one."""
        self.node_url = node_url.rstrip("/")
        self._beat = asyncio.create_task(self._heartbeats(), name="registry-heartbeat")

    async def close(self) -> None:
        await stop_tasks([*([self._beat] if self._beat is not None else []), *self._tasks])
        # A clean stop hands the broadcasts back at once instead of one TTL later.
        with contextlib.suppress(RedisError, OSError):
            for playback_id, held in self._held.items():
                if held.claimed and not held.lost:
                    await self._client.eval(_RELEASE, 1, self._owner_key(playback_id),
                                            self.node_id)
        await self._client.aclose()

    def _down(self, exc: BaseException, doing: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("broadcast registry: Redis unreachable (%s while %s: %s); other "
                        "nodes cannot find this node's broadcasts", self._url, doing, exc)

    def _up(self) -> None:
        if self._warned:
            self._warned = False
            log.warning("broadcast registry: Redis reachable again (%s)", self._url)

    def _spawn(self, work: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # BroadcastObserver ---------------------------------------------------------------

    def broadcast_started(self, broadcast: Broadcast) -> None:
        for pid in broadcast.policy.playback_ids:
            self._held[pid.id] = _Held(broadcast)
        if broadcast.policy.playback_ids:
            self._looking.add(broadcast.id)
            self._spawn(self._look_for_continuation(broadcast), f"registry-{broadcast.id}")

    def publisher_resumed(self, broadcast: Broadcast) -> None:
        pass

    def publisher_lost(self, broadcast: Broadcast) -> None:
        pass

    def broadcast_ended(self, broadcast: Broadcast) -> None:
        self._continuations.pop(broadcast.id, None)
        ended = []
        for pid in broadcast.policy.playback_ids:
            held = self._held.get(pid.id)
            if held is not None and held.broadcast is broadcast:
                del self._held[pid.id]
                if held.claimed and not held.lost:
                    ended.append(pid.id)
        if ended:
            self._spawn(self._release(ended, broadcast), f"registry-end-{broadcast.id}")

    # The pipeline's continuation ----------------------------------------------------

    def continuation(self, broadcast: Broadcast) -> Continuation | None:
        """Where another node left this broadcast's playback id off, once per broadcast."""
        found = self._continuations.pop(broadcast.id, None)
        if found is not None:
            self.taken_over += 1
            log.info("continuing after another node stream_id=%s next_msn=%d "
                     "discontinuity_sequence=%d", broadcast.stream_id, found.next_msn,
                     found.discontinuity_sequence)
        return found

    def continuation_pending(self, broadcast: Broadcast) -> bool:
        """Whether this node is still asking where another node left `broadcast` off."""
        return broadcast.id in self._looking

    async def _look_for_continuation(self, broadcast: Broadcast) -> None:
        try:
            await self._find_continuation(broadcast)
        finally:
            self._looking.discard(broadcast.id)

    async def _find_continuation(self, broadcast: Broadcast) -> None:
        pid = broadcast.policy.playback_ids[0].id
        try:
            raw = await self._client.get(self._sequence_key(pid))
        except (RedisError, OSError) as exc:
            self._down(exc, "reading a broadcast's sequence")
            return
        entry = _sequence(raw)
        if entry is None or entry.node == self.node_id or not entry.recent(self._clock(),
                                                                             self.ttl):
            return
        self._continuations[broadcast.id] = Continuation(
            next_msn=entry.msn + 2, discontinuity_sequence=entry.discontinuity,
            date_end=entry.date_end, date_start=entry.date_start)

    # Heartbeat -----------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        while True:
            try:
                await self.beat()
                self._up()
            except (RedisError, OSError) as exc:
                self._down(exc, "renewing this node's entries")
            await asyncio.sleep(self.heartbeat)

    async def beat(self) -> None:
        """Claim or renew every broadcast whose presentation this node serves."""
        now = self._clock()
        ttl_ms = int(self.ttl * 1000)
        work: list[tuple[str, _Held, bool]] = []
        async with self._client.pipeline(transaction=False) as pipe:
            for playback_id, held in self._held.items():
                if held.lost:
                    continue
                presentation = self._presentations.presentation(playback_id)
                if presentation is None or presentation.ended:
                    continue
                policy = held.broadcast.policy
                owner = json.dumps({"node": self.node_id, "url": self.node_url,
                                    "stream": policy.stream_id,
                                    "broadcast": held.broadcast.id})
                if held.claimed:
                    pipe.eval(_RENEW, 1, self._owner_key(playback_id), self.node_id, owner,
                              ttl_ms)
                else:
                    pipe.set(self._owner_key(playback_id), owner, px=ttl_ms)
                msn, discontinuity, date_end = presentation.sequence()
                window = policy.reconnect_window
                pipe.set(self._sequence_key(playback_id), json.dumps({
                    "node": self.node_id, "msn": msn, "discontinuity": discontinuity,
                    "date_end": date_end, "date_start": presentation.segment_date(),
                    "at": now, "window": window, "ended": False,
                }), ex=int(window + SEQUENCE_SLACK))
                work.append((playback_id, held, held.claimed))
            if not work:
                return
            replies = await pipe.execute()
        for index, (playback_id, held, renewing) in enumerate(work):
            if renewing and not replies[index * 2]:
                held.lost = True
                log.warning("broadcast taken over by another node stream_id=%s "
                            "playback_id=%s", held.broadcast.stream_id, playback_id)
            held.claimed = True

    async def _release(self, playback_ids: list[str], broadcast: Broadcast) -> None:
        try:
            for pid in playback_ids:
                await self._client.eval(_RELEASE, 1, self._owner_key(pid), self.node_id)
                raw = await self._client.get(self._sequence_key(pid))
                entry = _sequence(raw)
                if entry is not None and entry.node == self.node_id:
                    await self._client.set(self._sequence_key(pid), json.dumps({
                        "node": self.node_id, "msn": entry.msn, "date_end": entry.date_end,
                        "date_start": entry.date_start,
                        "discontinuity": entry.discontinuity, "at": self._clock(),
                        "window": entry.window, "ended": True}), ex=int(SEQUENCE_SLACK))
        except (RedisError, OSError) as exc:
            self._down(exc, f"releasing broadcast {broadcast.id}")

    # OwnerDirectory (the origin's relay) -------------------------------------------

    async def owner_url(self, playback_id: str) -> str | OwnerUnknown | None:
        now = time.monotonic()
        cached = self._lookups.get(playback_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            owner_raw, sequence_raw = await self._client.mget(
                [self._owner_key(playback_id), self._sequence_key(playback_id)])
        except (RedisError, OSError) as exc:
            self._down(exc, "looking up a broadcast's node")
            return OWNER_UNKNOWN
        found: str | OwnerUnknown | None = None
        owner = _owner(owner_raw)
        if owner is not None and owner.node != self.node_id:
            found = owner.url
        elif owner is not None:
            # This node claimed it (a takeover) and the asker did not find it here yet:
            # held like an unknown owner, never "not live" (a 404 players and edges keep).
            found = OWNER_UNKNOWN
        else:
            sequence = _sequence(sequence_raw)
            if sequence is not None and sequence.recent(self._clock(), self.ttl):
                found = OWNER_UNKNOWN
        if len(self._lookups) > 10_000:
            self._lookups.clear()
        self._lookups[playback_id] = (now + LOOKUP_SECONDS, found)
        return found

    def owner_failed(self, playback_id: str, url: str) -> None:
        self._lookups.pop(playback_id, None)

    async def entry(self, playback_id: str) -> OwnerEntry | None:
        """The registry's owner entry of a playback id, as stored (for tests and the CLI)."""
        return _owner(await self._client.get(self._owner_key(playback_id)))


def _load(raw: object) -> dict[str, Any] | None:
    if not isinstance(raw, bytes) or len(raw) > MAX_ENTRY_BYTES:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _owner(raw: object) -> OwnerEntry | None:
    value = _load(raw)
    if value is None:
        return None
    try:
        entry = OwnerEntry(node=str(value["node"]), url=str(value["url"]),
                           stream=str(value["stream"]), broadcast=str(value["broadcast"]))
    except KeyError:
        return None
    return entry if entry.url.startswith(("http://", "https://")) else None


def _sequence(raw: object) -> SequenceEntry | None:
    value = _load(raw)
    if value is None:
        return None
    try:
        date_end, date_start = value.get("date_end"), value.get("date_start")
        return SequenceEntry(node=str(value["node"]), msn=int(value["msn"]),
                             discontinuity=int(value["discontinuity"]),
                             at=float(value["at"]), window=float(value["window"]),
                             ended=bool(value["ended"]),
                             date_end=None if date_end is None else float(date_end),
                             date_start=None if date_start is None else float(date_start))
    except (KeyError, TypeError, ValueError):
        return None
