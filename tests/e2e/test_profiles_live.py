"""A live broadcast keeps the profile version it started with: a new version changes nothing
on the air; a forced re-pin while live is applied live (the transcoder restarts once with
the new ladder: the rung that stays keeps its media playlist, the removed one goes on as
EXT-X-GAP and leaves the multivariant playlist); the next broadcast runs the new pin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import create_stream, eventually, get_stream, wait_status
from tests.mediatools import ffmpeg_publish, stop

from golive.app import Golive

pytestmark = pytest.mark.slow

SHOW = """name = "show"
version = {version}
owner = "events team"
{renditions}
[encoder]
x264_preset = "ultrafast"
"""
RUNG = '[[renditions]]\nname = "{h}p"\nheight = {h}\nvideo_bitrate_kbps = 300\n'


def write(profiles: Path, version: int, *heights: int) -> None:
    rungs = "".join(RUNG.format(h=h) for h in heights)
    (profiles / "show.toml").write_text(SHOW.format(version=version, renditions=rungs))


@pytest.mark.timeout(180)
async def test_a_forced_change_applies_live_and_the_next_broadcast_keeps_it(
    node: Golive, api: httpx.AsyncClient, source_flv: Path
) -> None:
    profiles = node.settings.resolved_profiles_dir
    profiles.mkdir(parents=True, exist_ok=True)
    write(profiles, 1, 180, 144)
    stream = await create_stream(api, profile="show")
    assert stream["profile"] == "show@1"
    sid, pid = stream["id"], stream["playback_ids"][0]["id"]

    async with httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=10) as hls:
        async def ladder(heights: int) -> str | None:
            response = await hls.get(f"{pid}.m3u8")
            if response.status_code != 200:
                return None
            text = response.text
            return text if text.count("#EXT-X-STREAM-INF") == heights else None

        async def on_air() -> str:
            """The profile the broadcast's transcoder runs, from its live facts."""
            live: dict[str, Any] = (await get_stream(api, sid)).get("live") or {}
            profile: str = (live.get("pipeline") or {}).get("profile", "")
            return profile

        async def playlist(rendition: str) -> str:
            response = await hls.get(f"{pid}/{rendition}.m3u8")
            assert response.status_code == 200, (rendition, response.status_code)
            return response.text

        proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, sid, "active")
            await eventually(lambda: ladder(2), timeout=60, what="the two-rung ladder")
            assert await on_air() == "show@1"
            broadcast = (await get_stream(api, sid))["active_broadcast_id"]
            write(profiles, 2, 180)  # the 144p rung goes

            url = f"/live-streams/{sid}"
            r = await api.patch(url, json={"profile": "show"})
            assert r.status_code == 409, r.text
            r = await api.patch(url, json={"profile": "show", "force": {
                "reason": "uplink at 60%", "fields": ["renditions"]}})
            assert r.status_code == 200, r.text
            assert r.json()["data"]["profile"] == "show@2"

            # Applied live, in the same broadcast: the multivariant has one rung for new
            # sessions; 180p goes on across a discontinuity; 144p answers with gaps.
            await eventually(lambda: ladder(1), timeout=60, what="the one-rung multivariant")

            async def applied() -> bool:
                return await on_air() == "show@2"

            await eventually(applied, timeout=30, what="show@2 on the air")
            assert (await get_stream(api, sid))["active_broadcast_id"] == broadcast

            async def advanced_after_restart() -> str | None:
                text = await playlist("180p")
                after = text.rpartition("#EXT-X-DISCONTINUITY")[2]
                return text if "#EXT-X-DISCONTINUITY" in text and "#EXTINF" in after else None

            await eventually(advanced_after_restart, timeout=60,
                             what="180p segments after the restart")

            async def gaps() -> str | None:
                text = await playlist("144p")
                return text if "#EXT-X-GAP" in text else None

            await eventually(gaps, timeout=60, what="EXT-X-GAP on the removed 144p")
        finally:
            stop(proc)
        await wait_status(api, sid, "idle", timeout=30)  # the reconnect window runs out

        events = (await api.get(f"{url}/events")).json()["data"]
        [forced] = [e for e in events if e["type"] == "live_stream.updated"
                    and "forced" in e["data"]]
        assert forced["broadcast_id"] == broadcast
        assert forced["data"]["forced"]["reason"] == "uplink at 60%"
        assert [c["field"] for c in forced["data"]["forced"]["changed"]][:1] == [
            "renditions[1].name"]

        proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, sid, "active")
            await eventually(lambda: ladder(1), timeout=60, what="the one-rung ladder again")
            assert await on_air() == "show@2"
        finally:
            stop(proc)
