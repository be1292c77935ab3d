"""Rules and diagnoses: the same symptom gets a different cause when other layers say so."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from golive.health import RULES, EncoderSignals, Finding, Rule, SrtSignals, StreamSignals
from golive.media import AlertSpec
from golive.stream import IngestFacts

SPEC = AlertSpec(max_ingest_bitrate_kbps=8000)
RULE: dict[str, Rule] = {rule.name: rule for rule in RULES}


def facts(**changes: Any) -> IngestFacts:
    base = IngestFacts(
        video_codec="h264", video_profile="High", width=1280, height=720, frame_rate=30.0,
        declared_frame_rate=30.0, video_bitrate_kbps=2500.0, audio_bitrate_kbps=128.0,
        total_bitrate_kbps=2628.0, keyframe_interval_s=2.0, audio_codec="aac",
        audio_sample_rate=48000, audio_channels=2, bytes_received=10_000_000,
        video_frames=3000, audio_frames=4700, keyframes=50, malformed_tags=0,
        encoder="obs-output module (libobs version 30.1.2)", last_media_at=100.0,
        av_drift_s=0.0,
    )
    return dataclasses.replace(base, **changes)


def signals(**changes: Any) -> StreamSignals:
    base = StreamSignals(stream_id="ls_1", protocol="rtmp", connected=True, ingest=facts(),
                         ingest_speed=1.0, media_gap_s=0.05, audio_gap_s=0.02, reconnects=0)
    return dataclasses.replace(base, **changes)


def fired(s: StreamSignals, spec: AlertSpec = SPEC) -> set[str]:
    return {rule.name for rule in RULES if rule.evaluate(s, spec) is not None}


def diagnose(name: str, s: StreamSignals) -> tuple[Finding, str, str]:
    finding = RULE[name].evaluate(s, SPEC)
    assert finding is not None, name
    diagnosis = RULE[name].diagnose(finding, s)
    return finding, diagnosis.cause, diagnosis.fix


def test_a_healthy_stream_fires_nothing() -> None:
    assert fired(signals()) == set()


def test_keyframe_interval_names_obs_setting_and_the_ffmpeg_gop() -> None:
    finding, cause, fix = diagnose("keyframe_interval", signals(ingest=facts(keyframe_interval_s=4.0)))
    assert (finding.value, finding.threshold) == (4.0, 2.0)
    assert "every 4.0 s" in cause
    assert "Output → Output Mode Advanced → Streaming → Keyframe Interval" in fix
    assert "-g 60" in fix
    assert "keyframe_interval" not in fired(signals(ingest=facts(keyframe_interval_s=2.05)))


def test_slow_ingest_over_rtmp_is_the_uplink() -> None:
    s = signals(ingest_speed=0.6, ingest=facts(total_bitrate_kbps=540.0))
    _, cause, fix = diagnose("ingest_slow", s)
    assert "uplink cannot carry the bitrate" in cause
    assert "about 540 kbit/s gets through" in cause and "about 900 kbit/s" in cause
    assert "contribute over SRT" in fix


def test_slow_ingest_with_srt_retransmits_is_a_lossy_path() -> None:
    srt = SrtSignals(rtt_ms=80, loss_ratio=0.01, retransmit_ratio=0.12, dropped=0, latency_ms=120)
    s = signals(protocol="srt", ingest_speed=0.7, srt=srt)
    _, cause, fix = diagnose("ingest_slow", s)
    assert "loses packets" in cause and "12.0%" in cause
    assert "SRT latency" in fix
    assert {"ingest_slow", "srt_loss"} <= fired(s)


def test_srt_drops_ask_for_more_latency() -> None:
    srt = SrtSignals(rtt_ms=150, loss_ratio=0.05, retransmit_ratio=0.05, dropped=7, latency_ms=120)
    _, cause, fix = diagnose("srt_loss", signals(protocol="srt", srt=srt))
    assert "too late" in cause and "600 ms" in fix
    rtt = SrtSignals(rtt_ms=700, loss_ratio=0, retransmit_ratio=0, dropped=0, latency_ms=2000)
    assert fired(signals(protocol="srt", srt=rtt)) == {"srt_rtt"}


def test_av_drift_from_an_offset_or_a_frame_rate_mismatch() -> None:
    _, cause, fix = diagnose("av_drift", signals(ingest=facts(av_drift_s=1.5)))
    assert "timestamp offset at ingest" in cause and "1.50 s later" in cause
    assert "Sync Offset" in fix
    mismatch = facts(av_drift_s=-0.6, frame_rate=29.0, declared_frame_rate=30.0)
    _, cause, _ = diagnose("av_drift", signals(ingest=mismatch))
    assert "frame-rate mismatch" in cause
    assert "av_drift" not in fired(signals(ingest=facts(av_drift_s=0.2)))


def test_a_stall_while_connected_is_the_encoder_and_a_gone_publisher_is_the_network() -> None:
    _, cause, _ = diagnose("ingest_stalled", signals(media_gap_s=4.0))
    assert "stopped sending while its connection stays open" in cause
    _, cause, fix = diagnose("ingest_stalled", signals(media_gap_s=4.0, connected=False,
                                                       protocol=None))
    assert "disconnected" in cause and "backup" in fix
    # A stall is not also a low bitrate.
    assert "ingest_bitrate" not in fired(signals(media_gap_s=4.0,
                                                 ingest=facts(total_bitrate_kbps=10.0)))


@pytest.mark.parametrize(("kbps", "speed", "words"), [
    (100.0, 1.0, "too low"),
    (100.0, 0.5, "uplink cannot carry"),
    (9000.0, 1.0, "higher bitrate than"),
])
def test_bitrate_envelope(kbps: float, speed: float, words: str) -> None:
    _, cause, _ = diagnose("ingest_bitrate", signals(ingest=facts(total_bitrate_kbps=kbps),
                                                     ingest_speed=speed))
    assert words in cause


def test_a_healthy_radio_show_fires_nothing_under_the_pictures_floor() -> None:
    # Sound alone at 64 kbit/s: the bitrate floor is a picture's (150 kbit/s by default).
    radio = facts(video_codec=None, video_profile=None, width=None, height=None,
                  frame_rate=None, declared_frame_rate=None, video_bitrate_kbps=None,
                  audio_bitrate_kbps=64.0, total_bitrate_kbps=64.0, keyframe_interval_s=None,
                  video_frames=0, keyframes=0, av_drift_s=None)
    assert SPEC.min_ingest_bitrate_kbps == 150
    assert fired(signals(ingest=radio)) == set()
    # Its ceiling still holds, and a picture at 64 kbit/s is still too low.
    assert fired(signals(ingest=dataclasses.replace(radio, total_bitrate_kbps=9000.0))) == {
        "ingest_bitrate"}
    assert "ingest_bitrate" in fired(signals(ingest=facts(total_bitrate_kbps=64.0)))


def test_audio_golive_cannot_decode_is_named_with_the_fix() -> None:
    srt = SrtSignals(rtt_ms=20, loss_ratio=0.0, retransmit_ratio=0.0, dropped=0,
                     latency_ms=120, unsupported_audio="E-AC-3 (stream type 0x87)")
    s = signals(protocol="srt", srt=srt)
    assert fired(s) == {"audio_unsupported"}
    finding, cause, fix = diagnose("audio_unsupported", s)
    assert "E-AC-3 (stream type 0x87)" in finding.summary and "E-AC-3" in cause
    assert "AAC-LC" in fix
    assert "audio_unsupported" not in fired(signals(
        protocol="srt", srt=dataclasses.replace(srt, unsupported_audio=None)))


def test_video_golive_cannot_decode_is_named_with_the_fix() -> None:
    srt = SrtSignals(rtt_ms=20, loss_ratio=0.0, retransmit_ratio=0.0, dropped=0,
                     latency_ms=120, unsupported_video="MPEG-2 video (stream type 0x02)")
    s = signals(protocol="srt", srt=srt)
    assert fired(s) == {"video_unsupported"}
    finding, cause, fix = diagnose("video_unsupported", s)
    assert "MPEG-2 video (stream type 0x02)" in finding.summary and "sound alone" in finding.summary
    assert "MPEG-2 video" in cause and "H.264" in fix
    assert "video_unsupported" not in fired(signals(
        protocol="srt", srt=dataclasses.replace(srt, unsupported_video=None)))


def test_reconnects_point_at_the_missing_backup_ingest() -> None:
    _, cause, fix = diagnose("reconnects", signals(reconnects=3))
    assert "no backup ingest" in cause and "backup key" in fix
    assert "reconnects" not in fired(signals(reconnects=2))
    s = signals(reconnects=3)
    finding = RULE["reconnects"].evaluate(s, SPEC)
    assert finding is not None
    related = RULE["reconnects"].diagnose(finding, s).related
    assert (related["backup_key"], related["standby"], related["standby_seen"]) == (
        False, False, False)


def test_reconnects_with_a_backup_key_name_what_the_backup_does() -> None:
    # A backup key but no backup encoder ever: start it (not "no backup configured").
    _, cause, fix = diagnose("reconnects", signals(reconnects=3, backup_key=True))
    assert "no backup ingest" not in cause and "no backup encoder has published" in cause
    assert "start the backup encoder" in fix
    # A standby is connected: it covers the drops; the active uplink is what to fix.
    _, cause, fix = diagnose("reconnects", signals(reconnects=3, backup_key=True,
                                                   standby=True, standby_seen=True))
    assert "standing by covers each drop" in cause and "active encoder's uplink" in fix
    # One stood by earlier and is gone: bring it back.
    _, cause, fix = diagnose("reconnects", signals(reconnects=3, backup_key=True,
                                                   standby_seen=True))
    assert "disconnected too" in cause and "bring the backup encoder back" in fix


def test_audio_missing_and_encoder_slow() -> None:
    assert fired(signals(audio_gap_s=5.0)) == {"audio_missing"}
    _, cause, fix = diagnose("audio_missing", signals(audio_gap_s=5.0))
    assert "stopped sending audio" in cause and "viewers hear silence" in cause
    assert "Audio Mixer" in fix
    encoder = EncoderSignals(degrade_step=2, speed=0.7, exhausted=False, restarts=0,
                             renditions=("720p",))
    _, cause, fix = diagnose("encoder_slow", signals(encoder=encoder))
    assert "overloaded" in cause and "lower the ladder" in fix
    full = dataclasses.replace(encoder, degrade_step=0)
    assert "encoder_slow" not in fired(signals(encoder=full))
    assert "encoder_slow" in fired(signals(encoder=dataclasses.replace(full, exhausted=True)))
