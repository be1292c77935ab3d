"""Preflight measurements and verdict (control plane, sans-IO).

`PreflightCapture` sees every tag a preflight publisher sends (with its arrival time)
and keeps what the checks need: frame and keyframe timestamps, bytes per track, the
codec configuration, the audio timeline against the video's. `judge` turns that, the
loudness ffmpeg's ebur128 filter measured (`parse_ebur128`), the link's figures (SRT
statistics or the TCP round trip), the failover drill onto the backup publisher
(`FailoverReport`) and the test pushes to the stream's destinations
(`DestinationReport`), and the stream's profile into checks, each with its measured
value, threshold and fix, and a go / no-go. Nothing here reads a clock or runs a process.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any, Literal

from golive.formats import (
    AudioInfo,
    CodecError,
    MediaTag,
    TagType,
    VideoInfo,
    describe_audio,
    describe_video,
    encode_header,
    encode_tag,
    parse_audio_tag,
    parse_video_tag,
)
from golive.media import LadderError, SourceInfo, StreamProfile, plan_ladder
from golive.stream import IngestMeter

CheckStatus = Literal["pass", "warn", "fail"]
MAX_FRAMES = 120 * 300  # 5 minutes at 120 fps: timestamps kept for the frame-rate check
IRREGULAR_FRAME_SHARE = 0.02  # intervals more than 50% off the median, at most
REALTIME_RATIO = 0.95  # media seconds per second of arrival, at least
MAX_KEYFRAME_INTERVAL = 2.0  # seconds; players start and switch at keyframes


@dataclass(frozen=True)
class Loudness:
    """EBU R128 integrated loudness (LUFS) and true peak (dBTP) of the captured audio."""

    integrated_lufs: float
    true_peak_dbtp: float


@dataclass(frozen=True)
class SrtStats:
    """An SRT publisher's link, as the SRT receiver measured it over the session."""

    rtt_ms: float
    latency_ms: int  # the negotiated receive latency
    packets_received: int
    packets_lost: int  # gaps noticed (each missing packet once); most are recovered
    retransmitted: int
    dropped: int  # never recovered in time: lost on the air
    unsupported_video: str | None = None
    """The programme's video golive cannot take, named (`TsDemuxer.unsupported_video`):
    the publisher's picture never reaches the capture."""
    unsupported_audio: str | None = None  # likewise its sound


@dataclass(frozen=True)
class TcpStats:
    """An RTMP publisher's TCP connection, as the kernel measured it (Linux TCP_INFO)."""

    rtt_ms: float
    rtt_var_ms: float


TCP_RTT_WARN_MS, TCP_RTT_FAIL_MS = 150.0, 400.0  # a lost packet stalls TCP for a round trip

DECODED_SHARE = 0.95  # of the drill's frames, at least


@dataclass(frozen=True)
class FailoverReport:
    """The backup publisher and the failover drill onto it (`golive.ops.failover_drill`)."""

    backup: PreflightCapture | None  # None: no backup publisher connected
    switched: bool
    returned: bool
    backup_seconds: float  # of the backup's media the programme carried
    frames_written: int  # video frames in the drill's programme
    frames_decoded: int  # of them, as ffmpeg decoded the programme
    decode_error: str | None  # ffmpeg's first complaint while decoding
    reason: str | None  # why the drill did not finish


@dataclass(frozen=True)
class DestinationReport:
    """One destination's test push: None `error` when the target took the media."""

    name: str
    url: str  # redacted: the key masked
    error: str | None
    seconds: float  # of media pushed


SRT_LOSS_WARN, SRT_LOSS_FAIL = 0.01, 0.03  # share of packets the link loses
SRT_LATENCY_RTTS = 4  # SRT needs a receive latency of several round trips to recover


@dataclass(frozen=True)
class Check:
    name: str
    status: CheckStatus
    measured: str
    threshold: str
    fix: str | None = None


