"""Starve a node's ffmpeg of CPU on demand, for the degrade tests (tests/web/test_players_degrade.py).

golive's ffmpeg runs through a wrapper that, while a test starves it, starts it at
nice 19 pinned to one core beside a busy loop pinned to the same core: it then gets
a few percent of that core and falls far below real time. golive starts ffmpeg in a
session of its own, and with the scheduler's autogroups a nice value only counts
inside its session, so the wrapper lowers its session's (autogroup's) priority too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.e2e.conftest import eventually, node_settings
from tests.mediatools import FFMPEG

from golive.app import Golive
from golive.core import Event

# A small ladder from the 640x360 30 fps source (cheap when not starved, so recovery does
# not depend on how busy the machine is), quick to decide in both directions.
PROFILE = """
name = "starve"
version = 1
[[renditions]]
name = "360p"
height = 360
max_frame_rate = 30
video_bitrate_kbps = 700
maxrate_kbps = 770
bufsize_kbps = 770
x264_profile = "main"
[[renditions]]
name = "180p"
height = 180
max_frame_rate = 30
video_bitrate_kbps = 250
maxrate_kbps = 275
bufsize_kbps = 275
x264_profile = "main"
[alerts]
slow_encode_seconds = 5
min_ingest_bitrate_kbps = 0
[fallback]
recover_after_seconds = 4
"""


class Starvation:
    """Starves golive's ffmpeg of CPU on demand: a wrapper for new runs, a busy loop, renice."""

    def __init__(self, directory: Path) -> None:
        self.core = max(os.sched_getaffinity(0))
        self.flag = directory / "starve"
        self.wrapper = directory / "ffmpeg"
        # Only an ffmpeg in a session of its own (the transcoder: golive starts it so) lowers
        # its autogroup. Any other ffmpeg the node runs while starved (capabilities, the
        # slate, thumbnails) shares the node's autogroup, which is the test process's:
        # lowered, the busy loop and the node sank with it, the next starved ffmpeg got half
        # a core instead of a few percent, and every later starvation test waited in vain
        # for the encoder to fall behind (make test's serial phase, after one such run).
        self.wrapper.write_text(
            "#!/bin/sh\n"
            f'if [ -e "{self.flag}" ]; then\n'
            '  if [ "$(cut -d " " -f 6 /proc/$$/stat)" = "$$" ]; then\n'
            "    echo 19 > /proc/self/autogroup 2>/dev/null\n"
            "  fi\n"
            f'  exec nice -n 19 taskset -c {self.core} "{FFMPEG}" "$@"\n'
            "fi\n"
            f'exec "{FFMPEG}" "$@"\n'
        )
        # And a test process an earlier run of the old wrapper (or anything else) left
        # lowered gets its priority back. Raising it may need privileges: then as it is.
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text("0")
        self.wrapper.chmod(0o755)
        self.busy: subprocess.Popen[bytes] | None = None

    def start(self, ffmpeg_pid: int | None) -> None:
        self.flag.touch()
        self.busy = subprocess.Popen(
            [sys.executable, "-c",
             f"import os\nos.sched_setaffinity(0, {{{self.core}}})\nwhile True:\n    pass\n"],
        )  # fmt: skip
        if ffmpeg_pid is not None:  # the run already going
            self._set(ffmpeg_pid, {self.core}, 19)
            with contextlib.suppress(OSError):
                Path(f"/proc/{ffmpeg_pid}/autogroup").write_text("19")

    def stop(self, ffmpeg_pid: int | None) -> None:
        self.flag.unlink(missing_ok=True)
        if self.busy is not None:
            self.busy.kill()
            self.busy.wait()
            self.busy = None
        if ffmpeg_pid is not None:
            self._set(ffmpeg_pid, os.sched_getaffinity(0), 0)
            with contextlib.suppress(OSError):  # lowering it back may need privileges
                Path(f"/proc/{ffmpeg_pid}/autogroup").write_text("0")

    @staticmethod
    def _set(pid: int, cores: set[int], nice: int) -> None:
        """Every thread of `pid` (x264 runs several) onto `cores` at `nice`."""
        with contextlib.suppress(FileNotFoundError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.sched_setaffinity(int(tid), cores)
                    os.setpriority(os.PRIO_PROCESS, int(tid), nice)


@contextlib.asynccontextmanager
async def starved_golive(tmp_path: Path) -> AsyncIterator[tuple[Golive, Starvation]]:
    """A node whose ffmpeg runs through the starvation wrapper, with the "starve" profile."""
    starvation = Starvation(tmp_path)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "starve.toml").write_text(PROFILE)
    settings = node_settings(tmp_path, ffmpeg=str(starvation.wrapper), profiles_dir=profiles)
    try:
        async with Golive(settings) as node:
            yield node, starvation
    finally:
        starvation.stop(None)


def transcoder_pid(node: Golive, stream_id: str) -> int | None:
    assert node.pipeline is not None
    pipeline = node.pipeline.for_stream(stream_id)
    return pipeline.transcoder.pid if pipeline and pipeline.transcoder else None


class DegradeWarnings:
    """The node's `live_stream.warning`s, in order; waits for a given degrade step."""

    def __init__(self, node: Golive) -> None:
        self._events = node.bus.subscribe(accept=lambda e: e.type == "live_stream.warning")
        self.seen: list[dict[str, Any]] = []

    async def step(self, code: str, step: int, timeout: float = 120) -> dict[str, Any]:
        """The first warning `code` (slow_encode, encode_recovered) that moved to `step`."""

        async def check() -> dict[str, Any] | None:
            with contextlib.suppress(TimeoutError):
                event: Event = await asyncio.wait_for(self._events.__anext__(), 0.5)
                self.seen.append(dict(event.data))
            return next((d for d in self.seen if d["code"] == code and d.get("step") == step), None)

        return await eventually(check, timeout=timeout, what=f"{code} at step {step}")

    def steps(self) -> list[tuple[str, int]]:
        return [
            (d["code"], d["step"])
            for d in self.seen
            if d["code"] in ("slow_encode", "encode_recovered")
        ]

    def close(self) -> None:
        self._events.close()
