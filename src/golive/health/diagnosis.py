"""Alert rules and their diagnoses: what is wrong, the likely cause, and the fix (health).

Pure: a rule looks at one `StreamSignals` (everything golive measured about a live
stream at one moment, across ingest, SRT, encoder and reconnects) with the stream's
profile thresholds (`AlertSpec`) and either finds nothing or returns a `Finding`.
Its `diagnose` then reads the *other* signals of the same moment to name the most
likely cause and the fix, the way an operator's symptom table does: a slow ingest
with SRT retransmits climbing is a lossy path, without them a short uplink.

Adding a rule is adding a class with `name`, `evaluate` and `diagnose` to `RULES`.
The viewer-side rules (startup time, rebuffering, live latency, playback failures)
read `StreamSignals.viewers`, the players' reports over a sliding window judged
against the profile's `[slo]` table, and diagnose by looking at the ingest and encoder
side of the same moment: viewers rebuffering while the ingest arrives slowly is the
uplink, while everything upstream is healthy it is the player or a cache.
The sound and picture rules (`audio_silent`, `audio_clipping`, `video_black`) read
`StreamSignals.levels`, measured in the transcoder's own graph (`golive.media.levels`);
`transcoder_restarts` reads the reasons of the encoder's recent restarts, and
`viewer_latency_drift` the views whose latency grew against the encoder's live speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from golive.health.qoe import QoeSummary
from golive.media import AlertSpec, LevelFacts, SloSpec
from golive.stream import IngestFacts

__all__ = [
    "RULES",
    "VIEWER_RULES",
    "Diagnosis",
    "EncoderSignals",
    "Finding",
    "Rule",
    "SrtSignals",
    "StreamSignals",
    "ViewLag",
    "ViewerGroup",
    "ViewerSignals",
]

SLACK = 0.05  # measurement slack on ratio thresholds (keyframe interval)
_OBS_KEYFRAMES = "OBS: Settings → Output → Output Mode Advanced → Streaming → Keyframe Interval"


@dataclass(frozen=True, slots=True)
class SrtSignals:
    """The SRT connection of the publisher, over the engine's measuring window."""

    rtt_ms: float
    loss_ratio: float | None  # packets lost per packet received in the window
    retransmit_ratio: float | None  # retransmitted packets per packet received
    dropped: int  # packets given up in the window (too late)
    latency_ms: int  # the negotiated SRT latency
    unsupported_audio: str | None = None
    """Audio the publisher's transport stream carries that golive cannot decode (and no
    other audio): what it is."""
    unsupported_video: str | None = None
    """Likewise its video: the broadcast goes out as sound alone."""


@dataclass(frozen=True, slots=True)
class EncoderSignals:
    """golive's own encoder (the transcoder) for the stream."""

    degrade_step: int  # 0: the full ladder; higher: cheaper steps taken because it was slow
    speed: float | None  # encode speed (output per ingested media second) at the last step
    exhausted: bool  # slow at the cheapest step already
    restarts: int  # ffmpeg runs restarted so far
    renditions: tuple[str, ...]
    live_speed: float | None = None  # the windowed encode speed now (None: not measured yet)


@dataclass(frozen=True, slots=True)
class ViewLag:
    """One view's distance from the live edge over the window (its latency samples)."""

    view_id: str
    player: str
    browser: str
    latency_s: float  # the latest sample
    growth_s: float  # latest minus first sample in the window (> 0: drifting back)


@dataclass(frozen=True, slots=True)
class ViewerGroup:
    """The views of one kind of viewer (player, browser, OS) that rebuffered in the window."""

    player: str
    browser: str
    os: str
    rebuffering_views: int  # views of this kind that rebuffered
    views: int  # all views of this kind in the window
    rebuffer_percentage: float  # of this kind's watch time

    def describe(self) -> str:
        return (f"{self.rebuffering_views} of {self.views} {self.player} view"
                f"{'' if self.views == 1 else 's'} on {self.browser}/{self.os} "
                f"({self.rebuffer_percentage:.1f} % rebuffering)")


@dataclass(frozen=True, slots=True)
class ViewerSignals:
    """What the players reported over the engine's QoE window, and the profile's SLOs."""

    summary: QoeSummary
    slo: SloSpec
    window_s: float
    by_player: dict[str, QoeSummary] = field(default_factory=dict)  # hls.js, native, whep
    error_codes: tuple[tuple[str, int], ...] = ()  # fatal errors in the window, most first
    behind: tuple[ViewLag, ...] = ()  # the views furthest behind live, worst first
    drifting: tuple[ViewLag, ...] = ()  # the views whose latency grew most, most first
    rebuffering: tuple[ViewerGroup, ...] = ()  # who rebuffered, most rebuffering first


@dataclass(frozen=True, slots=True)
class StreamSignals:
    """What the engine measured about one live stream at one moment."""

    stream_id: str
    protocol: str | None  # of the current publisher; None while it is away
    connected: bool
    ingest: IngestFacts
    ingest_speed: float | None
    """Media seconds that arrived per wall-clock second over the window (1.0: real time);
    None until a full window without a stall is covered."""
    media_gap_s: float | None  # seconds since the last media arrived
    audio_gap_s: float | None  # seconds without audio frames while video flows; None: no audio
    reconnects: int  # publisher reconnects within the profile's period
    srt: SrtSignals | None = None
    encoder: EncoderSignals | None = None
    backup_key: bool = False  # the stream has a backup key
    standby: bool = False  # a standby publisher (the stream's other key) is connected now
    standby_seen: bool = False  # one was connected at some point of this broadcast
    viewers: ViewerSignals | None = None  # None: no views in the window (or too few)
    levels: LevelFacts | None = None  # audio level and picture (None: not transcoded)
    restarts: tuple[str, ...] = ()
    """Why the encoder restarted, each restart within the profile's period, oldest first."""


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's condition holds: what was measured against which threshold."""

    value: float
    threshold: float
    unit: str
    summary: str  # one line: the symptom, with the numbers


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """The most likely cause, what to do about it, and the signals that point there."""

    cause: str
    fix: str
    related: dict[str, Any] = field(default_factory=dict)


