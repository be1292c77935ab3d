"""Sends the webhook outbox: one lane per endpoint, in order, retried with backoff (webhooks).

Each endpoint with pending deliveries gets a lane: one task that walks its pending
deliveries in order of creation. A first attempt starts as soon as the oldest
request in flight is fewer than `window` places before it (so at most `window` are in
flight, over as many keep-alive connections), so first
attempts start in order of creation and one can arrive before an earlier one still
in flight, never before one `window` places earlier (`window` 1: strictly one at a
time). A failed attempt (not 2xx, a timeout, a refused connection, a refused target)
stops new requests; once those in flight are answered the lane waits (exponential
backoff with jitter, `core.Backoff`) and sends what failed again, oldest first and
one at a time: a delivery tried before is always sent alone, after everything before
it, and after a failure the lane sends everything one at a time (those queued during
the outage too) until it has caught up, so a receiver that was down gets its backlog
in order of creation once it is back; the window opens again once nothing is pending. A delivery still failing `retry_for` (24 h) after it was queued
is given up (`failed`, still in the log and redeliverable). Lanes share nothing but
the database: each has its own connections, every attempt has one deadline
(`timeout`) for resolving, connecting, sending and reading at most `EXCERPT_BYTES`
of the answer, so a hanging endpoint holds up only its own lane, and never the
event bus, ingest or the recorder, which only write outbox rows and call `wake`.
Outcomes are written `FLUSH` at a time (failures at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
import yarl

from golive import __version__
from golive.core import Backoff, utcnow
from golive.store import AttemptOutcome, PendingDelivery, Store, WebhookTarget
from golive.webhooks.signing import SIGNATURE_HEADER, signature
from golive.webhooks.targets import ResolvedTarget, TargetRefused, resolve_target

log = logging.getLogger(__name__)

EXCERPT_BYTES = 1024
BATCH = 200
# Successful attempts are written to the log this many at a time (failures at once).
FLUSH = 100
# A lane with nothing to send waits this long for more before it ends.
LANE_IDLE = 60.0
PRUNE_EVERY = 3600.0
# How long a node's claim on an endpoint lasts; renewed when less than half is left.
LEASE = 60.0
# A lane resolves its endpoint's host (and checks the addresses) at most this often, and
# reads the endpoint (URL, secret, enabled) again after this long: a change, a disable
# or a delete takes effect within it.
RESOLVE_EVERY = 1.0
TARGET_EVERY = 1.0
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
    # Requests one endpoint may have in flight (first attempts only; a retry goes alone).
    window: int = 8
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

    async def resolve(self, target: WebhookTarget) -> _Resolved:
        """Where to connect for `target` (raises `TargetRefused`)."""
        resolved = await resolve_target(target.url, allow_private=self.policy.allow_private)
        return _Resolved(resolved, time.monotonic())

    async def send(self, session: aiohttp.ClientSession, target: WebhookTarget,
                   delivery: PendingDelivery, *,
                   resolved: _Resolved | None = None) -> Attempt:
        """One attempt of `delivery`; every way it can fail is an `Attempt`, not an error.
        `resolved`: `target`'s URL as `resolve_target` checked it moments ago (else now)."""
        started = time.monotonic()
        status: int | None = None
        excerpt = bytearray()
        error: str | None = None
        try:
            async with asyncio.timeout(self.policy.timeout):
                if resolved is None:
                    resolved = await self.resolve(target)
                https = resolved.target.url.scheme == "https"
                body = delivery.body.encode()
                headers = {
                    "Host": resolved.netloc,
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                    "Accept-Encoding": "identity",
                    SIGNATURE_HEADER: signature(target.secret, int(self._wall()), body),
                }
                # Connect to the address that was checked; TLS still names (SNI) and
                # verifies the URL's host.
                async with session.post(
                    yarl.URL(resolved.connect_to, encoded=True), data=body,
                    headers=headers, allow_redirects=False,
                    server_hostname=resolved.target.host if https else None,
                ) as response:
                    status = response.status
                    # At most EXCERPT_BYTES of the answer; the rest is never read (the
                    # connection is then closed rather than reused).
                    while len(excerpt) < EXCERPT_BYTES:
                        chunk = await response.content.read(EXCERPT_BYTES - len(excerpt))
                        if not chunk:
                            break
                        excerpt += chunk
        except TargetRefused as refused:
            error = f"refused: {refused}"
        except TimeoutError:
            if status is None:
                error = f"no answer within {self.policy.timeout:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency_ms = (time.monotonic() - started) * 1000
        delivered = status is not None and 200 <= status < 300
        if status is not None and not delivered and error is None:
            error = f"answered {status}"
        return Attempt(delivered, status, round(latency_ms, 1), error,
                       excerpt.decode("utf-8", "replace") if status is not None else None)


