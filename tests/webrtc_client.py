"""An aiortc WHIP client for tests: synthetic video and audio, host candidates on 127.0.0.1."""

from __future__ import annotations

import fractions
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

from golive.ingest.webrtc import gather_on


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


async def whip_publish(base_url: str, key: str, *, video_codec: str = "H264",
                       audio: bool = True) -> WhipPublisher:
    """POST an offer to BASE_URL/whip and apply the answer; media flows once ICE connects."""
    pc = RTCPeerConnection()  # no ICE servers: aiortc's default STUN is never used here
    video = pc.addTransceiver(PatternTrack(), direction="sendonly")
    capabilities = RTCRtpSender.getCapabilities("video")
    assert capabilities is not None
    video.setCodecPreferences(
        [c for c in capabilities.codecs if c.mimeType.lower() == f"video/{video_codec.lower()}"]
    )
    if audio:
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    with gather_on(["127.0.0.1"]):
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


def rtc_config() -> dict[str, Any]:
    return {"webrtc_host_addresses": ["127.0.0.1"]}
