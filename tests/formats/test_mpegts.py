"""TsDemuxer on real ffmpeg transport streams (H.264, HEVC, AAC), checked against ffprobe.

The tags are written as FLV and probed/decoded by ffmpeg; the TS itself is probed as
the reference. Also: PTS wraparound, joining mid-GOP, loss, and hostile bytes.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from golive.formats import codecs
from golive.formats.flv import encode_header, encode_tag
from golive.formats.mpegts import (
    PACKET_SIZE,
    STREAM_TYPE_AAC_LATM,
    TsDemuxer,
    TsError,
    crc32_mpeg2,
)
from golive.formats.tag import MediaTag, TagType

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()  # 7+: reads Enhanced RTMP HEVC in FLV
FFPROBE = shutil.which("ffprobe")
SECONDS, FPS, GOP = 4, 30, 30
_WRAP_SECONDS = 2**33 / 90_000

# Only the cases checked against ffprobe need it; CRC, loss and fuzz cases always run.
needs_ffprobe = pytest.mark.skipif(FFPROBE is None, reason="ffprobe not on PATH")

_VIDEO_ARGS = {
    "h264": ["-c:v", "libx264", "-preset", "veryfast"],  # B-frames: composition times
    "hevc": ["-c:v", "libx265", "-preset", "ultrafast",
             "-x265-params", f"keyint={GOP}:min-keyint={GOP}:scenecut=0:log-level=error"],
}


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, timeout=120)


@functools.cache
def make_ts(directory: Path, codec: str, audio: str = "aac") -> bytes:
    """testsrc2 640x360 at 30 fps with a keyframe every 30 frames, sine AAC 48 kHz, 4 s."""
    path = directory / f"{codec}-{audio}.ts"
    audio_args = ["-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2"]
    if audio == "none":
        audio_args = ["-an"]
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=640x360:rate={FPS}",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(SECONDS),
            *_VIDEO_ARGS[codec], "-g", str(GOP), "-keyint_min", str(GOP), "-sc_threshold", "0",
            "-pix_fmt", "yuv420p", *audio_args, "-f", "mpegts", str(path))
    return path.read_bytes()


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mpegts")


def demux(data: bytes, *, seed: int | None = 0, max_chunk: int = 5000,
          demuxer: TsDemuxer | None = None) -> tuple[list[MediaTag], TsDemuxer]:
    """Feed in random chunk sizes (seed None: in one piece), then flush."""
    demuxer = demuxer or TsDemuxer()
    tags: list[MediaTag] = []
    if seed is None:
        tags += demuxer.feed(data)
    else:
        rng = random.Random(seed)
        pos = 0
        while pos < len(data):
            size = rng.randint(1, max_chunk)
            tags += demuxer.feed(data[pos : pos + size])
            pos += size
    tags += demuxer.flush()
    return tags, demuxer


def write_flv(tags: list[MediaTag], path: Path) -> Path:
    path.write_bytes(encode_header(audio=True, video=True) + b"".join(map(encode_tag, tags)))
    return path


def probe_streams(path: Path) -> dict[str, dict[str, Any]]:
    assert FFPROBE is not None
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-count_packets", "-show_streams", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=60).stdout
    return {s["codec_type"]: s for s in json.loads(out)["streams"]}


def probe_packets(path: Path, selector: str) -> list[dict[str, Any]]:
    assert FFPROBE is not None
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", selector, "-show_entries",
         "packet=pts,dts,flags,pos", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=60).stdout
    packets: list[dict[str, Any]] = json.loads(out)["packets"]
    return packets


def probe_flv(tags: list[MediaTag], directory: Path, name: str) -> dict[str, dict[str, Any]]:
    """ffprobe the tags as FLV; HEVC goes through the bundled ffmpeg first, because the
    system ffprobe may predate Enhanced RTMP."""
    flv = write_flv(tags, directory / f"{name}.flv")
    mkv = directory / f"{name}.mkv"
    _ffmpeg("-i", str(flv), "-c", "copy", str(mkv))
    return probe_streams(mkv)


def decode_errors(path: Path) -> str:
    result = subprocess.run([FFMPEG, "-hide_banner", "-v", "error", "-i", str(path),
                             "-f", "null", "-"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stderr


def video_frames(tags: list[MediaTag]) -> list[codecs.VideoTagInfo]:
    infos = [codecs.parse_video_tag(t.body) for t in tags if t.type is TagType.VIDEO]
    return [i for i in infos if i.is_frame]


def audio_frames(tags: list[MediaTag]) -> list[MediaTag]:
    return [t for t in tags
            if t.type is TagType.AUDIO and codecs.parse_audio_tag(t.body).is_frame]


# ---------------------------------------------------------------------------- real streams


@needs_ffprobe
@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_tags_match_the_transport_stream(media_dir: Path, codec: str) -> None:
    ts = make_ts(media_dir, codec)
    tags, demuxer = demux(ts)
    assert demuxer.program is not None and demuxer.program.video_codec == codec

    reference = probe_streams(media_dir / f"{codec}-aac.ts")
    flv = write_flv(tags, media_dir / f"{codec}.flv")
    ours = probe_flv(tags, media_dir, codec)
    for kind in ("video", "audio"):
        assert ours[kind]["codec_name"] == reference[kind]["codec_name"]
        assert ours[kind]["nb_read_packets"] == reference[kind]["nb_read_packets"]
    assert reference["video"]["nb_read_packets"] == str(SECONDS * FPS)
    assert (ours["video"]["width"], ours["video"]["height"]) == (640, 360)
    assert int(ours["audio"]["sample_rate"]) == 48000
    assert decode_errors(flv) == ""

    # The sequence headers are what golive's own parsers read on the RTMP path.
    video_tags = [t for t in tags if t.type is TagType.VIDEO]
    header = codecs.parse_video_tag(video_tags[0].body)
    assert header.is_sequence_header and header.codec == codec
    assert header.enhanced == (codec == "hevc")
    described = codecs.describe_video(header)
    assert described is not None and (described.width, described.height) == (640, 360)
    audio_header = codecs.parse_audio_tag(next(t.body for t in tags if t.type is TagType.AUDIO))
    audio_info = codecs.describe_audio(audio_header)
    assert audio_info is not None and (audio_info.sample_rate, audio_info.channels) == (48000, 2)
    assert sum(codecs.parse_video_tag(t.body).is_sequence_header for t in video_tags) == 1

    frames = video_frames(tags)
    frame_tags = [t for t in video_tags if codecs.parse_video_tag(t.body).is_frame]
    dts = [t.timestamp for t in frame_tags]
    assert dts == sorted(dts) and len(set(dts)) == len(dts)
    pts = [t.timestamp + f.composition_time_ms for t, f in zip(frame_tags, frames, strict=True)]
    key_pts = [p for p, f in zip(pts, frames, strict=True) if f.is_keyframe]
    first = min(pts)
    assert [round((p - first) * FPS / 1000) for p in key_pts] == [0, 30, 60, 90]
    assert any(f.composition_time_ms > 0 for f in frames)  # B-frames were reordered

    # Same presentation times as ffprobe reads from the TS, on one clock for A and V.
    ts_video = probe_packets(media_dir / f"{codec}-aac.ts", "v")
    ts_audio = probe_packets(media_dir / f"{codec}-aac.ts", "a")
    origin = min(int(p["dts"]) for p in ts_video + ts_audio)
    base = min(dts + [t.timestamp for t in audio_frames(tags)])
    assert base == 0
    assert [p - base for p in pts] == pytest.approx(
        [(int(p["pts"]) - origin) / 90 for p in ts_video], abs=1)
    assert [t.timestamp for t in audio_frames(tags)] == pytest.approx(
        [(int(p["pts"]) - origin) / 90 for p in ts_audio], abs=1)
    assert demuxer.stats.video_frames == SECONDS * FPS
    assert demuxer.stats.cc_errors == demuxer.stats.pes_dropped == 0


def test_chunking_does_not_change_the_tags(media_dir: Path) -> None:
    ts = make_ts(media_dir, "h264")
    whole, _ = demux(ts, seed=None)
    for seed in (1, 2):
        assert demux(ts, seed=seed)[0] == whole
    aligned = TsDemuxer()
    packets = [aligned.feed(ts[i : i + PACKET_SIZE]) for i in range(0, len(ts), PACKET_SIZE)]
    assert [t for p in packets for t in p] + aligned.flush() == whole
    prefix = ts[: 400 * PACKET_SIZE]
    assert demux(prefix, seed=3, max_chunk=1)[0] == demux(prefix, seed=None)[0]


def test_pts_wraparound_keeps_one_monotonic_timeline(media_dir: Path) -> None:
    source = media_dir / "h264-aac.ts"
    make_ts(media_dir, "h264")
    plain, wrapped = media_dir / "plain.ts", media_dir / "wrapped.ts"
    _ffmpeg("-i", str(source), "-c", "copy", "-f", "mpegts", str(plain))
    # The TS starts ~1.4 s in: this puts the wrap about a second into the stream.
    _ffmpeg("-i", str(source), "-c", "copy", "-output_ts_offset", f"{_WRAP_SECONDS - 2.5:.3f}",
            "-f", "mpegts", str(wrapped))
    expected, plain_demuxer = demux(plain.read_bytes())
    tags, demuxer = demux(wrapped.read_bytes())
    assert plain_demuxer.stats.timestamp_wraps == 0
    assert demuxer.stats.timestamp_wraps == 1
    assert tags == expected
    video = [t.timestamp for t in tags if t.type is TagType.VIDEO]
    assert video == sorted(video) and video[-1] < SECONDS * 1000


@needs_ffprobe
def test_joining_mid_gop_waits_for_a_keyframe(media_dir: Path) -> None:
    ts = make_ts(media_dir, "h264")
    cut = (len(ts) // PACKET_SIZE * 37 // 100) * PACKET_SIZE
    tags, demuxer = demux(ts[cut:])
    assert demuxer.stats.video_skipped > 0
    first_video = codecs.parse_video_tag(tags[0].body)
    assert tags[0].type is TagType.VIDEO and first_video.is_sequence_header
    assert tags[1].type is TagType.VIDEO and codecs.parse_video_tag(tags[1].body).is_keyframe
    assert tags[1].timestamp < 500  # time 0 is at (or shortly before) the keyframe
    audio = [codecs.parse_audio_tag(t.body) for t in tags if t.type is TagType.AUDIO]
    assert audio[0].is_sequence_header and not any(a.is_sequence_header for a in audio[1:])

    # Exactly the access units from the first keyframe that starts after the cut.
    packets = probe_packets(media_dir / "h264-aac.ts", "v")
    after = [p for p in packets if int(p["pos"]) >= cut]
    first_key = next(i for i, p in enumerate(after) if "K" in p["flags"])
    assert len(video_frames(tags)) == len(after) - first_key
    assert decode_errors(write_flv(tags, media_dir / "joined.flv")) == ""

    # A cut inside a packet costs the bytes up to the next sync, nothing more.
    garbage = b"\x47garbage" * 25  # sync bytes, but never three 188 bytes apart
    resynced, demuxer = demux(garbage + ts[cut - 77 :])
    assert resynced == tags
    assert demuxer.stats.bytes_skipped == len(garbage) + 77


def test_hevc_from_an_open_gop_stream_joins_at_an_irap(media_dir: Path) -> None:
    ts = make_ts(media_dir, "hevc")
    cut = (len(ts) // PACKET_SIZE // 2) * PACKET_SIZE
    tags, _ = demux(ts[cut:])
    assert codecs.parse_video_tag(tags[0].body).is_sequence_header
    assert codecs.parse_video_tag(tags[1].body).is_keyframe
    assert 0 < len(video_frames(tags)) < SECONDS * FPS


def test_lost_and_duplicated_packets(media_dir: Path) -> None:
    ts = make_ts(media_dir, "h264")
    expected, _ = demux(ts)
    packets = [ts[i : i + PACKET_SIZE] for i in range(0, len(ts), PACKET_SIZE)]
    video_pid = 256
    middle = [i for i, p in enumerate(packets)
              if ((p[1] & 0x1F) << 8 | p[2]) == video_pid and not p[1] & 0x40]
    victim = middle[len(middle) // 2]

    duplicated = b"".join(packets[: victim + 1] + packets[victim:])
    tags, demuxer = demux(duplicated)
    assert tags == expected and demuxer.stats.duplicate_packets == 1

    lost = b"".join(packets[:victim] + packets[victim + 1 :])
    tags, demuxer = demux(lost)
    assert demuxer.stats.cc_errors == 1 and demuxer.stats.pes_dropped == 1
    assert len(video_frames(tags)) == SECONDS * FPS - 1
    assert len(audio_frames(tags)) == len(audio_frames(expected))


def test_oversized_pes_is_dropped_and_counted(media_dir: Path) -> None:
    ts = make_ts(media_dir, "h264")
    _, demuxer = demux(ts, demuxer=TsDemuxer(max_pes_size=6000))
    assert demuxer.stats.pes_oversized > 0
    assert demuxer.stats.pes_dropped >= demuxer.stats.pes_oversized
    assert demuxer.stats.video_frames < SECONDS * FPS
    with pytest.raises(TsError):
        TsDemuxer(max_pes_size=0)


def test_video_only(media_dir: Path) -> None:
    tags, demuxer = demux(make_ts(media_dir, "h264", audio="none"))
    assert demuxer.program is not None and demuxer.program.audio is None
    assert not any(t.type is TagType.AUDIO for t in tags)
    assert len(video_frames(tags)) == SECONDS * FPS and tags[1].timestamp == 0


def test_latm_aac_comes_out_as_the_same_stream_in_adts_does(media_dir: Path) -> None:
    # DVB broadcast chains carry AAC in LATM (stream type 0x11). One AAC encode, carried
    # both ways (ffmpeg repeats the StreamMuxConfig every 20 frames).
    aac, latm_file = media_dir / "audio.aac", media_dir / "audio.latm"
    _ffmpeg("-f", "lavfi", "-i", "sine=sample_rate=44100", "-t", "2", "-ac", "2", "-c:a", "aac",
            str(aac))
    _ffmpeg("-i", str(aac), "-c", "copy", "-f", "latm", str(latm_file))
    streams = {}
    for name, source in (("adts", aac), ("latm", latm_file)):
        ts = media_dir / f"{name}.ts"
        _ffmpeg("-i", str(source), "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
                "-t", "2", "-map", "1:v", "-map", "0:a", "-c:v", "libx264", "-preset",
                "ultrafast", "-c:a", "copy", "-f", "mpegts", str(ts))
        tags, demuxer = demux(ts.read_bytes())
        assert demuxer.program is not None and demuxer.program.audio is not None
        assert demuxer.program.unsupported_audio is None and demuxer.stats.adts_errors == 0
        streams[name] = (demuxer.program.audio.stream_type,
                         [t for t in tags if t.type is TagType.AUDIO])
    (adts_type, adts), (latm_type, latm) = streams["adts"], streams["latm"]
    assert (adts_type, latm_type) == (0x0F, STREAM_TYPE_AAC_LATM)
    assert latm[0].body == b"\xaf\x00\x12\x10"  # AAC-LC, 44.1 kHz, stereo
    assert [t.body for t in latm] == [t.body for t in adts] and len(latm) > 80
    # (A PES's frames are timed from its PTS: the two carry them in different PES.)
    assert all(abs(a.timestamp - b.timestamp) <= 1 for a, b in zip(latm, adts, strict=True))


def test_latm_in_a_form_golive_does_not_take_is_named(media_dir: Path) -> None:
    # Every StreamMuxConfig of ffmpeg's LATM rewritten to say two frames an element: no
    # sound comes out, and the demuxer says why, as for a codec it does not take.
    aac, latm = media_dir / "named.aac", media_dir / "named.latm"
    _ffmpeg("-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "2", "-c:a", "aac", str(aac))
    _ffmpeg("-i", str(aac), "-c", "copy", "-f", "latm", str(latm))
    data = bytearray(latm.read_bytes())
    pos = configs = 0
    while pos < len(data):
        length = codecs.loas_length(data, pos)
        assert length is not None
        if not data[pos + 3] & 0x80:  # useSameStreamMux 0: a StreamMuxConfig
            data[pos + 4] |= 0x80  # numSubFrames 1 (its last bit)
            configs += 1
        pos += length
    latm.write_bytes(data)
    ts = media_dir / "named.ts"
    _ffmpeg("-i", str(latm), "-c:a", "copy", "-f", "mpegts", str(ts))
    tags, demuxer = demux(ts.read_bytes())
    assert not tags and configs >= 4 and demuxer.stats.adts_errors == configs
    assert demuxer.unsupported_audio == (
        "AAC in LATM with frames/programs/layers per element 2/1/1 (golive takes 1/1/1) "
        "(stream type 0x11)")
    # The program itself lists audio golive takes.
    assert demuxer.program is not None and demuxer.program.unsupported_audio is None


@needs_ffprobe
def test_audio_only_stream_starts_at_zero(media_dir: Path) -> None:
    ts = media_dir / "audio.ts"
    _ffmpeg("-f", "lavfi", "-i", "sine=sample_rate=44100", "-t", "1", "-c:a", "aac",
            "-f", "mpegts", str(ts))
    tags, _ = demux(ts.read_bytes())
    frames = audio_frames(tags)
    assert tags[0].body[:2] == b"\xaf\x00" and frames[0].timestamp == 0
    assert [t.timestamp for t in frames[:4]] == [0, 23, 46, 70]  # 1024 / 44.1 kHz each
    assert len(frames) == int(probe_streams(ts)["audio"]["nb_read_packets"])


def sound_level(path: Path) -> float:
    """The RMS level (dBFS) of a file's audio as the bundled ffmpeg decodes it."""
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostats", "-i", str(path), "-vn", "-af",
         "astats=measure_perchannel=none:measure_overall=RMS_level", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120, check=True).stderr
    return float(out.rsplit("RMS level dB:", 1)[1].split()[0])


