"""The post-event report: one timeline of a broadcast, its SLOs, and support tickets.

`build_report` reads a finished broadcast from the store (its stream events - connected,
disconnected, failovers, warnings, alerts with their diagnoses -, the viewers' QoE per
time bucket, the publisher's ingest and the encoder per time bucket from the samples
`golive.health.history` kept, chat volume and moderation) and places imported support tickets next to
what the telemetry showed at that moment (the alerts and QoE within +-2 minutes).
`render_html` draws it as one self-contained page: inline SVG plots drawn here, no
scripts, no network. `parse_tickets` reads a tickets CSV (time, channel, text) bounded
in size, rows and field length; bad rows come back as problems, never as a crash.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from golive.health.qoe import qoe_report, slo_results
from golive.media import ProfileError, parse_profile
from golive.media.profiles import SloSpec
from golive.store import (
    BroadcastRecord,
    BroadcastSampleRecord,
    ChatStore,
    EventRecord,
    PlaybackViewStore,
    Store,
)

MAX_TICKETS_BYTES = 2 * 1024 * 1024
MAX_TICKETS = 5000
MAX_TICKET_FIELD = 2000
MAX_TICKET_PROBLEMS = 50  # problems listed one by one; the rest are counted
TICKET_COLUMNS = ("time", "channel", "text")
TICKET_WINDOW = timedelta(minutes=2)  # telemetry shown next to a ticket: +-2 minutes
MAX_BUCKETS = 240  # QoE and chat buckets: one a minute, wider for long broadcasts
SHORT_BROADCAST_S = 600  # shorter broadcasts get 10 s buckets
MAX_EVENTS = 20_000
MAX_CHAT_MESSAGES = 2_000_000
# Stream events placed on the timeline (kind: the event type without its prefix).
TIMELINE_EVENTS = {
    "live_stream.connected": "connected",
    "live_stream.active": "active",
    "live_stream.disconnected": "disconnected",
    "live_stream.failover": "failover",
    "live_stream.warning": "warning",
    "alert.firing": "alert.firing",
    "alert.resolved": "alert.resolved",
}


class TicketsError(ValueError):
    """A tickets file refused as a whole (too large, not UTF-8, no header, too many rows)."""


@dataclass(frozen=True, slots=True)
class Ticket:
    at: datetime
    channel: str
    text: str
    line: int  # in the CSV file (1: the header)


def parse_tickets(data: bytes) -> tuple[list[Ticket], list[str]]:
    """Tickets from CSV bytes with a header naming `time`, `channel` and `text` (any
    order, other columns ignored). Times are ISO 8601 with a UTC offset. Returns the good
    tickets (time order) and one message per bad row; raises TicketsError for a file
    that cannot be read at all."""
    if len(data) > MAX_TICKETS_BYTES:
        raise TicketsError(f"tickets file is {len(data)} bytes; at most {MAX_TICKETS_BYTES}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TicketsError(f"tickets file is not UTF-8 (byte {exc.start})") from None
    if "\x00" in text:
        raise TicketsError("tickets file contains NUL bytes; is it really CSV?")
    csv.field_size_limit(MAX_TICKET_FIELD * 4)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise TicketsError(f"tickets file header: {exc}") from None
    if header is None:
        raise TicketsError("tickets file is empty; expected a header: time,channel,text")
    names = [h.strip().lower() for h in header]
    missing = [c for c in TICKET_COLUMNS if c not in names]
    if missing:
        raise TicketsError(f"tickets file header lacks column(s) {', '.join(missing)}; "
                           f"expected time,channel,text (got {','.join(names)[:200]})")
    where = {c: names.index(c) for c in TICKET_COLUMNS}
    tickets: list[Ticket] = []
    problems: list[str] = []
    rows = 0

    def bad(line: int, why: str) -> None:
        problems.append(f"line {line}: {why}")

    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise TicketsError(f"tickets file line {reader.line_num}: {exc}") from None
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        rows += 1
        if rows > MAX_TICKETS:
            raise TicketsError(f"tickets file has more than {MAX_TICKETS} rows")
        if len(row) < len(names):
            bad(line, f"{len(row)} fields, the header has {len(names)}")
            continue
        stamp, channel, body = (row[where[c]].strip() for c in TICKET_COLUMNS)
        too_long = [c for c, v in zip(TICKET_COLUMNS, (stamp, channel, body), strict=True)
                    if len(v) > MAX_TICKET_FIELD]
        if too_long:
            bad(line, f"{too_long[0]} longer than {MAX_TICKET_FIELD} characters")
            continue
        if not body:
            bad(line, "text is empty")
            continue
        try:
            at = datetime.fromisoformat(stamp)
        except ValueError:
            bad(line, f"time {stamp[:40]!r} is not ISO 8601 (e.g. 2026-12-04T20:15:00Z)")
            continue
        if at.tzinfo is None:
            bad(line, f"time {stamp[:40]!r} has no UTC offset (add Z or +01:00)")
            continue
        tickets.append(Ticket(at.astimezone(UTC), channel[:200] or "unknown", body, line))
    if len(problems) > MAX_TICKET_PROBLEMS:
        more = len(problems) - MAX_TICKET_PROBLEMS
        problems = [*problems[:MAX_TICKET_PROBLEMS], f"... and {more} more bad rows"]
    return sorted(tickets, key=lambda t: (t.at, t.line)), problems


# Gathering ---------------------------------------------------------------------------------


def _iso(at: datetime) -> str:
    """UTC with microseconds always (the timeline sorts on these strings)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


