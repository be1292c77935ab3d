"""A recorded asset as a progressive MP4 (`/vod/PID/high.mp4`, `low.mp4`) with byte ranges,
its stills at a time (`/thumbnail/PID.jpg?time=`) and its chat for replay, read by ffprobe,
ffmpeg over HTTP and httpx."""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from tests.chat.conftest import ChatClient
from tests.e2e.conftest import (
    create_stream,
    wait_process,
    wait_ready_asset,
    wait_status,
)
from tests.e2e.test_thumbnails import jpeg_size
from tests.formats.test_progressive import decode_errors, video_stss
from tests.media.mp4info import boxes
from tests.mediatools import FFPROBE, ffmpeg_publish

from golive.app import Golive

pytestmark = pytest.mark.slow


def probe(target: str | Path) -> dict[str, Any]:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
         str(target)], check=True, capture_output=True, timeout=120,
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out)
    return result


def found(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.S)
    assert match is not None, pattern
    return match[1]


async def test_asset_mp4_thumbnails_and_chat_replay(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, tmp_path: Path
) -> None:
    stream = await create_stream(api, name="show", recording=True, reconnect_window=1)
    live_pid = stream["playback_ids"][0]["id"]
    started = time.time()
    proc = ffmpeg_publish(source_480p, node.rtmp_url(stream["stream_key"]))
    await wait_status(api, stream["id"], "active")
    ws = await websockets.connect(f"ws://127.0.0.1:{node.http_port}/chat/{live_pid}",
                                  open_timeout=10)
    chat = ChatClient(ws)
    try:
        await chat.send(type="join", name="Ann")
        await chat.wait_type("identity")
        await chat.send(type="send", text="recorded hello")
        message = await chat.wait_type("message", text="recorded hello")
    finally:
        await chat.close()
    assert await wait_process(proc) == 0

    asset = await wait_ready_asset(api, stream["id"])
    pid = asset["playback_ids"][0]["id"]
    async with httpx.AsyncClient(base_url=node.http_url, timeout=60) as http:
        # The whole file: moov first, every frame decodes, keyframes listed, duration.
        whole = await http.get(f"/vod/{pid}/high.mp4")
        assert whole.status_code == 200, whole.text
        assert whole.headers["content-type"] == "video/mp4"
        assert whole.headers["accept-ranges"] == "bytes"
        assert int(whole.headers["content-length"]) == len(whole.content)
        mp4 = whole.content
        path = tmp_path / "high.mp4"
        path.write_bytes(mp4)
        assert [kind for kind, _, _ in boxes(mp4)] == ["ftyp", "moov", "mdat"]
        assert decode_errors(path) == ""
        info = probe(path)
        assert abs(float(info["format"]["duration"]) - asset["duration"]) < 0.5, (
            info["format"]["duration"], asset["duration"])
        keyframes = video_stss(mp4)
        assert keyframes[0] == 1 and len(keyframes) >= int(asset["duration"]) - 1
        high = next(s for s in info["streams"] if s["codec_type"] == "video")

        low = await http.get(f"/vod/{pid}/low.mp4")
        assert low.status_code == 200
        (tmp_path / "low.mp4").write_bytes(low.content)
        low_video = next(s for s in probe(tmp_path / "low.mp4")["streams"]
                         if s["codec_type"] == "video")
        assert low_video["height"] < high["height"]  # the 480p + 360p ladder

        # Byte ranges, as players and download managers ask.
        part = await http.get(f"/vod/{pid}/high.mp4", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 100-199/{len(mp4)}"
        assert part.content == mp4[100:200]
        tail = await http.get(f"/vod/{pid}/high.mp4", headers={"Range": "bytes=-5000"})
        assert tail.status_code == 206 and tail.content == mp4[-5000:]
        middle = len(mp4) // 2
        span = await http.get(f"/vod/{pid}/high.mp4",
                              headers={"Range": f"bytes={middle}-{middle + 300_000}"})
        assert span.content == mp4[middle : middle + 300_001]
        beyond = await http.get(f"/vod/{pid}/high.mp4", headers={"Range": f"bytes={len(mp4)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(mp4)}"
        head = await http.head(f"/vod/{pid}/high.mp4")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(mp4))
        assert (await http.get("/vod/nosuchasset/high.mp4")).status_code == 404
        assert (await http.get(f"/vod/{pid}/medium.mp4")).status_code == 404

        # ffmpeg reads it over HTTP (moov first: it starts without the whole file); in a
        # thread, as the node answers on this event loop.
        remote = await asyncio.to_thread(probe, f"{node.http_url}/vod/{pid}/high.mp4")
        assert abs(float(remote["format"]["duration"]) - asset["duration"]) < 0.5

        # Stills of the asset at a time.
        still = await http.get(f"/thumbnail/{pid}.jpg", params={"time": "2.5", "width": "320"})
        assert still.status_code == 200, still.text
        assert still.headers["cache-control"] == "public, max-age=3600"
        assert jpeg_size(still.content, tmp_path) == (320, 180)
        later = await http.get(f"/thumbnail/{pid}.jpg", params={"time": "4", "width": "320"})
        assert later.status_code == 200 and later.content != still.content
        past = await http.get(f"/thumbnail/{pid}.jpg", params={"time": "9999"})
        assert past.status_code == 404

        # Its storyboard: a WebVTT thumbnails track, a cue per 2 s to the end, each cue
        # naming a still that answers.
        board = await http.get(f"/storyboard/{pid}.vtt")
        assert board.status_code == 200, board.text
        assert board.headers["content-type"].startswith("text/vtt")
        lines = board.text.split("\n")
        assert lines[0] == "WEBVTT"
        cues = [(line.split(" --> "), lines[i + 1]) for i, line in enumerate(lines)
                if " --> " in line]
        assert cues[0][0][0] == "00:00:00.000"
        for ((_, end), _), ((start, _), _) in itertools.pairwise(cues):
            assert end == start  # contiguous
        seconds = [int(start[6:8]) + 60 * int(start[3:5]) for (start, _), _ in cues]
        assert seconds == list(range(0, 2 * len(cues), 2))
        last_end = cues[-1][0][1]
        assert abs(int(last_end[6:8]) + int(last_end[9:]) / 1000 - asset["duration"]) < 0.01
        for second, (_, url) in zip(seconds, cues, strict=True):
            assert url == f"/thumbnail/{pid}.jpg?time={second}.0&width=160"
        tile = await http.get(cues[-1][1])
        assert tile.status_code == 200 and jpeg_size(tile.content, tmp_path) == (160, 90)
        assert (await http.get(f"/storyboard/{pid}.vtt?width=x")).status_code == 400
        assert (await http.get("/storyboard/nosuchasset.vtt")).status_code == 404

        # The asset's watch page points search engines and link previews at both.
        page = (await http.get(f"/watch/{pid}")).text
        image = html.unescape(found(r'<meta property="og:image" content="([^"]+)"', page))
        assert (await http.get(image)).headers["content-type"] == "image/jpeg"
        ld = json.loads(found(r'<script type="application/ld\+json">(.*?)</script>', page))
        assert ld["@type"] == "VideoObject" and ld["thumbnailUrl"] == [image]
        assert ld["contentUrl"] == f"{node.http_url}/vod/{pid}/high.mp4"
        assert ld["duration"] == f"PT{asset['duration']:.3f}S"
        assert ld["publication"]["@type"] == "BroadcastEvent" and "endDate" in ld["publication"]

        # The chat said during the broadcast, asked for by the asset's playback id.
        replay = await http.get(f"/chat/{pid}/replay",
                                params={"from": f"{started - 5:.3f}", "to": f"{time.time():.3f}"})
        assert replay.status_code == 200, replay.text
        assert [m["id"] for m in replay.json()["messages"]] == [message["id"]]