class Rule(Protocol):
    """One alert rule. `evaluate` and `diagnose` are pure and cheap (called every second)."""

    @property
    def name(self) -> str: ...

    def evaluate(self, signals: StreamSignals, spec: AlertSpec) -> Finding | None: ...

    def diagnose(self, finding: Finding, signals: StreamSignals) -> Diagnosis: ...


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _ingest_related(s: StreamSignals) -> dict[str, Any]:
    facts = s.ingest
    related: dict[str, Any] = {
        "protocol": s.protocol,
        "ingest_speed": _r(s.ingest_speed),
        "ingest_kbps": _r(facts.total_bitrate_kbps, 1),
        "frame_rate": _r(facts.frame_rate, 2),
        "keyframe_interval_s": _r(facts.keyframe_interval_s, 2),
        "reconnects": s.reconnects,
    }
    if s.srt is not None:
        related["srt_rtt_ms"] = _r(s.srt.rtt_ms, 1)
        related["srt_loss_ratio"] = _r(s.srt.loss_ratio, 4)
        related["srt_retransmit_ratio"] = _r(s.srt.retransmit_ratio, 4)
    if s.encoder is not None:
        related["encoder_speed"] = _r(s.encoder.speed)
        related["degrade_step"] = s.encoder.degrade_step
    return related


def _srt_lossy(s: StreamSignals, spec: AlertSpec) -> bool:
    srt = s.srt
    if srt is None:
        return False
    loss = max(srt.loss_ratio or 0.0, srt.retransmit_ratio or 0.0)
    return loss > spec.max_srt_loss_ratio


# Ingest ------------------------------------------------------------------------------


class IngestSlow:
    """Media arrives slower than real time: the publisher's uplink cannot carry it."""

    name = "ingest_slow"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        speed = s.ingest_speed
        if speed is None or speed >= spec.min_ingest_speed:
            return None
        return Finding(speed, spec.min_ingest_speed, "x",
                       f"ingest arrives at {speed:.2f}x real time")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _ingest_related(s)
        arriving = s.ingest.total_bitrate_kbps
        if s.srt is not None and (s.srt.retransmit_ratio or s.srt.loss_ratio):
            lost = max(s.srt.loss_ratio or 0.0, s.srt.retransmit_ratio or 0.0)
            return Diagnosis(
                f"the path from the encoder loses packets ({lost:.1%} retransmitted or "
                f"lost) and the retransmissions eat the uplink: it cannot carry the bitrate",
                "lower the encoder's bitrate or resolution, raise the SRT latency to at "
                "least 4x the round-trip time, or use a better uplink (wired, not Wi-Fi)",
                related,
            )
        needed = "" if not arriving or not finding.value else (
            f": about {arriving:.0f} kbit/s gets through, the stream needs about "
            f"{arriving / finding.value:.0f} kbit/s")
        via = " or contribute over SRT, which copes better with a" \
            " poor link" if s.protocol in ("rtmp", "rtmps") else ""
        return Diagnosis(
            f"the publisher's uplink cannot carry the bitrate{needed}",
            f"lower the encoder's bitrate or resolution{via}; check the upload "
            "speed of the encoder's network",
            related,
        )


class IngestStalled:
    """No media for `stall_seconds` while the broadcast is live."""

    name = "ingest_stalled"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        gap = s.media_gap_s
        if gap is None or gap < spec.stall_seconds:
            return None
        return Finding(gap, spec.stall_seconds, "s", f"no media for {gap:.1f} s")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _ingest_related(s)
        related["connected"] = s.connected
        if not s.connected:
            return Diagnosis(
                "the publisher disconnected and has not come back yet",
                "check the encoder and its network; a backup encoder publishing with the "
                "stream's backup key would keep the broadcast up",
                related,
            )
        if s.srt is not None and s.srt.rtt_ms > 0 and _srt_lossy_any(s.srt):
            return Diagnosis(
                "the network path from the encoder stopped delivering (SRT packets lost)",
                "check the encoder's uplink; raise the SRT latency if the link is lossy",
                related,
            )
        return Diagnosis(
            "the encoder stopped sending while its connection stays open: it is frozen, "
            "paused or starved of CPU",
            "check the encoder machine (OBS: View → Stats shows skipped and lagged frames); "
            "restart the encoder if it does not recover",
            related,
        )


def _srt_lossy_any(srt: SrtSignals) -> bool:
    return bool(srt.loss_ratio or srt.retransmit_ratio or srt.dropped)


