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
    python bench/players.py --starve [--starved-seconds 20]

Needs `make web` (scripts/build-web.sh) for build/players. Goal, on an idle machine:
every player at >= 29.5 fps with zero stalls.

`--starve`: the degrade ladder under CPU starvation, every player at once. A node with
the tests' small "starve" ladder (360p + 180p from a 640x360 30 fps source), one page
per player watching the same broadcast; then golive's ffmpeg is starved
(tests/starvation.py: lowest priority, pinned beside a busy loop) until the ladder is at
its last step (preset, 180p at half rate, 360p given up), held there `--starved-seconds`,
and fed again until the full ladder is back, and `--seconds` more. Per player: fatal
errors, answers that failed (404 on a playlist or a part; 503 to a blocking reload is
counted apart: RFC 8216bis 6.2.5.2 asks for it when the server cannot answer in time,
players retry it), empty 204s on a hinted part a restart cut off, stalls, media
played while starved, seconds from the full ladder's return to playing again, and delay
behind live at the end. Goal: no fatal error and no 404 in any player.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402
from tests.e2e.conftest import ADMIN, node_settings  # noqa: E402
from tests.mediatools import make_source, stop  # noqa: E402
from tests.starvation import PROFILE as STARVE_PROFILE  # noqa: E402
from tests.starvation import (  # noqa: E402
    DegradeWarnings,
    Starvation,
    starved_golive,
    transcoder_pid,
)
from tests.web.conftest import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402
from tests.web.test_players import (  # noqa: E402
    PLAYERS,
    PLAYERS_DIR,
    Sample,
    go_live,
    media_fps,
    open_on_full_ladder,
    page_url,
    serve_players,
    wait_first_frame,
    wait_played,
    wall_fps,
)

from golive.app import Golive  # noqa: E402
from golive.media.health import degrade_steps  # noqa: E402
from golive.media.ladder import SourceInfo, plan_ladder  # noqa: E402
from golive.media.profiles import StreamProfile  # noqa: E402

GOAL_FPS = 29.5
# The ladder the starved node plans from the 640x360 30 fps source (for its last step).
STARVE_PLAN = plan_ladder(
    StreamProfile.model_validate(tomllib.loads(STARVE_PROFILE)),
    SourceInfo(640, 360, 30, "h264", True),
    "low",
)


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


