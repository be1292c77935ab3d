"""The QoE stage of the alert engine: a live stream's viewer experience over a window.

`signals` turns each view's numbers in a window into `ViewerSignals` (the summary, per
player, the fatal error codes seen most, the views furthest behind live); `measure` does
it from the window's raw events. `ViewerWindows` takes each view's numbers the way the
QoE API does (`window_views_qoe`: from `RecentViews`' index, O(log n) a view, or from the
events read from the store), and computes a large window in a thread, off the event loop
(`off_loop`). A window without views gives None (the rules have nothing to judge).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from golive.health.diagnosis import ViewerGroup, ViewerSignals, ViewLag
from golive.health.qoe import (
    ViewQoe,
    ViewWindows,
    off_loop,
    summarize,
    view_qoe,
    window_views_qoe,
)
from golive.media import SloSpec
from golive.store import PlaybackEventRecord, PlaybackViewRecord

__all__ = ["BEHIND_KEPT", "MAX_VIEWS", "ViewerWindows", "measure", "signals"]

BEHIND_KEPT = 5  # views furthest behind live named in a latency diagnosis
MAX_VIEWS = 5000  # views one evaluation reads (the most recent)
_CODES_KEPT = 10

Rows = Sequence[tuple[PlaybackViewRecord, Sequence[PlaybackEventRecord]]]


def measure(rows: Rows, start: datetime, end: datetime, slo: SloSpec) -> ViewerSignals:
    """What the views of [start, end) reported, from their events (pure)."""
    return signals([view_qoe(view, events, start, end) for view, events in rows],
                   start, end, slo)


def signals(views: Sequence[ViewQoe], start: datetime, end: datetime,
            slo: SloSpec) -> ViewerSignals:
    """What the views of [start, end) reported, for the viewer-side rules (pure)."""
    players: dict[str, list[ViewQoe]] = {}
    for v in views:
        players.setdefault(v.player, []).append(v)
    codes = Counter(code for v in views for code in v.fatal_codes)
    behind = sorted(
        (ViewLag(v.view_id, v.player, v.browser, v.latency_samples_s[-1],
                 v.latency_samples_s[-1] - v.latency_samples_s[0])
         for v in views if v.latency_samples_s),
        key=lambda lag: (-lag.latency_s, lag.view_id))
    drifting = sorted((lag for lag in behind if lag.growth_s > 0),
                      key=lambda lag: (-lag.growth_s, lag.view_id))
    kinds: dict[tuple[str, str, str], list[ViewQoe]] = {}
    for v in views:
        kinds.setdefault((v.player, v.browser, v.os), []).append(v)
    rebuffering = []
    for (player, browser, os), group in sorted(kinds.items()):
        stalled = sum(1 for v in group if v.rebuffer_count > 0)
        watch = sum(v.watch_time_s for v in group)
        if stalled and watch > 0:
            rebuffering.append(ViewerGroup(player, browser, os, stalled, len(group),
                                           100 * sum(v.rebuffer_s for v in group) / watch))
    rebuffering.sort(key=lambda g: (-g.rebuffer_percentage, -g.rebuffering_views))
    return ViewerSignals(
        summary=summarize(views), slo=slo, window_s=(end - start).total_seconds(),
        rebuffering=tuple(rebuffering),
        by_player={name: summarize(group) for name, group in sorted(players.items())},
        error_codes=tuple(codes.most_common(_CODES_KEPT)),
        behind=tuple(behind[:BEHIND_KEPT]),
        drifting=tuple(drifting[:BEHIND_KEPT]),
    )


class ViewerWindows:
    """The alert engine's `ViewerSource` over a view store."""

    def __init__(self, views: ViewWindows, *, max_views: int = MAX_VIEWS) -> None:
        self._views = views
        self._max_views = max_views

    async def __call__(self, stream_id: str, start: datetime, end: datetime,
                       slo: SloSpec) -> ViewerSignals | None:
        each = await window_views_qoe(self._views, stream_id, start, end,
                                      max_views=self._max_views)
        if not each:
            return None
        return await off_loop(len(each), signals, each, start, end, slo)