class IngestBitrate:
    """The ingest bitrate is outside the profile's envelope."""

    name = "ingest_bitrate"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        kbps = s.ingest.total_bitrate_kbps
        if kbps is None or (s.media_gap_s or 0.0) >= spec.stall_seconds:
            return None  # a stall is its own alert
        # The floor is a picture's: an audio-only broadcast (a voice at 64 kbit/s) is held
        # to the ceiling only.
        audio_only = s.ingest.video_frames == 0 and s.ingest.audio_frames > 0
        if (spec.min_ingest_bitrate_kbps and kbps < spec.min_ingest_bitrate_kbps
                and not audio_only):
            return Finding(kbps, spec.min_ingest_bitrate_kbps, "kbit/s",
                           f"the publisher sends {kbps:.0f} kbit/s, under the profile's "
                           f"floor of {spec.min_ingest_bitrate_kbps} kbit/s")
        if spec.max_ingest_bitrate_kbps and kbps > spec.max_ingest_bitrate_kbps:
            return Finding(kbps, spec.max_ingest_bitrate_kbps, "kbit/s",
                           f"the publisher sends {kbps:.0f} kbit/s, over the profile's "
                           f"ceiling of {spec.max_ingest_bitrate_kbps} kbit/s")
        return None

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _ingest_related(s)
        if finding.value > finding.threshold:
            return Diagnosis(
                "the encoder is set to a higher bitrate than this stream's profile expects",
                f"lower the encoder's bitrate to at most {finding.threshold:.0f} kbit/s "
                "(OBS: Settings → Output → Video Bitrate)",
                related,
            )
        if s.ingest_speed is not None and s.ingest_speed < 0.9:
            return Diagnosis(
                "the uplink cannot carry the bitrate: media arrives slower than real time",
                "lower the encoder's bitrate or resolution, or use a better uplink",
                related,
            )
        return Diagnosis(
            "the encoder is set to a bitrate too low for the profile's ladder (or sends a "
            "nearly static picture)",
            f"raise the encoder's bitrate above {finding.threshold:.0f} kbit/s "
            "(OBS: Settings → Output → Video Bitrate)",
            related,
        )


class KeyframeInterval:
    """The publisher's keyframes are too far apart."""

    name = "keyframe_interval"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        interval = s.ingest.keyframe_interval_s
        limit = spec.max_keyframe_interval_seconds
        if interval is None or interval <= limit * (1 + SLACK):
            return None
        return Finding(interval, limit, "s", f"a keyframe every {interval:.1f} s")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _ingest_related(s)
        related["encoder"] = s.ingest.encoder
        fps = s.ingest.frame_rate or s.ingest.declared_frame_rate
        gop = f" (ffmpeg: -g {round(fps * 2)} at {fps:.0f} fps)" if fps else ""
        return Diagnosis(
            f"the encoder sends a keyframe only every {finding.value:.1f} s: players join "
            "and switch renditions only at keyframes, and a passthrough rendition's "
            "segments cannot be shorter than that",
            f"set the keyframe interval to 1 or 2 s in the encoder ({_OBS_KEYFRAMES} = 2; "
            f"0 means auto, which is too long){gop}",
            related,
        )


class AvDrift:
    """The audio and video timelines at ingest are apart."""

    name = "av_drift"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        drift = s.ingest.av_drift_s
        if drift is None or abs(drift) <= spec.max_av_drift_seconds:
            return None
        side = "behind" if drift > 0 else "ahead of"
        return Finding(drift, spec.max_av_drift_seconds, "s",
                       f"audio is {abs(drift):.2f} s {side} video at ingest")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _ingest_related(s)
        facts = s.ingest
        related["declared_frame_rate"] = _r(facts.declared_frame_rate, 3)
        measured, declared = facts.frame_rate, facts.declared_frame_rate
        if measured and declared and abs(measured - declared) / declared > 0.02:
            return Diagnosis(
                f"frame-rate mismatch: the encoder declares {declared:.3g} fps but its "
                f"timestamps run at {measured:.3g} fps, so video drifts from audio",
                "set the encoder's output frame rate to the capture device's rate (OBS: "
                "Settings → Video → Common FPS Values), or let it resample",
                related,
            )
        return Diagnosis(
            "timestamp offset at ingest: the encoder stamps audio "
            f"{abs(finding.value):.2f} s {'later' if finding.value > 0 else 'earlier'} than "
            "the video captured with it (an audio sync offset or capture delay)",
            "set the audio source's sync offset to 0 (OBS: Edit → Advanced Audio "
            "Properties → Sync Offset; ffmpeg: remove -itsoffset or -async tweaks), and "
            "check the capture device's latency",
            related,
        )


class AudioMissing:
    """A stream that had audio keeps sending video without it."""

    name = "audio_missing"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        gap = s.audio_gap_s
        if gap is None or gap < spec.audio_gap_seconds:
            return None
        return Finding(gap, spec.audio_gap_seconds, "s",
                       f"no audio for {gap:.1f} s while video flows")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        return Diagnosis(
            "the encoder stopped sending audio: its audio device was unplugged, muted at "
            "the source, or the audio encoder failed; viewers hear silence meanwhile "
            "(golive fills AAC, MP3, Opus, AC-3, E-AC-3 and FLAC sound with silence; other "
            "sound ends the renditions' audio after a few seconds)",
            "check the encoder's audio sources and mixer (OBS: Audio Mixer); reconnect "
            "the device",
            _ingest_related(s),
        )


class CodecUnsupported:
    """The publisher's transport stream carries audio or video only in a codec golive
    cannot decode (`SrtSignals.unsupported_audio`/`_video`): the broadcast goes out without
    it. One rule per track: `name`, what viewers miss, what golive takes, the fix."""

    def __init__(self, track: str, missed: str, takes: str, fix: str) -> None:
        self.track = track
        self.name = f"{track}_unsupported"
        self._missed, self._takes, self._fix = missed, takes, fix

    def _what(self, s: StreamSignals) -> str | None:
        return getattr(s.srt, f"unsupported_{self.track}", None) if s.srt is not None else None

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        what = self._what(s)
        if what is None:
            return None
        return Finding(0.0, 0.0, f"{self.track} frames",
                       f"the publisher's {self.track} is {what}, which golive cannot decode: "
                       f"{self._missed}")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        what = self._what(s)
        return Diagnosis(f"the encoder sends {what}; golive takes {self._takes}", self._fix,
                         {**_ingest_related(s), f"unsupported_{self.track}": what})


AUDIO_UNSUPPORTED = CodecUnsupported(
    "audio", "viewers hear nothing",
    "AAC (ADTS or LATM), MPEG-1/2 audio (Layer II, MP3), AC-3, E-AC-3 and mono or stereo Opus",
    "set the encoder's audio codec to AAC-LC (hardware encoders: Audio → Codec; OBS: "
    "Settings → Output → Audio Encoder), or its Opus to stereo")
