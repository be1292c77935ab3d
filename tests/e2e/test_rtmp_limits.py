"""Enhanced RTMP publishers, the publisher limit and the idle timeout, over real sockets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import (
    ADMIN,
    DumpObserver,
    FlvDump,
    create_stream,
    eventually,
    get_stream,
    node_settings,
)
from tests.ingest.rtmp.rtmpclient import SocketClient
from tests.mediatools import FFMPEG

from golive.app import Golive

pytestmark = pytest.mark.slow


def hvcc_from_ffmpeg(tmp_path: Path) -> bytes:
    mp4 = tmp_path / "hevc.mp4"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc2=s=426x240:r=25", "-t", "0.2", "-c:v", "libx265", "-preset", "ultrafast",
         "-x265-params", "log-level=error", "-tag:v", "hvc1", "-y", str(mp4)],
        check=True, timeout=60,
    )
    data = mp4.read_bytes()
    at = data.index(b"hvcC")
    size = int.from_bytes(data[at - 4 : at], "big")
    return data[at + 4 : at - 4 + size]


async def test_enhanced_rtmp_hevc_and_av1_are_accepted_and_passed_through(
    node: Golive, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    observer = DumpObserver(tmp_path)
    assert node.hub is not None
    node.hub.add_observer(observer)
    hvcc = hvcc_from_ffmpeg(tmp_path)
    for fourcc, config, codec in ((b"hvc1", hvcc, "hevc"), (b"av01", b"\x81\x08\x0c\x00", "av1")):
        stream = await create_stream(api)
        client = await SocketClient.connect(node.rtmp_port)
        codec_ = client.codec
        await client.send(
            codec_.command("connect", {"app": "live", "fourCcList": ["hvc1", "av01"]}),
            codec_.command("createStream", None),
            codec_.command("publish", None, stream["stream_key"], "live", stream_id=1),
        )
        assert await client.wait_status() == "NetStream.Publish.Start"
        # Enhanced RTMP: IsExHeader | FrameType(key) | PacketType, then the FourCC.
        tags = [codec_.media(9, 0, bytes((0x90,)) + fourcc + config)]
        for i in range(10):
            frame_type = 0x10 if i % 5 == 0 else 0x20
            packet = 3  # CodedFramesX: no composition time offset
            tags.append(codec_.media(9, i * 40, bytes((0x80 | frame_type | packet,)) + fourcc
                                     + b"\x00\x00\x00\x10" + bytes(16)))
        await client.send(*tags)

        async def live(stream_id: str = stream["id"], codec: str = codec) -> dict[str, object] | None:
            facts = (await get_stream(api, stream_id))["live"]
            return facts if facts and facts.get("video_codec") == codec else None

        facts = await eventually(live, what=f"{codec} facts")
        if codec == "hevc":
            assert (facts["width"], facts["height"]) == (426, 240)
        dump = observer.dumps[stream["id"]]

        await wait_tags(dump, 11)  # the sequence start and every coded frame
        client.close()


async def wait_tags(dump: FlvDump, count: int) -> None:
    async def enough() -> bool:
        return dump.tags >= count

    await eventually(enough, what=f"{count} tags passed through")


async def test_publisher_limit_and_idle_timeout(tmp_path: Path) -> None:
    settings = node_settings(tmp_path, max_publishers=1, rtmp_idle_timeout=1.0)
    async with Golive(settings) as node, httpx.AsyncClient(
        base_url=f"{node.http_url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"}
    ) as api:
        first_stream, second_stream = await create_stream(api), await create_stream(api)
        first = await SocketClient.connect(node.rtmp_port)
        await first.send(*first.codec.publish_sequence(first_stream["stream_key"]))
        assert await first.wait_status() == "NetStream.Publish.Start"

        second = await SocketClient.connect(node.rtmp_port)
        await second.send(*second.codec.publish_sequence(second_stream["stream_key"]))
        assert await second.wait_status() == "NetStream.Publish.Rejected"

        # The first publisher sends nothing more: dropped after the idle timeout.
        assert await first.closed_by_server(timeout=10)

        async def gone() -> bool:
            live = (await get_stream(api, first_stream["id"]))["live"]
            return live is None or not live["connected"]

        await eventually(gone, what="idle publisher dropped")
