"""Studio sessions and rate limits shared by two golive nodes through one real Redis
(core/limits.py, core/redislink.py, web/session.py): a login on node A works on node B and a
logout on B ends it on A; API token and stream key guesses, chat sends and QoE batches
count across both nodes; with Redis
stopped each node falls back to its own limits and sessions (one log line each way), and
shares them again once Redis is back."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from tests.chat.conftest import ChatClient, ChatNode, start_chat_node
from tests.e2e.conftest import eventually
from tests.redisserver import RedisServer

from golive.stream import PublishRefused, RefusalReason
from golive.web.session import SESSION_COOKIE, SessionSigner

SECRET = "shared-state-test-secret-0123456789abcdef"
ADMIN = "test-admin-token"


@contextlib.asynccontextmanager
async def _node(tmp_path: Path, name: str, database_url: str, redis_url: str,
                prefix: str, **overrides: Any) -> AsyncIterator[ChatNode]:
    nodes = start_chat_node(tmp_path / name, database_url=database_url, redis_url=redis_url,
                            redis_prefix=prefix, chat_secret=SECRET, **overrides)
    node = await anext(nodes)
    try:
        yield node
    finally:
        with contextlib.suppress(StopAsyncIteration):
            await anext(nodes)


@contextlib.asynccontextmanager
async def _pair(tmp_path: Path, redis: RedisServer, **overrides: Any
                ) -> AsyncIterator[tuple[ChatNode, ChatNode, str]]:
    url = f"sqlite+aiosqlite:///{(tmp_path / 'shared.db').resolve()}"
    prefix = redis.prefix()
    async with _node(tmp_path, "a", url, redis.url, prefix, **overrides) as a, \
            _node(tmp_path, "b", url, redis.url, prefix, **overrides) as b:
        yield a, b, prefix


def _site(node: ChatNode, cookies: dict[str, str] | None = None) -> httpx.AsyncClient:
    base = node.node.http_url
    return httpx.AsyncClient(base_url=base, headers={"origin": base}, timeout=10,
                             cookies=cookies)


async def _login(node: ChatNode) -> str:
    async with _site(node) as site:
        answer = await site.post("/studio/login", data={"token": ADMIN})
    assert answer.status_code == 303, answer.text
    cookie = answer.cookies.get(SESSION_COOKIE)
    assert cookie
    return cookie


async def _signed_in(node: ChatNode, cookie: str) -> bool:
    async with _site(node, {SESSION_COOKIE: cookie}) as site:
        answer = await site.get("/studio")
    if answer.status_code == 200:
        return True
    assert answer.status_code == 303 and answer.headers["location"] == "/studio/login"
    return False


async def _logout(node: ChatNode, cookie: str) -> None:
    csrf = SessionSigner(SECRET.encode()).csrf_token(cookie.split(".")[0])
    async with _site(node, {SESSION_COOKIE: cookie}) as site:
        answer = await site.post("/studio/logout", data={"csrf": csrf})
    assert answer.status_code == 303, answer.text


async def _guess(node: ChatNode) -> int:
    async with httpx.AsyncClient(base_url=f"{node.node.http_url}/api/v1", timeout=10) as api:
        answer = await api.get("/live-streams", headers={"authorization": "Bearer wrong-token"})
    return answer.status_code


async def test_studio_sessions_work_on_every_node_and_end_everywhere(
        tmp_path: Path, redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    async with _pair(tmp_path, redis) as (a, b, prefix):
        cookie = await _login(a)
        assert await _signed_in(a, cookie) and await _signed_in(b, cookie)
        # Redis holds the session with its expiry, and the API token only encrypted.
        client = redis.client()
        keys = cast(list[bytes], client.keys(f"{prefix}studio:session:*"))
        assert len(keys) == 1
        assert ADMIN.encode() not in cast(bytes, client.get(keys[0]))
        assert 0 < cast(int, client.pttl(keys[0])) <= 12 * 3600 * 1000
        await _logout(b, cookie)
        assert not await _signed_in(a, cookie) and not await _signed_in(b, cookie)
        assert client.keys(f"{prefix}studio:session:*") == []
        client.close()

        # Redis away: nodes fail closed on sessions they cannot read, a login taken now
        # lives on its own node only, and a logout made now is applied once Redis is back.
        kept = await _login(a)
        caplog.set_level(logging.WARNING, logger="golive.core.redislink")
        with redis.stopped():
            assert not await _signed_in(b, kept)
            local = await _login(a)
            assert await _signed_in(a, local) and not await _signed_in(b, local)
            await _logout(a, kept)
        lines = [r.getMessage() for r in caplog.records if r.name == "golive.core.redislink"]
        assert sum("Redis unreachable" in line for line in lines) == 2  # once per node

        async def back() -> bool:
            # The local answers hold from the start; what is waited for is the link's own
            # word that Redis answers again (its next try comes `retry_after` after a miss).
            answers = not await _signed_in(a, kept) and await _signed_in(a, local)
            return answers and any("Redis reachable again" in r.getMessage()
                                   for r in caplog.records)

        await eventually(back, what="Redis answering again")
        assert not await _signed_in(b, kept) and not await _signed_in(b, local)


async def test_token_guesses_count_across_nodes_and_locally_during_an_outage(
        tmp_path: Path, redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    async with _pair(tmp_path, redis) as (a, b, _):
        # The default budget: 10 wrong tokens per address, then one more each 2 s. Six
        # spent on A leave B four, plus what refilled while the test ran (a loaded
        # machine answers slowly); B alone would allow 10 plus the same.
        started = time.monotonic()
        for _ in range(6):
            assert await _guess(a) == 401
        on_b = await _guesses_until_refused(b)
        refilled = (time.monotonic() - started) * 0.5
        assert on_b <= 4 + refilled + 1, (on_b, refilled)
        assert await _guess(a) == 429

        # Wrong stream keys (RTMP, SRT and WHIP open publishers the same way) likewise.
        started = time.monotonic()
        for _ in range(6):
            assert await _wrong_key(a) is RefusalReason.UNKNOWN_KEY
        on_b = 0
        while (reason := await _wrong_key(b)) is RefusalReason.UNKNOWN_KEY:
            on_b += 1
            assert on_b < 30
        assert reason is RefusalReason.THROTTLED
        assert on_b <= 4 + (time.monotonic() - started) * 0.5 + 1

    caplog.set_level(logging.WARNING, logger="golive.core.redislink")
    async with _pair(tmp_path / "outage", redis) as (a, b, _):
        with redis.stopped():
            # Each node counts on its own: A's guesses leave B's budget whole.
            assert await _guesses_until_refused(a) >= 10
            assert await _guess(b) == 401
        assert any("Redis unreachable" in r.getMessage() for r in caplog.records)


async def _wrong_key(node: ChatNode) -> RefusalReason:
    try:
        await node.node.publish_target.open_publisher(
            "no-such-key", protocol="rtmp", remote_address="192.0.2.77:40000")
    except PublishRefused as refused:
        return refused.reason
    raise AssertionError("a wrong stream key was accepted")


async def _guesses_until_refused(node: ChatNode) -> int:
    """Wrong tokens sent to `node` until one is answered 429: how many were answered 401."""
    for guessed in range(30):
        if await _guess(node) == 429:
            return guessed
    raise AssertionError("never throttled")


async def _say(client: ChatClient, text: str) -> str:
    """Send `text`: "sent" once it comes back as a message, else the error's reason."""
    start = len(client.frames)
    await client.send(type="send", text=text)
    frame = await client.wait_for(
        lambda f: f.get("type") == "error" or f.get("text") == text, start=start)
    return "sent" if frame["type"] == "message" else str(frame["reason"])