VIDEO_UNSUPPORTED = CodecUnsupported(
    "video", "viewers get the sound alone",
    "H.264 and HEVC over SRT (a DVB relay's SD services are MPEG-2 video)",
    "set the encoder's video codec to H.264 (hardware encoders: Video → Codec; OBS: "
    "Settings → Output → Video Encoder), or transcode the relay to H.264 before golive")


class Reconnects:
    """The publisher keeps dropping and coming back."""

    name = "reconnects"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        if s.reconnects < spec.max_reconnects:
            return None
        return Finding(s.reconnects, spec.max_reconnects, "reconnects",
                       f"the publisher reconnected {s.reconnects} times in "
                       f"{spec.reconnects_seconds:.0f} s")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _ingest_related(s)
        related.update(backup_key=s.backup_key, standby=s.standby,
                       standby_seen=s.standby_seen)
        if not s.backup_key:
            return Diagnosis(
                "the stream drops on every network blip: one uplink, and no backup ingest "
                "configured",
                "make the stream a backup key (reset-backup-stream-key) and publish a "
                "second encoder (or a second uplink) with it; use a wired connection, or "
                "contribute over SRT",
                related,
            )
        if s.standby:
            return Diagnosis(
                "the active encoder's link keeps dropping; the backup encoder standing by "
                "covers each drop, but every takeover is a visible switch",
                "fix the active encoder's uplink (a wired connection, or SRT on a lossy "
                "link) so the broadcast stops switching between encoders",
                related,
            )
        if s.standby_seen:
            return Diagnosis(
                "the link keeps dropping and the backup encoder that stood by has "
                "disconnected too: nothing covers the next drop",
                "bring the backup encoder back with the stream's backup key, and check "
                "the uplinks both encoders share",
                related,
            )
        return Diagnosis(
            "the stream drops on every network blip: it has a backup key, but no backup "
            "encoder has published with it during this broadcast",
            "start the backup encoder with the stream's backup stream key (it stands by "
            "and takes over on a drop); use a wired connection, or contribute over SRT",
            related,
        )


# SRT ------------------------------------------------------------------------------------


class SrtLoss:
    name = "srt_loss"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        if s.srt is None or not _srt_lossy(s, spec):
            return None
        loss = max(s.srt.loss_ratio or 0.0, s.srt.retransmit_ratio or 0.0)
        return Finding(loss, spec.max_srt_loss_ratio, "ratio",
                       f"{loss:.1%} of SRT packets lost or retransmitted")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        assert s.srt is not None
        related = _ingest_related(s)
        if s.srt.dropped:
            return Diagnosis(
                f"packets arrive too late even for the SRT latency ({s.srt.latency_ms} ms): "
                "they are dropped and viewers see corrupt frames",
                f"raise the SRT latency to at least 4x the round-trip time "
                f"({4 * s.srt.rtt_ms:.0f} ms) or lower the bitrate",
                related,
            )
        return Diagnosis(
            "the contribution path loses packets; retransmissions still recover them but "
            "cost uplink bandwidth",
            "use a better uplink (wired, not Wi-Fi), or lower the bitrate to leave room "
            "for retransmissions",
            related,
        )


class SrtRtt:
    name = "srt_rtt"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        if s.srt is None or s.srt.rtt_ms <= spec.max_srt_rtt_ms:
            return None
        return Finding(s.srt.rtt_ms, spec.max_srt_rtt_ms, "ms",
                       f"SRT round-trip time {s.srt.rtt_ms:.0f} ms")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        assert s.srt is not None
        return Diagnosis(
            "the encoder is far from this node, or its uplink queues (bufferbloat)",
            f"publish to a closer node, and keep the SRT latency at least 4x the RTT "
            f"(now {s.srt.latency_ms} ms for {s.srt.rtt_ms:.0f} ms RTT)",
            _ingest_related(s),
        )


# Encoder --------------------------------------------------------------------------------


class EncoderSlow:
    """golive's transcoder could not keep up and runs a cheaper ladder (or none is left)."""

    name = "encoder_slow"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        encoder = s.encoder
        if encoder is None or (encoder.degrade_step == 0 and not encoder.exhausted):
            return None
        speed = encoder.speed if encoder.speed is not None else 0.0
        where = "at its cheapest step" if encoder.exhausted else \
            f"degraded to step {encoder.degrade_step}"
        return Finding(speed, spec.min_encode_speed, "x",
                       f"the encoder ran at {speed:.2f}x real time; {where}")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _ingest_related(s)
        assert s.encoder is not None
        related["renditions"] = list(s.encoder.renditions)
        related["restarts"] = s.encoder.restarts
        return Diagnosis(
            "this machine is overloaded: golive's encoder cannot encode the ladder in "
            "real time, so latency grows unless renditions are given up",
            "lower the ladder (fewer or smaller renditions, a faster x264 preset in the "
            "stream's profile), move streams to another node, or encode on a GPU",
            related,
        )


class TranscoderRestarts:
    """golive's encoder keeps restarting: each restart is a discontinuity viewers see."""

    name = "transcoder_restarts"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        count = len(s.restarts)
        if count < spec.max_transcoder_restarts:
            return None
        minutes = spec.transcoder_restarts_seconds / 60
        return Finding(count, spec.max_transcoder_restarts, "restarts",
                       f"the encoder restarted {count} times in {minutes:g} min")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _ingest_related(s)
        kinds: dict[str, list[str]] = {}
        for reason in s.restarts:
            kinds.setdefault(_restart_kind(reason), []).append(reason)
        related["restart_reasons"] = {kind: len(reasons) for kind, reasons in kinds.items()}
        related["last_reason"] = s.restarts[-1] if s.restarts else None
        seen = ", ".join(f"{_RESTART_CAUSES[kind][0]} x{len(reasons)}"
                         for kind, reasons in sorted(kinds.items(), key=lambda k: -len(k[1])))
        top = max(kinds, key=lambda kind: len(kinds[kind])) if kinds else "crash"
        what, cause, fix = _RESTART_CAUSES[top]
        if top == "crash" and kinds.get("crash"):
            cause += f" (last: {kinds['crash'][-1]})"
        return Diagnosis(f"{cause}; restarts seen: {seen or what}", fix, related)


