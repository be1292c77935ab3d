"""A publisher that returns at another resolution: the broadcast keeps its ladder.

Real ffmpeg publishers over RTMP, the node's own ffmpeg ladder, and a client that
reloads every playlist the whole time, as players holding them would.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import (
    DumpObserver,
    KeyframeClock,
    create_stream,
    eventually,
    wait_status,
)
from tests.llhls_rules import attributes, check_media_playlist, check_multivariant
from tests.media.mp4info import read_init
from tests.mediatools import FFMPEG, FFPROBE, ffmpeg_publish, stop

from golive.app import Golive

pytestmark = pytest.mark.slow

# How long after the returning publisher's first keyframe every rendition has new media
# at most: a guard against hangs, far above what it takes (printed by the test).
REJOIN_LIMIT = 20.0


@dataclass
class PlaylistWatch:
    """What a client reloading the multivariant and every media playlist saw."""

    statuses: dict[str, list[int]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    # Per media playlist: when it first listed a part after its last discontinuity.
    rejoined_at: dict[str, float] = field(default_factory=dict)

    def not_ok(self) -> dict[str, list[int]]:
        return {
            url: [s for s in codes if s != 200]
            for url, codes in self.statuses.items()
            if any(s != 200 for s in codes)
        }


@asynccontextmanager
async def watch_playlists(
    hls: httpx.AsyncClient, pid: str, uris: list[str]
) -> AsyncIterator[PlaylistWatch]:
    watch = PlaylistWatch()

    async def poll() -> None:
        while True:
            for url in (f"{pid}.m3u8", *uris):
                response = await hls.get(url)
                watch.statuses.setdefault(url, []).append(response.status_code)
                if response.status_code != 200:
                    continue
                watch.texts[url] = response.text
                parts = response.text.split("#EXT-X-DISCONTINUITY\n")
                if len(parts) > 1 and "#EXT-X-PART:" in parts[-1]:
                    watch.rejoined_at.setdefault(url, time.monotonic())
            await asyncio.sleep(0.05)

    task = asyncio.create_task(poll())
    try:
        yield watch
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def ladder_of(multivariant: str) -> list[tuple[str, dict[str, str]]]:
    """Each variant's URI and attributes, but its bandwidths, which follow what the segments
    measure (they change as the broadcast goes on)."""
    lines = multivariant.splitlines()
    return [(uri, {k: v for k, v in attributes(inf).items() if not k.endswith("BANDWIDTH")})
            for inf, uri in itertools.pairwise(lines) if inf.startswith("#EXT-X-STREAM-INF")]


def media_uris(multivariant: str) -> list[str]:
    return [line for line in multivariant.splitlines() if line and not line.startswith("#")]


async def go_live(
    node: Golive, api: httpx.AsyncClient, source: Path, tmp_path: Path
) -> tuple[dict[str, Any], subprocess.Popen[bytes], DumpObserver, str]:
    observer = DumpObserver(tmp_path)
    assert node.hub is not None
    node.hub.add_observer(observer)
    # About the publisher's own return: no slate in between (tests/e2e/test_slate.py).
    node.hub.use_slate(None)
    stream = await create_stream(api, name="resolution", reconnect_window=30)
    proc = ffmpeg_publish(source, node.rtmp_url(str(stream["stream_key"])), loop=True)
    await wait_status(api, str(stream["id"]), "active")
    return stream, proc, observer, str(stream["playback_ids"][0]["id"])


async def test_a_publisher_returning_at_360p_keeps_the_720p_ladder_without_a_404(
    node: Golive, api: httpx.AsyncClient, source_720p: Path, source_flv: Path, tmp_path: Path
) -> None:
    stream, proc, observer, pid = await go_live(node, api, source_720p, tmp_path)
    hls = httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30)
    try:

        async def ladder() -> str | None:
            response = await hls.get(f"{pid}.m3u8")
            if response.status_code != 200:
                return None
            for uri in media_uris(response.text):
                media = await hls.get(uri)
                if media.status_code != 200 or media.text.count("#EXTINF") < 2:
                    return None
            return response.text

        multivariant = await eventually(ladder, timeout=60, what="the 720p ladder playing")
        check_multivariant(multivariant)
        uris = media_uris(multivariant)
        assert [u.rsplit("/", 1)[1] for u in uris] == ["720p.m3u8", "480p.m3u8", "360p.m3u8"]
        assert "RESOLUTION=1280x720" in multivariant
        broadcast = node.hub.broadcast(str(stream["id"])) if node.hub else None
        assert broadcast is not None
        keyframes = KeyframeClock()
        broadcast.add_sink(keyframes)

        async with watch_playlists(hls, pid, uris) as watch:
            await asyncio.sleep(1)  # a few reloads while the first publisher is live
            proc.kill()  # the publisher drops out...
            proc.wait()
            await eventually(
                _seen(observer, "lost"), what="the hub to notice the publisher gone"
            )
            keyframes.armed = True
            # ...and comes back inside the window with a 640x360 encoder.
            proc = ffmpeg_publish(source_flv, node.rtmp_url(str(stream["stream_key"])), loop=True)

            async def rejoined() -> bool:
                return len(watch.rejoined_at) == len(uris)

            await eventually(rejoined, timeout=60, what="new media in every rendition")
            await asyncio.sleep(1)  # reloads after the join, too
        assert keyframes.at is not None
        delays = {u: round(at - keyframes.at, 2) for u, at in watch.rejoined_at.items()}
        print(f"\nnew media after the returning publisher's first keyframe (s): {delays}")
        assert all(d < REJOIN_LIMIT for d in delays.values()), delays
        # Players holding any playlist kept getting it: no 404, no error at all.
        assert watch.not_ok() == {}, watch.not_ok()
        assert [kind for kind, _ in observer.events] == ["started", "lost", "resumed"]

        # The same ladder: names, resolutions and codecs.
        assert ladder_of((await hls.get(f"{pid}.m3u8")).text) == ladder_of(multivariant)
        for uri in uris:
            text = watch.texts[uri]
            check_media_playlist(text, low_latency=True)
            assert "#EXT-X-DISCONTINUITY" in text and "#EXT-X-ENDLIST" not in text

        # The 720p rung is still 1280x720, its new media upscaled from 640x360.
        segment = await eventually(
            _segment_after_join(hls, uris[0]), timeout=30, what="a whole 720p segment"
        )
        init_uri, segment_uri = segment
        init = (await hls.get(init_uri)).content
        (video,) = [t for t in read_init(init).values() if t.handler == "vide"]
        assert (video.width, video.height) == (1280, 720)
        media = tmp_path / "rejoined.mp4"
        media.write_bytes(init + (await hls.get(segment_uri)).content)
        probed = subprocess.run(
            [FFPROBE, "-v", "error", "-select_streams", "v:0", "-count_frames",
             "-show_entries", "stream=width,height,nb_read_frames", "-of", "csv=p=0",
             str(media)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert probed.returncode == 0, probed.stderr
        width, height, frames = (int(v) for v in probed.stdout.strip().split(","))
        assert (width, height) == (1280, 720) and frames >= 25
    finally:
        stop(proc)
        await hls.aclose()


@pytest.fixture(scope="session")
def source_hevc(tmp_path_factory: pytest.TempPathFactory, source_flv: Path) -> Path:
    """The 640x360 source as HEVC (Enhanced RTMP in FLV), keyframe every second."""
    path = tmp_path_factory.mktemp("media") / "source-hevc.flv"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-i", str(source_flv),
         "-c:v", "libx265", "-preset", "ultrafast",
         "-x265-params", "keyint=30:min-keyint=30:scenecut=0:bframes=0:log-level=error",
         "-c:a", "copy", "-f", "flv", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


async def test_a_publisher_returning_with_hevc_feeds_the_same_h264_ladder(
    node: Golive, api: httpx.AsyncClient, source_flv: Path, source_hevc: Path, tmp_path: Path
) -> None:
    stream, proc, observer, pid = await go_live(node, api, source_flv, tmp_path)
    hls = httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30)
    try:

        async def playing() -> str | None:
            response = await hls.get(f"{pid}.m3u8")
            if response.status_code != 200:
                return None
            media = await hls.get(media_uris(response.text)[0])
            return response.text if media.text.count("#EXTINF") >= 2 else None

        multivariant = await eventually(playing, timeout=60, what="the broadcast playing")
        uris = media_uris(multivariant)
        async with watch_playlists(hls, pid, uris) as watch:
            proc.kill()
            proc.wait()
            await eventually(_seen(observer, "lost"), what="the hub to notice the publisher gone")
            proc = ffmpeg_publish(source_hevc, node.rtmp_url(stream["stream_key"]), loop=True)

            async def rejoined() -> bool:
                return len(watch.rejoined_at) == len(uris)

            await eventually(rejoined, timeout=60, what="new media after the codec change")
        assert watch.not_ok() == {}, watch.not_ok()
        assert node.hub is not None
        facts = node.hub.ingest_facts(stream["id"])
        assert facts is not None and facts["video_codec"] == "hevc"
        # The encoded ladder decodes HEVC and still sends H.264: players notice nothing.
        assert ladder_of((await hls.get(f"{pid}.m3u8")).text) == ladder_of(multivariant)
        assert "avc1." in multivariant and "hvc1" not in multivariant
        for uri in uris:
            assert "#EXT-X-ENDLIST" not in watch.texts[uri]
    finally:
        stop(proc)
        await hls.aclose()


async def test_a_publisher_returning_without_audio_ends_the_playlists_then_goes_on(
    node: Golive, api: httpx.AsyncClient, source_flv: Path, tmp_path: Path
) -> None:
    stream, proc, observer, pid = await go_live(node, api, source_flv, tmp_path)
    hls = httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30)
    warnings = node.bus.subscribe(accept=lambda e: e.type == "live_stream.warning")
    try:

        async def playing() -> str | None:
            response = await hls.get(f"{pid}.m3u8")
            if response.status_code != 200:
                return None
            media = await hls.get(media_uris(response.text)[0])
            return response.text if media.text.count("#EXTINF") >= 2 else None

        multivariant = await eventually(playing, timeout=60, what="the broadcast playing")
        (uri,) = media_uris(multivariant)
        assert "mp4a.40.2" in multivariant
        first_msn = int(re.findall(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", (await hls.get(uri)).text)[0])
        proc.kill()
        proc.wait()
        await eventually(_seen(observer, "lost"), what="the hub to notice the publisher gone")
        proc = ffmpeg_publish(
            source_flv, node.rtmp_url(str(stream["stream_key"])), loop=True, extra=["-an"]
        )

        async def ended() -> str | None:
            text = (await hls.get(uri)).text
            return text if "#EXT-X-ENDLIST" in text else None

        # Players see the end of the playlists they hold (every CODECS changed)...
        last = check_media_playlist(
            await eventually(ended, timeout=30, what="EXT-X-ENDLIST"), low_latency=True
        )
        old_last = last.media_sequence + len(last.segments) - 1
        codes = []
        while "presentation_restarted" not in codes:
            codes.append((await asyncio.wait_for(warnings.__anext__(), 30)).data["code"])

        async def anew() -> str | None:
            response = await hls.get(f"{pid}.m3u8")
            if response.status_code != 200 or "mp4a" in response.text:
                return None
            media = await hls.get(media_uris(response.text)[0])
            return media.text if media.text.count("#EXTINF") >= 1 else None

        # ...and a new load finds the broadcast going on, video only, under new media URLs.
        text = await eventually(anew, timeout=60, what="the new presentation")
        check_media_playlist(text, low_latency=True)
        assert "#EXT-X-ENDLIST" not in text
        new_msn = int(re.findall(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)[0])
        assert new_msn > old_last >= first_msn  # no media URL of the ended one is reused
        assert [kind for kind, _ in observer.events] == ["started", "lost", "resumed"]
    finally:
        warnings.close()
        stop(proc)
        await hls.aclose()


def _seen(observer: DumpObserver, kind: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return any(k == kind for k, _ in observer.events)

    return check


def _segment_after_join(
    hls: httpx.AsyncClient, uri: str
) -> Callable[[], Awaitable[tuple[str, str] | None]]:
    """The EXT-X-MAP and first whole segment after the last discontinuity, once listed."""

    async def check() -> tuple[str, str] | None:
        text = (await hls.get(uri)).text
        before, _, after = text.rpartition("#EXT-X-DISCONTINUITY\n")
        if not before:
            return None
        maps = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', before + after)
        segments = re.findall(r"^(?!#)(\S+\.m4s)$", after, re.M)
        if not maps or not segments:
            return None
        base = uri.rsplit("/", 1)[0]
        return f"{base}/{maps[-1]}", f"{base}/{segments[0]}"

    return check
