"""The delivery window: first attempts to a healthy endpoint overlap (at most `window` in
flight, started in order of creation); a failing endpoint gets one request at a time, its
oldest delivery first, and no new deliveries until that one goes through."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.e2e.conftest import eventually
from tests.store.conftest import open_store
from tests.webhooks.receiver import Received, Receiver

from golive.core import Event, EventType
from golive.store import Store, WebhookDeliveryRecord
from golive.webhooks import DeliveryPolicy, WebhookDispatcher

WINDOW = 4


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async for opened in open_store(request, tmp_path):
        yield opened


async def queue(store: Store, dispatcher: WebhookDispatcher, url: str, count: int) -> None:
    await store.create_webhook(url=url)
    stream, _ = await store.create_stream(name="s")
    queued = await store.record_events(
        [Event(EventType.LIVE_STREAM_WARNING, stream.id, data={"n": n}) for n in range(count)])
    dispatcher.wake(queued)


def number(request: Received) -> int:
    return int(request.json()["data"]["n"])


def numbers(requests: list[Received]) -> list[int]:
    return [number(r) for r in requests]


async def answered(receiver: Receiver, path: str, count: int, *,
                   status: int | None = 200) -> list[Received]:
    async def check() -> list[Received] | None:
        got = receiver.at(path, status=status)
        return got if len(got) >= count else None

    return await eventually(check, what=f"{count} answers on {path}")


async def test_healthy_endpoint_gets_a_window_of_requests_in_order(
        store: Store, receiver: Receiver) -> None:
    receiver.modes["/held"] = "hang"  # every request held until released
    dispatcher = WebhookDispatcher(store, DeliveryPolicy(allow_private=True, window=WINDOW))
    try:
        await queue(store, dispatcher, f"{receiver.url}/held", 40)

        async def full() -> bool:
            return receiver.held == WINDOW

        await eventually(full, what=f"{WINDOW} requests held at once")
        receiver.release.set()
        got = await answered(receiver, "/held", 40)
        assert sorted(numbers(got)) == list(range(40))  # each once
        assert len(receiver.requests) == 40
        # Never more than the window in flight; and since a request starts only once the
        # one `WINDOW` places before it was answered, none overtakes that one.
        assert receiver.most_held == WINDOW
        order = numbers(got)
        for place, n in enumerate(order):
            assert all(m in order[:place] for m in range(n - WINDOW + 1)), order
        log = await store.list_deliveries((await store.list_webhooks())[0].id)
        assert {d.state for d in log} == {"delivered"} and dispatcher.attempts == 40
    finally:
        await dispatcher.close()


async def test_window_of_one_is_strict_order(store: Store, receiver: Receiver) -> None:
    dispatcher = WebhookDispatcher(store, DeliveryPolicy(allow_private=True, window=1))
    try:
        await queue(store, dispatcher, f"{receiver.url}/one", 30)
        got = await answered(receiver, "/one", 30)
        assert numbers(got) == list(range(30))
        for a, b in itertools.pairwise(got):
            assert a.at <= b.started  # one at a time
    finally:
        await dispatcher.close()


async def test_failing_endpoint_falls_back_to_one_at_a_time_oldest_first(
        store: Store, receiver: Receiver) -> None:
    receiver.modes["/down"] = "fail"
    dispatcher = WebhookDispatcher(store, DeliveryPolicy(
        allow_private=True, window=WINDOW, retry_first=0.05, retry_longest=0.1))
    try:
        await queue(store, dispatcher, f"{receiver.url}/down", 30)

        async def retried() -> bool:
            return numbers(receiver.at("/down", status=None)).count(0) >= 4

        await eventually(retried, what="the oldest delivery retried three times")
        receiver.modes["/down"] = "ok"
        await answered(receiver, "/down", 30)
        requests = receiver.at("/down", status=None)
        first_ok = next(i for i, r in enumerate(requests) if r.answered == 200)
        failing = requests[:first_ok + 1]
        # While it failed: no more than one window of first attempts, then only the oldest
        # delivery, alone (each retry answered before anything else was sent).
        assert len(set(numbers(failing))) <= WINDOW
        retries = [place for place, r in enumerate(failing)
                   if number(r) in numbers(failing[:place])]
        assert retries and {number(failing[place]) for place in retries} == {0}
        for place in retries:
            others = requests[:place] + requests[place + 1:]
            mine = requests[place]
            assert all(o.at <= mine.started or o.started >= mine.at for o in others)
        # Once back: what had failed arrives in order of creation, before anything new;
        # every event delivered exactly once.
        tried = sorted(set(numbers(failing)))
        ok = numbers(receiver.at("/down", status=200))
        assert ok[:len(tried)] == tried
        assert sorted(ok) == list(range(30))
        assert dispatcher.failures == first_ok
    finally:
        await dispatcher.close()


async def test_closing_mid_window_leaves_what_was_in_flight_pending(
        store: Store, receiver: Receiver) -> None:
    """Requests in flight when the node stops stay pending and are sent again on restart
    (at least once)."""
    receiver.modes["/held"] = "hang"
    dispatcher = WebhookDispatcher(store, DeliveryPolicy(allow_private=True, window=WINDOW,
                                                         timeout=30))
    await queue(store, dispatcher, f"{receiver.url}/held", 10)

    async def full() -> bool:
        return receiver.held == WINDOW

    await eventually(full, what=f"{WINDOW} requests held at once")
    await dispatcher.close()
    webhook = (await store.list_webhooks())[0]
    pending = await store.pending_deliveries(webhook.id)
    assert len(pending) == 10 and all(p.attempts == 0 for p in pending)
    receiver.release.set()
    again = WebhookDispatcher(store, DeliveryPolicy(allow_private=True, window=WINDOW))
    try:
        await again.start()
        got = await answered(receiver, "/held", 10 + WINDOW)  # the held ones twice
        assert sorted(set(numbers(got))) == list(range(10))

        # The receiver has answered; the dispatcher records each answer just after.
        async def recorded() -> list[WebhookDeliveryRecord] | None:
            log = await store.list_deliveries(webhook.id)
            return log if all(d.state == "delivered" for d in log) else None

        webhook_log = await eventually(recorded, what="every delivery recorded")
        assert [d.attempts for d in webhook_log] == [1] * 10
    finally:
        await again.close()
