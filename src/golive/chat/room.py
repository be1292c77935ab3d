"""Chat rooms and their connections: batching, encode-once fan-out, slow-viewer dropping (chat).

A `Room` collects outgoing frames and flushes them at most every `flush_interval`
seconds: the batch is JSON-encoded once. A connection whose server exposes its
transport (`golive.chat.transport`, the node's own uvicorn) gets the same pre-built
WebSocket frame bytes written straight to its transport; a viewer whose unsent bytes
pass its limit is dropped. Any other connection gets the encoded string queued on a
bounded queue drained by its own writer task (the ASGI `send`); one whose queue
overflows is dropped. Either way a connection whose sending stalls (checked by the
service's ticker) is dropped too, so one slow viewer never delays the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket

from golive.chat.frames import encode, viewers_frame
from golive.chat.identity import ChatUser
from golive.chat.transport import RawChannel, text_frame
from golive.core import TokenBucket

log = logging.getLogger(__name__)

# WebSocket close codes in the application range (4000-4999).
CLOSE_TOO_SLOW = 4408
CLOSE_UNKNOWN_ROOM = 4404
CLOSE_BAD_TOKEN = 4401
CLOSE_FORBIDDEN = 4403  # a signed playback id's chat, without a valid token (aud c)
CLOSE_POLICY = 1008
CLOSE_GOING_AWAY = 1001
CLOSE_FULL = 1013

# A connection written to directly may have as many unsent bytes as its queue would
# hold batches (`chat_send_queue`) of this size, or of the batch being written when
# that is larger, before it counts as fallen behind.
BYTES_PER_QUEUED_BATCH = 8192
# Viewers one batch is written to per event loop turn (see `Room`).
FANOUT_CHUNK = 128
# The loop's idle moment between chunks while a room makes way (see `Room`): one tick of
# uvloop's millisecond timers.
MAKE_WAY_PAUSE = 0.001
# Frames of any type one connection may send, at least: far above what a chat page
# sends (a join, then at most the per-user message rate), far below a flood.
FRAME_RATE = 5.0
FRAME_BURST = 20


def frame_budget(user_rate: float, user_burst: int) -> tuple[float, int]:
    """Frames per second and burst for one connection: twice the user's message limits,
    so a client within them is never throttled, and never less than the floor above."""
    return max(FRAME_RATE, 2 * user_rate), max(FRAME_BURST, 2 * user_burst)


class ChatConnection:
    """One viewer's WebSocket: identity, address, and a bounded outgoing queue or buffer.

    With `raw` (the transport exposed by the node's server) frames are written
    directly and `buffer_limit` bounds the unsent bytes; without it a writer task
    sends queued frames through the ASGI `send`.

    Slotted: a big room holds ten thousand of these, and every attribute dict is one
    more object each full garbage collection walks.
    """

    __slots__ = (
        "_drained", "_queue", "_queue_size", "_reader", "_wakeup", "_writer", "bad_frames",
        "batch_seq", "buffer_limit", "close_code", "dropped", "frames", "ip", "queue_size",
        "raw", "room", "send_started", "stalled_since", "user", "websocket",
    )

    def __init__(
        self, websocket: WebSocket, user: ChatUser | None, ip: str, *, queue_size: int,
        raw: RawChannel | None = None, frame_rate: float = FRAME_RATE,
        frame_burst: int = FRAME_BURST,
    ) -> None:
        self.websocket = websocket
        self.raw = raw
        self.queue_size = queue_size
        self.buffer_limit = queue_size * BYTES_PER_QUEUED_BATCH
        self.stalled_since: float | None = None  # raw: loop time unsent bytes were first seen
        self.user = user
        self.ip = ip
        self.room: Room | None = None
        self.batch_seq = 0  # the newest of its room's batches it has had (`Room`)
        self.bad_frames = 0
        self.frames = TokenBucket(frame_rate, frame_burst, asyncio.get_running_loop().time())
        self.dropped: str | None = None  # why the server dropped it, once it has
        self.close_code = CLOSE_TOO_SLOW
        self.send_started: float | None = None  # loop time of the send in progress
        self._queue: deque[str] = deque()
        self._queue_size = queue_size
        self._wakeup: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None  # set when finish() waits
        self._writer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[Any] | None = None

    def start(self) -> None:
        """Start the writer; the calling task is the connection's reader."""
        self._reader = asyncio.current_task()
        if self.raw is None:
            self._writer = asyncio.create_task(self._write_loop(), name="chat-writer")

    def offer(self, payload: str) -> bool:
        """Queue an encoded frame; False when the queue is full (the viewer fell behind)."""
        if self.dropped is not None:
            return False
        if self.raw is not None:
            return self.write_frame(text_frame(payload.encode()))
        if len(self._queue) >= self._queue_size:
            return False
        self._queue.append(payload)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        return True

    def write_frame(self, frame: bytes) -> bool:
        """Raw path: write complete frame bytes; False when the viewer fell behind.

        A connection that is closing gets nothing more (its reader sees the close).
        """
        raw = self.raw
        assert raw is not None
        if not raw.write(frame):
            return True
        limit = max(self.buffer_limit, self.queue_size * len(frame))
        return raw.transport.get_write_buffer_size() <= limit

    def stalled(self, now: float, timeout: float) -> bool:
        """True when sending to this viewer has made no way for `timeout` seconds."""
        raw = self.raw
        if raw is None:
            return self.send_started is not None and now - self.send_started > timeout
        if raw.buffered() == 0:
            self.stalled_since = None
            return False
        if self.stalled_since is None:
            self.stalled_since = now
        return now - self.stalled_since > timeout

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not self._queue:
                    self._wakeup = loop.create_future()
                    try:
                        await self._wakeup
                    finally:
                        self._wakeup = None
                payload = self._queue.popleft()
                self.send_started = loop.time()
                await self.websocket.send_text(payload)
                self.send_started = None
                if not self._queue and self._drained is not None and not self._drained.done():
                    self._drained.set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.drop("connection lost")

    def drop(self, reason: str, code: int = CLOSE_TOO_SLOW) -> None:
        """Take the connection out of its room and stop both of its tasks."""
        if self.dropped is not None:
            return
        self.dropped = reason
        self.close_code = code
        self._queue.clear()
        if self.room is not None:
            self.room.remove(self)
        current = asyncio.current_task()
        if self._writer is not None and self._writer is not current:
            self._writer.cancel()
        if self._reader is not None and self._reader is not current:
            self._reader.cancel(msg=f"chat connection dropped: {reason}")

    async def finish(self, code: int, reason: str = "") -> None:
        """Stop the writer and close the socket, without waiting long on a stalled peer.

        A connection closed by the server for a reason (not dropped) first gets what is
        queued, such as the error frame that explains the close.
        """
        self._reader = None  # closing now: a late drop must not cancel the caller
        if self.raw is not None and self.dropped is not None and self.close_code == CLOSE_TOO_SLOW:
            # The peer is not reading: a close frame would wait behind the unsent bytes.
            self.raw.abort()
            return
        if self.dropped is None and self._queue:
            self._drained = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained, timeout=1.0)
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.websocket.close(code, reason), timeout=1.0)


