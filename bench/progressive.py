"""Progressive MP4 remux benchmark: golive's planner against `ffmpeg -c copy +faststart`.

Encodes SECONDS of 640x360 H.264 (B-frames) + AAC as CMAF with 1 s segments made of
200 ms fragments (the live ladder's shape), then, in one run:

- golive: `plan_progressive` over the stored segments (what a `/vod/.../high.mp4`
  request waits for before its first byte; a server caches it per asset), then reading
  the whole file out of the plan, and a 1 MiB range from its middle;
- ffmpeg: remuxing the same fragmented file to a moov-first MP4 with `-c copy
  -movflags +faststart` (what a server without a planner would run per asset).

Prints one table; both outputs are checked with ffprobe (duration within 0.5 s).

    .venv/bin/python bench/progressive.py                # 120 s of media
    .venv/bin/python bench/progressive.py --seconds 600
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from golive.formats import Fragment, FragmentReader, InitSegment, plan_progressive

CMAF = "+frag_keyframe+empty_moov+default_base_moof+cmaf"


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def encode(ffmpeg: str, seconds: float, path: Path) -> None:
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=s=640x360:r=30",
         "-f", "lavfi", "-i", "sine=sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2",
         "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-b:v", "1200k",
         "-c:a", "aac", "-b:a", "96k",
         "-f", "mp4", "-movflags", CMAF, "-frag_duration", "200000", str(path)],
        check=True, timeout=3600,
    )  # fmt: skip


def probe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", str(path)],
        check=True, capture_output=True, timeout=120,
    ).stdout
    return float(json.loads(out)["format"]["duration"])


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    ffmpeg = ffmpeg_exe()
    with tempfile.TemporaryDirectory(prefix="golive-bench-mp4-") as tmp:
        work = Path(tmp)
        source = work / "cmaf.mp4"
        encode(ffmpeg, args.seconds, source)
        items = FragmentReader().feed(source.read_bytes())
        init = items[0]
        assert isinstance(init, InitSegment)
        fragments = [f.data for f in items if isinstance(f, Fragment)]
        segments = [b"".join(fragments[i : i + 5]) for i in range(0, len(fragments), 5)]

        wall, used = time.perf_counter(), cpu()
        plan = plan_progressive(init.data, segments)
        plan_wall, plan_cpu = time.perf_counter() - wall, cpu() - used

        wall, used = time.perf_counter(), cpu()
        ours = work / "golive.mp4"
        with ours.open("wb") as out:
            step = 4 * 1024 * 1024
            for start in range(0, plan.size, step):
                out.write(plan.read(start, min(plan.size, start + step), segments))
        read_wall, read_cpu = time.perf_counter() - wall, cpu() - used

        middle = plan.size // 2
        wall = time.perf_counter()
        for _ in range(100):
            plan.read(middle, middle + 1024 * 1024, segments)
        range_ms = (time.perf_counter() - wall) * 1000 / 100

        theirs = work / "ffmpeg.mp4"
        wall, used = time.perf_counter(), children_cpu()
        subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
                        "-c", "copy", "-movflags", "+faststart", str(theirs)],
                       check=True, timeout=3600)
        ffmpeg_wall, ffmpeg_cpu = time.perf_counter() - wall, children_cpu() - used

        ours_duration, theirs_duration = probe_duration(ours), probe_duration(theirs)
        size_mb = plan.size / 1e6
        rows = [
            ("golive plan (moov ready)", plan_wall, plan_cpu, f"moov {len(plan.header) / 1e3:.0f} kB"),
            ("golive whole file out", read_wall, read_cpu,
             f"{size_mb / max(read_wall, 1e-9):.0f} MB/s"),
            ("golive 1 MiB range", range_ms / 1000, float("nan"),
             f"{range_ms:.2f} ms per request (from memory)"),
            ("ffmpeg -c copy +faststart", ffmpeg_wall, ffmpeg_cpu,
             f"{theirs.stat().st_size / 1e6:.1f} MB"),
        ]
        print(f"\nprogressive MP4: {args.seconds:.0f} s of 640x360 H.264 + AAC, "
              f"{len(segments)} segments, {len(fragments)} fragments, {size_mb:.1f} MB")
        print(f"{'what':<28}{'wall s':>10}{'cpu s':>10}  note")
        for name, wall_s, cpu_s, note in rows:
            cpu_text = "-" if cpu_s != cpu_s else f"{cpu_s:.3f}"
            print(f"{name:<28}{wall_s:>10.3f}{cpu_text:>10}  {note}")
        print(f"durations (ffprobe): golive {ours_duration:.3f} s, ffmpeg {theirs_duration:.3f} s, "
              f"asked {args.seconds:.3f} s")
        ok = abs(ours_duration - args.seconds) < 0.5 and abs(theirs_duration - args.seconds) < 0.5
        faster = plan_wall + read_wall < ffmpeg_wall
        print(f"goal: time to the first byte (plan) below ffmpeg's whole remux: "
              f"{'met' if plan_wall < ffmpeg_wall else 'NOT met'}; "
              f"plan + whole file {'faster' if faster else 'slower'} than ffmpeg")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
