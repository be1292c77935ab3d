"""Chat over real WebSockets against a whole node: rooms, history, limits, identity."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from tests.chat.conftest import ChatNode, start_chat_node

from golive.core.events import Event, EventType


def is_message(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("type") == "message" and f.get("text") == text


async def test_join_history_and_two_clients(chat: ChatNode, pid: str) -> None:
    alice = await chat.connect(pid, "alice")
    bob = await chat.connect(pid, "bob")
    await alice.send(type="send", text="  hello bob  ")
    got = await bob.wait_for(is_message("hello bob"))
    assert got["user"]["name"] == "alice" and got["user"]["id"].startswith("anon_")
    assert isinstance(got["id"], int) and got["sent_at"].endswith("Z")
    await alice.wait_for(is_message("hello bob"))
    await bob.send(type="send", text="hi alice")
    await alice.wait_for(is_message("hi alice"))

    late = await chat.connect(pid)
    texts = [f["text"] for f in late.frames if f["type"] == "message"]
    assert texts == ["hello bob", "hi alice"]
    # History arrives as one batch (a JSON array) together with the viewer count.
    assert late.raw[0].startswith("[")
    # A viewer without a name reads along but must join before sending.
    await late.send(type="send", text="anyone?")
    assert "join" in await late.error()


async def test_history_is_the_last_50(tmp_path: Path) -> None:
    async for chat in start_chat_node(tmp_path, chat_user_burst=100, chat_user_rate=100):
        stream = await chat.stream()
        pid = stream["playback_ids"][0]["id"]
        writer = await chat.connect(pid, "w")
        for i in range(60):
            await writer.send(type="send", text=f"m{i}")
        await writer.wait_for(is_message("m59"))
        reader = await chat.connect(pid)
        texts = [f["text"] for f in reader.frames if f["type"] == "message"]
        assert texts == [f"m{i}" for i in range(10, 60)]


async def test_identity_survives_reconnect(chat: ChatNode, pid: str) -> None:
    alice = await chat.connect(pid, "alice")
    identity = await alice.wait_type("identity")
    again = await chat.connect(pid, identity=identity["token"])
    back = await again.wait_type("identity")
    assert back["user"] == identity["user"]
    # The cookie endpoint sets the same signed value.
    response = await chat.api.post(
        f"http://127.0.0.1:{chat.node.http_port}/chat/{pid}/identity", json={"name": "carol"})
    assert response.status_code == 200
    assert response.cookies["golive_chat"] == response.json()["token"]
    bad = await chat.api.post(
        f"http://127.0.0.1:{chat.node.http_port}/chat/{pid}/identity", json={"name": "a\x07b"})
    assert bad.status_code == 422
    ws = await websockets.connect(
        chat.ws_url(pid), additional_headers={"Cookie": f"golive_chat={response.json()['token']}"})
    try:
        frames = json.loads(await asyncio.wait_for(ws.recv(), 10))
        identity = next(f for f in frames if f["type"] == "identity")
        assert identity["user"] == response.json()["user"]
    finally:
        await ws.close()


async def test_bad_names_are_refused(chat: ChatNode, pid: str) -> None:
    client = await chat.connect(pid)
    for name in ["", "   ", "x" * 33, "bad\nname", 5]:
        await client.send(type="join", name=name)
        assert "name" in await client.error()


async def test_length_limit_and_empty(chat: ChatNode, pid: str) -> None:
    client = await chat.connect(pid, "long")
    await client.send(type="send", text="x" * 501)
    assert "500 characters" in await client.error()
    await client.send(type="send", text="   ")
    assert "empty" in await client.error()
    await client.send(type="send", text="y" * 500)
    await client.wait_for(is_message("y" * 500))


async def test_user_rate_limit(chat: ChatNode, pid: str) -> None:
    client = await chat.connect(pid, "fast")
    for i in range(5):  # the default burst
        await client.send(type="send", text=f"burst {i}")
    await client.wait_for(is_message("burst 4"))
    await client.send(type="send", text="one too many")
    assert "too fast" in await client.error()


async def test_room_rate_limit(tmp_path: Path) -> None:
    async for chat in start_chat_node(tmp_path, chat_room_rate=0.01, chat_room_burst=2):
        stream = await chat.stream()
        pid = stream["playback_ids"][0]["id"]
        a = await chat.connect(pid, "a")
        b = await chat.connect(pid, "b")
        await a.send(type="send", text="1")
        await b.send(type="send", text="2")
        await b.wait_for(is_message("2"))
        await a.send(type="send", text="3")
        assert await a.error() == "chat is busy"


async def test_slow_mode(chat: ChatNode, pid: str) -> None:
    stream_id = (await chat.api.get("/live-streams?limit=1")).json()["data"][0]["id"]
    response = await chat.api.patch(f"/live-streams/{stream_id}/chat", json={"slow_mode": 30})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["slow_mode"] == 30
    client = await chat.connect(pid, "slow")
    await client.send(type="send", text="first")
    await client.wait_for(is_message("first"))
    await client.send(type="send", text="second")
    reason = await client.error()
    assert "slow mode" in reason and ("30" in reason or "29" in reason)


async def test_signed_in_only(chat: ChatNode, pid: str) -> None:
    stream_id = (await chat.api.get("/live-streams?limit=1")).json()["data"][0]["id"]
    response = await chat.api.patch(f"/live-streams/{stream_id}/chat",
                                    json={"signed_in_only": True})
    assert response.status_code == 200
    anon = await chat.connect(pid, "anon")
    await anon.send(type="send", text="hi")
    assert "signed-in" in await anon.error()
    token = await chat.token("user-1", "Member", ["send"])
    member = await chat.connect(pid, token=token)
    identity = await member.wait_type("identity")
    assert identity["user"] == {"id": "user-1", "name": "Member"} and identity["signed_in"]
    await member.send(type="send", text="members only")
    await anon.wait_for(is_message("members only"))


async def test_bad_tokens_are_refused(chat: ChatNode, pid: str) -> None:
    for token in ["garbage", (await chat.token("u", "U", ["send"]))[:-3] + "abc"]:
        ws = await websockets.connect(chat.ws_url(pid, token=token))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame["type"] == "error" and "token" in frame["reason"]
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4401
    response = await chat.api.post("/chat-tokens", json={
        "user_id": "u", "display_name": "U", "capabilities": ["fly"]})
    assert response.status_code == 422


async def test_unknown_playback_id(chat: ChatNode) -> None:
    ws = await websockets.connect(chat.ws_url("nosuchplaybackid"))
    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert frame["type"] == "error" and "nosuchplaybackid" in frame["reason"]
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 4404


async def test_garbage_frames(chat: ChatNode, pid: str) -> None:
    client = await chat.connect(pid, "junk")
    await client.ws.send("{not json")
    assert "JSON" in await client.error()
    await client.ws.send(json.dumps({"type": "send", "text": "x" * 5000}))
    assert "larger than" in await client.error()
    await client.send(type="dance")
    assert "unknown" in await client.error()
    await client.ws.send(b"\x00\x01")
    assert "binary" in await client.error()
    await client.ws.send("[1, 2]")
    await client.wait_for(lambda f: f.get("type") == "error", start=len(client.frames))
    await asyncio.wait_for(client.closed.wait(), 10)
    assert client.ws.close_code == 1008
    # Everyone else is unaffected.
    other = await chat.connect(pid, "fine")
    await other.send(type="send", text="still here")
    await other.wait_for(is_message("still here"))


async def test_viewer_count(chat: ChatNode, pid: str) -> None:
    first = await chat.connect(pid)
    await first.wait_type("viewers", count=1)
    second = await chat.connect(pid)
    await first.wait_type("viewers", count=2)
    await second.close()
    await first.wait_for(lambda f: f.get("type") == "viewers" and f["count"] == 1,
                         start=len(first.frames))


async def test_system_messages(chat: ChatNode, pid: str) -> None:
    stream_id = (await chat.api.get("/live-streams?limit=1")).json()["data"][0]["id"]
    client = await chat.connect(pid)
    chat.node.bus.publish(Event(type=EventType.LIVE_STREAM_ACTIVE, stream_id=stream_id))
    await client.wait_type("system", text="The stream started")
    chat.node.bus.publish(Event(type=EventType.LIVE_STREAM_IDLE, stream_id=stream_id))
    await client.wait_type("system", text="The stream ended")


def raw_ws_that_never_reads(port: int, pid: str) -> socket.socket:
    """A WebSocket client with a tiny receive buffer that never reads after the handshake."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET /chat/{pid} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head
    return sock


