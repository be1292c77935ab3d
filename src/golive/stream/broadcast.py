"""A broadcast: one continuous live session of a stream, and who listens to it (stream).

A `Broadcast` outlives publisher reconnects inside the stream's reconnect window.
Its state moves only along `TRANSITIONS`; the hub drives it, and pipeline stages
attach as `BroadcastObserver`s and take its media as `MediaSink`s.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from golive.formats import MediaTag
from golive.stream.directory import StreamPolicy
from golive.stream.facts import IngestMeter
from golive.stream.splice import Splice


class MediaSink(Protocol):
    """Something downstream of a broadcast that takes its media (transcoder, recorder)."""

    def push(self, tag: MediaTag) -> None: ...


class BroadcastObserver(Protocol):
    """Pipeline stages that attach to broadcasts. Called on the event loop; must not block."""

    def broadcast_started(self, broadcast: Broadcast) -> None: ...

    def publisher_resumed(self, broadcast: Broadcast) -> None: ...

    def publisher_lost(self, broadcast: Broadcast) -> None: ...

    def broadcast_ended(self, broadcast: Broadcast) -> None: ...


class PublisherConnection(Protocol):
    """The publisher currently feeding a broadcast, as others may see and drop it."""

    @property
    def protocol(self) -> str: ...

    @property
    def remote_address(self) -> str: ...

    @property
    def connected_at(self) -> datetime: ...

    @property
    def stream_key(self) -> str:
        """Kept in memory only: the SRT server's facts are filed under it."""
        ...

    @property
    def stream_key_hash(self) -> str: ...

    def kick(self, reason: str) -> None:
        """Drop the connection (key reset, stream disabled, shutdown)."""
        ...


class SlateFeed(Protocol):
    """A slate feeding a broadcast while nobody publishes; it pushes until stopped."""

    def stop(self) -> None: ...


class SlateSource(Protocol):
    """Makes slates (the media stage): `slate` starts one that hands each tag to `push`,
    or answers None when this broadcast gets none (its profile says no, no ladder yet)."""

    def slate(self, broadcast: Broadcast, push: Callable[[MediaTag], None]) -> SlateFeed | None:
        ...


class BroadcastState(enum.StrEnum):
    CONNECTED = "connected"  # a publisher is connected, no media yet
    ACTIVE = "active"  # media is flowing
    RECONNECTING = "reconnecting"  # publisher gone, inside the reconnect window
    ENDED = "ended"


TRANSITIONS: dict[BroadcastState, frozenset[BroadcastState]] = {
    BroadcastState.CONNECTED: frozenset(
        {BroadcastState.ACTIVE, BroadcastState.RECONNECTING, BroadcastState.ENDED}
    ),
    BroadcastState.ACTIVE: frozenset({BroadcastState.RECONNECTING, BroadcastState.ENDED}),
    BroadcastState.RECONNECTING: frozenset({BroadcastState.CONNECTED, BroadcastState.ENDED}),
    BroadcastState.ENDED: frozenset(),
}


class BroadcastStateError(RuntimeError):
    """A transition `TRANSITIONS` does not allow: a bug in the hub, never the publisher's doing."""


@dataclass(eq=False)
class Broadcast:
    """One continuous live session of a stream, across publisher reconnects."""

    id: str
    policy: StreamPolicy
    started_at: datetime
    state: BroadcastState = BroadcastState.CONNECTED
    meter: IngestMeter = field(default_factory=IngestMeter)
    sinks: list[MediaSink] = field(default_factory=list)
    publisher: PublisherConnection | None = None
    publisher_count: int = 0  # publishers so far, the first one included
    # Media reached the hub once: the stream went `active` (in the store, and the event).
    # Not "the first publisher": one that sent nothing usable may come before it.
    went_active: bool = False
    # A second publisher on the stream's other key, held to take over when `publisher` drops.
    standby: PublisherConnection | None = None
    # The slate is on the air (no publisher inside the reconnect window): its media is
    # not the input's, so what watches the input must not count it.
    on_slate: bool = False
    # When the hub next records that media is flowing (its clock); not per tag.
    media_seen_due: float = 0.0
    # One timeline across the inputs that take over at once (failover, slate): what
    # observers read, at `publisher_resumed`, to keep their transcoder running.
    splice: Splice = field(default_factory=Splice)
    # Seconds of silence (or a collapsed rate) before a ready standby takes over; None:
    # the hub's default. The media stage sets it from the stream's profile.
    failover_after: float | None = None

    @property
    def stream_id(self) -> str:
        return self.policy.stream_id

    def move_to(self, state: BroadcastState) -> None:
        if state not in TRANSITIONS[self.state]:
            raise BroadcastStateError(
                f"broadcast {self.id} cannot go from {self.state} to {state}"
            )
        self.state = state

    def add_sink(self, sink: MediaSink) -> None:
        self.sinks.append(sink)

    def remove_sink(self, sink: MediaSink) -> None:
        if sink in self.sinks:
            self.sinks.remove(sink)

    def replay_headers(self, sink: MediaSink) -> None:
        """Give a sink that attaches mid-broadcast the metadata and codec configuration."""
        for tag in (
            self.meter.metadata,
            self.meter.video_sequence_header,
            self.meter.audio_sequence_header,
        ):
            if tag is not None:
                sink.push(tag)
