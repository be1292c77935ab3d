"""The analysis pipe's lines into measurements (any chunking, hostile bytes), the meter's
silence, clipping and black durations, and the real graph branch on real ffmpeg."""

from __future__ import annotations

import os
import subprocess

from hypothesis import given
from hypothesis import strategies as st
from tests.mediatools import FFMPEG

from golive.media.command import _audio_analysis, _picture_analysis
from golive.media.levels import (
    FLOOR_DBFS,
    AudioBlock,
    LevelMeter,
    LevelParser,
    PictureSample,
)

# What ffmpeg 5.1's print filters write (the frame header lines are skipped).
SAMPLE = (
    b"frame:0    pts:0       pts_time:0\n"
    b"lavfi.astats.Overall.Peak_level=11.478505\n"
    b"lavfi.astats.Overall.RMS_level=8.468381\n"
    b"frame:0    pts:0       pts_time:0\n"
    b"lavfi.signalstats.YHIGH=16\n"
    b"frame:1    pts:4800    pts_time:0.1\n"
    b"lavfi.astats.Overall.Peak_level=-inf\n"
    b"lavfi.astats.Overall.RMS_level=-inf\n"
    b"frame:1    pts:1       pts_time:0.5\n"
    b"lavfi.signalstats.YHIGH=180\n"
)
EXPECTED = [AudioBlock(8.468381, 11.478505), PictureSample(16.0),
            AudioBlock(FLOOR_DBFS, FLOOR_DBFS), PictureSample(180.0)]


def test_parser_reads_blocks_and_pictures_in_any_chunking() -> None:
    assert LevelParser().feed(SAMPLE) == EXPECTED
    parser = LevelParser()
    out = []
    for i in range(len(SAMPLE)):
        out += parser.feed(SAMPLE[i:i + 1])
    assert out == EXPECTED
    assert PictureSample(16.0).black and PictureSample(37.0).black
    assert not PictureSample(40.0).black and not PictureSample(180.0).black


def test_parser_skips_garbage_nan_lone_rms_and_overlong_lines() -> None:
    parser = LevelParser()
    assert parser.feed(b"lavfi.astats.Overall.RMS_level=-20\n") == []  # no peak before it
    assert parser.feed(b"lavfi.astats.Overall.Peak_level=nan\n"
                       b"lavfi.astats.Overall.RMS_level=-20\n") == []
    assert parser.feed(b"lavfi.signalstats.YHIGH=" + b"9" * 5000 + b"\n") == []
    assert parser.feed(b"lavfi.signalstats.YHIGH=999\nnot a line\n\xff\xfe=\n") == []
    assert parser.feed(b"lavfi.signalstats.YHIGH=40\n") == [PictureSample(40.0)]


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    parser = LevelParser()
    parser.feed(data)
    parser.feed(SAMPLE)  # and it keeps working after them


def quiet(db: float = -90.0) -> AudioBlock:
    return AudioBlock(db, db + 3)


def test_meter_times_silence_and_forgets_it_when_sound_returns() -> None:
    meter = LevelMeter(silence_dbfs=-60)
    now = 100.0
    for _ in range(30):  # 3 s of sound at -20 dBFS RMS, -17 dBFS peaks
        meter.add(now, AudioBlock(-20.0, -17.0))
        now += 0.1
    facts = meter.facts(now)
    assert facts.silent_s == 0.0 and facts.clipping_ratio == 0.0
    assert facts.audio_rms_dbfs is not None and abs(facts.audio_rms_dbfs + 20) < 0.01
    assert facts.audio_peak_dbfs == -17.0
    silent_from = now
    for _ in range(50):
        meter.add(now, quiet())
        now += 0.1
    facts = meter.facts(now)
    assert facts.silent_s is not None and abs(facts.silent_s - (now - silent_from)) < 1e-6
    assert facts.audio_rms_dbfs is not None and facts.audio_rms_dbfs < -60
    meter.add(now, AudioBlock(-30.0, -25.0))
    assert meter.facts(now).silent_s == 0.0
    # No audio for longer than 2 s: nothing is known any more (not "silent").
    assert meter.facts(now + 3).silent_s is None and meter.facts(now + 3).audio_rms_dbfs is None


def test_meter_clipping_share_over_its_window() -> None:
    meter = LevelMeter(clip_window=10.0)
    now = 0.0
    for i in range(100):  # every 4th block peaks at full scale
        meter.add(now, AudioBlock(-12.0, 0.0 if i % 4 == 0 else -6.0))
        now += 0.1
    facts = meter.facts(now)
    assert facts.clipping_ratio is not None and abs(facts.clipping_ratio - 0.25) < 0.02
    for _ in range(100):
        meter.add(now, AudioBlock(-12.0, -6.0))
        now += 0.1
    assert meter.facts(now).clipping_ratio == 0.0


def test_meter_black_duration_and_a_gap_starts_it_afresh() -> None:
    meter = LevelMeter()
    meter.add(0.0, PictureSample(16.0))
    meter.add(4.0, PictureSample(20.0))  # over 2 s later: a new run of pictures
    assert meter.facts(4.0).black_s == 0.0
    meter.add(4.5, PictureSample(16.0))
    meter.add(6.0, PictureSample(16.0))
    assert meter.facts(6.0).black_s == 2.0
    meter.add(6.5, PictureSample(200.0))
    assert meter.facts(6.5).black_s == 0.0 and meter.facts(6.5).luma_high == 200.0


def test_the_graph_branches_measure_a_real_black_clipped_source() -> None:
    """The filter chains `command` puts in the transcoder's graph, on real ffmpeg."""
    read, write = os.pipe()  # a few KiB of lines: fits the pipe, read after ffmpeg exits
    try:
        # (ffmpeg wants a graph with an output besides the sinks, as the transcoder's has.)
        graph = (f"{_picture_analysis('[1:v]', write)};{_audio_analysis('[0:a]', write)};"
                 "[0:a]anull[out]")
        subprocess.run(
            [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi",
             "-i", "sine=f=440:sample_rate=48000,volume=30", "-f", "lavfi",
             "-i", "color=black:s=1280x720:r=30", "-t", "2", "-filter_complex", graph, "-map", "[out]", "-f", "null", "-"],
            capture_output=True, timeout=60, check=True, pass_fds=(write,),
        )
        os.close(write)
        write = -1
        with os.fdopen(read, "rb") as pipe:
            read = -1
            readings = LevelParser().feed(pipe.read())
    finally:
        for fd in (read, write):
            if fd >= 0:
                os.close(fd)
    blocks = [r for r in readings if isinstance(r, AudioBlock)]
    pictures = [r for r in readings if isinstance(r, PictureSample)]
    assert len(blocks) >= 18 and len(pictures) >= 3  # 100 ms blocks, 2 pictures a second
    assert all(b.peak_dbfs > 10 for b in blocks)  # 30x a -18 dBFS sine: far past full scale
    assert all(p.black for p in pictures)