async def test_chat_send_limits_count_across_nodes(tmp_path: Path, redis: RedisServer) -> None:
    async with _pair(tmp_path, redis, chat_user_rate=0.01, chat_user_burst=3,
                     chat_room_rate=1000.0, chat_room_burst=1000) as (a, b, _):
        stream = await a.stream()
        stream_id, pid = str(stream["id"]), str(stream["playback_ids"][0]["id"])
        token = await a.token("u_carol", "carol", ["send"])
        on_a = await a.connect(pid, token=token)
        on_b = await b.connect(pid, token=token)
        assert [await _say(on_a, "a0"), await _say(on_b, "b0"), await _say(on_a, "a1")] \
            == ["sent"] * 3
        # Three sent over two nodes: the fourth is refused on either.
        assert "too fast" in await _say(on_b, "b1")
        assert "too fast" in await _say(on_a, "a2")

        # Slow mode, set on A, holds across nodes for another sender.
        answer = await a.api.patch(f"/live-streams/{stream_id}/chat", json={"slow_mode": 60})
        assert answer.status_code == 200, answer.text
        chat_b = b.node.chat
        assert chat_b is not None

        async def b_knows() -> bool:
            state = chat_b._streams.get(stream_id)
            return state is not None and state.settings.slow_mode == 60

        await eventually(b_knows, what="node B reloading the chat settings")
        dave = await a.token("u_dave", "dave", ["send"])
        dave_a = await a.connect(pid, token=dave)
        dave_b = await b.connect(pid, token=dave)
        assert await _say(dave_a, "first") == "sent"
        assert "slow mode is on" in await _say(dave_b, "second")


async def test_qoe_batches_of_one_view_count_across_nodes(
        tmp_path: Path, redis: RedisServer) -> None:
    async with _pair(tmp_path, redis) as (a, b, _):
        stream = await a.stream()
        pid = str(stream["playback_ids"][0]["id"])
        body = json.dumps({"view_id": "view0000000000000001", "sent": 10_000,
                           "events": [{"type": "stall", "t": 9_000, "ms": 250}]})

        async def beacon(node: ChatNode) -> int:
            async with httpx.AsyncClient(base_url=node.node.http_url, timeout=10) as site:
                answer = await site.post(f"/qoe/{pid}", content=body,
                                         headers={"content-type": "application/json"})
            return answer.status_code

        # Six batches per view, then one each 2 s: three on A leave B three (plus what
        # refilled meanwhile); B alone would take six.
        started = time.monotonic()
        for _ in range(3):
            assert await beacon(a) == 204
        taken = 0
        while (status := await beacon(b)) == 204:
            taken += 1
            assert taken < 20
        assert status == 429
        refilled = (time.monotonic() - started) * 0.5
        assert taken <= 3 + refilled + 1, (taken, refilled)


async def test_a_cluster_node_without_a_shared_secret_says_so(
        tmp_path: Path, redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="golive.app")
    nodes = start_chat_node(tmp_path, redis_url=redis.url, redis_prefix=redis.prefix())
    await anext(nodes)
    with contextlib.suppress(StopAsyncIteration):
        await anext(nodes)
    assert any("set GOLIVE_CHAT_SECRET to the same value on every node" in r.getMessage()
               for r in caplog.records)
