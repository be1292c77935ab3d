"""Webhook endpoints and their delivery outbox (control plane).

An endpoint is a URL, the event types it wants and a signing secret. When an
event is recorded (`BroadcastRepository.record_events`), `queue_deliveries` writes
one `pending` delivery per enabled endpoint that wants it, in the same transaction
as the event's own row: the body is rendered then, once, so a crash before the
delivery loses nothing and every attempt sends the same bytes. The delivery worker
(`golive.webhooks`) walks each endpoint's pending rows in order and writes each
attempt's outcome back onto the row, which is then the endpoint's delivery log. On several nodes (PostgreSQL), a lease on the endpoint row
(`claim_webhook_lane`) keeps one node sending each endpoint's rows.

Body shape (Mux's): `type`, `id` (one per event, the same for every endpoint and
every attempt), `created_at`, `object` `{type, id}` and `data`. The object's type
is the event's family (`live_stream` of `live_stream.active`); its id is
`data["<family>_id"]` when the event carries one (`asset_id` of `asset.ready`),
else the stream id.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from golive.core import Event, random_id, utcnow
from golive.store.db import Tables, rowcount
from golive.store.models import WebhookDelivery, WebhookEndpoint
from golive.store.records import WebhookDeliveryRecord, WebhookEndpointRecord
from golive.store.validation import check_bool, check_limit

MAX_URL_LENGTH = 2000
MAX_EVENT_TYPES = 50
MAX_EXCERPT_CHARS = 1024
MAX_ERROR_CHARS = 300
# Event families of the public contract; an endpoint names types of these, or `family.*`.
EVENT_FAMILIES = ("live_stream", "recording", "asset", "alert")
_EVENT_TYPE = re.compile(r"([a-z_]{1,32})\.([a-z_]{1,32}|\*)")


def check_event_types(value: object) -> tuple[str, ...]:
    """Event type names (`live_stream.active`) or wildcards (`asset.*`); empty: every event."""
    if not isinstance(value, list | tuple):
        raise ValueError("events must be a list of event types")
    if len(value) > MAX_EVENT_TYPES:
        raise ValueError(f"events may name at most {MAX_EVENT_TYPES} event types")
    clean: set[str] = set()
    for name in value:
        match = _EVENT_TYPE.fullmatch(name) if isinstance(name, str) else None
        if match is None or match.group(1) not in EVENT_FAMILIES:
            raise ValueError(
                f"events: {name!r} is not an event type; use names like live_stream.active "
                f"or a family wildcard ({', '.join(f + '.*' for f in EVENT_FAMILIES)})"
            )
        clean.add(name)
    return tuple(sorted(clean))


def check_url(value: object) -> str:
    """An absolute http(s) URL; where it points is checked by `golive.webhooks`."""
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s]+", value, re.I):
        raise ValueError("url must be an absolute http:// or https:// URL")
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"url must be at most {MAX_URL_LENGTH} characters")
    return value


def wants(event_types: Sequence[str], event_type: str) -> bool:
    if not event_types:
        return True
    family = event_type.split(".", 1)[0]
    return event_type in event_types or f"{family}.*" in event_types


def render_event(event: Event, event_id: str) -> str:
    """The webhook body of `event`: compact UTF-8 JSON, Mux-shaped."""
    family = str(event.type).split(".", 1)[0]
    data: dict[str, Any] = {"stream_id": event.stream_id, "broadcast_id": event.broadcast_id}
    data.update(event.data)
    object_id = data.get(f"{family}_id")
    return json.dumps(
        {
            "type": str(event.type),
            "id": event_id,
            "created_at": event.at.isoformat(),
            "object": {
                "type": family,
                "id": object_id if isinstance(object_id, str) else event.stream_id,
            },
            "data": data,
        },
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )


def _endpoint_record(row: WebhookEndpoint) -> WebhookEndpointRecord:
    return WebhookEndpointRecord(
        id=row.id,
        url=row.url,
        event_types=tuple(row.event_types or ()),
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _delivery_record(row: WebhookDelivery) -> WebhookDeliveryRecord:
    return WebhookDeliveryRecord(
        id=int(row.id),
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        created_at=row.created_at,
        state=row.state,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        response_status=row.response_status,
        latency_ms=row.latency_ms,
        error=row.error,
        response_excerpt=row.response_excerpt,
        redelivery_of=None if row.redelivery_of is None else int(row.redelivery_of),
    )


_deliveries = WebhookDelivery.__table__
assert isinstance(_deliveries, Table)
_QUEUE_DELIVERY = insert(_deliveries)


async def queue_deliveries(session: AsyncSession, events: Sequence[Event]) -> list[str]:
    """Write the outbox rows of `events` in `session`'s transaction; the endpoints queued."""
    endpoints = (
        await session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
                WebhookEndpoint.enabled.is_(True)
            )
        )
    ).all()
    if not endpoints:
        return []
    queued: dict[str, None] = {}
    rows: list[dict[str, object]] = []
    now = utcnow()
    for event in events:
        chosen = [endpoint_id for endpoint_id, types in endpoints
                  if wants(tuple(types or ()), str(event.type))]
        if not chosen:
            continue
        event_id = random_id("evt")
        body = render_event(event, event_id)
        for endpoint_id in chosen:
            rows.append({
                "endpoint_id": endpoint_id, "event_id": event_id, "event_type": str(event.type),
                "body": body, "created_at": now, "state": "pending", "attempts": 0,
                "next_attempt_at": now,
            })
            queued[endpoint_id] = None
    if rows:
        # Core executemany, in order (ids follow creation): a fraction of the ORM's cost
        # per row, which at 1,000 events/s is most of what recording them costs.
        await session.execute(_QUEUE_DELIVERY, rows)
    return list(queued)