class Room:
    """The connections watching one playback id, and the batches sent to them.

    Frames published within `flush_interval` of the last batch wait and go out together
    as the next one, JSON-encoded and framed once. Batches reach the viewers in passes:
    a pass visits every connection in turn, `FANOUT_CHUNK` per event loop turn (reading
    senders and storing messages go on between chunks), and writes to each whatever
    batches it has not had yet, in one write. A batch made while a pass is under way
    (once `flush_interval` has passed) joins it at once: the viewers still ahead get it
    in this pass, those behind in the next, which starts as soon as this one ends. So a
    message waits at most one pass for any viewer, instead of the rest of the pass in
    progress and then its own; every viewer gets the batches in order, one write per
    viewer per pass, and a large room batches more per write by itself (a pass takes
    roughly 1 ms per 100 viewers on the fast path). While the chat stores messages in a
    driver thread, the room makes way for it between chunks (`make_way`).
    """

    def __init__(self, playback_id: str, stream_id: str, *, flush_interval: float,
                 make_way: Callable[[], bool] | None = None) -> None:
        self.playback_id = playback_id
        self.stream_id = stream_id
        # While this returns True the chunks of a pass leave the loop idle for a moment
        # between them (`MAKE_WAY_PAUSE`): a thread that must run before any message can be
        # shown (the chat's SQLite store) gets the interpreter then. uvloop writes to a
        # socket without releasing the GIL and releases it only between its callbacks,
        # where the loop thread takes it straight back, so back-to-back chunks kept such a
        # thread waiting for up to a whole pass (~100 ms at 10,000 viewers).
        self._make_way = make_way
        self.connections: set[ChatConnection] = set()
        self.flush_interval = flush_interval
        self.batches = 0  # batches encoded (once each, whatever the audience)
        self.dropped = 0  # connections dropped for falling behind
        self._pending: list[dict[str, Any]] = []
        self._handle: asyncio.TimerHandle | None = None
        self._fanout: asyncio.Handle | None = None  # the next chunk of a pass, or pass
        self._in_pass = False  # a pass is under way (its chunk may be running right now)
        self._last_flush = 0.0
        self._announced_viewers = -1
        self.remote_viewers = 0  # this room's viewers on other nodes (`chat.cluster`)
        # Batches by number (the newest is `_seq`) that a connection may still lack:
        # its payload and its frame bytes. A connection has had every batch up to its
        # `batch_seq`.
        self._seq = 0
        self._sent: dict[int, tuple[str, bytes]] = {}
        self._pass_from = 0  # the newest batch when the pass under way began
        # What a connection that has had batches up to the key lacks: built once per
        # pass point, not once per viewer.
        self._behind: dict[int, tuple[list[str], bytes]] = {}

    @property
    def viewer_count(self) -> int:
        return len(self.connections)

    @property
    def total_viewers(self) -> int:
        """Viewers on this node plus those on the other nodes of a cluster."""
        return self.viewer_count + self.remote_viewers

    def add(self, connection: ChatConnection) -> None:
        connection.room = self
        connection.batch_seq = self._seq  # earlier batches are in the history it was sent
        self.connections.add(connection)

    def remove(self, connection: ChatConnection) -> None:
        self.connections.discard(connection)

    def publish(self, frame: dict[str, Any]) -> None:
        """Queue a frame for everyone; it goes out with the next batch."""
        self._pending.append(frame)
        if self._handle is None and self._fanout is None and not self._in_pass:
            self._schedule()

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_flush + self.flush_interval - loop.time())
        self._handle = loop.call_later(delay, self._flush)

    def announce_viewers(self) -> None:
        """Push the viewer count if it changed since the last announcement."""
        count = self.total_viewers
        if count != self._announced_viewers:
            self._announced_viewers = count
            self.publish(viewers_frame(count))

    def _flush(self) -> None:
        """The flush interval has passed with frames waiting: batch them, start a pass."""
        self._handle = None
        self._batch()
        self._start_pass()

    def _batch(self) -> None:
        """Make the waiting frames the newest batch, encoded and framed once."""
        self._last_flush = asyncio.get_running_loop().time()
        frames, self._pending = self._pending, []
        if not frames or not self.connections:
            return
        payload = encode(frames)
        self.batches += 1
        self._seq += 1
        # Encode-once: the same frame bytes for every viewer written to directly.
        self._sent[self._seq] = (payload, text_frame(payload.encode()))
        self._behind.clear()

    def _start_pass(self) -> None:
        self._fanout = None
        if not self._sent or not self.connections:
            return
        self._in_pass = True
        self._pass_from = self._seq
        self._send_chunk(list(self.connections), 0)

    def _lacking(self, since: int) -> tuple[list[str], bytes]:
        """The payloads and the joined frames of the batches after `since`."""
        found = self._behind.get(since)
        if found is None:
            numbers = range(since + 1, self._seq + 1)
            found = ([self._sent[n][0] for n in numbers],
                     b"".join([self._sent[n][1] for n in numbers]))
            self._behind[since] = found
        return found

    def _send_chunk(self, targets: list[ChatConnection], start: int) -> None:
        self._fanout = None
        if self._pending and (asyncio.get_running_loop().time()
                              >= self._last_flush + self.flush_interval):
            self._batch()  # joins this pass: the viewers ahead get it now
        seq = self._seq
        end = start + FANOUT_CHUNK
        behind: list[ChatConnection] = []
        for c in targets[start:end]:
            since = c.batch_seq
            if since >= seq:
                continue
            c.batch_seq = seq
            raw = c.raw
            if raw is None:
                for payload in self._lacking(since)[0]:
                    if not c.offer(payload):
                        behind.append(c)
                        break
                continue
            if c.dropped is not None:
                continue
            transport = raw.transport
            if raw.protocol.close_sent or transport.is_closing():
                continue
            frame = self._lacking(since)[1]
            transport.write(frame)
            unsent = transport.get_write_buffer_size()
            if unsent > c.buffer_limit and unsent > c.queue_size * len(frame):
                behind.append(c)
        for connection in behind:
            self.dropped += 1
            log.info("chat viewer dropped playback_id=%s stream_id=%s reason=queue_full",
                     self.playback_id, self.stream_id)
            connection.drop("fell behind")
        loop = asyncio.get_running_loop()
        if end < len(targets):
            if self._make_way is not None and self._make_way():
                self._fanout = loop.call_later(MAKE_WAY_PAUSE, self._send_chunk, targets, end)
            else:
                self._fanout = loop.call_soon(self._send_chunk, targets, end)
            return
        # The pass is over: everyone has had the batches up to the one it began with.
        self._in_pass = False
        for number in [n for n in self._sent if n <= self._pass_from]:
            del self._sent[number]
        self._behind.clear()
        if self._seq > self._pass_from:
            # A batch made during the pass missed the viewers visited before it.
            self._fanout = loop.call_soon(self._start_pass)
        elif self._pending and self._handle is None:
            self._schedule()

    def close(self) -> None:
        for handle in (self._handle, self._fanout):
            if handle is not None:
                handle.cancel()
        self._handle = None
        self._fanout = None
        self._in_pass = False
        self._pending.clear()
        self._sent.clear()
        self._behind.clear()
