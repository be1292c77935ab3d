"""Backup ingest end to end: a red primary and a blue backup encoder on one stream.

The backup key publishes exactly like the stream key. While the primary feeds the
broadcast, the backup is held as its hot standby (media read, newest GOP kept); when
the primary's encoder hangs (connected, silent) the backup takes over after
failover_after, in the same broadcast, spliced into the running ffmpeg, and the LL-HLS
output turns from red to blue without a discontinuity; when the backup's encoder is then
killed the primary, now the standby, takes over at once; with failover_return_after a returning primary takes the
broadcast back once steady. A backup that connects (here over SRT) after the primary is
gone simply continues the broadcast, like a reconnect. A WHIP publisher on the backup key
(made with the stream key on create) stands by and takes over from a killed RTMP primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import math
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import (
    ADMIN,
    create_stream,
    eventually,
    get_stream,
    node_settings,
    segment_rgb,
    srt_caller,
    wait_process,
    wait_status,
)
from tests.mediatools import ffmpeg_publish, make_source, stop
from tests.webrtc_client import WhipPublisher, whip_publish

from golive.app import Golive
from golive.core import Subscription
from golive.formats.isobmff import Fragment, FragmentReader

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def red_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("media") / "red.flv", video="color=c=red")


@pytest.fixture(scope="session")
def blue_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("media") / "blue.flv", video="color=c=blue")


@pytest.fixture(scope="session")
def big_blue_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A backup unlike the 640x360, 48 kHz primary: 1280x720 at 44.1 kHz."""
    return make_source(tmp_path_factory.mktemp("media") / "blue720.flv", size="1280x720",
                       sample_rate=44100, video="color=c=blue")


async def _newest_colour(hls: httpx.AsyncClient, uri: str) -> str | None:
    """"red" or "blue": the newest frame listed in the media playlist `uri`, decoded from
    its newest independent part on (the parts, not whole segments: what LL-HLS players
    get first)."""
    text = (await hls.get(uri)).text
    parts = re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"([^\n]*)', text)
    maps = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)
    starts = [i for i, (_, rest) in enumerate(parts) if "INDEPENDENT=YES" in rest]
    if not maps or not starts:
        return None
    base = uri.rsplit("/", 1)[0]
    media = (await hls.get(f"{base}/{maps[-1]}")).content
    for part, _ in parts[starts[-1]:]:
        media += (await hls.get(f"{base}/{part}")).content
    decoded = await asyncio.to_thread(
        subprocess.run,
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", "pipe:0",
         "-vf", "scale=1:1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        input=media, capture_output=True, timeout=30, check=True,
    )
    if len(decoded.stdout) < 3:
        return None
    r, _, b = decoded.stdout[-3:]
    return "red" if r > 2 * b else "blue" if b > 2 * r else None


async def _timeline(hls: httpx.AsyncClient, uri: str) -> list[tuple[float, float]]:
    """(decode time, duration) of every fragment of every segment the playlist lists."""
    text = (await hls.get(uri)).text
    base = uri.rsplit("/", 1)[0]
    [init] = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)
    data = (await hls.get(f"{base}/{init}")).content
    for segment in re.findall(r"^(?!#)(\S+\.m4s)$", text, re.M):
        data += (await hls.get(f"{base}/{segment}")).content
    return [(f.decode_time, f.duration) for f in FragmentReader().feed(data)
            if isinstance(f, Fragment)]


def _date_end(node: Golive, stream_id: str) -> float | None:
    """Where the newest media of the stream's presentation ends, dated (Unix seconds)."""
    assert node.pipeline is not None
    pipeline = node.pipeline.for_stream(stream_id)
    assert pipeline is not None and pipeline.presentation is not None
    return pipeline.presentation.sequence()[2]


def _date_lag(node: Golive, stream_id: str) -> float | None:
    """How much later than its program date the newest input arrived (`InputFeed.date_lag`)."""
    assert node.pipeline is not None
    pipeline = node.pipeline.for_stream(stream_id)
    assert pipeline is not None and pipeline.transcoder is not None
    return pipeline.transcoder.stats.input_date_lag


