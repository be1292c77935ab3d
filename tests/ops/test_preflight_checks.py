"""Preflight's checks on synthetic captures, where every answer is known by construction,
and ffmpeg's ebur128 summary as it prints it."""

from __future__ import annotations

from typing import Any

import pytest

from golive.formats import MediaTag, TagType, parse_avc_config
from golive.media import parse_profile
from golive.ops import (
    DestinationReport,
    FailoverReport,
    Loudness,
    PreflightCapture,
    SrtStats,
    TcpStats,
    judge,
    parse_ebur128,
)

PROFILE_TOML = """name = "event"
version = 1
owner = "ops"
[[renditions]]
name = "360p"
height = 360
video_bitrate_kbps = 700
[input]
min_video_bitrate_kbps = 300
max_video_bitrate_kbps = 3000
"""
PROFILE = parse_profile(PROFILE_TOML)

# An AVC sequence header for 640x360 (x264), and an AAC LC 48 kHz stereo one.
AVC_CONFIG = bytes.fromhex(
    "0164001effe1001a6764001eacd940a02ff9610000030001000003003c8f162d960100066"
    "8ebe3cb22c0")
AAC_48K_STEREO = bytes((0x11, 0x90))
# x264's High 4:2:2 (10-bit) for 640x360, as a contribution encoder sends it.
AVC_422_CONFIG = bytes.fromhex(
    "017a001effe10019677a001eb6cb405017fc4e0220000003002000000781e2c5d401000468ce3c80")
# x265's Main 640x360 over Enhanced RTMP: the sequence start tag's whole body.
HEVC_HEADER = bytes.fromhex(
    "90687663310101600000009000000000003ff000fcfdf8f800000f03200001001840010c01ffff0160000003"
    "0090000003000003003f959409210001002b42010101600000030090000003000003003fa005020171f2e595"
    "952930bc05a020000003002000000303c122000100064401c073c189")


def video_header(codec: str = "h264") -> MediaTag:
    if codec == "hevc":
        return MediaTag(TagType.VIDEO, 0, HEVC_HEADER)
    config = AVC_422_CONFIG if codec == "h264-422" else AVC_CONFIG
    return MediaTag(TagType.VIDEO, 0, bytes((0x17, 0, 0, 0, 0)) + config)


def frame(ms: int, key: bool, size: int, codec: str = "h264") -> MediaTag:
    if codec == "hevc":  # Enhanced RTMP's coded frames, composition time 0
        head = bytes((0x91 if key else 0xA1,)) + b"hvc1" + bytes(3)
        return MediaTag(TagType.VIDEO, ms, head + bytes(size))
    return MediaTag(TagType.VIDEO, ms, bytes((0x17 if key else 0x27, 1, 0, 0, 0)) + bytes(size))


def audio(ms: int) -> list[MediaTag]:
    return [MediaTag(TagType.AUDIO, ms, bytes((0xAF, 1)) + bytes(50))]


def capture(*, seconds: float = 4, fps: float = 30, gop_s: float = 1.0, kbps: float = 800,
            jitter_every: float = 0, realtime: float = 1.0, audio_late_ms: int = 0,
            keep_flv: bool = True, codec: str = "h264", video: bool = True,
            sound: bool = True) -> PreflightCapture:
    """`codec`: h264, h264-422 or hevc; `video`/`sound` False: that track never arrives
    (an SRT programme whose codec the demuxer cannot take)."""
    cap = PreflightCapture(max_bytes=64 << 20, keep_flv=keep_flv)
    if video:
        cap.observe(video_header(codec), 0.0)
    if sound:
        cap.observe(MediaTag(TagType.AUDIO, 0, bytes((0xAF, 0)) + AAC_48K_STEREO), 0.0)
    step = 1000 / fps
    size = int(kbps * 1000 / 8 / fps) - 5
    n = int(seconds * fps) + 1
    for i in range(n):
        ms = round(i * step) + (int(step / 1.5) if jitter_every and i % int(jitter_every) == 1 else 0)
        key = i % round(gop_s * fps) == 0
        if video:
            cap.observe(frame(ms, key, size, codec), ms / 1000 / realtime)
        for tag in (audio(ms + audio_late_ms)
                    if sound and ms + audio_late_ms <= seconds * 1000 else []):
            cap.observe(tag, ms / 1000 / realtime)
    return cap


GOOD = Loudness(integrated_lufs=-22.5, true_peak_dbtp=-3.0)


def statuses(cap: PreflightCapture, loudness: Loudness | None = GOOD) -> dict[str, str]:
    verdict = judge(cap, PROFILE, loudness, latency_mode="low")
    return {c.name: c.status for c in verdict.checks}