@dataclass(frozen=True)
class PreflightVerdict:
    go: bool
    checks: tuple[Check, ...]
    media_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": "go" if self.go else "no_go",
                "media_seconds": round(self.media_seconds, 3),
                "checks": [asdict(c) for c in self.checks]}


@dataclass
class PreflightCapture:
    """What a preflight publisher sent: bounded (`max_bytes` of FLV kept for ffmpeg)."""

    max_bytes: int
    keep_flv: bool = True  # False: only measured (a backup publisher's capture)
    flv: bytearray = field(default_factory=bytearray)
    video: VideoInfo | None = None
    audio: AudioInfo | None = None
    frame_ms: list[int] = field(default_factory=list)
    keyframe_ms: list[int] = field(default_factory=list)
    video_bytes: int = 0
    audio_bytes: int = 0
    first_media_ms: int | None = None
    last_media_ms: int | None = None
    first_arrival: float | None = None
    last_arrival: float | None = None
    full: bool = False  # max_bytes reached: the rest was not kept
    malformed: int = 0
    meter: IngestMeter = field(default_factory=IngestMeter)  # for the A/V sync

    def observe(self, tag: MediaTag, now: float) -> None:
        """One tag as it arrived; never raises for a publisher's bytes."""
        if self.full:
            return
        if self.keep_flv:
            encoded = encode_tag(tag)
            if not self.flv:
                self.flv += encode_header(audio=True, video=True)
            if len(self.flv) + len(encoded) > self.max_bytes:
                self.full = True
                return
            self.flv += encoded
        self.meter.observe(tag, now)
        try:
            if tag.type == TagType.VIDEO:
                self._video(tag)
            elif tag.type == TagType.AUDIO:
                self._audio(tag)
            else:
                return
        except CodecError:
            self.malformed += 1
            return
        if self.first_arrival is None:
            self.first_arrival = now
        self.last_arrival = now
        if self.first_media_ms is None:
            self.first_media_ms = tag.timestamp
        self.last_media_ms = max(self.last_media_ms or tag.timestamp, tag.timestamp)

    def _video(self, tag: MediaTag) -> None:
        info = parse_video_tag(tag.body)
        if info.is_sequence_header:
            self.video = describe_video(info) or self.video
            return
        if not info.is_frame:
            return
        self.video_bytes += len(tag.body)
        if len(self.frame_ms) < MAX_FRAMES:
            self.frame_ms.append(tag.timestamp)
        if info.is_keyframe:
            self.keyframe_ms.append(tag.timestamp)

    def _audio(self, tag: MediaTag) -> None:
        info = parse_audio_tag(tag.body)
        described = describe_audio(info)
        if described is not None and described.sample_rate:
            self.audio = described
        if info.is_frame:
            self.audio_bytes += len(tag.body)

    @property
    def media_seconds(self) -> float:
        if self.first_media_ms is None or self.last_media_ms is None:
            return 0.0
        return (self.last_media_ms - self.first_media_ms) / 1000


_EBUR128_I = re.compile(r"Integrated loudness:\s*\n\s*I:\s*(-?[0-9.]+|-inf)\s*LUFS")
_EBUR128_PEAK = re.compile(r"True peak:\s*\n\s*Peak:\s*(-?[0-9.]+|-inf)\s*dBFS")


def parse_ebur128(stderr: str) -> Loudness | None:
    """The summary ffmpeg's `ebur128=peak=true` filter prints at the end (None: none)."""
    summary = stderr.rpartition("Summary:")[2]
    i, peak = _EBUR128_I.search(summary), _EBUR128_PEAK.search(summary)
    if i is None or peak is None:
        return None

    def number(text: str) -> float:
        return -120.0 if text == "-inf" else float(text)

    return Loudness(number(i.group(1)), number(peak.group(1)))