@pytest.mark.parametrize(("codec", "extra", "fourcc", "samples"), [
    ("mp2", [], b".mp3", 1152),  # MPEG-1 Layer II, stream type 0x03: broadcast encoders
    ("libmp3lame", [], b".mp3", 1152),
    ("ac3", [], b"ac-3", 1536),  # ATSC: stream type 0x81
    ("ac3", ["-mpegts_flags", "system_b"], b"ac-3", 1536),  # DVB: 0x06 + AC-3 descriptor
    ("eac3", [], b"ec-3", 1536),  # ATSC: 0x87
    ("eac3", ["-mpegts_flags", "system_b"], b"ec-3", 1536),  # DVB: 0x06 + E-AC-3 descriptor
    ("libopus", [], b"Opus", 960),  # OBS's SRT output with its Opus encoder: 0x06 + "Opus"
], ids=["mp2", "mp3", "ac3-atsc", "ac3-dvb", "eac3-atsc", "eac3-dvb", "opus"])
def test_mpeg_audio_and_ac3_go_out_as_enhanced_audio_the_transcoder_decodes(
    media_dir: Path, codec: str, extra: list[str], fourcc: bytes, samples: int
) -> None:
    ts = media_dir / f"{codec}{''.join(extra)}.ts"
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={FPS}",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", str(GOP),
            "-c:a", codec, "-b:a", "128k", "-ar", "48000", *extra, "-f", "mpegts", str(ts))
    tags, demuxer = demux(ts.read_bytes())
    assert demuxer.program is not None and demuxer.program.audio is not None
    assert demuxer.stats.unsupported_streams == 0 and demuxer.stats.adts_errors == 0
    audio = [t for t in tags if t.type is TagType.AUDIO]
    # A sequence start naming the codec, then one frame per tag, spaced by its samples.
    assert audio[0].body[:5] == b"\x90" + fourcc
    if fourcc == b"Opus":  # its identification header: mono, as the source
        assert audio[0].body[5:15] == b"OpusHead\x01\x01"
    frames = audio_frames(tags)
    assert all(t.body[:5] == b"\x91" + fourcc for t in frames)
    steps = {b.timestamp - a.timestamp for a, b in itertools.pairwise(frames)}
    assert steps <= {samples * 1000 // 48000, samples * 1000 // 48000 + 1}, steps
    # Every frame the stream has; those from before the first keyframe are left out.
    skipped = demuxer.stats.audio_skipped
    assert len(frames) + skipped == int(probe_streams(ts)["audio"]["nb_read_packets"])
    assert skipped <= 1
    described = audio[0] if fourcc == b"Opus" else frames[0]  # (Opus: by its header)
    info = codecs.describe_audio(codecs.parse_audio_tag(described.body))
    assert info is not None and info.sample_rate == 48000
    # The transcoder's ffmpeg decodes them, to the level the source has.
    flv = write_flv(tags, media_dir / f"{codec}{''.join(extra)}.flv")
    assert decode_errors(flv) == ""
    assert abs(sound_level(flv) - sound_level(ts)) < 0.5


def test_opus_beyond_stereo_is_left_out_and_named(media_dir: Path) -> None:
    ts = media_dir / "opus51.ts"
    _ffmpeg("-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "1",
            "-af", "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0", "-c:a", "libopus",
            "-mapping_family", "1", "-f", "mpegts", str(ts))
    tags, demuxer = demux(ts.read_bytes())
    assert demuxer.program is not None and demuxer.program.audio is None and not tags
    assert demuxer.program.unsupported_audio == (
        "Opus with more than two channels (stream type 0x06)")


def test_video_golive_does_not_take_is_named_and_the_sound_goes_on(media_dir: Path) -> None:
    # A DVB relay's SD service: MPEG-2 video, MPEG-1 Layer II sound.
    ts = media_dir / "mpeg2.ts"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i",
            "sine=sample_rate=48000", "-t", "1", "-c:v", "mpeg2video", "-c:a", "mp2",
            "-f", "mpegts", str(ts))
    tags, demuxer = demux(ts.read_bytes())
    assert demuxer.program is not None and demuxer.program.video is None
    assert demuxer.unsupported_video == "MPEG-2 video (stream type 0x02)"
    assert demuxer.unsupported_audio is None
    assert tags and all(t.type is TagType.AUDIO for t in tags) and tags[0].timestamp == 0
    tags, demuxer = demux(make_ts(media_dir, "h264"))
    assert demuxer.unsupported_video is None


