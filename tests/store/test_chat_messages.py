"""`ChatStore.add_messages`: a batch in one transaction, in order, with the ids given or
picked, on SQLite (one statement, one call to the driver's thread) and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text

import golive.store.chat as store_chat
from golive.store import ChatStore, Store
from golive.store.chat import NewChatMessage

T0 = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def batch(stream_id: str, ids: list[int | None]) -> list[NewChatMessage]:
    return [NewChatMessage(stream_id=stream_id, user_id=f"u{n}", user_name=f"name {n}",
                           text=f"text {n} é", ip="2001:db8::1" * 10 if n == 0 else "192.0.2.1",
                           sent_at=T0 + timedelta(seconds=n), id=message_id)
            for n, message_id in enumerate(ids)]


async def test_a_batch_keeps_its_order_and_the_ids_given_or_picked(store: Store) -> None:
    stream, _ = await store.create_stream(name="s")
    chat = ChatStore(store.engine)
    records = await chat.add_messages(batch(stream.id, [None, None]))
    assert records[0].id < records[1].id
    # Ids given (Redis's) and picked by the database (Redis away) in one batch.
    mixed = await chat.add_messages(batch(stream.id, [None, 1000, None, 2000, None]))
    assert [r.id for r in mixed][1::2] == [1000, 2000]
    picked = [mixed[0].id, mixed[2].id, mixed[4].id]
    assert len(set(picked)) == 3 and picked == sorted(picked)
    assert picked[0] > records[1].id
    assert [r.text for r in mixed] == [f"text {n} é" for n in range(5)]
    assert mixed[0].ip == ("2001:db8::1" * 10)[:64]  # the column's width
    stored = await chat.recent_messages(stream.id, 10)
    by_id = {r.id: r for r in stored}
    for r in records + mixed:
        back = by_id[r.id]
        assert (back.text, back.user_id, back.user_name, back.ip, back.sent_at,
                back.deleted_at) == (r.text, r.user_id, r.user_name, r.ip, r.sent_at, None)
    assert await chat.add_messages([]) == []


async def test_a_batch_with_one_bad_row_stores_nothing(store: Store) -> None:
    stream, _ = await store.create_stream(name="s")
    chat = ChatStore(store.engine)
    bad = batch(stream.id, [None, None]) + batch("ls_gone", [None])  # no such stream
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await chat.add_messages(bad)
    assert await chat.recent_messages(stream.id, 10) == []
    # The store goes on working.
    assert len(await chat.add_messages(batch(stream.id, [None]))) == 1


async def _rows(store: Store) -> list[tuple[Any, ...]]:
    async with store.engine.connect() as connection:
        result = await connection.execute(text(
            "SELECT stream_id, user_id, user_name, text, sent_at, deleted_at, ip "
            "FROM chat_messages ORDER BY id"))
        return [tuple(row) for row in result]


async def test_sqlite_stores_a_batch_as_the_session_does_in_one_driver_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = 0
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await real(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    rows = {}
    for way, limit in (("statement", store_chat.SQLITE_STATEMENT_ROWS), ("session", 0)):
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/{way}.sqlite")
        try:
            stream, _ = await store.create_stream(name="s")
            chat = ChatStore(store.engine)
            monkeypatch.setattr(store_chat, "SQLITE_STATEMENT_ROWS", limit)
            calls = 0
            await chat.add_messages(batch(stream.id, [None, 7, None]))
            if way == "statement":
                # The INSERT, and the pool's reset when the connection goes back.
                assert calls == 2
            else:
                assert calls > 2
            rows[way] = [row[1:] for row in await _rows(store)]  # stream ids differ
        finally:
            await store.close()
    assert rows["statement"] == rows["session"]
    assert len(rows["statement"]) == 3


async def test_sqlite_batch_above_one_statement_takes_the_session(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    try:
        stream, _ = await store.create_stream(name="s")
        chat = ChatStore(store.engine)
        size = store_chat.SQLITE_STATEMENT_ROWS + 1
        records = await chat.add_messages(batch(stream.id, [None] * size))
        assert [r.id for r in records] == sorted({r.id for r in records})
        assert len(await _rows(store)) == size
    finally:
        await store.close()
