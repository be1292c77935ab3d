"""The webhook outbox in the store: rows written with the event, what each endpoint wants,
a deleted stream's last event, the delivery log's bounds."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from golive.core import Event, EventType, utcnow
from golive.store import AttemptOutcome, Store


async def test_outbox_rows_are_written_with_the_events(store: Store) -> None:
    every, _ = await store.create_webhook(url="http://93.184.215.14/all")
    assets, _ = await store.create_webhook(url="http://93.184.215.14/a", event_types=["asset.*"])
    off, _ = await store.create_webhook(url="http://93.184.215.14/off", enabled=False)
    stream, _ = await store.create_stream(name="s")
    queued = await store.record_events([
        Event(EventType.LIVE_STREAM_ACTIVE, stream.id, broadcast_id="bc_1"),
        Event(EventType.LIVE_STREAM_IDLE, stream.id),
    ])
    assert queued == [every.id]
    pending = await store.pending_deliveries(every.id)
    assert [json.loads(p.body)["type"] for p in pending] == ["live_stream.active",
                                                              "live_stream.idle"]
    body = json.loads(pending[0].body)
    assert body["object"] == {"type": "live_stream", "id": stream.id}
    assert body["data"]["broadcast_id"] == "bc_1" and body["id"] == pending[0].event_id
    assert await store.pending_deliveries(assets.id) == []
    assert await store.pending_deliveries(off.id) == []
    assert await store.endpoints_with_pending() == [every.id]
    assert len(await store.list_events(stream.id)) == 2


async def test_a_deleted_streams_last_event_still_goes_to_webhooks(store: Store) -> None:
    hook, _ = await store.create_webhook(url="http://93.184.215.14/all")
    stream, _ = await store.create_stream(name="gone")
    assert await store.delete_stream(stream.id)
    assert await store.record_event(Event(EventType.LIVE_STREAM_DELETED, stream.id)) \
        == [hook.id]
    assert await store.list_events(stream.id) == []
    (pending,) = await store.pending_deliveries(hook.id)
    assert json.loads(pending.body)["type"] == "live_stream.deleted"


async def test_attempts_are_logged_bounded_and_survive_a_deleted_endpoint(store: Store) -> None:
    hook, _ = await store.create_webhook(url="http://93.184.215.14/all")
    stream, _ = await store.create_stream(name="s")
    await store.record_event(Event(EventType.LIVE_STREAM_ACTIVE, stream.id))
    (pending,) = await store.pending_deliveries(hook.id)
    now = utcnow()
    await store.record_attempts([AttemptOutcome(
        pending.id, 1, now, delivered=False, give_up=False, status=500, latency_ms=3.0,
        error="e" * 1000, excerpt="x" * 5000, next_attempt_at=now)])
    (logged,) = await store.list_deliveries(hook.id)
    assert logged.state == "pending" and logged.attempts == 1
    assert len(logged.error or "") == 300 and len(logged.response_excerpt or "") == 1024
    copy = await store.redeliver(hook.id, pending.id)
    assert copy is not None and copy.event_id == pending.event_id
    assert copy.redelivery_of == pending.id
    assert await store.redeliver("whk_other", pending.id) is None
    assert await store.delete_webhook(hook.id)
    # The worker's outcome for a delivery whose endpoint went is dropped, not an error.
    await store.record_attempts([AttemptOutcome(
        pending.id, 2, now, delivered=True, give_up=False, status=200, latency_ms=1.0,
        error=None, excerpt="", next_attempt_at=None)])
    assert await store.list_deliveries(hook.id) == []


@pytest.mark.parametrize("types", [["stream.up"], ["live_stream"], "live_stream.*",
                                   ["live_stream.*"] * 51])
async def test_event_types_are_checked(store: Store, types: object) -> None:
    with pytest.raises(ValueError):
        await store.create_webhook(url="http://93.184.215.14/", event_types=types)  # type: ignore[arg-type]


async def test_one_of_many_concurrent_claims_wins_the_lane(store: Store) -> None:
    """Nodes racing for an endpoint's lane: exactly one gets it (on PostgreSQL the claim's
    conditional UPDATE re-checks the lease under the row lock, on SQLite under the write lock)."""
    endpoint, _ = await store.create_webhook(url="https://example.com/hook")
    now = datetime.now(UTC)
    claims = await asyncio.gather(*(
        store.claim_webhook_lane(endpoint.id, f"node-{n}", now=now, until=now + timedelta(seconds=30))
        for n in range(8)))
    assert sorted(claims) == [False] * 7 + [True]
