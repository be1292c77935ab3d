"""Chat across two golive nodes sharing one database (a SQLite file, WAL) and one real Redis:
relayed messages keep their ids, ids stay unique under concurrent sends, moderation and
settings made on one node hold on the other, viewer counts are summed, and an outage of
Redis leaves each node's own chat working (then relaying resumes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.chat.conftest import ChatClient, ChatNode, start_chat_node
from tests.e2e.conftest import eventually
from tests.redisserver import RedisServer

from golive.chat.cluster import ChatCluster

CHAT_SECRET = "cluster-test-chat-secret-0123456789abcdef"


@contextlib.asynccontextmanager
async def _node(tmp_path: Path, name: str, database_url: str, redis: RedisServer,
                prefix: str) -> AsyncIterator[ChatNode]:
    nodes = start_chat_node(
        tmp_path / name, database_url=database_url, redis_url=redis.url, redis_prefix=prefix,
        chat_secret=CHAT_SECRET, chat_user_rate=50.0, chat_user_burst=50,
        chat_room_rate=1000.0, chat_room_burst=1000)
    node = await anext(nodes)
    try:
        yield node
    finally:
        with contextlib.suppress(StopAsyncIteration):
            await anext(nodes)


@pytest.fixture
async def pair(tmp_path: Path, redis: RedisServer) -> AsyncIterator[tuple[ChatNode, ChatNode]]:
    """Nodes A and B: one SQLite file, one Redis key prefix."""
    url = f"sqlite+aiosqlite:///{(tmp_path / 'shared.db').resolve()}"
    prefix = redis.prefix()
    async with _node(tmp_path, "a", url, redis, prefix) as a, \
            _node(tmp_path, "b", url, redis, prefix) as b:
        for node in (a, b):
            await _linked(node)
        yield a, b


def _cluster(node: ChatNode) -> ChatCluster:
    chat = node.node.chat
    assert chat is not None and chat.cluster is not None
    return chat.cluster


async def _linked(node: ChatNode) -> None:
    """Until the node has subscribed (its link to the other nodes is up)."""
    cluster = _cluster(node)

    async def up() -> bool:
        return cluster.available

    await eventually(up, what="subscribed to Redis")


async def _stream(a: ChatNode) -> tuple[str, str]:
    stream = await a.stream()
    return str(stream["id"]), str(stream["playback_ids"][0]["id"])


async def _say(client: ChatClient, text: str) -> dict[str, Any]:
    await client.send(type="send", text=text)
    return await client.wait_for(lambda f: f.get("type") == "message" and f["text"] == text)


async def _refused(client: ChatClient, reason: str) -> None:
    """Send until the other node's change has arrived and the send is refused for `reason`."""
    for attempt in range(100):
        start = len(client.frames)
        text = f"try {attempt}"

        def answer(f: dict[str, Any], text: str = text) -> bool:
            return f.get("type") == "error" or (f.get("type") == "message"
                                                and f["text"] == text)

        await client.send(type="send", text=text)
        frame = await client.wait_for(answer, start=start)
        if frame["type"] == "error":
            assert reason in frame["reason"], frame
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never refused with {reason!r}")


async def test_messages_deletes_counts_and_history_cross_nodes(
        pair: tuple[ChatNode, ChatNode]) -> None:
    a, b = pair
    stream_id, pid = await _stream(a)
    alice = await a.connect(pid, "alice")
    bob = await b.connect(pid, "bob")

    sent = await _say(alice, "hello from A")
    seen = await bob.wait_for(lambda f: f.get("type") == "message"
                              and f["text"] == "hello from A")
    assert seen["id"] == sent["id"] and seen["user"]["name"] == "alice"
    reply = await _say(bob, "hello from B")
    assert (await alice.wait_for(lambda f: f.get("id") == reply["id"]))["text"] == "hello from B"
    assert reply["id"] > sent["id"]

    # One viewer on each node: both rooms show two.
    await alice.wait_type("viewers", count=2)
    await bob.wait_type("viewers", count=2)

    # A newcomer on B gets A's message from B's memory, in id order.
    late = await b.connect(pid)
    texts = [f["text"] for f in late.frames if f.get("type") == "message"]
    assert texts == ["hello from A", "hello from B"]
    await alice.wait_type("viewers", count=3)

    # A delete on A (REST) removes it on B, and from B's history.
    response = await a.api.delete(f"/live-streams/{stream_id}/chat/messages/{sent['id']}")
    assert response.status_code == 204
    await bob.wait_type("deleted", id=sent["id"])
    later = await b.connect(pid)
    assert [f["text"] for f in later.frames if f.get("type") == "message"] == ["hello from B"]

    # A clear on B empties A's room and history.
    assert (await b.api.post(f"/live-streams/{stream_id}/chat/clear")).status_code == 204
    await alice.wait_type("cleared")
    fresh = await a.connect(pid)
    assert not [f for f in fresh.frames if f.get("type") == "message"]

    # B's viewers leave: A's count drops back to its own.
    for client in (bob, late, later):
        await client.close()
    await alice.wait_type("viewers", count=2)  # alice and fresh


