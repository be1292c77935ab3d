"""A request held by the relay while this very node takes the broadcast over (issue 15).

During a takeover the dead owner's players reach the new owner before it serves the
broadcast: it relays them, and the registry has no live owner yet. Once the new owner
has the broadcast (and has claimed it), those held requests were answered by asking the
registry again, which named this node itself: "not live", a 404 that players and edges
kept. They are answered here instead.
"""

from __future__ import annotations

import asyncio

from tests.delivery.test_origin import Directory, client_for, make_feed

from golive.delivery.origin import create_origin_app
from golive.delivery.relay import OWNER_UNKNOWN, OwnerRelay, OwnerUnknown


class TakingOver:
    """An owner directory during a takeover: nobody owns the broadcast yet."""

    def __init__(self) -> None:
        self.asked = 0
        self.asked_again = asyncio.Event()

    async def owner_url(self, playback_id: str) -> str | OwnerUnknown | None:
        self.asked += 1
        if self.asked >= 2:
            self.asked_again.set()
        return OWNER_UNKNOWN

    def owner_failed(self, playback_id: str, url: str) -> None:
        pass


async def test_a_request_held_across_this_nodes_takeover_is_answered_here() -> None:
    directory = Directory()
    owners = TakingOver()
    relay = OwnerRelay(owners, timeout=2.0, takeover_hold=30.0)
    origin = create_origin_app(directory, relay=relay)
    feed = make_feed()
    feed.add(10)
    async with client_for(origin) as client:
        held = asyncio.create_task(client.get("/live/p1.m3u8", timeout=60))
        # Held by the relay, which asks the registry again and again.
        await asyncio.wait_for(owners.asked_again.wait(), 20)
        assert not held.done()
        directory.presentations["p1"] = feed.presentation  # this node has it now
        response = await asyncio.wait_for(held, 20)  # well inside the 30 s hold
    assert response.status_code == 200, response.text
    assert response.text.startswith("#EXTM3U")
