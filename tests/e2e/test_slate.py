"""A slate, not a stall: while nobody publishes inside the reconnect window, the renditions
keep playing a "We'll be right back" card with silent audio.

A red publisher is killed: the LL-HLS playlists keep advancing (new parts, later
program date-times, no EXT-X-ENDLIST) and the newest segment decodes to the slate's
dark card; the publisher returns in the same broadcast and its red is back; the slate
goes on and off the air inside the one running ffmpeg (same pid, no discontinuity); killed again and never back, the window ends the broadcast
(EXT-X-ENDLIST) as before. A profile with `slate = false` keeps the old behaviour.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import create_stream, eventually, get_stream, segment_rgb, wait_status
from tests.mediatools import ffmpeg_publish, make_source, stop

from golive.app import Golive
from golive.core import Event

pytestmark = pytest.mark.slow

NO_SLATE = """name = "noslate"
version = 1
[[renditions]]
name = "360p"
height = 360
video_bitrate_kbps = 400
[encoder]
x264_preset = "ultrafast"
[fallback]
slate = false
"""


@pytest.fixture(scope="session")
def red_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("media") / "red.flv", video="color=c=red")


async def _text(hls: httpx.AsyncClient, path: str) -> str | None:
    response = await hls.get(path)
    return response.text if response.status_code == 200 else None


def _media_uri(multivariant: str) -> str:
    return next(line for line in multivariant.splitlines() if line and not line.startswith("#"))


async def _picture(hls: httpx.AsyncClient, uri: str) -> str | None:
    """"red", "slate" or what else the first frame of the newest whole segment looks like
    (its mean colour); None before there is one."""
    rgb = await segment_rgb(hls, uri, after_discontinuity=False, newest=True)
    if rgb is None:
        return None
    r, g, b = rgb
    if r > 2 * b and r > 2 * g:
        return "red"
    # The card: dark blue-grey (0x1d2633) with a line of white text.
    if b >= r and b >= g and max(r, g, b) < 140:
        return "slate"
    return f"other ({r}, {g}, {b})"


def _tail(text: str) -> tuple[str, datetime]:
    """The playlist's last part URI and its last program date-time."""
    parts = re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', text)
    dates = re.findall(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)", text)
    assert parts and dates, text
    return parts[-1], datetime.fromisoformat(dates[-1].replace("Z", "+00:00"))


