"""Access hooks against a real HTTP hook server: allow, deny, timeouts, bad answers, caching."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.delivery.hookserver import hook_server
from tests.delivery.signing import KeyRing

from golive.delivery import (
    AccessHook,
    AccessQuestion,
    Grant,
    HookedPublishTarget,
    PlaybackAccess,
    Refusal,
    StreamHook,
    Viewer,
    session_key_from,
)
from golive.stream import Disconnect, Publisher, PublishRefused, RefusalReason

VIEWER = Viewer("hls", "198.51.100.7", "player/1.0")
QUESTION = AccessQuestion("play", "hls", "ls_1", "pb1", "198.51.100.7", "ua", "", None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer_by_address(question: dict[str, Any]) -> tuple[int, Any]:
    if question["remote_address"] == "203.0.113.66":
        return 200, {"allow": False, "reason": "not paid", "cache_seconds": 30}
    return 200, {"allow": True, "cache_seconds": 120}


async def test_the_hook_is_told_everything_and_its_answer_decides() -> None:
    ring = KeyRing()
    ring.add_key("k1")
    ring.add_playback("pb1", signed=True)
    async with hook_server(answer_by_address) as server:
        hook = AccessHook(timeout=10, fail_open=False)
        access = PlaybackAccess(ring, hook=hook, default_hook_url=server.url,
                                session_key=session_key_from(b"shared"))
        token = ring.token("pb1")
        grant = await access.check("pb1", token, audience="v", viewer=VIEWER,
                                   referrer="https://shop.example/p")
        assert isinstance(grant, Grant)
        # Playlists keep the JWT in their URIs: the hook's session and claims are its.
        assert access.session_token("pb1", token) == token
        (question,) = server.questions
        assert question == {
            "action": "play", "protocol": "hls", "stream_id": "ls_pb1", "playback_id": "pb1",
            "remote_address": "198.51.100.7", "user_agent": "player/1.0",
            "referrer": "https://shop.example/p", "token_claims": dict(grant.claims or {}),
        }
        assert question["token_claims"]["sub"] == "pb1"
        denied = await access.check("pb1", ring.token("pb1", audience="c"), audience="c",
                                    viewer=Viewer("chat", "203.0.113.66"))
        assert denied == Refusal(403, "access hook: not paid")
        assert server.questions[-1]["action"] == "chat"
        # Tokens and restrictions come first: a bad token never reaches the hook.
        assert isinstance(await access.check("pb1", "junk", audience="v", viewer=VIEWER),
                          Refusal)
        assert len(server.questions) == 2
        await hook.close()


async def test_a_sixty_second_session_asks_the_hook_once() -> None:
    ring = KeyRing()
    ring.add_playback("pub", signed=False)
    clock = Clock()
    async with hook_server(answer_by_address) as server:  # cache_seconds 120
        hook = AccessHook(timeout=10, fail_open=False, clock=clock)
        access = PlaybackAccess(ring, hook=hook, default_hook_url=server.url)
        # Its first requests arrive together (multivariant, media playlists, inits).
        first = await asyncio.gather(*(access.check("pub", None, audience="v", viewer=VIEWER)
                                       for _ in range(10)))
        assert all(isinstance(g, Grant) for g in first)
        for _ in range(240):  # then a part every 250 ms for a minute
            clock.now += 0.25
            assert isinstance(await access.check("pub", None, audience="v", viewer=VIEWER),
                              Grant)
        assert len(server.questions) == 1 and hook.calls == 1
        other = Viewer("hls", "198.51.100.8", "player/1.0")  # another session is asked
        assert isinstance(await access.check("pub", None, audience="v", viewer=other), Grant)
        clock.now += 121  # past the hook's cache_seconds the session is asked again
        assert isinstance(await access.check("pub", None, audience="v", viewer=VIEWER), Grant)
        assert len(server.questions) == 3
        await hook.close()


@pytest.mark.parametrize("fail_open", [True, False])
async def test_a_hook_that_does_not_answer(fail_open: bool, caplog: Any) -> None:
    async with hook_server() as server:
        server.hanging = True
        hook = AccessHook(timeout=0.3, fail_open=fail_open)
        decision = await hook.ask(server.url, QUESTION, "s1")
        assert decision.failed and decision.allowed is fail_open
        if not fail_open:
            assert decision.reason == "the access hook did not answer (timed out)"
        assert hook.errors == 1 and "access hook failed" in caplog.text
        # The failure is kept for the session: the next request does not wait again.
        assert await hook.ask(server.url, QUESTION, "s1") == decision
        assert hook.calls == 1
        await hook.close()


@pytest.mark.parametrize(("status", "payload", "error"), [
    (500, {"allow": True}, "HTTP 500"),
    (200, b"yes please", "not JSON"),
    (200, {"allowed": True}, '"allow": true or false'),
    (200, {"allow": True, "cache_seconds": "soon"}, "cache_seconds"),
    (200, b"[" + b"1," * 20_000 + b"1]", "larger than"),
])
async def test_bad_answers_are_failures(status: int, payload: Any, error: str,
                                        caplog: Any) -> None:
    async with hook_server(lambda q: (status, payload)) as server:
        hook = AccessHook(timeout=10, fail_open=False)
        decision = await hook.ask(server.url, QUESTION, "s1")
        assert decision.failed and not decision.allowed and error in decision.reason
        assert hook.errors == 1
        await hook.close()


async def test_an_unreachable_hook_fails_closed() -> None:
    async with hook_server() as server:
        url = server.url
    hook = AccessHook(timeout=10, fail_open=False)
    decision = await hook.ask(url, QUESTION, "s1")
    assert decision.failed and not decision.allowed and hook.errors == 1
    await hook.close()


class Hub:
    """The hub's side of `PublishTarget`: records who got through."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    async def open_publisher(self, stream_key: str, *, protocol: str, remote_address: str,
                             disconnect: Disconnect | None = None) -> Publisher:
        self.opened.append(stream_key)
        raise PublishRefused(RefusalReason.SHUTTING_DOWN, "recorded")