_RESTART_CAUSES: dict[str, tuple[str, str, str]] = {
    "starvation": (
        "starvation",
        "the machine is starved of CPU: the encoder fell below real time, and each "
        "cheaper (or, once it kept up, better) preset step restarts it",
        "give the node more CPU or fewer streams, or lower the stream profile's ladder "
        "(a faster x264 preset, fewer renditions) so it keeps up without stepping"),
    "nvenc": (
        "nvenc failure",
        "the GPU encoder (NVENC) fails: no free encoder session on the card, or driver trouble",
        "check nvidia-smi for the encoder sessions in use (consumer cards allow only a few) "
        "and the driver; golive falls back to libx264 after repeated failures"),
    "input": (
        "input change",
        "the publisher's stream changed under the encoder: its timestamps jumped back (the "
        "publisher restarted its output or switched sources without reconnecting)",
        "keep the encoder's output running (OBS: do not stop and start the stream output "
        "to change scenes); a publisher that must restart should reconnect"),
    "killed": (
        "killed",
        "ffmpeg was killed from outside (signal 9 is most often the kernel's "
        "out-of-memory killer)",
        "check the node's memory (dmesg for oom-kill) and what else runs on it"),
    "crash": (
        "ffmpeg failure",
        "ffmpeg exits with an error on this input",
        "read the reason ffmpeg gave in the stream's transcoder_restarted events; a "
        "publisher sending a codec or format change mid-stream is the usual one"),
}


def _restart_kind(reason: str) -> str:
    text = reason.lower()
    if text.startswith(("slow_encode", "encode_recovered")):
        return "starvation"
    if "nvenc" in text or "cuda" in text or "openencodesession" in text:
        return "nvenc"
    if "timestamps went back" in text or text == "reconnect":
        return "input"
    if "killed by signal" in text:
        return "killed"
    return "crash"


# Sound and picture ----------------------------------------------------------------------


def _levels_related(s: StreamSignals) -> dict[str, Any]:
    related = _ingest_related(s)
    lv = s.levels
    if lv is not None:
        related.update({
            "audio_rms_dbfs": _r(lv.audio_rms_dbfs, 1),
            "audio_peak_dbfs": _r(lv.audio_peak_dbfs, 1),
            "clipping_ratio": _r(lv.clipping_ratio, 3),
            "silent_s": _r(lv.silent_s, 1),
            "black_s": _r(lv.black_s, 1),
            "luma_high": _r(lv.luma_high, 1),
        })
    return related


_DIGITAL_SILENCE_DBFS = -110.0  # at or under this the encoder sends (near) zeros


class AudioSilent:
    """The stream has an audio track, and it carries no sound."""

    name = "audio_silent"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        lv = s.levels
        if lv is None or lv.silent_s is None or lv.silent_s < spec.audio_silence_seconds:
            return None
        if s.audio_gap_s is not None and s.audio_gap_s >= spec.audio_gap_seconds:
            return None  # no sound comes at all (`audio_missing`): the silence is golive's fill
        level = f" (level {lv.audio_rms_dbfs:.0f} dBFS" if lv.audio_rms_dbfs is not None else " ("
        return Finding(lv.silent_s, spec.audio_silence_seconds, "s",
                       f"the audio track has been silent for {lv.silent_s:.1f} s{level}, "
                       f"under {spec.audio_silence_dbfs:.0f} dBFS)")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _levels_related(s)
        rms = s.levels.audio_rms_dbfs if s.levels is not None else None
        if rms is not None and rms > _DIGITAL_SILENCE_DBFS:
            return Diagnosis(
                f"the audio carries only a faint signal ({rms:.0f} dBFS): the wrong input "
                "(an unused microphone or line input picks up noise) or its gain is turned "
                "all the way down",
                "pick the input that is in use (OBS: Settings → Audio → Mic/Auxiliary Audio; "
                "check the meters in the Audio Mixer move when someone speaks) and raise "
                "its gain",
                related)
        return Diagnosis(
            "the encoder sends digital silence: the microphone is muted, or the audio "
            "source is wrong or has no signal (OBS: a muted or wrong source in the Audio "
            "Mixer; ffmpeg: an input with no signal, such as anullsrc or a disconnected "
            "device)",
            "unmute the source in OBS's Audio Mixer and check its meter moves, or select "
            "the right device (Settings → Audio); with ffmpeg, map the input that carries "
            "the sound (-map) and check it with ffplay",
            related)


class AudioClipping:
    """The audio's peaks sit at full scale: it is distorted."""

    name = "audio_clipping"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        lv = s.levels
        if lv is None or lv.clipping_ratio is None or lv.clipping_ratio < spec.audio_clip_ratio:
            return None
        peak = f" (peak {lv.audio_peak_dbfs:+.1f} dBFS)" if lv.audio_peak_dbfs is not None else ""
        return Finding(lv.clipping_ratio, spec.audio_clip_ratio, "ratio",
                       f"{lv.clipping_ratio:.0%} of the audio peaks at full scale{peak} over "
                       f"{spec.audio_clipping_seconds:.0f} s")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _levels_related(s)
        peak = s.levels.audio_peak_dbfs if s.levels is not None else None
        over = peak is not None and peak > 0.5
        cause = ("the audio is amplified past full scale before the encoder: the gain is "
                 f"too high ({peak:+.1f} dBFS peaks) and the sound is clipped, which "
                 "viewers hear as distortion") if over else (
                 "the audio is too hot: its peaks sit at full scale, so loud passages are "
                 "clipped and distorted")
        return Diagnosis(
            cause,
            "lower the gain (OBS: the source's fader in the Audio Mixer, or Filters → Gain; "
            "ffmpeg: a smaller volume=) until peaks stay under -6 dBFS, and add a limiter "
            "at -1 dBFS (OBS: Filters → Limiter; ffmpeg: -af alimiter=limit=0.89)",
            related)


