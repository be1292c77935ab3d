"""Destinations (simulcast) end to end: a node forwards a live stream to a real SRT
listener (which is killed and comes back) while a dead target errors and retries; the
studio lists both; the LL-HLS output carries on."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import ADMIN, create_stream, eventually, node_settings, wait_status
from tests.mediatools import FFPROBE, ffmpeg_publish, ffprobe, stop
from tests.nginxedge import NGINX, free_port, nginx_rtmp_conf, wait_listening
from tests.web.conftest import browser, chromium  # noqa: F401  (fixtures used here)
from tests.web.helpers import ConsoleLog

from golive.app import Golive

pytestmark = pytest.mark.slow

SRT_LIVE_TRANSMIT = shutil.which("srt-live-transmit") or "/usr/bin/srt-live-transmit"
DEAD_KEY = "live_secretkey123"


def srt_listener(port: int, into: Path) -> subprocess.Popen[bytes]:
    """srt-live-transmit listening on `port`, writing what it receives to `into`."""
    with into.open("wb") as out:
        return subprocess.Popen(
            [SRT_LIVE_TRANSMIT, "-q", f"srt://127.0.0.1:{port}?mode=listener", "file://con"],
            stdout=out, stderr=subprocess.DEVNULL)


def decoded_frames(path: Path) -> int:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().split(",")[0])


async def media_playlist(hls: httpx.AsyncClient, pid: str) -> tuple[str, str]:
    """The first rendition's URI and its playlist text."""
    multivariant = (await hls.get(f"{pid}.m3u8")).text
    uri = next(line for line in multivariant.splitlines() if line and not line.startswith("#"))
    return uri, (await hls.get(uri)).text


def last_msn(playlist: str) -> int:
    match = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist)
    assert match is not None, playlist
    return int(match.group(1)) + playlist.count("#EXTINF") - 1


