"""The chat tables: messages, bans and per-stream chat settings (control plane, for golive.chat).

Same rules as the other repositories (`golive.store.db.Tables`): every method opens
its own short session, writes run in `WRITE_OPTION` sessions, and only frozen records
leave this module. Rows go away with their stream (foreign keys with ON DELETE CASCADE).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from golive.core import random_id
from golive.store.db import WriterSessions, create_sessionmaker
from golive.store.models import REVIEW_FALLBACKS, ChatBan, ChatMessage, ChatSettings, LiveStream


@dataclass(frozen=True, slots=True)
class ChatMessageRecord:
    id: int
    stream_id: str
    user_id: str
    user_name: str
    text: str
    sent_at: datetime
    deleted_at: datetime | None
    ip: str
    # Shown with the name ("streamer" | "moderator" | "viewer"); not a column: set by
    # the chat when it accepts a message, derived from the user id when read back.
    role: str = "viewer"


@dataclass(frozen=True, slots=True)
class NewChatMessage:
    """A message to store (`ChatStore.add_messages`); without an id the database picks one."""

    stream_id: str
    user_id: str
    user_name: str
    text: str
    ip: str
    sent_at: datetime
    id: int | None = None


@dataclass(frozen=True, slots=True)
class ChatBanRecord:
    id: str
    stream_id: str
    user_id: str | None
    ip: str | None
    until: datetime | None  # None: until lifted
    reason: str
    created_at: datetime

    def active(self, now: datetime) -> bool:
        return self.until is None or self.until > now


@dataclass(frozen=True, slots=True)
class ChatSettingsRecord:
    stream_id: str
    slow_mode: int = 0
    signed_in_only: bool = False
    review_hook_url: str | None = None
    review_hook_fallback: str = "allow"
    # Words and phrases the chat refuses, as `normalize_term` keeps them (golive.chat.terms).
    blocked_terms: tuple[str, ...] = ()


UPDATABLE_CHAT_SETTINGS = frozenset(
    {"slow_mode", "signed_in_only", "review_hook_url", "review_hook_fallback", "blocked_terms"}
)
MAX_BLOCKED_TERMS = 1000
MAX_TERM_LENGTH = 100


def fold_text(text: str) -> str:
    """`text` as blocked terms are matched against it: NFKC, case-folded, without format
    characters (zero-width spaces and joiners, which would hide a term)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")


def normalize_term(term: str) -> str:
    """A blocked term as it is kept and matched: `fold_text`, whitespace runs as one
    space, trimmed."""
    return " ".join(fold_text(term).split())


def _blocked_terms(value: object) -> list[str]:
    """A list of blocked terms checked and normalized: duplicates dropped, order kept."""
    if not isinstance(value, list):
        raise ValueError("blocked_terms must be a list of strings")
    if len(value) > MAX_BLOCKED_TERMS:
        raise ValueError(f"blocked_terms holds at most {MAX_BLOCKED_TERMS} terms")
    terms: dict[str, None] = {}
    for item in value:
        if not isinstance(item, str):
            raise ValueError("blocked_terms must be a list of strings")
        if any(unicodedata.category(ch) == "Cc" for ch in item):
            raise ValueError("a blocked term cannot hold control characters")
        term = normalize_term(item)
        core = term.strip("*")
        if not core.strip():
            raise ValueError("a blocked term needs a letter, digit or sign besides '*'")
        if "*" in core:  # inner wildcards could make matching take exponential time
            raise ValueError("a '*' in a blocked term stands only at its start or end")
        term = ("*" if term.startswith("*") else "") + core.strip() + (
            "*" if term.endswith("*") else "")
        if len(term) > MAX_TERM_LENGTH:
            raise ValueError(f"a blocked term is at most {MAX_TERM_LENGTH} characters")
        terms[term] = None
    return list(terms)


def _stored_terms(raw: str | None) -> tuple[str, ...]:
    """The stored list (JSON), or none if it cannot be read."""
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return ()
    if not isinstance(value, list):
        return ()
    return tuple(term for term in value[:MAX_BLOCKED_TERMS] if isinstance(term, str) and term)


# Rows in one SQLite INSERT: 7 values each, under the 999 variables older SQLite allows.
# A larger batch (a flood) takes the session's transaction instead.
SQLITE_STATEMENT_ROWS = 140
_SQLITE_INSERT_HEAD = (
    "INSERT INTO chat_messages (id, stream_id, user_id, user_name, text, sent_at, "
    "deleted_at, ip) VALUES "
)


