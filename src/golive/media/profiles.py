"""Stream profiles: versioned TOML descriptions of a broadcast's ladder and its limits (media).

A profile says which renditions to make (height, frame-rate cap, bitrate envelope,
x264 profile, or passthrough of the publisher's video), the audio encoding and the
audio the publisher must send (loudness target, true peak), the bitrate envelope the
input must stay inside, the GOP and part durations per latency mode, the alert
thresholds, the viewer-side SLOs, what to give up when the machine cannot keep up,
and who owns it. Built-in profiles ship as package data (`golive/profiles/*.toml`);
users add or override them with files in a directory (`data_dir/profiles/NAME.toml`),
which win over built-ins of the same name. Published versions are immutable: the
store keeps each one (see `golive.ops`), and a stream pins `name@version`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

import annotated_types
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

log = logging.getLogger(__name__)

_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_NAME_RE = re.compile(_NAME)

X264Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]
Scaler = Literal["fast_bilinear", "bilinear", "bicubic", "lanczos", "spline"]
NvencPreset = Literal["p1", "p2", "p3", "p4", "p5", "p6", "p7"]


class ProfileError(ValueError):
    """A profile is missing, unreadable or invalid; the message says which file and field,
    and `problems` lists each invalid field on its own."""

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems) or [message]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RenditionSpec(_Model):
    """One rung of the ladder as the profile asks for it; the planner fits it to the source."""

    name: Annotated[str, Field(pattern=_NAME, description="Rendition name, used in URLs.")]
    height: int | None = Field(
        None,
        ge=64,
        le=4320,
        description="Target height (the short side for portrait sources); even. "
        "Not used by passthrough renditions.",
    )
    max_frame_rate: float = Field(30.0, gt=0, le=120, description="Frame-rate cap.")
    video_bitrate_kbps: int = Field(
        ...,
        ge=50,
        le=200_000,
        description="Average video bitrate; for passthrough, the expected publisher bitrate "
        "(used for BANDWIDTH when the real one is unknown).",
    )
    maxrate_kbps: int | None = Field(
        None, ge=50, le=250_000, description="VBV max rate; default 110% of the bitrate."
    )
    bufsize_kbps: int | None = Field(
        None, ge=50, le=500_000, description="VBV buffer; default one second of maxrate."
    )
    x264_profile: Literal["baseline", "main", "high"] = "high"
    passthrough: bool = Field(
        False, description="Copy the publisher's H.264 video (-c:v copy) instead of encoding."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.passthrough:
            return self
        if self.height is None:
            raise ValueError("height is required unless passthrough = true")
        if self.height % 2:
            raise ValueError(f"height must be even, got {self.height}")
        if self.maxrate_kbps is not None and self.maxrate_kbps < self.video_bitrate_kbps:
            raise ValueError("maxrate_kbps must be at least video_bitrate_kbps")
        return self

    @property
    def maxrate(self) -> int:
        """VBV max rate in kbit/s."""
        if self.maxrate_kbps is not None:
            return self.maxrate_kbps
        return round(self.video_bitrate_kbps * 1.1)

    @property
    def bufsize(self) -> int:
        """VBV buffer in kbit."""
        return self.bufsize_kbps if self.bufsize_kbps is not None else self.maxrate


class AudioSpec(_Model):
    """AAC-LC audio, encoded once per rendition output, and the audio policy the publisher's
    sound is held to (sample rate and channels as encoded; loudness per EBU R128)."""

    codec: Literal["aac"] = "aac"
    bitrate_kbps: int = Field(128, ge=16, le=512)
    sample_rate: Literal[44100, 48000] = Field(
        48000, description="Output sample rate; also the rate the publisher should send."
    )
    channels: Literal[1, 2] = Field(
        2, description="Output channels; also the layout the publisher should send."
    )
    loudness_target_lufs: float = Field(
        -23.0, ge=-40, le=-5,
        description="Integrated loudness the programme should have (EBU R128: -23; "
        "streaming services: -14 to -16).",
    )
    loudness_tolerance_lu: float = Field(
        2.0, ge=0.5, le=10, description="How far from the target the integrated loudness may be."
    )
    true_peak_max_dbtp: float = Field(
        -1.0, ge=-10, le=0, description="Highest true peak allowed (dBTP)."
    )


class InputSpec(_Model):
    """The contribution the publisher must send: the bitrate envelope it must stay inside."""

    min_video_bitrate_kbps: int = Field(
        500, ge=0, le=200_000, description="Below this the top rendition starves."
    )
    max_video_bitrate_kbps: int = Field(
        20_000, ge=50, le=250_000,
        description="Above this the uplink or the ingest is at risk; also the headroom ceiling.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.min_video_bitrate_kbps > self.max_video_bitrate_kbps:
            raise ValueError("min_video_bitrate_kbps must not exceed max_video_bitrate_kbps")
        return self


class SloSpec(_Model):
    """What viewers should get (Mux Data's definitions); QoE is judged against these."""

    startup_p95_seconds: float = Field(
        3.0, gt=0, le=60, description="95th percentile of video startup time."
    )
    rebuffer_percentage: float = Field(
        1.0, ge=0, le=100, description="Share of watch time spent rebuffering, at most."
    )
    latency_p95_seconds: float = Field(
        5.0, gt=0, le=300, description="95th percentile of live latency (glass to glass)."
    )
    playback_failure_percentage: float = Field(
        2.0, ge=0, le=100,
        description="Share of views that end in a fatal playback error, at most.",
    )


class LatencySpec(_Model):
    """GOP (segment) and part durations; the planner makes them whole numbers of frames."""

    low_latency_gop_seconds: float = Field(1.0, ge=0.2, le=10)
    standard_gop_seconds: float = Field(2.0, ge=0.2, le=10)
    part_target_seconds: float = Field(0.2, ge=0.05, le=2.0)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.part_target_seconds > min(self.low_latency_gop_seconds, self.standard_gop_seconds):
            raise ValueError("part_target_seconds must not exceed the GOP durations")
        return self


class EncoderSpec(_Model):
    x264_preset: X264Preset = "veryfast"
    nvenc_preset: NvencPreset = "p1"
    scaler: Scaler = "bicubic"


class AlertSpec(_Model):
    """When the transcoder emits `live_stream.warning`s, and the thresholds of the alert
    rules (`golive.health`): each rule's condition must hold `for_seconds` before its
    alert fires, and stay clear `resolve_after_seconds` before it resolves."""

    min_encode_speed: float = Field(
        1.0,
        gt=0,
        le=10,
        description="Encoded media seconds per ingested media second below which the "
        "encoder counts as slow (a live encoder tops out at 1.0; 5% measurement slack).",
    )
    slow_encode_seconds: float = Field(
        10.0, ge=1, le=600, description="How long the encoder must be slow before acting."
    )
    max_dropped_frames_ratio: float = Field(
        0.02, ge=0, le=1, description="Dropped / ingested video frames over 10 s before a warning."
    )
    min_ingest_bitrate_kbps: int = Field(
        150, ge=0, description="Ingest bitrate floor; 0 disables the check."
    )
    ingest_bitrate_seconds: float = Field(
        10.0, ge=1, le=600, description="How long the ingest must stay under the floor."
    )
    max_ingest_bitrate_kbps: int = Field(
        0, ge=0, le=1_000_000,
        description="Ingest bitrate ceiling (the top of the envelope); 0 disables the check.",
    )
    for_seconds: float = Field(
        5.0, ge=0, le=600, description="How long a rule's condition must hold before it fires."
    )
    resolve_after_seconds: float = Field(
        10.0, ge=0, le=3600,
        description="How long a firing alert's condition must stay clear before it resolves.",
    )
    max_keyframe_interval_seconds: float = Field(
        2.0, gt=0, le=60,
        description="Longest acceptable keyframe interval from the publisher (1-2 s lets "
        "LL-HLS segments and passthrough start on a keyframe); 5% measurement slack.",
    )
    min_ingest_speed: float = Field(
        0.9, gt=0, le=1,
        description="Media seconds arriving per wall-clock second below which the "
        "publisher's uplink counts as unable to carry the stream.",
    )
    ingest_speed_seconds: float = Field(
        5.0, ge=1, le=600, description="Window over which the ingest speed is measured."
    )
    stall_seconds: float = Field(
        2.0, gt=0, le=600,
        description="No media for this long while a broadcast is live is a stall.",
    )
    max_av_drift_seconds: float = Field(
        0.3, gt=0, le=60,
        description="Largest acceptable offset between the audio and video timelines at ingest.",
    )
    audio_gap_seconds: float = Field(
        3.0, gt=0, le=600,
        description="Audio frames missing this long while video flows (a stream that had "
        "audio) is an alert.",
    )
    max_srt_loss_ratio: float = Field(
        0.02, ge=0, le=1,
        description="SRT packets lost per packet received over the ingest speed window.",
    )
    max_srt_rtt_ms: float = Field(
        500.0, gt=0, le=10_000, description="Highest acceptable SRT round-trip time."
    )
    max_reconnects: int = Field(
        3, ge=1, le=1000,
        description="Publisher reconnects within `reconnects_seconds` that make the "
        "stream count as dropping on every network blip.",
    )
    reconnects_seconds: float = Field(
        300.0, ge=1, le=86_400, description="Period over which reconnects are counted."
    )
    qoe_window_seconds: float = Field(
        120.0, ge=10, le=3600,
        description="The viewer-side rules (startup, rebuffering, latency, failures against "
        "the profile's [slo]) judge the players' reports of this sliding window.",
    )
    qoe_interval_seconds: float = Field(
        5.0, ge=1, le=600,
        description="How often a live stream's viewer experience is recomputed for the rules.",
    )
    min_qoe_views: int = Field(
        1, ge=1, le=100_000,
        description="Views the window must hold before the viewer-side rules judge it.",
    )
    audio_silence_dbfs: float = Field(
        -60.0, ge=-120, le=0,
        description="Audio whose RMS level (100 ms blocks, dBFS) stays under this is silent.",
    )
    audio_silence_seconds: float = Field(
        10.0, gt=0, le=3600,
        description="The audio track is present but silent this long: a muted microphone "
        "or the wrong audio source (alert `audio_silent`).",
    )
    audio_clip_ratio: float = Field(
        0.2, gt=0, le=1,
        description="Share of the 100 ms audio blocks whose peak reaches -1 dBFS (full scale, after a lossy codec) over "
        "`audio_clipping_seconds` above which the audio clips (alert `audio_clipping`).",
    )
    audio_clipping_seconds: float = Field(
        10.0, ge=1, le=600, description="Window over which clipped audio blocks are counted."
    )
    video_black_seconds: float = Field(
        10.0, gt=0, le=3600,
        description="The picture is black (90% of it at video black) this long: an empty "
        "scene or a lost capture device (alert `video_black`).",
    )
    max_transcoder_restarts: int = Field(
        3, ge=1, le=1000,
        description="Encoder restarts within `transcoder_restarts_seconds` that raise "
        "the alert `transcoder_restarts`.",
    )
    transcoder_restarts_seconds: float = Field(
        600.0, ge=10, le=86_400, description="Period over which encoder restarts are counted."
    )
    max_latency_growth_seconds: float = Field(
        4.0, gt=0, le=600,
        description="A view whose live latency grew by more than this over the QoE window "
        "is drifting from the live edge (alert `viewer_latency_drift`).",
    )


class FallbackSpec(_Model):
    """How the transcoder degrades when it cannot keep up: a faster preset, then lower frame
    rates on the lower rungs, then (if allowed) renditions given up, most expensive first."""

    drop_top_rendition_on_slow_encode: bool = True
    min_renditions: int = Field(1, ge=1, description="Never drop below this many renditions.")
    recover_after_seconds: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="Seconds of keeping up at a degraded step before trying the next better "
        "one; doubled (up to 600 s) each time the better step is slow again within 2 minutes.",
    )
    slate: bool = Field(
        True,
        description="While no publisher is live inside the reconnect window, a slate (a "
        "\"We'll be right back\" card or `slate_image`, silent audio) keeps the renditions "
        "playing until one returns; false: the playlists stall until then.",
    )
    slate_image: str = Field(
        "",
        max_length=4096,
        description="Picture file (PNG or JPEG, absolute path) the slate shows instead of the "
        "built-in card; scaled to fit the source size.",
    )
    failover_after: float | None = Field(
        None,
        gt=0,
        le=60,
        description="Seconds the active input may send nothing, or send under a quarter of "
        "its recent frame rate or bitrate, while a standby (backup) is connected and sending, "
        "before the standby takes over; unset: the node's `failover_after` (1 s).",
    )