def judge(capture: PreflightCapture, profile: StreamProfile, loudness: Loudness | None,
          *, latency_mode: str, srt: SrtStats | None = None, tcp: TcpStats | None = None,
          failover: FailoverReport | None = None,
          destinations: Sequence[DestinationReport] = ()) -> PreflightVerdict:
    """Every check on what was captured, against the profile; go when none fails. `srt`:
    the link's figures when the publisher came over SRT, `tcp` over RTMP; `failover`:
    the backup and the drill (a session always has one; None leaves both checks out);
    `destinations`: one check each."""
    checks = [
        *(_srt(srt) if srt is not None else []),
        *([_tcp(tcp)] if tcp is not None else []),
        _video_codec(capture, profile, latency_mode, srt.unsupported_video if srt else None),
        _keyframes(capture, profile, latency_mode),
        _frame_rate(capture),
        _resolution(capture, profile),
        _bitrate(capture, profile),
        _realtime(capture),
        *_audio(capture, profile, loudness, srt.unsupported_audio if srt else None),
        _av_sync(capture, profile),
        *(_failover(failover, profile) if failover is not None else []),
        *(_destination(d) for d in destinations),
        *_required_destinations(profile, destinations),
        _owner(profile),
    ]
    return PreflightVerdict(go=all(c.status != "fail" for c in checks), checks=tuple(checks),
                            media_seconds=capture.media_seconds)


def _srt(stats: SrtStats) -> list[Check]:
    need = SRT_LATENCY_RTTS * stats.rtt_ms
    latency_ok = stats.latency_ms >= need
    sent = stats.packets_received + stats.packets_lost
    loss = stats.packets_lost / sent if sent else 0.0
    status: CheckStatus = ("pass" if loss <= SRT_LOSS_WARN else
                           "warn" if loss <= SRT_LOSS_FAIL else "fail")
    if stats.dropped:
        status = "fail"
    return [
        Check("srt_round_trip", "pass" if latency_ok else "fail",
              f"{stats.rtt_ms:.0f} ms RTT, latency {stats.latency_ms} ms",
              f"latency >= {SRT_LATENCY_RTTS} x RTT",
              None if latency_ok else f"raise the SRT latency to at least {need:.0f} ms "
              "(latency in the encoder's SRT settings)"),
        Check("srt_loss", status,
              f"{loss:.1%} lost, {stats.retransmitted} retransmitted, {stats.dropped} dropped",
              f"<= {SRT_LOSS_WARN:.0%} lost (no-go above {SRT_LOSS_FAIL:.0%}), none dropped",
              None if status == "pass" else "the contribution link loses packets: use a "
              "wired or better uplink, lower the bitrate, or raise the SRT latency"),
    ]


def _tcp(stats: TcpStats) -> Check:
    rtt = stats.rtt_ms
    status: CheckStatus = ("pass" if rtt <= TCP_RTT_WARN_MS else
                           "warn" if rtt <= TCP_RTT_FAIL_MS else "fail")
    return Check(
        "tcp_round_trip", status, f"{rtt:.1f} ms RTT (+/- {stats.rtt_var_ms:.1f} ms)",
        f"<= {TCP_RTT_WARN_MS:g} ms (no-go above {TCP_RTT_FAIL_MS:g} ms)",
        None if status == "pass" else "over TCP every lost packet stalls the upload for a "
        "round trip: publish over SRT (srt://HOST:9000?streamid=KEY with a latency of at "
        f"least {4 * rtt:.0f} ms), or from closer to the server")