def _transcoder(node: Golive, stream_id: str) -> tuple[int | None, int, int]:
    """The stream's ffmpeg: (pid, supervised restarts, inputs spliced into it)."""
    assert node.pipeline is not None
    pipeline = node.pipeline.for_stream(stream_id)
    assert pipeline is not None and pipeline.transcoder is not None
    stats = pipeline.transcoder.stats
    return stats.pid, stats.restarts, pipeline.spliced_inputs


def _dates_behind(text: str, fetched_at: float) -> float:
    """How far before `fetched_at` (Unix s) the newest part or segment a media playlist
    lists ends, by its program dates: below 0, dates run ahead of the clock."""
    start: float | None = None  # the date of the segment being listed
    into = 0.0  # its parts listed so far
    end = -math.inf
    for line in text.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            value = line.split(":", 1)[1].replace("Z", "+00:00")
            start, into = datetime.fromisoformat(value).timestamp(), 0.0
        elif line.startswith("#EXT-X-PART:") and start is not None:
            into += float(re.findall(r"DURATION=([\d.]+)", line)[0])
            end = max(end, start + into)
        elif line.startswith("#EXTINF:") and start is not None:
            start, into = start + float(line.split(":", 1)[1].rstrip(",")), 0.0
            end = max(end, start)
    assert end > -math.inf, "a playlist without program dates"
    return fetched_at - end


def _media_uri(multivariant: str) -> str:
    return next(line for line in multivariant.splitlines()
                if line and not line.startswith("#"))


async def _colour(hls: httpx.AsyncClient, uri: str, *, after_discontinuity: bool) -> str | None:
    """"red" or "blue": the mean colour of the first frame of the playlist's newest whole
    segment (the first after the last discontinuity when asked); None before there is one."""
    rgb = await segment_rgb(hls, uri, after_discontinuity=after_discontinuity,
                            newest=not after_discontinuity)
    if rgb is None:
        return None
    r, _, b = rgb
    return "red" if r > 2 * b else "blue" if b > 2 * r else f"neither ({r}, {b})"


async def _with_backup_key(api: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    """A new stream (10 s reconnect window) and its backup stream key."""
    stream = await create_stream(api, reconnect_window=10)
    made = await api.post(f"/live-streams/{stream['id']}/reset-backup-stream-key")
    assert made.status_code == 200, made.text
    return stream, made.json()["data"]["backup_stream_key"]


@dataclasses.dataclass
class _Failover:
    """A stream with a backup key and its primary publishing, a client of the node's
    /live/ and a subscription to the stream's failover events; `backup` once started."""

    stream: dict[str, Any]
    backup_key: str
    failovers: Subscription
    hls: httpx.AsyncClient
    primary: subprocess.Popen[bytes]
    backup: subprocess.Popen[bytes] | None = None

    def publish_backup(self, node: Golive, source: Path, **options: Any) -> subprocess.Popen[bytes]:
        self.backup = ffmpeg_publish(source, node.rtmp_url(self.backup_key), loop=True, **options)
        return self.backup


@contextlib.asynccontextmanager
async def _failing_over(node: Golive, api: httpx.AsyncClient,
                        primary_source: Path) -> AsyncIterator[_Failover]:
    """`_Failover` with `primary_source` published in a loop; on the way out every
    publisher stops (a hung one is woken first) and the rest is closed."""
    stream, backup_key = await _with_backup_key(api)
    failing = _Failover(
        stream, backup_key,
        node.bus.subscribe(accept=lambda e: e.type == "live_stream.failover"),
        httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30),
        ffmpeg_publish(primary_source, node.rtmp_url(stream["stream_key"]), loop=True))
    try:
        yield failing
    finally:
        failing.failovers.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(failing.primary.pid, signal.SIGCONT)
        stop(failing.primary)
        if failing.backup is not None:
            stop(failing.backup)
        await failing.hls.aclose()


