"""`Room`'s passes: a batch made while one is under way joins it, and every viewer gets
every batch once, in order, in one write per pass (fake transports, no sockets)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from tests.chat.test_transport import parse
from websockets.frames import Opcode

from golive.chat.room import FANOUT_CHUNK, ChatConnection, Room
from golive.chat.transport import RawChannel


class Transport:
    """Records what is written; `on_write` runs inside the room's chunk."""

    def __init__(self, log: list[Transport]) -> None:
        self.writes: list[bytes] = []
        self.log = log
        self.on_write: Any = None

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.log.append(self)
        if self.on_write is not None:
            hook, self.on_write = self.on_write, None
            hook()

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False


class Protocol:
    close_sent = False
    disconnected = False

    def __init__(self, transport: Transport) -> None:
        self.transport = transport


def connect(room: Room, log: list[Transport], *, raw: bool = True) -> ChatConnection:
    channel = None
    if raw:
        channel = RawChannel(cast(Any, Protocol(Transport(log))))
    connection = ChatConnection(cast(Any, None), None, "192.0.2.1", queue_size=8, raw=channel)
    room.add(connection)
    return connection


def transport(connection: ChatConnection) -> Transport:
    assert connection.raw is not None
    return cast(Transport, connection.raw.transport)


def texts(data: bytes) -> list[str]:
    """The `text` of each chat frame in one write (several WebSocket frames, each a
    frame object or an array of them)."""
    out = []
    while data:
        frame = parse(data)
        assert frame.opcode is Opcode.TEXT
        head = 2 if len(frame.data) < 126 else 4
        data = data[head + len(frame.data):]
        value = json.loads(bytes(frame.data))
        out += [f["text"] for f in (value if isinstance(value, list) else [value])]
    return out


def passes_over(room: Room) -> asyncio.Event:
    """Set whenever a pass ends with no other queued behind it."""
    over = asyncio.Event()
    real = room._send_chunk

    def chunk(targets: list[ChatConnection], start: int) -> None:
        real(targets, start)
        if not room._in_pass and room._fanout is None:
            over.set()

    room._send_chunk = chunk  # type: ignore[method-assign]
    return over


async def test_a_batch_made_during_a_pass_joins_it() -> None:
    room = Room("pid", "stream", flush_interval=0.0)
    log: list[Transport] = []
    viewers = [connect(room, log) for _ in range(FANOUT_CHUNK * 3)]
    slow = connect(room, log, raw=False)  # the ASGI path: payloads on its queue
    late: list[ChatConnection] = []

    def second_message() -> None:
        # Inside the pass's first chunk: a new message, and a viewer who joins now.
        if not late:
            room.publish({"type": "message", "text": "b"})
            late.append(connect(room, log))

    for v in viewers:
        transport(v).on_write = second_message
    over = passes_over(room)
    room.publish({"type": "message", "text": "a"})
    await asyncio.wait_for(over.wait(), 10)
    assert not room._pending and room._handle is None

    first = {t: i for i, t in reversed(list(enumerate(log)))}  # each one's first write
    for v in viewers:
        got = [text for data in transport(v).writes for text in texts(data)]
        assert got == ["a", "b"], got  # both, once, in order
    # The first chunk had "a" before "b" existed, and got "b" in the next pass; the
    # viewers still ahead got both in one write.
    twice = [transport(v) for v in viewers if len(transport(v).writes) == 2]
    once = [transport(v) for v in viewers if len(transport(v).writes) == 1]
    assert len(twice) in (FANOUT_CHUNK - 1, FANOUT_CHUNK)  # the ASGI one may be in it
    assert len(twice) + len(once) == len(viewers)
    assert max(first[t] for t in twice) < min(first[t] for t in once)
    # The viewer who joined during the pass gets what was made after it joined.
    assert [text for data in transport(late[0]).writes for text in texts(data)] == ["b"]
    # The ASGI connection gets the batches as separate payloads, in order.
    assert [json.loads(p)["text"] for p in slow._queue] == ["a", "b"]
    assert room.batches == 2
    assert room._sent == {} and room._behind == {}  # nothing kept once everyone has it


async def test_batches_wait_for_the_flush_interval() -> None:
    # Messages published while a pass runs, within the flush interval of the last batch,
    # go out together as one batch.
    room = Room("pid", "stream", flush_interval=60.0)
    log: list[Transport] = []
    viewers = [connect(room, log) for _ in range(FANOUT_CHUNK * 2)]
    over = passes_over(room)
    room.publish({"type": "message", "text": "a"})
    room._handle.cancel()  # type: ignore[union-attr]
    room._flush()  # the first batch goes out now; the next may not for a minute
    room.publish({"type": "message", "text": "b"})
    room.publish({"type": "message", "text": "c"})
    await asyncio.wait_for(over.wait(), 10)
    assert room._handle is not None  # "b" and "c" wait for the interval
    assert all(texts(b"".join(transport(v).writes)) == ["a"] for v in viewers)
    over.clear()
    room._handle.cancel()
    room._flush()
    await asyncio.wait_for(over.wait(), 10)
    assert not room._pending and room._handle is None
    assert all(texts(b"".join(transport(v).writes)) == ["a", "b", "c"] for v in viewers)
    assert all(len(transport(v).writes) == 2 for v in viewers)
    assert room.batches == 2
    room.close()


async def test_chunks_leave_the_loop_idle_while_the_room_makes_way() -> None:
    # While the chat's store runs in a driver thread, the next chunk waits a timer tick
    # (the loop idles, the thread gets the interpreter) instead of following at once.
    storing = True
    room = Room("pid", "stream", flush_interval=0.0, make_way=lambda: storing)
    log: list[Transport] = []
    viewers = [connect(room, log) for _ in range(FANOUT_CHUNK * 3)]
    over = passes_over(room)
    room.publish({"type": "message", "text": "a"})
    room._handle.cancel()  # type: ignore[union-attr]
    room._flush()  # the first chunk
    assert isinstance(room._fanout, asyncio.TimerHandle)
    storing = False  # stored: the rest follows turn by turn
    await asyncio.wait_for(over.wait(), 10)
    assert all(texts(b"".join(transport(v).writes)) == ["a"] for v in viewers)

    over.clear()
    room.publish({"type": "message", "text": "b"})
    room._handle.cancel()  # type: ignore[union-attr]
    room._flush()
    assert room._fanout is not None and not isinstance(room._fanout, asyncio.TimerHandle)
    await asyncio.wait_for(over.wait(), 10)
    assert all(texts(b"".join(transport(v).writes)) == ["a", "b"] for v in viewers)