@contextlib.asynccontextmanager
async def players_in_chromium() -> AsyncIterator[tuple[Any, str]]:
    """Headless Chromium, and the base URL of the player pages (another origin)."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            with serve_players() as base:
                yield browser, base
        finally:
            await browser.close()


@dataclass(frozen=True)
class StarvedResult:
    player: str
    version: str
    fatal: list[str]
    not_found: list[str]  # URLs answered 404
    held_503: int  # blocking reloads answered 503 (held past three target durations)
    other_failures: list[str]  # any other answer >= 400
    hinted_204: int
    stalls: int
    played_starved: float  # media seconds played while the ladder was degraded
    resumed_after: float | None  # seconds from the full ladder's return to playing on
    delay: float | None

    @property
    def meets_goal(self) -> bool:
        return not self.fatal and not self.not_found and not self.other_failures


async def run_starved(
    seconds: float, starved_seconds: float, players: list[str]
) -> tuple[list[StarvedResult], list[tuple[str, int]]]:
    """Every player on one broadcast through a starvation cycle; the degrade steps taken."""
    with tempfile.TemporaryDirectory(prefix="golive-bench-starved-") as tmp:
        workdir = Path(tmp)
        source = make_source(workdir / "source.flv")
        async with starved_golive(workdir) as (node, starvation):
            warnings = DegradeWarnings(node)
            async with httpx.AsyncClient(
                base_url=f"{node.http_url}/api/v1",
                headers={"Authorization": f"Bearer {ADMIN}"},
                timeout=10,
            ) as api:
                stream, proc, manifest = await go_live(
                    node, api, source, name="starve", profile="starve"
                )
                try:
                    async with players_in_chromium() as (browser, base):
                        results = await _starve_players(
                            browser, base, manifest, players, node, stream["id"],
                            starvation, warnings, seconds, starved_seconds,
                        )  # fmt: skip
                finally:
                    starvation.stop(None)
                    warnings.close()
                    stop(proc)
            return results, warnings.steps()


async def _starve_players(
    browser: Any,
    base: str,
    manifest: str,
    players: list[str],
    node: Golive,
    stream_id: str,
    starvation: Starvation,
    warnings: DegradeWarnings,
    seconds: float,
    starved_seconds: float,
) -> list[StarvedResult]:
    pages, answers = await open_on_full_ladder(browser, base, players, manifest)
    for page in pages.values():
        await wait_first_frame(page, timeout=60)
        await wait_played(page, (await Sample.take(page)).current_time, 2, timeout=60)
    first = {player: await Sample.take(page) for player, page in pages.items()}
    starvation.start(transcoder_pid(node, stream_id))
    last_step = len(degrade_steps(STARVE_PLAN, libx264=True)) - 1
    await warnings.step("slow_encode", last_step, timeout=180)
    await asyncio.sleep(starved_seconds)
    starvation.stop(transcoder_pid(node, stream_id))
    await warnings.step("encode_recovered", 0, timeout=180)
    back = {player: await Sample.take(page) for player, page in pages.items()}
    recovered = time.monotonic()
    resumed: dict[str, float | None] = {player: None for player in players}
    deadline = recovered + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        for player, page in pages.items():
            sample = await Sample.take(page)
            if resumed[player] is None and sample.current_time > back[player].current_time + 1:
                resumed[player] = time.monotonic() - recovered
    results = []
    for player, page in pages.items():
        last = await Sample.take(page)
        seen = answers[player]
        held = [u for u, status in seen if status == 503 and "_HLS_msn=" in u]
        results.append(StarvedResult(
            player=player,
            version=last.version or "?",
            fatal=last.fatal,
            not_found=[u for u, status in seen if status == 404],
            held_503=len(held),
            other_failures=[f"{status} {u}" for u, status in seen
                            if status >= 400 and status != 404 and u not in held],
            hinted_204=sum(1 for u, status in seen if status == 204),
            stalls=last.stalls - first[player].stalls,
            played_starved=back[player].current_time - first[player].current_time,
            resumed_after=resumed[player],
            delay=last.delay,
        ))  # fmt: skip
        await page.close()
    return results


def print_starved(results: list[StarvedResult], steps: list[tuple[str, int]]) -> None:
    print()
    print("LL-HLS players through a starved encoder (360p + 180p, every player at once)")
    print("degrade steps: " + ", ".join(
        f"{'down' if code == 'slow_encode' else 'up'} to {step}" for code, step in steps))
    header = (
        f"{'player':8} | {'version':26} | {'fatal':>5} | {'404':>4} | {'503 held':>8} | "
        f"{'other':>5} | {'204':>4} | {'stalls':>6} | {'played starved s':>16} | "
        f"{'resumed s':>9} | {'delay s':>7} | goal"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        resumed = "-" if r.resumed_after is None else f"{r.resumed_after:.1f}"
        delay = "-" if r.delay is None else f"{r.delay:.1f}"
        print(
            f"{r.player:8} | {r.version[:26]:26} | {len(r.fatal):>5} | {len(r.not_found):>4} | "
            f"{r.held_503:>8} | {len(r.other_failures):>5} | {r.hinted_204:>4} | "
            f"{r.stalls:>6} | {r.played_starved:>16.1f} | {resumed:>9} | {delay:>7} | "
            f"{'ok' if r.meets_goal else 'MISSED'}"
        )
        for error in r.fatal:
            print(f"  {r.player} fatal: {error}")
        for url in r.not_found[:5]:
            print(f"  {r.player} 404: {url}")
        for line in r.other_failures[:5]:
            print(f"  {r.player} failed: {line}")
    print("\ngoal: no fatal error and no 404 in any player while the ladder degrades and recovers")


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
                    async with players_in_chromium() as (browser, base):
                        return [
                            await measure(browser, base, player, manifest, seconds)
                            for player in players
                        ]
                finally:
                    stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--players", default=",".join(PLAYERS))
    parser.add_argument("--starve", action="store_true",
                        help="every player through a starved encoder's degrade and recovery")
    parser.add_argument("--starved-seconds", type=float, default=20,
                        help="how long the ladder stays at its last step (--starve)")
    args = parser.parse_args()
    players = [p for p in args.players.split(",") if p]
    unknown = [p for p in players if p not in PLAYERS]
    if unknown:
        parser.error(f"unknown players {unknown}; choose from {list(PLAYERS)}")
    if not PLAYERS_DIR.exists():
        sys.exit("bench/players.py: players are not built: run `make web` (scripts/build-web.sh)")
    if args.starve:
        starved, steps = asyncio.run(run_starved(args.seconds, args.starved_seconds, players))
        print_starved(starved, steps)
        return
    results = asyncio.run(run(args.seconds, players))
    print_table(results, args.seconds)


if __name__ == "__main__":
    main()