def _av_sync(capture: PreflightCapture, profile: StreamProfile) -> Check:
    limit = profile.alerts.max_av_drift_seconds
    threshold = f"<= {limit * 1000:.0f} ms apart"
    sync = capture.meter.av_sync()
    if sync is None:
        return Check("av_sync", "fail", "not measured (needs audio and video)", threshold,
                     "send audio and video")
    offset, skew = sync
    worst = offset if abs(offset) > abs(skew) else skew
    ok = abs(worst) <= limit
    late = "late" if worst > 0 else "early"
    return Check(
        "av_sync", "pass" if ok else "fail",
        f"audio {offset * 1000:+.0f} ms at the start, {skew * 1000:+.0f} ms running",
        threshold,
        None if ok else f"the audio is {abs(worst) * 1000:.0f} ms {late}: set the encoder's "
        f"audio sync offset to {-worst * 1000:+.0f} ms (OBS: Edit > Advanced Audio Properties "
        "> Sync Offset) and check both come from one clock")


def _failover(report: FailoverReport, profile: StreamProfile) -> list[Check]:
    backup = report.backup
    if backup is None:
        fix = ("connect the backup encoder with the stream's backup_stream_key (same ingest "
               "URL as the primary) while the preflight runs")
        return [Check("backup_ingest", "fail", "no backup publisher connected",
                      "a backup publisher on the backup key", fix),
                Check("failover", "fail", "not exercised (no backup)",
                      "switched to the backup and back", fix)]
    return [_backup(backup, profile), _drill(report)]


def _backup(backup: PreflightCapture, profile: StreamProfile) -> Check:
    threshold = "H.264 covering the ladder, audio as the profile's"
    video, audio = backup.video, backup.audio
    if video is None or video.width is None or video.height is None or not backup.frame_ms:
        return Check("backup_ingest", "fail", "no decodable video", threshold,
                     "send H.264 video with its sequence header from the backup encoder")
    measured = f"{video.width}x{video.height} {video.codec}"
    policy = profile.audio
    if audio is None or backup.audio_bytes == 0:
        return Check("backup_ingest", "fail", measured + ", no audio", threshold,
                     "send audio from the backup encoder")
    measured += f", {audio.sample_rate} Hz, {audio.channels} ch"
    if (audio.sample_rate, audio.channels) != (policy.sample_rate, policy.channels):
        return Check("backup_ingest", "fail", measured, threshold,
                     f"set the backup encoder's audio to {policy.sample_rate / 1000:g} kHz, "
                     f"{policy.channels} channel(s), like the profile's")
    heights = [r.height for r in profile.renditions if r.height is not None and not r.passthrough]
    top = max(heights, default=0)
    if min(video.width, video.height) < top:
        return Check("backup_ingest", "warn", measured, threshold,
                     f"the backup is smaller than the ladder's top ({top}p): renditions "
                     "above it stop during a failover; send at least that from the backup")
    return Check("backup_ingest", "pass", measured, threshold)


def _drill(report: FailoverReport) -> Check:
    threshold = f"switched to the backup and back, >= {DECODED_SHARE:.0%} of frames decoded"
    fix = ("check the backup encoder sends the same codec with regular keyframes, and that "
           "both encoders stay connected")
    if not report.switched:
        return Check("failover", "fail", f"not switched: {report.reason or 'backup not ready'}",
                     threshold, fix)
    measured = (f"{report.backup_seconds:.1f} s on the backup, "
                f"{report.frames_decoded}/{report.frames_written} frames decoded")
    if not report.returned:
        return Check("failover", "fail", f"{measured}; no return: {report.reason}", threshold,
                     fix)
    decoded_ok = report.frames_decoded >= report.frames_written * DECODED_SHARE
    if report.decode_error is not None or not decoded_ok:
        error = f"; {report.decode_error}" if report.decode_error else ""
        return Check("failover", "fail", measured + error, threshold, fix)
    return Check("failover", "pass", measured + " and back", threshold)


def _destination(report: DestinationReport) -> Check:
    threshold = "accepts a test push with its credentials"
    if report.error is None:
        return Check(f"destination:{report.name}", "pass",
                     f"{report.url}: took {report.seconds:.1f} s", threshold)
    return Check(f"destination:{report.name}", "fail", f"{report.url}: {report.error}",
                 threshold, "check the destination's URL and stream key (or passphrase) "
                 "with the platform it points at")


