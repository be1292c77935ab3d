"""Live facts about what a publisher is sending: codecs, size, rates, GOP (ingest).

`IngestMeter.observe` sees every tag of a broadcast as it arrives, so it stays
cheap: it reads the one- to five-byte tag headers, keeps counters and short
sliding windows, and parses codec configuration (SPS, AudioSpecificConfig,
onMetaData) only when a sequence header or script tag comes by. It never raises
on a publisher's bytes: malformed tags are counted and otherwise ignored.

`snapshot` turns the windows into `IngestFacts`: bitrates over the last few
seconds of arrival time, the frame rate and keyframe interval from the media
timestamps, and what the stream declares about itself. The meter also keeps the
latest metadata and sequence header tags as received, so a consumer attaching
mid-broadcast can be primed with them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from golive.formats import (
    CAPTION_CHANNELS,
    AudioInfo,
    CodecError,
    MediaTag,
    TagType,
    VideoInfo,
    caption_channels,
    carries_captions,
    describe_audio,
    describe_video,
    parse_audio_tag,
    parse_metadata,
    parse_video_tag,
)

WINDOW_S = 5.0  # bitrate and frame-rate window
_WINDOW_MS = int(WINDOW_S * 1000)
_MAX_SAMPLES = 4096  # per window: 5 s of 240 fps video or of tiny audio packets fits
_KEYFRAMES_KEPT = 6  # the keyframe interval is the mean gap between these
# A media-time jump larger than this (or backwards by more than _MAX_BACKSTEP_MS)
# is a discontinuity: the frame-rate and keyframe windows start over.
_MAX_GAP_MS = 10_000
_MAX_BACKSTEP_MS = 1_000
_TS_MOD = 1 << 32
_SKEWS_KEPT = 64  # audio frames whose skew against the latest video frame is kept


@dataclass(frozen=True, slots=True)
class IngestFacts:
    """A point-in-time view of a broadcast's incoming media."""

    video_codec: str | None
    video_profile: str | None
    width: int | None
    height: int | None
    frame_rate: float | None  # measured from video tag timestamps over the last ~5 s
    declared_frame_rate: float | None  # SPS VUI timing, else onMetaData framerate
    video_bitrate_kbps: float | None  # measured over ~5 s of arrival time
    audio_bitrate_kbps: float | None
    total_bitrate_kbps: float | None
    keyframe_interval_s: float | None  # mean media-time gap between the last keyframes
    audio_codec: str | None
    audio_sample_rate: int | None
    audio_channels: int | None
    bytes_received: int
    video_frames: int
    audio_frames: int
    keyframes: int
    malformed_tags: int
    encoder: str | None  # onMetaData "encoder"
    last_media_at: float | None  # arrival time of the last tag
    av_drift_s: float | None = None
    """How far the audio timeline sits from the video's (positive: audio later), in
    seconds; None until both tracks have sent frames. See `IngestMeter.av_drift`."""
    interlaced: bool | None = None
    """The video codes fields (1080i): the ladder deinterlaces it. None: not known."""
    captions: bool = False
    """The pictures carry CEA-608/708 closed captions: the playlists offer them."""
    caption_channels: tuple[str, ...] = ()
    """The CEA-608 channels a control code of the captions named ("CC1" to "CC4")."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with rates rounded for display."""
        return {
            "video_codec": self.video_codec,
            "video_profile": self.video_profile,
            "width": self.width,
            "height": self.height,
            "frame_rate": _round(self.frame_rate, 2),
            "declared_frame_rate": _round(self.declared_frame_rate, 3),
            "video_bitrate_kbps": _round(self.video_bitrate_kbps, 1),
            "audio_bitrate_kbps": _round(self.audio_bitrate_kbps, 1),
            "total_bitrate_kbps": _round(self.total_bitrate_kbps, 1),
            "keyframe_interval_s": _round(self.keyframe_interval_s, 2),
            "audio_codec": self.audio_codec,
            "audio_sample_rate": self.audio_sample_rate,
            "audio_channels": self.audio_channels,
            "bytes_received": self.bytes_received,
            "video_frames": self.video_frames,
            "audio_frames": self.audio_frames,
            "keyframes": self.keyframes,
            "malformed_tags": self.malformed_tags,
            "encoder": self.encoder,
            "last_media_at": _round(self.last_media_at, 3),
            "av_drift_s": _round(self.av_drift_s, 3),
            "interlaced": self.interlaced,
            "captions": self.captions,
            "caption_channels": list(self.caption_channels),
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# Legacy FLV CodecIDs whose coded frames the fast path can count without a full parse.
_LEGACY_FAST_VIDEO = {7: "h264", 12: "hevc"}


class _RateWindow:
    """Bytes per arrival time over the last `WINDOW_S` seconds, with a running sum."""

    __slots__ = ("_samples", "_total")

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()
        self._total = 0

    def add(self, now: float, size: int) -> None:
        samples = self._samples
        self._total += size
        # Tags that arrive together (one socket read) share one sample: same answer,
        # a fraction of the per-tag cost at high tag rates.
        if samples and samples[-1][0] == now:
            samples[-1] = (now, samples[-1][1] + size)
            return
        samples.append((now, size))
        horizon = now - WINDOW_S
        while samples and (samples[0][0] <= horizon or len(samples) > _MAX_SAMPLES):
            self._total -= samples.popleft()[1]

    def kbps(self, now: float, started: float) -> float | None:
        """The rate over the window ending at `now`; None before a measurable span."""
        samples = self._samples
        horizon = now - WINDOW_S
        total = self._total
        for at, size in samples:  # only entries that aged out since the last `add`
            if at > horizon:
                break
            total -= size
        span = now - max(horizon, started)
        if len(samples) == _MAX_SAMPLES:
            span = min(span, now - samples[0][0])
        if span <= 0:
            return None
        return total * 8 / 1000 / span


class _MediaClock:
    """Unwraps 32-bit millisecond timestamps into one monotonic-ish timeline."""

    __slots__ = ("_last_raw", "value")

    def __init__(self) -> None:
        self._last_raw: int | None = None
        self.value = 0

    def advance(self, raw: int) -> bool:
        """Move to `raw`; return False when it is a discontinuity (windows should restart)."""
        last = self._last_raw
        self._last_raw = raw
        if last is None:
            self.value = 0
            return True
        delta = (raw - last) % _TS_MOD
        if delta >= _TS_MOD // 2:
            delta -= _TS_MOD
        if delta > _MAX_GAP_MS or delta < -_MAX_BACKSTEP_MS:
            return False
        self.value += delta
        return True


class IngestMeter:
    """Accumulates what one broadcast's incoming tags say about the stream."""

    def __init__(self) -> None:
        self.metadata: MediaTag | None = None
        self.video_sequence_header: MediaTag | None = None
        self.audio_sequence_header: MediaTag | None = None
        self.bytes_received = 0
        self.video_frames = 0
        self.audio_frames = 0
        self.keyframes = 0
        self.malformed_tags = 0
        self.captions = False
        """The publisher's pictures carry CEA-608/708 captions (A/53 cc_data SEI)."""
        self.caption_channels: frozenset[str] = frozenset()
        """The CEA-608 channels their control codes named so far ("CC1" to "CC4")."""
        self._first_at: float | None = None
        self._last_at: float | None = None
        self._latest_at: float | None = None  # the latest `now` seen (arrival may interleave)
        self._video_codec: str | None = None
        self._video_info: VideoInfo | None = None
        self._audio_codec: str | None = None
        self._audio_info: AudioInfo | None = None
        self._meta: dict[str, Any] = {}
        self._video_rate = _RateWindow()
        self._audio_rate = _RateWindow()
        self._total_rate = _RateWindow()
        self._clock = _MediaClock()
        self._frame_times: deque[int] = deque()
        self._keyframe_times: deque[int] = deque(maxlen=_KEYFRAMES_KEPT)
        self._sync = _AvSync()

    def av_sync(self) -> tuple[float, float] | None:
        """The audio timeline against the video's: (start offset, running skew) in seconds,
        positive when audio is late; None until both tracks have sent frames. `av_drift_s`
        in the facts is the larger of the two."""
        return self._sync.offset_and_skew()

    def new_publisher(self) -> None:
        """Forget what the last publisher said about itself: a returning one may send
        another size, codec or no audio at all. Counters stay the broadcast's."""
        self.metadata = self.video_sequence_header = self.audio_sequence_header = None
        self._video_codec = self._audio_codec = None
        self._video_info = None
        self._audio_info = None
        self._meta = {}
        self.captions = False
        self.caption_channels = frozenset()
        self._clock = _MediaClock()  # its timestamps start over
        self._frame_times.clear()
        self._keyframe_times.clear()
        self._sync = _AvSync()

    # Per tag ----------------------------------------------------------------------------

    def observe(self, tag: MediaTag, now: float) -> None:
        """Account for one incoming tag that arrived at `now` (seconds, any epoch)."""
        size = len(tag.body)
        self.bytes_received += size
        if self._first_at is None:
            self._first_at = now
        self._last_at = now
        if self._latest_at is None or now > self._latest_at:
            self._latest_at = now
        self._total_rate.add(now, size)
        try:
            if tag.type == TagType.VIDEO:
                self._video_rate.add(now, size)
                self._observe_video(tag)
            elif tag.type == TagType.AUDIO:
                self._audio_rate.add(now, size)
                self._observe_audio(tag)
            elif tag.type == TagType.SCRIPT:
                self._observe_script(tag)
        except CodecError:
            self.malformed_tags += 1

    def _observe_video(self, tag: MediaTag) -> None:
        body = tag.body
        # Fast path for the common case: a legacy AVC/HEVC coded frame of the known codec.
        if len(body) > 1 and body[1] == 1 and not body[0] & 0x80:
            codec = _LEGACY_FAST_VIDEO.get(body[0] & 0x0F)
            if codec is not None and codec == self._video_codec:
                self._sync.video(tag.timestamp)
                self._count_frame(tag.timestamp, body[0] >> 4 == 1)
                if len(self.caption_channels) < len(CAPTION_CHANNELS):
                    self._look_for_captions(memoryview(body)[5:], codec == "hevc")
                return
        info = parse_video_tag(body)
        if info.is_multitrack:
            return  # tracks are not split here; the first track's facts would mislead
        if info.is_sequence_header:
            self.video_sequence_header = tag
            self._video_codec = info.codec
            self._video_info = None
            self._video_info = describe_video(info)
            return
        if info.codec != "unknown" and info.codec != self._video_codec and info.is_frame:
            self._video_codec = info.codec  # e.g. legacy codecs with no sequence header
            self._video_info = None
        if not info.is_frame:
            return
        self._sync.video(tag.timestamp)
        self._count_frame(tag.timestamp, info.is_keyframe)
        if info.codec in ("h264", "hevc") and len(self.caption_channels) < len(CAPTION_CHANNELS):
            self._look_for_captions(info.payload, info.codec == "hevc")
        if info.is_keyframe and info.codec == "vp9" and self._video_info is None:
            self._video_info = describe_video(info)

    def _look_for_captions(self, nal_units: bytes | memoryview, hevc: bool) -> None:
        """Whether the frame carries captions, and once it does (until every channel was
        seen), which CEA-608 channels its caption data names."""
        if not self.captions:
            self.captions = carries_captions(nal_units, hevc=hevc)
            if not self.captions:
                return
        found = caption_channels(nal_units, hevc=hevc)
        if not found <= self.caption_channels:
            self.caption_channels |= found

    def _count_frame(self, timestamp: int, keyframe: bool) -> None:
        self.video_frames += 1
        clock = self._clock
        if not clock.advance(timestamp):
            self._frame_times.clear()
            self._keyframe_times.clear()
        media_ms = clock.value
        frames = self._frame_times
        frames.append(media_ms)
        while frames and (media_ms - frames[0] > _WINDOW_MS or len(frames) > _MAX_SAMPLES):
            frames.popleft()
        if keyframe:
            self.keyframes += 1
            self._keyframe_times.append(media_ms)

    def _observe_audio(self, tag: MediaTag) -> None:
        body = tag.body
        # Fast path: a raw AAC frame once the AAC configuration is known.
        if (len(body) > 1 and body[0] >> 4 == 10 and body[1] == 1
                and self._audio_codec == "aac" and self._audio_info is not None):
            self.audio_frames += 1
            self._sync.audio(tag.timestamp)
            return
        info = parse_audio_tag(body)
        if info.is_multitrack:
            return
        if info.is_sequence_header:
            self.audio_sequence_header = tag
            self._audio_codec = info.codec
            self._audio_info = None
            self._audio_info = describe_audio(info)
            return
        if info.is_frame:
            self.audio_frames += 1
            self._sync.audio(tag.timestamp)
            if info.codec != self._audio_codec:
                self._audio_codec = info.codec
                self._audio_info = None
            if self._audio_info is None:
                self._audio_info = describe_audio(info)

    def _observe_script(self, tag: MediaTag) -> None:
        props = parse_metadata(tag.body)
        if props is None:
            return
        self.metadata = tag
        self._meta = props

    # Reading ----------------------------------------------------------------------------

    def snapshot(self, now: float) -> IngestFacts:
        """The facts as of `now` (a `now` before the latest tag counts as that tag's time)."""
        if self._latest_at is not None:
            now = max(now, self._latest_at)
        started = self._first_at if self._first_at is not None else now
        video = self._video_info
        audio = self._audio_info
        meta = self._meta

        width = video.width if video else None
        height = video.height if video else None
        if width is None or height is None:
            width, height = _meta_int(meta, "width"), _meta_int(meta, "height")
        declared = video.frame_rate if video else None
        if not declared:
            declared = _meta_float(meta, "framerate") or _meta_float(meta, "videoframerate")

        sample_rate = audio.sample_rate if audio else None
        channels = audio.channels if audio else None
        if audio is None:
            sample_rate = _meta_int(meta, "audiosamplerate")
            stereo = meta.get("stereo")
            channels = (2 if stereo else 1) if isinstance(stereo, bool) else None
        encoder = meta.get("encoder")

        has_video = self._video_codec is not None or self.video_frames > 0
        has_audio = self._audio_codec is not None or self.audio_frames > 0
        return IngestFacts(
            video_codec=self._video_codec,
            video_profile=video.profile if video else None,
            interlaced=video.interlaced if video else None,
            captions=self.captions,
            caption_channels=tuple(sorted(self.caption_channels)),
            width=width,
            height=height,
            frame_rate=self._measured_frame_rate(),
            declared_frame_rate=declared,
            video_bitrate_kbps=self._video_rate.kbps(now, started) if has_video else None,
            audio_bitrate_kbps=self._audio_rate.kbps(now, started) if has_audio else None,
            total_bitrate_kbps=self._total_rate.kbps(now, started)
            if self._last_at is not None else None,
            keyframe_interval_s=self._keyframe_interval(),
            audio_codec=self._audio_codec,
            audio_sample_rate=sample_rate,
            audio_channels=channels,
            bytes_received=self.bytes_received,
            video_frames=self.video_frames,
            audio_frames=self.audio_frames,
            keyframes=self.keyframes,
            malformed_tags=self.malformed_tags,
            encoder=encoder if isinstance(encoder, str) else None,
            last_media_at=self._last_at,
            av_drift_s=self._sync.drift(),
        )

    def _measured_frame_rate(self) -> float | None:
        frames = self._frame_times
        if len(frames) < 2:
            return None
        span = frames[-1] - frames[0]
        if span <= 0:
            return None
        return (len(frames) - 1) * 1000 / span

    def _keyframe_interval(self) -> float | None:
        keys = self._keyframe_times
        if len(keys) < 2:
            return None
        span = keys[-1] - keys[0]
        if span <= 0:
            return None
        return span / (len(keys) - 1) / 1000


class _AvSync:
    """Where the audio timeline sits against the video's, from one publisher's timestamps.

    Two views, the larger one wins. The start offset (first audio frame's timestamp
    minus the first video frame's, when the audio came second): encoders capture both
    at once, so audio that starts 1.5 s into the video timeline carries sound 1.5 s late
    (an audio sync offset, a capture delay, `-itsoffset`); a muxer that interleaves by
    timestamp hides this from every later tag. Audio that comes first is not counted:
    publishers routinely send audio while video waits for its first keyframe. The running
    skew (median of each audio frame's timestamp minus the latest video frame's): tracks
    that drift apart as they go (two clocks, a frame-rate mismatch) or a publisher that
    does not interleave. A heuristic: audio that really starts late with honest
    timestamps reads as an offset too.
    """

    __slots__ = ("_first_audio", "_first_video", "_last_video", "_skews")

    def __init__(self) -> None:
        self._first_audio: int | None = None
        self._first_video: int | None = None
        self._last_video: int | None = None
        self._skews: deque[int] = deque(maxlen=_SKEWS_KEPT)

    def video(self, timestamp: int) -> None:
        if self._first_video is None:
            self._first_video = timestamp
        self._last_video = timestamp

    def audio(self, timestamp: int) -> None:
        if self._first_audio is None:
            # Before any video: no start offset is read from this publisher.
            self._first_audio = timestamp if self._first_video is not None else -1
        if self._last_video is not None:
            self._skews.append(_ts_delta(timestamp, self._last_video))

    def drift(self) -> float | None:
        both = self.offset_and_skew()
        if both is None:
            return None
        start, running = both
        return start if abs(start) > abs(running) else running

    def offset_and_skew(self) -> tuple[float, float] | None:
        """(start offset, running skew) in seconds; None until both tracks have frames."""
        if self._first_audio is None or self._first_video is None or not self._skews:
            return None
        start = 0 if self._first_audio < 0 else _ts_delta(self._first_audio, self._first_video)
        running = sorted(self._skews)[len(self._skews) // 2]
        return start / 1000, running / 1000


def _ts_delta(a: int, b: int) -> int:
    """`a - b` for 32-bit millisecond timestamps that may have wrapped."""
    delta = (a - b) % _TS_MOD
    return delta - _TS_MOD if delta >= _TS_MOD // 2 else delta


def _meta_float(meta: dict[str, Any], key: str) -> float | None:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    if value != value or value <= 0 or value == float("inf"):
        return None
    return value


def _meta_int(meta: dict[str, Any], key: str) -> int | None:
    value = _meta_float(meta, key)
    if value is None or value >= 1 << 31:
        return None
    return int(value)
