"""Tests of the store's data-access layer (`golive.store.Store`) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlalchemy.engine import Connection
from tests.pgserver import PostgresServer
from tests.store.conftest import open_store

from golive.core import new_stream_key, utcnow
from golive.core.events import Event, EventType
from golive.store import (
    ApiTokenRecord,
    BroadcastSampleRecord,
    ChatStore,
    PlaybackIdRecord,
    Store,
    StreamRecord,
)
from golive.store.models import ApiToken


def _url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async for s in open_store(request, tmp_path, event_history=10):
        yield s


# Streams -------------------------------------------------------------------------------


async def test_create_and_get_stream(store: Store) -> None:
    record, key = await store.create_stream(name="studio", latency_mode="standard",
                                            reconnect_window=30, recording=True,
                                            playback_policy="signed")
    assert isinstance(record, StreamRecord)
    assert record.id.startswith("ls_")
    assert record.name == "studio"
    assert record.status == "idle"
    assert record.latency_mode == "standard"
    assert record.reconnect_window == 30.0
    assert record.profile == "default"
    assert record.recording is True
    assert record.active_broadcast_id is None
    assert key.startswith("sk_")
    assert record.stream_key_prefix == key[:7]
    assert record.created_at.tzinfo is not None
    assert record.created_at == record.updated_at
    assert len(record.playback_ids) == 1
    assert record.playback_ids[0].policy == "signed"
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "x"  # type: ignore[misc]

    fetched = await store.get_stream(record.id)
    assert fetched == record
    assert await store.get_stream("ls_missing") is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"latency_mode": "ultra"},
        {"playback_policy": "private"},
        {"reconnect_window": -1},
        {"reconnect_window": 1801},
        {"reconnect_window": float("nan")},
        {"name": ""},
        {"name": "x" * 201},
    ],
)
async def test_create_stream_validates(store: Store, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"name": "s", **kwargs}
    with pytest.raises(ValueError):
        await store.create_stream(**args)  # type: ignore[arg-type]
    assert await store.list_streams() == []


async def test_list_streams_pagination(store: Store) -> None:
    ids = [(await store.create_stream(name=f"s{i}"))[0].id for i in range(7)]
    page1 = await store.list_streams(limit=3)
    page2 = await store.list_streams(limit=3, after=page1[-1].id)
    page3 = await store.list_streams(limit=3, after=page2[-1].id)
    page4 = await store.list_streams(limit=3, after=page3[-1].id)
    assert [r.id for r in page1 + page2 + page3] == ids
    assert len(page3) == 1
    assert page4 == []
    assert [r.id for r in await store.list_streams()] == ids
    with pytest.raises(ValueError):
        await store.list_streams(limit=0)
    with pytest.raises(ValueError):
        await store.list_streams(after="ls_missing")


async def test_update_stream(store: Store) -> None:
    record, _ = await store.create_stream(name="a")
    updated = await store.update_stream(record.id, name="b", reconnect_window=0,
                                        latency_mode="standard", recording=True)
    assert updated is not None
    assert (updated.name, updated.reconnect_window, updated.latency_mode,
            updated.recording) == ("b", 0.0, "standard", True)
    assert updated.updated_at > record.updated_at
    assert updated.created_at == record.created_at
    assert await store.get_stream(record.id) == updated

    with pytest.raises(ValueError, match="status"):
        await store.update_stream(record.id, status="active")
    with pytest.raises(ValueError):
        await store.update_stream(record.id, latency_mode="nope")
    with pytest.raises(ValueError):
        await store.update_stream(record.id, recording="yes")
    assert await store.update_stream("ls_missing", name="x") is None
    assert await store.get_stream(record.id) == updated


async def test_webrtc_playback_is_a_stream_property(store: Store) -> None:
    plain, _ = await store.create_stream(name="plain")
    realtime, _ = await store.create_stream(name="realtime", webrtc_playback=True)
    assert plain.webrtc_playback is False
    assert realtime.webrtc_playback is True
    assert (await store.get_stream(realtime.id)) == realtime

    off = await store.update_stream(realtime.id, webrtc_playback=False)
    assert off is not None and off.webrtc_playback is False
    on = await store.update_stream(plain.id, webrtc_playback=True)
    assert on is not None and on.webrtc_playback is True
    with pytest.raises(ValueError, match="webrtc_playback must be true or false"):
        await store.update_stream(plain.id, webrtc_playback="yes")
    with pytest.raises(ValueError, match="webrtc_playback"):
        await store.create_stream(name="x", webrtc_playback=1)  # type: ignore[arg-type]
    assert (await store.get_stream(plain.id)) == on


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database (no schema at all) on the backend the parameter names."""
    if request.param == "sqlite":
        yield _url(tmp_path)
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    database = server.create_database()
    try:
        yield server.url(database)
    finally:
        server.drop_database(database)


