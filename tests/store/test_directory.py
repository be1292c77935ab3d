"""StoreStreamDirectory on SQLite: policies from records, lifecycle writes to broadcast rows."""

from __future__ import annotations

from datetime import UTC, datetime

from golive.core.secrets import hash_stream_key
from golive.store import Store, StoreStreamDirectory
from golive.stream import BroadcastStart, KeyState, PlaybackId, StreamDirectory, StreamPolicy

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2025, 1, 1, 12, 5, tzinfo=UTC)


def start(stream_id: str, broadcast_id: str = "bc_1") -> BroadcastStart:
    return BroadcastStart(stream_id=stream_id, broadcast_id=broadcast_id, protocol="srt",
                          remote_address="192.0.2.7:4000", started_at=T0)


async def test_policy_carries_what_the_pipeline_reads(store: Store) -> None:
    directory: StreamDirectory = StoreStreamDirectory(store)
    record, key = await store.create_stream(
        name="show", latency_mode="standard", reconnect_window=12.5, profile="sports",
        recording=True, playback_policy="signed", webrtc_playback=True,
    )
    public = await store.add_playback_id(record.id, "public")
    assert public is not None

    found = await directory.policy_for_key_hash(hash_stream_key(key))
    assert found == StreamPolicy(
        stream_id=record.id,
        enabled=True,
        playback_ids=(PlaybackId(record.playback_ids[0].id, signed=True),
                      PlaybackId(public.id, signed=False)),
        profile="sports",
        latency_mode="standard",
        reconnect_window=12.5,
        recording=True,
        webrtc_playback=True,
    )
    assert found.low_latency is False
    assert await directory.policy(record.id) == found
    assert await directory.policy_for_key_hash(hash_stream_key("sk_wrong")) is None
    assert await directory.policy("ls_missing") is None

    await store.set_enabled(record.id, False)
    disabled = await directory.policy(record.id)
    assert disabled is not None and disabled.enabled is False


async def test_key_states_follow_key_resets_and_deletes(store: Store) -> None:
    directory = StoreStreamDirectory(store)
    one, key = await store.create_stream(name="one")
    two, _ = await store.create_stream(name="two")
    await store.set_enabled(two.id, False)
    states = await directory.key_states([one.id, two.id, "ls_gone"])
    assert set(states) == {one.id, two.id}
    assert states[one.id] == KeyState(enabled=True, stream_key_hash=hash_stream_key(key))
    assert states[two.id].enabled is False
    reset = await store.reset_stream_key(one.id)
    assert reset is not None
    states = await directory.key_states([one.id])
    assert states[one.id].stream_key_hash == hash_stream_key(reset[1])
    await store.delete_stream(one.id)
    assert await directory.key_states([one.id]) == {}
    assert await directory.key_states([]) == {}


async def test_backup_key_publishes_like_the_stream_key(store: Store) -> None:
    directory = StoreStreamDirectory(store)
    record, key = await store.create_stream(name="show", srt_passphrase="correct horse 123")
    other, _ = await store.create_stream(name="other")
    states = await directory.key_states([record.id])
    assert states[record.id].backup_stream_key_hash is None
    assert not states[record.id].admits(hash_stream_key("sk_wrong"))
    made = await store.reset_backup_stream_key(record.id)
    assert made is not None
    shown, backup = made
    assert backup != key and backup.startswith(str(shown.backup_stream_key_prefix))
    assert shown.stream_key_prefix == record.stream_key_prefix
    by_backup = await directory.policy_for_key_hash(hash_stream_key(backup))
    assert by_backup is not None and by_backup == await directory.policy(record.id)
    assert by_backup.backup_key  # alerts tell "no backup configured" from "none publishing"
    other_policy = await directory.policy(other.id)
    assert other_policy is not None and not other_policy.backup_key
    assert await store.srt_passphrase(backup) == "correct horse 123"
    state = (await directory.key_states([record.id]))[record.id]
    assert state.admits(hash_stream_key(key)) and state.admits(hash_stream_key(backup))
    # Replacing the backup key ends the old one; the stream key is untouched.
    again = await store.reset_backup_stream_key(record.id)
    assert again is not None
    assert await directory.policy_for_key_hash(hash_stream_key(backup)) is None
    state = (await directory.key_states([record.id]))[record.id]
    assert not state.admits(hash_stream_key(backup)) and state.admits(hash_stream_key(key))
    assert state.admits(hash_stream_key(again[1]))
    assert (await directory.key_states([other.id]))[other.id].backup_stream_key_hash is None
    assert await store.reset_backup_stream_key("ls_gone") is None


async def test_broadcast_lifecycle_reaches_rows_and_status(store: Store) -> None:
    directory = StoreStreamDirectory(store)
    record, _ = await store.create_stream(name="show")

    await directory.broadcast_started(start(record.id))
    await directory.broadcast_active(record.id, "bc_1")
    live = await store.get_stream(record.id)
    assert live is not None and (live.status, live.active_broadcast_id) == ("active", "bc_1")

    await directory.broadcast_ended(record.id, "bc_1", T1)
    idle = await store.get_stream(record.id)
    assert idle is not None and (idle.status, idle.active_broadcast_id) == ("idle", None)
    [row] = await store.list_broadcasts(record.id)
    assert (row.id, row.protocol, row.started_at, row.ended_at) == ("bc_1", "srt", T0, T1)


async def test_ending_an_old_broadcast_leaves_a_newer_one_live(store: Store) -> None:
    directory = StoreStreamDirectory(store)
    record, _ = await store.create_stream(name="show")
    await directory.broadcast_started(start(record.id, "bc_old"))
    await directory.broadcast_started(start(record.id, "bc_new"))
    await directory.broadcast_active(record.id, "bc_new")
    await directory.broadcast_ended(record.id, "bc_old", T1)
    live = await store.get_stream(record.id)
    assert live is not None and (live.status, live.active_broadcast_id) == ("active", "bc_new")


async def test_disabled_stream_stays_disabled_through_the_lifecycle(store: Store) -> None:
    directory = StoreStreamDirectory(store)
    record, _ = await store.create_stream(name="show")
    await directory.broadcast_started(start(record.id))
    await store.set_enabled(record.id, False)
    await directory.broadcast_active(record.id, "bc_1")
    await directory.broadcast_ended(record.id, "bc_1", T1)
    after = await store.get_stream(record.id)
    assert after is not None and after.status == "disabled"


async def test_writes_for_a_deleted_stream_are_dropped(store: Store) -> None:
    directory = StoreStreamDirectory(store)
    record, _ = await store.create_stream(name="show")
    await store.delete_stream(record.id)
    await directory.broadcast_started(start(record.id))
    await directory.broadcast_active(record.id, "bc_1")
    await directory.broadcast_ended(record.id, "bc_1", T1)
    assert await store.list_broadcasts(record.id) == []