async def test_backup_takes_over_from_a_stalled_then_the_primary_from_a_killed_backup(
    node: Golive, api: httpx.AsyncClient, red_flv: Path, big_blue_flv: Path
) -> None:
    """Both switches splice into the one running ffmpeg: same pid, no restart, no
    discontinuity, the same renditions and media playlists (the backup is 1280x720 at
    44.1 kHz, the primary 640x360 at 48 kHz), one continuous media timeline."""
    async with _failing_over(node, api, red_flv) as f:
        stream, failovers, hls, primary = f.stream, f.failovers, f.hls, f.primary
        live = await wait_status(api, stream["id"], "active")
        broadcast_id = live["live"]["broadcast_id"]
        pid = stream["playback_ids"][0]["id"]
        multivariant = await eventually(
            lambda: _ok_text(hls, f"{pid}.m3u8"), timeout=60, what="multivariant playlist")
        uri = _media_uri(multivariant)
        renditions = [line for line in multivariant.splitlines()
                      if line and not line.startswith("#")]

        def shows(colour: str, *, after_discontinuity: bool) -> Any:
            async def check() -> bool:
                got = await _colour(hls, uri, after_discontinuity=after_discontinuity)
                return got == colour
            return check

        await eventually(shows("red", after_discontinuity=False), timeout=60,
                         what="the primary's red picture")
        ffmpeg_pid, restarts, _ = _transcoder(node, stream["id"])
        assert ffmpeg_pid is not None

        async def newest(colour: str) -> bool:
            return await _newest_colour(hls, uri) == colour

        backup = f.publish_backup(node, big_blue_flv)

        async def standby_ready(role: str) -> dict[str, Any] | None:
            facts = (await get_stream(api, stream["id"]))["live"]
            standby = facts and facts["standby"]
            return facts if standby and standby["ready"] and standby["role"] == role else None

        facts = await eventually(lambda: standby_ready("backup"),
                                 what="the backup held as a ready standby")
        assert facts["role"] == "primary"
        # A third encoder on either key is refused: one active, one standby.
        third = ffmpeg_publish(red_flv, node.rtmp_url(stream["stream_key"]), loop=True)
        try:
            assert await wait_process(third) != 0
        finally:
            stop(third)

        lag_before = _date_lag(node, stream["id"])
        assert lag_before is not None and lag_before < 0.1  # the primary keeps its own pace
        # The primary's encoder hangs: connected, silent.
        stalled_at = time.monotonic()
        os.kill(primary.pid, signal.SIGSTOP)
        event = await asyncio.wait_for(failovers.__anext__(), 10)
        switched_date = _date_end(node, stream["id"])
        assert switched_date is not None
        took_stall = time.monotonic() - stalled_at
        assert (event.data["from"], event.data["to"]) == ("primary", "backup")
        assert str(event.data["reason"]).startswith("no media for")
        assert event.broadcast_id == broadcast_id
        await eventually(lambda: newest("blue"), timeout=60,
                         what="the backup's blue picture in LL-HLS")
        blue_stall = time.monotonic() - stalled_at

        # Program dates are the ingest clock, but the splice continues media time from the
        # primary's last frame: the silence before the failover, less the age of the
        # backup's held keyframe, is left out of media time (issue 14, open), so its input
        # now arrives that much later than its dates, never more than the silence.
        async def past_the_splice() -> bool:
            end = _date_end(node, stream["id"])
            return end is not None and end > switched_date + 2.0
        await eventually(past_the_splice, what="two seconds of the backup's media")
        hung_lag = _date_lag(node, stream["id"])
        assert hung_lag is not None and 0 <= hung_lag <= took_stall + 0.1, hung_lag

        # The primary comes back to life as the standby; the backup's encoder dies.
        os.kill(primary.pid, signal.SIGCONT)
        await eventually(lambda: standby_ready("primary"), what="the primary as standby")
        killed_at = time.monotonic()
        os.kill(backup.pid, signal.SIGKILL)
        backup.wait()
        event = await asyncio.wait_for(failovers.__anext__(), 10)
        took_kill = time.monotonic() - killed_at
        assert (event.data["from"], event.data["to"]) == ("backup", "primary")
        await eventually(lambda: newest("red"), timeout=60,
                         what="the primary's red picture again")
        red_kill = time.monotonic() - killed_at
        await eventually(shows("red", after_discontinuity=False), timeout=60,
                         what="a whole red segment after the switch back")

        after = await get_stream(api, stream["id"])
        assert after["status"] == "active"
        assert after["live"]["broadcast_id"] == broadcast_id
        assert after["live"]["connected"] and after["live"]["role"] == "primary"
        text = (await hls.get(uri)).text
        # A standby's held keyframe older than the backup's last frame is placed after that
        # frame: dates may then lead the clock, by at most the primary's 1 s GOP.
        behind = _dates_behind(text, time.time())
        assert behind > -1.0, behind
        assert "#EXT-X-ENDLIST" not in text
        sequences = [int(n) for n in re.findall(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)]
        assert len(sequences) == 1
        # Inside the one ffmpeg: not restarted, not replaced, both inputs spliced in.
        assert _transcoder(node, stream["id"]) == (ffmpeg_pid, restarts, 2)
        # Its output goes on: no discontinuity, the same media playlists (none 404s),
        # and decode times that continue fragment after fragment.
        assert "#EXT-X-DISCONTINUITY" not in text
        again = await hls.get(f"{pid}.m3u8")
        assert [line for line in again.text.splitlines()
                if line and not line.startswith("#")] == renditions
        for rendition in renditions:
            listed = await hls.get(rendition)
            assert listed.status_code == 200 and "#EXT-X-DISCONTINUITY" not in listed.text
        timeline = await _timeline(hls, uri)
        assert len(timeline) > 10
        for (start, duration), (following, _) in itertools.pairwise(timeline):
            # Forward, without a hole (`duration` is the longest track's: audio may end a
            # frame past the video).
            assert start < following <= start + duration + 0.001
        dates = re.findall(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)", text)
        assert dates == sorted(dates)
        print(f"\nstalled primary: failover event after {took_stall:.2f} s, the backup's "
              f"picture in LL-HLS parts after {blue_stall:.2f} s; killed backup: failover "
              f"event after {took_kill:.2f} s, the primary's picture after {red_kill:.2f} s "
              f"(from the primary's last packet / the backup's kill); input behind its "
              f"dates: {lag_before:.3f} s before, {hung_lag:.3f} s after the hung primary's "
              f"failover; newest media dated {behind:.3f} s before now after the killed "
              f"backup's")


