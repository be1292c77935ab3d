"""The broadcast: the one thing every stage talks to (stream).

The hub checks stream keys, admits one publisher per stream, runs the reconnect
window and fans the active input out to its sinks; live ingest facts are measured
here. What the hub knows of a stream is a frozen `StreamPolicy` from a
`StreamDirectory` (the store implements it), so no database record travels past it.
"""

from golive.stream.broadcast import (
    Broadcast,
    BroadcastObserver,
    BroadcastState,
    BroadcastStateError,
    MediaSink,
    PublisherConnection,
    SlateFeed,
    SlateSource,
)
from golive.stream.clock import Clock, LoopClock, Timer
from golive.stream.directory import (
    BroadcastStart,
    DirectoryUnavailable,
    KeyState,
    LatencyMode,
    PlaybackId,
    RecoveredBroadcast,
    StreamDirectory,
    StreamPolicy,
)
from golive.stream.facts import IngestFacts, IngestMeter
from golive.stream.guard import GuardedPublishTarget
from golive.stream.hub import BroadcastHub
from golive.stream.publish import (
    Disconnect,
    Publisher,
    PublishRefused,
    PublishTarget,
    RefusalReason,
)
from golive.stream.splice import Splice
from golive.stream.standby import StandbyBuffer

__all__ = [
    "Broadcast",
    "BroadcastHub",
    "BroadcastObserver",
    "BroadcastStart",
    "BroadcastState",
    "BroadcastStateError",
    "Clock",
    "DirectoryUnavailable",
    "Disconnect",
    "GuardedPublishTarget",
    "IngestFacts",
    "IngestMeter",
    "KeyState",
    "LatencyMode",
    "LoopClock",
    "MediaSink",
    "PlaybackId",
    "PublishRefused",
    "PublishTarget",
    "Publisher",
    "PublisherConnection",
    "RecoveredBroadcast",
    "RefusalReason",
    "SlateFeed",
    "SlateSource",
    "Splice",
    "StandbyBuffer",
    "StreamDirectory",
    "StreamPolicy",
    "Timer",
]
