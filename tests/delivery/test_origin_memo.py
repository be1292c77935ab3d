"""The fast path's kept decisions (`Origin._decide_fast`): every request with the same path
and query gets one decision per version of the presentation, and still its own access
check and view; nothing kept outlives a change, and what is kept stays bounded."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.delivery.signing import KeyRing
from tests.delivery.test_origin import (
    HANG,
    Directory,
    Feed,
    make_feed,
    origin_client,
    parked,
    served,
)

from golive.delivery import PlaybackAccess, session_key_from
from golive.delivery.origin import FAST_MEMOS, Origin, create_origin_app

pytestmark = pytest.mark.asyncio

# The `directory` and `feed` fixtures are test_origin.py's (tests/delivery/conftest.py).


def listed_parts(playlist: str) -> list[str]:
    """The parts a media playlist lists (its preload hint is no part yet)."""
    return [line.split('URI="')[1].split('"')[0] for line in playlist.splitlines()
            if line.startswith("#EXT-X-PART:")]


@contextlib.asynccontextmanager
async def _clients(origin: Origin, addresses: tuple[str, ...]
                   ) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Clients of `origin` over HTTP, each from its own loopback address."""
    async with served(origin) as server:
        clients = [httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{server.port}", timeout=HANG,
            transport=httpx.AsyncHTTPTransport(local_address=address))
            for address in addresses]
        try:
            yield clients
        finally:
            for c in clients:
                await c.aclose()


async def test_a_kept_answer_is_never_given_after_the_presentation_changes(
        directory: Directory, feed: Feed) -> None:
    origin = create_origin_app(directory)
    async with origin_client(origin, "http") as client:
        first = await client.get("/live/p1/video.m3u8")
        assert (await client.get("/live/p1/video.m3u8")).text == first.text
        feed.add()
        newer = await client.get("/live/p1/video.m3u8")
        msn, idx = feed.window.last_msn, feed.window.last_part
        assert f"video/part-{msn}.{idx}.m4s" in listed_parts(newer.text)
        assert newer.text != first.text

        # Two viewers held for the next part get it together; a later viewer asking the
        # same question after yet another part gets the newest playlist, not theirs.
        msn, idx = feed.window.next_part()
        query = {"_HLS_msn": msn, "_HLS_part": idx}
        held = [asyncio.create_task(client.get("/live/p1/video.m3u8", params=query))
                for _ in range(2)]
        await parked(held[1], lambda: feed.window.waiter_count, 2)
        feed.add()
        answers = [await asyncio.wait_for(task, HANG) for task in held]
        assert answers[0].text == answers[1].text
        assert f"video/part-{msn}.{idx}.m4s" in listed_parts(answers[0].text)
        feed.add()
        later = await client.get("/live/p1/video.m3u8", params=query)
        newest = f"video/part-{feed.window.last_msn}.{feed.window.last_part}.m4s"
        assert newest in listed_parts(later.text)
        assert newest not in listed_parts(answers[0].text)

        # A new broadcast under the same playback id is answered from its own media.
        replaced = make_feed()
        replaced.add(5)  # a whole segment: a first load needs one
        directory.presentations["p1"] = replaced.presentation
        again = await client.get("/live/p1/video.m3u8")
        assert again.text == replaced.presentation.media_playlist("video")


async def test_each_request_is_checked_and_counted_though_its_answer_is_kept(
        directory: Directory, feed: Feed) -> None:
    ring = KeyRing()
    ring.add_playback("p1", signed=False, allowed_referrers=("example.com",),
                      allow_empty_referrer=False)
    origin = create_origin_app(directory, access=PlaybackAccess(ring))
    good = {"referer": "https://example.com/watch"}
    bad = {"referer": "https://evil.test/"}
    async with _clients(origin, ("127.0.0.2", "127.0.0.3", "127.0.0.4")) as clients:
        first, second, third = clients
        msn, idx = feed.window.last_msn, feed.window.last_part
        part = f"/live/p1/video/part-{msn}.{idx}.m4s"
        for path in ("/live/p1/video.m3u8", part):
            assert (await first.get(path, headers=good)).status_code == 200
            refused = await second.get(path, headers=bad)
            assert refused.status_code == 403 and "referrer" in refused.text
            assert (await third.get(path)).status_code == 403
            assert (await second.get(path, headers=good)).status_code == 200
        # Every viewer's playlist request counts it, kept answer or not.
        assert origin.stats.viewers(time.monotonic()) == {("p1", "ll-hls"): 2}
        assert (await third.get("/live/p1/video.m3u8", headers=good)).status_code == 200
        assert origin.stats.viewers(time.monotonic()) == {("p1", "ll-hls"): 3}

        # A held request's kept decision is no way past the check either.
        nxt = feed.window.next_part()
        query = {"_HLS_msn": nxt[0], "_HLS_part": nxt[1]}
        held = asyncio.create_task(first.get("/live/p1/video.m3u8", params=query, headers=good))
        await parked(held, lambda: feed.window.waiter_count)
        assert (await second.get("/live/p1/video.m3u8", params=query,
                                 headers=bad)).status_code == 403
        feed.add()
        assert (await asyncio.wait_for(held, HANG)).status_code == 200


