"""The chat service: rooms per playback id, the send pipeline, moderation, system messages (chat).

Built once by the composition root. WebSocket connections (`websocket.py`) and the
REST API (`golive.api.chat`) both call into it, so every moderation action reaches
everyone in the room at once. Per-stream state (settings, active bans, rate
buckets) is loaded when a stream's first room opens and dropped with its last room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from golive.chat.capacity import AddressSlots
from golive.chat.cluster import ChatCluster
from golive.chat.frames import (
    Ban,
    Clear,
    Delete,
    FrameError,
    Join,
    Send,
    Timeout,
    encode,
    error_frame,
    message_frame,
    parse_frame,
    system_frame,
    viewers_frame,
)
from golive.chat.history import History
from golive.chat.identity import (
    RESERVED_NAMES,
    ChatSigner,
    ChatUser,
    InvalidIdentity,
    name_key,
    new_anonymous_id,
    stored_role,
    validate_display_name,
)
from golive.chat.review import ReviewHook
from golive.chat.room import CLOSE_GOING_AWAY, ChatConnection, Room
from golive.chat.terms import BlockedTerms, blocked_terms
from golive.core import (
    EventBus,
    EventType,
    Limit,
    RateLimits,
    connection_ceiling,
    raise_open_file_limit,
)
from golive.delivery import PlaybackAccess
from golive.settings import Settings
from golive.store import (
    ChatBanRecord,
    ChatMessageRecord,
    ChatSettingsRecord,
    ChatStore,
    NewChatMessage,
    Store,
)

log = logging.getLogger(__name__)

SYSTEM_TEXTS = {
    EventType.LIVE_STREAM_ACTIVE: "The stream started",
    EventType.LIVE_STREAM_IDLE: "The stream ended",
}
TICK_SECONDS = 1.0
# What a sender is told of a message or name with a blocked term (not which term: a
# list a spammer could read back term by term would be easier to get round).
BLOCKED_TERM_REASON = "your message was not sent: it contains a term this chat does not allow"
BLOCKED_NAME_REASON = "that name contains a term this chat does not allow: pick another"
MAX_RESERVED_NAMES = 1000
# Ids Redis may have handed out, cluster-wide, whose messages were not stored yet when it
# went away (a few group commits' worth of every node's messages, with a wide margin):
# the database's first id in an outage starts above them.
REDIS_IDS_IN_FLIGHT = 100_000


def _now() -> datetime:
    return datetime.now(UTC)


def reserved_reason(name: str) -> str:
    return f"the name {name.strip()!r} is kept for the streamer and moderators; pick another"


def clean_text(text: str) -> str:
    """Trimmed text without control characters (newlines and tabs stay)."""
    return "".join(
        ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc"
    ).strip()


@dataclass
class StreamChat:
    """What the service keeps about one stream while any of its rooms is open."""

    stream_id: str
    settings: ChatSettingsRecord
    bans: list[ChatBanRecord]
    history: History
    rooms: dict[str, Room] = field(default_factory=dict)
    # Name keys (`name_key`) only the streamer and moderators may chat under: the
    # studio's names plus those of every moderator seen in this stream's chat.
    reserved: set[str] = field(default_factory=lambda: set(RESERVED_NAMES))
    # The settings' blocked terms compiled, and the list they were compiled from.
    _blocked: tuple[tuple[str, ...], BlockedTerms] | None = field(default=None, init=False,
                                                                  repr=False)

    @property
    def blocked(self) -> BlockedTerms:
        """The blocked terms of the settings in force, compiled once per list (a sent
        message only compares the list's identity)."""
        terms = self.settings.blocked_terms
        if self._blocked is None or self._blocked[0] is not terms:
            self._blocked = (terms, blocked_terms(terms))
        return self._blocked[1]

    def reserve(self, user: ChatUser) -> None:
        if user.role != "viewer" and len(self.reserved) < MAX_RESERVED_NAMES:
            self.reserved.add(name_key(user.name))

    def name_taken(self, user: ChatUser) -> bool:
        """True when a viewer uses a name kept for the streamer or a moderator."""
        return user.role == "viewer" and name_key(user.name) in self.reserved

    def ban_for(self, user_id: str, ip: str, now: datetime) -> ChatBanRecord | None:
        """The longest active ban on this user id or address (a permanent one first)."""
        self.bans = [b for b in self.bans if b.active(now)]
        hits = [b for b in self.bans
                if (b.user_id is not None and b.user_id == user_id)
                or (b.ip is not None and b.ip == ip)]
        if not hits:
            return None
        forever = [b for b in hits if b.until is None]
        return forever[0] if forever else max(hits, key=lambda b: b.until or now)


class ChatService:
    """Every chat room of this node."""

    def __init__(self, settings: Settings, store: Store, bus: EventBus, *,
                 messages: ChatStore, signer: ChatSigner, review: ReviewHook,
                 access: PlaybackAccess | None = None,
                 limits: RateLimits | None = None) -> None:
        """`limits` counts senders across the cluster (the node's shared ones); default: here."""
        self.settings = settings
        self.limits = limits if limits is not None else RateLimits()
        self._user_limit = Limit("chat-user", settings.chat_user_rate, settings.chat_user_burst)
        self._room_limit = Limit("chat-room", settings.chat_room_rate, settings.chat_room_burst)
        self.access = access  # signed playback ids' chats need a token (aud c); None: open
        self.store = store
        self.messages = messages
        self.bus = bus
        self.signer = signer
        self.review = review  # closed by whoever built it (the composition root)
        self._streams: dict[str, StreamChat] = {}
        self._rooms: dict[str, Room] = {}
        self._open_lock = asyncio.Lock()
        # Messages get an id here (the next after the highest in the database, read
        # once); one writer task stores whatever has gathered in one transaction (group
        # commit) and only then publishes it, so nothing a viewer saw can be lost to a
        # crash, while a sender never waits on the database round trip itself.
        self._last_id: int | None = None
        self._database_ids = False  # with a cluster: Redis is away, the database picks ids
        self._unstored: list[tuple[NewChatMessage, ChatMessageRecord, ChatConnection]] = []
        self._unstored_ready = asyncio.Event()
        self._stored = asyncio.Event()  # set (and replaced) after each stored batch
        self._store_task: asyncio.Task[None] | None = None
        self._storing = False
        self._tasks: list[asyncio.Task[None]] = []
        self.connection_count = 0
        # For metrics: messages published to their rooms, and the sum of their delays from
        # accepted to published (the store's commit and the queue before it).
        self.messages_published = 0
        self.publish_delay_seconds = 0.0
        self.addresses = AddressSlots(settings.chat_max_connections_per_address)
        # With redis_url: ids, frames, moderation and viewer counts shared with other nodes.
        self.cluster: ChatCluster | None = None
        if settings.redis_url:
            self.cluster = ChatCluster(
                settings.redis_url, settings.redis_prefix, "chat_" + secrets.token_hex(8),
                on_frame=self._remote_frame, on_reload=self._reload,
                seed=messages.max_message_id)
        self.max_connections = settings.chat_max_connections  # clamped in start()

    # Lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.max_connections = connection_ceiling(self.settings.chat_max_connections,
                                                  raise_open_file_limit(), "chat_max_connections")
        subscription = self.bus.subscribe(accept=lambda e: e.type in SYSTEM_TEXTS)
        self._tasks.append(asyncio.create_task(self._system_messages(subscription),
                                               name="chat-system-messages"))
        self._tasks.append(asyncio.create_task(self._tick(), name="chat-ticker"))
        if self.cluster is not None:
            await self.cluster.start()

    async def close(self) -> None:
        await self._wait_stored()  # accepted messages are stored (and shown) before we go
        if self._store_task is not None:
            self._tasks.append(self._store_task)
            self._store_task = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.cluster is not None:
            await self.cluster.close()
        for room in list(self._rooms.values()):
            for connection in list(room.connections):
                connection.drop("server shutting down", CLOSE_GOING_AWAY)
            room.close()

    async def _system_messages(self, subscription: Any) -> None:
        with subscription:
            async for event in subscription:
                text = SYSTEM_TEXTS.get(event.type)
                if text is not None:
                    self.publish(event.stream_id, system_frame(text))

    async def _tick(self) -> None:
        """Once a second: push changed viewer counts, drop viewers whose send stalled."""
        loop = asyncio.get_running_loop()
        timeout = self.settings.chat_send_timeout
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = loop.time()
            for room in list(self._rooms.values()):
                stalled = [c for c in room.connections if c.stalled(now, timeout)]
                for connection in stalled:
                    room.dropped += 1
                    log.info("chat viewer dropped playback_id=%s stream_id=%s "
                             "reason=send_timeout", room.playback_id, room.stream_id)
                    connection.drop("send timed out")
            if self.cluster is not None:
                local = {r.playback_id: r.viewer_count for r in self._rooms.values()}
                others = await self.cluster.viewers(local)
                for playback_id, count in (others or {}).items():
                    if (counted := self._rooms.get(playback_id)) is not None:
                        counted.remote_viewers = count
            for room in list(self._rooms.values()):
                room.announce_viewers()

    # Rooms -------------------------------------------------------------------------------

    def room(self, playback_id: str) -> Room | None:
        return self._rooms.get(playback_id)

    async def open_room(self, playback_id: str) -> Room | None:
        """The room of a playback id (opened if needed); None for an unknown playback id."""
        room = self._rooms.get(playback_id)
        if room is not None:
            return room
        async with self._open_lock:
            room = self._rooms.get(playback_id)
            if room is not None:
                return room
            found = await self.store.find_stream_by_playback_id(playback_id)
            if found is None:
                return None
            stream_id = found[0].id
            state = self._streams.get(stream_id)
            if state is None:
                state = await self._load_stream(stream_id)
                self._streams[stream_id] = state
            room = Room(playback_id, stream_id, flush_interval=self.settings.chat_flush_interval,
                        make_way=self._storing_in_thread)
            state.rooms[playback_id] = room
            self._rooms[playback_id] = room
            return room

    async def _load_stream(self, stream_id: str) -> StreamChat:
        s = self.settings
        history = History(s.chat_history)
        recent = [replace(r, role=stored_role(r.user_id))
                  for r in await self.messages.recent_messages(stream_id, history.capacity)]
        history.fill(recent)
        if self._last_id is None:
            last_id = await self.messages.max_message_id()
            if self._last_id is None:
                self._last_id = last_id
        return StreamChat(
            stream_id=stream_id,
            settings=await self.messages.get_settings(stream_id),
            bans=await self.messages.active_bans(stream_id, _now()),
            history=history,
            reserved=set(RESERVED_NAMES) | {name_key(r.user_name) for r in recent
                                            if r.role != "viewer"},
        )

    async def enter(self, room: Room, connection: ChatConnection) -> None:
        """Add a connection: it gets the recent history (one batch), viewers and identity.

        The history comes from memory (`StreamChat.history`), not from a query per viewer.
        """
        room.add(connection)
        self.connection_count += 1
        state = self._streams.get(room.stream_id)
        if state is not None and connection.user is not None:
            state.reserve(connection.user)
        frames = state.history.frames() if state is not None else []
        frames.append(viewers_frame(room.total_viewers))
        if connection.user is not None:
            frames.append(self._identity_frame(connection.user))
        self.reply(connection, *frames)

    def leave(self, connection: ChatConnection) -> None:
        room = connection.room
        if room is None:
            return
        connection.room = None
        self.connection_count -= 1
        room.remove(connection)
        self.release(room)

    def release(self, room: Room) -> None:
        """Close a room that nobody is in any more."""
        if room.connections or self._rooms.get(room.playback_id) is not room:
            return
        room.close()
        self._rooms.pop(room.playback_id, None)
        if self.cluster is not None and not self.cluster.closed:
            task = asyncio.create_task(self.cluster.forget_viewers(room.playback_id))
            self._tasks.append(task)
            task.add_done_callback(self._forget_task)
        state = self._streams.get(room.stream_id)
        if state is not None:
            state.rooms.pop(room.playback_id, None)
            if not state.rooms:
                del self._streams[room.stream_id]

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    def publish(self, stream_id: str, frame: dict[str, Any]) -> None:
        """Send a frame to every room of a stream (every playback id shares the chat),
        on this node and, with a cluster, on the others."""
        self._publish_here(stream_id, frame)
        if self.cluster is not None:
            self.cluster.relay(stream_id, frame)

    def _publish_here(self, stream_id: str, frame: dict[str, Any]) -> None:
        state = self._streams.get(stream_id)
        if state is not None:
            for room in state.rooms.values():
                room.publish(frame)

    def _remote_frame(self, stream_id: str, frame: dict[str, Any]) -> None:
        """A frame another node published: kept in the history like one of ours, shown."""
        state = self._streams.get(stream_id)
        if state is None:
            return  # nobody here watches it; the history is read from the database on open
        kind = frame.get("type")
        if kind == "message":
            message_id = frame.get("id")
            if not isinstance(message_id, int):
                return
            state.history.add_frame(message_id, frame)
        elif kind == "deleted":
            message_id = frame.get("id")
            if not isinstance(message_id, int):
                return
            state.history.delete(message_id)
        elif kind == "cleared":
            state.history.clear()
        elif kind != "system":
            return
        self._publish_here(stream_id, frame)

    async def _reload(self, stream_id: str, what: str) -> None:
        """Another node changed a stream's bans or settings: read them again."""
        state = self._streams.get(stream_id)
        if state is None:
            return
        if what == "bans":
            state.bans = await self.messages.active_bans(stream_id, _now())
        elif what == "settings":
            state.settings = await self.messages.get_settings(stream_id)

    def reply(self, connection: ChatConnection, *frames: dict[str, Any]) -> None:
        if not connection.offer(encode(list(frames))):
            connection.drop("fell behind")

    def _identity_frame(self, user: ChatUser) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "identity", "user": {"id": user.id, "name": user.name},
                                 "signed_in": user.signed_in}
        if not user.signed_in:
            frame["token"] = self.signer.sign_identity(user)
        return frame

    # Frames from clients -----------------------------------------------------------------

    async def handle_frame(self, connection: ChatConnection, text: str) -> None:
        # Every frame costs a token before it is even parsed: joins sign a cookie and
        # refused moderation frames are answered, so none of them may come for free.
        if not connection.frames.take(asyncio.get_running_loop().time()):
            connection.bad_frames += 1
            self.reply(connection, error_frame("too many frames; slow down"))
            return
        try:
            command = parse_frame(text, self.settings.chat_max_frame_bytes)
        except FrameError as exc:
            connection.bad_frames += 1
            self.reply(connection, error_frame(str(exc)))
            return
        room = connection.room
        if room is None:
            return
        if isinstance(command, Send):
            reason = await self.send(connection, room, command.text)
            if reason is not None:
                self.reply(connection, error_frame(reason))
        elif isinstance(command, Join):
            self._join(connection, command.name)
        else:
            user = connection.user
            if user is None or not user.can_moderate:
                connection.bad_frames += 1  # a chat page never sends these for viewers
                self.reply(connection, error_frame("only moderators can do that"))
                return
            stream_id = room.stream_id
            if isinstance(command, Delete):
                if not await self.delete_message(stream_id, command.id):
                    self.reply(connection, error_frame(f"no message {command.id}"))
            elif isinstance(command, Timeout | Ban):
                ips: list[str | None] = [None]
                if command.by_ip:
                    ips = [*self._ips_of(stream_id, command.user_id)] or [None]
                seconds = command.seconds if isinstance(command, Timeout) else None
                for ip in ips:
                    await self.ban(stream_id, user_id=command.user_id, ip=ip, seconds=seconds,
                                   reason=f"by {user.name}")
            elif isinstance(command, Clear):
                await self.clear(stream_id)

    def _join(self, connection: ChatConnection, name: object) -> None:
        user = connection.user
        if user is not None and user.signed_in:
            self.reply(connection, self._identity_frame(user))  # a token fixes the name
            return
        try:
            clean = validate_display_name(name)
        except InvalidIdentity as exc:
            self.reply(connection, error_frame(str(exc)))
            return
        state = self._streams.get(connection.room.stream_id) if connection.room else None
        if state is not None and name_key(clean) in state.reserved:
            self.reply(connection, error_frame(reserved_reason(clean)))
            return
        if state is not None and state.blocked.found(clean):
            self.reply(connection, error_frame(BLOCKED_NAME_REASON))
            return
        connection.user = ChatUser(id=user.id if user else new_anonymous_id(), name=clean)
        self.reply(connection, self._identity_frame(connection.user))

    def _ips_of(self, stream_id: str, user_id: str) -> list[str]:
        state = self._streams.get(stream_id)
        if state is None:
            return []
        return sorted({c.ip for room in state.rooms.values() for c in room.connections
                       if c.user is not None and c.user.id == user_id})

    async def send(self, connection: ChatConnection, room: Room, raw: str) -> str | None:
        """Check, review, store and broadcast a message; the reason it was refused, or None."""
        user = connection.user
        if user is None:
            return 'pick a display name first: send {"type": "join", "name": "..."}'
        if not user.can_send:
            return "your chat token does not allow sending messages"
        state = self._streams.get(room.stream_id)
        if state is None:
            return "this chat room is closed"
        text = clean_text(raw)
        limit = self.settings.chat_max_message_length
        if not text:
            return "message is empty"
        if len(text) > limit:
            return f"message is longer than {limit} characters"
        now_dt = _now()
        ban = state.ban_for(user.id, connection.ip, now_dt)
        if ban is not None:
            if ban.until is None:
                return "you are banned from this chat"
            left = math.ceil((ban.until - now_dt).total_seconds())
            return f"you are timed out for {left} more seconds"
        if state.settings.signed_in_only and not user.signed_in:
            return "only signed-in users can chat here"
        if state.name_taken(user):
            return reserved_reason(user.name)
        if not user.can_moderate and state.blocked.found(text):
            return BLOCKED_TERM_REASON
        if not user.signed_in and not user.can_moderate and state.blocked.found(user.name):
            return BLOCKED_NAME_REASON  # a term added after this name joined
        # Slow mode, the sender's own rate and the room's, checked together (all or
        # nothing) and counted across the cluster's nodes when Redis links them.
        slow = state.settings.slow_mode
        checks = [(self._user_limit, f"{room.stream_id}:{user.id}"),
                  (self._room_limit, room.stream_id)]
        if slow and not user.can_moderate:
            # Named by its interval: streams with other intervals count apart.
            checks.insert(0, (Limit(f"chat-slow-{slow}s", 1 / slow, 1),
                              f"{room.stream_id}:{user.id}"))
        admission = await self.limits.take(*checks)
        refused = admission.refused_by
        if refused is self._room_limit:
            return "chat is busy"
        if refused is self._user_limit:
            return f"you are sending messages too fast; wait {admission.wait:.1f} s"
        if refused is not None:
            return f"slow mode is on: wait {math.ceil(admission.wait)} more seconds"
        if state.settings.review_hook_url:
            verdict = await self.review.review(
                state.settings.review_hook_url,
                {"stream_id": room.stream_id, "user": {"id": user.id, "name": user.name},
                 "text": text, "sent_at": now_dt.isoformat()},
                fallback=state.settings.review_hook_fallback,
                stream_id=room.stream_id,
            )
            if not verdict.allowed:
                return verdict.reason or "message was not allowed"
            text = clean_text(verdict.text)[:limit]
            if not text:
                return "message was not allowed"
        message_id = await self._next_id()
        message = NewChatMessage(
            stream_id=room.stream_id, user_id=user.id, user_name=user.name, text=text,
            ip=connection.ip, sent_at=now_dt, id=message_id,
        )
        record = ChatMessageRecord(
            id=message_id or 0, stream_id=room.stream_id, user_id=user.id, user_name=user.name,
            text=text, sent_at=now_dt, deleted_at=None, ip=connection.ip, role=user.role,
        )
        # Stored before anyone sees it: a crash may lose a message still being written,
        # never one a viewer already read (`_store_messages` publishes after the commit).
        self._store(message, record, connection)
        return None

    async def _next_id(self) -> int | None:
        """The id of a new message; None: the database picks it when storing.

        One node counts in memory from the highest id read once. A cluster takes ids from
        Redis; while Redis is away, the database picks them (in its write transaction,
        so nodes sharing it still get unique ones).
        """
        if self.cluster is not None:
            message_id = await self.cluster.next_id()
            if message_id is None and not self._database_ids:
                # The first id the database picks in this outage: past every id Redis
                # handed out, stored or still on its way (`ChatStore.prepare_database_ids`).
                await self.messages.prepare_database_ids(REDIS_IDS_IN_FLIGHT)
            self._database_ids = message_id is None
            return message_id
        assert self._last_id is not None  # read when the stream's first room opened
        self._last_id += 1
        return self._last_id

    def _store(self, message: NewChatMessage, record: ChatMessageRecord,
               sender: ChatConnection) -> None:
        """Queue an accepted message: stored with whatever else is waiting, then published.

        Nobody waits for it: not the room, not the sender's connection. The batch that
        gathers while one commit runs goes into the next, so the delay before a viewer
        sees a message is one commit at most plus the room's flush interval. A message
        that cannot be stored is never shown; its sender is told.
        """
        self._unstored.append((message, record, sender))
        self._unstored_ready.set()
        if self._store_task is None or self._store_task.done():
            self._store_task = asyncio.create_task(self._store_messages(), name="chat-store")

    def _storing_in_thread(self) -> bool:
        """A batch is being stored by a driver thread (SQLite's) that needs the GIL."""
        return self._storing and self.messages.stores_in_thread

    async def _store_messages(self) -> None:
        while True:
            await self._unstored_ready.wait()
            self._unstored_ready.clear()
            while self._unstored:
                batch, self._unstored = self._unstored, []
                self._storing = True
                try:
                    stored = await self.messages.add_messages([m for m, _, _ in batch])
                except Exception:
                    log.exception("chat messages not stored count=%d", len(batch))
                    for _, _, sender in batch:
                        if sender.dropped is None:
                            self.reply(sender, error_frame(
                                "the message could not be stored; try again"))
                else:
                    # Ids the database picked (Redis away) are known only now.
                    batch = [(m, r if r.id == s.id else replace(r, id=s.id), c)
                             for (m, r, c), s in zip(batch, stored, strict=True)]
                    published = _now()
                    self.messages_published += len(batch)
                    self.publish_delay_seconds += sum(
                        (published - record.sent_at).total_seconds() for _, record, _ in batch)
                    for _, record, _ in batch:
                        state = self._streams.get(record.stream_id)
                        if state is not None:
                            state.history.add(record)
                        self.publish(record.stream_id, message_frame(record))
                finally:
                    self._storing = False
                    self._stored.set()
                    self._stored = asyncio.Event()

    async def _wait_stored(self) -> None:
        """Until every message published so far is in the database (or failed to be)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while self._unstored or self._storing:
                    await self._stored.wait()

    # Moderation (WebSocket moderators and the REST API) ----------------------------------

    async def delete_message(self, stream_id: str, message_id: int) -> bool:
        await self._wait_stored()  # it may have been published but not stored yet
        if not await self.messages.delete_message(stream_id, message_id, _now()):
            return False
        state = self._streams.get(stream_id)
        if state is not None:
            state.history.delete(message_id)
        self.publish(stream_id, {"type": "deleted", "id": message_id})
        return True

    async def ban(
        self, stream_id: str, *, user_id: str | None, ip: str | None, seconds: float | None,
        reason: str,
    ) -> ChatBanRecord:
        """Ban (seconds None) or time out a user id and/or an address; effective at once."""
        now = _now()
        until = None if seconds is None else now + timedelta(seconds=seconds)
        record = await self.messages.add_ban(
            stream_id=stream_id, user_id=user_id, ip=ip, until=until,
            reason=reason or ("timed out" if until else "banned"), now=now,
        )
        state = self._streams.get(stream_id)
        if state is not None:
            state.bans.append(record)
        if self.cluster is not None:
            self.cluster.reload(stream_id, "bans")
        log.info("chat ban stream_id=%s ban_id=%s until=%s", stream_id, record.id, until)
        return record

    async def lift_ban(self, stream_id: str, ban_id: str) -> bool:
        if not await self.messages.remove_ban(stream_id, ban_id):
            return False
        state = self._streams.get(stream_id)
        if state is not None:
            state.bans = [b for b in state.bans if b.id != ban_id]
        if self.cluster is not None:
            self.cluster.reload(stream_id, "bans")
        return True

    async def clear(self, stream_id: str) -> None:
        await self._wait_stored()  # what is shown must be in the database to be cleared
        await self.messages.clear_messages(stream_id, _now())
        state = self._streams.get(stream_id)
        if state is not None:
            state.history.clear()
        self.publish(stream_id, {"type": "cleared"})

    async def update_settings(self, stream_id: str, **fields: Any) -> ChatSettingsRecord | None:
        record = await self.messages.update_settings(stream_id, _now(), **fields)
        state = self._streams.get(stream_id)
        if record is not None and state is not None:
            state.settings = record
        if record is not None and self.cluster is not None:
            self.cluster.reload(stream_id, "settings")
        return record

    def mint_token(
        self, *, user_id: str, display_name: str, capabilities: list[str], ttl: int,
        stream_id: str | None = None,
    ) -> str:
        return self.signer.mint_token(
            user_id=user_id, display_name=display_name, capabilities=capabilities, ttl=ttl,
            now=time.time(), stream_id=stream_id,
        )

    def connections_by_stream(self) -> dict[str, int]:
        """Open chat connections per stream id (a stream's rooms under each playback id)."""
        counts: dict[str, int] = {}
        for room in self._rooms.values():
            counts[room.stream_id] = counts.get(room.stream_id, 0) + room.viewer_count
        return counts

    def stats(self) -> dict[str, int]:
        rooms = list(self._rooms.values())
        return {
            "connections": self.connection_count,
            "rooms": len(rooms),
            "batches": sum(r.batches for r in rooms),
            "dropped": sum(r.dropped for r in rooms),
        }
