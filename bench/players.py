"""Third-party players on golive's LL-HLS in Chromium: Shaka Player, video.js, hls.js.

One node in this process, one looped ffmpeg publisher (854x480 30 fps: the default ladder
makes 480p + 360p), and each player in turn, with its default configuration (Shaka in
lowLatencyMode), on a page served from another origin: the page of
tests/web/test_players.py, which reads the player's own API and the video element.
For each player, after its first frame and one settled second, `--seconds` of playback:

- ttff: time from page start to the first frame shown;
- fps: frames decoded and shown per wall second (getVideoPlaybackQuality, dropped frames
  left out); media fps: frames the element received per second of media played (below
  30 means media was skipped: parts not buffered, gaps jumped);
- stalls: the element ran out of media while playing; gaps: Shaka's jumped gaps;
- delay p50/p95: behind live, as the player's own API says, sampled twice a second.

    python bench/players.py [--seconds 60] [--players shaka,videojs,hlsjs]

Needs `make web` (scripts/build-web.sh) for build/players. Goal, on an idle machine:
every player at >= 29.5 fps with zero stalls.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402
from tests.e2e.conftest import ADMIN, node_settings  # noqa: E402
from tests.mediatools import make_source, stop  # noqa: E402
from tests.web.conftest import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402
from tests.web.test_players import (  # noqa: E402
    PLAYERS,
    PLAYERS_DIR,
    Sample,
    go_live,
    media_fps,
    page_url,
    serve_players,
    wait_first_frame,
    wait_played,
    wall_fps,
)

from golive.app import Golive  # noqa: E402

GOAL_FPS = 29.5


@dataclass(frozen=True)
class Result:
    player: str
    version: str
    ttff: float | None
    fps: float
    media_fps: float
    stalls: int
    gaps: int | None
    delays: list[float]
    fatal: list[str]

    @property
    def meets_goal(self) -> bool:
        return not self.fatal and self.stalls == 0 and self.fps >= GOAL_FPS


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(browser: Any, base: str, player: str, manifest: str, seconds: float) -> Result:
    page = await browser.new_page()
    try:
        await page.goto(page_url(base, player, manifest))
        await wait_first_frame(page, timeout=60)
        await wait_played(page, (await Sample.take(page)).current_time, 1, timeout=30)
        first = await Sample.take(page)
        delays: list[float] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            sample = await Sample.take(page)
            if sample.delay is not None:
                delays.append(sample.delay)
            if sample.fatal:
                break
        last = await Sample.take(page)
        return Result(
            player=player,
            version=last.version or "?",
            ttff=None if last.first_frame_ms is None else last.first_frame_ms / 1000,
            fps=wall_fps(first, last),
            media_fps=media_fps(first, last),
            stalls=last.stalls - first.stalls,
            gaps=None
            if last.gaps_jumped is None or first.gaps_jumped is None
            else last.gaps_jumped - first.gaps_jumped,
            delays=delays,
            fatal=last.fatal,
        )
    finally:
        await page.close()


def print_table(results: list[Result], seconds: float) -> None:
    print()
    print(f"LL-HLS players in Chromium, {seconds:.0f} s each, source 854x480@30 (480p + 360p)")
    header = (
        f"{'player':8} | {'version':26} | {'ttff s':>6} | {'fps':>5} | {'media fps':>9} | "
        f"{'stalls':>6} | {'gaps':>4} | {'delay p50':>9} | {'p95':>5} | goal"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        p50 = f"{statistics.median(r.delays):.2f}" if r.delays else "-"
        p95 = f"{percentile(r.delays, 0.95):.2f}" if r.delays else "-"
        ttff = f"{r.ttff:.2f}" if r.ttff is not None else "-"
        gaps = "-" if r.gaps is None else str(r.gaps)
        verdict = "ok" if r.meets_goal else "MISSED"
        print(
            f"{r.player:8} | {r.version[:26]:26} | {ttff:>6} | {r.fps:>5.1f} | "
            f"{r.media_fps:>9.1f} | {r.stalls:>6} | {gaps:>4} | {p50:>9} | {p95:>5} | {verdict}"
        )
        for error in r.fatal:
            print(f"  {r.player} fatal: {error}")
    print(f"\ngoal: >= {GOAL_FPS} fps and zero stalls for every player, on an idle machine")


async def run(seconds: float, players: list[str]) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="golive-bench-players-") as tmp:
        workdir = Path(tmp)
        source = make_source(workdir / "source.flv", size="854x480", video_kbps=1500)
        async with Golive(node_settings(workdir)) as node:
            async with httpx.AsyncClient(
                base_url=f"{node.http_url}/api/v1",
                headers={"Authorization": f"Bearer {ADMIN}"},
                timeout=10,
            ) as api:
                _, proc, manifest = await go_live(node, api, source)
                try:
                    async with async_playwright() as pw:
                        browser = await pw.chromium.launch(
                            executable_path=CHROMIUM, args=CHROMIUM_FLAGS
                        )
                        try:
                            with serve_players() as base:
                                return [
                                    await measure(browser, base, player, manifest, seconds)
                                    for player in players
                                ]
                        finally:
                            await browser.close()
                finally:
                    stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--players", default=",".join(PLAYERS))
    args = parser.parse_args()
    players = [p for p in args.players.split(",") if p]
    unknown = [p for p in players if p not in PLAYERS]
    if unknown:
        parser.error(f"unknown players {unknown}; choose from {list(PLAYERS)}")
    if not PLAYERS_DIR.exists():
        sys.exit("bench/players.py: players are not built: run `make web` (scripts/build-web.sh)")
    results = asyncio.run(run(args.seconds, players))
    print_table(results, args.seconds)


if __name__ == "__main__":
    main()
