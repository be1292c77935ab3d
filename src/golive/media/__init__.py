"""The media stage: one supervised ffmpeg per broadcast turns the ingest stream into a CMAF ladder.

`profiles` loads the stream profiles, `ladder` fits one to a source, `command`
builds the ffmpeg command line, `capabilities` finds the usable encoders,
`progress` reads ffmpeg's progress reports. `transcoder` supervises ffmpeg:
`feed` is its bounded input, `process` one ffmpeg run, `health` the slow-encode
and NVENC fallback decisions. `pipeline` wires broadcasts to transcoders and
presentations (`source` identifies each publisher's stream, `rejoin` keeps the
ladder when a publisher returns), and hands the WebRTC-safe output to the sinks
the app registers.
`destinations` forwards a broadcast to an outside RTMP(S)/SRT target (`Forwarder`),
`simulcast` attaches one to each enabled destination of a live broadcast.
`thumbnails` decodes one segment to a JPEG with ffmpeg (bounded, cached).
"""

from golive.media.capabilities import detect_capabilities
from golive.media.destinations import (
    DestinationNotAdmitted,
    DestinationRefused,
    DestinationState,
    admit_destination,
    check_destination_url,
    mask_secret,
    push_sample,
    redact_url,
)
from golive.media.facts import PipelineFacts
from golive.media.ladder import LadderError, SourceInfo, plan_ladder
from golive.media.levels import LevelFacts
from golive.media.pipeline import LivePipeline
from golive.media.profiles import (
    AlertSpec,
    DestinationPolicy,
    ProfileError,
    SloSpec,
    StreamProfile,
    builtin_profile_names,
    describe_errors,
    load_profile,
    parse_profile,
)
from golive.media.simulcast import DestinationRelay, DestinationTarget, DestinationView
from golive.media.slate import SlateCache
from golive.media.thumbnails import MAX_WIDTH as MAX_THUMBNAIL_WIDTH
from golive.media.thumbnails import MIN_WIDTH as MIN_THUMBNAIL_WIDTH
from golive.media.thumbnails import SegmentMedia, ThumbnailBusy, Thumbnailer, ThumbnailError

__all__ = [
    "MAX_THUMBNAIL_WIDTH",
    "MIN_THUMBNAIL_WIDTH",
    "AlertSpec",
    "DestinationNotAdmitted",
    "DestinationPolicy",
    "DestinationRefused",
    "DestinationRelay",
    "DestinationState",
    "DestinationTarget",
    "DestinationView",
    "LadderError",
    "LevelFacts",
    "LivePipeline",
    "PipelineFacts",
    "ProfileError",
    "SegmentMedia",
    "SlateCache",
    "SloSpec",
    "SourceInfo",
    "StreamProfile",
    "ThumbnailBusy",
    "ThumbnailError",
    "Thumbnailer",
    "admit_destination",
    "builtin_profile_names",
    "check_destination_url",
    "describe_errors",
    "detect_capabilities",
    "load_profile",
    "mask_secret",
    "parse_profile",
    "plan_ladder",
    "push_sample",
    "redact_url",
]