async def test_slate_plays_while_the_publisher_is_away_and_it_takes_back_over(
    node: Golive, api: httpx.AsyncClient, red_flv: Path
) -> None:
    stream = await create_stream(api, reconnect_window=15)
    sid, pid = stream["id"], stream["playback_ids"][0]["id"]
    events = node.bus.subscribe(accept=lambda e: e.stream_id == sid and e.type in (
        "live_stream.warning", "live_stream.connected", "live_stream.idle"))
    hls = httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30)
    url = node.rtmp_url(stream["stream_key"])
    publisher = ffmpeg_publish(red_flv, url, loop=True)

    async def next_event(type_: str) -> Event:
        while True:
            event = await asyncio.wait_for(events.__anext__(), 60)
            if event.type == type_ and (type_ != "live_stream.warning"
                                        or event.data.get("reason") == "slate"):
                return event

    def shows(picture: str) -> Any:
        async def check() -> bool:
            return await _picture(hls, uri) == picture
        return check

    try:
        live = await wait_status(api, sid, "active", timeout=60)
        broadcast_id = live["live"]["broadcast_id"]
        uri = _media_uri(await eventually(lambda: _text(hls, f"{pid}.m3u8"), timeout=60,
                                          what="multivariant playlist"))
        await next_event("live_stream.connected")
        await eventually(lambda: _text(hls, uri), timeout=60, what="media playlist")
        await eventually(shows("red"), timeout=60, what="the publisher's red")
        assert node.pipeline is not None
        running = node.pipeline.for_stream(sid)
        assert running is not None and running.transcoder is not None
        transcoder = running.transcoder

        publisher.kill()
        publisher.wait()
        warning = await next_event("live_stream.warning")
        assert warning.broadcast_id == broadcast_id
        facts = (await get_stream(api, sid))["live"]
        assert facts["role"] == "slate" and not facts["connected"]
        # The slate's bytes are no publisher's: the ingest bitrate floor waits for one.
        assert not transcoder.publisher_feeding
        await eventually(shows("slate"), timeout=60, what="the slate in LL-HLS")

        # The playlist keeps advancing on the slate: new parts, later dates, no end.
        text = (await hls.get(uri)).text
        part, date = _tail(text)

        async def advanced() -> str | None:
            now = (await hls.get(uri)).text
            later_part, later_date = _tail(now)
            return now if later_part != part and later_date > date else None

        text = await eventually(advanced, timeout=30, what="new parts on the slate")
        assert "#EXT-X-ENDLIST" not in text

        # The publisher returns: same broadcast, its picture back, the playlist goes on.
        publisher = ffmpeg_publish(red_flv, url, loop=True)
        resumed = await next_event("live_stream.connected")
        assert resumed.broadcast_id == broadcast_id and resumed.data["resumed"] is True
        await eventually(shows("red"), timeout=60, what="the publisher's red after the slate")
        text = (await hls.get(uri)).text
        assert "#EXT-X-ENDLIST" not in text
        assert len(set(re.findall(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text))) == 1
        # On and off the air without a restart: one ffmpeg, one timeline.
        assert "#EXT-X-DISCONTINUITY" not in text
        assert running.transcoder is transcoder and transcoder.stats.restarts == 0
        assert running.spliced_inputs == 2 and transcoder.publisher_feeding
        facts = (await get_stream(api, sid))["live"]
        assert facts["broadcast_id"] == broadcast_id and facts["role"] == "primary"

        # Gone for good: the slate plays until the window ends the broadcast as before.
        publisher.kill()
        publisher.wait()
        await next_event("live_stream.warning")
        idle = await next_event("live_stream.idle")
        assert idle.data["reason"] == "reconnect window elapsed"
        await eventually(lambda: _ended(hls, uri), timeout=30, what="EXT-X-ENDLIST")
        assert (await get_stream(api, sid))["live"] is None
    finally:
        events.close()
        stop(publisher)
        await hls.aclose()


async def _ended(hls: httpx.AsyncClient, uri: str) -> bool:
    return "#EXT-X-ENDLIST" in (await hls.get(uri)).text


async def test_without_a_slate_the_playlists_wait_for_the_publisher(
    node: Golive, api: httpx.AsyncClient, red_flv: Path
) -> None:
    profiles = node.settings.resolved_profiles_dir
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "noslate.toml").write_text(NO_SLATE)
    stream = await create_stream(api, profile="noslate", reconnect_window=3)
    sid, pid = stream["id"], stream["playback_ids"][0]["id"]
    warnings = node.bus.subscribe(accept=lambda e: e.stream_id == sid
                                  and e.type == "live_stream.warning")
    idle = node.bus.subscribe(accept=lambda e: e.stream_id == sid and e.type == "live_stream.idle")
    publisher = ffmpeg_publish(red_flv, node.rtmp_url(stream["stream_key"]), loop=True)
    try:
        await wait_status(api, sid, "active", timeout=60)
        async with httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30) as hls:
            uri = _media_uri(await eventually(lambda: _text(hls, f"{pid}.m3u8"), timeout=60,
                                              what="multivariant playlist"))
            await eventually(lambda: _text(hls, uri), timeout=60, what="media playlist")
            publisher.kill()
            publisher.wait()
            facts = await eventually(lambda: _reconnecting(api, sid), what="reconnecting")
            assert facts["role"] is None
            await asyncio.wait_for(idle.__anext__(), 30)
            await eventually(lambda: _ended(hls, uri), timeout=30, what="EXT-X-ENDLIST")
            text = (await hls.get(uri)).text
            assert "#EXT-X-DISCONTINUITY" not in text  # nothing played after the publisher
        assert not [e for e in _drain(warnings) if e.data.get("reason") == "slate"]
    finally:
        warnings.close()
        idle.close()
        stop(publisher)


async def _reconnecting(api: httpx.AsyncClient, sid: str) -> dict[str, Any] | None:
    facts = (await get_stream(api, sid))["live"]
    return facts if facts and facts["state"] == "reconnecting" else None


def _drain(subscription: Any) -> list[Event]:
    got: list[Event] = []
    while (event := subscription.get_nowait()) is not None:
        got.append(event)
    return got