def test_a_good_capture_is_a_go() -> None:
    assert parse_avc_config(AVC_CONFIG).describe().height == 360
    verdict = judge(capture(), PROFILE, GOOD, latency_mode="low")
    assert verdict.go, verdict.checks
    assert {c.name: c.status for c in verdict.checks} == {
        "video_codec": "pass", "keyframe_interval": "pass", "frame_rate_stability": "pass", "resolution": "pass",
        "video_bitrate": "pass", "ingest_speed": "pass", "audio_sample_rate": "pass",
        "audio_channels": "pass", "loudness": "pass", "true_peak": "pass",
        "av_sync": "pass", "monitoring_owner": "pass"}
    rate = next(c for c in verdict.checks if c.name == "video_bitrate")
    # 121 frames of 800 kbit/s each over the 4 s between the first and the last
    assert rate.measured == "807 kbit/s, headroom 3.7x"


@pytest.mark.parametrize(("kwargs", "loudness", "failing"), [
    ({"gop_s": 4.0}, GOOD, "keyframe_interval"),
    ({"kbps": 150}, GOOD, "video_bitrate"),
    ({"kbps": 4000}, GOOD, "video_bitrate"),
    ({"jitter_every": 10}, GOOD, "frame_rate_stability"),
    ({"realtime": 0.8}, GOOD, "ingest_speed"),
    ({}, Loudness(-5.0, -0.5), "loudness"),
    ({}, Loudness(-23.0, -0.2), "true_peak"),
    ({}, None, "loudness"),
    ({"audio_late_ms": 500}, GOOD, "av_sync"),
])
def test_each_fault_fails_its_own_check(
    kwargs: dict[str, Any], loudness: Loudness | None, failing: str
) -> None:
    result = statuses(capture(**kwargs), loudness)
    assert result[failing] == "fail"
    others = {k: v for k, v in result.items() if k != failing and k != "true_peak"}
    assert set(others.values()) == {"pass"}, others


def test_a_missing_owner_and_a_small_source() -> None:
    profile = PROFILE.model_copy(update={"owner": ""})
    verdict = judge(capture(), profile, GOOD, latency_mode="low")
    assert not verdict.go
    owner = next(c for c in verdict.checks if c.name == "monitoring_owner")
    assert (owner.status, owner.measured) == ("fail", "nobody")
    ladder = parse_profile(
        'name = "big"\nversion = 1\nowner = "x"\n[[renditions]]\nname = "720p"\nheight = 720\n'
        'video_bitrate_kbps = 3000\n[[renditions]]\nname = "360p"\nheight = 360\n'
        'video_bitrate_kbps = 700\n')
    resolution = next(c for c in judge(capture(), ladder, GOOD, latency_mode="low").checks
                      if c.name == "resolution")
    assert resolution.status == "warn" and "720p will not be made" in (resolution.fix or "")


PASSTHROUGH_TOML = """name = "copy"
version = 1
owner = "ops"
[[renditions]]
name = "source"
passthrough = true
video_bitrate_kbps = 3000
"""


@pytest.mark.parametrize(("codec", "encoded", "copy_only", "copy_and_encoded"), [
    ("h264", "pass", "pass", "pass"),
    ("h264-422", "pass", "fail", "warn"),
    ("hevc", "pass", "fail", "warn"),
])
def test_the_video_codec_against_the_ladder(
    codec: str, encoded: str, copy_only: str, copy_and_encoded: str
) -> None:
    """The ladder is fitted to the capture as the broadcast's would be: a source a
    passthrough rendition cannot copy (browsers decode only 8-bit 4:2:0 H.264) is named
    before the event, a no-go where nothing else would be made."""
    copy = parse_profile(PASSTHROUGH_TOML)
    both = parse_profile(PASSTHROUGH_TOML + '[[renditions]]\nname = "360p"\nheight = 360\n'
                         'video_bitrate_kbps = 700\n')
    cap = capture(codec=codec)
    got = {}
    for name, profile in (("encoded", PROFILE), ("copy", copy), ("both", both)):
        got[name] = next(c for c in judge(cap, profile, GOOD, latency_mode="low").checks
                         if c.name == "video_codec")
    assert (got["encoded"].status, got["copy"].status, got["both"].status) == (
        encoded, copy_only, copy_and_encoded)
    assert got["encoded"].measured == {"h264": "H.264 High", "h264-422": "H.264 High 4:2:2",
                                       "hevc": "HEVC Main"}[codec]
    if copy_only == "fail":
        assert "has no rendition this source can use" in (got["copy"].fix or "")
        assert "'source' will not be made" in (got["both"].fix or "")
        assert "8-bit 4:2:0 H.264" in (got["both"].fix or "")