def _required_destinations(profile: StreamProfile,
                           destinations: Sequence[DestinationReport]) -> list[Check]:
    """Each required destination class of the profile has an enabled destination."""
    checks = []
    for policy in profile.destinations:
        if not policy.required:
            continue
        names = [d.name for d in destinations if profile.destination_class(d.url) is policy]
        checks.append(Check(
            f"destination_class:{policy.name}", "pass" if names else "fail",
            ", ".join(names) if names else "no enabled destination of this class",
            f"required by profile {profile.label}",
            None if names else f"add a destination of class {policy.describe()} to the "
            "stream, or enable it"))
    return checks


NO_VIDEO = "no video"
NO_VIDEO_FIX = "send video (the video_codec check says what arrived)"
SEND_H264 = ("send 8-bit 4:2:0 H.264, High, Main or Baseline (OBS: Settings > Output > "
             "Encoder x264, Profile high; ffmpeg: -c:v libx264 -pix_fmt yuv420p)")
_CODEC_NAMES = {"h264": "H.264", "hevc": "HEVC", "av1": "AV1", "vp9": "VP9", "vp8": "VP8"}


def _video_codec(capture: PreflightCapture, profile: StreamProfile, latency_mode: str,
                 unsupported: str | None) -> Check:
    """The picture's codec, and whether the profile's ladder can use it: fitted to what was
    captured as the broadcast's would be (`plan_ladder`), so a source only a passthrough
    rendition could have carried, and cannot (HEVC, 10-bit or 4:2:2 H.264), is named
    before the event rather than by a `ladder_failed` warning at its start."""
    threshold = f"video the ladder of {profile.label} can use"
    video = capture.video
    if not capture.frame_ms or video is None:
        if unsupported is not None:
            return Check("video_codec", "fail", f"{unsupported}, which golive cannot decode",
                         threshold, "set the encoder's video codec to H.264 (a relayed "
                         "service: transcode it to H.264 before golive)")
        return Check("video_codec", "fail", NO_VIDEO, threshold, "send video")
    measured = " ".join(filter(None, [_CODEC_NAMES.get(video.codec, video.codec),
                                      video.profile]))
    if video.width is None or video.height is None or latency_mode not in ("low", "standard"):
        return Check("video_codec", "pass", measured, threshold)  # resolution says the rest
    span = (capture.frame_ms[-1] - capture.frame_ms[0]) / 1000
    source = SourceInfo(
        width=video.width, height=video.height,
        frame_rate=(len(capture.frame_ms) - 1) / span if span > 0 else 0.0,
        video_codec=video.codec, has_audio=capture.audio_bytes > 0,
        interlaced=bool(video.interlaced), video_profile=video.profile)
    try:
        plan = plan_ladder(profile, source, "low" if latency_mode == "low" else "standard")
    except LadderError as e:
        return Check("video_codec", "fail", measured, threshold, f"{e}: {SEND_H264}")
    wanted = next((r.name for r in profile.renditions if r.passthrough), None)
    if wanted is not None and not any(r.passthrough for r in plan.renditions):
        return Check("video_codec", "warn", measured, threshold,
                     f"the passthrough rendition {wanted!r} will not be made: the source is "
                     f"{source.why_not_copied()}; {SEND_H264}")
    return Check("video_codec", "pass", measured, threshold)