def new_session(connections: int) -> aiohttp.ClientSession:
    """The HTTP client of one lane: at most `connections` keep-alive connections, no
    environment proxies, no cookies, no decompression, an answer's head bounded (128
    fields of at most 8 KiB); redirects are refused per request, deadlines set by `send`."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, use_dns_cache=False),
        cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None), skip_auto_headers=("Accept",),
        max_line_size=8190, max_field_size=8190, max_headers=128,
    )


class _Resolved:
    """A checked target, with what each request needs of it computed once."""

    __slots__ = ("at", "connect_to", "netloc", "target")

    def __init__(self, target: ResolvedTarget, at: float) -> None:
        self.target = target
        self.at = at  # time.monotonic() when it was resolved
        self.connect_to = str(target.connect_url())
        self.netloc = target.url.netloc.decode("ascii")


class _Lane:
    """One endpoint's deliveries in order of creation: first attempts over a window of
    `policy.window` requests in flight, a delivery tried before alone."""

    def __init__(self, dispatcher: WebhookDispatcher, endpoint_id: str) -> None:
        self._dispatcher = dispatcher
        self.endpoint_id = endpoint_id
        self._poked = asyncio.Event()
        self.ending = False
        self._lease_until = 0.0  # time.monotonic() when this node's claim runs out
        self._flush: asyncio.Future[None] | None = None
        self._target: WebhookTarget | None = None
        self._target_at = 0.0
        policy = dispatcher.policy
        self._window = max(1, policy.window)
        # Set by a failure, cleared once the lane caught up: until then one at a time.
        self._recovering = False
        self._backoff = Backoff(first=policy.retry_first, longest=policy.retry_longest,
                                jitter=0.25)
        self.task = asyncio.create_task(self._run(), name=f"webhook-lane-{endpoint_id}")

    def poke(self) -> None:
        self._poked.set()

    async def _run(self) -> None:
        # A keep-alive connection per request in flight; a request waits for a free one in
        # the order it was made (aiohttp's connector serves waiters first come, first served).
        session = new_session(self._window)
        try:
            while True:
                try:
                    if not await self._round(session):
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
                await session.close()
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

    async def _round(self, session: aiohttp.ClientSession) -> bool:
        """Send what is pending until a failure or the end; False when the lane should end."""
        store = self._dispatcher._store
        policy = self._dispatcher.policy
        self._poked.clear()
        if self._target is None or time.monotonic() - self._target_at >= TARGET_EVERY:
            self._target = await store.webhook_target(self.endpoint_id)
            self._target_at = time.monotonic()
        target = self._target
        if target is None or not target.enabled:
            return False  # deleted or disabled: its pending rows wait (or went with it)
        if not await self._hold_lease():
            return False  # another node sends these; the sweep looks again later
        retry_for = timedelta(seconds=policy.retry_for)
        batch = await store.pending_deliveries(self.endpoint_id, limit=BATCH)
        if batch and batch[0].created_at < utcnow() - retry_for:
            # Only a lane that kept failing has deliveries this old (ids follow creation).
            given_up = await store.give_up_before(self.endpoint_id, utcnow() - retry_for)
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
        window = _Window(self._dispatcher, session, target)
        leased = True
        retry_in: float | None = None
        following: asyncio.Future[list[PendingDelivery]] | None = None
        try:
            while batch and leased and not window.failed:
                if len(batch) == BATCH:
                    # Behind: the rows after this batch are read while it is sent (those in
                    # flight are still pending in the database: read on past them).
                    following = asyncio.ensure_future(store.pending_deliveries(
                        self.endpoint_id, after=batch[-1].id, limit=BATCH))
                for delivery in batch:
                    # A delivery tried before goes alone: once all before it are answered,
                    # and none after it before it is. A failing endpoint gets one request
                    # at a time, oldest first, so once it is back it receives what waited
                    # in order of creation.
                    alone = delivery.attempts > 0 or self._recovering
                    # In flight: fewer than `window`, and none `window` places or more
                    # earlier (a slow request holds back those after it).
                    while window.in_flight and (alone or window.span() >= self._window):
                        await window.collect()
                    if window.failed:
                        break  # nothing more until the failed ones went through
                    if len(window.done) >= FLUSH:
                        await self._write_delivered(window)
                    if not await self._hold_lease():
                        leased = False
                        break
                    await window.start(delivery)
                    if alone:
                        await window.collect()  # and nothing after it before it is answered
                else:
                    # Caught up (no read ahead): the next round reads what came meanwhile.
                    batch = []
                    if following is not None:
                        batch, following = await following, None
                    elif not window.failed:
                        self._recovering = False
            while window.in_flight:
                await window.collect()
        finally:
            if following is not None:
                following.cancel()
                with contextlib.suppress(BaseException):
                    await following
            # Sent but not yet written (a crash here means a duplicate, never a loss). The
            # write outlives a cancellation (close), so a clean stop sends nothing twice.
            await window.cancel()
            if self._flush is not None:
                try:
                    await asyncio.shield(self._flush)
                except Exception:  # those deliveries stay pending: sent again, never lost
                    log.exception("webhook outcomes not written endpoint_id=%s",
                                  self.endpoint_id)
            if window.delivered:
                self._backoff.reset()
            outcomes = list(window.done)
            if window.failed:
                self._recovering = True
                retry_in, failed = self._failed(window.failed)
                outcomes += failed
            if outcomes:
                self._flush = asyncio.ensure_future(store.record_attempts(outcomes))
                await asyncio.shield(self._flush)
        if retry_in is not None:
            await asyncio.sleep(retry_in)  # then the oldest failed delivery again, alone
        return leased

    async def _write_delivered(self, window: _Window) -> None:
        """Write what was delivered while sending goes on: one write at a time, waited for
        only when the database falls `FLUSH` * 4 behind."""
        if self._flush is not None and not self._flush.done():
            if len(window.done) >= 4 * FLUSH:
                await asyncio.shield(self._flush)
            return
        if self._flush is not None:
            self._flush.result()  # a failed write ends the round (the rows stay pending)
        outcomes, window.done = window.done, []
        self._flush = asyncio.ensure_future(
            self._dispatcher._store.record_attempts(outcomes))

    def _failed(self, failed: list[tuple[PendingDelivery, Attempt, datetime]]
                ) -> tuple[float | None, list[AttemptOutcome]]:
        """The failed attempts' outcomes, each to be retried after one backoff delay (none:
        every one of them is given up)."""
        self._dispatcher.failures += len(failed)
        delay = self._backoff.next_delay()
        retry_for = timedelta(seconds=self._dispatcher.policy.retry_for)
        outcomes: list[AttemptOutcome] = []
        retried = False
        for delivery, attempt, at in failed:
            retry_at = at + timedelta(seconds=delay)
            give_up = retry_at - delivery.created_at > retry_for
            retried = retried or not give_up
            outcomes.append(_outcome(delivery, attempt, at, give_up=give_up,
                                     retry_at=retry_at))
            log.info("webhook delivery failed endpoint_id=%s delivery_id=%d attempt=%d "
                     "error=%s retry_in=%.1fs", self.endpoint_id, delivery.id,
                     delivery.attempts + 1, attempt.error, delay)
        return (delay if retried else None), outcomes


class _Window:
    """One round's requests in flight (each its own task, started in order of creation)
    and what came of those answered."""

    def __init__(self, dispatcher: WebhookDispatcher, session: aiohttp.ClientSession,
                 target: WebhookTarget) -> None:
        self._dispatcher = dispatcher
        self._session = session
        self._target = target
        self.in_flight: dict[asyncio.Task[Attempt], PendingDelivery] = {}
        self._places: dict[asyncio.Task[Attempt], int] = {}  # order of start, per request
        self._started = 0
        self.done: list[AttemptOutcome] = []  # delivered, not yet written
        self.failed: list[tuple[PendingDelivery, Attempt, datetime]] = []
        self.delivered = False
        self._answered = asyncio.Event()
        self._resolved: _Resolved | None = None

    async def start(self, delivery: PendingDelivery) -> None:
        task = asyncio.create_task(self._dispatcher.send(
            self._session, self._target, delivery, resolved=await self._resolve()))
        task.add_done_callback(lambda _task: self._answered.set())
        self.in_flight[task] = delivery
        self._places[task] = self._started
        self._started += 1

    def span(self) -> int:
        """Places from the oldest request in flight to the next one to start (0: none)."""
        return self._started - min(self._places.values()) if self._places else 0

    async def _resolve(self) -> _Resolved | None:
        """The target as checked at most `RESOLVE_EVERY` ago; None when that failed (each
        attempt then resolves by itself, and fails saying why)."""
        resolved = self._resolved
        if resolved is None or time.monotonic() - resolved.at >= RESOLVE_EVERY:
            try:
                async with asyncio.timeout(self._dispatcher.policy.timeout):
                    resolved = self._resolved = await self._dispatcher.resolve(self._target)
            except (TargetRefused, TimeoutError):
                resolved = self._resolved = None
        return resolved

    async def collect(self) -> None:
        """Wait for at least one request in flight to be answered."""
        while not any(task.done() for task in self.in_flight):
            self._answered.clear()
            await self._answered.wait()
        self._collect_finished()

    async def cancel(self) -> None:
        """Stop what is still in flight (its deliveries stay pending)."""
        for task in self.in_flight:
            task.cancel()
        await asyncio.gather(*self.in_flight, return_exceptions=True)
        with contextlib.suppress(Exception):
            self._collect_finished()

    def _collect_finished(self) -> None:
        finished = [task for task in self.in_flight if task.done()]
        now = utcnow()
        error: BaseException | None = None
        for task in finished:
            delivery = self.in_flight.pop(task)
            del self._places[task]
            if task.cancelled():
                continue
            if (exc := task.exception()) is not None:
                error = error or exc  # a bug, not an answer: the delivery stays pending
                continue
            attempt = task.result()
            self._dispatcher.attempts += 1
            if attempt.delivered:
                self.delivered = True
                self.done.append(_outcome(delivery, attempt, now, give_up=False,
                                          retry_at=None))
            else:
                self.failed.append((delivery, attempt, now))
        if error is not None:
            raise error


def _outcome(delivery: PendingDelivery, attempt: Attempt, now: datetime, *,
             give_up: bool, retry_at: datetime | None) -> AttemptOutcome:
    return AttemptOutcome(
        delivery_id=delivery.id, attempt=delivery.attempts + 1, at=now,
        delivered=attempt.delivered, give_up=give_up, status=attempt.status,
        latency_ms=attempt.latency_ms, error=attempt.error, excerpt=attempt.excerpt,
        next_attempt_at=retry_at,
    )
