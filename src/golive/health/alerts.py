"""Alerts: the lifecycle of each (stream, rule) and the engine that evaluates them (health).

Every `interval` seconds `AlertEngine` takes one `StreamSignals` per live broadcast
(ingest facts from the hub's meter, the ingest speed and media gaps over its own
windows, SRT statistics, encoder degrade steps and restarts heard on the bus, the
sound and picture measured in the transcoder's graph, publisher reconnects seen as a
broadcast observer, and the viewers' experience over a sliding window) and runs
every rule of `golive.health.diagnosis.RULES` against the stream profile's `[alerts]`
thresholds and `[slo]` targets. The viewer window is recomputed at most every
`qoe_interval_seconds` per stream, in a task whose heavy part runs in a thread; the
rules read the latest one. At most `VIEWER_READS` of those tasks read at once: every
stream's comes due in the same second, and twenty reading together took twenty pooled
database connections (SQLite's pool keeps five, so each round opened and closed the
rest: bench/health.py measured 293 connections opened in 110 s).

An alert is deduplicated per (stream, rule) and moves along `TRANSITIONS`: a rule
whose condition holds opens it `pending`; held for `for_seconds` it is `firing`
(one `alert.firing` event); clear again it is `resolving`, and clear for
`resolve_after_seconds` it is `resolved` (one `alert.resolved` event). A condition
that returns while resolving keeps the same alert firing, with no new event. Events
go on the bus like every other, so the store records them with the stream's events
and its outbox hands them to webhooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from golive.core import Event, EventBus, EventType, random_id, utcnow
from golive.health.diagnosis import (
    RULES,
    Diagnosis,
    EncoderSignals,
    Finding,
    Rule,
    SrtSignals,
    StreamSignals,
    ViewerSignals,
)
from golive.health.history import IngestHistory
from golive.media import AlertSpec, PipelineFacts, SloSpec
from golive.stream import Broadcast, BroadcastState, StreamPolicy

__all__ = [
    "TRANSITIONS",
    "Alert",
    "AlertBook",
    "AlertEngine",
    "AlertState",
    "SrtSample",
]

log = logging.getLogger(__name__)

RECENT_PER_STREAM = 50  # resolved alerts kept per stream for the API
STREAMS_REMEMBERED = 1000  # streams whose recent alerts are kept after their broadcast
_MAX_RECONNECTS_KEPT = 1000
_MAX_RESTARTS_KEPT = 1000


class AlertState(enum.StrEnum):
    PENDING = "pending"  # the condition holds, not yet for `for_seconds`
    FIRING = "firing"
    RESOLVING = "resolving"  # firing, but the condition has been clear for less than the hold
    RESOLVED = "resolved"


TRANSITIONS: dict[AlertState, frozenset[AlertState]] = {
    # A pending alert whose condition clears is forgotten: it never fired.
    AlertState.PENDING: frozenset({AlertState.FIRING}),
    AlertState.FIRING: frozenset({AlertState.RESOLVING, AlertState.RESOLVED}),
    AlertState.RESOLVING: frozenset({AlertState.FIRING, AlertState.RESOLVED}),
    AlertState.RESOLVED: frozenset(),
}


@dataclass(eq=False)
class Alert:
    """One alert of one stream and rule, from pending to resolved."""

    id: str
    stream_id: str
    broadcast_id: str
    rule: str
    finding: Finding
    diagnosis: Diagnosis
    pending_since: float  # engine clock
    started_at: datetime
    state: AlertState = AlertState.PENDING
    clear_since: float | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_reason: str | None = None
    peak: float = 0.0  # the value farthest past the threshold while open

    def move_to(self, state: AlertState) -> None:
        if state not in TRANSITIONS[self.state]:
            raise RuntimeError(f"alert {self.id} cannot go from {self.state} to {state}")
        self.state = state

    def event_data(self) -> dict[str, Any]:
        """The data of its `alert.firing` / `alert.resolved` events (JSON-safe)."""
        finding, diagnosis = self.finding, self.diagnosis
        data: dict[str, Any] = {
            "alert_id": self.id,
            "rule": self.rule,
            "value": round(finding.value, 4),
            "threshold": round(finding.threshold, 4),
            "unit": finding.unit,
            "peak": round(self.peak, 4),
            "summary": finding.summary,
            "cause": diagnosis.cause,
            "fix": diagnosis.fix,
            "related": diagnosis.related,
            "started_at": self.started_at.isoformat(),
            "fired_at": self.fired_at.isoformat() if self.fired_at else None,
        }
        if self.state is AlertState.RESOLVED:
            data["resolved_at"] = self.resolved_at.isoformat() if self.resolved_at else None
            data["reason"] = self.resolved_reason
        return data

    def as_dict(self) -> dict[str, Any]:
        """What the API shows: the event data plus the state."""
        state = AlertState.FIRING if self.state is AlertState.RESOLVING else self.state
        return {"state": str(state), "broadcast_id": self.broadcast_id, **self.event_data(),
                "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None}


def _worse(rule_value: float, threshold: float, peak: float) -> bool:
    """Is `rule_value` farther past `threshold` than `peak` (either side)?"""
    return abs(rule_value - threshold) > abs(peak - threshold)


class AlertBook:
    """The alerts of every stream: one open alert per (stream, rule), and recent ones.

    Pure: `observe` takes `now` and returns the alerts that fired or resolved, for the
    caller to publish.
    """

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], Alert] = {}
        self._recent: OrderedDict[str, deque[Alert]] = OrderedDict()

    def observe(
        self, now: float, stream_id: str, broadcast_id: str, rule: str,
        found: tuple[Finding, Diagnosis] | None, spec: AlertSpec,
    ) -> Alert | None:
        """One evaluation of one rule; the alert when it fired or resolved just now."""
        key = (stream_id, rule)
        alert = self._open.get(key)
        if found is not None:
            finding, diagnosis = found
            if alert is None:
                alert = Alert(random_id("alr"), stream_id, broadcast_id, rule, finding,
                              diagnosis, pending_since=now, started_at=utcnow(),
                              peak=finding.value)
                self._open[key] = alert
            alert.finding, alert.diagnosis, alert.clear_since = finding, diagnosis, None
            if _worse(finding.value, finding.threshold, alert.peak):
                alert.peak = finding.value
            if alert.state is AlertState.RESOLVING:
                alert.move_to(AlertState.FIRING)  # the same alert again: no new event
            elif alert.state is AlertState.PENDING and now - alert.pending_since >= spec.for_seconds:
                alert.move_to(AlertState.FIRING)
                alert.fired_at = utcnow()
                return alert
            return None
        if alert is None:
            return None
        if alert.state is AlertState.PENDING:
            del self._open[key]
            return None
        if alert.state is AlertState.FIRING:
            alert.move_to(AlertState.RESOLVING)
            alert.clear_since = now
        if alert.clear_since is not None and now - alert.clear_since >= spec.resolve_after_seconds:
            return self._resolve(alert, "condition cleared")
        return None

    def end_stream(self, stream_id: str, reason: str) -> list[Alert]:
        """Close a stream's alerts (its broadcast ended); the firing ones resolve."""
        resolved = []
        for key, alert in list(self._open.items()):
            if key[0] != stream_id:
                continue
            if alert.state is AlertState.PENDING:
                del self._open[key]
            else:
                resolved.append(self._resolve(alert, reason))
        return resolved

    def _resolve(self, alert: Alert, reason: str) -> Alert:
        alert.move_to(AlertState.RESOLVED)
        alert.resolved_at = utcnow()
        alert.resolved_reason = reason
        del self._open[(alert.stream_id, alert.rule)]
        recent = self._recent.pop(alert.stream_id, None) or deque(maxlen=RECENT_PER_STREAM)
        recent.appendleft(alert)
        self._recent[alert.stream_id] = recent  # most recently used last
        while len(self._recent) > STREAMS_REMEMBERED:
            self._recent.popitem(last=False)
        return alert

    def active(self, stream_id: str) -> list[Alert]:
        """Open alerts of a stream (pending, firing, resolving), oldest first."""
        return [a for (sid, _), a in self._open.items() if sid == stream_id]

    def recent(self, stream_id: str) -> list[Alert]:
        """Resolved alerts of a stream, newest first."""
        return list(self._recent.get(stream_id, ()))