def _message(row: ChatMessage) -> ChatMessageRecord:
    return ChatMessageRecord(
        id=int(row.id),
        stream_id=row.stream_id,
        user_id=row.user_id,
        user_name=row.user_name,
        text=row.text,
        sent_at=row.sent_at,
        deleted_at=row.deleted_at,
        ip=row.ip,
    )


def _stored(message: NewChatMessage, message_id: int) -> ChatMessageRecord:
    """The record of a message stored with `message_id` (as `_message` reads it back)."""
    m = message
    return ChatMessageRecord(id=message_id, stream_id=m.stream_id, user_id=m.user_id,
                             user_name=m.user_name, text=m.text, sent_at=m.sent_at,
                             deleted_at=None, ip=m.ip[:64])


def _ban(row: ChatBan) -> ChatBanRecord:
    return ChatBanRecord(
        id=row.id,
        stream_id=row.stream_id,
        user_id=row.user_id,
        ip=row.ip,
        until=row.until,
        reason=row.reason,
        created_at=row.created_at,
    )


def _settings(row: ChatSettings) -> ChatSettingsRecord:
    return ChatSettingsRecord(
        stream_id=row.stream_id,
        slow_mode=int(row.slow_mode),
        signed_in_only=bool(row.signed_in_only),
        review_hook_url=row.review_hook_url,
        review_hook_fallback=row.review_hook_fallback,
        blocked_terms=_stored_terms(row.blocked_terms),
    )


