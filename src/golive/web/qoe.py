"""QoE intake: the player's playback events, validated strictly and stored per view (web).

The player posts small batches to `POST /qoe/PLAYBACK_ID` (every ~10 s, and with
`navigator.sendBeacon` when the page goes away). Event times are on the page's own
clock (`performance.now()` milliseconds) and are moved onto the server's clock with the
batch's `sent` time, so a viewer's wrong wall clock cannot skew them. Batches are
bounded (body size, event count, numeric ranges, known event types only).

A beacon is unauthenticated and its view id is whatever the page made up, so limits
keyed by view id alone cost an attacker nothing: fresh ids wrote without limit. The
`QoeIntake` bounds what one source can make the node write, before any database
access: beacons per source address per second, *new* views per source address per
minute, new views per stream per second (the bound on many addresses at once), and
batches per view. Past a bound the answer is 429 with Retry-After; QoE is
best-effort, so a refused player only loses that batch and playback is untouched.

The watch page's viewer count counts distinct source addresses that reported in the
last 30 s, not view ids: nothing in a beacon proves a player exists, so ids are
free to invent, while an address is not. Tying views to media requests was the
other way, but viewers behind a CDN or edge cache never reach the origin, so the
origin cannot see them either. The price: viewers sharing one address (a household,
an office NAT) count once; an undercount was preferred to a count beacons can inflate.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from golive.core import BucketTable, Limit, RateLimits, RepeatedLog, address_of, client_key
from golive.store import NewPlaybackEvent

log = logging.getLogger(__name__)

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
    protocol: Literal["hls", "whep", ""] = ""
    player: Literal["hls.js", "native", "whep", ""] = ""

    def data(self) -> dict[str, Any]:
        # protocol and player came later: a player that does not name them stores as before.
        data = super().data()
        for name in ("protocol", "player"):
            if not data[name]:
                del data[name]
        return data


class FirstFrameEvent(_Event):
    """Time from the player asking for the stream to the first frame on screen."""

    type: Literal["first_frame"]
    ms: float = Field(ge=0, le=MAX_EVENT_AGE_MS)


class StallEvent(_Event):
    """A rebuffering pause, reported when it ends (or when the page goes away)."""

    type: Literal["stall"]
    ms: float = Field(ge=0, le=3_600_000)


class PauseEvent(_Event):
    """The viewer paused the picture for this long, reported when it plays again (or when
    the page goes away): time that is no watch time."""

    type: Literal["pause"]
    ms: float = Field(ge=0, le=86_400_000)


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
    StartEvent | FirstFrameEvent | StallEvent | PauseEvent | QualityEvent | ErrorEvent
    | LatencyEvent,
    Field(discriminator="type"),
]
EVENT_TYPES = ("start", "first_frame", "stall", "pause", "quality", "error", "latency")


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


VIEW_BATCH_RATE = 0.5  # batches per second per view id (one each ~10 s, with room)
VIEW_BATCH_BURST = 6


class ViewRateLimit:
    """Batches per view id: a token bucket each, in a bounded LRU."""

    def __init__(self, *, rate: float = VIEW_BATCH_RATE, burst: float = VIEW_BATCH_BURST,
                 max_views: int = 100_000) -> None:
        self._buckets = BucketTable(rate, burst, max_views)

    def allow(self, view_id: str, now: float | None = None) -> float:
        """0 when a batch may pass now (and it is counted), else the seconds until one may."""
        now = time.monotonic() if now is None else now
        wait = self._buckets.wait(view_id, now)
        if wait == 0:
            self._buckets.spend(view_id, now)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


class ViewerTracker:
    """Which source addresses reported on each playback id recently: the viewer count.

    Keyed by (playback id, address): see the module docstring for why not by view id.
    """

    def __init__(self, *, window: float = 30.0, max_viewers: int = 200_000) -> None:
        self._window = window
        self._max_viewers = max_viewers
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()  # (pid, addr) -> at
        self._counts: dict[str, int] = {}

    def seen(self, playback_id: str, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._expire(now)
        key = (playback_id, address)
        if self._seen.pop(key, None) is None:
            self._counts[playback_id] = self._counts.get(playback_id, 0) + 1
        self._seen[key] = now
        while len(self._seen) > self._max_viewers:
            (pid, _), _ = self._seen.popitem(last=False)
            self._drop(pid)

    def count(self, playback_id: str, now: float | None = None) -> int:
        self._expire(time.monotonic() if now is None else now)
        return self._counts.get(playback_id, 0)

    def _expire(self, now: float) -> None:
        while self._seen:
            (pid, address), at = next(iter(self._seen.items()))
            if now - at <= self._window:
                break
            del self._seen[(pid, address)]
            self._drop(pid)

    def _drop(self, playback_id: str) -> None:
        left = self._counts.get(playback_id, 0) - 1
        if left > 0:
            self._counts[playback_id] = left
        else:
            self._counts.pop(playback_id, None)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A batch the intake turns away: answer 429 with this message and Retry-After."""

    message: str
    retry_after: float

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


@dataclass(frozen=True, slots=True)
class QoeLimits:
    """The intake's bounds. Defaults leave room for a few dozen viewers behind one address
    (each sends a batch every ~10 s) and for a crowd joining one stream at once."""

    beacons_per_address_per_second: float = 3.0
    beacon_burst_per_address: float = 30
    new_views_per_address_per_minute: float = 10.0
    new_view_burst_per_address: float = 10
    new_views_per_stream_per_second: float = 20.0
    new_view_burst_per_stream: float = 100
    known_views: int = 100_000  # views the intake remembers as already admitted
    tracked_addresses: int = 100_000


