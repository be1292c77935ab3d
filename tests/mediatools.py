"""Real encoders and probes for tests: ffmpeg and GStreamer publishers, ffprobe."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"
GST_LAUNCH = shutil.which("gst-launch-1.0")


def make_source(path: Path, *, seconds: float = 6, size: str = "640x360", fps: int = 30,
                gop: int = 30, video_kbps: int = 800, sample_rate: int = 48000,
                volume_db: float = 0.0, video: str = "testsrc2", b_frames: int = 0) -> Path:
    """Encode a synthetic H.264/AAC FLV file (testsrc2 + sine) once, for `-c copy` publishing.

    The sine alone measures about -22 LUFS (EBU R128); `volume_db` moves it. `video` is
    the lavfi picture source, with its own options if any ("color=c=red"). `b_frames`: up
    to that many B-frames in a row, as OBS's x264 and NVENC send (pictures out of order,
    FLV's composition time set); without, the zero-latency tune."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)  # a bench's cache on a new machine
    picture = f"{video}{':' if '=' in video else '='}size={size}:rate={fps}"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", picture,
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={sample_rate}",
         "-t", str(seconds), "-c:v", "libx264",
         *(["-preset", "veryfast", "-b_strategy", "0"] if b_frames
           else ["-preset", "ultrafast", "-tune", "zerolatency"]),
         "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", str(b_frames),
         "-b:v", f"{video_kbps}k", "-maxrate", f"{video_kbps}k", "-bufsize", f"{video_kbps}k",
         "-pix_fmt", "yuv420p", *(["-af", f"volume={volume_db}dB"] if volume_db else []),
         "-c:a", "aac", "-b:a", "96k", "-ar", str(sample_rate), "-ac", "2",
         "-f", "flv", str(path)],
        check=True, timeout=120,
    )
    return path


def make_radio(path: Path, *, seconds: float = 6, sample_rate: int = 48000,
               kbps: int = 96) -> Path:
    """An FLV of sound alone (a 440 Hz tone as AAC) and no picture: a radio show."""
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={sample_rate}", "-t", str(seconds),
         "-c:a", "aac", "-b:a", f"{kbps}k", "-f", "flv", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


def ffmpeg_publish(source: Path, url: str, *, loop: bool = False, realtime: bool = True,
                   extra: list[str] | None = None,
                   muxer: str = "flv") -> subprocess.Popen[bytes]:
    """Start `ffmpeg -re -i SOURCE -c copy -f flv URL` (`muxer`: mpegts for SRT) in the
    background."""
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin"]
    if realtime:
        cmd.append("-re")
    if loop:
        cmd += ["-stream_loop", "-1"]
    cmd += ["-i", str(source), "-c", "copy", *(extra or []), "-f", muxer, url]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def gst_publish(url: str, *, buffers: int = 150) -> subprocess.Popen[bytes]:
    """Publish with GStreamer's rtmp2sink: an encoder/RTMP stack independent of ffmpeg."""
    assert GST_LAUNCH, "gst-launch-1.0 missing: run scripts/install-system-deps.sh"
    pipeline = (
        f"videotestsrc num-buffers={buffers} is-live=true ! video/x-raw,width=640,height=360,framerate=30/1 "
        "! x264enc tune=zerolatency key-int-max=30 bitrate=800 speed-preset=ultrafast "
        "! h264parse ! queue ! flvmux name=m streamable=true "
        f"! rtmp2sink location={url} "
        f"audiotestsrc is-live=true num-buffers={buffers * 48000 // 30 // 1024} "
        "! audio/x-raw,rate=48000,channels=2 ! avenc_aac ! aacparse ! queue ! m."
    )
    return subprocess.Popen([GST_LAUNCH, "-q", *pipeline.split()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ffprobe(path: Path | str, *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
         *extra, str(path)],
        check=True, capture_output=True, timeout=60,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def count_packets(path: Path | str) -> dict[str, int]:
    """Packets per codec type, counted by ffprobe."""
    data = json.loads(subprocess.run(
        [FFPROBE, "-v", "error", "-print_format", "json", "-show_entries",
         "packet=codec_type", str(path)],
        check=True, capture_output=True, timeout=60,
    ).stdout)
    counts: dict[str, int] = {}
    for pkt in data.get("packets", []):
        counts[pkt["codec_type"]] = counts.get(pkt["codec_type"], 0) + 1
    return counts


def stop(proc: subprocess.Popen[bytes], *, timeout: float = 10) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
