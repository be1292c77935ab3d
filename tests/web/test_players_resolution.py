"""hls.js, Shaka Player and video.js in Chromium when the publisher returns at another resolution.

The broadcast starts at 1280x720 (a 720p, 480p and 360p ladder); the publisher drops
and comes back inside the reconnect window at 640x360. The node keeps the ladder
(`media/rejoin`), so each player goes on with the playlists it holds: no fatal error,
no playlist answering 404, and video again soon after the returning publisher's first
keyframe. That time is measured (printed) and asserted only against a generous bound.

"Video again" is the first frame the page renders whose media time lies past
everything the player had buffered when that keyframe reached the node: media the
old publisher never sent, so the new publisher's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import (  # noqa: F401  (fixtures)
    DumpObserver,
    KeyframeClock,
    eventually,
    source_720p,
    source_flv,
)
from tests.mediatools import ffmpeg_publish, stop
from tests.web.test_players import (  # noqa: F401  (the players fixture)
    PLAYERS,
    Sample,
    go_live,
    page_url,
    players,
    wait_first_frame,
    wait_played,
)

from golive.app import Golive

pytestmark = pytest.mark.slow

# Generous: a guard against a player that never recovers, not the goal (3 s).
VIDEO_AGAIN_LIMIT = 20.0

# Installed once the player shows its first frame: every rendered frame's media time,
# and `markRejoin()`, which notes how far the player had buffered at that moment.
WATCH_FRAMES = """
() => {
  const video = document.querySelector('video');
  const state = window.rejoin = {
    mark: null, bufferedEnd: null, againMs: null, againAt: null, bufferedMs: null};
  window.markRejoin = () => {
    const b = video.buffered;
    state.bufferedEnd = b.length ? b.end(b.length - 1) : video.currentTime;
    state.mark = performance.now();
    return state.bufferedEnd;
  };
  const onFrame = (now, meta) => {
    if (state.mark !== null && state.againMs === null && meta.mediaTime > state.bufferedEnd + 0.01) {
      state.againMs = performance.now() - state.mark;
      state.againAt = meta.mediaTime;
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  // When the new publisher's media first reaches the player's buffer.
  const timer = setInterval(() => {
    const b = video.buffered;
    if (state.mark === null || !b.length) return;
    if (b.end(b.length - 1) > state.bufferedEnd + 0.1) {
      state.bufferedMs = performance.now() - state.mark;
      clearInterval(timer);
    }
  }, 20);
}
"""


@pytest.mark.parametrize("player", PLAYERS)
async def test_player_survives_the_publisher_returning_at_a_lower_resolution(
    node: Golive,
    api: httpx.AsyncClient,
    source_720p: Path,  # noqa: F811
    source_flv: Path,  # noqa: F811
    browser: Any,
    players: str,  # noqa: F811
    player: str,
    tmp_path: Path,
) -> None:
    observer = DumpObserver(tmp_path)
    assert node.hub is not None
    node.hub.add_observer(observer)
    # About the publisher's own return: no slate in between (tests/e2e/test_slate.py).
    node.hub.use_slate(None)
    stream, proc, manifest = await go_live(node, api, source_720p, reconnect_window=30)
    try:
        page = await browser.new_page()
        playlist_errors: list[str] = []
        media_errors: list[str] = []

        def on_response(response: Any) -> None:
            if response.status >= 400:
                errors = playlist_errors if ".m3u8" in response.url else media_errors
                errors.append(f"{response.status} {response.url}")

        page.on("response", on_response)
        await page.goto(page_url(players, player, manifest))
        await wait_first_frame(page)
        await wait_played(page, (await Sample.take(page)).current_time, 3, timeout=60)
        await page.evaluate(WATCH_FRAMES)
        before = await Sample.take(page)
        broadcast = node.hub.broadcast(stream["id"])
        assert broadcast is not None
        keyframes = KeyframeClock()
        broadcast.add_sink(keyframes)

        proc.kill()  # the 720p publisher vanishes...
        proc.wait()
        await eventually(_seen(observer, "lost"), what="the hub to notice the publisher gone")
        keyframes.armed = True
        # ...and a 640x360 one takes its place inside the reconnect window.
        proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)

        async def keyframe() -> bool:
            return keyframes.at is not None

        await eventually(keyframe, timeout=30, what="the returning publisher's first keyframe")
        await page.evaluate("window.markRejoin()")
        assert keyframes.at is not None
        late = time.monotonic() - keyframes.at  # the mark came this long after the keyframe
        await page.wait_for_function(
            "() => window.probe.fatal.length > 0 || window.rejoin.againMs !== null",
            timeout=VIDEO_AGAIN_LIMIT * 1000 + 30_000,
            polling=100,
        )
        rejoin = await page.evaluate("window.rejoin")
        sample = await Sample.take(page)
        assert sample.fatal == [], sample.fatal
        again = late + rejoin["againMs"] / 1000
        buffered = late + rejoin["bufferedMs"] / 1000 if rejoin["bufferedMs"] is not None else None
        # It keeps playing the new publisher's media.
        await wait_played(page, rejoin["againAt"], 5, timeout=60)
        after = await Sample.take(page)
        print(
            f"\n{player} {after.version}: after the returning publisher's first keyframe, "
            f"its media buffered in {_seconds(buffered)} and shown in {again:.2f} s "
            f"(delay behind live before the drop {_seconds(before.delay)}, after "
            f"{_seconds(after.delay)}); stalls {after.stalls}; media errors "
            f"{len(media_errors)} {media_errors[:3]}"
        )
        assert after.fatal == [], after.fatal
        assert playlist_errors == [], playlist_errors
        assert again < VIDEO_AGAIN_LIMIT, again
        assert [kind for kind, _ in observer.events] == ["started", "lost", "resumed"]
    finally:
        stop(proc)


def _seen(observer: DumpObserver, kind: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        await asyncio.sleep(0)
        return any(k == kind for k, _ in observer.events)

    return check


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"
