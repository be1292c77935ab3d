"""Tests of playback views and QoE events (`golive.store.views`) on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from golive.store import Store
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