def test_audio_frame_headers_give_the_frame_lengths() -> None:
    # MPEG-1 Layer II 192 kbit/s 48 kHz: 576 bytes; with padding at 44.1 kHz, 627.
    assert codecs.mpeg_audio_frame(b"\xff\xfd\xa4\x00") == codecs.FrameHeader(576, 1152, 48000)
    assert codecs.mpeg_audio_frame(b"\xff\xfd\xa2\x00") == codecs.FrameHeader(627, 1152, 44100)
    # MPEG-2 Layer III 64 kbit/s 24 kHz: 576 samples, 192 bytes; Layer I: 4-byte slots.
    assert codecs.mpeg_audio_frame(b"\xff\xf3\x84\x00") == codecs.FrameHeader(192, 576, 24000)
    assert codecs.mpeg_audio_frame(b"\xff\xff\x44\x00") == codecs.FrameHeader(128, 384, 48000)
    # Free format (no length), reserved version or rate, and no sync: no frame.
    for header in (b"\xff\xfd\x04\x00", b"\xff\xed\xa4\x00", b"\xff\xfd\xac\x00",
                   b"\x00\xfd\xa4\x00", b"\xff\xfd"):
        assert codecs.mpeg_audio_frame(header) is None
    # AC-3 at 48 kHz 192 kbit/s: 384 words; 44.1 kHz odd codes carry one more word.
    assert codecs.ac3_frame(b"\x0b\x77\x00\x00\x14\x40") == codecs.FrameHeader(768, 1536, 48000)
    assert codecs.ac3_frame(b"\x0b\x77\x00\x00\x55\x40") == codecs.FrameHeader(836, 1536, 44100)
    assert codecs.ac3_frame(b"\x0b\x77\x00\x00\x14\x80") is None  # bsid 16: E-AC-3
    assert codecs.ac3_frame(b"\x0b\x77\x00\x00\xd4\x40") is None  # fscod 3: reserved
    # E-AC-3: frmsiz + 1 words; six blocks of 256 samples; a dependent substream adds none.
    assert codecs.eac3_frame(b"\x0b\x77\x01\x7f\x34\x80") == codecs.FrameHeader(
        768, 1536, 48000)
    assert codecs.eac3_frame(b"\x0b\x77\x41\x7f\x34\x80") == codecs.FrameHeader(768, 0, 48000)
    assert codecs.eac3_frame(b"\x0b\x77\x01\x7f\x14\x80") == codecs.FrameHeader(
        768, 512, 48000)  # two blocks
    assert codecs.eac3_frame(b"\x0b\x77\x01\x7f\x34\x40") is None  # bsid 8: AC-3


