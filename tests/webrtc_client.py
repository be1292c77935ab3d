"""An aiortc WHIP client for tests: synthetic video and audio, host candidates on 127.0.0.1."""

from __future__ import annotations

import fractions
import re
import uuid
from dataclasses import dataclass
from typing import Any

import av
import httpx
from aiortc import (
    AudioStreamTrack,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)

from golive.webrtc.ice import gather_on


class PatternTrack(VideoStreamTrack):
    """Small moving frames, cheap to encode: 320x240 at 30 fps."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.count = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        shade = (self.count * 4) % 256
        for i, plane in enumerate(frame.planes):
            plane.update(bytes([shade if i == 0 else 128]) * plane.buffer_size)
        self.count += 1
        frame.pts = pts
        frame.time_base = fractions.Fraction(time_base.numerator, time_base.denominator)
        return frame


@dataclass
class WhipPublisher:
    pc: RTCPeerConnection
    location: str
    answer: str
    client: httpx.AsyncClient
    key: str

    async def delete(self) -> httpx.Response:
        return await self.client.delete(self.location,
                                        headers={"Authorization": f"Bearer {self.key}"})

    async def close(self) -> None:
        await self.pc.close()
        await self.client.aclose()


async def whip_publish(base_url: str, key: str, *, video_codec: str | None = "H264",
                       audio: bool = True, addresses: tuple[str, ...] = ("127.0.0.1",)
                       ) -> WhipPublisher:
    """POST an offer to BASE_URL/whip and apply the answer; media flows once ICE connects.
    `video_codec` None offers sound alone (a microphone without a camera); `addresses`
    are where the client gathers its host candidates."""
    pc = RTCPeerConnection()  # no ICE servers: aiortc's default STUN is never used here
    if video_codec is not None:
        video = pc.addTransceiver(PatternTrack(), direction="sendonly")
        capabilities = RTCRtpSender.getCapabilities("video")
        assert capabilities is not None
        video.setCodecPreferences([c for c in capabilities.codecs
                                   if c.mimeType.lower() == f"video/{video_codec.lower()}"])
    if audio:
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    with gather_on(addresses):
        await pc.setLocalDescription(await pc.createOffer())
    client = httpx.AsyncClient(base_url=base_url, timeout=20)
    response = await client.post(
        "/whip", content=pc.localDescription.sdp,
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {key}"},
    )
    if response.status_code != 201:
        await pc.close()
        await client.aclose()
        raise WhipRefused(response)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
    return WhipPublisher(pc, response.headers["location"], response.text, client, key)


class WhipRefused(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.status_code} {response.text}")
        self.response = response


_HOST_CANDIDATE = re.compile(r"^a=candidate:(\S+) (\d+) (\S+) (\d+) (\S+) (\d+) typ host(.*)$")


def as_a_browser_offers(sdp: str, *, end_of_candidates: bool = False) -> str:
    """`sdp` (aiortc's) with its addresses hidden the way Chromium hides them.

    Each host candidate becomes two under fresh mDNS names (draft-ietf-mmusic-mdns-ice-
    candidates), and aiortc's `a=end-of-candidates` goes, as Chromium's offers carry
    none, unless `end_of_candidates`. The peer is then reachable only through its checks.
    """
    out: list[str] = []
    for line in sdp.splitlines():
        match = _HOST_CANDIDATE.match(line)
        if match is None:
            if end_of_candidates or line != "a=end-of-candidates":
                out.append(line)
            continue
        foundation, component, transport, priority, _address, port, rest = match.groups()
        for n in range(2):
            out.append(f"a=candidate:{foundation}{n} {component} {transport} {priority} "
                       f"{uuid.uuid4()}.local {int(port) + n} typ host{rest}")
    return "\r\n".join(out) + "\r\n"


def rtc_config() -> dict[str, Any]:
    return {"webrtc_host_addresses": ["127.0.0.1"]}


@dataclass
class WhepViewer:
    """A WHEP player: decodes what arrives and counts it."""

    pc: RTCPeerConnection
    location: str
    answer: str
    client: httpx.AsyncClient
    started_at: float
    video_frames: list[tuple[float, int, int]]  # (seconds since POST, width, height)
    audio_frames: int = 0
    tasks: list[Any] | None = None

    async def delete(self) -> httpx.Response:
        return await self.client.delete(self.location)

    async def close(self) -> None:
        for task in self.tasks or []:
            task.cancel()
        await self.pc.close()
        await self.client.aclose()


async def whep_play(base_url: str, playback_id: str, *, audio: bool = True,
                    addresses: tuple[str, ...] = ("127.0.0.1",)) -> WhepViewer:
    """POST a recvonly offer to BASE_URL/whep/PLAYBACK_ID; frames are decoded as they come
    (host candidates gathered on `addresses`)."""
    import asyncio
    import time

    from aiortc.mediastreams import MediaStreamError

    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    if audio:
        pc.addTransceiver("audio", direction="recvonly")
    viewer_box: list[WhepViewer] = []
    tasks: list[Any] = []

    async def consume(track: Any) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            viewer = viewer_box[0] if viewer_box else None
            if viewer is None:
                continue
            if track.kind == "video":
                viewer.video_frames.append(
                    (time.monotonic() - viewer.started_at, frame.width, frame.height))
            else:
                viewer.audio_frames += 1

    @pc.on("track")
    def on_track(track: Any) -> None:
        tasks.append(asyncio.ensure_future(consume(track)))

    with gather_on(addresses):
        await pc.setLocalDescription(await pc.createOffer())
    client = httpx.AsyncClient(base_url=base_url, timeout=20)
    started = time.monotonic()
    response = await client.post(f"/whep/{playback_id}", content=pc.localDescription.sdp,
                                 headers={"Content-Type": "application/sdp"})
    if response.status_code != 201:
        await pc.close()
        await client.aclose()
        raise WhipRefused(response)
    viewer = WhepViewer(pc, response.headers["location"], response.text, client, started, [],
                        0, tasks)
    viewer_box.append(viewer)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
    return viewer