async def test_slow_client_is_dropped_without_delaying_others(tmp_path: Path) -> None:
    async for chat in start_chat_node(
        # Rate limits far above what the fast client can send: only the slow viewer matters.
        tmp_path, chat_send_queue=4, chat_send_timeout=1.0, chat_user_rate=100_000,
        chat_user_burst=100_000, chat_room_rate=100_000, chat_room_burst=100_000,
    ):
        stream = await chat.stream()
        pid = stream["playback_ids"][0]["id"]
        fast = await chat.connect(pid, "fast")
        slow = await asyncio.to_thread(raw_ws_that_never_reads, chat.node.http_port, pid)
        try:
            await fast.wait_type("viewers", count=2)
            room = chat.node.chat.room(pid)  # type: ignore[union-attr]
            assert room is not None
            sent = 0
            while room.dropped == 0 and sent < 5000:
                for _ in range(100):
                    await fast.send(type="send", text=f"{sent:05d} " + "z" * 490)
                    sent += 1
                await fast.wait_for(is_message(f"{sent - 1:05d} " + "z" * 490), timeout=30)
            assert room.dropped == 1
            # The fast viewer got every message, in order, while the slow one was dropped.
            texts = [f["text"][:5] for f in fast.frames if f.get("type") == "message"]
            assert texts == [f"{i:05d}" for i in range(sent)]
            two = next(i for i, f in enumerate(fast.frames)
                       if f.get("type") == "viewers" and f["count"] == 2)
            await fast.wait_for(lambda f: f.get("type") == "viewers" and f["count"] == 1,
                                timeout=30, start=two + 1)
            assert chat.node.chat.stats()["connections"] == 1  # type: ignore[union-attr]
        finally:
            slow.close()
