"""The encode-once fast path (frames written straight to the transport) and its fallback."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.chat import test_room
from tests.chat.conftest import ChatNode
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

import golive.chat.frames as chat_frames
import golive.chat.room as chat_room
import golive.chat.websocket as chat_websocket
from golive.chat.history import History
from golive.chat.transport import text_frame
from golive.store.chat import ChatMessageRecord


def parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frame_lengths(size: int) -> None:
    payload = ("é" * size).encode()[:size]
    frame = parse(text_frame(payload))
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload


async def test_chat_uses_the_fast_path_without_compression(chat: ChatNode, pid: str) -> None:
    # The websockets client offers permessage-deflate; /chat/ must not accept it.
    alice = await chat.connect(pid, "alice")
    assert alice.ws.response is not None
    assert "Sec-WebSocket-Extensions" not in alice.ws.response.headers
    room = chat.node.chat.room(pid)  # type: ignore[union-attr]
    assert room is not None and all(c.raw is not None for c in room.connections)
    bob = await chat.connect(pid, "bob")
    await alice.send(type="send", text="fast path")
    await bob.wait_for(test_room.is_message("fast path"))


@pytest.fixture
def asgi_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections as if the server exposed no transport: the ASGI send path."""
    monkeypatch.setattr(chat_websocket, "raw_channel", lambda scope: None)


@pytest.mark.usefixtures("asgi_only")
async def test_asgi_path_join_and_history(chat: ChatNode, pid: str) -> None:
    await test_room.test_join_history_and_two_clients(chat, pid)
    room = chat.node.chat.room(pid)  # type: ignore[union-attr]
    assert room is not None and all(c.raw is None for c in room.connections)


@pytest.mark.usefixtures("asgi_only")
async def test_asgi_path_drops_a_slow_client(tmp_path: Path) -> None:
    await test_room.test_slow_client_is_dropped_without_delaying_others(tmp_path)


@pytest.fixture
def encodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every batch the rooms JSON-encode, in order (`encode` itself still does the work)."""
    seen: list[str] = []
    real = chat_frames.encode  # what `golive.chat.room` calls as `encode`

    def counting(frames: list[dict[str, Any]]) -> str:
        payload = real(frames)
        seen.append(payload)
        return payload

    monkeypatch.setattr(chat_room, "encode", counting)
    return seen


async def one_message_is_encoded_once(chat: ChatNode, pid: str, encodes: list[str]) -> None:
    viewers = [await chat.connect(pid, f"viewer{i}") for i in range(6)]
    for v in viewers:
        await v.wait_type("viewers", count=len(viewers))
    text = "encoded once for six viewers"
    await viewers[0].send(type="send", text=text)
    for v in viewers:
        await v.wait_for(test_room.is_message(text))
    # One encode of the batch holding the message, whatever the audience, and every
    # viewer got those very bytes.
    holding = [p for p in encodes if text in p]
    assert len(holding) == 1
    for v in viewers:
        assert holding[0] in v.raw


async def test_one_message_is_encoded_once(chat: ChatNode, pid: str,
                                           encodes: list[str]) -> None:
    await one_message_is_encoded_once(chat, pid, encodes)
    room = chat.node.chat.room(pid)  # type: ignore[union-attr]
    assert room is not None and all(c.raw is not None for c in room.connections)


@pytest.mark.usefixtures("asgi_only")
async def test_asgi_path_encodes_once_too(chat: ChatNode, pid: str,
                                          encodes: list[str]) -> None:
    await one_message_is_encoded_once(chat, pid, encodes)


def record(ident: int) -> ChatMessageRecord:
    return ChatMessageRecord(id=ident, stream_id="s", user_id="u", user_name="U",
                             text=f"m{ident}", sent_at=datetime.now(UTC), deleted_at=None,
                             ip="")


def test_history_keeps_spares_for_deletions() -> None:
    history = History(3)
    history.fill([record(i) for i in range(1, 11)])
    assert [f["id"] for f in history.frames()] == [8, 9, 10]
    history.delete(9)
    history.delete(42)  # not there: nothing happens
    assert [f["id"] for f in history.frames()] == [7, 8, 10]
    history.add(record(12))
    history.add(record(11))  # out of order
    history.add(record(11))  # twice
    assert [f["id"] for f in history.frames()] == [10, 11, 12]
    history.clear()
    assert history.frames() == []
    assert History(0).frames() == []