async def test_migrations_from_nothing_reach_head(empty_url: str) -> None:
    from golive.store.migrate import head_revision, revision

    store = await Store.open(empty_url)
    try:
        assert await revision(store.engine) == head_revision()
        record, _ = await store.create_stream(name="fresh")
        assert await store.get_stream(record.id) == record
    finally:
        await store.close()


async def test_nodes_starting_together_migrate_an_empty_database_once(empty_url: str) -> None:
    # Three nodes of a cluster started at once against a fresh database: on PostgreSQL
    # they raced to create alembic_version and all but one failed to start.
    from golive.store.migrate import head_revision, revision

    stores = await asyncio.gather(*(Store.open(empty_url) for _ in range(3)))
    try:
        assert [await revision(s.engine) for s in stores] == [head_revision()] * 3
    finally:
        for s in stores:
            await s.close()


async def test_streams_from_before_0006_keep_webrtc_playback_off(empty_url: str) -> None:
    """Migration 0006 adds the column; rows written at 0005 read as without WHEP."""
    from alembic import command
    from sqlalchemy import text

    from golive.store.db import create_engine
    from golive.store.migrate import alembic_config

    engine = create_engine(empty_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(
                lambda sync: command.upgrade(alembic_config(sync), "0005"))
            await connection.execute(text(
                "INSERT INTO live_streams (id, name, stream_key_hash, stream_key_prefix, status,"
                " latency_mode, reconnect_window, profile, recording, created_at, updated_at)"
                " VALUES ('ls_old', 'old', 'h', 'sk_old', 'idle', 'low', 60, 'default', false,"
                " '2026-12-01 00:00:00', '2026-12-01 00:00:00')"))
    finally:
        await engine.dispose()
    upgraded = await Store.open(empty_url)
    try:
        record = await upgraded.get_stream("ls_old")
        assert record is not None and record.webrtc_playback is False
    finally:
        await upgraded.close()


async def test_chat_settings_from_before_0017_block_nothing(empty_url: str) -> None:
    """Migration 0017 adds the column; a row written at 0016 reads as blocking nothing."""
    from alembic import command
    from sqlalchemy import text

    from golive.store.migrate import alembic_config

    store = await Store.open(empty_url)
    try:
        stream, _ = await store.create_stream(name="old")
        async with store.engine.begin() as connection:
            await connection.run_sync(
                lambda sync: command.downgrade(alembic_config(sync), "0016"))
            await connection.execute(text(
                "INSERT INTO chat_settings (stream_id, slow_mode, signed_in_only,"
                " review_hook_fallback, updated_at) VALUES (:sid, 5, false, 'allow',"
                " '2026-12-01 00:00:00')"), {"sid": stream.id})
    finally:
        await store.close()
    upgraded = await Store.open(empty_url)
    try:
        settings = await ChatStore(upgraded.engine).get_settings(stream.id)
        assert (settings.slow_mode, settings.blocked_terms) == (5, ())
    finally:
        await upgraded.close()


async def test_delete_stream(store: Store) -> None:
    record, key = await store.create_stream(name="a")
    other, _ = await store.create_stream(name="b")
    now = datetime.now(UTC)
    await store.start_broadcast(record.id, "bc_1", "rtmp", "127.0.0.1:5000", now)
    await store.record_event(Event(EventType.LIVE_STREAM_CONNECTED, record.id))
    assert await store.delete_stream(record.id) is True
    assert await store.delete_stream(record.id) is False
    assert await store.get_stream(record.id) is None
    assert await store.find_stream_by_key(key) is None
    assert await store.find_stream_by_playback_id(record.playback_ids[0].id) is None
    assert await store.list_events(record.id) == []
    assert await store.list_broadcasts(record.id) == []
    assert [r.id for r in await store.list_streams()] == [other.id]


async def test_stream_key_lookup_and_reset(store: Store) -> None:
    record, key = await store.create_stream(name="a")
    await store.create_stream(name="b")
    found = await store.find_stream_by_key(key)
    assert found is not None and found.id == record.id
    assert await store.find_stream_by_key("sk_wrong") is None

    reset = await store.reset_stream_key(record.id)
    assert reset is not None
    new_record, new_key = reset
    assert new_key != key
    assert new_record.stream_key_prefix == new_key[:7]
    assert await store.find_stream_by_key(key) is None
    found = await store.find_stream_by_key(new_key)
    assert found is not None and found.id == record.id
    assert await store.reset_stream_key("ls_missing") is None


async def test_backup_key_on_create_and_reset_is_stored_hashed(store: Store) -> None:
    backup = new_stream_key()
    record, key = await store.create_stream(name="a", backup_stream_key=backup)
    assert record.backup_stream_key_prefix == backup[:7]
    for plain in (key, backup):
        found = await store.find_stream_by_key(plain)
        assert found is not None and found.id == record.id
    # Without a new backup key a reset leaves the backup key as it is; with one it is
    # replaced in the same transaction.
    reset = await store.reset_stream_key(record.id)
    assert reset is not None and reset[0].backup_stream_key_prefix == backup[:7]
    assert await store.find_stream_by_key(backup) is not None
    new_backup = new_stream_key()
    reset = await store.reset_stream_key(record.id, backup_stream_key=new_backup)
    assert reset is not None and reset[0].backup_stream_key_prefix == new_backup[:7]
    assert await store.find_stream_by_key(backup) is None
    found = await store.find_stream_by_key(new_backup)
    assert found is not None and found.id == record.id


async def test_disabled_status_not_overwritten(store: Store) -> None:
    record, _ = await store.create_stream(name="a")
    await store.set_stream_status(record.id, "active", "bc_1")
    live = await store.get_stream(record.id)
    assert live is not None
    assert (live.status, live.active_broadcast_id) == ("active", "bc_1")

    disabled = await store.set_enabled(record.id, False)
    assert disabled is not None
    assert (disabled.status, disabled.active_broadcast_id) == ("disabled", None)

    await store.set_stream_status(record.id, "active", "bc_2")
    await store.set_stream_status(record.id, "idle", None)
    still = await store.get_stream(record.id)
    assert still is not None
    assert (still.status, still.active_broadcast_id) == ("disabled", None)

    enabled = await store.set_enabled(record.id, True)
    assert enabled is not None and enabled.status == "idle"
    await store.set_stream_status(record.id, "active", "bc_3")
    # Enabling an active (not disabled) stream leaves it active.
    again = await store.set_enabled(record.id, True)
    assert again is not None and again.status == "active"
    assert await store.set_enabled("ls_missing", False) is None
    with pytest.raises(ValueError):
        await store.set_stream_status(record.id, "streaming", None)


async def test_playback_ids(store: Store) -> None:
    record, _ = await store.create_stream(name="a")
    first = record.playback_ids[0]
    found = await store.find_stream_by_playback_id(first.id)
    assert found is not None
    assert found[0].id == record.id
    assert found[1] == first

    added = await store.add_playback_id(record.id, "signed")
    assert isinstance(added, PlaybackIdRecord)
    assert added.policy == "signed"
    refreshed = await store.get_stream(record.id)
    assert refreshed is not None
    assert [p.id for p in refreshed.playback_ids] == [first.id, added.id]
    found = await store.find_stream_by_playback_id(added.id)
    assert found is not None and found[1] == added

    with pytest.raises(ValueError):
        await store.add_playback_id(record.id, "weird")
    assert await store.add_playback_id("ls_missing", "public") is None

    other, _ = await store.create_stream(name="b")
    assert await store.delete_playback_id(other.id, first.id) is False
    assert await store.delete_playback_id(record.id, first.id) is True
    assert await store.delete_playback_id(record.id, first.id) is False
    assert await store.find_stream_by_playback_id(first.id) is None
    assert await store.find_stream_by_playback_id("nope") is None


# Broadcasts ----------------------------------------------------------------------------


async def test_broadcasts(store: Store) -> None:
    record, _ = await store.create_stream(name="a")
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    await store.start_broadcast(record.id, "bc_1", "rtmp", "10.0.0.1:1000", t0)
    await store.end_broadcast("bc_1", t0 + timedelta(minutes=1))
    await store.start_broadcast(record.id, "bc_2", "srt", "10.0.0.2:2000",
                                t0 + timedelta(minutes=2))
    broadcasts = await store.list_broadcasts(record.id)
    assert [b.id for b in broadcasts] == ["bc_2", "bc_1"]
    assert broadcasts[0].ended_at is None
    assert broadcasts[1].ended_at == t0 + timedelta(minutes=1)
    assert broadcasts[1].started_at == t0
    assert broadcasts[0].protocol == "srt"
    assert [b.id for b in await store.list_broadcasts(record.id, limit=1)] == ["bc_2"]
    # A broadcast for a stream deleted meanwhile is ignored.
    await store.start_broadcast("ls_missing", "bc_3", "rtmp", "x", t0)


async def test_recover_open_broadcasts_ends_them_when_media_was_last_seen(
    store: Store,
) -> None:
    live, _ = await store.create_stream(name="live")
    idle, _ = await store.create_stream(name="idle")
    disabled, _ = await store.create_stream(name="disabled")
    quiet, _ = await store.create_stream(name="quiet")
    await store.set_enabled(disabled.id, False)
    started = datetime(2025, 3, 1, 20, 0, tzinfo=UTC)
    await store.start_broadcast(live.id, "bc_1", "rtmp", "1.2.3.4:5", started)
    await store.set_stream_status(live.id, "active", "bc_1")
    await store.media_seen("bc_1", started + timedelta(seconds=5))
    await store.media_seen("bc_1", started + timedelta(minutes=42))
    # A publisher that went away before the crash: its `disconnected` is in the log.
    await store.start_broadcast(quiet.id, "bc_2", "srt", "1.2.3.4:6", started)
    await store.record_event(Event(type=EventType.LIVE_STREAM_CONNECTED, stream_id=quiet.id,
                                   broadcast_id="bc_2"))
    await store.record_event(Event(type=EventType.LIVE_STREAM_DISCONNECTED,
                                   stream_id=quiet.id, broadcast_id="bc_2"))

    recovered = await store.recover_open_broadcasts()

    assert [(r.id, r.stream_id, r.ended_at, r.publisher_connected) for r in recovered] == [
        ("bc_1", live.id, started + timedelta(minutes=42), True),
        ("bc_2", quiet.id, started, False),  # no media ever: it ends where it began
    ]
    statuses = {r.name: (r.status, r.active_broadcast_id) for r in await store.list_streams()}
    assert statuses == {
        "live": ("idle", None),
        "idle": ("idle", None),
        "disabled": ("disabled", None),
        "quiet": ("idle", None),
    }
    (broadcast,) = await store.list_broadcasts(live.id)
    assert broadcast.ended_at == broadcast.last_media_at == started + timedelta(minutes=42)
    # Closed rows are not touched again: a second start recovers nothing.
    await store.media_seen("bc_1", started + timedelta(hours=9))
    assert await store.recover_open_broadcasts() == []
    (broadcast,) = await store.list_broadcasts(live.id)
    assert broadcast.last_media_at == started + timedelta(minutes=42)
    assert idle.id != live.id


async def test_start_broadcast_twice_keeps_the_first_row(store: Store) -> None:
    record, _ = await store.create_stream(name="show")
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    await store.start_broadcast(record.id, "bc_1", "rtmp", "1.2.3.4:5", t0)
    # A retry after an outage whose first try did land.
    await store.start_broadcast(record.id, "bc_1", "rtmp", "1.2.3.4:5", t0)
    assert [b.id for b in await store.list_broadcasts(record.id)] == ["bc_1"]


# Events --------------------------------------------------------------------------------


async def test_events_recorded_and_pruned(store: Store) -> None:
    assert store.event_history == 10
    record, _ = await store.create_stream(name="a")
    other, _ = await store.create_stream(name="b")
    t0 = datetime.now(UTC)
    for i in range(25):
        await store.record_event(
            Event(EventType.LIVE_STREAM_WARNING, record.id, at=t0 + timedelta(seconds=i),
                  broadcast_id="bc_1", data={"n": i, "nested": {"ok": True}})
        )
    await store.record_event(Event(EventType.LIVE_STREAM_CREATED, other.id))

    events = await store.list_events(record.id, limit=100)
    assert len(events) == 10
    assert [e.data["n"] for e in events] == list(range(24, 14, -1))
    newest = events[0]
    assert newest.type == "live_stream.warning"
    assert newest.stream_id == record.id
    assert newest.broadcast_id == "bc_1"
    assert newest.at == t0 + timedelta(seconds=24)
    assert newest.data == {"n": 24, "nested": {"ok": True}}

    page = await store.list_events(record.id, limit=3, before=events[2].id)
    assert [e.data["n"] for e in page] == [21, 20, 19]

    # Pruning is per stream: the other stream keeps its event.
    others = await store.list_events(other.id)
    assert [e.type for e in others] == ["live_stream.created"]


async def test_broadcast_samples_are_kept_in_time_order_and_go_with_their_stream(
        store: Store) -> None:
    record, _ = await store.create_stream(name="a")
    other, _ = await store.create_stream(name="b")
    t0 = datetime.now(UTC).replace(microsecond=0)
    await store.start_broadcast(record.id, "bc_1", "rtmp", "10.0.0.1:1000", t0)
    samples = [BroadcastSampleRecord(record.id, "bc_1", t0 + timedelta(seconds=10 * i),
                                     {"bitrate_kbps": 1000.0 + i, "connected": True})
               for i in (2, 0, 1)]
    gone = BroadcastSampleRecord("ls_never_existed", "bc_9", t0, {"bitrate_kbps": 1.0})
    mine = BroadcastSampleRecord(other.id, "bc_2", t0, {"bitrate_kbps": 2.0})
    # One transaction; a sample of a stream deleted meanwhile is dropped, not an error.
    assert await store.record_broadcast_samples([*samples, gone, mine]) == 4
    kept = await store.broadcast_samples("bc_1")
    assert [s.data["bitrate_kbps"] for s in kept] == [1000.0, 1001.0, 1002.0]
    assert [s.at for s in kept] == [t0 + timedelta(seconds=10 * i) for i in range(3)]
    assert [s.data for s in await store.broadcast_samples("bc_1", limit=1)] == [
        {"bitrate_kbps": 1000.0, "connected": True}]
    assert await store.record_broadcast_samples([]) == 0
    # Past their retention they go, a batch at a time.
    assert await store.prune_broadcast_samples(t0 + timedelta(seconds=15), limit=1) == 1
    assert await store.prune_broadcast_samples(t0 + timedelta(seconds=15)) == 2  # incl. bc_2's
    assert [s.data["bitrate_kbps"] for s in await store.broadcast_samples("bc_1")] == [1002.0]
    assert await store.prune_broadcast_samples(t0) == 0
    await store.delete_stream(record.id)
    assert await store.broadcast_samples("bc_1") == []
    assert await store.broadcast_samples("bc_2") == []


async def test_events_for_deleted_stream_ignored(store: Store) -> None:
    record, _ = await store.create_stream(name="a")
    await store.delete_stream(record.id)
    await store.record_event(Event(EventType.LIVE_STREAM_IDLE, record.id))
    await store.record_event(Event(EventType.LIVE_STREAM_IDLE, "ls_never_existed"))
    assert await store.list_events(record.id) == []


async def test_open_validates_event_history(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        await Store.open(_url(tmp_path), event_history=0)


# API tokens ----------------------------------------------------------------------------


async def test_api_tokens(store: Store) -> None:
    record, token = await store.create_api_token(name="ci",
                                                 scopes=["streams:read", "streams:read"])
    assert isinstance(record, ApiTokenRecord)
    assert record.id.startswith("tok_")
    assert record.scopes == ("streams:read",)
    assert record.token_prefix == token[:8]
    assert record.last_used_at is None and record.revoked_at is None
    admin, admin_token = await store.create_api_token(name="admin")
    assert admin.scopes == ("admin",)

    authed = await store.authenticate_token(token)
    assert authed is not None and authed.id == record.id
    assert authed.last_used_at is not None
    # A second use within the minute keeps the first timestamp.
    again = await store.authenticate_token(token)
    assert again is not None and again.last_used_at == authed.last_used_at
    assert await store.authenticate_token("glt_wrong") is None

    listed = await store.list_api_tokens()
    assert [t.id for t in listed] == [record.id, admin.id]
    assert listed[0].last_used_at == authed.last_used_at

    assert await store.revoke_api_token(record.id) is True
    assert await store.revoke_api_token("tok_missing") is False
    assert await store.authenticate_token(token) is None
    assert await store.authenticate_token(admin_token) is not None
    revoked = (await store.list_api_tokens())[0]
    assert revoked.revoked_at is not None

    with pytest.raises(ValueError):
        await store.create_api_token(name="x", scopes=["owner"])
    with pytest.raises(ValueError):
        await store.create_api_token(name="x", scopes=[])
    with pytest.raises(ValueError):
        await store.create_api_token(name="")
    with pytest.raises(ValueError):
        await store.create_api_token(name="x", expires_at=utcnow() - timedelta(seconds=1))


async def test_expired_api_token_is_refused(store: Store) -> None:
    soon = utcnow() + timedelta(seconds=60)
    record, token = await store.create_api_token(name="temp", expires_at=soon)
    assert record.expires_at == soon
    assert await store.authenticate_token(token) is not None
    async with store._write.begin() as session:  # a minute later
        await session.execute(update(ApiToken).where(ApiToken.id == record.id)
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert await store.authenticate_token(token) is None


async def test_migration_keeps_what_old_tokens_could_do(tmp_path: Path) -> None:
    """Tokens made before scopes (revision 0005) keep their powers: admin stays admin,
    read becomes read-only scopes."""
    from alembic import command

    from golive.store.db import create_engine
    from golive.store.migrate import alembic_config

    engine = create_engine(_url(tmp_path))

    def to(revision: str) -> Callable[[Connection], None]:
        def run(connection: Connection) -> None:
            command.upgrade(alembic_config(connection), revision)
        return run

    async with engine.begin() as connection:
        await connection.run_sync(to("0005"))
        for name, scope in (("old-admin", "admin"), ("old-read", "read")):
            await connection.execute(text(
                "INSERT INTO api_tokens (id, name, token_hash, token_prefix, scope, created_at) "
                "VALUES (:id, :name, :hash, 'glt_x', :scope, '2026-01-01 00:00:00')"
            ), {"id": f"tok_{name}", "name": name, "hash": name * 4, "scope": scope})
    await engine.dispose()
    store = await Store.open(_url(tmp_path))
    try:
        scopes = {t.name: t.scopes for t in await store.list_api_tokens()}
        assert scopes == {"old-admin": ("admin",), "old-read": ("assets:read", "streams:read")}
    finally:
        await store.close()


# Two stores on one file ----------------------------------------------------------------


async def test_second_store_sees_writes(tmp_path: Path) -> None:
    first = await Store.open(_url(tmp_path))
    second = await Store.open(_url(tmp_path))
    try:
        record, key = await first.create_stream(name="shared")
        seen = await second.find_stream_by_key(key)
        assert seen is not None and seen.id == record.id
        await second.set_enabled(record.id, False)
        refreshed = await first.get_stream(record.id)
        assert refreshed is not None and refreshed.status == "disabled"
        _, token = await second.create_api_token(name="t")
        assert await first.authenticate_token(token) is not None
    finally:
        await first.close()
        await second.close()


async def test_srt_passphrase_is_readable_only_by_key(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    try:
        record, key = await store.create_stream(name="srt", srt_passphrase="0123456789abc")
        assert record.srt_encrypted
        assert await store.srt_passphrase(key) == "0123456789abc"
        assert await store.srt_passphrase("sk_unknown") is None
        with pytest.raises(ValueError, match="srt_passphrase"):
            await store.update_stream(record.id, srt_passphrase="short")
        cleared = await store.update_stream(record.id, srt_passphrase="")
        assert cleared is not None and not cleared.srt_encrypted
        assert await store.srt_passphrase(key) is None
    finally:
        await store.close()


async def test_pool_settings_reach_the_postgresql_engine(
    postgres: PostgresServer, postgres_template: str
) -> None:
    import sqlalchemy.exc
    from sqlalchemy.pool import QueuePool

    from golive.settings import Settings

    settings = Settings(database_pool_size=2, database_pool_max_overflow=0,
                        database_pool_timeout=0.5, database_pool_pre_ping=False)
    database = postgres.create_database(template=postgres_template)
    store = await Store.open(postgres.url(database), pool=settings.database_pool)
    try:
        pool = store.engine.pool
        assert isinstance(pool, QueuePool) and pool.size() == 2 and pool._pre_ping is False
        async with store.engine.connect(), store.engine.connect():
            # Both pooled connections are out and no overflow is allowed: the third waits
            # database_pool_timeout and fails instead of opening a connection.
            with pytest.raises(sqlalchemy.exc.TimeoutError):
                async with store.engine.connect():
                    pass
    finally:
        await store.close()
        postgres.drop_database(database)
