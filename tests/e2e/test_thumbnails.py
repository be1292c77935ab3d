"""`/thumbnail/PLAYBACK_ID.jpg` on a live node: ffmpeg publishes, ffprobe reads the JPEG."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import create_stream, eventually, wait_status
from tests.mediatools import FFPROBE, ffmpeg_publish, stop

from golive.app import Golive

pytestmark = pytest.mark.slow


def jpeg_size(jpeg: bytes, tmp_path: Path) -> tuple[int, int]:
    path = tmp_path / "thumb.jpg"
    path.write_bytes(jpeg)
    stream = json.loads(subprocess.run(
        [FFPROBE, "-v", "error", "-print_format", "json", "-show_streams", str(path)],
        check=True, capture_output=True, timeout=60,
    ).stdout)["streams"][0]  # fmt: skip
    assert stream["codec_name"] == "mjpeg"
    return stream["width"], stream["height"]


async def test_live_thumbnail(node: Golive, api: httpx.AsyncClient, source_flv: Path,
                              tmp_path: Path) -> None:
    stream = await create_stream(api)
    pid = stream["playback_ids"][0]["id"]
    async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as http:
        before = await http.get(f"/thumbnail/{pid}.jpg")
        assert before.status_code == 404  # not live
        proc = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            await wait_status(api, stream["id"], "active")

            async def thumbnail() -> httpx.Response | None:
                response = await http.get(f"/thumbnail/{pid}.jpg", params={"width": "320"})
                return response if response.status_code == 200 else None

            response = await eventually(thumbnail, timeout=40, what="a live thumbnail")
            assert response.headers["content-type"] == "image/jpeg"
            assert response.headers["cache-control"] == "public, max-age=5"
            assert jpeg_size(response.content, tmp_path) == (320, 180)
            default = await http.get(f"/thumbnail/{pid}.jpg")
            assert default.status_code == 200
            assert jpeg_size(default.content, tmp_path)[0] == 640
            assert node.thumbnailer is not None
            decodes = node.thumbnailer.decodes
            again = await http.get(f"/thumbnail/{pid}.jpg", params={"width": "320"})
            assert again.status_code == 200
            assert node.thumbnailer.decodes <= decodes + 1  # cached unless a segment completed

            # A segment of the window by its number (the DVR seek bar's stills): the same
            # in every rendition, a still that never changes.
            presentation = node.pipeline.presentation(pid) if node.pipeline else None
            assert presentation is not None
            msns = {name: window.last_msn - 1 for name, window in presentation.renditions.items()}
            assert len(set(msns.values())) == 1, msns  # every rendition numbers alike
            msn = next(iter(msns.values()))
            still = await http.get(f"/thumbnail/{pid}.jpg",
                                   params={"segment": str(msn), "width": "320"})
            assert still.status_code == 200, still.text
            assert still.headers["cache-control"] == "public, max-age=3600"
            assert jpeg_size(still.content, tmp_path) == (320, 180)
            decodes = node.thumbnailer.decodes
            again = await http.get(f"/thumbnail/{pid}.jpg",
                                   params={"segment": str(msn), "width": "320"})
            assert again.content == still.content and node.thumbnailer.decodes == decodes
            # Operators see the decodes and refusals (none here) on /metrics.
            metrics = (await http.get("/metrics")).text
            assert f"golive_thumbnail_decodes_total {float(decodes)}" in metrics
            assert "golive_thumbnail_refused_total 0.0" in metrics
            assert "golive_thumbnail_queue 0.0" in metrics
            for unlisted in (msn + 100, msn - 10_000, 0):
                missing = await http.get(f"/thumbnail/{pid}.jpg",
                                         params={"segment": str(unlisted)})
                assert missing.status_code == 404, unlisted
            for bad_segment in ("", "abc", "-1", "1.5", "1" * 16):
                refused = await http.get(f"/thumbnail/{pid}.jpg",
                                         params={"segment": bad_segment})
                assert refused.status_code == 400, bad_segment
            both = await http.get(f"/thumbnail/{pid}.jpg",
                                  params={"segment": str(msn), "time": "1"})
            assert both.status_code == 400

            for bad in ("0", "15", "1921", "abc", "-5", "1e3", "99999999"):
                refused = await http.get(f"/thumbnail/{pid}.jpg", params={"width": bad})
                assert refused.status_code == 400, bad
            for bad_time in ("abc", "-1", "nan", "1e9"):
                refused = await http.get(f"/thumbnail/{pid}.jpg", params={"time": bad_time})
                assert refused.status_code == 400, bad_time
            # ?time= is for assets: this node has no recordings to take it from.
            assert (await http.get(f"/thumbnail/{pid}.jpg", params={"time": "1"})
                    ).status_code == 404
            assert (await http.get("/thumbnail/nosuchid.jpg")).status_code == 404
            assert (await http.get("/thumbnail/bad-id!.jpg")).status_code == 404
        finally:
            stop(proc)

        await wait_status(api, stream["id"], "idle", timeout=30)

        async def gone() -> bool:
            return (await http.get(f"/thumbnail/{pid}.jpg")).status_code == 404

        await eventually(gone, timeout=20, what="the thumbnail to go with the broadcast")