async def _broadcast_events(store: Store, broadcast: BroadcastRecord,
                            end: datetime) -> tuple[list[EventRecord], bool]:
    """The stream's logged events of this broadcast (newest-first pages, read back), and
    whether the log still reaches back to its start (it keeps `event_history` per stream)."""
    found: list[EventRecord] = []
    before: int | None = None
    seen = 0
    reaches_start = False
    while seen < MAX_EVENTS:
        page = await store.list_events(broadcast.stream_id, limit=500, before=before)
        if not page:
            reaches_start = reaches_start or before is None  # an empty log lost nothing
            break
        seen += len(page)
        for event in page:
            if event.broadcast_id == broadcast.id or (
                    event.broadcast_id is None and broadcast.started_at <= event.at <= end):
                found.append(event)
        if page[-1].at < broadcast.started_at:
            reaches_start = True
        if page[-1].at < broadcast.started_at - timedelta(minutes=5):
            break
        before = page[-1].id
    # A log that ran out on the broadcast's own `connected` event still reaches its start.
    reaches_start = reaches_start or any(
        e.type == "live_stream.connected" and e.broadcast_id == broadcast.id
        and e.at - broadcast.started_at < timedelta(seconds=5) for e in found)
    return sorted(found, key=lambda e: (e.at, e.id)), reaches_start


def _event_entry(event: EventRecord) -> dict[str, Any]:
    data = event.data
    entry: dict[str, Any] = {"at": _iso(event.at), "kind": TIMELINE_EVENTS[event.type]}
    if event.type.startswith("alert."):
        for key in ("alert_id", "rule", "value", "threshold", "unit", "peak", "summary",
                    "cause", "fix", "reason"):
            if key in data:
                entry[key] = data[key]
    elif event.type == "live_stream.warning":
        entry["code"] = data.get("code")
        entry["message"] = data.get("message")
        extra = {k: v for k, v in data.items() if k not in ("code", "message")}
        if extra:
            entry["data"] = extra
    else:
        entry["data"] = dict(data)
    return entry


async def _slo_spec(store: Store, stream_id: str, profile: str, version: int | None,
                    started_at: datetime) -> tuple[str, SloSpec]:
    """The profile pinned when the broadcast started (the stream's pin without a log)."""
    pins = await store.list_profile_pins(stream_id, limit=100)
    pin = next((p for p in pins if p.pinned_at <= started_at), None)
    name, number = (pin.name, pin.version) if pin is not None else (profile, version)
    if number is None:
        return profile, SloSpec()
    record = await store.get_profile_version(name, number)
    if record is None:
        return f"{name}@{number}", SloSpec()
    try:
        return f"{name}@{number}", parse_profile(record.document, name=name).slo
    except ProfileError:
        return f"{name}@{number}", SloSpec()