def _keyframes(capture: PreflightCapture, profile: StreamProfile, latency_mode: str) -> Check:
    gop = (profile.latency.low_latency_gop_seconds if latency_mode == "low"
           else profile.latency.standard_gop_seconds)
    passthrough = any(r.passthrough for r in profile.renditions)
    limit = gop if passthrough else max(MAX_KEYFRAME_INTERVAL, gop)
    fix = (f"set the encoder's keyframe interval to {gop:g} s (OBS: Settings > Output > "
           f"Keyframe Interval = {gop:g}; ffmpeg: -g with the frame rate times {gop:g})")
    marks = capture.keyframe_ms
    if capture.first_media_ms is None or not capture.frame_ms:
        return Check("keyframe_interval", "fail", NO_VIDEO, f"<= {limit:g} s", NO_VIDEO_FIX)
    # The stretch before the first keyframe and after the last count too: a 3 s capture
    # with one keyframe at its start has an interval of at least 3 s.
    edges = [capture.frame_ms[0], *marks, capture.frame_ms[-1]]
    longest = max(b - a for a, b in pairwise(edges)) / 1000
    shown = f"{longest:.2f} s" if len(marks) >= 2 else f">= {longest:.2f} s"
    return Check("keyframe_interval", "pass" if longest <= limit * 1.05 else "fail", shown,
                 f"<= {limit:g} s", None if longest <= limit * 1.05 else fix)


def _frame_rate(capture: PreflightCapture) -> Check:
    frames = capture.frame_ms
    if len(frames) < 10:
        return Check("frame_rate_stability", "fail", f"{len(frames)} frames", ">= 10 frames",
                     "send video" if frames else NO_VIDEO_FIX)
    steps = [b - a for a, b in pairwise(frames)]
    median = statistics.median(steps)
    if median <= 0:
        return Check("frame_rate_stability", "fail", "timestamps do not advance",
                     "increasing timestamps", "check the encoder's timestamps")
    irregular = sum(abs(s - median) > median / 2 for s in steps) / len(steps)
    # The mean over the whole capture: millisecond timestamps make single steps 33 or 34.
    fps = len(steps) * 1000 / max(1, frames[-1] - frames[0])
    ok = irregular <= IRREGULAR_FRAME_SHARE
    return Check("frame_rate_stability", "pass" if ok else "fail",
                 f"{fps:.2f} fps, {irregular:.1%} of frame intervals irregular",
                 f"<= {IRREGULAR_FRAME_SHARE:.0%} irregular",
                 None if ok else "use a constant frame rate (OBS: Settings > Video > Common "
                 "FPS Values) and check the machine keeps up (dropped frames)")


def _resolution(capture: PreflightCapture, profile: StreamProfile) -> Check:
    heights = [r.height for r in profile.renditions if r.height is not None and not r.passthrough]
    top = max(heights, default=0)
    video = capture.video
    if not capture.frame_ms:
        return Check("resolution", "fail", NO_VIDEO, f"{top}p ladder", NO_VIDEO_FIX)
    if video is None or video.width is None or video.height is None:
        return Check("resolution", "fail", "unknown (no sequence header)", f"{top}p ladder",
                     "send H.264 with its sequence header")
    short = min(video.width, video.height)
    measured = f"{video.width}x{video.height}"
    if short >= top:
        return Check("resolution", "pass", measured, f">= {top}p (the ladder's top)")
    dropped = sorted(h for h in heights if h > short)
    return Check("resolution", "warn", measured, f">= {top}p (the ladder's top)",
                 f"{', '.join(f'{h}p' for h in dropped)} will not be made: send at least "
                 f"{top}p or use a smaller profile")


def _bitrate(capture: PreflightCapture, profile: StreamProfile) -> Check:
    low, high = profile.input.min_video_bitrate_kbps, profile.input.max_video_bitrate_kbps
    seconds = capture.media_seconds
    threshold = f"{low}-{high} kbit/s"
    if seconds <= 0 or not capture.frame_ms:
        return Check("video_bitrate", "fail", NO_VIDEO, threshold, NO_VIDEO_FIX)
    kbps = capture.video_bytes * 8 / 1000 / seconds
    headroom = f", headroom {high / kbps:.1f}x" if kbps > 0 else ""
    if kbps < low:
        return Check("video_bitrate", "fail", f"{kbps:.0f} kbit/s", threshold,
                     f"raise the encoder's video bitrate to at least {low} kbit/s")
    if kbps > high:
        return Check("video_bitrate", "fail", f"{kbps:.0f} kbit/s", threshold,
                     f"lower the encoder's video bitrate to at most {high} kbit/s")
    return Check("video_bitrate", "pass", f"{kbps:.0f} kbit/s{headroom}", threshold)


