"""What giving a rung up saves: ffmpeg CPU per media second, gate closed vs. a restart.

One 1280x720 30 fps publisher-like FLV (testsrc2 + sine, 2 s GOP) is read at its own
pace (`-re`) by golive's ladder command (720p, 480p, 360p, default profile):

- `full ladder`: the gates open, from 2 s to 10 s of media;
- `720p gated`: the same ffmpeg after a ZeroMQ command closed 720p's gates at 12 s,
  from 14 s to 22 s;
- `restart without 720p` (the peer, what a drop used to cost): a fresh ffmpeg whose
  ladder lacks 720p, from 4 s to 12 s.

CPU is the ffmpeg process's user+system time (/proc) between two media times of its
`-progress` report, so other load on the machine does not count. Also counted: the
renditions that went on in the gated run and any gap in their video (there should be
none; a restart starts a new timeline in every rendition).

    .venv/bin/python bench/rung_gates.py
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import zmq

from golive.media.command import GateState, build_command, gate_commands
from golive.media.ladder import LadderPlan, SourceInfo, plan_ladder
from golive.media.profiles import load_profile

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FFPROBE = shutil.which("ffprobe") or "ffprobe"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Run:
    """One ffmpeg of the ladder command, its progress read on a thread."""

    def __init__(self, plan: LadderPlan, source: Path, out: Path, control: str | None) -> None:
        out.mkdir()
        self.out = out
        files = {name: open(out / f"{name}.mp4", "wb") for name in plan.names}
        fds = {name: f.fileno() for name, f in files.items()}
        argv = build_command(plan, ffmpeg=FFMPEG, output_fds=fds, control=control)
        argv.insert(argv.index("-i") - 2, "-re")
        with open(source, "rb") as stdin:
            self.proc = subprocess.Popen(
                argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                pass_fds=tuple(fds.values()),
            )  # fmt: skip
        for f in files.values():
            f.close()
        self.out_time = 0.0
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            key, _, value = line.decode().strip().partition("=")
            if key == "out_time_us" and value.isdigit():
                with self._changed:
                    self.out_time = int(value) / 1e6
                    self._changed.notify_all()

    def cpu_between(self, start: float, end: float) -> float:
        """ffmpeg CPU seconds per media second between two media times."""
        self.wait_past(start)
        cpu0, t0 = cpu_seconds(self.proc.pid), self.out_time
        self.wait_past(end)
        return (cpu_seconds(self.proc.pid) - cpu0) / (self.out_time - t0)

    def wait_past(self, seconds: float) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.out_time >= seconds, timeout=120):
                raise RuntimeError(f"ffmpeg never got past {seconds} s")

    def finish(self) -> None:
        self.proc.wait(timeout=120)


def video_times(path: Path) -> list[float]:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sorted(float(t) for t in out.split())


def video_gaps(path: Path, frame: float) -> int:
    times = video_times(path)
    return sum(1 for a, b in itertools.pairwise(times) if b - a > frame * 1.5)


def main() -> None:
    plan = plan_ladder(load_profile("default"), SourceInfo(1280, 720, 30, "h264", True), "low")
    work = Path(tempfile.mkdtemp(prefix="golive-bench-gates-"))
    try:
        source = work / "source.flv"
        subprocess.run(
            [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
             "-t", "24", "-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-bf", "0",
             "-b:v", "3000k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "48000", "-ac", "2",
             "-f", "flv", str(source)],
            check=True,
        )  # fmt: skip
        control = f"ipc://{work}/gates"
        gated = Run(plan, source, work / "gated", control)
        full = gated.cpu_between(2, 10)
        context = zmq.Context()
        socket = context.socket(zmq.REQ)
        socket.connect(control)
        started = time.monotonic()
        for command in gate_commands(
            plan, "720p", before=GateState(), after=GateState(closed=True), at=12.0
        ):
            socket.send_string(command)
            reply = socket.recv_string()
            assert reply.startswith("0 "), reply
        answered = time.monotonic() - started
        closed = gated.cpu_between(14, 22)
        gated.finish()
        socket.close()
        context.term()
        peer_plan = replace(plan, renditions=tuple(r for r in plan.renditions if r.name != "720p"))
        peer = Run(peer_plan, source, work / "peer", None)
        restarted = peer.cpu_between(4, 12)
        peer.finish()
        gaps = {n: video_gaps(work / "gated" / f"{n}.mp4", 1 / 30) for n in ("480p", "360p")}
        top = video_times(work / "gated" / "720p.mp4")
        top_end = top[-1] - top[0] + 1 / 30
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'ladder (720p source, -re)':<34}{'ffmpeg CPU':>12}{'vs full':>10}{'restarts':>10}")
    print(f"{'full ladder (gates open)':<34}{full:>11.0%}{'':>10}{0:>10}")
    for label, cpu, restarts in (
        ("720p gated at 12 s, same ffmpeg", closed, 0),
        ("peer: restart without 720p", restarted, 1),
    ):
        print(f"{label:<34}{cpu:>11.0%}{cpu / full - 1:>+10.0%}{restarts:>10}")
    print(
        f"gate command answered in {answered * 1000:.0f} ms; video gaps in the renditions "
        f"that went on: {gaps}; 720p's video ends at {top_end:.3f} s"
    )


if __name__ == "__main__":
    main()
