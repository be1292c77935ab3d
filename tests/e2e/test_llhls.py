"""The live pipeline end to end: RTMP in, ffmpeg ladder, LL-HLS out, read by real clients."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import create_stream, eventually, get_stream, wait_status
from tests.llhls_rules import attributes, check_media_playlist, check_multivariant
from tests.media.mp4info import read_fragment, read_init
from tests.mediatools import FFMPEG, FFPROBE, ffmpeg_publish, make_source, stop
from tests.nginxedge import NGINX, edge_cache

from golive.app import Golive
from golive.packaging import measure_segments
from golive.packaging.window import RenditionWindow

pytestmark = pytest.mark.slow


async def go_live(node: Golive, api: httpx.AsyncClient, source: Path) -> tuple[
        dict[str, Any], subprocess.Popen[bytes], httpx.AsyncClient]:
    stream = await create_stream(api, name="ll-hls")
    proc = ffmpeg_publish(source, node.rtmp_url(stream["stream_key"]), loop=True)
    await wait_status(api, stream["id"], "active")
    hls = httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30)
    pid = stream["playback_ids"][0]["id"]

    async def ready() -> str | None:
        response = await hls.get(f"{pid}.m3u8")
        if response.status_code != 200:
            return None
        # Wait until every rendition has a few complete segments.
        for uri in re.findall(r"^(?!#)(\S+)$", response.text, re.M):
            media = await hls.get(uri)
            if media.status_code != 200 or media.text.count("#EXTINF") < 3:
                return None
        return response.text

    await eventually(ready, timeout=60, what="LL-HLS playlists with three segments")
    return stream, proc, hls


def media_uris(multivariant: str) -> list[str]:
    return [line for line in multivariant.splitlines() if line and not line.startswith("#")]


def probe_frames(path: Path) -> tuple[int, str]:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames,codec_name", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    codec, frames = out.stdout.strip().split(",")[:2]
    return int(frames), codec


async def test_playlists_follow_the_rules_and_media_decodes(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, tmp_path: Path
) -> None:
    stream, proc, hls = await go_live(node, api, source_480p)
    pid = stream["playback_ids"][0]["id"]
    try:
        multivariant = (await hls.get(f"{pid}.m3u8")).text
        check_multivariant(multivariant)
        uris = media_uris(multivariant)
        assert len(uris) == 2, multivariant  # 480p and 360p from a 480p source

        keyframe_times: dict[str, dict[int, float]] = {}
        for uri in uris:
            name = uri.split("/")[-1].removesuffix(".m3u8")
            text = (await hls.get(uri)).text
            playlist = check_media_playlist(text, low_latency=True)
            assert "#EXT-X-PRELOAD-HINT:TYPE=PART" in text
            # Rendition reports name every sibling with positions close to ours.
            reports = [attributes(line) for line in text.splitlines()
                       if line.startswith("#EXT-X-RENDITION-REPORT")]
            assert len(reports) == len(uris) - 1
            last_msn = playlist.media_sequence + len(playlist.segments) - 1
            for report in reports:
                assert abs(int(report["LAST-MSN"]) - last_msn) <= 1, text

            # The init plus each complete segment decodes; so does init plus a single part.
            init_uri = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text)
            assert init_uri is not None
            init = (await hls.get(f"{pid}/{init_uri.group(1)}")).content
            tracks = read_init(init)
            video = next(t for t in tracks.values() if t.handler == "vide")
            times: dict[int, float] = {}
            segment_uris = [line for line in text.splitlines()
                            if line.endswith(".m4s") and "seg-" in line]
            for seg_uri in segment_uris:
                body = (await hls.get(f"{pid}/{seg_uri}")).content
                msn = int(seg_uri.rsplit("seg-", 1)[1].split(".")[0])
                runs = read_fragment(body)
                assert runs[video.track_id].starts_with_sync, f"{seg_uri} starts without a keyframe"
                times[msn] = round(runs[video.track_id].decode_time / video.timescale, 3)
                path = tmp_path / f"{name}-{msn}.mp4"
                path.write_bytes(init + body)
                frames, _codec = probe_frames(path)
                assert frames >= 20, f"{seg_uri}: {frames} frames"
            keyframe_times[name] = times
            # Parts: every listed part parses; the parts of the newest segment, from its
            # independent first part on, decode as a stream.
            part_uris = re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', text)
            newest = part_uris[-1].rsplit("part-", 1)[1].split(".")[0]
            chain = b""
            for part_uri in part_uris:
                part = (await hls.get(f"{pid}/{part_uri}")).content
                assert read_fragment(part)[video.track_id].samples >= 1
                if f"part-{newest}." in part_uri:
                    chain += part
            (tmp_path / f"{name}-parts.mp4").write_bytes(init + chain)
            assert probe_frames(tmp_path / f"{name}-parts.mp4")[0] >= 1

        # Keyframes (segment starts) sit at the same media times in every rendition.
        common = set.intersection(*(set(t) for t in keyframe_times.values()))
        assert common, keyframe_times
        for msn in common:
            assert len({times[msn] for times in keyframe_times.values()}) == 1, keyframe_times

        # Delta update: the skip directive is accepted and yields a valid playlist.
        skipped = (await hls.get(uris[0], params={"_HLS_skip": "YES"})).text
        check_media_playlist(skipped, low_latency=True)
    finally:
        stop(proc)
        await hls.aclose()


async def test_blocking_reload_answers_when_the_part_arrives(
    node: Golive, api: httpx.AsyncClient, source_480p: Path
) -> None:
    stream, proc, hls = await go_live(node, api, source_480p)
    pid = stream["playback_ids"][0]["id"]
    try:
        assert node.pipeline is not None
        presentation = node.pipeline.presentation(pid)
        assert presentation is not None
        name, window = next(iter(presentation.renditions.items()))
        arrivals: dict[tuple[int, int], float] = {}
        original = RenditionWindow.add_fragment

        def recording(self: RenditionWindow, fragment: Any, arrived_at: Any,
                      origin: float | None = None) -> None:
            original(self, fragment, arrived_at, origin)
            if self is window:
                arrivals[(self.last_msn, self.last_part)] = time.monotonic()

        window.add_fragment = recording.__get__(window)  # type: ignore[method-assign]
        delays = []
        for _ in range(5):
            msn, part = window.next_part()
            response = await hls.get(f"{pid}/{name}.m3u8",
                                     params={"_HLS_msn": msn, "_HLS_part": part})
            answered = time.monotonic()
            assert response.status_code == 200
            assert f"part-{msn}.{part}.m4s" in response.text
            if (msn, part) in arrivals:
                delays.append(answered - arrivals[(msn, part)])
        assert delays, "no held request was answered by a new part"
        # Generous bound (the target is one part duration): catches a request that
        # waited for a timeout or a poll instead of being woken by the part.
        assert max(delays) < 4 * presentation.part_target, delays

        # Far in the future: refused at once rather than held.
        far = window.last_msn + 10
        response = await hls.get(f"{pid}/{name}.m3u8", params={"_HLS_msn": far})
        assert response.status_code == 400
        response = await hls.get(f"{pid}/{name}.m3u8", params={"_HLS_part": 0})
        assert response.status_code == 400
    finally:
        stop(proc)
        await hls.aclose()


def hls_client(url: str, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-i", url,
         "-t", str(seconds), "-map", "0", "-c", "copy", "-y", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def duration(path: Path) -> float:
    out = subprocess.run([FFPROBE, "-v", "error", "-show_entries", "format=duration",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True)
    return float(out.stdout.strip() or 0)


@pytest.mark.skipif(not NGINX.exists(), reason="needs nginx (scripts/install-system-deps.sh)")
async def test_ffmpeg_reads_ten_seconds_directly_and_through_the_edge(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, tmp_path: Path
) -> None:
    stream, proc, hls = await go_live(node, api, source_480p)
    pid = stream["playback_ids"][0]["id"]
    try:
        async with edge_cache(tmp_path / "edge", node.http_port) as edge_url:
            clients = {
                "direct": hls_client(f"{node.http_url}/live/{pid}.m3u8", tmp_path / "direct.ts", 10),
                "edge": hls_client(f"{edge_url}/live/{pid}.m3u8", tmp_path / "edge.ts", 10),
            }
            for label, client in clients.items():
                code = await asyncio.to_thread(client.wait, 90)
                errors = client.stderr.read().decode() if client.stderr else ""
                assert code == 0, f"{label}: {errors}"
                assert "error" not in errors.lower(), f"{label}: {errors}"
                assert duration(tmp_path / f"{label}.ts") >= 9.5, label
    finally:
        stop(proc)
        await hls.aclose()


async def test_transcoder_killed_mid_stream_playlist_continues_after_discontinuity(
    node: Golive, api: httpx.AsyncClient, source_480p: Path, tmp_path: Path
) -> None:
    stream, proc, hls = await go_live(node, api, source_480p)
    pid = stream["playback_ids"][0]["id"]
    reader = hls_client(f"{node.http_url}/live/{pid}.m3u8", tmp_path / "watch.ts", 25)
    warnings = node.bus.subscribe(accept=lambda e: e.type == "live_stream.warning")
    try:
        await asyncio.sleep(5)
        assert node.pipeline is not None
        pipeline = next(p for p in node.pipeline._pipelines.values() if p.stream_id == stream["id"])
        assert pipeline.transcoder is not None and pipeline.transcoder.pid is not None
        os.kill(pipeline.transcoder.pid, signal.SIGKILL)

        uri = media_uris((await hls.get(f"{pid}.m3u8")).text)[0]

        async def discontinuity() -> str | None:
            text = (await hls.get(uri)).text
            after = text.split("#EXT-X-DISCONTINUITY", 1)
            return text if len(after) == 2 and after[1].count("#EXTINF") >= 2 else None

        text = await eventually(discontinuity, timeout=30, what="segments after a discontinuity")
        check_media_playlist(text, low_latency=True)
        event = await asyncio.wait_for(warnings.__anext__(), 10)
        assert event.data["code"] == "transcoder_restarted"

        code = await asyncio.to_thread(reader.wait, 90)
        errors = reader.stderr.read().decode() if reader.stderr else ""
        assert code == 0, errors
        assert duration(tmp_path / "watch.ts") >= 20, errors  # kept reading across the restart
    finally:
        warnings.close()
        stop(proc)
        stop(reader)
        await hls.aclose()


async def test_publisher_drop_resumes_after_discontinuity_then_ends_with_endlist(
    node: Golive, api: httpx.AsyncClient, source_480p: Path
) -> None:
    # No slate: the gap stays a gap, and the returning publisher starts a fresh timeline
    # (with the slate on the air in between, both switches splice: tests/e2e/test_slate.py).
    assert node.hub is not None
    node.hub.use_slate(None)
    stream, proc, hls = await go_live(node, api, source_480p)
    pid = stream["playback_ids"][0]["id"]
    try:
        uri = media_uris((await hls.get(f"{pid}.m3u8")).text)[0]
        proc.kill()  # the publisher vanishes (reconnect window: 2 s in these tests)
        proc.wait()
        await asyncio.sleep(0.5)
        during = await hls.get(uri)
        assert during.status_code == 200 and "#EXT-X-ENDLIST" not in during.text

        proc = ffmpeg_publish(source_480p, node.rtmp_url(stream["stream_key"]), loop=True)

        async def resumed() -> str | None:
            text = (await hls.get(uri)).text
            after = text.split("#EXT-X-DISCONTINUITY", 1)
            return text if len(after) == 2 and after[1].count("#EXTINF") >= 2 else None

        text = await eventually(resumed, timeout=30, what="segments after the reconnect")
        check_media_playlist(text, low_latency=True)
        assert (await get_stream(api, stream["id"]))["status"] == "active"

        stop(proc)

        async def ended() -> str | None:
            text = (await hls.get(uri)).text
            return text if "#EXT-X-ENDLIST" in text else None

        text = await eventually(ended, timeout=20, what="EXT-X-ENDLIST after the window")
        check_media_playlist(text, low_latency=True)
        assert "#EXT-X-PRELOAD-HINT" not in text
    finally:
        stop(proc)
        await hls.aclose()


@contextlib.asynccontextmanager
async def _publishing(node: Golive, api: httpx.AsyncClient, source: Path,
                      **stream: Any) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """A new stream with `stream`'s settings, `source` published to it in a loop: its
    playback id and a client of the node's /live/; the publisher stops on the way out."""
    created = await create_stream(api, **stream)
    proc = ffmpeg_publish(source, node.rtmp_url(created["stream_key"]), loop=True)
    hls = httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30)
    try:
        yield created["playback_ids"][0]["id"], hls
    finally:
        stop(proc)
        await hls.aclose()


