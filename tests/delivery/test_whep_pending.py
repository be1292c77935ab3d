"""WHEP offers that never connect cannot hold viewer slots (delivery/whep.py).

Real aiortc on loopback: a flood of offers whose candidates point nowhere (TEST-NET-1,
so ICE never completes) from one address, then real aiortc viewers that do connect.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from fastapi import FastAPI
from tests.e2e.conftest import eventually
from tests.httpserver.attacks import never_connecting_offer

from golive.delivery import WebRtcFeed, WhepEndpoint
from golive.formats import InitSegment
from golive.webrtc import WebRtcOptions, gather_on, install_host_address_hook

PID = "pid123"
ATTACKER = ("198.51.100.7", 40000)


class Directory:
    def __init__(self, feed: WebRtcFeed) -> None:
        self.feed = feed

    def webrtc_feed(self, playback_id: str) -> WebRtcFeed | None:
        return self.feed if playback_id == PID else None

    def presentation(self, playback_id: str) -> None:
        return None


async def until(check: Callable[[], bool], what: str) -> None:
    async def checked() -> bool:
        return check()

    await eventually(checked, timeout=30, what=what)


@pytest.fixture
async def whep() -> AsyncIterator[tuple[WhepEndpoint, FastAPI]]:
    install_host_address_hook()  # as the composition root does at start
    feed = WebRtcFeed("stream1")
    feed.on_init(InitSegment(b"", ()))  # ready; no media is needed to connect
    endpoint = WhepEndpoint(Directory(feed), WebRtcOptions(host_addresses=("127.0.0.1",)),
                            max_viewers=2, connect_timeout=4.0, max_pending=4,
                            max_pending_per_address=2)
    app = FastAPI()
    app.include_router(endpoint.router())
    yield endpoint, app
    await endpoint.close()


def client(app: FastAPI, address: tuple[str, int]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=address),
                             base_url="http://test")


async def offer_sdp() -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    with gather_on(["127.0.0.1"]):
        await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def post(http: httpx.AsyncClient, sdp: str) -> httpx.Response:
    return await http.post(f"/whep/{PID}", content=sdp,
                           headers={"Content-Type": "application/sdp"})


async def connect_viewer(app: FastAPI, port: int, pcs: list[RTCPeerConnection]) -> str:
    """A real viewer from 127.0.0.1: its session id once ICE and DTLS are done."""
    pc, sdp = await offer_sdp()
    pcs.append(pc)
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def changed() -> None:
        if pc.connectionState == "connected":
            connected.set()

    async with client(app, ("127.0.0.1", port)) as http:
        answer = await post(http, sdp)
    assert answer.status_code == 201, answer.text
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.text, type="answer"))
    await asyncio.wait_for(connected.wait(), 30)
    return answer.headers["location"].rsplit("/", 1)[1]


async def test_offers_that_never_connect_leave_the_viewer_slots_alone(
    whep: tuple[WhepEndpoint, FastAPI],
) -> None:
    endpoint, app = whep
    pcs: list[RTCPeerConnection] = []
    try:
        first = await connect_viewer(app, 50001, pcs)
        await until(lambda: endpoint.session(first).connected, "the first viewer to count")

        # The flood: 20 offers that never complete ICE, all from one address.
        bogus = await never_connecting_offer()
        async with client(app, ATTACKER) as attacker:
            answers = [await post(attacker, bogus) for _ in range(20)]
        assert [a.status_code for a in answers] == [201] * 2 + [429] * 18
        assert answers[-1].json()["error"]["reason"] == "too_many_pending"
        assert int(answers[-1].headers["retry-after"]) >= 1
        feed = endpoint.sessions[0].feed
        assert endpoint.pending(feed) == 2 and endpoint.viewers(feed) == 1

        # A real viewer still gets the last viewer slot, and then the cap holds.
        second = await connect_viewer(app, 50002, pcs)
        await until(lambda: endpoint.viewers(feed) == 2, "the second viewer to count")
        assert not endpoint.session(second).closed
        pc, sdp = await offer_sdp()
        pcs.append(pc)
        async with client(app, ("127.0.0.1", 50003)) as http:
            full = await post(http, sdp)
        assert full.status_code == 503 and full.json()["error"]["reason"] == "viewer_limit"

        # The unconnected sessions end at their deadline; the viewers keep their slots.
        await until(lambda: endpoint.pending(feed) == 0, "pending sessions to time out")
        assert {s.id for s in endpoint.sessions} == {first, second}
        assert all(s.connected and not s.closed for s in endpoint.sessions)
    finally:
        for pc in pcs:
            await pc.close()


async def test_the_pending_budget_is_per_broadcast_and_separate_from_viewers(
    whep: tuple[WhepEndpoint, FastAPI],
) -> None:
    endpoint, app = whep
    pcs: list[RTCPeerConnection] = []
    try:
        bogus = await never_connecting_offer()
        statuses: list[int] = []
        for n in range(5):  # five addresses, one offer each; the budget is 4
            async with client(app, (f"198.51.100.{n + 10}", 40000)) as http:
                statuses.append((await post(http, bogus)).status_code)
        assert statuses == [201] * 4 + [503]
        # Once they time out, a real viewer connects and counts as a viewer.
        feed = endpoint.sessions[0].feed
        await until(lambda: endpoint.pending(feed) == 0, "pending sessions to time out")
        viewer = await connect_viewer(app, 50004, pcs)
        await until(lambda: endpoint.session(viewer).connected, "the viewer to count")
    finally:
        for pc in pcs:
            await pc.close()




async def test_the_node_wide_pending_cap_holds_across_addresses() -> None:
    # Each address (2) and each broadcast (a quarter of its viewers) had a budget, but
    # nothing bounded the node: many addresses, over many broadcasts, could hold as many
    # half-open peer connections (UDP sockets, ICE checks) as they liked.
    install_host_address_hook()
    feed = WebRtcFeed("stream1")
    feed.on_init(InitSegment(b"", ()))
    endpoint = WhepEndpoint(Directory(feed), WebRtcOptions(host_addresses=("127.0.0.1",)),
                            max_viewers=100, connect_timeout=30.0, max_pending=25,
                            max_pending_per_address=2, max_pending_total=5)
    app = FastAPI()
    app.include_router(endpoint.router())
    try:
        bogus = await never_connecting_offer()
        statuses = []
        for n in range(4):
            async with client(app, (f"198.51.100.{10 + n}", 40000)) as attacker:
                statuses += [(await post(attacker, bogus)).status_code for _ in range(2)]
        assert statuses == [201] * 5 + [503] * 3
        assert endpoint.pending_total() == 5
        async with client(app, ("203.0.113.9", 40000)) as other:
            refused = await post(other, bogus)
        assert refused.status_code == 503
        assert refused.json()["error"]["reason"] == "too_many_pending"
        assert int(refused.headers["retry-after"]) >= 1
    finally:
        await endpoint.close()


async def test_an_ipv6_viewers_pending_offers_count_across_its_64(
    whep: tuple[WhepEndpoint, FastAPI],
) -> None:
    endpoint, app = whep
    bogus = await never_connecting_offer()
    codes: list[int] = []
    for host in ("2001:db8:9:9::1", "2001:db8:9:9::2", "2001:db8:9:9:ffff::3",
                 "2001:db8:9:a::1"):  # three addresses of one /64, then the next /64
        async with client(app, (host, 5000)) as http:
            codes.append((await post(http, bogus)).status_code)
    assert codes == [201, 201, 429, 201]
    assert len(endpoint.sessions) == 3