def _sessions_origin(directory: Directory, *, signed: bool) -> tuple[KeyRing, Origin]:
    """An origin for "p1" (signed or public) that writes session tokens into playlists."""
    ring = KeyRing()
    ring.add_key("k1")
    ring.add_playback("p1", signed=signed)
    return ring, create_origin_app(directory, access=PlaybackAccess(
        ring, session_key=session_key_from(b"cluster secret")))


async def _session(client: httpx.AsyncClient, ring: KeyRing, expires_in: int) -> str:
    """The session token the multivariant gives a viewer with a new token for "p1"."""
    r = await client.get("/live/p1.m3u8",
                         params={"token": ring.token("p1", expires_in=expires_in)})
    media = next(line for line in r.text.splitlines() if line.endswith("/video.m3u8"))
    return media.split("/")[1]


async def test_signed_viewers_share_what_is_kept_and_each_session_is_verified(
        directory: Directory, feed: Feed) -> None:
    ring, origin = _sessions_origin(directory, signed=True)
    async with origin_client(origin, "http") as client:
        sessions = [await _session(client, ring, expires_in)  # two viewers' tokens
                    for expires_in in (3600, 7200)]
        assert sessions[0] != sessions[1]
        msn, idx = feed.window.last_msn, feed.window.last_part
        for rest in ("video.m3u8", f"video/part-{msn}.{idx}.m4s"):
            answers = [await client.get(f"/live/p1/{session}/{rest}") for session in sessions]
            assert [a.status_code for a in answers] == [200, 200]
            assert answers[0].content == answers[1].content
        # One kept answer each for the playlist and the part, whichever session asked...
        assert len(origin._memos["p1"].kept) == 2
        # ...and no way around the check: a forged session, or none, is refused.
        forged = sessions[0][:-1] + ("A" if sessions[0][-1] != "A" else "B")
        for path in (f"/live/p1/{forged}/video.m3u8", "/live/p1/video.m3u8",
                     f"/live/p1/{forged}/video/part-{msn}.{idx}.m4s"):
            assert (await client.get(path)).status_code in (401, 403), path


@pytest.mark.parametrize("signed", [False, True], ids=["public", "signed"])
async def test_a_segment_without_a_sessions_form_is_no_session_though_an_answer_is_kept(
        directory: Directory, feed: Feed, signed: bool) -> None:
    ring, origin = _sessions_origin(directory, signed=signed)
    async with origin_client(origin, "http") as client:
        # A public id's playlists name no session: any of the form will do.
        session = (await _session(client, ring, 3600) if signed
                   else "gs1.k1.1.AAAAAAAAAAAAAAAAAAAAAA")
        # A session's form (a public id plays below any), and its answer kept.
        for _ in range(2):
            assert (await client.get(f"/live/p1/{session}/video.m3u8")).status_code == 200
        assert ("video.m3u8", b"", 0) in origin._memos["p1"].kept
        # Not a session's form: no route takes it, kept answer or not.
        for segment in ("gs1.", "gs1.k1~1", "gs1." + "a" * 121, session + "!"):
            answer = await client.get(f"/live/p1/{segment}/video.m3u8")
            assert (answer.status_code, answer.text) == (404, "not found\n"), segment


async def test_a_range_is_not_given_the_kept_whole_part(
        directory: Directory, feed: Feed) -> None:
    origin = create_origin_app(directory)
    async with origin_client(origin, "http") as client:
        msn, idx = feed.window.last_msn, feed.window.last_part
        part = f"/live/p1/video/part-{msn}.{idx}.m4s"
        whole = await client.get(part)
        assert whole.status_code == 200 and (await client.get(part)).content == whole.content
        ranged = await client.get(part, headers={"range": "bytes=0-9"})
        assert ranged.status_code == 206 and ranged.content == whole.content[:10]
        assert (await client.get(part)).content == whole.content


async def test_what_is_kept_stays_bounded_whatever_clients_ask(
        directory: Directory, feed: Feed) -> None:
    origin = create_origin_app(directory)
    async with origin_client(origin, "http") as client:
        msn, idx = feed.window.last_msn, feed.window.last_part
        viewers = f"video/part-{msn}.{idx}.m4s"
        assert (await client.get(f"/live/p1/{viewers}")).status_code == 200
        for n in range(FAST_MEMOS * 3):
            r = await client.get(f"/live/p1/{viewers}?n={n}")
            assert r.status_code == 200
        kept = origin._memos["p1"].kept
        assert 0 < len(kept) <= FAST_MEMOS
        # A client varying its query string does not push out what the viewers asked
        # first: a full memo keeps what it has until the next version.
        assert (viewers, b"", 0) in kept
        # Only the presentation's current version is kept: a change drops the rest.
        feed.add()
        assert (await client.get("/live/p1/video.m3u8")).status_code == 200
        assert len(origin._memos["p1"].kept) == 1
