"""Cores per transcoded stream, per release profile: golive's ladder command, measured.

For each profile shipped in src/golive/profiles (default, low-cpu, passthrough) and each
source (1080p30 at 6 Mb/s and 720p30 at 3 Mb/s H.264 + AAC, 2 s GOP, testsrc2), golive's
own ffmpeg command (`build_command` on `plan_ladder`'s plan, as a node runs it) reads
the source at its pace (`-re`), and its user+system CPU between two media times of its
`-progress` report is divided by the media seconds: the share of one core a live stream
costs (other load on the machine does not count, but contention does slow it). The peer
is the floor measured in the same run: ffmpeg remuxing the same source (`-c copy`).
Also printed: the ladder's renditions with their AVERAGE-BANDWIDTH and BANDWIDTH as the
multivariant playlist announces them (egress per viewer of each rendition, container
overhead included; for passthrough the plan's estimate, not the source's real rate),
for docs/scaling.md.

    .venv/bin/python bench/ladder_cost.py
    .venv/bin/python bench/ladder_cost.py --profiles default --seconds 6
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rung_gates import FFMPEG, Run  # noqa: E402

from golive.media.ladder import SourceInfo, plan_ladder  # noqa: E402
from golive.media.profiles import load_profile  # noqa: E402

SOURCES = {"1080p30": (1920, 1080, "6000k"), "720p30": (1280, 720, "3000k")}


def make_source(path: Path, width: int, height: int, bitrate: str, seconds: float) -> None:
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-bf", "0",
         "-b:v", bitrate, "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "48000", "-ac", "2",
         "-f", "flv", str(path)],
        check=True,
    )  # fmt: skip


def copy_cost(source: Path) -> float:
    """The peer: CPU per wall second of remuxing the source in real time (-re -c copy)."""
    proc = subprocess.Popen(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-i", str(source),
         "-c", "copy", "-f", "mp4", "-movflags", "frag_keyframe+empty_moov", "-y", "/dev/null"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    started = time.monotonic()
    _, _, usage = os.wait4(proc.pid, 0)  # the child's own rusage
    proc.returncode = 0
    return (usage.ru_utime + usage.ru_stime) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", default="default,low-cpu,passthrough")
    parser.add_argument("--sources", default="1080p30,720p30")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured media seconds")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="golive-bench-ladder-"))
    rows: list[tuple[str, str, float, str]] = []
    floors: dict[str, float] = {}
    try:
        for label in args.sources.split(","):
            width, height, bitrate = SOURCES[label]
            source = work / f"{label}.flv"
            make_source(source, width, height, bitrate, args.seconds + 6)
            floors[label] = copy_cost(source)
            for name in args.profiles.split(","):
                plan = plan_ladder(load_profile(name),
                                   SourceInfo(width, height, 30, "h264", True), "low")
                run = Run(plan, source, work / f"{label}-{name}", None)
                cost = run.cpu_between(2, 2 + args.seconds)
                run.proc.kill()
                run.proc.wait()
                ladder = " ".join(f"{r.name}:{r.average_bandwidth / 1e6:.2f}/"
                                  f"{r.bandwidth / 1e6:.2f}" for r in plan.renditions)
                rows.append((label, name, cost, ladder))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nladder cost, {args.seconds:.0f} media s per run (-re), libx264 as the profiles say; "
          "CPU: 100% = one core")
    print(f"{'source':<9}{'profile':<13}{'cpu/stream':>11}{'streams/core':>14}{'vs copy':>9}"
          "  renditions (name:average/peak Mb/s)")
    print("-" * 100)
    for label, name, cost, ladder in rows:
        print(f"{label:<9}{name:<13}{cost:>10.0%}{1 / cost:>14.1f}"
              f"{cost / max(floors[label], 1e-9):>8.0f}x  {ladder}")
    for label, floor in floors.items():
        print(f"peer {label}: ffmpeg -re -c copy {floor:.1%} of a core")


if __name__ == "__main__":
    main()