def _realtime(capture: PreflightCapture) -> Check:
    """Whether media arrives as fast as it is produced: the uplink carries the bitrate."""
    if capture.first_arrival is None or capture.last_arrival is None:
        return Check("ingest_speed", "fail", "nothing arrived", f">= {REALTIME_RATIO:g}x")
    wall = capture.last_arrival - capture.first_arrival
    if wall <= 0.5:
        return Check("ingest_speed", "warn", "too short to tell", f">= {REALTIME_RATIO:g}x")
    ratio = capture.media_seconds / wall
    ok = ratio >= REALTIME_RATIO
    return Check("ingest_speed", "pass" if ok else "fail",
                 f"{ratio:.2f}x real time", f">= {REALTIME_RATIO:g}x",
                 None if ok else "the uplink does not carry this bitrate: lower the bitrate "
                 "or use a better connection")


def _audio(capture: PreflightCapture, profile: StreamProfile,
           loudness: Loudness | None, unsupported: str | None = None) -> list[Check]:
    policy = profile.audio
    audio = capture.audio
    if audio is None or capture.audio_bytes == 0:
        if unsupported is not None:
            return [Check("audio", "fail", f"{unsupported}, which golive cannot decode",
                          "audio golive decodes", "set the encoder's audio codec to AAC, "
                          f"{'stereo' if policy.channels == 2 else 'mono'}")]
        return [Check("audio", "fail", "no audio", "AAC audio", "send audio")]
    rate, channels = audio.sample_rate, audio.channels
    checks = [
        Check("audio_sample_rate", "pass" if rate == policy.sample_rate else "fail",
              f"{rate} Hz", f"{policy.sample_rate} Hz",
              None if rate == policy.sample_rate else
              f"set the encoder to {policy.sample_rate / 1000:g} kHz (OBS: Settings > Audio > "
              "Sample Rate)"),
        Check("audio_channels", "pass" if channels == policy.channels else "fail",
              str(channels), str(policy.channels),
              None if channels == policy.channels else
              f"send {'stereo' if policy.channels == 2 else 'mono'} (OBS: Settings > Audio > "
              "Channels)"),
    ]
    target, tolerance = policy.loudness_target_lufs, policy.loudness_tolerance_lu
    if loudness is None:
        checks.append(Check("loudness", "fail", "not measured", f"{target:g} LUFS",
                            "the audio could not be decoded"))
        return checks
    off = loudness.integrated_lufs - target
    ok = abs(off) <= tolerance
    checks.append(Check(
        "loudness", "pass" if ok else "fail", f"{loudness.integrated_lufs:.1f} LUFS",
        f"{target:g} +/- {tolerance:g} LU",
        None if ok else f"turn the programme {'down' if off > 0 else 'up'} by {abs(off):.0f} dB"))
    peak_ok = loudness.true_peak_dbtp <= policy.true_peak_max_dbtp
    checks.append(Check(
        "true_peak", "pass" if peak_ok else "fail", f"{loudness.true_peak_dbtp:.1f} dBTP",
        f"<= {policy.true_peak_max_dbtp:g} dBTP",
        None if peak_ok else f"add a limiter at {policy.true_peak_max_dbtp:g} dBTP on the "
        "master, or lower the master"))
    return checks


def _owner(profile: StreamProfile) -> Check:
    if profile.owner:
        return Check("monitoring_owner", "pass", profile.owner, "named")
    return Check("monitoring_owner", "fail", "nobody", "named",
                 f"name who watches the event: set `owner` in a copy of profile {profile.name}")