def test_a_codec_the_srt_demuxer_cannot_take_is_named() -> None:
    """Over SRT a track in a codec golive cannot decode never reaches the capture: the
    demuxer's name for it is the check's measured value, not "no video"."""
    link = SrtStats(1, 120, 10_000, 0, 0, 0,
                    unsupported_video="MPEG-2 video (stream type 0x02)")
    checks = {c.name: c for c in judge(capture(video=False), PROFILE, GOOD,
                                       latency_mode="low", srt=link).checks}
    codec = checks["video_codec"]
    assert codec.status == "fail" and codec.measured.startswith("MPEG-2 video (stream type")
    assert "H.264" in (codec.fix or "")
    for name in ("keyframe_interval", "frame_rate_stability", "resolution", "video_bitrate"):
        assert checks[name].status == "fail" and "video_codec" in (checks[name].fix or ""), name
    link = SrtStats(1, 120, 10_000, 0, 0, 0,
                    unsupported_audio="Opus with more than two channels (stream type 0x06)")
    checks = {c.name: c for c in judge(capture(sound=False), PROFILE, GOOD,
                                       latency_mode="low", srt=link).checks}
    assert checks["video_codec"].status == "pass"
    assert checks["audio"].status == "fail" and checks["audio"].measured.startswith("Opus")
    assert "AAC" in (checks["audio"].fix or "")
    # Without the demuxer's word: no video, no sound.
    bare = {c.name: c for c in judge(capture(video=False), PROFILE, GOOD,
                                     latency_mode="low").checks}
    assert (bare["video_codec"].status, bare["video_codec"].measured) == ("fail", "no video")


def test_the_capture_is_bounded() -> None:
    cap = PreflightCapture(max_bytes=10_000)
    for i in range(100):
        cap.observe(frame(i * 33, i == 0, 1000), i / 30)
    assert cap.full and len(cap.flv) <= 10_000
    cap.observe(MediaTag(TagType.VIDEO, 5000, b""), 9.0)  # ignored once full
    hostile = PreflightCapture(max_bytes=1 << 20)
    hostile.observe(MediaTag(TagType.VIDEO, 0, b""), 0.0)
    hostile.observe(MediaTag(TagType.AUDIO, 0, b""), 0.0)
    assert hostile.malformed == 2 and not judge(hostile, PROFILE, None, latency_mode="low").go


SUMMARY = """[Parsed_ebur128_0 @ 0x5] Summary:

  Integrated loudness:
    I:         -21.8 LUFS
    Threshold: -31.8 LUFS

  Loudness range:
    LRA:        20.0 LU

  True peak:
    Peak:      -18.1 dBFS
"""


def test_ebur128_summary() -> None:
    assert parse_ebur128("noise\n" + SUMMARY) == Loudness(-21.8, -18.1)
    assert parse_ebur128(SUMMARY.replace("-21.8", "-inf").replace("-18.1", "-inf")) == \
        Loudness(-120.0, -120.0)
    assert parse_ebur128("no summary") is None


@pytest.mark.parametrize(("stats", "rtt", "loss"), [
    (SrtStats(20, 120, 10_000, 50, 50, 0), "pass", "pass"),
    (SrtStats(50, 120, 10_000, 50, 50, 0), "fail", "pass"),  # 120 ms < 4 x 50 ms
    (SrtStats(20, 120, 9_800, 200, 200, 0), "pass", "warn"),  # 2%
    (SrtStats(20, 120, 9_000, 1_000, 990, 0), "pass", "fail"),  # 10%
    (SrtStats(20, 120, 10_000, 5, 0, 5), "pass", "fail"),  # lost on the air
])
def test_srt_link_checks(stats: SrtStats, rtt: str, loss: str) -> None:
    verdict = judge(capture(), PROFILE, GOOD, latency_mode="low", srt=stats)
    result = {c.name: c.status for c in verdict.checks}
    assert (result["srt_round_trip"], result["srt_loss"]) == (rtt, loss)
    assert verdict.go == (rtt != "fail" and loss != "fail")
    assert "srt_loss" not in statuses(capture())  # RTMP: no SRT checks


@pytest.mark.parametrize(("rtt", "status"), [(0.1, "pass"), (200, "warn"), (600, "fail")])
def test_tcp_round_trip(rtt: float, status: str) -> None:
    verdict = judge(capture(), PROFILE, GOOD, latency_mode="low", tcp=TcpStats(rtt, 1.0))
    check = next(c for c in verdict.checks if c.name == "tcp_round_trip")
    assert check.status == status and check.measured.startswith(f"{rtt:.1f} ms RTT")
    assert verdict.go == (status != "fail")
    assert status == "pass" or "SRT" in (check.fix or "")