def test_crc32_mpeg2() -> None:
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7  # the catalogue check value
    section = b"\x00\xb0\x0d\x00\x01\xc1\x00\x00\x00\x01\xf0\x00"
    assert crc32_mpeg2(section + crc32_mpeg2(section).to_bytes(4, "big")) == 0


# ---------------------------------------------------------------------------- hostile bytes


@functools.cache
def _sample_ts(audio: str = "aac") -> bytes:
    """The first ~250 packets of a real stream: PAT, PMT, a keyframe, audio (`audio`: an
    ffmpeg encoder, or "aac-latm")."""
    encode = ["-c:a", "aac", "-mpegts_flags", "latm"] if audio == "aac-latm" else ["-c:a", audio]
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc2=size=160x90:rate=30", "-f", "lavfi", "-i", "sine=sample_rate=48000",
         "-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", *encode,
         "-f", "mpegts", "-"], check=True, capture_output=True, timeout=60).stdout
    return out[: 250 * PACKET_SIZE]


def _check_tags(tags: list[MediaTag]) -> None:
    for tag in tags:
        assert 0 <= tag.timestamp <= 0xFFFFFFFF
        encode_tag(tag)
        if tag.type is TagType.VIDEO:
            codecs.parse_video_tag(tag.body)
        else:
            assert tag.type is TagType.AUDIO
            codecs.parse_audio_tag(tag.body)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.integers(1, 400))
