"""Sends the webhook outbox: one lane per endpoint, in order, retried with backoff (webhooks).

Each endpoint with pending deliveries gets a lane: one task that sends the oldest
pending delivery, then the next. A failed attempt (not 2xx, a timeout, a refused
connection, a refused target) makes the lane wait (exponential backoff with jitter,
`core.Backoff`) and try the same delivery again, so a receiver that was down gets
everything in order of creation once it is back. A delivery still failing
`retry_for` (24 h) after it was queued is given up (`failed`, still in the log and
redeliverable). Lanes share nothing but the database: each has its own HTTP
connection, every attempt has one deadline (`timeout`) for resolving, connecting,
sending and reading at most `EXCERPT_BYTES` of the answer, so a hanging endpoint
holds up only its own lane, and never the event bus, ingest or the recorder, which
only write outbox rows and call `wake`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from golive import __version__
from golive.core import Backoff, utcnow
from golive.store import AttemptOutcome, PendingDelivery, Store, WebhookTarget
from golive.webhooks.signing import SIGNATURE_HEADER, signature
from golive.webhooks.targets import TargetRefused, resolve_target

log = logging.getLogger(__name__)

EXCERPT_BYTES = 1024
BATCH = 100
# Successful attempts are written to the log this many at a time (failures at once).
FLUSH = 50
# A lane with nothing to send waits this long for more before it ends.
LANE_IDLE = 60.0
PRUNE_EVERY = 3600.0
# How long a node's claim on an endpoint lasts; renewed when less than half is left.
LEASE = 60.0
# Rows another process queued (`golive webhooks redeliver`, another node) are found this often.
SWEEP_EVERY = 30.0
USER_AGENT = f"golive-webhooks/{__version__}"


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How deliveries are attempted (from the `webhook_*` settings)."""

    timeout: float = 10.0
    retry_first: float = 5.0
    retry_longest: float = 1800.0
    retry_for: float = 86400.0
    allow_private: bool = False
    log_retention: float = 7 * 86400.0
    # This node, as the lease on an endpoint names it: stable across restarts of one
    # node (so a restarted node takes its lanes back at once), distinct between nodes.
    node_id: str = "node"


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of sending one delivery once."""

    delivered: bool
    status: int | None
    latency_ms: float
    error: str | None
    excerpt: str | None


class WebhookDispatcher:
    """Owns the lanes. `start()` resumes what a previous run left pending; `wake(ids)`
    after outbox rows are written; `close()` on shutdown (pending rows stay pending)."""

    def __init__(self, store: Store, policy: DeliveryPolicy, *,
                 wall: Callable[[], float] = time.time) -> None:
        self._store = store
        self.policy = policy
        self._wall = wall
        self._lanes: dict[str, _Lane] = {}
        self._closed = False
        self._prune_task: asyncio.Task[None] | None = None
        self.attempts = 0  # every attempt made, for metrics
        self.failures = 0

    async def start(self) -> None:
        self.wake(await self._store.endpoints_with_pending())
        self._prune_task = asyncio.create_task(self._housekeeping(), name="webhook-housekeeping")

    def wake(self, endpoint_ids: Sequence[str]) -> None:
        """Endpoints that have new pending deliveries; never blocks."""
        if self._closed:
            return
        for endpoint_id in endpoint_ids:
            lane = self._lanes.get(endpoint_id)
            if lane is None or lane.ending:
                lane = self._lanes[endpoint_id] = _Lane(self, endpoint_id)
            lane.poke()

    @property
    def lanes(self) -> int:
        return sum(1 for lane in self._lanes.values() if not lane.ending)

    async def close(self) -> None:
        self._closed = True
        tasks = [lane.task for lane in self._lanes.values()]
        if self._prune_task is not None:
            tasks.append(self._prune_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._lanes.clear()

    def _lane_ended(self, lane: _Lane) -> None:
        if self._lanes.get(lane.endpoint_id) is lane:
            del self._lanes[lane.endpoint_id]

    async def _housekeeping(self) -> None:
        pruned_at = -PRUNE_EVERY
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                self.wake(await self._store.endpoints_with_pending())
                if time.monotonic() - pruned_at >= PRUNE_EVERY:
                    pruned_at = time.monotonic()
                    cutoff = utcnow() - timedelta(seconds=self.policy.log_retention)
                    pruned = await self._store.prune_deliveries(cutoff)
                    if pruned:
                        log.info("webhook deliveries pruned count=%d", pruned)
            except Exception:
                log.exception("webhook housekeeping failed")

    # One attempt ----------------------------------------------------------------------

    async def send(self, client: httpx.AsyncClient, target: WebhookTarget,
                   delivery: PendingDelivery) -> Attempt:
        started = time.monotonic()
        status: int | None = None
        excerpt: bytearray = bytearray()
        error: str | None = None
        try:
            async with asyncio.timeout(self.policy.timeout):
                resolved = await resolve_target(target.url,
                                                allow_private=self.policy.allow_private)
                body = delivery.body.encode()
                headers = {
                    "host": resolved.url.netloc.decode("ascii"),
                    "content-type": "application/json",
                    "user-agent": USER_AGENT,
                    "accept-encoding": "identity",
                    SIGNATURE_HEADER: signature(target.secret, int(self._wall()), body),
                }
                extensions = {"sni_hostname": resolved.host} \
                    if resolved.url.scheme == "https" else {}
                request = client.build_request("POST", resolved.connect_url(), content=body,
                                               headers=headers, extensions=extensions)
                response = await client.send(request, stream=True)
                try:
                    status = response.status_code
                    async for chunk in response.aiter_raw():
                        excerpt += chunk[: EXCERPT_BYTES - len(excerpt)]
                        if len(excerpt) >= EXCERPT_BYTES:
                            break
                finally:
                    await response.aclose()
        except TargetRefused as refused:
            error = f"refused: {refused}"
        except TimeoutError:
            if status is None:
                error = f"no answer within {self.policy.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency_ms = (time.monotonic() - started) * 1000
        delivered = status is not None and 200 <= status < 300
        if status is not None and not delivered and error is None:
            error = f"answered {status}"
        return Attempt(delivered, status, round(latency_ms, 1), error,
                       excerpt.decode("utf-8", "replace") if status is not None else None)


class _Lane:
    """One endpoint's deliveries, sent one at a time in order of creation."""

    def __init__(self, dispatcher: WebhookDispatcher, endpoint_id: str) -> None:
        self._dispatcher = dispatcher
        self.endpoint_id = endpoint_id
        self._poked = asyncio.Event()
        self.ending = False
        self._lease_until = 0.0  # time.monotonic() when this node's claim runs out
        self._flush: asyncio.Future[None] | None = None
        policy = dispatcher.policy
        self._backoff = Backoff(first=policy.retry_first, longest=policy.retry_longest,
                                jitter=0.25)
        self.task = asyncio.create_task(self._run(), name=f"webhook-lane-{endpoint_id}")

    def poke(self) -> None:
        self._poked.set()

    async def _run(self) -> None:
        client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, timeout=None,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        try:
            while True:
                try:
                    if not await self._round(client):
                        break
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database away: retry, the rows are still pending
                    delay = self._backoff.next_delay()
                    log.exception("webhook lane failed endpoint_id=%s retry_in=%.1fs",
                                  self.endpoint_id, delay)
                    await asyncio.sleep(delay)
        finally:
            self.ending = True
            self._dispatcher._lane_ended(self)
            with contextlib.suppress(Exception):
                await client.aclose()
            if self._flush is not None:
                with contextlib.suppress(Exception):
                    await self._flush
            if self._lease_until:
                with contextlib.suppress(Exception):
                    await self._dispatcher._store.release_webhook_lane(
                        self.endpoint_id, self._dispatcher.policy.node_id)

    async def _hold_lease(self) -> bool:
        """Claim or renew this node's lease on the endpoint when half of it is gone."""
        if self._lease_until - time.monotonic() > LEASE / 2:
            return True
        now = utcnow()
        claimed = await self._dispatcher._store.claim_webhook_lane(
            self.endpoint_id, self._dispatcher.policy.node_id, now=now,
            until=now + timedelta(seconds=LEASE))
        self._lease_until = time.monotonic() + LEASE if claimed else 0.0
        if not claimed:
            log.info("webhook lane held by another node endpoint_id=%s", self.endpoint_id)
        return claimed

    async def _round(self, client: httpx.AsyncClient) -> bool:
        """Send what is pending until a failure or the end; False when the lane should end."""
        store = self._dispatcher._store
        policy = self._dispatcher.policy
        self._poked.clear()
        target = await store.webhook_target(self.endpoint_id)
        if target is None or not target.enabled:
            return False  # deleted or disabled: its pending rows wait (or went with it)
        if not await self._hold_lease():
            return False  # another node sends these; the sweep looks again later
        retry_for = timedelta(seconds=policy.retry_for)
        given_up = await store.give_up_before(self.endpoint_id, utcnow() - retry_for)
        if given_up:
            log.warning("webhook deliveries given up endpoint_id=%s count=%d after=%gs",
                        self.endpoint_id, given_up, policy.retry_for)
        batch = await store.pending_deliveries(self.endpoint_id, limit=BATCH)
        if not batch:
            try:
                await asyncio.wait_for(self._poked.wait(), LANE_IDLE)
            except TimeoutError:
                self.ending = True
                return False
            return True
        done: list[AttemptOutcome] = []  # written together: one transaction per FLUSH
        try:
            for delivery in batch:
                if not await self._hold_lease():
                    return False
                attempt = await self._dispatcher.send(client, target, delivery)
                self._dispatcher.attempts += 1
                now = utcnow()
                if attempt.delivered:
                    self._backoff.reset()
                    done.append(self._outcome(delivery, attempt, now, give_up=False,
                                              retry_at=None))
                    if len(done) >= FLUSH:
                        await store.record_attempts(done)
                        done.clear()
                    continue
                self._dispatcher.failures += 1
                delay = self._backoff.next_delay()
                retry_at = now + timedelta(seconds=delay)
                give_up = retry_at - delivery.created_at > retry_for
                done.append(self._outcome(delivery, attempt, now, give_up=give_up,
                                          retry_at=retry_at))
                await store.record_attempts(done)
                done.clear()
                log.info("webhook delivery failed endpoint_id=%s delivery_id=%d attempt=%d "
                         "error=%s retry_in=%.1fs", self.endpoint_id, delivery.id,
                         delivery.attempts + 1, attempt.error, delay)
                if not give_up:
                    await asyncio.sleep(delay)
                    return True  # the same (oldest) delivery first again
        finally:
            # Sent but not yet written (a crash here means a duplicate, never a loss). The
            # write outlives a cancellation (close), so a clean stop sends nothing twice.
            if done:
                self._flush = asyncio.ensure_future(store.record_attempts(list(done)))
                await asyncio.shield(self._flush)
        return True

    @staticmethod
    def _outcome(delivery: PendingDelivery, attempt: Attempt, now: datetime, *,
                 give_up: bool, retry_at: datetime | None) -> AttemptOutcome:
        return AttemptOutcome(
            delivery_id=delivery.id, attempt=delivery.attempts + 1, at=now,
            delivered=attempt.delivered, give_up=give_up, status=attempt.status,
            latency_ms=attempt.latency_ms, error=attempt.error, excerpt=attempt.excerpt,
            next_attempt_at=retry_at,
        )