def test_audio_late_by_half_a_second_names_the_offset() -> None:
    check = next(c for c in judge(capture(audio_late_ms=500), PROFILE, GOOD,
                                  latency_mode="low").checks if c.name == "av_sync")
    assert check.status == "fail" and check.measured.startswith("audio +500 ms at the start")
    assert "500 ms late" in (check.fix or "") and "-500 ms" in (check.fix or "")


def drill(**changes: Any) -> FailoverReport:
    report = FailoverReport(backup=capture(keep_flv=False), switched=True, returned=True,
                            backup_seconds=2.0, frames_written=120, frames_decoded=120,
                            decode_error=None, reason=None)
    return FailoverReport(**{**report.__dict__, **changes})


@pytest.mark.parametrize(("report", "backup", "failover"), [
    (drill(), "pass", "pass"),
    (drill(backup=None, switched=False, returned=False), "fail", "fail"),
    (drill(switched=False, returned=False, reason="the backup sent no keyframe"), "pass",
     "fail"),
    (drill(returned=False, reason="the primary sent no keyframe"), "pass", "fail"),
    (drill(frames_decoded=90), "pass", "fail"),
    (drill(decode_error="[h264] error while decoding MB 3 4"), "pass", "fail"),
])
def test_backup_and_failover_checks(report: FailoverReport, backup: str, failover: str) -> None:
    verdict = judge(capture(), PROFILE, GOOD, latency_mode="low", failover=report)
    result = {c.name: c for c in verdict.checks}
    assert (result["backup_ingest"].status, result["failover"].status) == (backup, failover)
    assert verdict.go == (backup == failover == "pass")
    if report.backup is None:
        assert "backup_stream_key" in (result["backup_ingest"].fix or "")
    if report.reason:
        assert report.reason in result["failover"].measured


def test_a_backup_with_other_audio_fails() -> None:
    backup = PreflightCapture(max_bytes=1 << 20, keep_flv=False)
    backup.observe(video_header(), 0.0)
    backup.observe(MediaTag(TagType.AUDIO, 0, bytes((0xAF, 0, 0x12, 0x10))), 0.0)  # 44.1k
    for i in range(31):
        backup.observe(frame(i * 33, i % 30 == 0, 1000), i / 30)
        backup.observe(audio(i * 33)[0], i / 30)
    assert not backup.flv  # measured, not kept
    check = next(c for c in judge(capture(), PROFILE, GOOD, latency_mode="low",
                                  failover=drill(backup=backup)).checks
                 if c.name == "backup_ingest")
    assert check.status == "fail" and "44100 Hz" in check.measured, check


def test_destinations_each_get_a_check() -> None:
    verdict = judge(capture(), PROFILE, GOOD, latency_mode="low", destinations=[
        DestinationReport("youtube", "rtmp://a/live/****1234", None, 3.0),
        DestinationReport("twitch", "rtmp://b/app/****9876", "ffmpeg exited with status 1: "
                          "Error opening output: Input/output error", 0.0),
    ])
    result = {c.name: c for c in verdict.checks}
    assert result["destination:youtube"].status == "pass"
    refused = result["destination:twitch"]
    assert refused.status == "fail" and "Input/output error" in refused.measured
    assert not verdict.go


def test_a_required_destination_class() -> None:
    profile = parse_profile(PROFILE_TOML + """
[[destinations]]
name = "youtube"
hosts = ["*.youtube.com"]
required = true
[[destinations]]
name = "other"
""")
    pushed = DestinationReport("yt", "rtmp://a.rtmp.youtube.com/live2/****1234", None, 3.0)
    ok = {c.name: c for c in judge(capture(), profile, GOOD, latency_mode="low",
                                   destinations=[pushed]).checks}
    assert ok["destination_class:youtube"].status == "pass"
    assert ok["destination_class:youtube"].measured == "yt"
    assert "destination_class:other" not in ok  # optional
    elsewhere = DestinationReport("x", "rtmp://cdn.example/live/****1234", None, 3.0)
    verdict = judge(capture(), profile, GOOD, latency_mode="low", destinations=[elsewhere])
    missing = next(c for c in verdict.checks if c.name == "destination_class:youtube")
    assert missing.status == "fail" and not verdict.go
    assert "youtube (rtmp/rtmps/srt to *.youtube.com)" in (missing.fix or "")
