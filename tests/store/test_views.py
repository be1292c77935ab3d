"""Tests of playback views and QoE events (`golive.store.views`) on SQLite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from golive.store import Store
from golive.store.db import StoreBusy
from golive.store.views import NewPlaybackEvent, PlaybackViewStore, ViewConflict


def _events(n: int, at: datetime) -> list[NewPlaybackEvent]:
    return [NewPlaybackEvent("latency", at + timedelta(seconds=i), {"seconds": i}) for i in range(n)]


async def test_first_batch_creates_the_view_and_later_ones_extend_it(store: Store) -> None:
    stream, _ = await store.create_stream(name="s")
    pid = stream.playback_ids[0].id
    views = PlaybackViewStore(store.engine, max_events_per_view=5)
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    kept = await views.record(view_id="view-one-xxxxxxxx", playback_id=pid, stream_id=stream.id,
                              user_agent="ua" * 500, events=_events(3, t0), now=t0)
    assert kept == 3
    later = t0 + timedelta(seconds=30)
    kept = await views.record(view_id="view-one-xxxxxxxx", playback_id=pid, stream_id=stream.id,
                              user_agent="ua", events=_events(3, later), now=later)
    assert kept == 2  # the per-view cap
    view = await views.get_view("view-one-xxxxxxxx")
    assert view is not None
    assert (view.started_at, view.last_seen_at) == (t0, later)
    assert len(view.user_agent) == 300
    events = await views.list_events(view.id)
    assert [e.data["seconds"] for e in events] == [0, 1, 2, 0, 1]
    assert [v.id for v in await views.list_views(stream.id)] == [view.id]

    other, _ = await store.create_stream(name="other")
    with pytest.raises(ViewConflict):
        await views.record(view_id="view-one-xxxxxxxx", playback_id=other.playback_ids[0].id,
                           stream_id=other.id, user_agent="", events=_events(1, t0), now=t0)


async def test_a_batch_for_a_deleted_stream_is_dropped(store: Store) -> None:
    views = PlaybackViewStore(store.engine)
    now = datetime.now(UTC)
    assert await views.record(view_id="view-two-xxxxxxxx", playback_id="p", stream_id="ls_gone",
                              user_agent="", events=_events(1, now), now=now) == 0
    assert await views.get_view("view-two-xxxxxxxx") is None


async def test_batches_arriving_together_share_transactions_and_keep_their_own_answers(
        store: Store) -> None:
    # Group commit: 300 batches sent at once are stored by a few transactions, and each
    # caller still gets its own answer: kept counts under the per-view cap, a conflict,
    # a stream that does not exist.
    stream, _ = await store.create_stream(name="crowd")
    other, _ = await store.create_stream(name="other")
    pid, other_pid = stream.playback_ids[0].id, other.playback_ids[0].id
    views = PlaybackViewStore(store.engine, max_events_per_view=4, max_per_commit=100)
    t0 = datetime(2030, 1, 1, tzinfo=UTC)

    def send(view_id: str, playback_id: str, stream_id: str, n: int) -> Any:
        return views.record(view_id=view_id, playback_id=playback_id, stream_id=stream_id,
                            user_agent="ua", events=_events(n, t0), now=t0)

    calls = [send(f"view-{i:04d}-xxxxxxxx", pid, stream.id, 1) for i in range(296)]
    calls += [send("view-0000-xxxxxxxx", pid, stream.id, 5),  # over the cap: 3 more
              send("view-0001-xxxxxxxx", other_pid, other.id, 1),  # another stream's
              send("view-gone-xxxxxxxx", "p", "ls_gone", 1),
              send("view-0002-xxxxxxxx", pid, stream.id, 2)]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert outcomes[:296] == [1] * 296
    assert outcomes[296] == 3 and isinstance(outcomes[297], ViewConflict)
    assert outcomes[298:] == [0, 2]
    assert 3 <= views.commits < 10  # 300 batches, at most 100 a transaction
    assert len(await views.list_views(stream.id, limit=1000)) == 296
    assert [e.data["seconds"] for e in await views.list_events("view-0000-xxxxxxxx")] == [0, 0, 1, 2]
    assert len(await views.list_events("view-0002-xxxxxxxx")) == 3
    assert await views.get_view("view-gone-xxxxxxxx") is None


async def test_a_writer_too_far_behind_refuses_at_once(store: Store) -> None:
    stream, _ = await store.create_stream(name="s")
    views = PlaybackViewStore(store.engine, max_waiting=2)
    now = datetime.now(UTC)
    calls = [views.record(view_id=f"view-{i}-xxxxxxxxxx", playback_id=stream.playback_ids[0].id,
                          stream_id=stream.id, user_agent="", events=_events(1, now), now=now)
             for i in range(3)]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert outcomes[:2] == [1, 1] and isinstance(outcomes[2], StoreBusy)