async def test_forwards_to_srt_a_dead_target_errors_and_hls_is_unaffected(
    tmp_path: Path, source_flv: Path, browser: Any  # noqa: F811
) -> None:
    settings = node_settings(tmp_path, destination_allow_private_targets=True)
    srt_port, dead_port = free_port(), free_port()
    received = tmp_path / "received.ts"
    listener = srt_listener(srt_port, received)
    publisher: subprocess.Popen[bytes] | None = None
    try:
        async with Golive(settings) as node, httpx.AsyncClient(
            base_url=f"{node.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=10,
        ) as api, httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30) as hls:
            stream = await create_stream(api, name="simulcast")
            sid, pid = stream["id"], stream["playback_ids"][0]["id"]
            path = f"/live-streams/{sid}/destinations"

            # Refused at create, with the reason; the key is never shown in full.
            bad = await api.post(path, json={"name": "x", "url": "http://127.0.0.1/app"})
            assert bad.status_code == 422 and "rtmp://, rtmps:// or srt://" in bad.text
            dead = (await api.post(path, json={
                "name": "dead", "url": f"rtmp://127.0.0.1:{dead_port}/app", "key": DEAD_KEY,
            })).json()["data"]
            assert dead["key"] == "*" * (len(DEAD_KEY) - 4) + DEAD_KEY[-4:]
            assert dead["status"] == "idle"

            publisher = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]),
                                       loop=True)
            await wait_status(api, sid, "active")
            # Added while live: forwarded at once.
            srt = await api.post(path, json={"name": "srt", "url": f"srt://127.0.0.1:{srt_port}"})
            assert srt.status_code == 201, srt.text
            srt_id = srt.json()["data"]["id"]

            async def states() -> dict[str, dict[str, Any]] | None:
                listed = (await api.get(path)).json()["data"]
                by_id = {d["id"]: d for d in listed}
                good, failed = by_id[srt_id], by_id[dead["id"]]
                if (good["status"] == "live" and failed["status"] == "errored"
                        and failed["attempts"] >= 2):
                    return by_id
                return None

            by_id = await eventually(states, timeout=60,
                                     what="the SRT target live, the dead one retried")
            failed = by_id[dead["id"]]
            assert failed["reason"] and "ffmpeg exited" in failed["reason"], failed
            assert DEAD_KEY not in (await api.get(path)).text
            assert failed["since"] is not None

            # The studio's stream page lists both with their state and the error's reason.
            page = await (await browser.new_context()).new_page()
            console = ConsoleLog(page)
            await page.goto(f"{node.http_url}/studio/login")
            await page.fill("#token", ADMIN)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{node.http_url}/studio", timeout=10_000)
            await page.goto(f"{node.http_url}/studio/streams/{sid}")
            await page.locator(f'#destination-list .destination-live[data-destination="{srt_id}"]'
                               ).wait_for(timeout=20_000)
            errored = page.locator(
                f'#destination-list .destination-errored[data-destination="{dead["id"]}"]')
            await errored.wait_for(timeout=20_000)
            text = await errored.inner_text()
            assert "ffmpeg exited" in text and DEAD_KEY not in text
            assert not [e for e in console.errors if e.startswith("pageerror")], console.errors

            # The LL-HLS output is unaffected: its playlist advances and a part decodes.
            async def hls_ready() -> str | None:
                if (await hls.get(f"{pid}.m3u8")).status_code != 200:
                    return None
                text = (await media_playlist(hls, pid))[1]
                return text if "#EXTINF" in text else None

            first = last_msn(await eventually(hls_ready, timeout=60, what="LL-HLS playlist"))

            async def advanced() -> str | None:
                text = (await media_playlist(hls, pid))[1]
                return text if last_msn(text) >= first + 2 else None

            text = await eventually(advanced, timeout=60, what="the playlist to advance")
            uri, _ = await media_playlist(hls, pid)
            base = uri.rsplit("/", 1)[0] + "/" if "/" in uri else ""
            init_uri = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text)
            part_uris = [re.findall(r'URI="([^"]+)"', line)[0] for line in text.splitlines()
                         if line.startswith("#EXT-X-PART:") and "INDEPENDENT=YES" in line]
            assert init_uri is not None and part_uris, text
            init = (await hls.get(base + init_uri.group(1))).content
            part = (await hls.get(base + part_uris[-1])).content
            (tmp_path / "part.mp4").write_bytes(init + part)
            assert decoded_frames(tmp_path / "part.mp4") >= 1

            # The errors were announced as live_stream.warning with the destination.
            events = (await api.get(f"/live-streams/{sid}/events")).json()["data"]
            warned = [e["data"] for e in events if e["type"] == "live_stream.warning"
                      and e["data"].get("destination") == dead["id"]]
            assert warned and warned[0]["state"] == "errored" and warned[0]["reason"]

            # The SRT target goes away: errored, retried, and live again once it is back.
            stop(listener)

            async def srt_state(want: str) -> dict[str, Any] | None:
                listed = (await api.get(path)).json()["data"]
                found = next(d for d in listed if d["id"] == srt_id)
                return found if found["status"] == want else None

            down = await eventually(lambda: srt_state("errored"), timeout=30,
                                    what="the killed SRT target errored")
            assert down["reason"], down
            listener = srt_listener(srt_port, tmp_path / "again.ts")
            back = await eventually(lambda: srt_state("live"), timeout=40,
                                    what="the SRT target live again")
            assert back["attempts"] > down["attempts"]

            # Removed while live: stopped at once, the other goes on.
            gone = await api.delete(f"{path}/{dead['id']}")
            assert gone.status_code == 204
            assert node.destinations is not None

            async def removed() -> bool:
                return dead["id"] not in node.destinations.status(sid) if (
                    node.destinations is not None) else False

            await eventually(removed, what="the removed destination stopped")
            assert node.destinations.status(sid)[srt_id].state == "live"
            stop(publisher)
            publisher = None
            # The broadcast ends (reconnect window): its forwarders stop, the list shows idle.
            await wait_status(api, sid, "idle", timeout=30)
            assert node.destinations.status(sid) == {}
            listed = (await api.get(path)).json()["data"]
            assert [d["status"] for d in listed] == ["idle"]
    finally:
        if publisher is not None:
            stop(publisher)
        stop(listener)
    # The SRT target received the source's H.264 and AAC, before and after its restart.
    for got in (received, tmp_path / "again.ts"):
        codecs = {s["codec_type"]: s["codec_name"] for s in ffprobe(got)["streams"]}
        assert codecs == {"video": "h264", "audio": "aac"}, (got, codecs)