def test_arbitrary_bytes_never_raise(data: bytes, chunk: int) -> None:
    demuxer = TsDemuxer()
    tags = [t for i in range(0, len(data), chunk) for t in demuxer.feed(data[i : i + chunk])]
    _check_tags(tags + demuxer.flush())


_PACKETS = st.lists(st.binary(min_size=PACKET_SIZE - 1, max_size=PACKET_SIZE - 1),
                    max_size=12).map(lambda ps: b"".join(b"\x47" + p for p in ps))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    _PACKETS,
    # PAT/PMT-looking headers so that hypothesis reaches the section and PES parsers.
    st.tuples(st.sampled_from([0, 0x1000, 0x100, 0x101]), st.binary(max_size=184)).map(
        lambda t: bytes((0x47, 0x40 | t[0] >> 8, t[0] & 0xFF, 0x10))
        + t[1].ljust(184, b"\xff")),
), max_size=30))
def test_packet_shaped_garbage_never_raises(parts: list[bytes]) -> None:
    demuxer = TsDemuxer()
    _check_tags(demuxer.feed(b"".join(parts)) + demuxer.flush())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 250 * PACKET_SIZE - 1), st.integers(0, 255)),
                max_size=40),
       st.integers(0, 250 * PACKET_SIZE), st.integers(0, 2000), st.integers(0, 2**32),
       st.sampled_from(["aac", "aac-latm", "mp2", "ac3", "eac3", "libopus"]))
def test_mutated_stream_never_raises(edits: list[tuple[int, int]], cut: int, cut_len: int,
                                     seed: int, audio: str) -> None:
    data = bytearray(_sample_ts(audio))
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    del data[cut : cut + cut_len]
    tags, _ = demux(bytes(data), seed=seed, max_chunk=3000)
    _check_tags(tags)


@pytest.mark.parametrize("audio", ["aac", "aac-latm", "mp2", "ac3", "eac3", "libopus"])
def test_unmutated_sample_produces_media(audio: str) -> None:
    tags, demuxer = demux(_sample_ts(audio))
    assert demuxer.stats.video_frames > 0 and demuxer.stats.audio_frames > 0
    assert demuxer.stats.adts_errors == 0
    _check_tags(tags)