class VideoBlack:
    """The picture has been black for a while."""

    name = "video_black"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        lv = s.levels
        if lv is None or lv.black_s is None or lv.black_s < spec.video_black_seconds:
            return None
        return Finding(lv.black_s, spec.video_black_seconds, "s",
                       f"the picture has been black for {lv.black_s:.1f} s")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _levels_related(s)
        lv = s.levels
        silent = lv is not None and lv.silent_s is not None and lv.silent_s > 0
        if silent:
            cause = ("the encoder streams an empty scene: the picture is black and the "
                     "sound silent (a scene with no sources, or every capture device lost)")
        else:
            cause = ("the encoder's scene shows nothing: it was switched to an empty scene, "
                     "or its video source was lost (a camera or capture card unplugged or "
                     "taken by another program, a window capture of a closed window)")
        return Diagnosis(
            cause,
            "switch the encoder to the program scene and check its video source (OBS: a "
            "Video Capture Device that shows black needs its device re-selected, or "
            "Deactivate/Activate; check the camera's or capture card's cable and power)",
            related)


class ViewerLatencyDrift:
    """Viewers fall further and further behind live."""

    name = "viewer_latency_drift"

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        v = s.viewers
        if v is None:
            return None
        limit = spec.max_latency_growth_seconds
        drifting = [lag for lag in v.drifting if lag.growth_s > limit]
        if not drifting:
            return None
        worst = drifting[0]
        return Finding(worst.growth_s, limit, "s",
                       f"the delay keeps growing: {len(drifting)} view(s) fell up to "
                       f"{worst.growth_s:.1f} s further behind live in the last "
                       f"{v.window_s:.0f} s (now {worst.latency_s:.1f} s)")

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _viewer_related(s)
        v = s.viewers
        lags = [lag for lag in (v.drifting if v is not None else ())
                if lag.growth_s > finding.threshold]
        related["drifting"] = [
            {"view_id": b.view_id, "player": b.player, "browser": b.browser,
             "latency_s": _r(b.latency_s, 2), "growth_s": _r(b.growth_s, 2)} for b in lags]
        encoder = s.encoder
        speed = encoder.live_speed if encoder is not None else None
        related["encoder_live_speed"] = _r(speed)
        if (speed is not None and speed < 1.0 - SLACK) or _encoder_trouble(s) is not None:
            shown = f"{speed:.2f}x" if speed is not None else "under 1x"
            return Diagnosis(
                f"the encoder is slower than real time ({shown}): the delay builds up "
                "before the origin, so every viewer falls further behind",
                _ENCODER_FIX, related)
        upstream = _uplink_trouble(s)
        if upstream is not None:
            return Diagnosis(f"the delay builds up before golive: {upstream}", _UPLINK_FIX,
                             related)
        groups: dict[str, int] = {}
        for lag in lags:
            key = f"{lag.player}/{lag.browser}"
            groups[key] = groups.get(key, 0) + 1
        which = ", ".join(f"{key} x{n}" for key, n in sorted(groups.items(),
                                                             key=lambda g: (-g[1], g[0])))
        views = ", ".join(f"{b.view_id} (+{b.growth_s:.1f} s, now {b.latency_s:.1f} s)"
                          for b in lags[:3])
        speed_text = f" ({speed:.2f}x)" if speed is not None else ""
        return Diagnosis(
            f"players drifting from the live edge while the encoder keeps real time"
            f"{speed_text}: {which}; {views}",
            "let those players catch up: hls.js lowLatencyMode with maxLiveSyncPlaybackRate "
            "above 1 (e.g. 1.1) and liveSyncDuration near the target latency, or seek to the "
            "live edge after a stall; a tab in the background or a slow device also falls "
            "behind",
            related)


# Viewers ------------------------------------------------------------------------------

# Upstream conditions a viewer-side diagnosis looks for. `diagnose` has no thresholds of
# its own, so these are the defaults of `AlertSpec` (the ingest rules alert on the
# profile's own values).
_SLOW_INGEST = 0.9
_LOSSY_SRT = 0.02
_STALL_S = 2.0
_GOOD_KEYFRAMES_S = 2.0 * (1 + SLACK)
_CACHE_CHECKS = (
    "check that the playlists viewers get are fresh: a CDN or proxy that caches .m3u8 "
    "past a part duration (Cache-Control on playlists should be max-age=1 or less, "
    "and blocking-reload requests with _HLS_msn/_HLS_part must not be cached by path "
    "alone) serves stale playlists, so players run out of media; segments and parts "
    "may be cached for long (immutable)"
)


def _viewer_related(s: StreamSignals) -> dict[str, Any]:
    related = _ingest_related(s)
    v = s.viewers
    if v is None:
        return related
    summary = v.summary
    related.update({
        "views": summary.views,
        "window_s": round(v.window_s),
        "rebuffer_percentage": _r(summary.rebuffer_percentage, 2),
        "startup_time_p95_s": _r(summary.startup_time_p95_s, 2),
        "live_latency_p95_s": _r(summary.live_latency_p95_s, 2),
        "playback_failure_percentage": _r(summary.playback_failure_percentage, 2),
        "rebuffering": [{"player": g.player, "browser": g.browser, "os": g.os,
                         "rebuffering_views": g.rebuffering_views, "views": g.views,
                         "rebuffer_percentage": _r(g.rebuffer_percentage, 2)}
                        for g in v.rebuffering],
        "by_player": {name: {"views": g.views,
                             "rebuffer_percentage": _r(g.rebuffer_percentage, 2),
                             "startup_time_p95_s": _r(g.startup_time_p95_s, 2),
                             "live_latency_p95_s": _r(g.live_latency_p95_s, 2)}
                      for name, g in v.by_player.items()},
    })
    return related


