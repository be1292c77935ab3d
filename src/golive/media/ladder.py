"""Fit a profile's ladder to one source: sizes, frame rates, GOP and part lengths (media).

`plan_ladder` never upscales: renditions above the source are skipped and the top
one is capped at the source's size. Every encoded rendition gets a whole number of
frames per GOP and per part, the same GOP duration (so keyframes land on the same
media times in every rendition), and the same part duration, which is exposed as
`LadderPlan.part_target` for the packager's PART-TARGET.

A source without video (a radio show, a podcast recorded live) gets one audio-only
rendition, `AUDIO_ONLY_RENDITION`: the profile's AAC, parts of whole AAC frames and
segments of whole parts (`LadderPlan.audio_only`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal

from golive.media.profiles import RenditionSpec, StreamProfile, X264Preset

LatencyMode = Literal["low", "standard"]

# Frame rates a player expects; a measured or declared rate within 2% snaps to one.
_STANDARD_RATES: tuple[Fraction, ...] = (
    Fraction(24000, 1001),
    Fraction(24),
    Fraction(25),
    Fraction(30000, 1001),
    Fraction(30),
    Fraction(48),
    Fraction(50),
    Fraction(60000, 1001),
    Fraction(60),
)
_SNAP_TOLERANCE = 0.02
_FALLBACK_RATE = Fraction(30)
# A capped top rendition this close to an existing rung adds nothing.
_NEAR_DUPLICATE = 0.9
# Share of the part target a part may lose to whole-frame rounding before divisors
# of the GOP stop being preferred.
_PART_FLOOR = 0.85
# fMP4 overhead on top of the codec bitrates: moof/trun per part and mdat headers.
_PEAK_OVERHEAD = 1.10
_AVERAGE_OVERHEAD = 1.05

# A rendition's frame rate is not cut below this (see `LadderPlan.frame_rate_divisor`).
_MIN_REDUCED_RATE = 12

# An AAC frame is 1024 samples, at the profile's output sample rate.
AAC_FRAME_SAMPLES = 1024
AUDIO_ONLY_RENDITION = "audio"

_H264_NAMES = {"h264", "h.264", "avc", "avc1", "avc3", "x264", "libx264"}
_BROWSER_H264_PROFILES = frozenset({"Constrained Baseline", "Baseline", "Main", "High"})


class LadderError(ValueError):
    """The source cannot be transcoded with this profile (say why)."""


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What ingest knows about the publisher's stream."""

    width: int
    height: int
    frame_rate: float
    video_codec: str
    has_audio: bool
    video_bitrate: int | None = None  # bits/s, when measured
    interlaced: bool = False  # fields (1080i): the encoded renditions are deinterlaced
    video_profile: str | None = None  # as ffprobe names it ("High", "High 4:2:2"), if known

    @property
    def is_h264(self) -> bool:
        codec = self.video_codec.strip().lower()
        return codec in _H264_NAMES or codec.startswith(("avc1.", "avc3."))

    @property
    def browsers_decode(self) -> bool:
        """H.264 that browsers decode as it is, so a passthrough rendition may copy it: 8-bit
        4:2:0 Baseline, Main or High (not High 10 or 4:2:2, as contribution encoders send)."""
        return self.is_h264 and (self.video_profile is None
                                 or self.video_profile in _BROWSER_H264_PROFILES)

    def why_not_copied(self) -> str:
        """What the source is, where a passthrough rendition cannot copy it."""
        if self.is_h264:
            return (f"H.264 {self.video_profile}, which browsers do not decode (they take "
                    "8-bit 4:2:0 Baseline, Main and High)")
        return f"{self.video_codec or 'an unknown codec'}, not H.264"


@dataclass(frozen=True, slots=True)
class PlannedRendition:
    """One output of the ffmpeg command, with everything the command and playlists need."""

    name: str
    width: int
    height: int
    frame_rate_num: int
    frame_rate_den: int
    passthrough: bool
    video_bitrate: int  # bits/s; for passthrough, the estimate
    maxrate: int  # bits/s
    bufsize: int  # bits
    x264_profile: str
    gop_frames: int  # 0 for passthrough (the publisher's keyframes)
    part_frames: int  # 0 for passthrough (cut by duration)
    audio_bitrate: int  # bits/s, 0 without audio
    bandwidth: int  # peak bits/s including audio and container overhead (BANDWIDTH)
    average_bandwidth: int  # AVERAGE-BANDWIDTH

    @property
    def frame_rate(self) -> float:
        """For FRAME-RATE: three decimals (29.97)."""
        return round(self.frame_rate_num / self.frame_rate_den, 3)

    @property
    def frame_rate_expr(self) -> str:
        """For ffmpeg: `30`, `30000/1001`."""
        if self.frame_rate_den == 1:
            return str(self.frame_rate_num)
        return f"{self.frame_rate_num}/{self.frame_rate_den}"

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def pixel_rate(self) -> float:
        return self.width * self.height * self.frame_rate_num / self.frame_rate_den


