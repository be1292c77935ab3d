"""WHIP ingest without a node: the HTTP contract (RFC 9725), H.264 framing, WebRTC settings."""

from __future__ import annotations

import asyncio
import fractions
import struct
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aioice.ice
import av
import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from tests.webrtc_client import as_a_browser_offers

from golive.formats.annexb import AnnexBToFlv, split_annexb
from golive.formats.codecs import (
    CodecError,
    avc_decoder_config,
    parse_avc_config,
    parse_video_tag,
)
from golive.formats.tag import MediaTag, TagType
from golive.ingest.whip import WhipEndpoint, WhipLimits
from golive.stream.publish import PublishRefused, RefusalReason
from golive.webrtc.ice import (
    IceServer,
    WebRtcOptions,
    advertise_public_address,
    gather_on,
    install_host_address_hook,
    is_mdns_name,
    without_mdns_candidates,
)
from golive.webrtc.sdp import MAX_REMOTE_CANDIDATES, count_candidates, inspect_offer
from golive.webrtc.transcode import OpusToAac, audio_specific_config

KEY = "sk_live_test"
SPS = bytes.fromhex("6742c01eda0280bfe584000003000400000300f03c58ba80")  # constrained baseline, level 3.0
PPS = bytes.fromhex("68ce0fc8")


# A fake hub -------------------------------------------------------------------------


@dataclass
class FakePublisher:
    stream_id: str = "ls_1"
    broadcast_id: str = "bc_1"
    webrtc_playback: bool = False
    tags: list[MediaTag] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    disconnect: Callable[[str], None] | None = None

    def push(self, tag: MediaTag) -> None:
        self.tags.append(tag)

    def close(self, reason: str) -> None:
        self.closed.append(reason)


@dataclass
class FakeHub:
    refuse: RefusalReason | None = None
    publishers: list[FakePublisher] = field(default_factory=list)

    async def open_publisher(self, stream_key: str, *, protocol: str, remote_address: str,
                             disconnect: Callable[[str], None] | None = None) -> FakePublisher:
        assert protocol == "whip"
        if stream_key != KEY:
            raise PublishRefused(RefusalReason.UNKNOWN_KEY, "unknown stream key")
        if self.refuse is not None:
            raise PublishRefused(self.refuse, f"refused: {self.refuse}")
        publisher = FakePublisher(disconnect=disconnect)
        self.publishers.append(publisher)
        return publisher


@pytest.fixture(autouse=True)
def _host_address_hook() -> None:
    install_host_address_hook()  # what the composition root does at start


@pytest.fixture
def hub() -> FakeHub:
    return FakeHub()


@pytest.fixture
async def endpoint(hub: FakeHub) -> AsyncIterator[WhipEndpoint]:
    whip = WhipEndpoint(hub, WebRtcOptions(host_addresses=("127.0.0.1",)),
                        WhipLimits(max_sessions=2))
    yield whip
    await whip.close()


@pytest.fixture
async def http(endpoint: WhipEndpoint) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(endpoint.router())
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://golive") as client:
        yield client


async def client_offer(*, video: bool = True, audio: bool = True) -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection()
    if video:
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    if audio:
        pc.addTransceiver("audio", direction="sendonly")
    with gather_on(["127.0.0.1"]):
        await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def post(http: httpx.AsyncClient, sdp: str | bytes, *, key: str | None = KEY,
               content_type: str = "application/sdp") -> httpx.Response:
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return await http.post("/whip", content=sdp, headers=headers)


# HTTP -------------------------------------------------------------------------------


async def test_post_answers_201_with_location_etag_and_sdp(
    http: httpx.AsyncClient, hub: FakeHub, endpoint: WhipEndpoint
) -> None:
    pc, offer = await client_offer()
    try:
        response = await post(http, offer)
        assert response.status_code == 201, response.text
        assert response.headers["content-type"] == "application/sdp"
        assert response.headers["location"].startswith("/whip/")
        assert response.headers["etag"].startswith('"')
        assert response.headers["accept-patch"] == "application/trickle-ice-sdpfrag"
        assert "link" not in response.headers  # no ICE servers configured
        answer = response.text
        assert "a=recvonly" in answer and "H264/90000" in answer and "opus/48000" in answer
        assert "PCMU" not in answer
        # H.264 is preferred over VP8 even though aiortc offers VP8 first.
        video_line = next(line for line in answer.splitlines() if line.startswith("m=video"))
        first_pt = video_line.split()[3]
        assert f"a=rtpmap:{first_pt} H264/90000" in answer
        assert [p.stream_id for p in hub.publishers] == ["ls_1"]
        assert len(endpoint.sessions) == 1
    finally:
        await pc.close()


