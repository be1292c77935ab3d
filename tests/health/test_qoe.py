"""Viewer experience metrics (`golive.health.qoe`) on beacon sequences computed by hand,
and the `/qoe` API routes over a real store (SQLite in tmp_path).

Four views over a 600 s window starting at T0:
- A (Chrome, Linux): asks at T0, first frame after 2 s, 720p, latency 2 s and 4 s,
  last report at T0+100: watch 100 s, no rebuffer, score 100 * (10-2)/9.
- B (Firefox, Windows): asks at T0+10, first frame after 1 s on 480p, stalls 3 s and
  2 s, switches to 720p at T0+60, latency 6 s, last report T0+110: watch 100 s,
  rebuffer 5 %, score 100 * 1 * (1 - 5/10) = 50.
- C (Chrome, Android): a non-fatal error at T0+5, last report T0+15, never a frame:
  an exit before video start, watch 10 s, score 50.
- D (Safari, macOS): a fatal error at T0+3 and nothing after: a failure, score 0.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import NoBroadcasts

from golive.api.app import create_api_app
from golive.api.auth import Authenticator
from golive.api.qoe import qoe_router
from golive.core import EventBus
from golive.health import (
    QoeReports,
    QoeRetention,
    ViewQoe,
    qoe_report,
    slo_results,
    stream_qoe,
)
from golive.health.qoe import STATE_EVENTS, ViewEvents, compute, percentile, view_qoe
from golive.media import load_profile
from golive.settings import Settings
from golive.store import (
    NewPlaybackEvent,
    PlaybackEventRecord,
    PlaybackViewRecord,
    PlaybackViewStore,
    Store,
)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
END = T0 + timedelta(seconds=600)
CHROME_LINUX = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/120.0 Safari/537.36")
FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
CHROME_ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/120.0 Mobile Safari/537.36")
SAFARI_MAC = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/17.2 Safari/605.1.15")
ADMIN = "test-admin-token"

Beacon = tuple[float, str, dict[str, Any]]  # seconds after T0, type, data
VIEWS: dict[str, tuple[str, float, list[Beacon]]] = {  # id -> user agent, last seen, events
    "view-a-0123456789": (CHROME_LINUX, 100, [
        (1, "quality", {"level": 1, "height": 720, "bitrate": 2_500_000, "auto": True}),
        (2, "first_frame", {"ms": 2000}),
        (2, "start", {"muted": True, "native": False, "rendition": "720p", "protocol": "hls",
                      "player": "hls.js"}),
        (10, "latency", {"seconds": 2.0}),
        (20, "latency", {"seconds": 4.0}),
    ]),
    "view-b-0123456789": (FIREFOX_WINDOWS, 110, [
        (11, "first_frame", {"ms": 1000}),
        (11, "start", {"muted": True, "native": False, "rendition": "480p", "protocol": "hls",
                       "player": "hls.js"}),
        (30, "stall", {"ms": 3000}),
        (40, "latency", {"seconds": 6.0}),
        (50, "stall", {"ms": 2000}),
        (60, "quality", {"level": 2, "height": 720, "bitrate": 2_500_000, "auto": True}),
    ]),
    "view-c-0123456789": (CHROME_ANDROID, 15, [
        (5, "error", {"code": "fragLoadError", "fatal": False, "message": ""}),
    ]),
    "view-d-0123456789": (SAFARI_MAC, 3, [
        (3, "error", {"code": "manifestLoadError", "fatal": True, "message": "404"}),
    ]),
}


def _rows(views: dict[str, tuple[str, float, list[Beacon]]] = VIEWS
          ) -> list[tuple[PlaybackViewRecord, list[PlaybackEventRecord]]]:
    rows = []
    for number, (view_id, (ua, last, beacons)) in enumerate(views.items()):
        events = [PlaybackEventRecord(id=number * 100 + i, view_id=view_id, type=kind,
                                      at=T0 + timedelta(seconds=s), data=data)
                  for i, (s, kind, data) in enumerate(beacons)]
        rows.append((PlaybackViewRecord(id=view_id, playback_id="pid", stream_id="sid",
                                        started_at=events[0].at,
                                        last_seen_at=T0 + timedelta(seconds=last),
                                        user_agent=ua), events))
    return rows


def test_each_view_by_hand() -> None:
    a, b, c, d = (view_qoe(view, events, T0, END) for view, events in _rows())
    assert (a.started, a.failed, a.exited_before_start) == (True, False, False)
    assert a.startup_time_s == 2.0 and a.watch_time_s == 100.0
    assert (a.rebuffer_count, a.rebuffer_s, a.rendition_switches) == (0, 0.0, 0)
    assert a.latency_samples_s == (2.0, 4.0)
    assert a.rendition_s == {"720p": 99.0}
    assert a.score == pytest.approx(100 * 8 / 9)
    assert (a.protocol, a.player, a.browser, a.os) == ("hls", "hls.js", "chrome", "linux")

    assert b.startup_time_s == 1.0 and b.watch_time_s == 100.0
    assert (b.rebuffer_count, b.rebuffer_s) == (2, 5.0)
    assert b.rendition_s == {"480p": 49.0, "720p": 50.0} and b.rendition == "720p"
    assert b.rendition_switches == 1
    assert b.score == pytest.approx(50.0)
    assert (b.browser, b.os) == ("firefox", "windows")

    assert (c.started, c.failed, c.exited_before_start) == (False, False, True)
    assert c.startup_time_s is None and c.watch_time_s == 10.0 and c.rendition_s == {}
    assert c.score == 50.0 and (c.browser, c.os) == ("chrome", "android")

    assert (d.started, d.failed, d.exited_before_start) == (False, True, False)
    assert d.watch_time_s == 0.0 and d.score == 0.0
    assert (d.browser, d.os) == ("safari", "macos")


def test_paused_time_is_no_watch_time() -> None:
    # View A, paused by its viewer for 30 s (reported when it played again, at T0+60) and
    # stalled 3.5 s: 70 s of watch time, 5 % rebuffering (Mux leaves paused time out).
    ua, last, beacons = VIEWS["view-a-0123456789"]
    paused = {"view-a-0123456789": (ua, last, [*beacons, (60, "pause", {"ms": 30_000}),
                                               (70, "stall", {"ms": 3500})])}
    ((view, events),) = _rows(paused)
    qoe = view_qoe(view, events, T0, END)
    assert qoe.watch_time_s == 70.0 and qoe.rebuffer_s == 3.5
    assert qoe.score == pytest.approx(100 * 8 / 9 * (1 - 5 / 10))
    assert qoe.rendition_s == {"720p": 69.0}  # the picture held while paused is not watched
    assert ViewEvents(events).qoe(view, T0, END) == qoe


def test_a_pause_across_a_switch_leaves_each_rendition_its_share() -> None:
    # View B switched from 480p to 720p at T0+60, inside a 20 s pause that ended at T0+70:
    # 10 s of it were on each rendition.
    ua, last, beacons = VIEWS["view-b-0123456789"]
    paused = {"view-b-0123456789": (ua, last, [*beacons, (70, "pause", {"ms": 20_000})])}
    ((view, events),) = _rows(paused)
    qoe = view_qoe(view, events, T0, END)
    assert qoe.watch_time_s == 80.0
    assert qoe.rendition_s == {"480p": 39.0, "720p": 40.0}
    assert ViewEvents(events).qoe(view, T0, END) == qoe
    # A window that begins inside the pause counts only its own part of it.
    late = T0 + timedelta(seconds=65)
    clipped = view_qoe(view, events, late, END)
    assert clipped.rendition_s == {"480p": 0.0, "720p": 40.0}
    assert ViewEvents(events).qoe(view, late, END) == clipped


def test_the_stream_summary_by_hand() -> None:
    s = compute(_rows(), T0, END).summary
    assert (s.views, s.started_views, s.failed_views) == (4, 2, 1)
    assert s.playback_failure_percentage == 25.0
    assert s.exits_before_video_start_percentage == 25.0
    assert (s.startup_time_p50_s, s.startup_time_p95_s) == (1.0, 2.0)
    assert s.watch_time_s == 210.0
    assert s.rebuffer_percentage == pytest.approx(100 * 5 / 210)
    assert s.rebuffer_frequency_per_minute == pytest.approx(2 / 3.5)
    assert s.rebuffer_duration_s == 2.5 and s.rebuffer_count == 2
    assert (s.live_latency_p50_s, s.live_latency_p95_s) == (4.0, 6.0)
    assert s.rendition_time_share == pytest.approx({"480p": 49 / 198, "720p": 149 / 198})
    assert s.rendition_switches == 1
    assert s.viewer_experience_score == pytest.approx((100 * 8 / 9 + 50 + 50 + 0) / 4)


def test_the_profiles_slos_are_judged_on_the_summary() -> None:
    slo = load_profile("default").slo  # 3 s, 1 %, 5 s, 2 %
    results = {r.metric: r for r in slo_results(compute(_rows(), T0, END).summary, slo)}
    assert (results["startup_time_p95_s"].value, results["startup_time_p95_s"].met) == (2.0, True)
    assert results["rebuffer_percentage"].met is False  # 2.4 % against 1 %
    assert (results["live_latency_p95_s"].value, results["live_latency_p95_s"].met) == (
        6.0, False)
    # One view of four ended in a fatal error: 25 % against 2 %.
    assert (results["playback_failure_percentage"].value,
            results["playback_failure_percentage"].met) == (25.0, False)
    empty = slo_results(compute([], T0, END).summary, slo)
    assert [r.met for r in empty] == [None, None, None, None]


def test_group_by_splits_the_views() -> None:
    by_browser = compute(_rows(), T0, END, group_by="browser").groups
    assert sorted(by_browser) == ["chrome", "firefox", "safari"]
    assert by_browser["chrome"].views == 2
    assert by_browser["chrome"].exits_before_video_start_percentage == 50.0
    assert by_browser["safari"].playback_failure_percentage == 100.0
    assert by_browser["firefox"].rebuffer_percentage == 5.0
    by_rendition = compute(_rows(), T0, END, group_by="rendition").groups
    assert {k: g.views for k, g in by_rendition.items()} == {"720p": 2, "unknown": 2}
    by_os = compute(_rows(), T0, END, group_by="os").groups
    assert sorted(by_os) == ["android", "linux", "macos", "windows"]
    assert set(compute(_rows(), T0, END, group_by="protocol").groups) == {"hls"}
    assert set(compute(_rows(), T0, END, group_by="player").groups) == {"hls.js"}


def test_a_recovered_fatal_error_is_not_a_failure_and_a_later_one_is() -> None:
    recovered: list[Beacon] = [
        (1, "first_frame", {"ms": 500}),
        (1, "start", {"muted": False, "native": False, "rendition": "", "protocol": "whep",
                      "player": "whep"}),
        (5, "error", {"code": "realtime_ice", "fatal": True, "message": ""}),
        (9, "latency", {"seconds": 0.4}),
    ]
    views = {"view-e-0123456789": (CHROME_LINUX, 9.0, recovered),
             "view-f-0123456789": (CHROME_LINUX, 20.0, [
                 *recovered, (20, "error", {"code": "media_3", "fatal": True, "message": ""})])}
    e, f = (view_qoe(view, events, T0, END) for view, events in _rows(views))
    assert (e.failed, e.started, e.protocol, e.player) == (False, True, "whep", "whep")
    assert (f.failed, f.started, f.score) == (True, True, 0.0)
    assert e.watch_time_s == 8.5  # asked at T0+0.5, last report T0+9


def test_the_window_clips_watch_time_and_percentiles_are_nearest_rank() -> None:
    [(view, events)] = _rows({"view-a-0123456789": VIEWS["view-a-0123456789"]})
    clipped = view_qoe(view, events, T0 + timedelta(seconds=50), END)
    # Started before the window: it still counts as started, but its startup time and
    # latency samples (all before T0+50) belong to an earlier window.
    assert (clipped.started, clipped.exited_before_start) == (True, False)
    assert clipped.watch_time_s == 50.0 and clipped.rendition_s == {"720p": 50.0}
    assert clipped.startup_time_s is None and clipped.latency_samples_s == ()
    early = view_qoe(view, events, T0, T0 + timedelta(seconds=15))
    assert early.watch_time_s == 15.0 and early.latency_samples_s == (2.0,)
    # B stalls 3 s at T0+30: a window from T0+29 saw 1 s of its watch time, and the stall
    # counts for no more than that (rebuffering is part of watch time, at most 100 %).
    [(view, events)] = _rows({"view-b-0123456789": VIEWS["view-b-0123456789"]})
    short = view_qoe(view, events, T0 + timedelta(seconds=29), T0 + timedelta(seconds=30.5))
    assert (short.watch_time_s, short.rebuffer_s, short.rebuffer_count) == (1.5, 1.5, 1)
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([float(i) for i in range(1, 21)], 95) == 19.0
    assert compute([], T0, END).summary.viewer_experience_score is None


def test_a_hostile_stored_summary_reads_as_empty_not_as_an_error() -> None:
    view = ViewQoe.from_summary("v", {"started": "yes", "watch_time_s": "NaN",
                                      "latency_samples_s": ["x", 1], "rendition_s": [1]})
    assert (view.started, view.watch_time_s, view.latency_samples_s, view.rendition_s) == (
        False, 0.0, (1.0,), {})


async def _record(views: PlaybackViewStore, stream_id: str, pid: str) -> None:
    for view, events in _rows():
        await views.record(view_id=view.id, playback_id=pid, stream_id=stream_id,
                           user_agent=view.user_agent,
                           events=[NewPlaybackEvent(e.type, e.at, e.data) for e in events],
                           now=view.started_at)
        await views.record(view_id=view.id, playback_id=pid, stream_id=stream_id,
                           user_agent=view.user_agent, events=[], now=view.last_seen_at)


async def test_retention_keeps_each_views_summary_and_prunes_its_beacons(
    tmp_path: Path,
) -> None:
    async with _api(tmp_path) as (_, store):
        await _retention(store)


async def _retention(store: Store) -> None:
    stream, _ = await store.create_stream(name="show")
    pid = stream.playback_ids[0].id
    views = PlaybackViewStore(store.engine)
    await _record(views, stream.id, pid)
    before = (await qoe_report(views, stream.id, T0, END, group_by="browser"))
    # A later window: C and D ended before it; A and B play on from their earlier start
    # (read from the state events before the window), B's second stall ends inside it.
    later = (await qoe_report(views, stream.id, T0 + timedelta(seconds=50), END)).summary
    assert (later.views, later.started_views, later.exits_before_video_start_percentage,
            later.playback_failure_percentage) == (2, 2, 0.0, 0.0)
    assert later.startup_time_p50_s is None and later.live_latency_p50_s is None
    assert later.watch_time_s == 50 + 60 and later.rebuffer_count == 1
    assert later.rebuffer_percentage == pytest.approx(100 * 2 / 110)
    # A fifth view still reporting an hour later keeps its raw beacons.
    late = END + timedelta(hours=1)
    await views.record(view_id="view-late-0123456", playback_id=pid, stream_id=stream.id,
                       user_agent=CHROME_LINUX, now=late,
                       events=[NewPlaybackEvent("latency", late, {"seconds": 1.0})])

    retention = QoeRetention(views, raw_retention=1800, interval=60,
                             clock=lambda: late + timedelta(minutes=10))
    assert await retention.sweep() == 4
    assert retention.pruned_events == sum(len(events) for _, _, events in VIEWS.values())
    assert await retention.sweep() == 0
    for view_id in VIEWS:
        assert await views.list_events(view_id) == []
        view = await views.get_view(view_id)
        assert view is not None and view.summary is not None
    assert len(await views.list_events("view-late-0123456")) == 1

    after = await qoe_report(views, stream.id, T0, END, group_by="browser")
    # Every view lay inside the window, so its summary gives the same numbers exactly.
    assert after.summary == before.summary
    assert after.groups == before.groups


@contextlib.asynccontextmanager
async def _api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Store]]:
    settings = Settings(data_dir=tmp_path, admin_token=ADMIN, public_host="live.example.com")
    store = await Store.open(settings.resolved_database_url)
    auth = Authenticator(settings, store)
    app = create_api_app(settings=settings, store=store, bus=EventBus(),
                         broadcasts=NoBroadcasts(), auth=auth)
    app.include_router(qoe_router(auth, store, QoeReports(PlaybackViewStore(store.engine))))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        try:
            yield client, store
        finally:
            await store.close()


async def test_the_api_reports_a_streams_and_a_broadcasts_qoe(tmp_path: Path) -> None:
    async with _api(tmp_path) as (client, store):
        stream, _ = await store.create_stream(name="show")
        pid = stream.playback_ids[0].id
        views = PlaybackViewStore(store.engine)
        await _record(views, stream.id, pid)
        window = {"from": T0.isoformat(), "to": END.isoformat()}
        r = await client.get(f"/live-streams/{stream.id}/qoe",
                             params={**window, "group_by": "browser"})
        assert r.status_code == 200, r.text
        body = r.json()["data"]
        assert body["from"].startswith("2030-01-01T12:00:00") and body["group_by"] == "browser"
        summary = body["summary"]
        assert summary["views"] == 4
        assert summary["startup_time_p50_s"] == 1.0 and summary["startup_time_p95_s"] == 2.0
        assert summary["rebuffer_percentage"] == pytest.approx(100 * 5 / 210)
        assert summary["live_latency_p95_s"] == 6.0
        assert summary["playback_failure_percentage"] == 25.0
        assert sorted(body["groups"]) == ["chrome", "firefox", "safari"]
        assert (await stream_qoe(views, stream.id, T0, END)).views == 4

        # A window before the views: nothing, and the numbers that need views are null.
        r = await client.get(f"/live-streams/{stream.id}/qoe",
                             params={"from": (T0 - timedelta(hours=2)).isoformat(),
                                     "to": (T0 - timedelta(hours=1)).isoformat()})
        assert r.json()["data"]["summary"]["views"] == 0
        assert r.json()["data"]["summary"]["startup_time_p50_s"] is None

        await store.start_broadcast(stream.id, "bc-one", protocol="rtmp",
                                    remote_address="127.0.0.1", started_at=T0)
        await store.end_broadcast("bc-one", T0 + timedelta(seconds=60))
        r = await client.get("/broadcasts/bc-one/qoe")
        assert r.status_code == 200, r.text
        # Views that overlap the broadcast's minute, their events within it.
        assert r.json()["data"]["summary"]["views"] == 4
        assert r.json()["data"]["summary"]["live_latency_p95_s"] == 6.0


@pytest.mark.parametrize(("path", "params", "status"), [
    ("/live-streams/nope/qoe", {}, 404),
    ("/broadcasts/nope/qoe", {}, 404),
    ("/broadcasts/" + "x" * 65 + "/qoe", {}, 422),
    ("/live-streams/{sid}/qoe", {"group_by": "country"}, 422),
    ("/live-streams/{sid}/qoe", {"from": "yesterday"}, 422),
    ("/live-streams/{sid}/qoe", {"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"},
     422),
    ("/live-streams/{sid}/qoe", {"from": "2029-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"},
     422),
])
async def test_bad_qoe_queries_are_refused(tmp_path: Path, path: str,
                                           params: dict[str, str], status: int) -> None:
    async with _api(tmp_path) as (client, store):
        stream, _ = await store.create_stream(name="show")
        r = await client.get(path.format(sid=stream.id), params=params)
        assert r.status_code == status, r.text
        assert "error" in r.json()


async def test_qoe_needs_the_read_scope(tmp_path: Path) -> None:
    async with _api(tmp_path) as (client, store):
        stream, _ = await store.create_stream(name="show")
        r = await client.get(f"/live-streams/{stream.id}/qoe",
                             headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = await client.post("/tokens", json={"name": "w", "scopes": ["chat:moderate"]})
        secret = r.json()["data"]["token"]
        r = await client.get(f"/live-streams/{stream.id}/qoe",
                             headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 403


def _filtered(events: list[PlaybackEventRecord], start: datetime,
              end: datetime) -> list[PlaybackEventRecord]:
    """What `PlaybackViewStore.window(earlier_types=STATE_EVENTS)` reads for one view."""
    return [e for e in events if e.at < end and (e.at >= start or e.type in STATE_EVENTS)]


@pytest.mark.parametrize("seed", range(300))
def test_the_indexed_view_answers_what_the_full_pass_answers(seed: int) -> None:
    """`ViewEvents.qoe` against `view_qoe` over the window's events: random beacon
    sequences (out of order, equal times, fatal errors and recoveries, hostile values,
    pruned views with summaries), random windows, with and without a horizon trim."""
    rng = random.Random(seed)
    kinds = ["start", "first_frame", "quality", "error", "stall", "latency", "stall",
             "latency", "latency", "pause"]
    events: list[PlaybackEventRecord] = []
    for event_id in range(1, rng.randrange(0, 60)):
        kind = rng.choice(kinds)
        shapes: dict[str, dict[str, Any]] = {
            "start": {"protocol": rng.choice(["hls", "webrtc", ""]),
                      "player": rng.choice(["hls.js", "", None]), "native": rng.random() < 0.2,
                      "rendition": rng.choice(["source", "", 5])},
            "first_frame": {"ms": rng.choice([900, 2500.5, "x"])},
            "quality": {"height": rng.choice([720, 480, 0]), "level": rng.choice([0, 1, None])},
            "error": {"fatal": rng.random() < 0.5, "code": rng.choice(["a", "b", 3])},
            "stall": {"ms": rng.choice([3000, 120.5, None])},
            "latency": {"seconds": rng.choice([2.5, 1.25, "slow"])},
            "pause": rng.choice([{"ms": 30_000}, {"ms": 12.5}, {}]),
        }
        data = shapes[kind]
        at = T0 + timedelta(seconds=rng.choice([rng.uniform(0, 300), 60.0]))
        events.append(PlaybackEventRecord(event_id, "v", kind, at, data))
    rng.shuffle(events)
    summary = ViewQoe.from_summary("v", {"watch_time_s": 7}).to_summary()
    view = PlaybackViewRecord("v", "p", "s", T0 + timedelta(seconds=rng.uniform(0, 50)),
                              T0 + timedelta(seconds=rng.uniform(50, 320)),
                              rng.choice([CHROME_LINUX, FIREFOX_WINDOWS, SAFARI_MAC]),
                              summary if rng.random() < 0.2 else None)
    indexed = ViewEvents(events)
    held = sorted(events, key=lambda e: e.id)
    if rng.random() < 0.5:
        horizon = T0 + timedelta(seconds=rng.uniform(0, 200))
        indexed.drop_before(horizon)
        held = [e for e in held if e.at >= horizon or e.type in STATE_EVENTS]
    for _ in range(10):
        start = T0 + timedelta(seconds=rng.choice([rng.uniform(-10, 320), 60.0]))
        end = start + timedelta(seconds=rng.choice([rng.uniform(0, 200), 0.0]))
        assert indexed.qoe(view, start, end) == view_qoe(view, _filtered(held, start, end),
                                                        start, end)