@dataclass(frozen=True, slots=True)
class LadderPlan:
    """The renditions to produce for one source, top (most expensive) first."""

    profile: StreamProfile
    source: SourceInfo
    latency_mode: LatencyMode
    renditions: tuple[PlannedRendition, ...]
    gop_duration: float  # seconds, whole frames; the encoded renditions' keyframe interval
    part_target: float  # seconds, whole frames; every part is at most this long
    has_audio: bool
    notes: tuple[str, ...] = ()
    preset_override: X264Preset | None = None
    """A faster libx264 preset than the profile's, while the encoder cannot keep up."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.renditions)

    @property
    def audio_only(self) -> bool:
        """The source has no video: one AAC rendition (`AUDIO_ONLY_RENDITION`), no picture."""
        return self.source.width <= 0 or self.source.height <= 0

    @property
    def x264_preset(self) -> X264Preset:
        return self.preset_override or self.profile.encoder.x264_preset

    def rendition(self, name: str) -> PlannedRendition:
        for r in self.renditions:
            if r.name == name:
                return r
        raise KeyError(name)

    def can_drop_rendition(self) -> bool:
        return len(self.renditions) > self.profile.fallback.min_renditions and any(
            not r.passthrough for r in self.renditions
        )

    def without_top_rendition(self) -> tuple[LadderPlan, PlannedRendition]:
        """This plan minus its most expensive encoded rendition (the slow-encode fallback)."""
        if not self.can_drop_rendition():
            raise LadderError(
                f"cannot drop a rendition: {len(self.renditions)} left, "
                f"profile minimum {self.profile.fallback.min_renditions}"
            )
        victim = max((r for r in self.renditions if not r.passthrough), key=lambda r: r.pixel_rate)
        kept = tuple(r for r in self.renditions if r is not victim)
        note = f"dropped {victim.name}: the encoder could not keep up"
        return replace(self, renditions=kept, notes=(*self.notes, note)), victim

    def frame_rate_divisor(self, name: str, largest: int = 2) -> int:
        """The largest divisor up to `largest` by which rendition `name` may cut its frame rate.

        Parts and GOPs stay whole numbers of frames at the lower rate (a part may never
        exceed PART-TARGET nor fall under 85% of it), so the divisor must divide both;
        1 when none does (29.97 fps with five-frame parts) or the rate would fall under
        12 fps, below which motion stops reading as video.
        """
        r = self.rendition(name)
        if r.passthrough:
            return 1
        for divisor in range(largest, 1, -1):
            if (
                r.part_frames % divisor == 0
                and r.gop_frames % divisor == 0
                and r.frame_rate_num / r.frame_rate_den / divisor >= _MIN_REDUCED_RATE
            ):
                return divisor
        return 1

    def degraded(
        self,
        *,
        preset: X264Preset | None = None,
        frame_rate_divisors: Mapping[str, int] | None = None,
        dropped: Collection[str] = (),
    ) -> LadderPlan:
        """This plan made cheaper to encode: a faster preset, lower frame rates, fewer renditions.

        The GOP and part durations stay, so segment and part boundaries (and PART-TARGET)
        are unchanged for every rendition that remains.
        """
        divisors = frame_rate_divisors or {}
        kept: list[PlannedRendition] = []
        for r in self.renditions:
            if r.name in dropped:
                continue
            divisor = divisors.get(r.name, 1)
            if divisor != 1:
                if divisor != self.frame_rate_divisor(r.name, divisor):
                    raise LadderError(f"{r.name} cannot divide its frame rate by {divisor}")
                rate = Fraction(r.frame_rate_num, r.frame_rate_den) / divisor
                r = replace(
                    r,
                    frame_rate_num=rate.numerator,
                    frame_rate_den=rate.denominator,
                    gop_frames=r.gop_frames // divisor,
                    part_frames=r.part_frames // divisor,
                )
            kept.append(r)
        if not kept:
            raise LadderError("cannot drop every rendition")
        return replace(self, renditions=tuple(kept), preset_override=preset)


# Planning ---------------------------------------------------------------------------


def plan_ladder(
    profile: StreamProfile, source: SourceInfo, latency_mode: LatencyMode = "low"
) -> LadderPlan:
    """Fit `profile` to `source`: no upscaling, even sizes, snapped frame rates, aligned GOPs."""
    if latency_mode not in ("low", "standard"):
        raise LadderError(f"unknown latency mode {latency_mode!r}: use 'low' or 'standard'")
    if source.width <= 0 or source.height <= 0:
        if not source.has_audio:
            raise LadderError("the source has neither usable video nor audio")
        return _plan_audio_only(profile, source, latency_mode)
    notes: list[str] = []
    source_rate = snap_frame_rate(source.frame_rate)
    if source_rate is None:
        notes.append(f"source frame rate {source.frame_rate!r} unknown; assuming 30")
        source_rate = _FALLBACK_RATE
    audio_bps = profile.audio.bitrate_kbps * 1000 if source.has_audio else 0
    if source.interlaced:
        notes.append("the source is interlaced: the encoded renditions are deinterlaced "
                     "(bwdif, a frame per frame)")

    encoded = _fit_encoded(profile, source, notes)
    pass_spec = next((r for r in profile.renditions if r.passthrough), None)
    if pass_spec is not None and not source.browsers_decode:
        notes.append(f"passthrough rendition {pass_spec.name!r} dropped: the source is "
                     f"{source.why_not_copied()}")
        pass_spec = None
    if not encoded and pass_spec is None:
        raise LadderError(
            f"profile {profile.label} has no rendition this source can use "
            f"({source.width}x{source.height} {source.video_codec})"
            + "".join(f"; {note}" for note in notes)
        )

    gop_seconds = _gop_seconds(profile, latency_mode)
    rates = {id(spec): output_frame_rate(source_rate, spec.max_frame_rate) for spec, *_ in encoded}
    base_rate = min(rates.values()) if rates else source_rate
    gop_base = max(1, round(gop_seconds * base_rate))
    gop_duration = gop_base / base_rate
    part_base = part_frames(gop_base, base_rate, profile.latency.part_target_seconds)
    part_duration = part_base / base_rate

    planned: list[PlannedRendition] = []
    if pass_spec is not None:
        video = source.video_bitrate or pass_spec.video_bitrate_kbps * 1000
        planned.append(
            PlannedRendition(
                name=pass_spec.name,
                width=source.width,
                height=source.height,
                frame_rate_num=source_rate.numerator,
                frame_rate_den=source_rate.denominator,
                passthrough=True,
                video_bitrate=video,
                maxrate=round(video * 1.25),
                bufsize=round(video * 1.25),
                x264_profile="",
                gop_frames=0,
                part_frames=0,
                audio_bitrate=audio_bps,
                bandwidth=_peak(round(video * 1.25), audio_bps),
                average_bandwidth=_average(video, audio_bps),
            )
        )
        if encoded:
            notes.append(
                "passthrough keeps the publisher's keyframes: it aligns with the encoded "
                "renditions only if the publisher uses the same keyframe interval"
            )
    for spec, name, (width, height), bitrate_scale in encoded:
        rate = rates[id(spec)]
        video = round(spec.video_bitrate_kbps * 1000 * bitrate_scale)
        maxrate = round(spec.maxrate * 1000 * bitrate_scale)
        planned.append(
            PlannedRendition(
                name=name,
                width=width,
                height=height,
                frame_rate_num=rate.numerator,
                frame_rate_den=rate.denominator,
                passthrough=False,
                video_bitrate=video,
                maxrate=maxrate,
                bufsize=round(spec.bufsize * 1000 * bitrate_scale),
                x264_profile=spec.x264_profile,
                gop_frames=max(1, round(gop_duration * rate)),
                part_frames=max(1, round(part_duration * rate)),
                audio_bitrate=audio_bps,
                bandwidth=_peak(maxrate, audio_bps),
                average_bandwidth=_average(video, audio_bps),
            )
        )
    return LadderPlan(
        profile=profile,
        source=source,
        latency_mode=latency_mode,
        renditions=tuple(planned),
        gop_duration=float(gop_duration),
        part_target=float(part_duration),
        has_audio=source.has_audio,
        notes=tuple(notes),
    )


def _gop_seconds(profile: StreamProfile, latency_mode: LatencyMode) -> float:
    """The profile's keyframe interval for the latency mode (audio-only: its segment)."""
    latency = profile.latency
    return latency.low_latency_gop_seconds if latency_mode == "low" else latency.standard_gop_seconds