async def test_delete_ends_the_publisher_and_the_session(
    http: httpx.AsyncClient, hub: FakeHub, endpoint: WhipEndpoint
) -> None:
    pc, offer = await client_offer()
    try:
        location = (await post(http, offer)).headers["location"]
        wrong = await http.delete(location, headers={"Authorization": "Bearer other"})
        assert wrong.status_code == 403
        response = await http.delete(location, headers={"Authorization": f"Bearer {KEY}"})
        assert response.status_code == 200
        assert hub.publishers[0].closed == ["unpublish"]
        assert endpoint.sessions == []
        assert (await http.delete(location)).status_code == 404
    finally:
        await pc.close()


async def test_hub_kick_closes_the_session(hub: FakeHub, endpoint: WhipEndpoint,
                                           http: httpx.AsyncClient) -> None:
    pc, offer = await client_offer()
    try:
        assert (await post(http, offer)).status_code == 201
        disconnect = hub.publishers[0].disconnect
        assert disconnect is not None
        disconnect("stream key reset")
        await endpoint.close()  # waits for the scheduled close
        assert hub.publishers[0].closed == ["kicked: stream key reset"]
        assert endpoint.sessions == []
    finally:
        await pc.close()


@pytest.mark.parametrize(("key", "refuse", "status", "reason"), [
    (None, None, 401, "missing_token"),
    ("wrong", None, 401, "unknown_key"),
    (KEY, RefusalReason.DISABLED, 403, "disabled"),
    (KEY, RefusalReason.ALREADY_LIVE, 403, "already_live"),
    (KEY, RefusalReason.TOO_MANY_PUBLISHERS, 503, "too_many_publishers"),
])
async def test_refused_keys(http: httpx.AsyncClient, hub: FakeHub, key: str | None,
                            refuse: RefusalReason | None, status: int, reason: str) -> None:
    hub.refuse = refuse
    pc, offer = await client_offer()
    try:
        response = await post(http, offer, key=key)
        assert response.status_code == status
        assert response.json()["error"]["reason"] == reason
        assert response.headers["access-control-allow-origin"] == "*"
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
        if status == 503:
            assert "retry-after" in response.headers
    finally:
        await pc.close()


HOSTILE_OFFERS = [
    "",
    "hello",
    "v=0\r\n",
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",  # no media
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    "c=IN IP4 0.0.0.0\r\na=rtpmap:96 H264/90000\r\n",  # no ICE, no DTLS
    "v=0\r\nm=video x y z\r\n" * 50,
    "\x00\xff" * 100,
]


@pytest.mark.parametrize("offer", HOSTILE_OFFERS)
async def test_hostile_offers_are_400_and_open_no_publisher(
    http: httpx.AsyncClient, hub: FakeHub, offer: str
) -> None:
    response = await post(http, offer.encode("latin-1"))
    assert response.status_code == 400, response.text
    assert hub.publishers == []


async def test_offer_without_a_usable_codec_is_400_and_closes_its_publisher(
    http: httpx.AsyncClient, hub: FakeHub, endpoint: WhipEndpoint
) -> None:
    pc, offer = await client_offer(video=False)
    try:
        only_pcmu = "\r\n".join(
            line.replace("opus/48000/2", "PCMU/8000") for line in offer.splitlines()
        ) + "\r\n"
        response = await post(http, only_pcmu)
        assert response.status_code == 400
        assert "Opus" in response.json()["error"]["message"]
        assert hub.publishers[0].closed == ["error: offer refused"]
        assert endpoint.sessions == []
    finally:
        await pc.close()


async def test_more_than_one_video_section_is_refused() -> None:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="sendonly")
    pc.addTransceiver("video", direction="sendonly")
    with gather_on(["127.0.0.1"]):
        await pc.setLocalDescription(await pc.createOffer())
    try:
        with pytest.raises(Exception, match="one audio and one video"):
            inspect_offer(pc.localDescription.sdp)
    finally:
        await pc.close()


async def test_content_type_size_and_encoding(http: httpx.AsyncClient) -> None:
    assert (await post(http, "v=0", content_type="text/plain")).status_code == 415
    assert (await post(http, "v=0" + "x" * 70_000)).status_code == 413
    assert (await post(http, b"\xff\xfe\xfd")).status_code == 400


async def test_session_limit(http: httpx.AsyncClient) -> None:
    peers = [await client_offer() for _ in range(3)]
    try:
        statuses = [(await post(http, offer)).status_code for _, offer in peers]
        assert statuses == [201, 201, 503]
    finally:
        for pc, _ in peers:
            await pc.close()