# Per bucket, each sampled figure folded as it matters: the bitrate's mean and its lowest,
# the worst of the rest (lowest frame rate and speeds, longest keyframe interval, highest
# round trip and loss, largest A/V offset either way, deepest degrade step).
_INGEST_FOLDS: tuple[tuple[str, str, str], ...] = (
    ("bitrate_kbps", "mean", "bitrate_kbps"),
    ("bitrate_kbps", "min", "bitrate_min_kbps"),
    ("frame_rate", "min", "frame_rate_min"),
    ("keyframe_interval_s", "max", "keyframe_interval_max_s"),
    ("ingest_speed", "min", "ingest_speed_min"),
    ("encoder_speed", "min", "encoder_speed_min"),
    ("degrade_step", "max", "degrade_step_max"),
    ("srt_rtt_ms", "max", "srt_rtt_max_ms"),
    ("srt_loss_percentage", "max", "srt_loss_max_percentage"),
    ("av_drift_s", "absmax", "av_drift_max_s"),
)


def _fold(samples: Sequence[BroadcastSampleRecord]) -> dict[str, Any]:
    """The samples' figures folded (`_INGEST_FOLDS`); None where none measured one."""
    folded: dict[str, Any] = {
        "samples": len(samples),
        "connected_share": _round(sum(1 for s in samples if s.data.get("connected"))
                                  / len(samples)) if samples else None,
    }
    for key, how, name in _INGEST_FOLDS:
        values = [float(v) for s in samples
                  if isinstance(v := s.data.get(key), int | float) and not isinstance(v, bool)
                  and math.isfinite(v)]
        if not values:
            folded[name] = None
        elif how == "mean":
            folded[name] = _round(sum(values) / len(values), 1)
        elif how == "min":
            folded[name] = _round(min(values))
        elif how == "max":
            folded[name] = _round(max(values))
        else:
            folded[name] = _round(max(values, key=abs))
    return folded