def _plan_audio_only(
    profile: StreamProfile, source: SourceInfo, latency_mode: LatencyMode
) -> LadderPlan:
    """One AAC rendition: parts of whole AAC frames no longer than the part target (as
    video parts are whole frames), segments of whole parts about the profile's GOP."""
    audio = profile.audio
    frame = Fraction(AAC_FRAME_SAMPLES, audio.sample_rate)
    frames = max(1, math.floor(Fraction(profile.latency.part_target_seconds) / frame
                               + Fraction(1, 10**6)))
    part = frames * frame
    gop_seconds = _gop_seconds(profile, latency_mode)
    parts = max(1, round(Fraction(gop_seconds) / part))
    bps = audio.bitrate_kbps * 1000
    rendition = PlannedRendition(
        name=AUDIO_ONLY_RENDITION,
        width=0,
        height=0,
        frame_rate_num=0,
        frame_rate_den=1,
        passthrough=False,
        video_bitrate=0,
        maxrate=0,
        bufsize=0,
        x264_profile="",
        gop_frames=0,
        part_frames=0,
        audio_bitrate=bps,
        bandwidth=_peak(0, bps),
        average_bandwidth=_average(0, bps),
    )
    return LadderPlan(
        profile=profile,
        source=source,
        latency_mode=latency_mode,
        renditions=(rendition,),
        gop_duration=float(parts * part),
        part_target=float(part),
        has_audio=True,
        notes=("audio only: the source has no video",),
    )