class QoeIntake:
    """Admission of QoE batches (bounds per address, per stream, per view) and the viewer
    count. `admit_beacon` runs before the playback id is even looked up, `admit_view`
    once the stream is known, `stored` after the batch was written."""

    def __init__(self, limits: QoeLimits | None = None, *,
                 viewers: ViewerTracker | None = None, shared: RateLimits | None = None
                 ) -> None:
        """`shared`: count the per-address, per-stream and per-view budgets across the
        cluster's nodes (`check_beacon`, `check_view`); None: on this node only."""
        self.limits = limits = limits or QoeLimits()
        self.shared = shared
        self._shared_limits = (
            Limit("qoe-beacons", limits.beacons_per_address_per_second,
                  limits.beacon_burst_per_address, limits.tracked_addresses),
            Limit("qoe-view-batches", VIEW_BATCH_RATE, VIEW_BATCH_BURST, limits.known_views),
            Limit("qoe-new-views-address", limits.new_views_per_address_per_minute / 60,
                  limits.new_view_burst_per_address, limits.tracked_addresses),
            Limit("qoe-new-views-stream", limits.new_views_per_stream_per_second,
                  limits.new_view_burst_per_stream, limits.tracked_addresses),
        )
        self._beacons = BucketTable(limits.beacons_per_address_per_second,
                                    limits.beacon_burst_per_address, limits.tracked_addresses)
        self._address_views = BucketTable(limits.new_views_per_address_per_minute / 60,
                                          limits.new_view_burst_per_address,
                                          limits.tracked_addresses)
        self._stream_views = BucketTable(limits.new_views_per_stream_per_second,
                                         limits.new_view_burst_per_stream,
                                         limits.tracked_addresses)
        self.per_view = ViewRateLimit(max_views=limits.known_views)
        self._known: OrderedDict[str, None] = OrderedDict()  # view ids already admitted
        self.viewers = viewers if viewers is not None else ViewerTracker()
        self._warnings = RepeatedLog(log, interval=60.0)
        self.refused = 0

    def admit_beacon(self, remote: str, view_id: str, now: float | None = None
                     ) -> Refusal | None:
        """Beacons per source address, then batches per view."""
        now = time.monotonic() if now is None else now
        address = client_key(remote)  # an IPv6 viewer's /64
        wait = self._beacons.wait(address, now)
        if wait > 0:
            return self._refuse("too many QoE batches from this address", wait, address, now)
        self._beacons.spend(address, now)
        wait = self.per_view.allow(view_id, now)
        if wait > 0:
            return self._refuse("too many batches for this view", wait, address, now)
        return None

    def admit_view(self, remote: str, view_id: str, stream_id: str,
                   now: float | None = None) -> Refusal | None:
        """A view not seen before costs a token of its address and of its stream."""
        if view_id in self._known:
            self._known.move_to_end(view_id)
            return None
        now = time.monotonic() if now is None else now
        address = client_key(remote)  # an IPv6 viewer's /64
        by_address = self._address_views.wait(address, now)
        by_stream = self._stream_views.wait(stream_id, now)
        if by_address > 0:
            return self._refuse("too many new views from this address", by_address,
                                address, now)
        if by_stream > 0:
            return self._refuse("too many new views of this stream", by_stream, address, now)
        self._address_views.spend(address, now)
        self._stream_views.spend(stream_id, now)
        self._known[view_id] = None
        while len(self._known) > self.limits.known_views:
            self._known.popitem(last=False)
        return None

    async def check_beacon(self, remote: str, view_id: str) -> Refusal | None:
        """`admit_beacon`, counted across the cluster when the intake has shared limits."""
        if self.shared is None:
            return self.admit_beacon(remote, view_id)
        address = client_key(remote)  # an IPv6 viewer's /64
        beacons, per_view, _, _ = self._shared_limits
        admission = await self.shared.take((beacons, address))
        if admission.allowed:
            admission = await self.shared.take((per_view, view_id))
            if not admission.allowed:
                return self._refuse("too many batches for this view", admission.wait,
                                    address, time.monotonic())
            return None
        return self._refuse("too many QoE batches from this address", admission.wait, address,
                            time.monotonic())

    async def check_view(self, remote: str, view_id: str, stream_id: str) -> Refusal | None:
        """`admit_view`, counted across the cluster when the intake has shared limits.

        The views already admitted are remembered per node: a view whose batches reach a
        second node costs one more new-view token there.
        """
        if self.shared is None:
            return self.admit_view(remote, view_id, stream_id)
        if view_id in self._known:
            self._known.move_to_end(view_id)
            return None
        address = client_key(remote)  # an IPv6 viewer's /64
        _, _, by_address, by_stream = self._shared_limits
        admission = await self.shared.take((by_address, address), (by_stream, stream_id))
        if admission.refused_by is by_address:
            return self._refuse("too many new views from this address", admission.wait,
                                address, time.monotonic())
        if admission.refused_by is by_stream:
            return self._refuse("too many new views of this stream", admission.wait,
                                address, time.monotonic())
        self._known[view_id] = None
        while len(self._known) > self.limits.known_views:
            self._known.popitem(last=False)
        return None

    def stored(self, playback_id: str, remote: str, now: float | None = None) -> None:
        self.viewers.seen(playback_id, address_of(remote), now)

    def _refuse(self, message: str, wait: float, address: str, now: float) -> Refusal:
        self.refused += 1
        self._warnings.warning(message, now, "QoE batch refused: %s address=%s", message,
                               address)
        return Refusal(message, wait)


def utc_now() -> datetime:
    return datetime.now(UTC)
