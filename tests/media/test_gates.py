"""A rung's gates close and reopen in a running ffmpeg; the other rungs never notice.

Real ffmpeg reading a publisher-like FLV at its own pace (`-re`), real ZeroMQ commands
from `command.gate_commands`, outputs checked with ffprobe.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from tests.media.conftest import encode_source
from tests.mediatools import FFMPEG, FFPROBE

from golive.formats import Fragment, InitSegment
from golive.formats.isobmff.fragments import FragmentReader
from golive.formats.isobmff.samples import fragment_samples
from golive.media.command import GateState, build_command, gate_commands
from golive.media.ladder import LadderPlan, SourceInfo, plan_ladder
from golive.media.profiles import load_profile

pytestmark = pytest.mark.slow

OPEN, CLOSED = GateState(), GateState(closed=True)
VIDEO_TRACK = 1  # ffmpeg numbers the tracks in the order they are mapped: video first


class Progress:
    """ffmpeg's `-progress` output time, read on a thread; wait for it to pass a point."""

    def __init__(self, stream: Iterator[bytes]) -> None:
        self.out_time = 0.0
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Iterator[bytes]) -> None:
        for line in stream:
            key, _, value = line.decode().strip().partition("=")
            if key == "out_time_us" and value.lstrip("-").isdigit():
                with self._changed:
                    self.out_time = int(value) / 1e6
                    self._changed.notify_all()

    def wait_past(self, seconds: float, *, limit: float = 60) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.out_time >= seconds, timeout=limit), (
                f"ffmpeg never got past {seconds} s (at {self.out_time} s)"
            )


def send(socket: zmq.Socket[bytes], commands: list[str]) -> None:
    for command in commands:
        socket.send_string(command)
        assert socket.poll(30_000), f"no answer to {command!r}"
        assert socket.recv_string().startswith("0 "), command


def video_packets(path: Path) -> list[tuple[float, bool]]:
    """(pts seconds, keyframe) of every video packet, in presentation order."""
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "v:0",
         "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    packets = []
    for line in out.split():
        pts, flags = line.split(",")[:2]
        packets.append((float(pts), "K" in flags))
    return sorted(packets)


def video_samples(path: Path) -> list[tuple[float, float]]:
    """(decode time, duration) in seconds of every video sample, as the fragments' trun
    tables give them (what a player's MSE buffer adds up)."""
    items = FragmentReader().feed(path.read_bytes())
    init = next(i for i in items if isinstance(i, InitSegment))
    scale = next(t.timescale for t in init.tracks if t.track_id == VIDEO_TRACK)
    return [
        (s.decode_time / scale, s.duration / scale)
        for f in items if isinstance(f, Fragment)
        for s in fragment_samples(init, f) if s.track_id == VIDEO_TRACK
    ]  # fmt: skip


def encode_with_gates(
    plan: LadderPlan,
    tmp_path: Path,
    seconds: float,
    rendition: str,
    changes: list[tuple[GateState, GateState, float]],
) -> None:
    """`seconds` of an 854x480 30 fps source through `plan`'s graph at a publisher's pace
    (`-re`), `rendition`'s gate set at each (before, after, media time) of `changes`, the
    next one sent once ffmpeg's output is half a second past the one before. Each
    rendition's output goes to `tmp_path`/NAME.mp4."""
    source = encode_source(
        tmp_path / "source.flv", seconds=seconds, size="854x480", rate="30", gop=60,
        sample_rate=48000,
    )  # fmt: skip
    control_dir = Path(tempfile.mkdtemp(prefix="golive-gates-test-"))
    outputs = {name: open(tmp_path / f"{name}.mp4", "wb") for name in plan.names}
    fds = {name: f.fileno() for name, f in outputs.items()}
    argv = build_command(
        plan, ffmpeg=FFMPEG, output_fds=fds, control=f"ipc://{control_dir}/gates"
    )
    argv.insert(argv.index("-i") - 2, "-re")  # a publisher's pace, not the disk's
    context = zmq.Context()
    socket = context.socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    with open(source, "rb") as stdin:
        proc = subprocess.Popen(
            argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=tuple(fds.values()),
        )  # fmt: skip
    try:
        for f in outputs.values():
            f.close()  # the child has its own copies
        assert proc.stdout is not None
        progress = Progress(iter(proc.stdout.readline, b""))
        socket.connect(f"ipc://{control_dir}/gates")
        for i, (before, after, at) in enumerate(changes):
            if i:
                progress.wait_past(changes[i - 1][2] + 0.5)
            send(socket, gate_commands(plan, rendition, before=before, after=after, at=at))
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        socket.close()
        context.term()
        for f in outputs.values():
            f.close()
        shutil.rmtree(control_dir, ignore_errors=True)
    assert proc.returncode == 0, stderr.decode(errors="replace")[-2000:]


