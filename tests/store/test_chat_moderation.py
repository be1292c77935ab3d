"""`ChatStore.moderation_between`: the deletes and bans of a time window (post-event
reports), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from golive.store import ChatStore, Store
from golive.store.chat import MAX_BLOCKED_TERMS

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


async def test_moderation_between_lists_deletes_and_bans_of_the_window(store: Store) -> None:
    stream, _ = await store.create_stream(name="s")
    other, _ = await store.create_stream(name="other")
    chat = ChatStore(store.engine)
    messages = [await chat.add_message(stream_id=sid, user_id=f"u{i}", user_name=f"n{i}",
                                       text="hi", ip="192.0.2.1", sent_at=T0)
                for i, sid in enumerate([stream.id, stream.id, stream.id, other.id])]
    # Deleted before, inside (twice, out of order) and at the window's end; another stream's.
    for message, minutes in zip(messages, (-1, 7, 3, 5), strict=True):
        assert await chat.delete_message(message.stream_id, message.id,
                                         T0 + timedelta(minutes=minutes))
    early = await chat.add_message(stream_id=stream.id, user_id="u9", user_name="n9",
                                   text="late delete", ip="192.0.2.1", sent_at=T0)
    assert await chat.delete_message(stream.id, early.id, T0 + timedelta(minutes=10))
    await chat.add_ban(stream_id=stream.id, user_id="u1", ip=None, until=None, reason="spam",
                       now=T0 + timedelta(minutes=2))
    await chat.add_ban(stream_id=stream.id, user_id=None, ip="192.0.2.9", reason="flood",
                       until=T0 + timedelta(hours=1), now=T0 + timedelta(minutes=20))
    await chat.add_ban(stream_id=other.id, user_id="u3", ip=None, until=None, reason="x",
                       now=T0 + timedelta(minutes=2))

    deleted, bans = await chat.moderation_between(stream.id, start=T0,
                                                  end=T0 + timedelta(minutes=10))
    assert [m.id for m in deleted] == [messages[2].id, messages[1].id]
    assert [m.deleted_at for m in deleted] == [T0 + timedelta(minutes=3),
                                               T0 + timedelta(minutes=7)]
    assert [(b.user_id, b.reason) for b in bans] == [("u1", "spam")]

    deleted, bans = await chat.moderation_between(stream.id, start=T0,
                                                  end=T0 + timedelta(hours=1), limit=1)
    assert len(deleted) == 1 and len(bans) == 1
    assert await chat.moderation_between(stream.id, start=T0, end=T0, limit=0) == ([], [])


async def test_first_settings_changes_made_at_once_all_land(store: Store) -> None:
    # Two moderators change a stream's chat settings for the first time at the same
    # instant: both changes land (on PostgreSQL both once inserted the row, and one got a
    # unique violation, a 500). SQLite serializes writers; the test runs on both.
    chat = ChatStore(store.engine)
    for round_ in range(5):
        stream, _ = await store.create_stream(name=f"s{round_}")
        results = await asyncio.gather(
            chat.update_settings(stream.id, T0, slow_mode=7),
            chat.update_settings(stream.id, T0, signed_in_only=True),
            chat.update_settings(stream.id, T0, review_hook_fallback="deny"),
        )
        assert all(r is not None for r in results)
        settings = await chat.get_settings(stream.id)
        assert (settings.slow_mode, settings.signed_in_only, settings.review_hook_fallback) == (
            7, True, "deny"), settings


async def test_blocked_terms_are_kept_normalized_and_checked(store: Store) -> None:
    chat = ChatStore(store.engine)
    stream, _ = await store.create_stream(name="s")
    assert (await chat.get_settings(stream.id)).blocked_terms == ()
    # Case, Unicode form (full-width), zero-width characters and spacing do not make a
    # term new: one of each is kept, in the order given.
    settings = await chat.update_settings(
        stream.id, T0, blocked_terms=["Bad", "bad", "\uff33\uff30\uff21\uff2d", "go    away",
                                      "b\u200bad", "spam*", "Straße", "**coin **"])
    assert settings is not None
    assert settings.blocked_terms == ("bad", "spam", "go away", "spam*", "strasse", "*coin*")
    assert (await chat.get_settings(stream.id)).blocked_terms == settings.blocked_terms
    await chat.update_settings(stream.id, T0, slow_mode=3)  # other settings leave them be
    assert (await chat.get_settings(stream.id)).blocked_terms == settings.blocked_terms
    assert (await chat.update_settings(stream.id, T0, blocked_terms=[])).blocked_terms == ()  # type: ignore[union-attr]
    for bad, reason in [
        ("bad", "a list of strings"), ([1], "a list of strings"),
        (["x"] * (MAX_BLOCKED_TERMS + 1), "at most 1000 terms"),
        (["a\nb"], "control characters"), (["**"], "besides '*'"), ([" "], "besides '*'"),
        (["x" * 101], "at most 100 characters"),
        (["a*b"], "only at its start or end"),
    ]:
        with pytest.raises(ValueError, match=reason):
            await chat.update_settings(stream.id, T0, blocked_terms=bad)

