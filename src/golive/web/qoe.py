"""QoE intake: the player's playback events, validated strictly and stored per view (web).

The player posts small batches to `POST /qoe/PLAYBACK_ID` (every ~10 s, and with
`navigator.sendBeacon` when the page goes away). Event times are on the page's own
clock (`performance.now()` milliseconds) and are moved onto the server's clock with the
batch's `sent` time, so a viewer's wrong wall clock cannot skew them. Batches are
bounded (body size, event count, numeric ranges, known event types only) and
rate-limited per view.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from golive.store.views import NewPlaybackEvent

MAX_BODY_BYTES = 32 * 1024
MAX_EVENTS_PER_BATCH = 100
# A page's clock runs at most a day; a batch may report events up to 10 minutes old.
MAX_PAGE_MS = 86_400_000.0
MAX_EVENT_AGE_MS = 600_000.0
VIEW_ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    t: float = Field(ge=0, le=MAX_PAGE_MS, description="page clock (performance.now), ms")

    def data(self) -> dict[str, Any]:
        return self.model_dump(exclude={"t", "type"})


class StartEvent(_Event):
    """Playback started (the first `playing` of this view, or after offline/reconnect)."""

    type: Literal["start"]
    muted: bool
    native: bool = False
    rendition: str = Field(default="", max_length=32, pattern=r"^[A-Za-z0-9_-]*$")


class FirstFrameEvent(_Event):
    """Time from the player asking for the stream to the first frame on screen."""

    type: Literal["first_frame"]
    ms: float = Field(ge=0, le=MAX_EVENT_AGE_MS)


class StallEvent(_Event):
    """A rebuffering pause, reported when it ends (or when the page goes away)."""

    type: Literal["stall"]
    ms: float = Field(ge=0, le=3_600_000)


class QualityEvent(_Event):
    """The rendition being played changed."""

    type: Literal["quality"]
    level: int = Field(ge=0, le=31)
    height: int = Field(ge=0, le=8640)
    bitrate: int = Field(ge=0, le=1_000_000_000)
    auto: bool


class ErrorEvent(_Event):
    type: Literal["error"]
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    fatal: bool
    message: str = Field(default="", max_length=300)


class LatencyEvent(_Event):
    """A sample of how far behind live the picture is, in seconds."""

    type: Literal["latency"]
    seconds: float = Field(ge=0, le=3600)


PlayerEvent = Annotated[
    StartEvent | FirstFrameEvent | StallEvent | QualityEvent | ErrorEvent | LatencyEvent,
    Field(discriminator="type"),
]
EVENT_TYPES = ("start", "first_frame", "stall", "quality", "error", "latency")


class QoeBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    view_id: str = Field(pattern=VIEW_ID_PATTERN)
    sent: float = Field(ge=0, le=MAX_PAGE_MS, description="page clock at sending, ms")
    events: list[PlayerEvent] = Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH)


class BatchError(ValueError):
    """A batch the intake answers with 4xx; the message says what is wrong."""


def parse_batch(body: bytes) -> QoeBatch:
    if len(body) > MAX_BODY_BYTES:
        raise BatchError(f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        batch = QoeBatch.model_validate_json(body)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)[:5]
        ]
        raise BatchError("; ".join(problems)) from None
    for event in batch.events:
        if event.t > batch.sent + 1000 or batch.sent - event.t > MAX_EVENT_AGE_MS:
            raise BatchError("event times must be within 10 minutes before `sent`")
    return batch


def server_events(batch: QoeBatch, now: datetime) -> list[NewPlaybackEvent]:
    """The batch's events with their times moved onto the server's clock."""
    events = []
    for event in batch.events:
        age = max(0.0, batch.sent - event.t) / 1000
        events.append(NewPlaybackEvent(type=event.type, at=now - timedelta(seconds=age),
                                       data=event.data()))
    return events


class ViewRateLimit:
    """A token bucket per view id, in a bounded LRU (the oldest views are forgotten)."""

    def __init__(self, *, rate: float = 0.5, burst: float = 6, max_views: int = 100_000) -> None:
        self._rate = rate
        self._burst = burst
        self._max_views = max_views
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, view_id: str, now: float | None = None) -> float:
        """0 when a batch may pass now, else the seconds until one may."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.pop(view_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self._rate
        self._buckets[view_id] = (tokens, now)
        while len(self._buckets) > self._max_views:
            self._buckets.popitem(last=False)
        return wait


class ViewerTracker:
    """Which views of each playback id reported recently: the watch page's viewer count."""

    def __init__(self, *, window: float = 30.0, max_views: int = 200_000) -> None:
        self._window = window
        self._max_views = max_views
        self._seen: OrderedDict[str, tuple[str, float]] = OrderedDict()  # view -> (pid, at)
        self._counts: dict[str, int] = {}

    def seen(self, playback_id: str, view_id: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._expire(now)
        previous = self._seen.pop(view_id, None)
        if previous is None:
            self._counts[playback_id] = self._counts.get(playback_id, 0) + 1
        elif previous[0] != playback_id:
            self._drop(previous[0])
            self._counts[playback_id] = self._counts.get(playback_id, 0) + 1
        self._seen[view_id] = (playback_id, now)
        while len(self._seen) > self._max_views:
            _, (pid, _) = self._seen.popitem(last=False)
            self._drop(pid)

    def count(self, playback_id: str, now: float | None = None) -> int:
        self._expire(time.monotonic() if now is None else now)
        return self._counts.get(playback_id, 0)

    def _expire(self, now: float) -> None:
        while self._seen:
            view_id, (pid, at) = next(iter(self._seen.items()))
            if now - at <= self._window:
                break
            del self._seen[view_id]
            self._drop(pid)

    def _drop(self, playback_id: str) -> None:
        left = self._counts.get(playback_id, 0) - 1
        if left > 0:
            self._counts[playback_id] = left
        else:
            self._counts.pop(playback_id, None)


def utc_now() -> datetime:
    return datetime.now(UTC)