@pytest.fixture
def plan() -> LadderPlan:
    return plan_ladder(load_profile("default"), SourceInfo(854, 480, 30, "h264", True), "low")


def test_closed_gate_stops_a_rung_at_a_keyframe_and_reopens_it_aligned(
    plan: LadderPlan, tmp_path: Path
) -> None:
    assert plan.names == ("480p", "360p") and plan.gop_duration == 1.0
    # Give 480p up from the keyframe at 3 s, and take it back at 6 s.
    encode_with_gates(plan, tmp_path, 10, "480p", [(OPEN, CLOSED, 3.0), (CLOSED, OPEN, 6.0)])

    low = video_packets(tmp_path / "360p.mp4")
    origin = low[0][0]  # both outputs' presentation times start a frame in (the edit list)
    low = [(t - origin, key) for t, key in low]
    top = [(t - origin, key) for t, key in video_packets(tmp_path / "480p.mp4")]
    frame = 1 / 30
    # The lower rung never noticed: every frame, a keyframe each GOP, nothing else forced.
    assert len(low) >= 295
    assert all(abs((b - a) - frame) < 1e-3 for (a, _), (b, _) in itertools.pairwise(low))
    low_keys = [round(t, 3) for t, key in low if key]
    assert low_keys == [float(s) for s in range(len(low_keys))]
    # 480p: whole GOPs up to 3 s, nothing from 3 s to 6 s, a keyframe at exactly 6 s,
    # then one per GOP again, aligned with 360p's.
    before = [t for t, _ in top if t < 3 - frame / 2]
    after = [(t, key) for t, key in top if t > 3 - frame / 2]
    assert len(before) == 90, (top[:3], before[-3:], after[:3])
    assert abs(after[0][0] - 6.0) < 1e-3 and after[0][1], after[:3]
    keys = [round(t, 3) for t, key in top if key]
    assert keys == [t for t in low_keys if t < 3 or t >= 6]


def fragments(path: Path) -> list[Fragment]:
    """Every fragment of a fragmented MP4 file, as golive's packager reads them."""
    reader = FragmentReader()
    return [f for f in reader.feed(path.read_bytes()) if isinstance(f, Fragment)]


def test_a_lowered_rate_halves_a_rung_from_a_keyframe_and_restores_it(
    plan: LadderPlan, tmp_path: Path
) -> None:
    """The frame-rate degrade step, without a restart: from the keyframe at 3 s 360p gets
    one frame in two, from the one at 6 s every frame again; 480p never notices, and
    360p's parts stay whole and back to back (what the packager lists as parts)."""
    assert plan.frame_rate_divisor("360p") == 2
    full, half = GateState(), GateState(divisor=2)
    encode_with_gates(plan, tmp_path, 9, "360p", [(full, half, 3.0), (half, full, 6.0)])

    low = video_packets(tmp_path / "360p.mp4")
    origin = low[0][0]
    low = [(t - origin, key) for t, key in low]
    top = [(t - origin, key) for t, key in video_packets(tmp_path / "480p.mp4")]
    frame = 1 / 30
    steps = [(round(a, 3), round(b - a, 4)) for (a, _), (b, _) in itertools.pairwise(low)]
    odd = [(a, d) for a, d in steps if abs(d - (2 * frame if 3 <= a < 6 else frame)) > 1e-3]
    assert not odd, odd[:5]
    assert len(top) >= 265 and all(
        abs((b - a) - frame) < 1e-3 for (a, _), (b, _) in itertools.pairwise(top)
    )
    # Each frame lasts until the next one in the file too (the trun durations players
    # add up), at the parts' ends included.
    lasting = video_samples(tmp_path / "360p.mp4")
    short = [(round(a, 3), d) for (a, d), (b, _) in itertools.pairwise(lasting)
             if abs((b - a) - d) > 1e-4]
    assert not short, short[:5]
    assert sum(1 for _, d in lasting if abs(d - 2 * frame) < 1e-4) == 45  # 3 s at 15 fps
    low_keys = [round(t, 3) for t, key in low if key]
    assert low_keys == [round(t, 3) for t, key in top if key]
    assert low_keys[:9] == [float(s) for s in range(9)]
    # The parts: cut where the untouched 480p's are, with the same decode times and
    # durations, so the packager lists the same parts for both.
    parts = [(round(f.decode_time, 4), round(f.duration, 4))
             for f in fragments(tmp_path / "360p.mp4")]
    top_parts = [(round(f.decode_time, 4), round(f.duration, 4))
                 for f in fragments(tmp_path / "480p.mp4")]
    assert parts[:-1] == top_parts[: len(parts) - 1], [
        (a, b) for a, b in zip(parts, top_parts, strict=False) if a != b][:5]