async def _ok_text(hls: httpx.AsyncClient, path: str) -> str | None:
    response = await hls.get(path)
    return response.text if response.status_code == 200 else None


async def test_a_backup_without_sound_is_spliced_on_and_its_silence_filled(
    node: Golive, api: httpx.AsyncClient, red_flv: Path, blue_flv: Path
) -> None:
    """A backup encoder that sends no sound (a camera-only backup) takes over in the
    running ffmpeg: the renditions keep their audio, as silence, with no restart and no
    discontinuity (the ladder's audio would otherwise stall)."""
    async with _failing_over(node, api, red_flv) as f:
        stream, failovers, hls, primary = f.stream, f.failovers, f.hls, f.primary
        await wait_status(api, stream["id"], "active")
        pid = stream["playback_ids"][0]["id"]
        multivariant = await eventually(
            lambda: _ok_text(hls, f"{pid}.m3u8"), timeout=60, what="multivariant playlist")
        uri = _media_uri(multivariant)
        ffmpeg_pid, restarts, spliced = _transcoder(node, stream["id"])
        f.publish_backup(node, blue_flv, extra=["-an"])

        async def standby_ready() -> bool:
            facts = (await get_stream(api, stream["id"]))["live"]
            return bool(facts and facts["standby"] and facts["standby"]["ready"])

        await eventually(standby_ready, what="the backup held as a ready standby")
        os.kill(primary.pid, signal.SIGSTOP)  # the primary's encoder hangs
        event = await asyncio.wait_for(failovers.__anext__(), 10)
        assert (event.data["from"], event.data["to"]) == ("primary", "backup")

        async def newest_blue() -> bool:
            return await _newest_colour(hls, uri) == "blue"

        await eventually(newest_blue, timeout=60, what="the backup's blue picture")
        assert _transcoder(node, stream["id"]) == (ffmpeg_pid, restarts, spliced + 1)
        assert node.pipeline is not None
        pipeline = node.pipeline.for_stream(stream["id"])
        assert pipeline is not None and pipeline.transcoder is not None
        assert pipeline.transcoder._input.silences_filled >= 1
        text = (await hls.get(uri)).text
        assert "#EXT-X-DISCONTINUITY" not in text
        assert "mp4a" in (await hls.get(f"{pid}.m3u8")).text  # the same renditions
        events = (await api.get(f"/live-streams/{stream['id']}/events")).json()["data"]
        codes = [(e.get("data") or {}).get("code") for e in events]
        assert "transcoder_restarted_for_input" not in codes, codes