async def _complete_segments(hls: httpx.AsyncClient, path: str, count: int) -> str:
    """The media playlist at `path` once it lists `count` complete segments."""
    async def listed() -> str | None:
        response = await hls.get(path)
        ok = response.status_code == 200 and response.text.count("#EXTINF") >= count
        return response.text if ok else None

    return await eventually(listed, timeout=60, what=f"{count} complete segments")


async def test_standard_latency_mode_serves_plain_hls(
    node: Golive, api: httpx.AsyncClient, source_flv: Path, tmp_path: Path
) -> None:
    async with _publishing(node, api, source_flv, latency_mode="standard") as (pid, hls):
        async def playlist() -> str | None:
            response = await hls.get(f"{pid}.m3u8")
            if response.status_code != 200:
                return None
            media = await hls.get(media_uris(response.text)[0])
            return media.text if media.text.count("#EXTINF") >= 3 else None

        text = await eventually(playlist, timeout=60, what="plain HLS playlist")
        check_media_playlist(text, low_latency=False)
        assert "#EXT-X-PART" not in text and "#EXT-X-PRELOAD-HINT" not in text
        reader = hls_client(f"{node.http_url}/live/{pid}.m3u8", tmp_path / "plain.ts", 4)
        code = await asyncio.to_thread(reader.wait, 60)
        assert code == 0, reader.stderr.read().decode() if reader.stderr else ""
        assert duration(tmp_path / "plain.ts") >= 3.5


