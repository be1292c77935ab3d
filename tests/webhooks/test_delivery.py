"""Webhooks end to end: a node in process (or `golive serve` killed with -9) delivering to a
real HTTP receiver started by the test."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, eventually, node_settings, wait_status
from tests.mediatools import ffmpeg_publish, stop
from tests.nginxedge import free_port
from tests.webhooks.receiver import Received, Receiver

from golive.app import Golive
from golive.core import Event, EventType, utcnow
from golive.store import PendingDelivery, Store
from golive.webhooks import DeliveryPolicy, WebhookDispatcher, verify_signature

FAST_RETRIES = {"webhook_allow_private_targets": True, "webhook_retry_first": 0.2,
                "webhook_retry_longest": 2.0, "transcode": False}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Golive]:
    async with Golive(node_settings(tmp_path, **FAST_RETRIES)) as n:
        yield n


@pytest.fixture
async def api(node: Golive) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        yield client


async def add_webhook(api: httpx.AsyncClient, url: str, **body: Any) -> dict[str, Any]:
    r = await api.post("/webhooks", json={"url": url, **body})
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def received(receiver: Receiver, path: str, count: int, *,
                   status: int | None = 200) -> list[Received]:
    async def check() -> list[Received] | None:
        got = receiver.at(path, status=status)
        return got if len(got) >= count else None

    return await eventually(check, what=f"{count} deliveries to {path}")


async def answered(first: WebhookDispatcher, second: WebhookDispatcher | None,
                   count: int) -> None:
    """Wait until the dispatchers have collected `count` answers between them."""
    async def check() -> bool:
        return first.attempts + (second.attempts if second else 0) >= count

    await eventually(check, what=f"{count} answers collected")
    assert first.attempts + (second.attempts if second else 0) == count


async def deliveries(api: httpx.AsyncClient, webhook_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/webhooks/{webhook_id}/deliveries")
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def settled(api: httpx.AsyncClient, webhook_id: str) -> list[dict[str, Any]]:
    """The delivery log once nothing in it is pending (outcomes are written just after)."""
    async def check() -> list[dict[str, Any]] | None:
        log = await deliveries(api, webhook_id)
        return log if log and all(d["state"] != "pending" for d in log) else None

    return await eventually(check, what="every delivery to be settled")


async def test_signed_mux_shaped_deliveries_log_and_redelivery(
        api: httpx.AsyncClient, receiver: Receiver) -> None:
    hook = await add_webhook(api, f"{receiver.url}/ok",
                             event_types=["live_stream.created", "live_stream.updated"])
    assert hook["secret"].startswith("whsec_") and hook["enabled"] is True
    listed = (await api.get("/webhooks")).json()["data"]
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]

    stream = await create_stream(api, name="webhooked")
    # Not subscribed: disabling sends nothing; the update after it arrives, in order.
    assert (await api.put(f"/live-streams/{stream['id']}/disable")).status_code == 200
    r = await api.patch(f"/live-streams/{stream['id']}", json={"name": "renamed"})
    assert r.status_code == 200
    first, second = await received(receiver, "/ok", 2)

    for request in (first, second):
        assert request.headers["content-type"] == "application/json"
        assert verify_signature(hook["secret"], request.headers["golive-signature"],
                                request.body, now=time.time())
        assert not verify_signature("whsec_other", request.headers["golive-signature"],
                                    request.body, now=time.time())
        assert not verify_signature(hook["secret"], request.headers["golive-signature"],
                                    request.body + b" ", now=time.time())
    created = first.json()
    assert created["type"] == "live_stream.created"
    assert created["id"].startswith("evt_")
    assert created["object"] == {"type": "live_stream", "id": stream["id"]}
    assert created["data"]["stream_id"] == stream["id"]
    assert created["data"]["name"] == "webhooked"
    assert created["created_at"]
    updated = second.json()
    assert updated["type"] == "live_stream.updated"
    assert updated["data"]["changes"] == {"name": "renamed"}

    log = await settled(api, hook["id"])
    assert [d["event_type"] for d in log] == ["live_stream.updated", "live_stream.created"]
    for entry in log:
        assert entry["state"] == "delivered" and entry["attempts"] == 1
        assert entry["response_status"] == 200 and entry["latency_ms"] >= 0
        # The receiver answered 5,000 bytes; the log keeps the first 1 KiB.
        assert entry["response_excerpt"] == "x" * 1024

    # Redelivery: the same event (same id and body) once more, as a new delivery.
    original = log[-1]
    r = await api.post(f"/webhooks/{hook['id']}/deliveries/{original['id']}/redeliver")
    assert r.status_code == 202, r.text
    assert r.json()["data"]["redelivery_of"] == original["id"]
    third = (await received(receiver, "/ok", 3))[2]
    assert third.json() == created
    assert (await api.post(f"/webhooks/{hook['id']}/deliveries/999999/redeliver")
            ).status_code == 404

    # Every change above is in the audit log.
    audit = (await api.get("/audit", params={"target_type": "webhook"})).json()["data"]
    assert [e["action"] for e in audit] == ["webhook.redeliver", "webhook.create"]
    assert audit[0]["actor"] == {"type": "admin_token", "id": None, "name": "admin_token"}


async def test_failing_endpoint_is_retried_with_backoff_in_order(
        node: Golive, api: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.modes["/flaky"] = 3  # 500 three times, then 200
    hook = await add_webhook(api, f"{receiver.url}/flaky", event_types=["live_stream.created"])
    one = await create_stream(api, name="one")
    await received(receiver, "/flaky", 1, status=500)
    two = await create_stream(api, name="two")
    ok = await received(receiver, "/flaky", 2)
    # The first event was tried four times, alone, the second waited behind it: order holds.
    assert [r.json()["data"]["stream_id"] for r in ok] == [one["id"], two["id"]]
    attempts = [r for r in receiver.at("/flaky", status=None)
                if r.json()["data"]["stream_id"] == one["id"]]
    assert [r.answered for r in attempts] == [500, 500, 500, 200]
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    # Backoff doubles from 0.2 s, less up to a quarter of jitter: lower bounds only.
    for gap, least in zip(gaps, (0.15, 0.3, 0.6), strict=True):
        assert gap >= least, gaps
    log = await settled(api, hook["id"])
    first = next(d for d in log if d["state"] == "delivered" and d["attempts"] == 4)
    assert first["response_status"] == 200 and first["error"] is None
    metrics = (await api.get(f"{node.http_url}/metrics")).text
    assert "golive_webhook_attempts_total 5.0" in metrics
    assert "golive_webhook_failures_total 3.0" in metrics


async def test_receiver_down_then_up_gets_everything_in_order(
        api: httpx.AsyncClient) -> None:
    port = free_port()  # nothing listens here yet: connections are refused
    hook = await add_webhook(api, f"http://127.0.0.1:{port}/late",
                             event_types=["live_stream.created"])
    streams = [await create_stream(api, name="s0")]

    async def refused() -> list[dict[str, Any]] | None:
        log = await deliveries(api, hook["id"])
        tried = [d for d in log if d["attempts"] >= 2]
        return tried or None

    tried = await eventually(refused, what="failed attempts while the receiver is down")
    assert tried[0]["state"] == "pending" and tried[0]["response_status"] is None
    assert "ClientConnectorError" in tried[0]["error"]
    # Queued while the lane backs off: never tried, yet they too must arrive in order
    # behind the one that failed (a window of first attempts could reorder them).
    streams += [await create_stream(api, name=f"s{i}") for i in range(1, 5)]
    with Receiver(port) as late:
        got = await received(late, "/late", 5)
    assert [r.json()["data"]["stream_id"] for r in got] == [s["id"] for s in streams]
    assert len({r.json()["id"] for r in got}) == 5


async def test_deliveries_failing_past_retry_for_are_given_up(
        tmp_path: Path, receiver: Receiver) -> None:
    receiver.modes["/dead"] = "fail"
    # Retries every 0.2 s at first, given up 4 s after queueing: room for a second attempt
    # even when the first one starts late on a loaded machine (with 1 s, CI's first
    # attempt came so late that its retry fell past the window: one attempt only).
    settings = node_settings(tmp_path, **{**FAST_RETRIES, "webhook_retry_for": 4.0})
    async with Golive(settings) as node, httpx.AsyncClient(
            base_url=f"{node.http_url}/api/v1", timeout=10,
            headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        hook = await add_webhook(api, f"{receiver.url}/dead",
                                 event_types=["live_stream.created"])
        await create_stream(api)

        async def failed() -> list[dict[str, Any]] | None:
            log = await deliveries(api, hook["id"])
            return log if log and log[0]["state"] == "failed" else None

        log = await eventually(failed, what="the delivery to be given up")
        assert log[0]["attempts"] >= 2 and log[0]["next_attempt_at"] is None
        assert log[0]["response_status"] == 500
        assert log[0]["response_excerpt"] == "receiver says no"
        # Still redeliverable once the receiver is fixed.
        receiver.modes["/dead"] = "ok"
        r = await api.post(f"/webhooks/{hook['id']}/deliveries/{log[0]['id']}/redeliver")
        assert r.status_code == 202
        await received(receiver, "/dead", 1)


@pytest.mark.slow
async def test_hanging_endpoint_delays_neither_another_nor_a_publisher(
        tmp_path: Path, receiver: Receiver, source_flv: Path) -> None:
    settings = node_settings(tmp_path, **{**FAST_RETRIES, "webhook_timeout": 60})
    async with Golive(settings) as node, httpx.AsyncClient(
            base_url=f"{node.http_url}/api/v1", timeout=10,
            headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        receiver.modes["/hang"] = "hang"
        await add_webhook(api, f"{receiver.url}/hang")
        await add_webhook(api, f"{receiver.url}/ok")
        stream = await create_stream(api)
        await asyncio.to_thread(receiver.hanging.wait, 30)
        got = await received(receiver, "/ok", 1)
        # Delivered while the other endpoint still holds its request open.
        assert receiver.at("/hang") == [] and not receiver.release.is_set()
        assert got[0].json()["data"]["stream_id"] == stream["id"]
        # A publisher goes live, and its events reach the other endpoint, while the
        # hanging endpoint still holds its first request.
        proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, stream["id"], "active")
            live = await received(receiver, "/ok", 3)
            assert "live_stream.active" in [r.json()["type"] for r in live]
            assert receiver.at("/hang") == []
        finally:
            stop(proc)
        receiver.release.set()


async def test_private_targets_refused(tmp_path: Path, receiver: Receiver) -> None:
    settings = node_settings(tmp_path, transcode=False)  # webhook_allow_private_targets off
    async with Golive(settings) as node, httpx.AsyncClient(
            base_url=f"{node.http_url}/api/v1", timeout=10,
            headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        for url in (f"{receiver.url}/ok", "http://localhost/hook", "http://[::1]/",
                    "http://169.254.169.254/latest/meta-data", "http://10.1.2.3/",
                    "http://[::ffff:127.0.0.1]/"):
            r = await api.post("/webhooks", json={"url": url})
            assert r.status_code == 422, (url, r.text)
            assert "not a public address" in r.json()["error"]["messages"][0]
        r = await api.post("/webhooks", json={"url": "ftp://example.com/"})
        assert r.status_code == 422
        assert (await api.get("/webhooks")).json()["data"] == []


async def test_private_target_refused_at_delivery_time(tmp_path: Path,
                                                       receiver: Receiver) -> None:
    """A target saved while allowed (or re-pointed in DNS) is checked again before sending."""
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    dispatcher = WebhookDispatcher(store, DeliveryPolicy(timeout=5, retry_first=0.2,
                                                         allow_private=False))
    try:
        hook, _secret = await store.create_webhook(url=f"{receiver.url}/ok")
        target = await store.webhook_target(hook.id)
        assert target is not None
        async with aiohttp.ClientSession() as session:
            attempt = await dispatcher.send(session, target, PendingDelivery(
                1, "evt_x", "{}", utcnow(), 0))
        assert not attempt.delivered and attempt.status is None
        assert attempt.error is not None and "not a public address" in attempt.error
        assert receiver.requests == []
    finally:
        await dispatcher.close()
        await store.close()


def _serve(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLIVE_")}
    env.update(GOLIVE_DATA_DIR=str(data_dir), GOLIVE_HOST="127.0.0.1",
               GOLIVE_HTTP_PORT=str(port), GOLIVE_RTMP_PORT="0", GOLIVE_SRT_PORT="0",
               GOLIVE_ADMIN_TOKEN=ADMIN * 2, GOLIVE_TRANSCODE="false",
               GOLIVE_WEBHOOK_ALLOW_PRIVATE_TARGETS="true", GOLIVE_WEBHOOK_RETRY_FIRST="0.2",
               GOLIVE_WEBHOOK_RETRY_LONGEST="1")
    return subprocess.Popen([sys.executable, "-m", "golive", "serve"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def _up(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    async def check() -> bool:
        if proc.poll() is not None:
            raise AssertionError(await asyncio.to_thread(log.read_text))
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(f"{url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(check, timeout=60, what="golive serve to come up")


@pytest.mark.slow
async def test_kill_9_between_event_and_delivery_still_delivers(
        tmp_path: Path, receiver: Receiver) -> None:
    receiver.modes["/down"] = "fail"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    headers = {"Authorization": f"Bearer {ADMIN * 2}"}
    proc = _serve(tmp_path / "data", port, log)
    try:
        await _up(proc, url, log)
        async with httpx.AsyncClient(base_url=f"{url}/api/v1", headers=headers,
                                     timeout=10) as api:
            hook = await add_webhook(api, f"{receiver.url}/down",
                                     event_types=["live_stream.created"])
            stream = await create_stream(api, name="survives")
            await received(receiver, "/down", 1, status=500)  # queued, and failing

            async def failure_logged() -> bool:
                entries = await deliveries(api, hook["id"])
                return bool(entries) and entries[0]["response_status"] == 500

            # The receiver keeps a request before it answers: wait until the node heard the
            # 500 and wrote it down, so the attempt after the restart is the second.
            await eventually(failure_logged, what="the failed attempt in the log")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        receiver.modes["/down"] = "ok"
        proc = _serve(tmp_path / "data", port, log)
        await _up(proc, url, log)
        got = await received(receiver, "/down", 1)
        assert got[0].json()["data"]["stream_id"] == stream["id"]
        failed = receiver.at("/down", status=500)[0].json()
        assert got[0].json()["id"] == failed["id"]  # the same event, not a new one
        async with httpx.AsyncClient(base_url=f"{url}/api/v1", headers=headers,
                                     timeout=10) as api:
            log_entries = await settled(api, hook["id"])
        assert [d["state"] for d in log_entries] == ["delivered"]
        assert log_entries[0]["attempts"] >= 2
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


async def test_two_nodes_on_one_database_send_each_delivery_once(
        tmp_path: Path, receiver: Receiver) -> None:
    """Nodes sharing a database (PostgreSQL in production) hold a lease per endpoint: one
    sends, the other stands by and takes over when the first goes."""
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    policy = DeliveryPolicy(timeout=5, retry_first=0.2, allow_private=True)
    first = WebhookDispatcher(store, dataclasses.replace(policy, node_id="node_a"))
    second = WebhookDispatcher(store, dataclasses.replace(policy, node_id="node_b"))
    try:
        await store.create_webhook(url=f"{receiver.url}/shared")
        stream, _ = await store.create_stream(name="s")
        queued = await store.record_events(
            [Event(EventType.LIVE_STREAM_WARNING, stream.id, data={"n": n}) for n in range(20)])
        first.wake(queued)
        second.wake(queued)
        got = await received(receiver, "/shared", 20)
        assert sorted(r.json()["data"]["n"] for r in got) == list(range(20))
        # The receiver logs a request before it answers; a node counts the attempt once
        # it has the answer.
        await answered(first, second, 20)
        assert 0 in (first.attempts, second.attempts)  # one node sent them all
        sender, other = (first, second) if first.attempts else (second, first)
        await sender.close()  # releases its lease
        queued = await store.record_events([Event(EventType.LIVE_STREAM_IDLE, stream.id)])
        other.wake(queued)
        last = await received(receiver, "/shared", 21)
        assert last[-1].json()["type"] == "live_stream.idle"
        await answered(other, None, 1)
        assert len(receiver.at("/shared", status=None)) == 21  # nothing sent twice
    finally:
        await first.close()
        await second.close()
        await store.close()