async def test_backup_over_srt_after_the_primary_left_continues_and_is_dropped_when_replaced(
    node: Golive, api: httpx.AsyncClient, source_flv: Path
) -> None:
    stream, backup_key = await _with_backup_key(api)
    # Over SRT: the backup key works on every ingest protocol, like the stream key.
    backup_url = srt_caller(node.srt_url(backup_key))

    primary = ffmpeg_publish(source_flv, node.rtmp_url(stream["stream_key"]), loop=True)
    try:
        live = await wait_status(api, stream["id"], "active")
        broadcast_id = live["live"]["broadcast_id"]
    finally:
        os.kill(primary.pid, signal.SIGKILL)
        primary.wait()

    async def connected(want: bool) -> dict[str, Any] | None:
        data = await get_stream(api, stream["id"])
        return data if data["live"] and data["live"]["connected"] is want else None

    lost = await eventually(lambda: connected(False), what="primary loss noticed")
    assert lost["status"] == "active"

    backup = ffmpeg_publish(source_flv, backup_url, loop=True, muxer="mpegts")
    try:
        back = await eventually(lambda: connected(True), what="backup publishing")
        assert back["live"]["protocol"] == "srt"
        assert back["live"]["broadcast_id"] == broadcast_id
        assert back["live"]["reconnects"] == 1 and back["live"]["role"] == "backup"
        # Replacing the backup key drops the encoder that uses it, like a stream key reset.
        again = await api.post(f"/live-streams/{stream['id']}/reset-backup-stream-key")
        assert again.status_code == 200, again.text
        assert await wait_process(backup) != 0
    finally:
        stop(backup)
    dropped = await eventually(lambda: connected(False), what="old backup key dropped")
    assert dropped["live"]["broadcast_id"] == broadcast_id


async def test_a_returning_primary_takes_back_over_after_return_after(
    tmp_path: Path, red_flv: Path, blue_flv: Path
) -> None:
    async with Golive(node_settings(tmp_path, failover_return_after=2.0)) as node, \
            httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                              headers={"Authorization": f"Bearer {ADMIN}"}) as api, \
            httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30) as hls:
        stream, backup_key = await _with_backup_key(api)
        backup_url = node.rtmp_url(backup_key)
        primary_url = node.rtmp_url(stream["stream_key"])
        failovers = node.bus.subscribe(accept=lambda e: e.type == "live_stream.failover")
        primary = ffmpeg_publish(red_flv, primary_url, loop=True)
        backup: subprocess.Popen[bytes] | None = None
        try:
            await wait_status(api, stream["id"], "active")
            backup = ffmpeg_publish(blue_flv, backup_url, loop=True)

            async def standby_ready(role: str) -> bool:
                facts = (await get_stream(api, stream["id"]))["live"]
                standby = facts and facts["standby"]
                return bool(standby and standby["ready"] and standby["role"] == role)

            await eventually(lambda: standby_ready("backup"), what="the backup as standby")
            os.kill(primary.pid, signal.SIGKILL)
            primary.wait()
            event = await asyncio.wait_for(failovers.__anext__(), 10)
            assert event.data["to"] == "backup"

            primary = ffmpeg_publish(red_flv, primary_url, loop=True)
            back_at = time.monotonic()
            event = await asyncio.wait_for(failovers.__anext__(), 30)
            waited = time.monotonic() - back_at
            assert (event.data["from"], event.data["to"]) == ("backup", "primary")
            assert str(event.data["reason"]).startswith("primary steady for")
            assert waited >= 2.0

            pid = stream["playback_ids"][0]["id"]
            uri = _media_uri((await hls.get(f"{pid}.m3u8")).text)

            async def red() -> bool:
                return await _newest_colour(hls, uri) == "red"

            await eventually(red, timeout=60, what="the primary's red picture again")
            facts = (await get_stream(api, stream["id"]))["live"]
            assert facts["role"] == "primary" and facts["standby"]["role"] == "backup"
            print(f"\nprimary back: switched back {waited:.2f} s after it reconnected")
        finally:
            failovers.close()
            stop(primary)
            if backup is not None:
                stop(backup)