_Fitted = tuple[RenditionSpec, str, tuple[int, int], float]


def _fit_encoded(profile: StreamProfile, source: SourceInfo, notes: list[str]) -> list[_Fitted]:
    """Encoded rungs that fit under the source: (spec, name, (width, height), bitrate scale)."""
    specs = sorted(
        (r for r in profile.renditions if not r.passthrough),
        key=lambda r: r.height or 0,
        reverse=True,
    )
    if not specs:
        return []
    short_side = min(source.width, source.height)
    fitting: list[_Fitted] = []
    for spec in specs:
        assert spec.height is not None  # validated for encoded renditions
        if spec.height <= short_side:
            fitting.append((spec, spec.name, _size(source, spec.height), 1.0))
        elif spec is not specs[0]:
            notes.append(f"{spec.name} skipped: above the source ({source.width}x{source.height})")
    top = specs[0]
    assert top.height is not None
    if top.height > short_side:
        capped = _even_floor(short_side)
        if fitting and (fitting[0][0].height or 0) >= _NEAR_DUPLICATE * capped:
            notes.append(f"{top.name} skipped: above the source ({source.width}x{source.height})")
        else:
            # Keep the rung's bits per pixel, but never go below the next rung down.
            scale = (capped / top.height) ** 2
            if fitting:
                scale = max(scale, fitting[0][0].video_bitrate_kbps / top.video_bitrate_kbps)
            notes.append(f"{top.name} capped at the source: {capped}p")
            fitting.insert(0, (top, f"{capped}p", _size(source, capped), scale))
    return fitting


def _size(source: SourceInfo, short_side: int) -> tuple[int, int]:
    """(width, height) with the given short side, the source's aspect, both even."""
    if source.width >= source.height:
        return _even_round(short_side * source.width / source.height), short_side
    return short_side, _even_round(short_side * source.height / source.width)


def _even_round(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _even_floor(value: int) -> int:
    return max(2, value - value % 2)


def snap_frame_rate(rate: float) -> Fraction | None:
    """The standard rate within 2% of `rate`, else `rate` to the millisecond; None if unusable."""
    if not math.isfinite(rate) or rate < 1 or rate > 240:
        return None
    nearest = min(_STANDARD_RATES, key=lambda r: abs(float(r) - rate))
    if abs(float(nearest) - rate) <= _SNAP_TOLERANCE * float(nearest):
        return nearest
    return Fraction(round(rate * 1000), 1000).limit_denominator(1001)


def output_frame_rate(source_rate: Fraction, max_rate: float) -> Fraction:
    """The source rate if within the cap, else an integer fraction of it (60→30, 50→25).

    Dropping every other frame keeps motion even; when the fraction would lose too
    much (31 fps → 15.5), the cap itself is used instead.
    """
    cap = Fraction(max_rate).limit_denominator(1001)
    if source_rate <= cap * Fraction(1001, 1000):
        return source_rate
    reduced = source_rate / math.ceil(source_rate / cap)
    if reduced < cap * Fraction(3, 4):
        reduced = cap
    return snap_frame_rate(float(reduced)) or reduced


def part_frames(gop_frames: int, rate: Fraction, part_target: float) -> int:
    """Frames per part: as many as fit in `part_target`, preferring a divisor of the GOP.

    ffmpeg's mp4 muxer cuts a fragment before the first packet at or past
    `-frag_duration`, so a part is a whole number of frames; at 29.97 fps six frames
    are 200.2 ms, one over a 200 ms target, so the target rounds down to five.
    """
    most = max(1, math.floor(part_target * rate + Fraction(1, 10**6)))
    for frames in range(most, 0, -1):
        if frames < _PART_FLOOR * most:
            break
        if gop_frames % frames == 0:
            return frames
    return most


def _peak(video_maxrate: int, audio: int) -> int:
    return round((video_maxrate + audio) * _PEAK_OVERHEAD)


def _average(video: int, audio: int) -> int:
    return round((video + audio) * _AVERAGE_OVERHEAD)
