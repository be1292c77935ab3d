"""IngestMeter over a real ffmpeg FLV fed at simulated real time, and over hostile bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golive.formats.flv import FlvReader
from golive.formats.tag import MediaTag, TagType
from golive.stream.facts import IngestFacts, IngestMeter

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
pytestmark = pytest.mark.skipif(FFMPEG is None or FFPROBE is None, reason="ffmpeg not on PATH")


@pytest.fixture(scope="module")
def flv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("facts") / "out.flv"
    assert FFMPEG is not None
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=s=640x360:r=30",
         "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000",
         "-t", "6", "-c:v", "libx264", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
         "-b:v", "1M", "-c:a", "aac", "-b:a", "128k", "-f", "flv", str(path)],
        check=True, timeout=120,
    )
    return path


@pytest.fixture(scope="module")
def tags(flv_file: Path) -> list[MediaTag]:
    reader = FlvReader()
    result = reader.feed(flv_file.read_bytes())
    assert reader.buffered == 0
    return result


def probe_audio(path: Path) -> dict[str, object]:
    assert FFPROBE is not None
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "a:0",
         "-show_entries", "stream=sample_rate,channels", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=30,
    ).stdout
    stream: dict[str, object] = json.loads(out)["streams"][0]
    return stream


def feed(tags: list[MediaTag]) -> tuple[IngestMeter, float]:
    meter = IngestMeter()
    now = 0.0
    for tag in tags:
        meter.observe(tag, tag.timestamp / 1000)
        now = max(now, tag.timestamp / 1000)
    return meter, now


def test_facts_from_real_stream(flv_file: Path, tags: list[MediaTag]) -> None:
    meter, now = feed(tags)
    facts = meter.snapshot(now)
    assert facts.video_codec == "h264"
    assert facts.video_profile == "High"
    assert (facts.width, facts.height) == (640, 360)
    assert facts.frame_rate == pytest.approx(30, abs=0.5)
    assert facts.declared_frame_rate == pytest.approx(30, abs=0.01)
    assert facts.keyframe_interval_s == pytest.approx(2.0, abs=0.05)
    assert facts.keyframes == 3
    assert facts.video_frames == 180
    assert facts.video_bitrate_kbps is not None
    assert 500 <= facts.video_bitrate_kbps <= 2000
    assert facts.audio_bitrate_kbps is not None
    assert 64 <= facts.audio_bitrate_kbps <= 256
    assert facts.total_bitrate_kbps is not None
    assert facts.total_bitrate_kbps >= facts.video_bitrate_kbps + facts.audio_bitrate_kbps - 1
    audio = probe_audio(flv_file)
    assert facts.audio_codec == "aac"
    assert facts.audio_sample_rate == int(str(audio["sample_rate"]))
    assert facts.audio_channels == audio["channels"]
    assert facts.audio_frames > 0
    assert facts.malformed_tags == 0
    assert facts.bytes_received == sum(len(t.body) for t in tags)
    assert facts.encoder is not None and facts.encoder.startswith("Lavf")
    assert facts.last_media_at == tags[-1].timestamp / 1000
    assert facts.av_drift_s is not None and abs(facts.av_drift_s) < 0.2  # in sync


def test_av_drift_when_the_audio_clock_runs_ahead(tags: list[MediaTag]) -> None:
    """A publisher whose audio timestamps run 1.5 s ahead of its video's (each tag sent
    as it is encoded, as OBS does): the drift is +1.5 s, and a new publisher resets it."""
    shifted = [MediaTag(t.type, (t.timestamp + 1500) % (1 << 32), t.body)
               if t.type == TagType.AUDIO and t.timestamp > 0 else t for t in tags]
    meter, now = feed(shifted)
    facts = meter.snapshot(now)
    assert facts.av_drift_s is not None
    assert facts.av_drift_s == pytest.approx(1.5, abs=0.1)
    assert facts.as_dict()["av_drift_s"] == pytest.approx(1.5, abs=0.1)
    meter.new_publisher()
    assert meter.snapshot(now).av_drift_s is None


@pytest.mark.parametrize(("offset", "drift"), [(1.5, 1.5), (-0.8, 0.0)])
def test_av_drift_from_an_offset_audio_track(
    flv_file: Path, tmp_path: Path, tags: list[MediaTag], offset: float, drift: float
) -> None:
    """ffmpeg's muxer interleaves by timestamp, so `-itsoffset` on the audio shows only in
    where the audio timeline starts; the meter reports audio that starts late, and ~0 for
    an in-sync stream. Audio that comes before the first video frame is not an offset:
    publishers send audio while video waits for a keyframe."""
    assert FFMPEG is not None
    shifted = tmp_path / "shifted.flv"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-i", str(flv_file),
         "-itsoffset", str(offset), "-i", str(flv_file), "-map", "0:v", "-map", "1:a",
         "-c", "copy", "-f", "flv", str(shifted)],
        check=True, timeout=60,
    )
    meter, now = feed(FlvReader().feed(shifted.read_bytes()))
    assert meter.snapshot(now).av_drift_s == pytest.approx(drift, abs=0.05)
    in_sync, now = feed(tags)
    assert abs(in_sync.snapshot(now).av_drift_s or 1.0) < 0.05
    in_sync.new_publisher()  # a new publisher's timeline is judged afresh
    assert in_sync.snapshot(now).av_drift_s is None


def test_headers_kept_as_received(tags: list[MediaTag]) -> None:
    meter, _ = feed(tags)
    assert meter.metadata is not None and meter.metadata.type == TagType.SCRIPT
    assert meter.video_sequence_header is not None
    assert meter.video_sequence_header.body[:2] == b"\x17\x00"
    assert meter.audio_sequence_header is not None
    assert meter.audio_sequence_header.body[:2] == bytes((0xAF, 0x00))
    assert meter.metadata in tags
    assert meter.video_sequence_header in tags
    assert meter.audio_sequence_header in tags


def test_as_dict_is_json_ready(tags: list[MediaTag]) -> None:
    meter, now = feed(tags)
    data = meter.snapshot(now).as_dict()
    assert set(data) == set(IngestFacts.__dataclass_fields__)
    assert json.loads(json.dumps(data)) == data
    assert data["frame_rate"] == round(data["frame_rate"], 2)


def test_bitrate_decays_when_stream_stops(tags: list[MediaTag]) -> None:
    meter, now = feed(tags)
    facts = meter.snapshot(now + 60)
    assert facts.video_bitrate_kbps == 0
    assert facts.total_bitrate_kbps == 0
    assert facts.bytes_received == sum(len(t.body) for t in tags)
    # A clock earlier than the last tag (pipeline asks with 0.0) reads as the last tag's time.
    assert meter.snapshot(0.0).video_bitrate_kbps == meter.snapshot(now).video_bitrate_kbps


def test_a_new_publisher_starts_with_nothing_said_about_it(tags: list[MediaTag]) -> None:
    meter, now = feed(tags)
    meter.new_publisher()
    assert (meter.metadata, meter.video_sequence_header, meter.audio_sequence_header) == (
        None, None, None,
    )
    facts = meter.snapshot(now)
    assert (facts.video_codec, facts.width, facts.audio_codec, facts.frame_rate) == (
        None, None, None, None,
    )
    assert facts.bytes_received == sum(len(t.body) for t in tags)  # the broadcast's totals
    # The returning publisher sends video only, its timestamps from zero again.
    video = [t for t in tags if t.type is not TagType.AUDIO]
    for tag in video:
        meter.observe(tag, now + 1 + tag.timestamp / 1000)
    facts = meter.snapshot(now + 1 + video[-1].timestamp / 1000)
    assert (facts.video_codec, facts.width, facts.audio_codec) == ("h264", 640, None)
    assert facts.frame_rate is not None and abs(facts.frame_rate - 30) < 1


def test_empty_meter() -> None:
    facts = IngestMeter().snapshot(10.0)
    assert facts.video_codec is None and facts.audio_codec is None
    assert facts.frame_rate is None and facts.keyframe_interval_s is None
    assert facts.total_bitrate_kbps is None and facts.bytes_received == 0
    json.dumps(facts.as_dict())


def test_timestamp_wrap_and_discontinuity(tags: list[MediaTag]) -> None:
    video = [t for t in tags if t.type == TagType.VIDEO]
    offset = (1 << 32) - 3000  # wraps 3 s in
    meter = IngestMeter()
    for tag in video:
        ts = (tag.timestamp + offset) & 0xFFFFFFFF
        meter.observe(MediaTag(tag.type, ts, tag.body), tag.timestamp / 1000)
    facts = meter.snapshot(6.0)
    assert facts.frame_rate == pytest.approx(30, abs=0.5)
    assert facts.keyframe_interval_s == pytest.approx(2.0, abs=0.05)
    # The publisher reconnects and timestamps restart: the windows restart too.
    for tag in video[:40]:
        meter.observe(tag, 100 + tag.timestamp / 1000)
    facts = meter.snapshot(101.5)
    assert facts.frame_rate == pytest.approx(30, abs=1)
    assert facts.keyframe_interval_s is None


def test_bounded_memory() -> None:
    meter = IngestMeter()
    body = bytes((0x27, 0x01, 0, 0, 0)) + b"\x00" * 10
    for i in range(20_000):  # 1000 fps for 20 s
        meter.observe(MediaTag(TagType.VIDEO, i, body), i / 1000)
    assert len(meter._frame_times) <= 5001
    assert len(meter._video_rate._samples) <= 4096
    facts = meter.snapshot(20.0)
    assert facts.frame_rate == pytest.approx(1000, rel=0.01)
    assert facts.video_bitrate_kbps == pytest.approx(15 * 8, rel=0.05)


def test_malformed_tags_counted() -> None:
    meter = IngestMeter()
    meter.observe(MediaTag(TagType.VIDEO, 0, b""), 0.0)
    meter.observe(MediaTag(TagType.AUDIO, 0, b""), 0.0)
    meter.observe(MediaTag(TagType.VIDEO, 0, b"\x17\x00\x00\x00\x00\x01"), 0.0)  # bad avcC
    meter.observe(MediaTag(TagType.SCRIPT, 0, b"\x02\x00\x0aonMeta"), 0.0)
    facts = meter.snapshot(0.0)
    assert facts.malformed_tags == 4
    assert facts.bytes_received == 6 + 9
    assert facts.video_codec == "h264"  # the header said so, even if its avcC is broken


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(TagType)), st.integers(0, (1 << 32) - 1),
                          st.binary(max_size=64)), max_size=20),
       st.floats(0, 1e9, allow_nan=False))
def test_hostile_bodies_never_raise(raw: list[tuple[TagType, int, bytes]], start: float) -> None:
    meter = IngestMeter()
    for i, (kind, ts, body) in enumerate(raw):
        meter.observe(MediaTag(kind, ts, body), start + i / 30)
    json.dumps(meter.snapshot(start + 1).as_dict())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(TagType)), st.binary())
def test_hostile_body_after_real_headers(kind: TagType, body: bytes) -> None:
    meter = IngestMeter()
    meter.observe(MediaTag(kind, 0, body), 0.0)
    # Hostile bytes behind a plausible header reach the configuration parsers.
    for prefix in (b"\x17\x00\x00\x00\x00", b"\x1c\x00\x00\x00\x00", b"\x90hvc1",
                   b"\x90av01", b"\x90vp09", b"\xaf\x00", b"\x90Opus", b"\x90fLaC",
                   b"\x02\x00\x0aonMetaData", b"\x2f", b"\x9fac-3"):
        meter.observe(MediaTag(kind, 0, prefix + body), 0.0)
    json.dumps(meter.snapshot(1.0).as_dict())