DestinationScheme = Literal["rtmp", "rtmps", "srt"]
_HOST = r"^(\*\.)?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"


class DestinationPolicy(_Model):
    """A class of destinations streams of this profile forward to (`[[destinations]]`): which
    URLs belong to it, what they get, how many a stream may have, whether one is required.
    A profile with classes admits only destinations that fit one (the first that fits)."""

    name: Annotated[str, Field(pattern=_NAME, description="The class's name (shown in errors "
                                                          "and preflight).")]
    rendition: str = Field(
        "source", min_length=1, max_length=32,
        description="What its destinations get: `source` (the publisher's media as sent) or "
        "the name of a rendition of this profile's ladder (its encoded output).")
    required: bool = Field(
        False, description="Preflight is a no-go unless the stream has an enabled destination "
        "of this class.")
    max_count: int = Field(1, ge=1, le=10,
                           description="Destinations of this class one stream may have.")
    schemes: tuple[DestinationScheme, ...] = Field(
        ("rtmp", "rtmps", "srt"), min_length=1, max_length=3,
        description="URL schemes its destinations may use.")
    hosts: tuple[Annotated[str, Field(pattern=_HOST, max_length=253)], ...] = Field(
        (), max_length=20,
        description="Host names its destinations may use (`*.example.com`: any subdomain); "
        "empty: any host.")

    def admits(self, url: str) -> bool:
        """Whether a destination URL belongs to this class (scheme and host)."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        host = (parts.hostname or "").lower()
        if parts.scheme not in self.schemes or not host:
            return False
        if not self.hosts:
            return True
        return any(host == h or (h.startswith("*.") and host.endswith(h[1:]))
                   for h in self.hosts)

    def describe(self) -> str:
        hosts = ", ".join(self.hosts) if self.hosts else "any host"
        return f"{self.name} ({'/'.join(self.schemes)} to {hosts})"


class StreamProfile(_Model):
    """A named, versioned ladder with its encoding, latency, alert and fallback settings."""

    name: Annotated[str, Field(pattern=_NAME)]
    version: int = Field(..., ge=1, le=1_000_000)
    description: str = Field("", max_length=1000)
    owner: str = Field(
        "", max_length=200, description="Who answers for streams of this class (person or team)."
    )
    renditions: tuple[RenditionSpec, ...] = Field(..., min_length=1, max_length=8)
    input: InputSpec = InputSpec()
    audio: AudioSpec = AudioSpec()
    slo: SloSpec = SloSpec()
    latency: LatencySpec = LatencySpec()
    encoder: EncoderSpec = EncoderSpec()
    alerts: AlertSpec = AlertSpec()
    fallback: FallbackSpec = FallbackSpec()
    destinations: tuple[DestinationPolicy, ...] = Field(
        (), max_length=10,
        description="Destination classes (`[[destinations]]`); empty: a stream may forward "
        "anywhere, the source or any rendition.")

    @field_validator("destinations")
    @classmethod
    def _check_destinations(cls, value: tuple[DestinationPolicy, ...],
                            info: ValidationInfo) -> tuple[DestinationPolicy, ...]:
        names = [d.name for d in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"class names must be unique: {', '.join(dupes)}")
        ladder = [r.name for r in info.data.get("renditions", ())]
        for index, policy in enumerate(value):
            if policy.rendition != "source" and policy.rendition not in ladder:
                raise ValueError(
                    f"[{index}].rendition: {policy.rendition!r} is neither 'source' nor a "
                    f"rendition of the ladder ({', '.join(ladder)})")
        return value

    def destination_class(self, url: str) -> DestinationPolicy | None:
        """The first destination class that admits `url` (None: none does)."""
        return next((d for d in self.destinations if d.admits(url)), None)

    @model_validator(mode="after")
    def _check(self) -> Self:
        names = [r.name for r in self.renditions]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rendition names must be unique: {', '.join(dupes)}")
        if sum(r.passthrough for r in self.renditions) > 1:
            raise ValueError("at most one rendition may be passthrough")
        heights = [r.height for r in self.renditions if not r.passthrough]
        if len(set(heights)) != len(heights):
            raise ValueError("two encoded renditions have the same height")
        if self.fallback.min_renditions > len(self.renditions):
            raise ValueError("fallback.min_renditions exceeds the number of renditions")
        return self

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def content_hash(self) -> str:
        """SHA-256 of the settings the file sets (not golive's defaults, so a golive that
        adds a setting does not change a published version's hash); a comment or a
        reordered table is not a new version, any changed setting is."""
        settings = self.model_dump(mode="json", exclude_unset=True)
        canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


# Loading ----------------------------------------------------------------------------


def parse_profile(text: str, *, source: str = "<string>", name: str | None = None) -> StreamProfile:
    """Parse and validate one profile from TOML text; `name` (the file stem) fills a missing name."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {source}: invalid TOML: {exc}", [f"invalid TOML: {exc}"]) from None
    if name is not None:
        declared = data.setdefault("name", name)
        if declared != name:
            problem = f"name: the file is named {name!r} but declares {declared!r}"
            raise ProfileError(f"profile {source}: {problem}", [problem])
    try:
        return StreamProfile.model_validate(data)
    except ValidationError as exc:
        problems = describe_errors(exc)
        raise ProfileError(f"profile {source}: {'; '.join(problems)}", problems) from None