# The engine ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SrtSample:
    """Cumulative SRT receiver statistics of a publisher's connection at one moment."""

    rtt_ms: float
    packets_received: int
    packets_lost: int
    retransmitted: int
    dropped: int
    latency_ms: int
    unsupported_audio: str | None = None  # audio the publisher sends that golive cannot take
    unsupported_video: str | None = None  # likewise its video


class PipelineView(Protocol):
    """What the engine reads of the live pipeline (`golive.media.LivePipeline`)."""

    def facts(self, stream_id: str) -> PipelineFacts | None: ...


SrtSource = Callable[[Broadcast], SrtSample | None]
SpecLoader = Callable[[StreamPolicy], Awaitable[AlertSpec]]
SloLoader = Callable[[StreamPolicy], Awaitable[SloSpec]]
# (stream id, window start, window end, SLOs) -> the viewers' window; None without views.
ViewerSource = Callable[[str, datetime, datetime, SloSpec], Awaitable[ViewerSignals | None]]


@dataclass
class _Watch:
    """The engine's running state for one live broadcast."""

    broadcast: Broadcast
    spec: AlertSpec
    samples: deque[tuple[float, int, float | None]] = field(default_factory=deque)
    srt_samples: deque[tuple[float, SrtSample]] = field(default_factory=deque)
    reconnects: deque[float] = field(default_factory=lambda: deque(maxlen=_MAX_RECONNECTS_KEPT))
    # (when, why) of each encoder restart heard on the bus
    restarts: deque[tuple[float, str]] = field(
        default_factory=lambda: deque(maxlen=_MAX_RESTARTS_KEPT))
    audio_frames: int = 0
    audio_seen_at: float | None = None
    degrade_step: int = 0
    degrade_speed: float | None = None
    exhausted: bool = False
    standby_seen: bool = False  # a standby publisher was connected during this broadcast
    # When the last publisher left (None: one is on): the slate's media is not the input's.
    lost_at: float | None = None
    spec_task: asyncio.Task[None] | None = None
    slo: SloSpec = field(default_factory=SloSpec)
    viewers: ViewerSignals | None = None
    viewers_at: float | None = None  # when the last QoE computation was started
    viewers_task: asyncio.Task[None] | None = None


