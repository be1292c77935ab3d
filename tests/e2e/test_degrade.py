"""An encoder starved of CPU degrades step by step and recovers; no playlist a player holds 404s.

golive's ffmpeg runs through a wrapper that, while the test starves it, starts it at
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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest
from tests.e2e.conftest import ADMIN, create_stream, eventually, node_settings, wait_status
from tests.llhls_rules import check_media_playlist, check_multivariant
from tests.mediatools import FFMPEG, ffmpeg_publish, stop

from golive.app import Golive
from golive.core import Event

pytestmark = pytest.mark.slow

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
        self.wrapper.write_text(
            "#!/bin/sh\n"
            f'if [ -e "{self.flag}" ]; then\n'
            "  echo 19 > /proc/self/autogroup 2>/dev/null\n"
            f'  exec nice -n 19 taskset -c {self.core} "{FFMPEG}" "$@"\n'
            "fi\n"
            f'exec "{FFMPEG}" "$@"\n'
        )
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


@dataclass
class Player:
    """Loads the multivariant once, then reloads every media playlist it listed, as a player
    holding the whole ladder does; records every answer."""

    hls: httpx.AsyncClient
    pid: str
    uris: list[str] = field(default_factory=list)
    answers: list[tuple[str, int]] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    gaps_seen: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)

    async def run(self) -> None:
        multivariant = (await self.hls.get(f"{self.pid}.m3u8")).text
        check_multivariant(multivariant)
        self.uris = [line for line in multivariant.splitlines() if line and line[0] != "#"]
        while True:
            for uri in self.uris:
                response = await self.hls.get(uri)
                self.answers.append((uri, response.status_code))
                if response.status_code != 200:
                    continue
                self.texts[uri] = response.text
                try:
                    check_media_playlist(response.text, low_latency=True)
                except AssertionError as exc:
                    self.violations.append(f"{uri}: {exc}")
                if "#EXT-X-GAP" in response.text:
                    self.gaps_seen.add(uri)
            await asyncio.sleep(0.25)


@pytest.fixture
async def starved_node(tmp_path: Path) -> AsyncIterator[tuple[Golive, Starvation]]:
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


@contextlib.contextmanager
def published(source: Path, url: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = ffmpeg_publish(source, url, loop=True)
    try:
        yield proc
    finally:
        stop(proc)


def transcoder_pid(node: Golive, stream_id: str) -> int | None:
    assert node.pipeline is not None
    pipeline = node.pipeline.for_stream(stream_id)
    return pipeline.transcoder.pid if pipeline and pipeline.transcoder else None


@pytest.mark.timeout(300)
async def test_starved_encoder_degrades_in_order_and_recovers_without_a_404(
    starved_node: tuple[Golive, Starvation], source_flv: Path
) -> None:
    node, starvation = starved_node
    warnings = node.bus.subscribe(accept=lambda e: e.type == "live_stream.warning")
    seen: list[dict[str, Any]] = []

    async def next_step(code: str, step: int) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            with contextlib.suppress(TimeoutError):
                event: Event = await asyncio.wait_for(warnings.__anext__(), 0.5)
                seen.append(dict(event.data))
            return next((d for d in seen if d["code"] == code and d.get("step") == step), None)

        return await eventually(check, timeout=120, what=f"{code} at step {step}")

    async with httpx.AsyncClient(
        base_url=f"{node.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    ) as api, httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30) as hls:  # fmt: skip
        stream = await create_stream(api, name="starve", profile="starve")
        pid = stream["playback_ids"][0]["id"]
        with published(source_flv, node.rtmp_url(stream["stream_key"])):
            await wait_status(api, stream["id"], "active")

            async def ready() -> bool:
                response = await hls.get(f"{pid}.m3u8")
                if response.status_code != 200 or response.text.count("#EXT-X-STREAM-INF") != 2:
                    return False
                for name in ("360p", "180p"):
                    media = await hls.get(f"{pid}/{name}.m3u8")
                    if media.status_code != 200 or media.text.count("#EXTINF") < 3:
                        return False
                return True

            await eventually(ready, timeout=60, what="both renditions with three segments")
            player = Player(hls, pid)
            playing = asyncio.create_task(player.run())
            try:
                starvation.start(transcoder_pid(node, stream["id"]))
                # Cheaper first: a faster preset, half the frame rate on 180p, then 360p goes.
                preset = await next_step("slow_encode", 1)
                fps = await next_step("slow_encode", 2)
                drop = await next_step("slow_encode", 3)
                multivariant = (await hls.get(f"{pid}.m3u8")).text
                assert f"{pid}/360p.m3u8" not in multivariant  # new sessions do not get it

                async def gap_listed() -> bool:
                    return f"{pid}/360p.m3u8" in player.gaps_seen

                await eventually(gap_listed, timeout=30, what="EXT-X-GAP on 360p")
                starvation.stop(transcoder_pid(node, stream["id"]))
                back = await next_step("encode_recovered", 2)  # 360p returns first
                await next_step("encode_recovered", 0)

                async def listed_again() -> bool:
                    text = (await hls.get(f"{pid}.m3u8")).text
                    return f"{pid}/360p.m3u8" in text

                await eventually(listed_again, timeout=30, what="360p back in the multivariant")
                await asyncio.sleep(2)  # a few more reloads of the resumed playlist
            finally:
                starvation.stop(None)
                playing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await playing
                warnings.close()

    assert preset["action"] == "preset" and preset["preset"] == "superfast"
    assert preset["fps"] == {"360p": 30.0, "180p": 30.0} and preset["speed"] < 0.95
    assert fps["action"] == "frame_rate" and fps["fps"] == {"360p": 30.0, "180p": 15.0}
    assert drop["action"] == "drop" and drop["rendition"] == "360p"
    assert drop["renditions"] == ["180p"]
    assert back["rendition"] == "360p" and back["renditions"] == ["360p", "180p"]
    steps = [(d["code"], d["step"]) for d in seen if d["code"] in ("slow_encode", "encode_recovered")]
    down = [s for c, s in steps if c == "slow_encode"]
    assert down[:3] == [1, 2, 3] and all(s == 3 for s in down[3:])  # 3: nothing cheaper left
    assert [s for c, s in steps if c == "encode_recovered"] == [2, 1, 0]
    # Not one 404 (nor any other error) on a playlist the player held, and every answer valid.
    assert player.answers and {status for _, status in player.answers} == {200}
    assert not player.violations, player.violations[:3]
    resumed = m3u8.loads(player.texts[f"{pid}/360p.m3u8"])
    assert resumed.segments[-1].gap_tag is None  # real media again after the gaps
