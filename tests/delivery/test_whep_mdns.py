"""Browser-style WHEP offers, whose host candidates are mDNS names, on more than one event loop.

Chromium hides a viewer's addresses behind `UUID.local` names. aioice resolves such names
through per-thread state whose asyncio.Lock binds to the first event loop that waits on it,
so before golive stopped handing those candidates to aiortc, a node on a second event loop
of the same thread (a second node in one process, a node restarted in place, the next test)
answered every such offer 400. Each round here is its own event loop, as each node is.
"""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection, RTCSessionDescription
from fastapi import FastAPI
from tests.delivery.test_whep_pending import Directory, client, offer_sdp, post, until
from tests.webrtc_client import as_a_browser_offers

from golive.delivery import WebRtcFeed, WhepEndpoint
from golive.formats import InitSegment
from golive.webrtc import WebRtcOptions, install_host_address_hook


async def one_viewer_on_a_fresh_node(port: int, *, end_of_candidates: bool = False) -> None:
    install_host_address_hook()  # as the composition root does at start
    feed = WebRtcFeed("stream1")
    feed.on_init(InitSegment(b"", ()))  # ready; no media is needed to connect
    endpoint = WhepEndpoint(Directory(feed), WebRtcOptions(host_addresses=("127.0.0.1",)),
                            max_viewers=2, connect_timeout=20.0)
    app = FastAPI()
    app.include_router(endpoint.router())
    pc: RTCPeerConnection | None = None
    try:
        pc, sdp = await offer_sdp()
        offer = as_a_browser_offers(sdp, end_of_candidates=end_of_candidates)
        candidates = [line for line in offer.splitlines() if line.startswith("a=candidate:")]
        assert len(candidates) == 4 and all(".local " in line for line in candidates)
        assert ("a=end-of-candidates" in offer) == end_of_candidates
        settled = asyncio.Event()

        @pc.on("connectionstatechange")
        def changed() -> None:
            if pc is not None and pc.connectionState in ("connected", "failed"):
                settled.set()

        async with client(app, ("127.0.0.1", port)) as http:
            answer = await post(http, offer)
        assert answer.status_code == 201, answer.text
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.text, type="answer"))
        # golive learns the viewer's address from its checks (a peer-reflexive candidate).
        await asyncio.wait_for(settled.wait(), 30)
        assert pc.connectionState == "connected"
        session = endpoint.sessions[0]
        await until(lambda: session.connected, "golive to count the viewer")
    finally:
        if pc is not None:
            await pc.close()
        await endpoint.close()


def test_mdns_offers_are_answered_on_every_event_loop_of_the_process() -> None:
    for port in (50011, 50012, 50013):
        asyncio.run(one_viewer_on_a_fresh_node(port))


async def test_an_mdns_offer_that_ends_its_candidates_still_connects() -> None:
    # Every candidate it lists is one golive does not resolve: its end must not make
    # golive give up before the viewer's checks arrive.
    await one_viewer_on_a_fresh_node(50014, end_of_candidates=True)