def _ingest(samples: Sequence[BroadcastSampleRecord], start: datetime, end: datetime,
            step: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The broadcast's ingest summary and one timeline entry per bucket that has samples."""
    by_bucket: dict[int, list[BroadcastSampleRecord]] = {}
    for sample in samples:
        if start <= sample.at <= end:
            index = int((sample.at - start).total_seconds() // step)
            by_bucket.setdefault(index, []).append(sample)
    entries = []
    for index in sorted(by_bucket):
        low = start + timedelta(seconds=index * step)
        entries.append({"at": _iso(low), "until": _iso(min(end, low + timedelta(seconds=step))),
                        "kind": "ingest", **_fold(by_bucket[index])})
    inside = [s for bucket in by_bucket.values() for s in bucket]
    return _fold(inside), entries


def _bucket_seconds(duration: float) -> int:
    """Per minute (wider past MAX_BUCKETS minutes); 10 s under SHORT_BROADCAST_S, so a
    short broadcast still draws a curve."""
    if duration < SHORT_BROADCAST_S:
        return 10
    return 60 * max(1, math.ceil(duration / 60 / MAX_BUCKETS))


async def build_report(store: Store, broadcast_id: str,
                       tickets: Sequence[Ticket] = ()) -> dict[str, Any]:
    """The report of one finished broadcast as JSON-safe data (report.json)."""
    broadcast = await store.get_broadcast(broadcast_id)
    if broadcast is None:
        raise ValueError(f"no broadcast with id {broadcast_id!r}")
    if broadcast.ended_at is None:
        raise ValueError(f"broadcast {broadcast_id} has not ended; report on it afterwards")
    stream = await store.get_stream(broadcast.stream_id)
    if stream is None:
        raise ValueError(f"the stream of broadcast {broadcast_id} was deleted")
    start, end = broadcast.started_at, broadcast.ended_at
    duration = max(0.0, (end - start).total_seconds())
    profile, slo = await _slo_spec(store, stream.id, stream.profile, stream.profile_version,
                                   start)
    views = PlaybackViewStore(store.engine)
    chat = ChatStore(store.engine)

    timeline: list[dict[str, Any]] = []
    alerts: dict[str, dict[str, Any]] = {}
    events, events_complete = await _broadcast_events(store, broadcast, end)
    for event in events:
        if event.type not in TIMELINE_EVENTS:
            continue
        entry = _event_entry(event)
        timeline.append(entry)
        if event.type.startswith("alert.") and isinstance(event.data.get("alert_id"), str):
            alert = alerts.setdefault(event.data["alert_id"], {
                "alert_id": event.data["alert_id"], "rule": entry.get("rule"),
                "fired_at": None, "resolved_at": None})
            for key in ("value", "threshold", "unit", "summary", "cause", "fix"):
                if key in entry and (event.type == "alert.firing" or key not in alert):
                    alert[key] = entry[key]
            if event.type == "alert.firing":
                alert["fired_at"] = entry["at"]
            else:
                alert["resolved_at"] = entry["at"]
                alert["peak"] = entry.get("peak")

    # QoE and chat per bucket.
    step = _bucket_seconds(duration)
    buckets: list[dict[str, Any]] = []
    chat_counts: list[int] = []
    at = start
    while at < end:
        until = min(end, at + timedelta(seconds=step))
        found = await qoe_report(views, stream.id, at, until, group_by="protocol")
        summary = found.summary
        buckets.append({
            "at": _iso(at), "until": _iso(until), "kind": "qoe",
            "views": summary.views,
            # The players' protocol (hls: hls.js or native LL-HLS/HLS, whep: WebRTC).
            "views_by_protocol": {name: group.views for name, group in found.groups.items()},
            "startup_p50_s": _round(summary.startup_time_p50_s),
            "startup_p95_s": _round(summary.startup_time_p95_s),
            "rebuffer_percentage": _round(summary.rebuffer_percentage),
            "latency_p95_s": _round(summary.live_latency_p95_s),
            "failure_percentage": _round(summary.playback_failure_percentage),
        })
        chat_counts.append(0)
        at = until
    after: tuple[datetime, int] | None = None
    counted = 0
    while counted < MAX_CHAT_MESSAGES:
        page = await chat.messages_between(stream.id, start=start, end=end, after=after,
                                           limit=1000)
        for message in page:
            index = int((message.sent_at - start).total_seconds() // step)
            if 0 <= index < len(chat_counts):
                chat_counts[index] += 1
        counted += len(page)
        if len(page) < 1000:
            break
        after = (page[-1].sent_at, page[-1].id)
    deleted, bans = await chat.moderation_between(stream.id, start=start, end=end)
    chat_buckets: list[dict[str, Any]] = [{"at": b["at"], "until": b["until"], "kind": "chat",
                                           "messages": n}
                    for b, n in zip(buckets, chat_counts, strict=True)]
    moderation: list[dict[str, Any]] = [
        *({"at": _iso(m.deleted_at), "kind": "moderation", "action": "delete_message",
           "message_id": m.id, "user_name": m.user_name} for m in deleted
          if m.deleted_at is not None),
        *({"at": _iso(b.created_at), "kind": "moderation", "action": "ban",
           "user_id": b.user_id, "reason": b.reason,
           "until": _iso(b.until) if b.until else None} for b in bans),
    ]

    samples = await store.broadcast_samples(broadcast.id)
    ingest, ingest_buckets = _ingest(samples, start, end, step)

    overall = (await qoe_report(views, stream.id, start, end)).summary
    peak, peak_truncated = await views.peak_views(stream.id, start, end)
    slos = [{"metric": r.metric, "value": _round(r.value, 4), "target": r.target,
             "unit": r.unit, "met": r.met} for r in slo_results(overall, slo)]

    placed = [_place(ticket, alerts, buckets) for ticket in tickets
              if start - TICKET_WINDOW <= ticket.at <= end + TICKET_WINDOW]
    timeline.extend(buckets)
    timeline.extend(ingest_buckets)
    timeline.extend(chat_buckets)
    timeline.extend(moderation)
    timeline.extend(placed)
    timeline.sort(key=lambda e: (e["at"], e["kind"]))
    return {
        "broadcast": {
            "id": broadcast.id, "stream_id": stream.id, "stream_name": stream.name,
            "protocol": broadcast.protocol, "start": _iso(start), "end": _iso(end),
            "duration_s": round(duration, 3), "profile": profile,
            # Views open at once at the busiest moment (start to last report); a lower
            # bound when more views overlapped the broadcast than one query reads.
            "peak_views": peak, "peak_views_truncated": peak_truncated,
        },
        "bucket_seconds": step,
        # False: the stream's event log was trimmed past the broadcast's start (raise
        # event_history), so its earliest events are missing from the timeline.
        "events_complete": events_complete,
        "qoe": {k: (_round(v, 4) if isinstance(v, float) else v)
                for k, v in overall.as_dict().items()},
        "slos": slos,
        # The publisher's ingest and the encoder over the broadcast, from the samples the
        # node kept (every `ingest_history_interval`); nulls where none measured a figure.
        "ingest": ingest,
        "alerts": sorted(alerts.values(), key=lambda a: a["fired_at"] or ""),
        "chat": {"messages": counted, "deleted": len(deleted), "bans": len(bans)},
        "tickets": {"placed": len(placed), "outside_broadcast": len(tickets) - len(placed)},
        "timeline": timeline,
    }


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _place(ticket: Ticket, alerts: dict[str, dict[str, Any]],
           buckets: list[dict[str, Any]]) -> dict[str, Any]:
    """The ticket with the alerts active or changing and the QoE buckets within +-2 min."""
    low, high = ticket.at - TICKET_WINDOW, ticket.at + TICKET_WINDOW
    near_alerts = []
    for alert in alerts.values():
        fired = _parse_iso(alert["fired_at"]) if alert["fired_at"] else None
        resolved = _parse_iso(alert["resolved_at"]) if alert["resolved_at"] else None
        if fired is None:
            continue
        if fired <= high and (resolved is None or resolved >= low):
            near_alerts.append({"alert_id": alert["alert_id"], "rule": alert["rule"],
                                "fired_at": alert["fired_at"],
                                "resolved_at": alert["resolved_at"],
                                "cause": alert.get("cause")})
    near_qoe = [{k: b[k] for k in ("at", "views", "startup_p95_s", "rebuffer_percentage",
                                   "latency_p95_s")}
                for b in buckets
                if _parse_iso(b["at"]) <= high and _parse_iso(b["until"]) >= low]
    return {"at": _iso(ticket.at), "kind": "ticket", "channel": ticket.channel,
            "text": ticket.text, "line": ticket.line,
            "telemetry": {"alerts": near_alerts, "qoe": near_qoe}}


# Rendering ---------------------------------------------------------------------------------

_W, _H, _PAD_L, _PAD_R, _PAD_T, _PAD_B = 860, 210, 56, 32, 24, 28
_PROTOCOL_COLORS = ("#2980b9", "#8e44ad", "#27ae60", "#d35400")
_MARKER_COLORS = {"alert.firing": "#c0392b", "alert.resolved": "#27ae60",
                  "failover": "#8e44ad", "ticket": "#d35400", "disconnected": "#7f8c8d"}


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: object, unit: str = "") -> str:
    """A number for the page, escaped."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return _esc(f"{value:.2f}{unit}")
    return _esc(f"{value}{unit}")


def _chart(title: str, css: str, start: datetime, end: datetime,
           series: Sequence[tuple[str, str, Sequence[tuple[datetime, float | None]]]],
           markers: Sequence[tuple[datetime, str, str]], *,
           bars: Sequence[tuple[datetime, datetime]] | None = None) -> str:
    """An inline SVG time chart: lines per series (or bars over the given time spans, one
    per point of the first series) and vertical markers."""
    span = max(1.0, (end - start).total_seconds())
    values = [v for _, _, points in series for _, v in points if v is not None]
    top = max(values, default=0.0)
    top = 1.0 if top <= 0 else top * 1.1
    plot_w, plot_h = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B

    def x(at: datetime) -> float:
        return _PAD_L + plot_w * min(1.0, max(0.0, (at - start).total_seconds() / span))

    def y(v: float) -> float:
        return _PAD_T + plot_h * (1 - v / top)

    parts = [f'<svg class="plot {css}" role="img" aria-label="{_esc(title)}" '
             f'viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{plot_w}" height="{plot_h}" '
             'fill="#fafafa" stroke="#ccc"/>']
    for i in range(5):
        v = top * i / 4
        parts.append(f'<text x="{_PAD_L - 4}" y="{y(v) + 4:.1f}" text-anchor="end" '
                     f'font-size="10">{v:.3g}</text>')
        parts.append(f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                     'stroke="#eee"/>')
    for i in range(5):
        at = start + timedelta(seconds=span * i / 4)
        parts.append(f'<text x="{x(at):.1f}" y="{_H - 8}" text-anchor="middle" '
                     f'font-size="10">{at.strftime("%H:%M:%S")}</text>')
    for at, kind, label in markers:
        color = _MARKER_COLORS.get(kind, "#555")
        parts.append(f'<line class="marker {kind.replace(".", "-")}" x1="{x(at):.1f}" '
                     f'x2="{x(at):.1f}" y1="{_PAD_T}" y2="{_H - _PAD_B}" stroke="{color}" '
                     f'stroke-dasharray="4 3"><title>{_esc(label)}</title></line>')
    for index, (name, color, points) in enumerate(series):
        known = [(x(at), y(v)) for at, v in points if v is not None]
        if bars is not None:
            for (low, high), (_, count) in zip(bars, points, strict=True):
                if count is None:
                    continue
                left, width = x(low) + 1, max(2.0, x(high) - x(low) - 2)
                parts.append(f'<rect class="bar" x="{left:.1f}" y="{y(count):.1f}" '
                             f'width="{width:.1f}" height="{_PAD_T + plot_h - y(count):.1f}" '
                             f'fill="{color}" fill-opacity="0.6"/>')
        elif known:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in known)
            parts.append(f'<polyline class="series" fill="none" stroke="{color}" '
                         f'stroke-width="2" points="{path}"/>')
            parts.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{color}"/>'
                         for px, py in known)
        parts.append(f'<text x="{_PAD_L + 150 * index}" y="{_PAD_T - 8}" '
                     f'font-size="11" fill="{color}">{_esc(name)}</text>')
    parts.append("</svg>")
    return f"<figure><figcaption>{_esc(title)}</figcaption>{''.join(parts)}</figure>"


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (inline SVG, no scripts, no fetches)."""
    b = report["broadcast"]
    timeline: list[dict[str, Any]] = report["timeline"]
    # The plots span the broadcast and the tickets placed around it.
    start = min([_parse_iso(b["start"]), *(_parse_iso(e["at"]) for e in timeline)])
    end = max([_parse_iso(b["end"]), *(_parse_iso(e["at"]) for e in timeline)])

    def mid(entry: dict[str, Any]) -> datetime:
        low, high = _parse_iso(entry["at"]), _parse_iso(entry["until"])
        return low + (high - low) / 2

    qoe = [e for e in timeline if e["kind"] == "qoe"]
    ingest = [e for e in timeline if e["kind"] == "ingest"]
    chat = [e for e in timeline if e["kind"] == "chat"]
    markers = [(_parse_iso(e["at"]), e["kind"],
                f'{e["kind"]} {e.get("rule") or e.get("channel") or ""} {e["at"]}')
               for e in timeline if e["kind"] in _MARKER_COLORS]
    protocols = sorted({name for e in qoe for name in e.get("views_by_protocol", {})})
    by_protocol = [(f"{name} views", _PROTOCOL_COLORS[i % len(_PROTOCOL_COLORS)],
                    [(mid(e), float(e.get("views_by_protocol", {}).get(name, 0))) for e in qoe])
                   for i, name in enumerate(protocols)]
    charts = [
        _chart("Viewers by protocol", "viewers", start, end,
               [("all views", "#2c3e50", [(mid(e), float(e["views"])) for e in qoe]),
                *by_protocol], markers),
        _chart("Startup time (s)", "startup", start, end,
               [("p50", "#2980b9", [(mid(e), e["startup_p50_s"]) for e in qoe]),
                ("p95", "#c0392b", [(mid(e), e["startup_p95_s"]) for e in qoe])], markers),
        _chart("Rebuffer (%) and latency p95 (s)", "rebuffer", start, end,
               [("rebuffer %", "#e67e22", [(mid(e), e["rebuffer_percentage"]) for e in qoe]),
                ("latency p95 s", "#16a085", [(mid(e), e["latency_p95_s"]) for e in qoe])],
               markers),
        _chart("Ingest bitrate (kbit/s)", "ingest", start, end,
               [("mean", "#2c3e50", [(mid(e), e["bitrate_kbps"]) for e in ingest]),
                ("lowest", "#c0392b", [(mid(e), e["bitrate_min_kbps"]) for e in ingest])],
               markers),
        _chart("Speed (x real time): media arriving, encoder", "speed", start, end,
               [("ingest", "#2980b9", [(mid(e), e["ingest_speed_min"]) for e in ingest]),
                ("encoder", "#8e44ad", [(mid(e), e["encoder_speed_min"]) for e in ingest])],
               markers),
        _chart("Chat messages per bucket", "chat", start, end,
               [("messages", "#7f8c8d", [(mid(e), float(e["messages"])) for e in chat])],
               markers, bars=[(_parse_iso(e["at"]), _parse_iso(e["until"])) for e in chat]),
    ]
    slo_rows = "".join(
        f'<tr class="{"met" if s["met"] else "missed" if s["met"] is False else "nodata"}">'
        f'<td>{_esc(s["metric"])}</td><td>{_fmt(s["value"], " " + s["unit"])}</td>'
        f'<td>&le; {_fmt(s["target"], " " + s["unit"])}</td>'
        f'<td>{"met" if s["met"] else "MISSED" if s["met"] is False else "no data"}</td></tr>'
        for s in report["slos"])
    alert_rows = "".join(
        f'<tr><td>{_esc(a["fired_at"])}</td><td>{_esc(a["resolved_at"] or "still firing")}</td>'
        f'<td>{_esc(a["rule"])}</td><td>{_fmt(a.get("value"))} {_esc(a.get("unit"))} '
        f'(threshold {_fmt(a.get("threshold"))})</td><td>{_esc(a.get("cause"))}</td>'
        f'<td>{_esc(a.get("fix"))}</td></tr>' for a in report["alerts"])
    ticket_rows = "".join(_ticket_row(e) for e in timeline if e["kind"] == "ticket")
    event_rows = "".join(
        f'<tr class="{_esc(e["kind"].replace(".", "-"))}"><td>{_esc(e["at"])}</td>'
        f'<td>{_esc(e["kind"])}</td><td>{_esc(_describe(e))}</td></tr>'
        for e in timeline if e["kind"] not in ("qoe", "chat", "ingest"))
    q = report["qoe"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Broadcast report {_esc(b["id"])}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }}
table {{ border-collapse: collapse; margin: 8px 0 20px; }}
td, th {{ border: 1px solid #ddd; padding: 4px 8px; vertical-align: top; text-align: left; }}
tr.missed td {{ background: #fdecea; }} tr.met td {{ background: #eafaf1; }}
figure {{ margin: 12px 0; }} figcaption {{ font-weight: 600; }}
.near {{ font-size: 12px; color: #555; }}
</style></head><body>
<h1>Broadcast report</h1>
<table class="summary">
<tr><th>Broadcast</th><td>{_esc(b["id"])}</td></tr>
<tr><th>Stream</th><td>{_esc(b["stream_name"])} ({_esc(b["stream_id"])})</td></tr>
<tr><th>Profile</th><td>{_esc(b["profile"])}</td></tr>
<tr><th>Start / end</th><td>{_esc(b["start"])} &ndash; {_esc(b["end"])}
 ({b["duration_s"]:.0f} s, {_esc(b["protocol"])})</td></tr>
<tr><th>Views</th><td>{q["views"]} ({q["started_views"]} started, {q["failed_views"]} failed;
 at most {b.get("peak_views", "n/a")}{"+" if b.get("peak_views_truncated") else ""} at once)</td></tr>
<tr><th>Ingest</th><td>{_ingest_summary(report.get("ingest") or dict())}</td></tr>
<tr><th>Chat</th><td>{report["chat"]["messages"]} messages, {report["chat"]["deleted"]} deleted,
 {report["chat"]["bans"]} bans</td></tr>
</table>
{"" if report["events_complete"] else '<p class="missed"><strong>The stream&#39;s event log no longer reaches back to this broadcast&#39;s start (it keeps event_history events); its earliest events are missing.</strong></p>'}
<h2>Service level objectives</h2>
<table class="slos"><tr><th>Objective</th><th>Measured</th><th>Target</th><th>Result</th></tr>
{slo_rows}</table>
<h2>Over time</h2>
<p class="near">Dashed markers: red alert fired, green resolved, purple failover,
orange support ticket, grey publisher disconnected. Buckets of {report["bucket_seconds"]} s.</p>
{"".join(charts)}
<h2>Alerts and their diagnoses</h2>
<table class="alerts"><tr><th>Fired</th><th>Resolved</th><th>Rule</th><th>Value</th>
<th>Likely cause</th><th>Fix</th></tr>{alert_rows or '<tr><td colspan="6">No alerts.</td></tr>'}
</table>
<h2>Support tickets against telemetry (&plusmn;2 min)</h2>
<table class="tickets"><tr><th>Time</th><th>Channel</th><th>Ticket</th><th>Telemetry then</th>
</tr>{ticket_rows or '<tr><td colspan="4">No tickets imported.</td></tr>'}</table>
<h2>Timeline</h2>
<table class="timeline"><tr><th>At</th><th>Kind</th><th>What</th></tr>{event_rows}</table>
</body></html>
"""


def _ingest_summary(ingest: dict[str, Any]) -> str:
    if not ingest.get("samples"):
        return "no samples kept (alerts off, or the broadcast was too short)"
    parts = [f'{_fmt(ingest.get("bitrate_kbps"), " kbit/s")} on average (lowest '
             f'{_fmt(ingest.get("bitrate_min_kbps"), " kbit/s")})',
             f'frame rate at least {_fmt(ingest.get("frame_rate_min"), " fps")}',
             f'keyframes at most {_fmt(ingest.get("keyframe_interval_max_s"), " s")} apart']
    if ingest.get("encoder_speed_min") is not None:
        parts.append(f'encoder at least {_fmt(ingest["encoder_speed_min"], "x")} real time')
    if ingest.get("srt_rtt_max_ms") is not None:
        parts.append(f'SRT round trip at most {_fmt(ingest["srt_rtt_max_ms"], " ms")}, loss at '
                     f'most {_fmt(ingest.get("srt_loss_max_percentage"), " %")}')
    return "; ".join(parts) + f' ({ingest["samples"]} samples)'


def _describe(entry: dict[str, Any]) -> str:
    kind = entry["kind"]
    if kind.startswith("alert."):
        return f'{entry.get("rule")}: {entry.get("summary") or ""}'
    if kind == "warning":
        return f'{entry.get("code")}: {entry.get("message")}'
    if kind == "moderation":
        who = entry.get("user_name") or entry.get("user_id") or ""
        return f'{entry["action"]} {who}'.strip()
    if kind == "ticket":
        return f'[{entry["channel"]}] {entry["text"]}'
    data = entry.get("data") or {}
    return ", ".join(f"{k}={v}" for k, v in sorted(data.items()))[:300]


def _ticket_row(entry: dict[str, Any]) -> str:
    near = entry["telemetry"]
    alerts = "; ".join(f'{a["rule"]} (fired {a["fired_at"]}'
                       f'{", resolved " + a["resolved_at"] if a["resolved_at"] else ""})'
                       for a in near["alerts"]) or "no alert"
    qoe = "; ".join(f'{q["at"][11:19]}: {q["views"]} views, startup p95 '
                    f'{_fmt(q["startup_p95_s"], " s")}, rebuffer '
                    f'{_fmt(q["rebuffer_percentage"], " %")}'
                    for q in near["qoe"]) or "no QoE data"
    return (f'<tr class="ticket"><td>{_esc(entry["at"])}</td><td>{_esc(entry["channel"])}</td>'
            f'<td>{_esc(entry["text"])}</td><td class="near">Alerts: {_esc(alerts)}<br>'
            f'QoE: {_esc(qoe)}</td></tr>')


class BroadcastReports:
    """`golive.api.ReportSource` over a store: a finished broadcast's report as data, and
    as the self-contained page (drawn in a thread: a long broadcast has many buckets)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def report(self, broadcast_id: str) -> dict[str, Any]:
        return await build_report(self._store, broadcast_id)

    async def html(self, report: dict[str, Any]) -> str:
        return await asyncio.to_thread(render_html, report)