async def test_options_preflight(http: httpx.AsyncClient) -> None:
    response = await http.options("/whip", headers={
        "Origin": "https://studio.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "Authorization" in response.headers["access-control-allow-headers"]
    assert response.headers["accept-post"] == "application/sdp"
    session = await http.options("/whip/anything")
    assert session.status_code == 204
    assert "PATCH" in session.headers["access-control-allow-methods"]
    assert "DELETE" in session.headers["access-control-allow-methods"]


async def test_patch_trickle_and_restart(http: httpx.AsyncClient) -> None:
    pc, offer = await client_offer()
    try:
        created = await post(http, offer)
        location, etag = created.headers["location"], created.headers["etag"]
        sdpfrag = {"Content-Type": "application/trickle-ice-sdpfrag"}
        ufrag = next(line for line in offer.splitlines() if line.startswith("a=ice-ufrag:"))
        candidate = ("a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host")
        body = f"{ufrag}\r\na=mid:0\r\n{candidate}\r\na=end-of-candidates\r\n"

        assert (await http.patch("/whip/nope", headers=sdpfrag, content=body)).status_code == 404
        wrong_type = await http.patch(location, headers={"Content-Type": "application/sdp"},
                                      content=body)
        assert wrong_type.status_code == 415
        stale = await http.patch(location, headers={**sdpfrag, "If-Match": '"stale"'},
                                 content=body)
        assert stale.status_code == 412
        trickle = await http.patch(location, headers={**sdpfrag, "If-Match": etag},
                                   content=body)
        assert trickle.status_code == 204, trickle.text
        restart = await http.patch(location, headers={**sdpfrag, "If-Match": "*"},
                                   content="a=ice-ufrag:new1\r\na=ice-pwd:0123456789abcdefghijkl\r\n")
        assert restart.status_code == 422
        garbage = await http.patch(location, headers=sdpfrag,
                                   content="a=mid:0\r\na=candidate:nonsense\r\n")
        assert garbage.status_code == 400
    finally:
        await pc.close()


def with_candidates(offer: str, count: int, port: int = 40000) -> str:
    """`offer` with `count` more host candidates in its first m-section."""
    lines = offer.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("a=mid:")) + 1
    extra = [f"a=candidate:x{n} 1 udp {2130706431 - n} 127.0.0.1 {port + n} typ host"
             for n in range(count)]
    return "\r\n".join([*lines[:at], *extra, *lines[at:]]) + "\r\n"


async def test_offers_with_too_many_candidates_are_refused_before_any_check(
    http: httpx.AsyncClient, hub: FakeHub
) -> None:
    # Every remote candidate is a pair aioice sends STUN checks to: a 64 KiB offer holds
    # ~700, each an address of the sender's choice. The cap refuses such an offer whole.
    pc, offer = await client_offer()
    try:
        room = MAX_REMOTE_CANDIDATES - count_candidates(offer)
        refused = await post(http, with_candidates(offer, room + 1))
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["reason"] == "too_many_candidates"
        assert hub.publishers == []
        accepted = await post(http, with_candidates(offer, room))
        assert accepted.status_code == 201, accepted.text
    finally:
        await pc.close()


async def test_trickled_candidates_count_against_the_same_cap(
    http: httpx.AsyncClient, endpoint: WhipEndpoint
) -> None:
    pc, offer = await client_offer()
    try:
        created = await post(http, offer)
        location = created.headers["location"]
        sdpfrag = {"Content-Type": "application/trickle-ice-sdpfrag"}
        room = MAX_REMOTE_CANDIDATES - count_candidates(offer)

        def fragment(first: int, count: int) -> str:
            return "a=mid:0\r\n" + "".join(
                f"a=candidate:t{n} 1 udp {2130706431 - n} 127.0.0.1 {41000 + n} typ host\r\n"
                for n in range(first, first + count))

        half = room // 2
        for first, count in ((0, half), (half, room - half)):
            taken = await http.patch(location, headers=sdpfrag, content=fragment(first, count))
            assert taken.status_code == 204, taken.text
        flood = await http.patch(location, headers=sdpfrag, content=fragment(room, 1))
        assert flood.status_code == 400, flood.text
        assert flood.json()["error"]["reason"] == "too_many_candidates"
        (session,) = endpoint.sessions
        assert session.remote_candidates == MAX_REMOTE_CANDIDATES
    finally:
        await pc.close()


async def test_a_publisher_hiding_its_addresses_connects_after_trickling_its_end(
    http: httpx.AsyncClient, endpoint: WhipEndpoint
) -> None:
    # A browser's candidates are mDNS names, which golive does not resolve: it learns the
    # publisher's address from its checks, so an end-of-candidates must not end ICE first.
    pc, offer = await client_offer()
    settled = asyncio.Event()

    @pc.on("connectionstatechange")
    def changed() -> None:
        if pc.connectionState in ("connected", "failed"):
            settled.set()

    try:
        created = await post(http, as_a_browser_offers(offer))
        assert created.status_code == 201, created.text
        assert endpoint.sessions[0].hides_addresses
        ufrag = next(line for line in offer.splitlines() if line.startswith("a=ice-ufrag:"))
        body = (f"{ufrag}\r\na=mid:0\r\n"
                f"a=candidate:9 1 udp 2130706431 {uuid.uuid4()}.local 40000 typ host\r\n"
                "a=end-of-candidates\r\n")
        trickle = await http.patch(created.headers["location"], content=body, headers={
            "Content-Type": "application/trickle-ice-sdpfrag",
            "If-Match": created.headers["etag"]})
        assert trickle.status_code == 204, trickle.text
        await pc.setRemoteDescription(RTCSessionDescription(sdp=created.text, type="answer"))
        await asyncio.wait_for(settled.wait(), 30)
        assert pc.connectionState == "connected"
    finally:
        await pc.close()


# H.264 framing ----------------------------------------------------------------------


def annexb(*units: bytes, long_start: bool = True) -> bytes:
    code = b"\x00\x00\x00\x01" if long_start else b"\x00\x00\x01"
    return b"".join(code + unit for unit in units)


IDR = bytes([0x65, 0x88, 0x84, 0x00, 0x33])
P_SLICE = bytes([0x41, 0x9A, 0x02, 0x04])


def test_split_annexb_handles_both_start_code_lengths() -> None:
    data = annexb(SPS, PPS) + annexb(IDR, long_start=False)
    assert split_annexb(data) == [SPS, PPS, IDR]
    with pytest.raises(CodecError):
        split_annexb(b"\x01\x02\x00\x00\x01\x65")


def test_avc_configuration_round_trips() -> None:
    config = parse_avc_config(avc_decoder_config((SPS,), (PPS,)))
    assert (config.profile_idc, config.level_idc) == (0x42, 0x1E)
    assert config.sps == (SPS,) and config.pps == (PPS,)
    assert config.nal_length_size == 4


def test_frames_wait_for_a_keyframe_with_parameter_sets() -> None:
    flv = AnnexBToFlv()
    early = flv.push(annexb(P_SLICE), 0)
    assert early.tags == () and early.need_keyframe
    key = flv.push(annexb(b"\x09\xf0", SPS, PPS, IDR), 40)
    assert not key.need_keyframe
    header, frame = key.tags
    assert header.body[:2] == b"\x17\x00" and header.timestamp == 40
    assert frame.body[:5] == b"\x17\x01\x00\x00\x00"
    # Length-prefixed IDR only: the AUD and parameter sets left the frame.
    assert frame.body[5:] == struct.pack(">I", len(IDR)) + IDR
    info = parse_video_tag(frame.body)
    assert (info.codec, info.is_keyframe, info.is_frame) == ("h264", True, True)
    inter = flv.push(annexb(P_SLICE), 73)
    assert [t.body[:2] for t in inter.tags] == [b"\x27\x01"]
    assert (flv.width, flv.height) == (640, 360)
    # Unchanged parameter sets are not repeated; changed ones are.
    assert len(flv.push(annexb(SPS, PPS, IDR), 106).tags) == 1
    # A damaged access unit stops the stream until the next keyframe.
    assert flv.push(b"\xff\xff" + annexb(P_SLICE), 140).need_keyframe
    assert flv.push(annexb(P_SLICE), 173).tags == ()
    assert flv.push(annexb(IDR), 206).tags[0].body[0] == 0x17


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_arbitrary_access_units_never_raise(chunks: list[bytes]) -> None:
    flv = AnnexBToFlv()
    for i, chunk in enumerate(chunks):
        for tag in flv.push(chunk, i).tags:
            assert tag.type is TagType.VIDEO


# Opus -> AAC ------------------------------------------------------------------------


def opus_packets(count: int, start: int = 0) -> list[tuple[bytes, int]]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48000
    encoder.layout = "stereo"
    encoder.format = "s16"
    encoder.time_base = fractions.Fraction(1, 48000)
    packets = []
    for i in range(count):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.sample_rate = 48000
        frame.pts = i * 960
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        packets += [(bytes(p), start + (p.pts or 0)) for p in encoder.encode(frame)]
    return packets


def test_opus_becomes_aac_on_the_same_timeline() -> None:
    converter = OpusToAac(500.0)
    tags: list[MediaTag] = []
    for payload, ts in opus_packets(100):
        tags += converter.push(payload, ts)
    assert tags[0].body[:2] == b"\xaf\x00"
    assert tags[0].body[2:4] == audio_specific_config(48000, 2) == b"\x11\x90"
    frames = tags[1:]
    assert all(t.body[:2] == b"\xaf\x01" for t in frames)
    assert len(frames) >= 80  # ~2 s of 1024-sample frames, less the encoder delay
    times = [t.timestamp for t in frames]
    assert times == sorted(times)
    assert 480 <= times[0] <= 520 and 2300 <= times[-1] <= 2560


# WebRTC settings --------------------------------------------------------------------


def test_gather_on_restricts_aioice_to_the_given_addresses() -> None:
    default = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
    assert "127.0.0.1" not in default  # aioice's own choice leaves loopback out
    with gather_on(["127.0.0.1", "::1"]):
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1",
                                                                              "::1"]
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == default