VIEWER_READS = 2
"""Viewer-window computations running at once (module doc)."""


class AlertEngine:
    """Evaluates the alert rules of every live broadcast once per `interval`.

    Attach it to the hub with `hub.add_observer(engine)`; `start()` runs its timer and
    listens on the bus for the transcoder's degrade warnings.
    """

    def __init__(
        self,
        bus: EventBus,
        *,
        load_spec: SpecLoader,
        pipeline: PipelineView | None = None,
        srt: SrtSource | None = None,
        viewers: ViewerSource | None = None,
        load_slo: SloLoader | None = None,
        rules: tuple[Rule, ...] = RULES,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        history: IngestHistory | None = None,
    ) -> None:
        """`history`: keeps a sample of the measurements for post-event reports."""
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self._bus = bus
        self._load_spec = load_spec
        self._pipeline = pipeline
        self._srt = srt
        self._viewers = viewers
        self._viewer_reads = asyncio.Semaphore(VIEWER_READS)
        self._load_slo = load_slo
        self.rules = rules
        self.interval = interval
        self._history = history
        self._clock = clock
        self.book = AlertBook()
        self._watches: dict[str, _Watch] = {}  # by stream id
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._warnings = bus.subscribe(
            maxsize=1000, accept=lambda e: e.type is EventType.LIVE_STREAM_WARNING)

    # Lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="alert-engine")
        self._listener = asyncio.create_task(self._listen(), name="alert-engine-warnings")

    async def close(self) -> None:
        self._warnings.close()
        for task in (self._task, self._listener,
                     *(w.spec_task for w in self._watches.values()),
                     *(w.viewers_task for w in self._watches.values())):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.evaluate(self._clock())
            except Exception:
                log.exception("alert evaluation failed")

    async def _listen(self) -> None:
        async for event in self._warnings:
            watch = self._watches.get(event.stream_id)
            code = event.data.get("code")
            if watch is not None and code == "transcoder_restarted":
                reason = event.data.get("reason")
                watch.restarts.append((self._clock(), str(reason)[:500] if reason else "?"))
                continue
            if watch is None or code not in ("slow_encode", "encode_recovered",
                                             "captions_frame_rate"):
                continue
            step = event.data.get("step")
            speed = event.data.get("speed")
            if isinstance(step, int):
                watch.exhausted = code == "slow_encode" and step == watch.degrade_step
                watch.degrade_step = step
            if isinstance(speed, int | float) and code == "slow_encode":
                watch.degrade_speed = float(speed)

    # BroadcastObserver -----------------------------------------------------------------

    def broadcast_started(self, broadcast: Broadcast) -> None:
        watch = _Watch(broadcast, AlertSpec())
        self._watches[broadcast.stream_id] = watch
        watch.spec_task = asyncio.create_task(self._fetch_spec(watch))

    def publisher_resumed(self, broadcast: Broadcast) -> None:
        watch = self._watches.get(broadcast.stream_id)
        if watch is None or broadcast.on_slate:
            return  # the slate took over: the input is still gone
        watch.lost_at = None
        watch.reconnects.append(self._clock())
        watch.samples.clear()  # a new timeline

    def publisher_lost(self, broadcast: Broadcast) -> None:
        watch = self._watches.get(broadcast.stream_id)
        if watch is not None and watch.lost_at is None:
            watch.lost_at = self._clock()

    def broadcast_ended(self, broadcast: Broadcast) -> None:
        watch = self._watches.get(broadcast.stream_id)
        if watch is None or watch.broadcast is not broadcast:
            return
        del self._watches[broadcast.stream_id]
        if self._history is not None:
            self._history.ended(broadcast)
        for task in (watch.spec_task, watch.viewers_task):
            if task is not None:
                task.cancel()
        for alert in self.book.end_stream(broadcast.stream_id, "broadcast ended"):
            self._publish(EventType.ALERT_RESOLVED, alert)

    async def _fetch_spec(self, watch: _Watch) -> None:
        profile = watch.broadcast.policy.profile
        try:
            watch.spec = await self._load_spec(watch.broadcast.policy)
            if self._load_slo is not None:
                watch.slo = await self._load_slo(watch.broadcast.policy)
        except Exception as exc:  # an invalid profile: its transcoder says so; keep defaults
            log.warning("alert thresholds from defaults stream_id=%s profile=%s error=%s",
                        watch.broadcast.stream_id, profile, exc)

    # Reading ---------------------------------------------------------------------------

    def alerts(self, stream_id: str) -> dict[str, list[dict[str, Any]]]:
        """Open (pending, firing) and recently resolved alerts of a stream, for the API."""
        return {"active": [a.as_dict() for a in self.book.active(stream_id)],
                "recent": [a.as_dict() for a in self.book.recent(stream_id)]}

    # Evaluation ------------------------------------------------------------------------

    def evaluate(self, now: float) -> None:
        """One round over every live broadcast: measure, run the rules, publish changes."""
        for watch in list(self._watches.values()):
            broadcast = watch.broadcast
            if broadcast.state is BroadcastState.ENDED:
                continue
            self._refresh_viewers(watch, now)
            signals = self.signals(watch, now)
            if self._history is not None:
                self._history.observe(broadcast, signals)
            spec = watch.spec
            for rule in self.rules:
                finding = rule.evaluate(signals, spec)
                found = None if finding is None else (finding, rule.diagnose(finding, signals))
                changed = self.book.observe(now, broadcast.stream_id, broadcast.id, rule.name,
                                            found, spec)
                if changed is not None:
                    kind = (EventType.ALERT_FIRING if changed.state is AlertState.FIRING
                            else EventType.ALERT_RESOLVED)
                    self._publish(kind, changed)

    def signals(self, watch: _Watch, now: float) -> StreamSignals:
        broadcast, spec = watch.broadcast, watch.spec
        facts = broadcast.meter.snapshot(now)
        publisher = broadcast.publisher
        # Also while the publisher is away (reconnect window): the stall is the symptom.
        gap = None if facts.last_media_at is None else max(0.0, now - facts.last_media_at)
        if broadcast.on_slate and watch.lost_at is not None:
            gap = max(gap or 0.0, now - watch.lost_at)  # a slate may be feeding meanwhile
        # Ingest speed: media seconds that arrived per second, over a window free of stalls.
        samples = watch.samples
        if gap is not None and gap >= spec.stall_seconds:
            samples.clear()
            watch.audio_seen_at = None  # audio is judged afresh once media flows again
        else:
            samples.append((now, facts.video_frames, facts.frame_rate))
        while len(samples) > 2 and samples[1][0] <= now - spec.ingest_speed_seconds:
            samples.popleft()
        speed = None
        if samples and now - samples[0][0] >= spec.ingest_speed_seconds * 0.95:
            then, frames_then, _ = samples[0]
            rate = facts.frame_rate
            if rate:
                speed = (facts.video_frames - frames_then) / rate / (now - then)
        # Audio: frames stopped while video keeps coming.
        audio_gap = None
        if facts.audio_frames != watch.audio_frames:
            watch.audio_frames = facts.audio_frames
            watch.audio_seen_at = now
        elif watch.audio_seen_at is None and facts.audio_frames and gap is not None \
                and gap < spec.stall_seconds:
            watch.audio_seen_at = now  # after a stall: from when media came back
        if watch.audio_seen_at is not None and gap is not None and gap < spec.stall_seconds:
            audio_gap = now - watch.audio_seen_at
        horizon = now - spec.reconnects_seconds
        reconnects = sum(1 for at in watch.reconnects if at > horizon)
        since = now - spec.transcoder_restarts_seconds
        restarts = tuple(reason for at, reason in watch.restarts if at > since)
        pipeline = self._pipeline.facts(broadcast.stream_id) if self._pipeline else None
        transcoder = pipeline.transcoder if pipeline is not None else None
        standby = broadcast.standby is not None
        watch.standby_seen = watch.standby_seen or standby
        return StreamSignals(
            stream_id=broadcast.stream_id,
            protocol=publisher.protocol if publisher is not None else None,
            connected=publisher is not None,
            ingest=facts,
            ingest_speed=speed,
            media_gap_s=gap,
            audio_gap_s=audio_gap,
            reconnects=reconnects,
            srt=self._srt_signals(watch, now),
            encoder=self._encoder_signals(watch, pipeline),
            backup_key=broadcast.policy.backup_key,
            standby=standby,
            standby_seen=watch.standby_seen,
            viewers=watch.viewers,
            # The slate's card and silence are golive's, not the publisher's picture and sound.
            levels=None if broadcast.on_slate or transcoder is None or not transcoder.running
            else transcoder.levels,
            restarts=restarts,
        )

    def _refresh_viewers(self, watch: _Watch, now: float) -> None:
        """Start a QoE computation of the stream's window when one is due (none running,
        the last one `qoe_interval_seconds` ago)."""
        if self._viewers is None or (watch.viewers_task is not None
                                     and not watch.viewers_task.done()):
            return
        if watch.viewers_at is not None and \
                now - watch.viewers_at < watch.spec.qoe_interval_seconds:
            return
        watch.viewers_at = now
        watch.viewers_task = asyncio.create_task(self._measure_viewers(watch, self._viewers))

    async def _measure_viewers(self, watch: _Watch, source: ViewerSource) -> None:
        spec = watch.spec
        try:
            async with self._viewer_reads:
                end = utcnow()  # (after the wait: the window ends when it is read)
                # Views of an earlier broadcast of the stream are not this one's viewers.
                start = max(end - timedelta(seconds=spec.qoe_window_seconds),
                            watch.broadcast.started_at)
                found = await source(watch.broadcast.stream_id, start, end, watch.slo)
        except Exception as exc:  # the store is away: judge again next time
            log.warning("viewer experience unavailable stream_id=%s error=%s",
                        watch.broadcast.stream_id, exc)
            return
        watch.viewers = found if found is not None and \
            found.summary.views >= spec.min_qoe_views else None

    def _srt_signals(self, watch: _Watch, now: float) -> SrtSignals | None:
        broadcast = watch.broadcast
        publisher = broadcast.publisher
        if self._srt is None or publisher is None or publisher.protocol != "srt":
            watch.srt_samples.clear()
            return None
        sample = self._srt(broadcast)
        if sample is None:
            return None
        window = watch.srt_samples
        window.append((now, sample))
        while len(window) > 2 and window[1][0] <= now - watch.spec.ingest_speed_seconds:
            window.popleft()
        first = window[0][1]
        received = sample.packets_received - first.packets_received
        loss = retransmit = None
        if received > 0:
            loss = max(0, sample.packets_lost - first.packets_lost) / received
            retransmit = max(0, sample.retransmitted - first.retransmitted) / received
        return SrtSignals(rtt_ms=sample.rtt_ms, loss_ratio=loss, retransmit_ratio=retransmit,
                          dropped=max(0, sample.dropped - first.dropped),
                          latency_ms=sample.latency_ms,
                          unsupported_audio=sample.unsupported_audio,
                          unsupported_video=sample.unsupported_video)

    def _encoder_signals(self, watch: _Watch,
                         facts: PipelineFacts | None) -> EncoderSignals | None:
        if facts is None:
            return None
        transcoder = facts.transcoder
        return EncoderSignals(degrade_step=watch.degrade_step, speed=watch.degrade_speed,
                              exhausted=watch.exhausted,
                              restarts=transcoder.restarts if transcoder is not None else 0,
                              renditions=facts.renditions,
                              live_speed=transcoder.speed if transcoder is not None else None)

    def _publish(self, kind: EventType, alert: Alert) -> None:
        log.info("alert %s stream_id=%s rule=%s value=%s", kind, alert.stream_id, alert.rule,
                 round(alert.finding.value, 3))
        self._bus.publish(Event(type=kind, stream_id=alert.stream_id,
                                broadcast_id=alert.broadcast_id, data=alert.event_data()))