_RECORD_ATTEMPT = (
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in (
        "state", "attempts", "last_attempt_at", "response_status", "latency_ms", "error",
        "response_excerpt", "next_attempt_at")})
)


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """What the worker needs to send one delivery."""

    id: int
    event_id: str
    body: str
    created_at: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one attempt of a delivery came to, as the delivery log keeps it."""

    delivery_id: int
    attempt: int  # 1 for the first
    at: datetime
    delivered: bool
    give_up: bool
    status: int | None
    latency_ms: float | None
    error: str | None
    excerpt: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """An endpoint as the worker sends to it: URL, secret, whether it is on."""

    id: str
    url: str
    secret: str = field(repr=False)
    enabled: bool


class WebhookRepository(Tables):
    """Webhook endpoints, their outbox and delivery log."""

    # Endpoints ----------------------------------------------------------------------------

    async def create_webhook(
        self, *, url: str, event_types: Iterable[str] = (), enabled: bool = True
    ) -> tuple[WebhookEndpointRecord, str]:
        """A new endpoint and its signing secret (returned here and never again)."""
        now = utcnow()
        secret = "whsec_" + secrets.token_urlsafe(32)
        row = WebhookEndpoint(
            id=random_id("whk"), url=check_url(url),
            event_types=list(check_event_types(list(event_types))),
            enabled=check_bool("enabled", enabled), secret=secret,
            created_at=now, updated_at=now,
        )
        async with self._write.begin() as session:
            session.add(row)
            await session.flush()
            record = _endpoint_record(row)
        return record, secret

    async def list_webhooks(self) -> list[WebhookEndpointRecord]:
        async with self._read() as session:
            rows = (await session.scalars(
                select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
            )).all()
            return [_endpoint_record(row) for row in rows]

    async def get_webhook(self, webhook_id: str) -> WebhookEndpointRecord | None:
        async with self._read() as session:
            row = await session.get(WebhookEndpoint, webhook_id)
            return None if row is None else _endpoint_record(row)

    async def update_webhook(self, webhook_id: str, *, url: str | None = None,
                             event_types: Iterable[str] | None = None,
                             enabled: bool | None = None) -> WebhookEndpointRecord | None:
        async with self._write.begin() as session:
            row = await session.get(WebhookEndpoint, webhook_id)
            if row is None:
                return None
            if url is not None:
                row.url = check_url(url)
            if event_types is not None:
                row.event_types = list(check_event_types(list(event_types)))
            if enabled is not None:
                row.enabled = check_bool("enabled", enabled)
            row.updated_at = utcnow()
            await session.flush()
            return _endpoint_record(row)

    async def delete_webhook(self, webhook_id: str) -> bool:
        """Delete an endpoint with its outbox and log; False when there is none."""
        async with self._write.begin() as session:
            result = await session.execute(
                delete(WebhookEndpoint).where(WebhookEndpoint.id == webhook_id))
            return rowcount(result) > 0

    async def webhook_target(self, webhook_id: str) -> WebhookTarget | None:
        async with self._read() as session:
            row = await session.get(WebhookEndpoint, webhook_id)
            if row is None:
                return None
            return WebhookTarget(row.id, row.url, row.secret, row.enabled)

    # Outbox -------------------------------------------------------------------------------

    async def claim_webhook_lane(self, webhook_id: str, owner: str, *, now: datetime,
                                 until: datetime) -> bool:
        """Make `owner` the one sender of the endpoint's deliveries until `until`; False when
        another node holds an unexpired lease (so two nodes never send the same rows)."""
        async with self._write.begin() as session:
            result = await session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == webhook_id,
                       or_(WebhookEndpoint.lease_owner.is_(None),
                           WebhookEndpoint.lease_owner == owner,
                           WebhookEndpoint.lease_until.is_(None),
                           WebhookEndpoint.lease_until < now))
                .values(lease_owner=owner, lease_until=until)
            )
            return rowcount(result) == 1

    async def release_webhook_lane(self, webhook_id: str, owner: str) -> None:
        async with self._write.begin() as session:
            await session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == webhook_id, WebhookEndpoint.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    async def endpoints_with_pending(self) -> list[str]:
        """Endpoints that have deliveries waiting (what the worker resumes after a restart)."""
        async with self._read() as session:
            rows = await session.scalars(
                select(WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.state == "pending")
                .distinct()
            )
            return sorted(rows.all())

    async def pending_deliveries(self, webhook_id: str, *, after: int = 0,
                                 limit: int = 100) -> list[PendingDelivery]:
        """An endpoint's pending deliveries in order of creation, after delivery id `after`."""
        check_limit(limit)
        async with self._read() as session:
            rows = (await session.execute(
                select(WebhookDelivery.id, WebhookDelivery.event_id, WebhookDelivery.body,
                       WebhookDelivery.created_at, WebhookDelivery.attempts)
                .where(WebhookDelivery.state == "pending",
                       WebhookDelivery.endpoint_id == webhook_id,
                       WebhookDelivery.id > after)
                .order_by(WebhookDelivery.id)
                .limit(limit)
            )).all()
            return [PendingDelivery(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    async def record_attempts(self, outcomes: Sequence[AttemptOutcome]) -> None:
        """Attempts' outcomes, in one transaction; a delivery ends `delivered`, or `failed`
        when `give_up`."""
        if not outcomes:
            return
        rows = [{
            "b_id": o.delivery_id,
            "b_state": "delivered" if o.delivered else ("failed" if o.give_up else "pending"),
            "b_attempts": o.attempt,
            "b_last_attempt_at": o.at,
            "b_response_status": o.status,
            "b_latency_ms": o.latency_ms,
            "b_error": None if o.error is None else o.error[:MAX_ERROR_CHARS],
            "b_response_excerpt": None if o.excerpt is None else o.excerpt[:MAX_EXCERPT_CHARS],
            "b_next_attempt_at": o.next_attempt_at if not (o.delivered or o.give_up) else None,
        } for o in outcomes]
        async with self._write.begin() as session:
            # Core executemany: a row deleted meanwhile (its endpoint went) is just skipped.
            await session.execute(_RECORD_ATTEMPT, rows)

    async def give_up_before(self, webhook_id: str, cutoff: datetime) -> int:
        """Fail an endpoint's pending deliveries created before `cutoff` (retried long enough)."""
        async with self._write.begin() as session:
            result = await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.endpoint_id == webhook_id,
                       WebhookDelivery.state == "pending",
                       WebhookDelivery.created_at < cutoff)
                .values(state="failed", next_attempt_at=None)
            )
            return rowcount(result)

    async def prune_deliveries(self, before: datetime) -> int:
        """Forget finished deliveries created before `before` (the log's retention)."""
        async with self._write.begin() as session:
            result = await session.execute(
                delete(WebhookDelivery).where(WebhookDelivery.state != "pending",
                                              WebhookDelivery.created_at < before))
            return rowcount(result)

    # Delivery log -------------------------------------------------------------------------

    async def list_deliveries(self, webhook_id: str, *, limit: int = 100,
                              before: int | None = None,
                              state: str | None = None) -> list[WebhookDeliveryRecord]:
        """An endpoint's deliveries, newest first; `before` is the last delivery id seen."""
        check_limit(limit)
        query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == webhook_id)
        if before is not None:
            query = query.where(WebhookDelivery.id < before)
        if state is not None:
            query = query.where(WebhookDelivery.state == state)
        async with self._read() as session:
            rows = (await session.scalars(
                query.order_by(WebhookDelivery.id.desc()).limit(limit))).all()
            return [_delivery_record(row) for row in rows]

    async def get_delivery(self, webhook_id: str,
                           delivery_id: int) -> WebhookDeliveryRecord | None:
        async with self._read() as session:
            row = await session.get(WebhookDelivery, delivery_id)
            if row is None or row.endpoint_id != webhook_id:
                return None
            return _delivery_record(row)

    async def redeliver(self, webhook_id: str,
                        delivery_id: int) -> WebhookDeliveryRecord | None:
        """Queue the same event (same body and event id) again as a new delivery."""
        now = utcnow()
        async with self._write.begin() as session:
            row = await session.get(WebhookDelivery, delivery_id)
            if row is None or row.endpoint_id != webhook_id:
                return None
            copy = WebhookDelivery(
                endpoint_id=row.endpoint_id, event_id=row.event_id, event_type=row.event_type,
                body=row.body, created_at=now, state="pending", attempts=0,
                next_attempt_at=now, redelivery_of=row.id,
            )
            session.add(copy)
            await session.flush()
            return _delivery_record(copy)