def _uplink_trouble(s: StreamSignals) -> str | None:
    """What is wrong with the ingest, in words; None when it is healthy."""
    if s.media_gap_s is not None and s.media_gap_s >= _STALL_S:
        return f"the ingest stalled (no media for {s.media_gap_s:.1f} s)"
    if s.srt is not None:
        lost = max(s.srt.loss_ratio or 0.0, s.srt.retransmit_ratio or 0.0)
        if lost > _LOSSY_SRT:
            return f"SRT retransmits climb ({lost:.1%} of packets lost or retransmitted)"
    if s.ingest_speed is not None and s.ingest_speed < _SLOW_INGEST:
        return f"the ingest arrives at {s.ingest_speed:.2f}x real time"
    return None


def _encoder_trouble(s: StreamSignals) -> str | None:
    encoder = s.encoder
    if encoder is None or (encoder.degrade_step == 0 and not encoder.exhausted):
        return None
    speed = f" at {encoder.speed:.2f}x real time" if encoder.speed is not None else ""
    return f"golive's encoder runs slower than real time{speed}"


_UPLINK_FIX = ("lower the encoder's bitrate or resolution so the uplink can carry it, or "
               "contribute over SRT (it recovers losses); check the encoder's upload speed")
_ENCODER_FIX = ("lower the ladder (fewer or smaller renditions, a faster preset in the "
                "stream's profile), move streams to another node, or encode on a GPU")


def _worst_player(s: StreamSignals, metric: str) -> str:
    """", worst on hls.js (3.2)" when one player is clearly the worst of several."""
    if s.viewers is None or len(s.viewers.by_player) < 2:
        return ""
    values = {name: getattr(g, metric) for name, g in s.viewers.by_player.items()
              if getattr(g, metric) is not None}
    if not values:
        return ""
    name = max(sorted(values), key=lambda n: values[n])
    return f"; worst on {name} ({values[name]:.2f})"


def _who_rebuffers(s: StreamSignals) -> str:
    """"; rebuffering: 3 of 4 hls.js views on chrome/linux (12.0 % rebuffering), ..." """
    if s.viewers is None or not s.viewers.rebuffering:
        return ""
    groups = s.viewers.rebuffering
    shown = "; ".join(g.describe() for g in groups[:_GROUPS_NAMED])
    more = len(groups) - _GROUPS_NAMED
    return f"; rebuffering: {shown}{f' and {more} more kinds of viewer' if more > 0 else ''}"


_GROUPS_NAMED = 3


class _ViewerRule:
    """A viewer-side rule: the window's `metric` over the profile's SLO `target`."""

    name: str
    metric: str  # the QoeSummary field
    target: str  # the SloSpec field
    unit: str
    label: str

    def evaluate(self, s: StreamSignals, spec: AlertSpec) -> Finding | None:
        v = s.viewers
        if v is None:
            return None
        value = getattr(v.summary, self.metric)
        threshold = float(getattr(v.slo, self.target))
        if value is None or value <= threshold:
            return None
        unit = " %" if self.unit == "%" else f" {self.unit}"
        views = f"{v.summary.views} view{'' if v.summary.views == 1 else 's'}"
        return Finding(float(value), threshold, self.unit,
                       f"{self.label} {value:.2f}{unit} over {views} in the "
                       f"last {v.window_s:.0f} s (SLO {threshold:g}{unit})")


class Rebuffering(_ViewerRule):
    """Viewers spend more of their watch time rebuffering than the SLO allows."""

    name = "rebuffer"
    metric = "rebuffer_percentage"
    target = "rebuffer_percentage"
    unit = "%"
    label = "viewers rebuffer"

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _viewer_related(s)
        upstream = _uplink_trouble(s)
        if upstream is not None:
            return Diagnosis(
                f"the uplink cannot carry the bitrate: viewers rebuffer because {upstream}, "
                "so the origin has no new media to give them",
                _UPLINK_FIX, related)
        encoder = _encoder_trouble(s)
        if encoder is not None:
            return Diagnosis(
                f"{encoder}: parts and segments come late, so players run dry", _ENCODER_FIX,
                related)
        return Diagnosis(
            "player or cache: the ingest and the encoder are healthy, so the media reaches "
            "the origin in time and is lost on the way to the players (a cache serving "
            f"stale playlists, or the viewers' own networks){_worst_player(s, 'rebuffer_percentage')}"
            f"{_who_rebuffers(s)}",
            f"{_CACHE_CHECKS}; compare the viewers' players and networks (group the QoE by "
            "player and browser), and give the player a larger buffer (hls.js "
            "liveSyncDurationCount / lowLatencyMode off) if only some viewers suffer",
            related)


class StartupSlow(_ViewerRule):
    """Players take longer than the SLO to show the first frame."""

    name = "startup_time"
    metric = "startup_time_p95_s"
    target = "startup_p95_seconds"
    unit = "s"
    label = "video startup p95"

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _viewer_related(s)
        upstream = _uplink_trouble(s)
        if upstream is not None:
            return Diagnosis(
                f"players wait for media the origin does not have yet: {upstream}",
                _UPLINK_FIX, related)
        gop = s.ingest.keyframe_interval_s
        if gop is not None and gop > _GOOD_KEYFRAMES_S:
            return Diagnosis(
                f"the encoder sends a keyframe only every {gop:.1f} s: a player can start "
                "only at a keyframe, so it waits for the next one",
                f"set the keyframe interval to 1 or 2 s in the encoder ({_OBS_KEYFRAMES})",
                related)
        encoder = _encoder_trouble(s)
        if encoder is not None:
            return Diagnosis(f"{encoder}: the first parts come late", _ENCODER_FIX, related)
        return Diagnosis(
            "player or cache: the stream is healthy upstream, so the time goes in the "
            "player's startup (playlist and first segment requests through a CDN or a slow "
            f"viewer network){_worst_player(s, 'startup_time_p95_s')}",
            f"{_CACHE_CHECKS}; check the time to first byte of the master and media "
            "playlists from the viewers' side, and that the player starts at the live edge "
            "with the lowest rendition first",
            related)


