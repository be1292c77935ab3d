"""What an attack on a running node found, performed again: floods of sockets and frames,
messages lost to a crash, a viewer chatting as "Host"."""

from __future__ import annotations

import asyncio
import gc
import resource
import shutil
import sqlite3
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import websockets
from tests.chat.conftest import ChatClient, ChatNode, start_chat_node
from tests.chat.test_room import is_message

from golive.chat.capacity import AddressSlots
from golive.chat.identity import ChatUser, name_key
from golive.core import connection_ceiling, raise_open_file_limit
from golive.store.chat import ChatStore, NewChatMessage

FULLWIDTH_HOST = "\uff28\uff4f\uff53\uff54"

# Findings 1: connections per address, frames per connection, open files ---------------


async def test_connections_per_address_are_limited(tmp_path: Path) -> None:
    async for chat in start_chat_node(tmp_path, chat_max_connections_per_address=3):
        pid = (await chat.stream())["playback_ids"][0]["id"]
        first = [await chat.connect(pid) for _ in range(3)]
        ws = await websockets.connect(chat.ws_url(pid), open_timeout=10)
        over = ChatClient(ws)
        chat.clients.append(over)
        assert "too many chat connections" in await over.error()
        await asyncio.wait_for(over.closed.wait(), 10)
        assert ws.close_code == 1008
        # A slot is given back when its socket goes.
        await first[0].close()
        assert chat.node.chat is not None
        # The slot is given back after the server closed its side: nothing to await.
        while chat.node.chat.addresses.count("127.0.0.1") > 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        again = await chat.connect(pid, "again")
        await again.send(type="send", text="hello")
        await again.wait_for(is_message("hello"))


FLOODS: list[dict[str, Any]] = [
    {"type": "join", "name": "flood"},
    {"type": "send", "text": "spam"},
    {"type": "delete", "id": 1},
    {"type": "ban", "user_id": "someone"},
    {"type": "clear"},
    {"type": "no-such-type"},
]


@pytest.mark.parametrize("frame", FLOODS, ids=[f["type"] for f in FLOODS])
async def test_every_frame_type_is_throttled_and_a_flood_closes_the_socket(
    chat: ChatNode, pid: str, frame: dict[str, Any]
) -> None:
    # Large limits, so that only the per-connection frame budget can stop the flood
    # (moderation and unknown frames are refused as bad frames on their own anyway).
    assert chat.node.chat is not None
    flooder = await chat.connect(pid, "flooder")
    for _ in range(200):
        if flooder.closed.is_set():
            break
        try:
            await flooder.send(**frame)
        except websockets.ConnectionClosed:
            break
    await asyncio.wait_for(flooder.closed.wait(), 10)
    assert flooder.ws.close_code == 1008
    reasons = {f["reason"] for f in flooder.frames if f.get("type") == "error"}
    if frame["type"] in ("join", "send"):  # valid frames: only the frame budget stops them
        assert "too many frames; slow down" in reasons
    # The room still serves everyone else.
    other = await chat.connect(pid, "other")
    await other.send(type="send", text="still here")
    await other.wait_for(is_message("still here"))


async def test_a_normal_client_is_not_throttled(tmp_path: Path) -> None:
    async for chat in start_chat_node(tmp_path, chat_user_rate=100, chat_user_burst=100):
        pid = (await chat.stream())["playback_ids"][0]["id"]
        writer = await chat.connect(pid, "w")
        for i in range(100):  # the whole user burst at once: 100 frames
            await writer.send(type="send", text=f"m{i}")
        await writer.wait_for(is_message("m99"))
        assert not [f for f in writer.frames if f.get("type") == "error"]


def test_address_slots() -> None:
    slots = AddressSlots(2)
    # An IPv6 client counts by its /64, whichever of its addresses it connects from.
    assert slots.take("2001:db8::1") and slots.take("2001:db8::2")
    assert not slots.take("2001:db8::3:4") and slots.take("2001:db8:0:1::1")
    for address in ("2001:db8::1", "2001:db8::2", "2001:db8:0:1::1"):
        slots.give_back(address)
    assert len(slots) == 0
    assert slots.take("a") and slots.take("a") and not slots.take("a")
    assert slots.take("b") and slots.count("a") == 2
    slots.give_back("a")
    assert slots.take("a") and not slots.take("a")
    for _ in range(3):
        slots.give_back("b")
    assert slots.count("b") == 0 and len(slots) == 1
    with pytest.raises(ValueError):
        AddressSlots(0)