def test_no_ice_servers_unless_configured() -> None:
    assert WebRtcOptions().configuration().iceServers == []
    turn = IceServer("turn:turn.example:3478?transport=udp", "user", 'pa"ss')
    options = WebRtcOptions(ice_servers=(IceServer("stun:stun.example:3478"), turn))
    assert [s.urls for s in options.configuration().iceServers or []] == [
        "stun:stun.example:3478", "turn:turn.example:3478?transport=udp"]
    assert options.link_headers() == [
        '<stun:stun.example:3478>; rel="ice-server"',
        '<turn:turn.example:3478?transport=udp>; rel="ice-server"; username="user"; '
        'credential="pa\\"ss"; credential-type="password"',
    ]


def test_public_address_is_added_next_to_each_host_candidate() -> None:
    sdp = ("m=audio 9 UDP/TLS/RTP/SAVPF 96\r\n"
           "a=candidate:abc 1 udp 2130706431 10.0.0.5 50000 typ host\r\n"
           "a=end-of-candidates\r\n")
    out = advertise_public_address(sdp, "203.0.113.9")
    assert "a=candidate:abcp 1 udp 2130706430 203.0.113.9 50000 typ host" in out
    assert out.index("10.0.0.5") < out.index("203.0.113.9")
    assert advertise_public_address(sdp, "") == sdp