async def test_a_copied_source_declares_the_bit_rates_its_segments_measure(
    node: Golive, api: httpx.AsyncClient, source_480p: Path
) -> None:
    # The passthrough profile copies the publisher's video, whose bitrate (1.5 Mbit/s
    # here) only the publisher knows: its plan guesses 6 Mbit/s. Once segments are
    # complete the multivariant says what they measure (RFC 8216bis 4.4.6.2), so players
    # choose it by what it costs, and a validator finds the peak within its 10%.
    async with _publishing(node, api, source_480p, profile="passthrough") as (pid, hls):
        text = await _complete_segments(hls, f"{pid}/source.m3u8", 4)
        playlist = check_media_playlist(text, low_latency=True)
        sizes = [len((await hls.get(f"{pid}/{segment.uri}")).content)
                 for segment in playlist.segments if segment.uri]
        listed = list(zip(sizes, [s.duration for s in playlist.segments if s.uri], strict=True))
        peak, average = measure_segments(listed)
        declared = attributes(next(line for line in (await hls.get(f"{pid}.m3u8")).text.splitlines()
                                   if line.startswith("#EXT-X-STREAM-INF")))
        assert peak <= int(declared["BANDWIDTH"]) <= 1.5 * peak, (declared, peak)
        assert 0.7 * average <= int(declared["AVERAGE-BANDWIDTH"]) <= 1.3 * average, (declared, average)


