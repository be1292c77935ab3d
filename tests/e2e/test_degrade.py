"""An encoder starved of CPU degrades step by step and recovers; no playlist a player holds 404s.

The starvation (tests/starvation.py): golive's ffmpeg at the lowest priority, pinned to
one core beside a busy loop pinned to the same core.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import m3u8
import pytest
from tests.e2e.conftest import ADMIN, create_stream, eventually, wait_status
from tests.llhls_rules import check_media_playlist, check_multivariant
from tests.mediatools import ffmpeg_publish, stop
from tests.starvation import DegradeWarnings, Starvation, starved_golive, transcoder_pid

from golive.app import Golive

# serial: it starves the CPU on purpose, so it runs alone (make test).
pytestmark = [pytest.mark.slow, pytest.mark.serial]


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
    async with starved_golive(tmp_path) as started:
        yield started


@contextlib.contextmanager
def published(source: Path, url: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = ffmpeg_publish(source, url, loop=True)
    try:
        yield proc
    finally:
        stop(proc)


@pytest.mark.timeout(420)
async def test_starved_encoder_degrades_in_order_and_recovers_without_a_404(
    starved_node: tuple[Golive, Starvation], source_flv: Path
) -> None:
    node, starvation = starved_node
    warnings = DegradeWarnings(node)
    next_step = warnings.step
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

                async def left_out() -> bool:  # new sessions do not get it, once its output
                    text = (await hls.get(f"{pid}.m3u8")).text  # reached the gate instant
                    return f"{pid}/360p.m3u8" not in text

                # The gate instant is up to two GOPs past where the encoder was, and a
                # starved encoder makes media at a few hundredths of real time (0.04x
                # seen in make test): 360p's output may take a minute to get there, and
                # the first gap after it as long again.
                await eventually(left_out, timeout=90, what="360p out of the multivariant")

                async def gap_listed() -> bool:
                    return f"{pid}/360p.m3u8" in player.gaps_seen

                await eventually(gap_listed, timeout=90, what="EXT-X-GAP on 360p")
                starvation.stop(transcoder_pid(node, stream["id"]))
                back = await next_step("encode_recovered", 2)  # 360p returns first
                full = await next_step("encode_recovered", 0)

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
    # Halving 180p's frame rate, giving 360p up, taking it back and restoring the rate set
    # their gates in the running ffmpeg: no restart (so no discontinuity) from the
    # frame-rate step until the preset goes back, which restarts it.
    between = warnings.seen[warnings.seen.index(fps) : warnings.seen.index(full)]
    assert "transcoder_restarted" not in [d["code"] for d in between], between
    assert back in between
    # One step at a time, down while slow, up while keeping up (a relapse on a busy machine
    # may add a step down and up again), back to the full ladder.
    level = 0
    for code, step in warnings.steps():
        if code == "encode_recovered":
            assert step == level - 1, warnings.steps()
        else:
            assert step in (level, level + 1), warnings.steps()  # `level`: nothing cheaper left
        level = step
    assert level == 0 and warnings.steps()[:3] == [("slow_encode", s) for s in (1, 2, 3)]
    # Not one 404 (nor any other error) on a playlist the player held, and every answer valid.
    assert player.answers and {status for _, status in player.answers} == {200}
    assert not player.violations, player.violations[:3]
    resumed = m3u8.loads(player.texts[f"{pid}/360p.m3u8"])
    assert resumed.segments[-1].gap_tag is None  # real media again after the gaps