def test_mdns_candidates_are_left_out_and_with_them_the_end_of_candidates() -> None:
    sdp = ("m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
           "a=candidate:1 1 udp 2113937151 5d2f3a7c-0b7e-4c55-9d3e-3f1d2a9e8c11.local 51234 "
           "typ host generation 0\r\n"
           "a=candidate:2 1 tcp 2113937151 A0B1-c2.LOCAL 9 typ host tcptype active\r\n"
           "a=candidate:3 1 udp 1677729535 203.0.113.4 61000 typ srflx raddr 0.0.0.0 "
           "rport 0\r\n"
           "a=end-of-candidates\r\n")
    assert without_mdns_candidates(sdp) == (
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
        "a=candidate:3 1 udp 1677729535 203.0.113.4 61000 typ srflx raddr 0.0.0.0 rport 0\r\n")
    plain = ("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
             "a=candidate:1 1 udp 2130706431 192.0.2.1 40000 typ host\r\n"
             "a=end-of-candidates\r\n")
    assert without_mdns_candidates(plain) == plain
    assert is_mdns_name("5d2f3a7c-0b7e-4c55-9d3e-3f1d2a9e8c11.local")
    assert not is_mdns_name("192.0.2.1") and not is_mdns_name("::1")
    assert not is_mdns_name("host.example.com") and not is_mdns_name("a.b.local")


@given(st.lists(st.sampled_from([
    "a=candidate:1 1 udp 2113937151 5d2f3a7c.local 51234 typ host",
    "a=candidate:2 1 udp 2113937151 192.0.2.1 51234 typ host",
    "a=candidate:3 1 udp", "a=end-of-candidates", "a=mid:0", "m=video 9 RTP/AVP 96",
]) | st.text(max_size=40), max_size=12))
def test_leaving_out_mdns_candidates_only_leaves_lines_out(lines: list[str]) -> None:
    text = "\n".join(lines)
    out = without_mdns_candidates(text).splitlines()
    given_lines = iter(text.splitlines())
    assert all(line in given_lines for line in out)  # in order, none made up or changed
    assert not any(".local " in line for line in out if line.startswith("a=candidate:"))
