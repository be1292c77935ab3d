"""What the sound and picture measurements cost: ffmpeg CPU per 720p30 stream.

The transcoder's graph measures the ingest on two small branches (`golive.media.levels`):
`astats` over 100 ms audio blocks, and `signalstats` on a 64x36 copy of 2 pictures a
second. Both branches work on frames the ladder decodes anyway, so what they add is
their own filtering. Measured on one 1280x720 30 fps H.264 + AAC source (testsrc2 +
sine, 30 s), decoded as fast as ffmpeg can, in alternating rounds:

- `decode only` (the peer): ffmpeg decodes both tracks to the null muxer;
- `decode + levels`: the same, plus golive's two analysis chains (the exact filter
  strings of `golive.media.command`) writing their lines to a pipe that is read.

CPU is the ffmpeg process's user+system time (wait4), per second of media; each
variant's fastest round counts (other load on the machine only ever adds). The
difference is the cost per stream, against the goal of 2% of one core.

    .venv/bin/python bench/levels.py [--seconds 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
from pathlib import Path

import imageio_ffmpeg

from golive.media.command import _audio_analysis, _picture_analysis
from golive.media.levels import LevelParser

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
GOAL_CORE_SHARE = 0.02


def make_source(path: Path, seconds: int) -> None:
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-g", "60",
         "-b:v", "3000k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-ac", "2",
         "-f", "flv", str(path)],
        check=True, timeout=600,
    )  # fmt: skip


def run(source: Path, *, levels: bool) -> tuple[float, int]:
    """CPU seconds of one ffmpeg run, and the measurements it wrote."""
    read, write = os.pipe()
    if levels:
        graph = (f"[0:v:0]split=2[m][x];{_picture_analysis('[x]', write)};"
                 f"{_audio_analysis('[0:a:0]', write)}")
    else:
        graph = "[0:v:0]null[m]"
    argv = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin",
            "-threads", "1", "-i", str(source), "-filter_complex", graph,
            "-map", "[m]", "-map", "0:a:0", "-f", "null", "-"]  # fmt: skip
    proc = subprocess.Popen(argv, pass_fds=(write,))
    os.close(write)
    readings: list[int] = []

    def drain() -> None:  # as the transcoder does: read and parse every line
        parser = LevelParser()
        with os.fdopen(read, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                readings.append(len(parser.feed(chunk)))

    reader = threading.Thread(target=drain)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {' '.join(argv)}")
    return usage.ru_utime + usage.ru_stime, sum(readings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="golive-bench-levels-") as tmp:
        source = Path(tmp) / "720p30.flv"
        make_source(source, args.seconds)
        best: dict[bool, float] = {}
        measured = 0
        for _ in range(args.rounds):
            for levels in (False, True):
                cpu, count = run(source, levels=levels)
                best[levels] = min(best.get(levels, cpu), cpu)
                measured = max(measured, count)
    media = float(args.seconds)
    base, with_levels = best[False] / media, best[True] / media
    added = with_levels - base
    print(f"{'variant':<18} {'CPU s / media s':>16} {'% of a core':>12}")
    print(f"{'decode only':<18} {base:>16.4f} {base * 100:>11.2f}%")
    print(f"{'decode + levels':<18} {with_levels:>16.4f} {with_levels * 100:>11.2f}%")
    verdict = "meets" if added < GOAL_CORE_SHARE else "MISSES"
    print(f"{'levels added':<18} {added:>16.4f} {added * 100:>11.2f}%   "
          f"{verdict} the goal of < {GOAL_CORE_SHARE:.0%} of a core per 720p30 stream "
          f"({measured} measurements, {measured / media:.1f}/s)")


if __name__ == "__main__":
    main()