async def test_publishing_asks_the_stream_hook() -> None:
    def by_stream(question: dict[str, Any]) -> tuple[int, Any]:
        allowed = question["stream_id"] == "ls_ok"
        return 200, {"allow": allowed, "reason": "" if allowed else "event not started"}

    async with hook_server(by_stream) as server:
        streams = {"key-ok": StreamHook("ls_ok", None), "key-no": StreamHook("ls_no", None),
                   "key-own": StreamHook("ls_own", "http://127.0.0.1:9/unused")}
        hub = Hub()
        hook = AccessHook(timeout=10, fail_open=False)

        async def stream_of_key(key: str) -> StreamHook | None:
            return streams.get(key)

        target = HookedPublishTarget(hub, hook, default_url=server.url,
                                     stream_of_key=stream_of_key)
        with pytest.raises(PublishRefused) as refused:
            await target.open_publisher("key-no", protocol="rtmp", remote_address="1.2.3.4:5")
        assert refused.value.reason == RefusalReason.ACCESS_DENIED
        assert refused.value.message == "access hook: event not started"
        with pytest.raises(PublishRefused, match="recorded"):
            await target.open_publisher("key-ok", protocol="srt", remote_address="1.2.3.4:5")
        with pytest.raises(PublishRefused, match="recorded"):  # unknown: the hub decides
            await target.open_publisher("nope", protocol="rtmp", remote_address="1.2.3.4:5")
        assert hub.opened == ["key-ok", "nope"]
        assert [(q["action"], q["protocol"], q["stream_id"], q["remote_address"])
                for q in server.questions] == [("publish", "rtmp", "ls_no", "1.2.3.4"),
                                               ("publish", "srt", "ls_ok", "1.2.3.4")]
        # A stream's own hook wins over the node's (this one is not listening: fails closed).
        with pytest.raises(PublishRefused) as own:
            await target.open_publisher("key-own", protocol="rtmp", remote_address="1.2.3.4:5")
        assert "did not answer" in own.value.message and len(server.questions) == 2
        await hook.close()