async def test_ids_unique_under_concurrent_sends(pair: tuple[ChatNode, ChatNode]) -> None:
    a, b = pair
    _, pid = await _stream(a)
    senders = [await a.connect(pid, f"a{i}") for i in range(3)]
    senders += [await b.connect(pid, f"b{i}") for i in range(3)]
    watch_a, watch_b = await a.connect(pid), await b.connect(pid)
    per_sender = 20
    texts = {f"{s_i}-{n}" for s_i in range(len(senders)) for n in range(per_sender)}

    async def burst(index: int, client: ChatClient) -> None:
        for n in range(per_sender):
            await client.send(type="send", text=f"{index}-{n}")

    await asyncio.gather(*(burst(i, c) for i, c in enumerate(senders)))

    def messages(client: ChatClient) -> dict[str, int]:
        return {f["text"]: f["id"] for f in client.frames if f.get("type") == "message"}

    for watcher in (watch_a, watch_b):
        async def complete(w: ChatClient = watcher) -> bool:
            return set(messages(w)) >= texts

        await eventually(complete, what="every message on both nodes")
    on_a, on_b = messages(watch_a), messages(watch_b)
    ids = [on_a[t] for t in texts]
    assert len(set(ids)) == len(texts)  # unique across both nodes
    assert {t: on_b[t] for t in texts} == {t: on_a[t] for t in texts}  # same ids everywhere
    for index in range(len(senders)):  # each sender's messages got increasing ids
        mine = [on_a[f"{index}-{n}"] for n in range(per_sender)]
        assert mine == sorted(mine)


async def test_bans_and_settings_hold_on_every_node(pair: tuple[ChatNode, ChatNode]) -> None:
    a, b = pair
    stream_id, pid = await _stream(a)
    troll = await a.connect(pid, "troll")
    troll_id = (await troll.wait_type("identity"))["user"]["id"]
    await _say(troll, "first")  # the room on A is open and its bans loaded

    response = await b.api.post(f"/live-streams/{stream_id}/chat/bans",
                                json={"user_id": troll_id, "reason": "spam"})
    assert response.status_code == 201, response.text
    await _refused(troll, "banned")

    # Lifted on B: the troll may chat on A again.
    ban_id = response.json()["data"]["id"]
    assert (await b.api.delete(f"/live-streams/{stream_id}/chat/bans/{ban_id}")).status_code == 204
    for attempt in range(100):
        start = len(troll.frames)
        await troll.send(type="send", text=f"back {attempt}")
        frame = await troll.wait_for(lambda f: f.get("type") in ("error", "message"), start=start)
        if frame["type"] == "message":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the lifted ban still holds on A")

    # Settings changed on B apply on A.
    response = await b.api.patch(f"/live-streams/{stream_id}/chat",
                                 json={"signed_in_only": True})
    assert response.status_code == 200, response.text
    await _refused(troll, "signed-in")


async def test_redis_outage_keeps_local_chat_then_relaying_resumes(
        pair: tuple[ChatNode, ChatNode], redis: RedisServer,
        caplog: pytest.LogCaptureFixture) -> None:
    a, b = pair
    _, pid = await _stream(a)
    alice = await a.connect(pid, "alice")
    bob = await b.connect(pid, "bob")
    before = await _say(alice, "before")
    await bob.wait_for(lambda f: f.get("id") == before["id"])

    caplog.set_level(logging.WARNING, logger="golive.chat.cluster")
    with redis.stopped():
        during = await _say(alice, "during the outage")  # the database picked its id
        assert during["id"] > before["id"]
        also = await _say(bob, "B during the outage")
        assert also["id"] not in (before["id"], during["id"])
        assert "Redis unreachable" in caplog.text
        assert "serving this node's chat only" in caplog.text

    # Redis is back (empty): the nodes subscribe again, re-seed ids above the database's.
    for node in (a, b):
        await _linked(node)
    after = await _say(alice, "after")
    assert after["id"] > max(during["id"], also["id"])
    assert (await bob.wait_for(lambda f: f.get("id") == after["id"]))["text"] == "after"
    assert "relaying resumed" in caplog.text


async def test_frozen_redis_falls_back_then_recovers(
        pair: tuple[ChatNode, ChatNode], redis: RedisServer) -> None:
    """A Redis that stops answering (kept connections, no replies) is a timeout, not a
    refusal: the send still goes through locally, and relaying comes back with Redis."""
    a, b = pair
    _, pid = await _stream(a)
    alice = await a.connect(pid, "alice")
    bob = await b.connect(pid, "bob")
    before = await _say(alice, "before")
    await bob.wait_for(lambda f: f.get("id") == before["id"])
    with redis.paused():
        during = await _say(alice, "during the freeze")
        assert during["id"] > before["id"]
        assert not _cluster(a).available
    for node in (a, b):
        await _linked(node)
    after = await _say(alice, "after the freeze")
    assert after["id"] > during["id"]
    assert (await bob.wait_for(lambda f: f.get("id") == after["id"]))["text"] == "after the freeze"