def test_connection_ceiling_stays_below_the_open_file_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert connection_ceiling(50_000, -1, "chat_max_connections") == 50_000  # unlimited
    assert connection_ceiling(500, 100_000, "chat_max_connections") == 500
    with caplog.at_level("WARNING"):
        lowered = connection_ceiling(50_000, 4096, "chat_max_connections")
    assert lowered < 4096 and "chat_max_connections lowered" in caplog.text
    assert 1 <= connection_ceiling(50_000, 64, "chat_max_connections") < 64


def test_open_file_limit_is_raised_toward_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and soft > 256:
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        raised = raise_open_file_limit()
        assert raised == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if hard != resource.RLIM_INFINITY:
            assert raised == hard  # lowering the soft limit is always allowed; so is raising it back
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_node_clamps_max_connections_to_its_open_file_limit(tmp_path: Path) -> None:
    async for chat in start_chat_node(tmp_path, chat_max_connections=10**9):
        assert chat.node.chat is not None
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            assert chat.node.chat.max_connections < soft


# Sockets opened and closed leave nothing behind ---------------------------------------


async def open_and_close(chat: ChatNode, pid: str, count: int, parallel: int = 10) -> None:
    """`count` chat sockets, `parallel` at a time, each reading its first frame and closing."""
    async def one_after_another(n: int) -> None:
        for _ in range(n):
            async with websockets.connect(chat.ws_url(pid), open_timeout=10) as ws:
                await ws.recv()

    await asyncio.gather(*(one_after_another(count // parallel) for _ in range(parallel)))


async def all_gone(chat: ChatNode, *, kept: int = 0) -> None:
    """Until the chat service counts only the `kept` sockets still open (one room, one
    address), or nothing at all: connections, addresses, rooms."""
    service = chat.node.chat
    assert service is not None
    for _ in range(1000):
        if service.connection_count == kept and len(service.addresses) == min(kept, 1) \
                and service.stats()["rooms"] == min(kept, 1) \
                and service.addresses.count("127.0.0.1") == kept:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"chat state left behind: {service.stats()}, "
                         f"{len(service.addresses)} addresses")


async def test_closed_sockets_leave_no_chat_state(chat: ChatNode, pid: str) -> None:
    await open_and_close(chat, pid, 50)
    await all_gone(chat)
    assert chat.node.chat is not None
    assert not chat.node.chat._streams  # per-stream state goes with the last room


async def test_memory_per_socket_opened_and_closed_is_bounded(chat: ChatNode, pid: str) -> None:
    # A socket flood used to cost ~28 KiB per socket for good (32 MiB after 1,100): the
    # HTTP protocol a WebSocket upgraded from re-armed its head deadline and stayed
    # alive (and closed the WebSocket) head_timeout seconds later.
    watcher = await chat.connect(pid)  # keeps the room (and its per-stream state) open
    await open_and_close(chat, pid, 100)  # warm-up: caches, pools, first-use imports
    await all_gone(chat, kept=1)
    sockets = 300
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        await open_and_close(chat, pid, sockets)
        await all_gone(chat, kept=1)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(d.size_diff for d in after.compare_to(before, "filename"))
    # Before the fix: ~8 KiB per socket by tracemalloc's count (before allocator slack).
    assert growth < sockets * 1024, f"{growth / sockets:.0f} bytes kept per socket"
    assert not watcher.closed.is_set()


async def test_a_chat_socket_outlives_the_http_head_timeout(tmp_path: Path) -> None:
    async for chat in start_chat_node(tmp_path, http_head_timeout=0.5):
        pid = (await chat.stream())["playback_ids"][0]["id"]
        client = await chat.connect(pid, "stays")
        # Nothing to wait on but time: the old bug closed the socket (1006) once the
        # head deadline the upgraded HTTP protocol had re-armed ran out.
        await asyncio.sleep(4 * 0.5)
        assert not client.closed.is_set()
        await client.send(type="send", text="still open")
        await client.wait_for(is_message("still open"))


# Finding 2: nothing a viewer saw is lost to a crash ------------------------------------


def rows_on_disk(data_dir: Path, copy_to: Path) -> set[int]:
    """The message ids in a copy of the database files as they are at this instant,
    as a crashed process (kill -9: no shutdown, no flush) would leave them."""
    copy_to.mkdir()
    for name in ("golive.db", "golive.db-wal"):
        if (data_dir / name).exists():
            shutil.copyfile(data_dir / name, copy_to / name)
    with sqlite3.connect(copy_to / "golive.db") as db:
        return {row[0] for row in db.execute("SELECT id FROM chat_messages")}


async def test_every_delivered_message_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ChatStore.add_messages

    async def slow_disk(self: ChatStore, messages: list[NewChatMessage]) -> Any:
        await asyncio.sleep(0.2)  # a busy disk: a message published first would show now
        return await real(self, messages)

    monkeypatch.setattr(ChatStore, "add_messages", slow_disk)
    async for chat in start_chat_node(tmp_path, chat_user_rate=100, chat_user_burst=100):
        pid = (await chat.stream())["playback_ids"][0]["id"]
        alice = await chat.connect(pid, "alice")
        bob = await chat.connect(pid, "bob")
        for i in range(20):
            await alice.send(type="send", text=f"m{i}")
            if i % 7 == 0:
                # Whatever bob has seen so far must already be on disk.
                seen = await bob.wait_for(lambda f: f.get("type") == "message", start=0)
                seen_ids = {f["id"] for f in bob.frames if f.get("type") == "message"}
                assert seen["id"] in seen_ids
                assert seen_ids <= rows_on_disk(tmp_path / "data", tmp_path / f"crash{i}")
        await bob.wait_for(is_message("m19"))
        delivered = {f["id"] for f in bob.frames if f.get("type") == "message"}
        assert len(delivered) == 20
        assert delivered <= rows_on_disk(tmp_path / "data", tmp_path / "crash")


async def test_a_message_that_cannot_be_stored_is_shown_to_nobody(
    chat: ChatNode, pid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ChatStore.add_messages

    async def broken_disk(self: ChatStore, messages: list[NewChatMessage]) -> Any:
        raise OSError("disk full")

    alice = await chat.connect(pid, "alice")
    bob = await chat.connect(pid, "bob")
    monkeypatch.setattr(ChatStore, "add_messages", broken_disk)
    await alice.send(type="send", text="lost")
    assert "could not be stored" in await alice.error()
    monkeypatch.setattr(ChatStore, "add_messages", real)
    await alice.send(type="send", text="kept")
    await bob.wait_for(is_message("kept"))
    assert not [f for f in bob.frames + alice.frames if f.get("text") == "lost"]


# Finding 3: "Host" and moderators' names are theirs; roles are shown --------------------


@pytest.mark.parametrize("name", ["Host", "host", "  HOST ", FULLWIDTH_HOST, "hOsT"])
async def test_viewers_cannot_join_as_host(chat: ChatNode, pid: str, name: str) -> None:
    viewer = await chat.connect(pid)
    await viewer.send(type="join", name=name)
    assert "kept for the streamer" in await viewer.error()
    assert not [f for f in viewer.frames if f.get("type") == "identity"]


async def test_reserved_names_hold_for_every_way_in(chat: ChatNode, pid: str) -> None:
    base = f"http://127.0.0.1:{chat.node.http_port}/chat/{pid}/identity"
    assert (await chat.api.post(base, json={"name": " Host"})).status_code == 422
    # A signed identity with the name, as if minted before the name was kept.
    assert chat.node.chat is not None
    forged = chat.node.chat.signer.sign_identity(ChatUser(id="anon_1", name="HOST"))
    viewer = await chat.connect(pid, identity=forged)
    await viewer.send(type="send", text="I am the streamer")
    assert "kept for the streamer" in await viewer.error()
    # A moderator's name is kept once the moderator is in the room.
    await chat.connect(pid, token=await chat.token("mod-1", "Mia", ["send", "moderate"]))
    copycat = await chat.connect(pid)
    await copycat.send(type="join", name=" MIA ")
    assert "kept for the streamer" in await copycat.error()


async def test_messages_carry_the_role_of_their_sender(chat: ChatNode, pid: str) -> None:
    streamer = await chat.connect(
        pid, token=await chat.token("studio_0123456789abcdef", "Host", ["send", "moderate"]))
    mod = await chat.connect(pid, token=await chat.token("mod-1", "Mia", ["send", "moderate"]))
    signed = await chat.connect(pid, token=await chat.token("app-7", "Sam", ["send"]))
    viewer = await chat.connect(pid, "vic")
    for client, text in ((streamer, "s"), (mod, "m"), (signed, "a"), (viewer, "v")):
        await client.send(type="send", text=text)
        await viewer.wait_for(is_message(text))
    roles = {f["text"]: f["user"]["role"] for f in viewer.frames if f.get("type") == "message"}
    assert roles == {"s": "streamer", "m": "moderator", "a": "viewer", "v": "viewer"}
    # A late viewer's history shows them too.
    late = await chat.connect(pid)
    assert {f["text"]: f["user"]["role"] for f in late.frames
            if f.get("type") == "message"} == roles


def test_name_key_folds_lookalikes() -> None:
    assert name_key("  HOST ") == name_key(FULLWIDTH_HOST) == name_key("host")
    assert name_key("Big   Host") == "big host" != name_key("hosts")