class LatencyHigh(_ViewerRule):
    """Players are further behind live than the SLO allows."""

    name = "live_latency"
    metric = "live_latency_p95_s"
    target = "latency_p95_seconds"
    unit = "s"
    label = "live latency p95"

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _viewer_related(s)
        v = s.viewers
        behind = v.behind if v is not None else ()
        related["behind"] = [{"view_id": b.view_id, "player": b.player, "browser": b.browser,
                              "latency_s": _r(b.latency_s, 2), "growth_s": _r(b.growth_s, 2)}
                             for b in behind]
        encoder = _encoder_trouble(s)
        if encoder is not None:
            return Diagnosis(
                f"{encoder}: every viewer falls further behind live as the delay builds up",
                _ENCODER_FIX, related)
        upstream = _uplink_trouble(s)
        if upstream is not None:
            return Diagnosis(
                f"the delay builds up before golive: {upstream}", _UPLINK_FIX, related)
        drifting = [b for b in behind if b.growth_s > 0 and b.latency_s > finding.threshold]
        if drifting:
            names = ", ".join(f"{b.view_id} ({b.player}/{b.browser}, {b.latency_s:.1f} s, "
                              f"+{b.growth_s:.1f} s)" for b in drifting[:3])
            cause = (f"players drifting from the live edge while the encoder keeps real "
                     f"time: {names}")
        else:
            cause = ("players sit far from the live edge while the encoder keeps real time "
                     "(they started behind, or paused and resumed)")
        return Diagnosis(
            cause,
            "let the players catch up: hls.js lowLatencyMode with maxLiveSyncPlaybackRate "
            "above 1 (e.g. 1.1) and liveSyncDuration near the target, or seek to the live "
            "edge after a stall; a CDN caching playlists too long also holds players back",
            related)


# hls.js error details (and the media element's) grouped by what they point at.
_ERROR_CAUSES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("manifestLoadError", "manifestLoadTimeOut", "manifestParsingError", "levelLoadError",
      "levelLoadTimeOut", "levelEmptyError"),
     "players cannot load the playlists",
     "check that the playback URL answers (the stream's playback policy: signed tokens "
     "expired or restrictions refusing viewers), and the CDN's or proxy's errors for .m3u8"),
    (("fragLoadError", "fragLoadTimeOut", "keyLoadError", "keyLoadTimeOut"),
     "players cannot load segments or parts",
     "check the CDN's or proxy's errors and timeouts for segments, and that the origin "
     "is reachable from it; a cache serving playlists that name expired segments shows "
     "up here too"),
    (("bufferAppendError", "bufferAddCodecError", "bufferIncompatibleCodecsError",
      "manifestIncompatibleCodecsError", "fragParsingError", "mediaError",
      "MEDIA_ERR_DECODE", "MEDIA_ERR_SRC_NOT_SUPPORTED"),
     "the browsers cannot decode the stream",
     "check the codecs of the stream's profile (H.264 High at a common level, AAC-LC "
     "play everywhere; HEVC does not) and of a passthrough rendition's source"),
)


class PlaybackFailures(_ViewerRule):
    """More views end in a fatal error than the SLO allows."""

    name = "playback_failures"
    metric = "playback_failure_percentage"
    target = "playback_failure_percentage"
    unit = "%"
    label = "playback failures"

    def diagnose(self, finding: Finding, s: StreamSignals) -> Diagnosis:
        related = _viewer_related(s)
        codes = s.viewers.error_codes if s.viewers is not None else ()
        related["error_codes"] = dict(codes)
        seen = ", ".join(f"{code} x{count}" for code, count in codes[:3])
        if not codes:
            return Diagnosis(
                "views fail without naming an error code", _CACHE_CHECKS, related)
        top = codes[0][0]
        for names, cause, fix in _ERROR_CAUSES:
            if top in names:
                return Diagnosis(f"{cause} (errors seen most: {seen})", fix, related)
        if s.viewers is not None and len(s.viewers.by_player) == 1 and "whep" in \
                s.viewers.by_player:
            return Diagnosis(
                f"WebRTC playback fails (errors seen most: {seen})",
                "check that the node's WebRTC ports (UDP) are reachable from the viewers "
                "and that a TURN server is configured for viewers behind strict NATs",
                related)
        return Diagnosis(
            f"players fail with errors golive has no diagnosis for (seen most: {seen})",
            "look the error codes up in the player's documentation (hls.js ErrorDetails) "
            "and check the browsers and players they come from (group the QoE by browser)",
            related)


VIEWER_RULES: tuple[Rule, ...] = (Rebuffering(), StartupSlow(), LatencyHigh(),
                                  PlaybackFailures())


RULES: tuple[Rule, ...] = (
    IngestStalled(), IngestSlow(), IngestBitrate(), KeyframeInterval(), AvDrift(),
    AudioMissing(), AUDIO_UNSUPPORTED, VIDEO_UNSUPPORTED, Reconnects(), SrtLoss(), SrtRtt(),
    EncoderSlow(), *VIEWER_RULES, TranscoderRestarts(), AudioSilent(), AudioClipping(),
    VideoBlack(), ViewerLatencyDrift(),
)