def _clean_settings(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - UPDATABLE_CHAT_SETTINGS)
    if unknown:
        raise ValueError(f"cannot update chat settings {', '.join(unknown)}")
    clean = dict(fields)
    if "slow_mode" in clean:
        value = clean["slow_mode"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3600:
            raise ValueError("slow_mode must be a whole number of seconds from 0 to 3600")
    if "signed_in_only" in clean and not isinstance(clean["signed_in_only"], bool):
        raise ValueError("signed_in_only must be true or false")
    if "review_hook_fallback" in clean and clean["review_hook_fallback"] not in REVIEW_FALLBACKS:
        raise ValueError("review_hook_fallback must be allow or deny")
    url = clean.get("review_hook_url")
    if url is not None and (not isinstance(url, str) or len(url) > 2000
                            or not url.startswith(("http://", "https://"))):
        raise ValueError("review_hook_url must be an http:// or https:// URL")
    if "blocked_terms" in clean:
        clean["blocked_terms"] = json.dumps(_blocked_terms(clean["blocked_terms"]),
                                            ensure_ascii=False)
    return clean


# PostgreSQL: message ids the database picks come from this sequence; changes to it are
# serialized across nodes by this transaction-level advisory lock ("golive" + 1).
_ID_SEQUENCE = "chat_messages_id_seq"
_ID_LOCK = 0x676F6C6976650001
# The highest id the sequence has handed out (0 before the first).
_HANDED_OUT = f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {_ID_SEQUENCE}"
# Raises the sequence to at least :floor (never lowers it).
_RAISE = f"setval('{_ID_SEQUENCE}', GREATEST(:floor, ({_HANDED_OUT})))"
_RAISE_SEQUENCE = text(f"SELECT {_RAISE}")
_LOCK_IDS = text("SELECT pg_advisory_xact_lock(:key)")
# A batch in one PostgreSQL statement (`ChatStore._add_messages_postgres`): the rows from
# arrays, an id from the sequence where none is given (materialized: once per row), the
# ids back in the rows' order.
_BATCH = f"""
WITH src AS MATERIALIZED (
    SELECT COALESCE(r.id, nextval('{_ID_SEQUENCE}')) AS id, r.stream_id, r.user_id,
           r.user_name, r.text, r.sent_at, r.ip, r.n
    FROM unnest(CAST(:ids AS bigint[]), CAST(:stream_ids AS text[]),
                CAST(:user_ids AS text[]), CAST(:user_names AS text[]),
                CAST(:texts AS text[]), CAST(:sent AS timestamptz[]), CAST(:ips AS text[]))
         WITH ORDINALITY AS r(id, stream_id, user_id, user_name, text, sent_at, ip, n)
), ins AS (
    INSERT INTO chat_messages (id, stream_id, user_id, user_name, text, sent_at, deleted_at, ip)
    SELECT id, stream_id, user_id, user_name, text, sent_at, NULL, ip FROM src
)"""
_INSERT = text(_BATCH + "\nSELECT id FROM src ORDER BY n")
# With ids given: the sequence raised past them too. The lock is taken in the FROM before
# the sequence is read in the select list (as `_LOCK_IDS` then `_RAISE_SEQUENCE` do).
_INSERT_RAISING = text(_BATCH + f""", raised AS (
    SELECT {_RAISE} FROM (SELECT pg_advisory_xact_lock(:key)) AS locked
)
SELECT src.id FROM src, raised ORDER BY src.n""")


class ChatStore:
    """Chat rows of one database; shares the engine of `golive.store.Store`.

    Message ids come either from the caller (a cluster's Redis counter) or, without one,
    from the database. On PostgreSQL an explicit id never moves the id sequence by
    itself, so every batch with explicit ids also raises the sequence to its highest id
    (under an advisory lock: two nodes raising it at once could otherwise lower it), and
    `prepare_database_ids` lifts the sequence past ids still on their way in when a node
    starts letting the database pick. Redis is seeded from `max_message_id`, which
    counts the sequence too. Ids then stay unique and increasing through an outage of
    Redis and its recovery.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._postgres = engine.dialect.name == "postgresql"
        self._sqlite = engine.dialect.name == "sqlite"
        self._engine = engine
        bind = ChatMessage.__table__.c.sent_at.type.bind_processor(engine.dialect)
        self._bind_sent_at: Callable[[Any], Any] = bind or (lambda value: value)
        self._read: async_sessionmaker[AsyncSession] = create_sessionmaker(engine)
        self._write = WriterSessions(engine)

    @property
    def stores_in_thread(self) -> bool:
        """Writes go through a driver thread (aiosqlite's): Python code that needs the GIL
        between the event loop's turns. asyncpg's are the loop's own."""
        return self._sqlite

    # Messages ----------------------------------------------------------------------------

    async def add_message(
        self, *, stream_id: str, user_id: str, user_name: str, text: str, ip: str,
        sent_at: datetime,
    ) -> ChatMessageRecord:
        row = ChatMessage(
            stream_id=stream_id, user_id=user_id, user_name=user_name, text=text,
            sent_at=sent_at, deleted_at=None, ip=ip[:64],
        )
        async with self._write.begin() as session:
            session.add(row)
            await session.flush()
            return _message(row)

    async def add_messages(self, messages: list[NewChatMessage]) -> list[ChatMessageRecord]:
        """Store several messages in one transaction (group commit); records in the same order.

        The chat stores each batch before showing it, so this is on every message's path:
        one statement on either database; a SQLite batch too large for one statement (a
        flood) goes through the session.
        """
        if not messages:
            return []
        if self._postgres:
            return await self._add_messages_postgres(messages)
        if self._sqlite and len(messages) <= SQLITE_STATEMENT_ROWS:
            return await self._add_messages_sqlite(messages)
        rows = [
            ChatMessage(id=m.id, stream_id=m.stream_id, user_id=m.user_id,
                        user_name=m.user_name, text=m.text, sent_at=m.sent_at,
                        deleted_at=None, ip=m.ip[:64])
            for m in messages
        ]
        async with self._write.begin() as session:
            session.add_all(rows)
            await session.flush()
            return [_message(row) for row in rows]

    async def _add_messages_sqlite(
        self, messages: list[NewChatMessage]
    ) -> list[ChatMessageRecord]:
        """One INSERT of every row, its own transaction, in one call to the driver's thread.

        The chat stores a batch before showing it, while the event loop is busy sending
        the previous one: each of the session's twenty driver calls waited for the GIL
        and a loop turn (`WriterSessions.sqlite_driver`). Values are bound as the ORM
        binds them.
        """
        sql = _SQLITE_INSERT_HEAD + ", ".join(["(?, ?, ?, ?, ?, ?, NULL, ?)"] * len(messages)) + (
            " RETURNING id")
        params: list[Any] = []
        for m in messages:
            params += (m.id, m.stream_id, m.user_id, m.user_name, m.text,
                       self._bind_sent_at(m.sent_at), m.ip[:64])
        async with self._write.sqlite_driver() as driver:
            returned = {int(row[0]) for row in await driver.execute_fetchall(sql, params)}
        # RETURNING's order is unspecified; the ids SQLite picked (one above the highest
        # row, row by row) rise in the order of their rows.
        picked = iter(sorted(returned.difference(m.id for m in messages if m.id is not None)))
        return [_stored(m, m.id if m.id is not None else next(picked)) for m in messages]

    async def _add_messages_postgres(
        self, messages: list[NewChatMessage]
    ) -> list[ChatMessageRecord]:
        """One statement, its own transaction: the rows, and with ids given the sequence
        raised past them under the advisory lock, held to the commit.

        Through the session a batch took six round trips (pre-ping, BEGIN, INSERT, lock,
        raise, COMMIT), each waiting for a turn of the event loop that is sending the
        previous batch; this is two (the pre-ping and the statement).
        """
        given = [m.id for m in messages if m.id is not None]
        params: dict[str, Any] = {
            "ids": [m.id for m in messages],
            "stream_ids": [m.stream_id for m in messages],
            "user_ids": [m.user_id for m in messages],
            "user_names": [m.user_name for m in messages],
            "texts": [m.text for m in messages],
            "sent": [self._bind_sent_at(m.sent_at) for m in messages],
            "ips": [m.ip[:64] for m in messages],
        }
        if given:
            params.update(key=_ID_LOCK, floor=max(given))
        async with self._engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            result = await autocommit.execute(
                _INSERT_RAISING if given else _INSERT, params)
            ids = [int(row[0]) for row in result]
        return [_stored(m, message_id) for m, message_id in zip(messages, ids, strict=True)]

    async def prepare_database_ids(self, margin: int) -> None:
        """Before the database picks message ids again (the cluster's Redis is away).

        Raises PostgreSQL's id sequence to the highest stored id plus `margin`: room for
        ids Redis handed out just before the outage whose messages are not stored yet.
        Nothing to do on SQLite, which picks one above the highest row.
        """
        if not self._postgres:
            return
        async with self._write.begin() as session:
            await session.execute(_LOCK_IDS, {"key": _ID_LOCK})
            top = await session.scalar(select(func.max(ChatMessage.id)))
            await session.execute(_RAISE_SEQUENCE, {"floor": int(top or 0) + margin})

    async def max_message_id(self) -> int:
        """The highest message id used so far (deleted messages included); 0 when none.

        On PostgreSQL also the highest id its sequence handed out, stored yet or not.
        """
        async with self._read() as session:
            value = int(await session.scalar(select(func.max(ChatMessage.id))) or 0)
            if self._postgres:
                handed = await session.scalar(text(_HANDED_OUT))
                value = max(value, int(handed or 0))
            return value

    async def recent_messages(self, stream_id: str, limit: int) -> list[ChatMessageRecord]:
        """The newest `limit` messages that are not deleted, oldest first."""
        if limit <= 0:
            return []
        async with self._read() as session:
            rows = (
                await session.scalars(
                    select(ChatMessage)
                    .where(ChatMessage.stream_id == stream_id, ChatMessage.deleted_at.is_(None))
                    .order_by(ChatMessage.id.desc())
                    .limit(limit)
                )
            ).all()
            return [_message(row) for row in reversed(rows)]

    async def list_messages(
        self, stream_id: str, *, limit: int = 100, before: int | None = None,
        include_deleted: bool = False,
    ) -> list[ChatMessageRecord]:
        """Messages newest first; `before` is the id of the last message seen."""
        query = select(ChatMessage).where(ChatMessage.stream_id == stream_id)
        if not include_deleted:
            query = query.where(ChatMessage.deleted_at.is_(None))
        if before is not None:
            query = query.where(ChatMessage.id < before)
        async with self._read() as session:
            rows = (await session.scalars(query.order_by(ChatMessage.id.desc()).limit(limit))).all()
            return [_message(row) for row in rows]

    async def messages_between(
        self, stream_id: str, *, start: datetime, end: datetime,
        after: tuple[datetime, int] | None = None, limit: int = 100,
    ) -> list[ChatMessageRecord]:
        """Undeleted messages sent in [start, end), oldest first by (sent_at, id); `after`
        is the (sent_at, id) of the last message of the previous page (keyset paging)."""
        if limit <= 0:
            return []
        query = select(ChatMessage).where(
            ChatMessage.stream_id == stream_id,
            ChatMessage.deleted_at.is_(None),
            ChatMessage.sent_at >= start,
            ChatMessage.sent_at < end,
        )
        if after is not None:
            sent_at, message_id = after
            query = query.where(or_(
                ChatMessage.sent_at > sent_at,
                and_(ChatMessage.sent_at == sent_at, ChatMessage.id > message_id),
            ))
        query = query.order_by(ChatMessage.sent_at, ChatMessage.id).limit(limit)
        async with self._read() as session:
            return [_message(row) for row in (await session.scalars(query)).all()]

    async def moderation_between(
        self, stream_id: str, *, start: datetime, end: datetime, limit: int = 1000,
    ) -> tuple[list[ChatMessageRecord], list[ChatBanRecord]]:
        """Moderation in [start, end): the messages deleted then (oldest first by deleted_at)
        and the bans made then (oldest first), at most `limit` of each (post-event reports)."""
        if limit <= 0:
            return [], []
        async with self._read() as session:
            deleted = (await session.scalars(
                select(ChatMessage).where(
                    ChatMessage.stream_id == stream_id,
                    ChatMessage.deleted_at >= start, ChatMessage.deleted_at < end,
                ).order_by(ChatMessage.deleted_at, ChatMessage.id).limit(limit)
            )).all()
            bans = (await session.scalars(
                select(ChatBan).where(
                    ChatBan.stream_id == stream_id,
                    ChatBan.created_at >= start, ChatBan.created_at < end,
                ).order_by(ChatBan.created_at, ChatBan.id).limit(limit)
            )).all()
            return [_message(row) for row in deleted], [_ban(row) for row in bans]

    async def delete_message(self, stream_id: str, message_id: int, now: datetime) -> bool:
        """Mark a message deleted; False if the stream has no such (undeleted) message."""
        async with self._write.begin() as session:
            result = await session.execute(
                update(ChatMessage)
                .where(
                    ChatMessage.id == message_id,
                    ChatMessage.stream_id == stream_id,
                    ChatMessage.deleted_at.is_(None),
                )
                .values(deleted_at=now)
            )
            return bool(getattr(result, "rowcount", 0))

    async def clear_messages(self, stream_id: str, now: datetime) -> None:
        async with self._write.begin() as session:
            await session.execute(
                update(ChatMessage)
                .where(ChatMessage.stream_id == stream_id, ChatMessage.deleted_at.is_(None))
                .values(deleted_at=now)
            )

    # Bans --------------------------------------------------------------------------------

    async def add_ban(
        self, *, stream_id: str, user_id: str | None, ip: str | None, until: datetime | None,
        reason: str, now: datetime,
    ) -> ChatBanRecord:
        if user_id is None and ip is None:
            raise ValueError("a ban needs a user_id or an ip")
        row = ChatBan(
            id=random_id("ban"), stream_id=stream_id, user_id=user_id, ip=ip, until=until,
            reason=reason[:200], created_at=now,
        )
        async with self._write.begin() as session:
            session.add(row)
            await session.flush()
            return _ban(row)

    async def active_bans(self, stream_id: str, now: datetime) -> list[ChatBanRecord]:
        async with self._read() as session:
            rows = (
                await session.scalars(
                    select(ChatBan)
                    .where(
                        ChatBan.stream_id == stream_id,
                        or_(ChatBan.until.is_(None), ChatBan.until > now),
                    )
                    .order_by(ChatBan.created_at, ChatBan.id)
                )
            ).all()
            return [_ban(row) for row in rows]

    async def remove_ban(self, stream_id: str, ban_id: str) -> bool:
        async with self._write.begin() as session:
            row = await session.get(ChatBan, ban_id)
            if row is None or row.stream_id != stream_id:
                return False
            await session.delete(row)
            return True

    # Settings ----------------------------------------------------------------------------

    async def get_settings(self, stream_id: str) -> ChatSettingsRecord:
        async with self._read() as session:
            row = await session.get(ChatSettings, stream_id)
            return ChatSettingsRecord(stream_id) if row is None else _settings(row)

    async def update_settings(
        self, stream_id: str, now: datetime, **fields: Any
    ) -> ChatSettingsRecord | None:
        """Change some chat settings of a stream; None when the stream does not exist."""
        clean = _clean_settings(fields)
        async with self._write.begin() as session:
            if await session.get(LiveStream, stream_id) is None:
                return None
            # The row is made if missing, then read locked: two first changes at once
            # (two moderators) both land, one after the other, instead of both
            # inserting it and one failing on the primary key (PostgreSQL; SQLite
            # serializes writers anyway).
            insert = pg_insert if self._postgres else sqlite_insert
            await session.execute(insert(ChatSettings).values(
                stream_id=stream_id, slow_mode=0, signed_in_only=False, review_hook_url=None,
                review_hook_fallback="allow", blocked_terms="[]", updated_at=now,
            ).on_conflict_do_nothing(index_elements=["stream_id"]))
            row = (await session.execute(
                select(ChatSettings).where(ChatSettings.stream_id == stream_id)
                .with_for_update().execution_options(populate_existing=True)
            )).scalar_one()
            for key, value in clean.items():
                setattr(row, key, value)
            row.updated_at = now
            await session.flush()
            return _settings(row)
