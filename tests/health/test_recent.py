"""`RecentViews` answers every recent window exactly as `PlaybackViewStore.window` does,
while reading only what was stored since its last catch-up (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.store.conftest import store  # noqa: F401  (the fixture)

from golive.health import STATE_EVENTS, RecentViews, ViewerWindows
from golive.health.qoe import view_qoe
from golive.media import SloSpec
from golive.store import (
    NewPlaybackEvent,
    PlaybackEventRecord,
    PlaybackViewRecord,
    PlaybackViewStore,
    Store,
)

BASE = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def shape(rows: list[tuple[PlaybackViewRecord, list[PlaybackEventRecord]]]
          ) -> list[tuple[str, datetime, datetime, list[tuple[int, str, datetime, object]]]]:
    return [(v.id, v.started_at, v.last_seen_at, [(e.id, e.type, e.at, e.data) for e in events])
            for v, events in rows]


class Clock:
    def __init__(self) -> None:
        self.now = BASE

    def __call__(self) -> datetime:
        return self.now


async def test_recent_windows_match_the_store_as_beacons_arrive(
        store: Store) -> None:  # noqa: F811
    stream, _ = await store.create_stream(name="recent")
    views = PlaybackViewStore(store.engine)
    clock = Clock()
    mono = [0.0]
    recent = RecentViews(views, state_types=STATE_EVENTS, horizon=600, max_views=3,
                         clock=clock, monotonic=lambda: mono[0])
    indexed: list[int] = []  # the views of each window answered from the index

    async def beacon(view_id: str, at: datetime, *types: str) -> None:
        events = [NewPlaybackEvent(t, at - timedelta(seconds=1),
                                   {"ms": 900.0} if t == "first_frame" else {"seconds": 2.0})
                  for t in types]
        await views.record(view_id=view_id, playback_id="pid", stream_id=stream.id,
                           user_agent="Chrome/120", events=events, now=at)

    async def same(start: datetime, end: datetime, **options: object) -> None:
        expected = await views.window(stream.id, start, end, **options)  # type: ignore[arg-type]
        got = await recent.window(stream.id, start, end, **options)  # type: ignore[arg-type]
        assert shape(got) == shape(expected)
        if options.get("earlier_types") == STATE_EVENTS:  # each view's QoE from the index
            limit = options.get("max_views", 20_000)
            assert isinstance(limit, int)
            each = await recent.window_qoe(stream.id, start, end, max_views=limit)
            if each is not None:
                indexed.append(len(each))
                assert each == [view_qoe(v, e, start, end) for v, e in expected]

    # Two views that started 20 minutes ago: their start is past the horizon.
    await beacon("recentview-a-000001", BASE - timedelta(minutes=20), "start", "first_frame")
    await beacon("recentview-b-000002", BASE - timedelta(minutes=20), "start", "first_frame")
    for minute in range(19, -1, -1):
        at = BASE - timedelta(minutes=minute)
        await beacon("recentview-a-000001", at, "latency", "latency")
        if minute > 12:  # b leaves 13 minutes ago: outside every recent window
            await beacon("recentview-b-000002", at, "latency")
    for window in (timedelta(seconds=120), timedelta(minutes=10)):
        await same(BASE - window, BASE, earlier_types=STATE_EVENTS)
    assert recent.loads == 1

    # Time passes: a new view, more beacons, a stall; each ask catches up only.
    for step in range(1, 6):
        clock.now = BASE + timedelta(seconds=10 * step)
        await beacon("recentview-a-000001", clock.now, "latency")
        if step == 2:
            await beacon("recentview-c-000003", clock.now, "start", "first_frame", "stall")
        for window in (timedelta(seconds=120), timedelta(minutes=10)):
            await same(clock.now - window, clock.now, earlier_types=STATE_EVENTS)
        await same(clock.now - timedelta(seconds=30), clock.now, earlier_types=STATE_EVENTS,
                   max_views=1)
    assert recent.loads == 1 and len(recent) == 1
    assert len(indexed) == 2 + 5 * 3 and max(indexed) == 2

    # Outside what it holds (older than the horizon, or ending long ago), or other
    # earlier types: read from the store, same answer.
    await same(clock.now - timedelta(minutes=30), clock.now, earlier_types=STATE_EVENTS)
    await same(BASE - timedelta(minutes=19), BASE - timedelta(minutes=15),
               earlier_types=STATE_EVENTS)
    await same(clock.now - timedelta(minutes=5), clock.now, earlier_types=("latency",))
    assert recent.loads == 1

    # More views than it may hold: the stream is read from the store each time.
    for i in range(3):
        await beacon(f"recentview-d-00000{i}", clock.now, "start")
    await same(clock.now - timedelta(minutes=5), clock.now, earlier_types=STATE_EVENTS)
    assert len(recent) == 0
    # Idle streams are forgotten.
    mono[0] = 1000.0
    other, _ = await store.create_stream(name="other")
    assert await recent.window(other.id, clock.now - timedelta(minutes=1), clock.now,
                               earlier_types=STATE_EVENTS) == []
    assert len(recent) == 1


async def test_the_alert_engine_reads_the_same_signals_from_the_index(
        store: Store) -> None:  # noqa: F811
    """`ViewerWindows` over `RecentViews` (each view's numbers from the index) gives the
    `ViewerSignals` it gives over the store (every event re-read): error codes, players,
    who rebuffers, who is behind."""
    stream, _ = await store.create_stream(name="signals")
    views = PlaybackViewStore(store.engine)
    clock = Clock()
    recent = RecentViews(views, state_types=STATE_EVENTS, clock=clock)
    slo = SloSpec(rebuffer_percentage=1)

    async def beacon(view_id: str, at: datetime, agent: str,
                     *events: tuple[str, dict[str, object]]) -> None:
        await views.record(view_id=view_id, playback_id="pid", stream_id=stream.id,
                           user_agent=agent,
                           events=[NewPlaybackEvent(t, at, data) for t, data in events],
                           now=at)

    chrome, safari = "Chrome/120 (X11; Linux x86_64)", "Safari/605 (Macintosh; Mac OS X)"
    early = BASE - timedelta(minutes=3)
    await beacon("signalview-a-000001", early, chrome, ("start", {"player": "hls.js"}),
                 ("first_frame", {"ms": 800}))
    await beacon("signalview-b-000002", early, safari, ("start", {"player": "native"}),
                 ("error", {"code": "before_window", "fatal": True}))
    await beacon("signalview-c-000003", early, chrome, ("start", {"player": "hls.js"}),
                 ("first_frame", {"ms": 2500}))
    for second in range(0, 120, 10):
        at = BASE - timedelta(seconds=120 - second)
        await beacon("signalview-a-000001", at, chrome, ("latency", {"seconds": 2 + second / 60}))
        await beacon("signalview-c-000003", at, chrome, ("latency", {"seconds": 4.0}),
                     ("stall", {"ms": 1500}))
        if second in (30, 90):
            await beacon("signalview-c-000003", at, chrome,
                         ("error", {"code": "fragLoadError", "fatal": True}),
                         ("latency", {"seconds": 4.5}))
    await beacon("signalview-b-000002", BASE - timedelta(seconds=50), safari,
                 ("error", {"code": "manifestLoadError", "fatal": True}))
    start, end = BASE - timedelta(seconds=120), BASE
    from_store = await ViewerWindows(views)(stream.id, start, end, slo)
    from_index = await ViewerWindows(recent)(stream.id, start, end, slo)
    assert recent.loads == 1  # the index answered
    assert from_store is not None and from_index == from_store
    assert from_index.error_codes == (("fragLoadError", 2), ("manifestLoadError", 1))
    assert [g.player for g in from_index.rebuffering] == ["hls.js"]
    assert [lag.view_id for lag in from_index.behind] == ["signalview-c-000003",
                                                         "signalview-a-000001"]
    # A window without views: nothing to judge, from either source.
    other, _ = await store.create_stream(name="quiet")
    assert await ViewerWindows(recent)(other.id, start, end, slo) is None
    assert await ViewerWindows(views)(other.id, start, end, slo) is None


async def test_asks_within_fresh_for_share_one_catch_up(store: Store) -> None:  # noqa: F811
    """With `fresh_for`, a window asked for soon after the stream's last catch-up is
    answered from what is held (the new beacon not yet in it); once that time has passed,
    the next ask reads the store again and answers what the store answers."""
    stream, _ = await store.create_stream(name="fresh")
    views = PlaybackViewStore(store.engine)
    clock = Clock()
    mono = [100.0]
    recent = RecentViews(views, state_types=STATE_EVENTS, fresh_for=2.0, clock=clock,
                         monotonic=lambda: mono[0])

    async def beacon(view_id: str, seconds: float) -> None:
        await views.record(view_id=view_id, playback_id="pid", stream_id=stream.id,
                           user_agent="Chrome/120",
                           events=[NewPlaybackEvent("latency", clock.now, {"seconds": seconds})],
                           now=clock.now)

    start, end = BASE - timedelta(minutes=2), BASE + timedelta(seconds=1)
    await beacon("freshview-a-000001", 2.0)
    first = await recent.window(stream.id, start, end, earlier_types=STATE_EVENTS)
    assert shape(first) == shape(await views.window(stream.id, start, end,
                                                    earlier_types=STATE_EVENTS))
    assert (recent.loads, recent.catch_ups) == (1, 1)

    await beacon("freshview-a-000001", 3.0)
    mono[0] += 1.5  # inside fresh_for: no read, the answer as of the last catch-up
    assert shape(await recent.window(stream.id, start, end,
                                     earlier_types=STATE_EVENTS)) == shape(first)
    assert recent.catch_ups == 1
    mono[0] += 0.5  # fresh_for has passed: caught up, the store's answer again
    expected = await views.window(stream.id, start, end, earlier_types=STATE_EVENTS)
    got = await recent.window(stream.id, start, end, earlier_types=STATE_EVENTS)
    assert recent.catch_ups == 2 and shape(got) == shape(expected)
    assert [e.data["seconds"] for _, events in got for e in events] == [2.0, 3.0]


class CountingViews(PlaybackViewStore):
    """The store, noting each event id a catch-up reads."""

    read: list[int]

    async def events_after(self, stream_id: str, after_id: int, *, limit: int = 100_000
                           ) -> list[PlaybackEventRecord]:
        found = await super().events_after(stream_id, after_id, limit=limit)
        self.read.extend(e.id for e in found)
        return found


async def test_catch_ups_read_each_event_once_where_ids_commit_in_order(
        store: Store) -> None:  # noqa: F811
    stream, _ = await store.create_stream(name="once")
    views = CountingViews(store.engine)
    views.read = []
    in_order = store.engine.dialect.name == "sqlite"
    assert views.ids_commit_in_order is in_order
    clock = Clock()
    recent = RecentViews(views, state_types=STATE_EVENTS, clock=clock)
    stored = 0
    for step in range(6):
        clock.now = BASE + timedelta(seconds=10 * step)
        for view in ("onceview-a-000001", "onceview-b-000002"):
            await views.record(view_id=view, playback_id="pid", stream_id=stream.id,
                               user_agent="Chrome/120", now=clock.now,
                               events=[NewPlaybackEvent("latency", clock.now, {"seconds": 2.0})])
            stored += 1
        got = await recent.window(stream.id, clock.now - timedelta(minutes=2),
                                  clock.now + timedelta(seconds=1), earlier_types=STATE_EVENTS)
        assert sum(len(events) for _, events in got) == stored
    caught_up = stored - 2  # the first two came with the load
    if in_order:
        assert sorted(views.read) == sorted(set(views.read)) and len(views.read) == caught_up
    else:  # PostgreSQL: each catch-up re-reads the previous one's events (late commits)
        assert len(set(views.read)) == caught_up and len(views.read) > caught_up
