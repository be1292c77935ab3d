"""What a broadcast's source is, from its first tags: size, frame rate, codecs (stage: media).

The ladder is planned from the source, so the first tags are held (bounded) until
the codec configuration is known and about a second of video has shown the real
frame rate. Then the held tags become the transcoder's first input.

A publisher that returns to a broadcast rejoins the ladder already planned, which
does not depend on its frame rate: its probe (`rejoin=True`) answers at its first
keyframe, as soon as its codec configuration (and audio, when the ladder has
audio) is known, so that viewers wait for no more than the encoder's start.
"""

from __future__ import annotations

from collections import deque

from golive.formats import CodecError, MediaTag, TagType, parse_video_tag
from golive.media.feed import TagKind, classify
from golive.media.ladder import SourceInfo
from golive.stream import IngestMeter

__all__ = ["SourceProbe"]

PROBE_SECONDS = 1.0  # video span that settles the frame rate
PROBE_FRAMES = 30  # or this many frames, whichever comes first
PROBE_MAX_TAGS = 600  # held at most; a source still unknown then is planned as it is
AUDIO_ONLY_TAGS = 50  # tags without any video before the source counts as audio only
SOUND_WAIT_SECONDS = 3.0  # video span a source that announced audio is waited on for its sound
# Legacy FLV video codecs without a configuration record: their first keyframe is all the
# configuration they send (Sorenson H.263, Screen video, On2 VP6).
_NO_CONFIG_CODECS = frozenset({"h263", "screen", "vp6", "vp6a", "screen2"})
_FALLBACK_RATE = 30.0
_RATE_TOLERANCE = 2.0  # fps a declared rate may differ from the measured one


class SourceProbe:
    """Holds a broadcast's first tags (or a returning publisher's) until its source is known."""

    def __init__(self, *, rejoin: bool = False, expect_audio: bool = False) -> None:
        self.tags: deque[MediaTag] = deque(maxlen=PROBE_MAX_TAGS)
        self.first_video_ts: int | None = None
        self.last_video_ts: int | None = None
        self.video_frames = 0
        self.rejoin = rejoin
        self.expect_audio = expect_audio
        # What this publisher sent itself: the meter remembers its predecessor's too.
        self.video_config = False
        self.keyframes = 0
        self.audio_tags = 0
        self.audio_frames = 0  # audio tags that carry sound (not its configuration)

    def push(self, tag: MediaTag, meter: IngestMeter) -> SourceInfo | None:
        """Hold one tag (already seen by `meter`); the source once it is known, else None."""
        self.tags.append(tag)
        if tag.type is TagType.AUDIO:
            self.audio_tags += 1
            self.audio_frames += classify(tag) is TagKind.AUDIO
        elif tag.type is TagType.VIDEO:
            try:
                info = parse_video_tag(tag.body)
            except CodecError:
                return None
            if info.is_sequence_header:
                self.video_config = True
            elif info.is_frame:
                self.video_frames += 1
                self.keyframes += info.is_keyframe
                if info.is_keyframe and info.codec in _NO_CONFIG_CODECS:
                    self.video_config = True
                if self.first_video_ts is None:
                    self.first_video_ts = tag.timestamp
                self.last_video_ts = tag.timestamp
        return self.source(meter)

    def source(self, meter: IngestMeter) -> SourceInfo | None:
        """The source if the tags held so far settle it, else None."""
        facts = meter.snapshot(0.0)
        span = 0.0
        if self.first_video_ts is not None and self.last_video_ts is not None:
            span = (self.last_video_ts - self.first_video_ts) / 1000
        have_video = self.video_config and bool(facts.width)
        settled = span >= PROBE_SECONDS or self.video_frames >= PROBE_FRAMES
        if self.rejoin and have_video and self.keyframes:
            settled = settled or self.audio_tags > 0 or not self.expect_audio
        # An announced sound (its configuration) may come some frames after the picture:
        # a file muxed video-first. It is waited for, a little.
        awaiting_sound = (not self.rejoin and self.audio_frames == 0 < self.audio_tags
                          and span < SOUND_WAIT_SECONDS)
        audio_only = self.first_video_ts is None and len(self.tags) >= AUDIO_ONLY_TAGS
        if (not (have_video and settled and not awaiting_sound)
                and not (audio_only or len(self.tags) >= PROBE_MAX_TAGS)):
            return None
        frame_rate = facts.declared_frame_rate or 0.0
        if span > 0 and self.video_frames > 1:
            measured = (self.video_frames - 1) / span
            if not frame_rate or abs(measured - frame_rate) > _RATE_TOLERANCE:
                frame_rate = measured
        return SourceInfo(
            width=facts.width or 0,
            height=facts.height or 0,
            frame_rate=round(frame_rate or _FALLBACK_RATE, 3),
            video_codec=facts.video_codec or "unknown",
            # Sound, not an announcement of it: an encoder may send the AAC configuration
            # and never a frame, and a ladder with audio would wait for one for ever
            # (ffmpeg starts no output before every encoder has had its first input). A
            # returning publisher is settled at its first keyframe, before its sound may
            # have come: its configuration says it (see `rejoin_plan`). Sound that begins
            # after the ladder started without it restarts the presentation (pipeline).
            has_audio=self.audio_frames > 0 or (self.rejoin and self.audio_tags > 0),
            interlaced=bool(facts.interlaced),
            video_profile=facts.video_profile,
        )
