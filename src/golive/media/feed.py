"""The transcoder's input: ingest tags as FLV bytes for ffmpeg's stdin, bounded (stage: media).

`FlvInput` never blocks ingest. Each ffmpeg run reads one timeline (`InputFeed`),
which starts at a keyframe with the FLV header, metadata and codec configuration in
front of it. When ffmpeg cannot take the bytes fast enough, whole GOPs are dropped
(everything until the next keyframe that fits), so the encoder never sees a
half-GOP. Sans-IO apart from the event that wakes the stdin writer.

Each timeline also keeps its ingest clock (`InputFeed.origin`): when the input for its
media time 0 reached golive, as the earliest of (arrival - media time) over its video
tags. ffmpeg starts its output's decode times at the timeline's first keyframe, so
`origin + decode_time` dates any output of that run by when its input arrived, the same
for every rendition and whatever the encoder's speed (EXT-X-PROGRAM-DATE-TIME).

A transcoder's timeline with sound and picture starts where both have begun
(`align_start`): held from its first keyframe until its first sound, and begun again at
the next keyframe when that sound comes more than `START_SLACK_MS` later. A track that
starts late gets an fMP4 edit list, which MSE players ignore: they would play all of its
sound early by that much, and the first part would hold the picture until the sound came.

A transcoder's input fills the silences of its sound (`fill_silence`): when the picture
has gone on `fill_after_ms` beyond the last sound frame, silent frames of the sound's own
codec (AAC, HE-AAC, MPEG audio, Opus: `flv_silence`) follow it up to the picture's time,
until the sound comes back. ffmpeg would otherwise write the picture alone (each part a
second late, waiting to interleave), and MSE players freeze where the buffered sound ends.
A timeline let go without its sound (`START_HOLD_MS`) is filled from its start. Sound that
comes back under the silence already given is dropped up to its end; sound that was only
late (it resumes where it stopped) doubles the wait, up to `FILL_AFTER_MAX_MS`, for
sources that send their sound in bursts.

An audio-only input (`has_video=False`) has no keyframes: every AAC frame stands alone,
so its audio frames take the keyframes' part (a timeline starts at any of them, a
drop ends at any of them) and date and measure the timeline instead.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from dataclasses import dataclass

from golive.formats import (
    MediaTag,
    Silence,
    TagType,
    encode_header,
    encode_tag,
    flv_silence,
)

__all__ = ["FlvInput", "InputFeed", "PushResult", "TagKind", "classify", "ts_before"]

WRITE_CHUNK = 256 * 1024  # bytes per stdin write
MAX_BACKWARDS_MS = 1000  # video timestamps going back further start a new timeline
RECENT_SECONDS = 1.0  # media seconds over which `InputFeed.date_lag` takes its least
START_SLACK_MS = 40  # the sound may begin this much after the picture (under what is heard)
START_HOLD_MS = 3000  # a timeline waits this long (media) for its sound, then goes without
FILL_AFTER_MS = 1000  # picture beyond the last sound after which silence fills the gap
FILL_AFTER_MAX_MS = 8000  # the wait doubles up to this for sound that was only late
FILL_SPAN_MAX_MS = 12_000  # a fill further behind the picture: its clock jumped, not a gap
_TS_MASK = 0xFFFFFFFF


class TagKind(enum.Enum):
    """What a tag is to the transcoder."""

    METADATA = enum.auto()
    VIDEO_CONFIG = enum.auto()
    AUDIO_CONFIG = enum.auto()
    KEYFRAME = enum.auto()
    VIDEO = enum.auto()
    AUDIO = enum.auto()
    OTHER = enum.auto()


def classify(tag: MediaTag) -> TagKind:
    """What a tag is to the transcoder, from the first bytes of its FLV body."""
    body = tag.body
    if not body:
        return TagKind.OTHER
    first = body[0]
    if tag.type is TagType.VIDEO:
        if first & 0x80:  # enhanced RTMP: frame type in bits 4-6, packet type in 0-3
            frame_type, packet_type = (first >> 4) & 0x07, first & 0x0F
            if packet_type == 0:
                return TagKind.VIDEO_CONFIG
            if packet_type in (1, 3):
                return TagKind.KEYFRAME if frame_type == 1 else TagKind.VIDEO
            return TagKind.OTHER
        frame_type, codec = first >> 4, first & 0x0F
        if frame_type == 5:  # video info / command frame
            return TagKind.OTHER
        if codec in (7, 12):  # AVC, HEVC: a packet-type byte follows
            if len(body) < 2 or body[1] == 2:  # end of sequence
                return TagKind.OTHER
            if body[1] == 0:
                return TagKind.VIDEO_CONFIG
        return TagKind.KEYFRAME if frame_type == 1 else TagKind.VIDEO
    if tag.type is TagType.AUDIO:
        sound_format = first >> 4
        if sound_format == 10:  # AAC: a packet-type byte follows
            if len(body) < 2:
                return TagKind.OTHER
            return TagKind.AUDIO_CONFIG if body[1] == 0 else TagKind.AUDIO
        if sound_format == 9:  # enhanced audio
            packet_type = first & 0x0F
            if packet_type == 0:
                return TagKind.AUDIO_CONFIG
            return TagKind.AUDIO if packet_type == 1 else TagKind.OTHER
        return TagKind.AUDIO
    if tag.type is TagType.SCRIPT and b"onMetaData" in body[:32]:
        return TagKind.METADATA
    return TagKind.OTHER


def ts_before(ts: int, reference: int) -> bool:
    """`ts` is earlier than `reference` on the 32-bit millisecond clock."""
    return ((reference - ts) & 0xFFFFFFFF) < 0x80000000 and ts != reference


class InputFeed:
    """FLV bytes for one ffmpeg timeline: starts at a keyframe, bounded, drops whole GOPs."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.started = False
        self.audio_started = False
        self.first_ts = 0
        self.last_video_ts = 0
        self.dropping = False
        self.closed = False
        self.origin: float | None = None
        """Unix seconds at which the input for this timeline's media time 0 arrived: the
        earliest `arrived_at - media time` over its video tags (None before any was dated)."""
        self._recent: deque[tuple[float, float]] = deque()  # (media time, arrival - media)
        self._wakeup = asyncio.Event()
        self.held: list[bytes] | None = None
        """The timeline's start, held from ffmpeg until its sound begins (`FlvInput`)."""
        self.sound_end: int | None = None  # where the last sound frame ends (ms)
        self.fill_from: int | None = None  # where the silence being filled began (ms)
        self.filled = 0  # silent frames given since `fill_from`
        self.fill_checked = False  # sound under the silence was looked at (`FlvInput`)
        self.fill_now = False  # fill without waiting (`FlvInput.sound_gone`)

    @property
    def media_seconds(self) -> float:
        """Video media time accepted so far on this timeline."""
        return ((self.last_video_ts - self.first_ts) & 0xFFFFFFFF) / 1000 if self.started else 0.0

    def dated(self, timestamp: int, arrived_at: float) -> None:
        """Video tag `timestamp` (ms, the timeline's clock) arrived at `arrived_at` (Unix s)."""
        media = ((timestamp - self.first_ts) & 0xFFFFFFFF) / 1000
        candidate = arrived_at - media
        if self.origin is None or candidate < self.origin:
            self.origin = candidate
        recent = self._recent
        recent.append((media, candidate))
        while recent[0][0] < media - RECENT_SECONDS:
            recent.popleft()

    @property
    def date_lag(self) -> float | None:
        """How much later than `origin` says the newest input arrived: the least over its
        last second of media (arrival jitter only ever adds). Near zero while the input
        keeps its own pace; the silence of an input spliced on later than its media time
        continues would show here. None before any tag was dated."""
        if self.origin is None or not self._recent:
            return None
        return min(lag for _, lag in self._recent) - self.origin

    def append(self, data: bytes) -> None:
        if self.closed:  # its ffmpeg is gone; the next timeline starts at a keyframe
            return
        self.size += len(data)
        if self.held is not None:
            self.held.append(data)
            return
        self.chunks.append(data)
        self._wakeup.set()

    def release(self) -> None:
        """What was held goes to ffmpeg, and everything after it."""
        held, self.held = self.held, None
        if held:
            self.chunks.extend(held)
            self._wakeup.set()

    def start_again(self) -> None:
        """Forget the held start (ffmpeg has read none of it): the next keyframe starts
        the timeline."""
        if self.held is not None:
            self.size -= sum(len(data) for data in self.held)
        self.held = None
        self.started = self.audio_started = self.dropping = False
        self.first_ts = self.last_video_ts = 0
        self.sound_end = self.fill_from = None
        self.origin = None
        self._recent.clear()

    def close(self) -> None:
        self.closed = True
        self.chunks.clear()
        self.size = 0
        self._wakeup.set()

    async def take(self) -> bytes | None:
        """Up to `WRITE_CHUNK` bytes for stdin; None once closed."""
        while not self.chunks:
            if self.closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        if self.closed:
            return None
        parts = [self.chunks.popleft()]
        taken = len(parts[0])
        while self.chunks and taken + len(self.chunks[0]) <= WRITE_CHUNK:
            parts.append(self.chunks.popleft())
            taken += len(parts[-1])
        self.size -= taken
        return b"".join(parts)