def describe_errors(exc: ValidationError) -> list[str]:
    """Each problem as `renditions[1].video_bitrate_kbps: must be between 50 and 200000 (got
    30)`: the field's path as it is written in TOML, and the allowed range or choices."""
    errors = exc.errors()
    # A list whose item failed is also too short to pydantic (the item is dropped): beside
    # the item's own complaint that second one only misleads.
    parents = {tuple(e["loc"][:n]) for e in errors for n in range(1, len(e["loc"]))}
    return [_describe(err) for err in errors
            if not (err["type"] == "too_short" and tuple(err["loc"]) in parents)]


def _describe(err: Any) -> str:
    loc: tuple[str | int, ...] = tuple(err["loc"])
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    kind: str = err["type"]
    got = err.get("input")
    if kind == "missing":
        return f"{path}: required"
    if kind == "extra_forbidden":
        allowed = _allowed_fields(loc[:-1])
        return f"{path}: unknown field" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    info = _field_info(loc) if kind in _RANGE_ERRORS else None
    if info is not None:
        rule = _rule(info)
        if rule:
            return f"{path or '(top level)'}: {rule} (got {_shown(got)})"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{path or '(top level)'}: {msg}"


# Pydantic error types that break a field's allowed range or choices (not its type).
_RANGE_ERRORS = frozenset({
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "literal_error",
    "too_long", "too_short", "string_too_long", "string_too_short",
})


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _walk(loc: tuple[str | int, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model a location ends in and the field it names (None where it names neither)."""
    model: type[BaseModel] | None = StreamProfile
    info: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):
            continue  # an index into a tuple of models: the element model stays `model`
        if model is None or part not in model.model_fields:
            return None, None
        info = model.model_fields[part]
        model = _model_of(info.annotation)
    return model, info


def _field_info(loc: tuple[str | int, ...]) -> FieldInfo | None:
    if not loc or isinstance(loc[-1], int):
        return None
    return _walk(loc)[1]


def _allowed_fields(loc: tuple[str | int, ...]) -> list[str]:
    model = _walk(loc)[0] if loc else StreamProfile
    return sorted(model.model_fields) if model is not None else []


def _rule(info: FieldInfo) -> str:
    """The field's allowed values in words: a range, a length or a list of choices."""
    choices = _choices(info.annotation)
    if choices:
        return "must be one of " + ", ".join(repr(c) for c in choices)
    low: object = None
    high: object = None
    low_open = high_open = False
    shortest: int | None = None
    longest: int | None = None
    for m in info.metadata:
        if isinstance(m, annotated_types.Ge):
            low = m.ge
        elif isinstance(m, annotated_types.Gt):
            low, low_open = m.gt, True
        elif isinstance(m, annotated_types.Le):
            high = m.le
        elif isinstance(m, annotated_types.Lt):
            high, high_open = m.lt, True
        elif isinstance(m, annotated_types.MinLen):
            shortest = m.min_length
        elif isinstance(m, annotated_types.MaxLen):
            longest = m.max_length
    if shortest or longest is not None:
        length = (f"between {shortest} and {longest}" if shortest and longest is not None
                  else f"at least {shortest}" if shortest else f"at most {longest}")
        return f"must have {length} {'characters' if info.annotation is str else 'items'}"
    if low is not None and high is not None:
        if not low_open and not high_open:
            return f"must be between {low} and {high}"
        return (f"must be {'greater than' if low_open else 'at least'} {low} and "
                f"{'less than' if high_open else 'at most'} {high}")
    if low is not None:
        return f"must be {'greater than' if low_open else 'at least'} {low}"
    if high is not None:
        return f"must be {'less than' if high_open else 'at most'} {high}"
    return ""


def _choices(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found: tuple[Any, ...] = ()
        for arg in typing.get_args(annotation):
            found += _choices(arg)
        return found
    return ()


def load_profile(name: str, extra_dirs: Iterable[Path | str] = ()) -> StreamProfile:
    """The profile called `name`: from the first of `extra_dirs` that has NAME.toml, else built-in."""
    if not _NAME_RE.match(name):
        raise ProfileError(f"invalid profile name {name!r}: use lowercase letters, digits, - and _")
    for directory in extra_dirs:
        path = Path(directory) / f"{name}.toml"
        if path.is_file():
            return _load_file(path, name)
    builtin = resources.files("golive").joinpath("profiles", f"{name}.toml")
    if builtin.is_file():
        return parse_profile(builtin.read_text("utf-8"), source=f"built-in {name}", name=name)
    searched = ", ".join(str(d) for d in extra_dirs) or "no user directories"
    raise ProfileError(
        f"unknown profile {name!r} (searched {searched} and the built-ins: "
        f"{', '.join(builtin_profile_names())})"
    )


def list_profiles(extra_dirs: Iterable[Path | str] = ()) -> list[StreamProfile]:
    """Every loadable profile, user ones overriding built-ins; invalid files are logged and skipped."""
    found: dict[str, StreamProfile] = {}
    for name in builtin_profile_names():
        found[name] = load_profile(name)
    for directory in reversed(list(extra_dirs)):  # earlier directories win
        for path in sorted(_toml_files(Path(directory))):
            try:
                found[path.stem] = _load_file(path, path.stem)
            except ProfileError as exc:
                log.warning("skipping profile file=%s error=%s", path, exc)
    return [found[k] for k in sorted(found)]


def builtin_profile_names() -> list[str]:
    folder = resources.files("golive").joinpath("profiles")
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml") and entry.is_file()
    )


def _toml_files(directory: Path) -> Iterator[Path]:
    if not directory.is_dir():
        return
    for path in directory.glob("*.toml"):
        if _NAME_RE.match(path.stem):
            yield path


def _load_file(path: Path, name: str) -> StreamProfile:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile {path}: cannot read: {exc}") from None
    return parse_profile(text, source=str(path), name=name)