async def test_a_destination_on_a_rendition_gets_that_rendition(
    tmp_path: Path, source_480p: Path
) -> None:
    """One nginx-rtmp target takes the 360p rendition's encoded output, another the 480p
    source; PATCH enabled=false stops one while live."""
    rtmp_port = free_port()
    nginx = await asyncio.create_subprocess_exec(
        str(NGINX), "-p", str(tmp_path), "-c", str(nginx_rtmp_conf(tmp_path, rtmp_port)),
        "-g", "daemon off; error_log stderr warn;", stderr=subprocess.DEVNULL)
    publisher: subprocess.Popen[bytes] | None = None
    try:
        await wait_listening(rtmp_port, nginx)
        settings = node_settings(tmp_path / "node", destination_allow_private_targets=True)
        async with Golive(settings) as node, httpx.AsyncClient(
            base_url=f"{node.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=10,
        ) as api:
            stream = await create_stream(api, name="renditions")  # default: 480p + 360p
            sid = stream["id"]
            path = f"/live-streams/{sid}/destinations"
            url = f"rtmp://127.0.0.1:{rtmp_port}/live"
            low = (await api.post(path, json={"name": "low", "url": url, "key": "low360",
                                              "rendition": "360p"})).json()["data"]
            src = (await api.post(path, json={"name": "src", "url": url, "key": "src480"})
                   ).json()["data"]
            assert (low["rendition"], src["rendition"]) == ("360p", "source")
            publisher = ffmpeg_publish(source_480p, node.rtmp_url(stream["stream_key"]),
                                       loop=True)
            await wait_status(api, sid, "active")

            async def both_live() -> bool:
                listed = {d["id"]: d for d in (await api.get(path)).json()["data"]}
                return all(listed[d["id"]]["status"] == "live" for d in (low, src))

            await eventually(both_live, timeout=60, what="both destinations live")

            def recorded(key: str) -> Path | None:
                got = tmp_path / "rec" / f"{key}.flv"
                return got if got.exists() and got.stat().st_size > 200_000 else None

            async def enough() -> bool:
                return recorded("low360") is not None and recorded("src480") is not None

            await eventually(enough, timeout=60, what="both targets to record a few seconds")
            off = await api.patch(f"{path}/{low['id']}", json={"enabled": False})
            assert off.status_code == 200 and off.json()["data"]["enabled"] is False
            assert node.destinations is not None
            relay = node.destinations

            async def stopped() -> bool:
                return low["id"] not in relay.status(sid)

            await eventually(stopped, what="the disabled destination stopped")
            assert relay.status(sid)[src["id"]].state == "live"
            listed = {d["id"]: d for d in (await api.get(path)).json()["data"]}
            assert listed[low["id"]]["status"] == "idle"
    finally:
        if publisher is not None:
            stop(publisher)
        if nginx.returncode is None:
            nginx.terminate()
            await nginx.wait()
    sizes = {}
    for key in ("low360", "src480"):
        streams = ffprobe(tmp_path / "rec" / f"{key}.flv")["streams"]
        video = next(s for s in streams if s["codec_type"] == "video")
        sizes[key] = (video["width"], video["height"])
        assert {s["codec_name"] for s in streams} == {"h264", "aac"}, streams
    assert sizes["low360"][1] == 360 and sizes["src480"] == (854, 480), sizes