async def test_a_whip_backup_takes_over_when_the_rtmp_primary_is_killed(
    tmp_path: Path, red_flv: Path
) -> None:
    # ICE on loopback only, as in test_whip.py.
    settings = node_settings(tmp_path, webrtc_host_addresses=["127.0.0.1"])
    async with Golive(settings) as node, \
            httpx.AsyncClient(base_url=f"{node.http_url}/api/v1", timeout=10,
                              headers={"Authorization": f"Bearer {ADMIN}"}) as api, \
            httpx.AsyncClient(base_url=f"{node.http_url}/live/", timeout=30) as hls:
        # The backup key comes with the stream key on create: no separate reset.
        stream = await create_stream(api, reconnect_window=10)
        failovers = node.bus.subscribe(accept=lambda e: e.type == "live_stream.failover")
        primary = ffmpeg_publish(red_flv, node.rtmp_url(stream["stream_key"]), loop=True)
        backup: WhipPublisher | None = None
        try:
            live = await wait_status(api, stream["id"], "active")
            broadcast_id = live["live"]["broadcast_id"]
            backup = await whip_publish(node.http_url, stream["backup_stream_key"])

            async def whip_standby_ready() -> bool:
                facts = (await get_stream(api, stream["id"]))["live"]
                standby = facts and facts["standby"]
                return bool(standby and standby["ready"] and standby["role"] == "backup"
                            and standby["protocol"] == "whip")

            await eventually(whip_standby_ready, what="the WHIP backup as a ready standby")
            os.kill(primary.pid, signal.SIGKILL)
            primary.wait()
            event = await asyncio.wait_for(failovers.__anext__(), 10)
            assert (event.data["from"], event.data["to"]) == ("primary", "backup")
            assert event.broadcast_id == broadcast_id

            after = await get_stream(api, stream["id"])
            assert after["status"] == "active" and after["live"]["connected"]
            assert after["live"]["broadcast_id"] == broadcast_id
            assert (after["live"]["role"], after["live"]["protocol"]) == ("backup", "whip")
            # The output goes on from the WHIP publisher's picture (aiortc's grey pattern,
            # not the primary's red), its 320x240 fitted to the primary's ladder.
            pid = stream["playback_ids"][0]["id"]

            async def backup_picture() -> str | None:
                multivariant = await _ok_text(hls, f"{pid}.m3u8")
                if multivariant is None:
                    return None
                uri = _media_uri(multivariant)
                if await _ok_text(hls, uri) is None:
                    return None
                got = await _colour(hls, uri, after_discontinuity=False)
                return uri if got is not None and got != "red" else None

            uri = await eventually(backup_picture, timeout=60,
                                   what="the WHIP backup's picture in LL-HLS")
            assert "#EXT-X-ENDLIST" not in (await hls.get(uri)).text
        finally:
            failovers.close()
            stop(primary)
            if backup is not None:
                await backup.close()