async def test_a_copied_source_with_b_frames_keeps_its_pictures_in_order(
    node: Golive, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    # OBS's x264 and NVENC send B-frames by default: pictures decode out of presentation
    # order, each with its composition offset (FLV CompositionTime). The passthrough
    # profile copies them into fMP4 parts: every offset must survive, or players show
    # pictures in the wrong order (a judder) or drop them.
    source = make_source(tmp_path / "b-frames.flv", size="854x480", video_kbps=1500,
                         b_frames=3)
    sent = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts,dts",
         "-of", "csv=p=0", str(source)], capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    assert any(pts != dts for pts, dts in (line.split(",") for line in sent))  # B-frames
    async with _publishing(node, api, source, profile="passthrough") as (pid, hls):
        text = await _complete_segments(hls, f"{pid}/source.m3u8", 3)
        playlist = check_media_playlist(text, low_latency=True)
        init_uri = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)[-1]
        listed = [s for s in playlist.segments if s.uri][-3:]
        uris = [s.uri for s in listed]
        frames = [round(s.duration * 30) for s in listed]  # (a segment per keyframe: 1 s)
        media = (await hls.get(f"{pid}/{init_uri}")).content
        for uri in uris:
            media += (await hls.get(f"{pid}/{uri}")).content
    path = tmp_path / "copied.mp4"
    path.write_bytes(media)
    packets = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "v", "-show_entries",
         "packet=pts_time,dts_time,flags", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    rows = [line.split(",") for line in packets]
    assert len(rows) == sum(frames)
    assert any(float(pts) != float(dts) for pts, dts, _ in rows)  # still out of order
    starts = [sum(frames[:i]) for i in range(len(frames))]
    assert all(rows[i][2].startswith("K") for i in starts)  # each segment's first
    # Decoded, the pictures come out evenly a frame apart, none lost or repeated, and
    # the decoder complains of nothing.
    decoded = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "v", "-show_entries",
         "frame=best_effort_timestamp_time", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert decoded.stderr == ""
    times = [float(value) for value in decoded.stdout.split()]
    assert len(times) == sum(frames)
    steps = [round(b - a, 3) for a, b in itertools.pairwise(times)]
    assert all(abs(step - 1 / 30) < 0.002 for step in steps), steps