@dataclass(frozen=True, slots=True)
class PushResult:
    """What one pushed tag meant beyond itself."""

    overflow: bool = False
    """The feed hit its limit with this tag: video is dropped until the next keyframe."""
    timestamps_went_back: bool = False
    """The publisher's clock went back without a reconnect: a new timeline has begun, and
    the ffmpeg reading the old one must end."""
    silence_began: bool = False
    """The sound stopped while the picture goes on: silence fills it from here on."""


_QUIET = PushResult()


class FlvInput:
    """The ingest side of one transcoder: tags in, one `InputFeed` per ffmpeg timeline out."""

    def __init__(self, *, limit: int, has_audio: bool, has_video: bool = True,
                 align_start: bool = False, fill_silence: bool = False) -> None:
        if not (has_audio or has_video):
            raise ValueError("an input needs audio or video")
        self.limit = limit
        self.has_audio = has_audio
        self.has_video = has_video
        self.align_start = align_start and has_audio and has_video
        self.late_sound_starts = 0  # timelines begun again because the sound began later
        self.fill_silence = fill_silence and has_audio and has_video
        self.fill_after_ms = FILL_AFTER_MS
        self.silences_filled = 0  # gaps in the sound filled with silence
        self.late_sounds = 0  # sound that came back where it stopped, under the silence
        self._silence: Silence | None = None  # a silent frame of the current sound
        self._silence_from_frames = True  # the sound's frames settle it (MPEG audio)
        self._frame_ms = 0.0  # the length of one such frame
        self.feed = InputFeed(limit)
        self.input_bytes = 0
        self.video_frames = 0
        self.dropped_bytes = 0
        self.dropped_frames = 0
        self._metadata: MediaTag | None = None
        self._video_config: MediaTag | None = None
        self._audio_config: MediaTag | None = None

    def sound_alone(self) -> None:
        """The source has turned out to have no picture (before any timeline started):
        its audio frames start and carry the timeline from now on."""
        if not self.feed.started:
            self.has_video = self.align_start = self.fill_silence = False

    def sound_gone(self) -> None:
        """The input now sends no sound (a spliced input without it): fill from the next
        picture on, without first waiting `fill_after_ms` for late sound."""
        self.feed.fill_now = True

    @property
    def fills_silence(self) -> bool:
        """Whether gaps in the current sound are filled (`fill_silence`, and a codec whose
        silence `flv_silence` writes)."""
        return self._silence is not None

    def new_timeline(self) -> InputFeed:
        """Start a fresh timeline at the next keyframe; the old feed is left to its run."""
        self.feed = InputFeed(self.limit)
        return self.feed

    def push(self, tag: MediaTag, arrived_at: float | None = None) -> PushResult:
        """Queue one tag on the current timeline, or drop it; never blocks.

        `arrived_at` (Unix seconds), when given, dates the timeline's media by the
        ingest clock (`InputFeed.origin`)."""
        self.input_bytes += len(tag.body)
        kind = classify(tag)
        if kind is TagKind.METADATA:
            self._metadata = tag
            return _QUIET
        if kind is TagKind.OTHER:
            return _QUIET
        if kind in (TagKind.AUDIO, TagKind.AUDIO_CONFIG) and not self.has_audio:
            return _QUIET
        if not self.has_video and kind is not TagKind.AUDIO and kind is not TagKind.AUDIO_CONFIG:
            return _QUIET  # video the ladder has no rendition for
        # The tags that start a timeline or end a drop, and those that carry its clock.
        if self.has_video:
            key, timed = kind is TagKind.KEYFRAME, kind in (TagKind.KEYFRAME, TagKind.VIDEO)
        else:
            key = timed = kind is TagKind.AUDIO  # every AAC frame stands alone
        feed = self.feed
        if kind is TagKind.VIDEO_CONFIG or kind is TagKind.AUDIO_CONFIG:
            if kind is TagKind.VIDEO_CONFIG:
                self._video_config = tag
            else:
                self._audio_config = tag
                if self.fill_silence:
                    self._set_silence(tag)
            if feed.started and not feed.dropping:  # a mid-stream change of settings
                feed.append(encode_tag(tag))
            return _QUIET
        result = _QUIET
        if timed:
            self.video_frames += kind is not TagKind.AUDIO
            if feed.started and ts_before(tag.timestamp, feed.last_video_ts - MAX_BACKWARDS_MS):
                # ffmpeg needs a fresh timeline, as after a reconnect.
                feed = self.new_timeline()
                result = PushResult(timestamps_went_back=True)
        if not feed.started:
            if not key:
                return result  # a timeline starts at a keyframe
            feed.started = True
            feed.first_ts = feed.last_video_ts = tag.timestamp
            if self.align_start:
                feed.held = []
            feed.append(self._preamble(tag.timestamp))
        if kind is TagKind.AUDIO and self.has_video:
            if self._silence_from_frames and self.fill_silence:
                self._set_silence(tag)
            # Audio from before the first keyframe would start the timeline early.
            if not feed.audio_started and ts_before(tag.timestamp, feed.first_ts):
                return result
            if feed.held is not None:
                if ts_before((feed.first_ts + START_SLACK_MS) & 0xFFFFFFFF, tag.timestamp):
                    self.late_sound_starts += 1
                    feed.start_again()  # at the next keyframe, when the sound has begun
                    return result
                feed.release()
            feed.audio_started = True
            if self._silence is not None and not self._sound_resumes(feed, tag.timestamp):
                return result  # under the silence already given
        elif feed.held is not None and timed and ts_before(
            (feed.first_ts + START_HOLD_MS) & 0xFFFFFFFF, tag.timestamp
        ):
            feed.release()  # no sound yet: the picture goes on without it
        if (self._silence is not None and timed and feed.held is None
                and not feed.dropping and self._fill(feed, tag.timestamp)):
            result = PushResult(timestamps_went_back=result.timestamps_went_back,
                                silence_began=True)
        data = encode_tag(tag)
        video = kind is not TagKind.AUDIO
        if feed.dropping:
            if key and feed.size + len(data) <= feed.limit // 2:
                feed.dropping = False
            else:
                self._drop(data, video=video)
                return result
        if feed.size + len(data) > feed.limit:
            feed.dropping = True
            self._drop(data, video=video)
            return PushResult(overflow=True, timestamps_went_back=result.timestamps_went_back,
                              silence_began=result.silence_began)
        if timed:
            feed.last_video_ts = tag.timestamp
            if arrived_at is not None:
                feed.dated(tag.timestamp, arrived_at)
        feed.append(data)
        return result

    def _sound_resumes(self, feed: InputFeed, timestamp: int) -> bool:
        """A sound frame at `timestamp`: whether it goes to ffmpeg (not under the silence
        already given); notes where it ends."""
        frame_ms = self._frame_ms
        if feed.fill_from is not None:
            given_to = self._filled_to(feed)
            if ts_before(timestamp, (given_to - int(frame_ms / 2)) & _TS_MASK):
                end = feed.sound_end
                if (not feed.fill_checked and end is not None
                        and ts_before(timestamp, (end + int(2 * frame_ms)) & _TS_MASK)):
                    # It goes on where it stopped: it was late, not gone.
                    self.late_sounds += 1
                    self.fill_after_ms = min(self.fill_after_ms * 2, FILL_AFTER_MAX_MS)
                feed.fill_checked = True
                return False
            feed.fill_from = None
        feed.fill_now = False
        feed.sound_end = (timestamp + round(frame_ms)) & _TS_MASK
        return True

    def _set_silence(self, tag: MediaTag) -> None:
        """Note the sound's silent frame from its configuration, or from a frame where the
        configuration did not settle it (MPEG audio, which has none): until one does, each
        frame is asked."""
        self._silence = flv_silence(tag.body)
        self._silence_from_frames = self._silence is None
        if self._silence is not None:
            self._frame_ms = self._silence.samples * 1000 / self._silence.sample_rate

    def _filled_to(self, feed: InputFeed) -> int:
        """Where the silence given so far ends: the next silent frame's time (ms)."""
        assert self._silence is not None and feed.fill_from is not None
        return (feed.fill_from + self._silence.frames_ms(feed.filled)) & _TS_MASK

    def _fill(self, feed: InputFeed, until: int) -> bool:
        """Silent frames up to the picture at `until`, once it is `fill_after_ms` beyond
        the sound (or the start of a timeline that went on without it). True when this
        began a silence."""
        assert self._silence is not None
        began = False
        if feed.fill_from is None:
            end = feed.sound_end if feed.audio_started else feed.first_ts
            if end is None:
                return False
            wait = 0 if feed.fill_now else self.fill_after_ms
            if not ts_before((end + wait) & _TS_MASK, until):
                return False
            feed.fill_now = False
            feed.fill_from, feed.filled, feed.fill_checked = end, 0, False
            self.silences_filled += 1
            began = True
        ts = self._filled_to(feed)
        if ts_before((ts + FILL_SPAN_MAX_MS) & _TS_MASK, until):
            # The picture's clock jumped ahead (no wait is this long): the sound jumps with
            # it, where hours of silence would cost the encoder as much to encode.
            feed.fill_from, feed.filled, ts = until, 0, until
        body = self._silence.body
        while ts_before(ts, until):
            data = encode_tag(MediaTag(TagType.AUDIO, ts, body))
            if feed.size + len(data) > feed.limit:
                break
            feed.append(data)
            feed.filled += 1
            ts = self._filled_to(feed)
        return began

    def _preamble(self, timestamp: int) -> bytes:
        """What a fresh ffmpeg needs before the first keyframe.

        The codec configuration is stamped at the keyframe's time; the metadata at 0,
        because ffmpeg's FLV reader turns metadata at any other time into a stream.
        """
        parts = [encode_header(audio=self.has_audio, video=self.has_video)]
        if self._metadata is not None:
            parts.append(encode_tag(MediaTag(TagType.SCRIPT, 0, self._metadata.body)))
        for tag in (self._video_config, self._audio_config):
            if tag is not None:
                parts.append(encode_tag(MediaTag(tag.type, timestamp, tag.body)))
        return b"".join(parts)

    def _drop(self, data: bytes, *, video: bool) -> None:
        self.dropped_bytes += len(data)
        if video:
            self.dropped_frames += 1
