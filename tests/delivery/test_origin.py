"""The LL-HLS origin against real presentations fed synthetic CMAF fragments."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import httpx
import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st
from tests.delivery.signing import KeyRing
from tests.media.conftest import until

from golive.chat import chat_websocket_protocol
from golive.delivery import PlaybackAccess, session_key_from
from golive.delivery.access import MAX_TOKEN_LENGTH
from golive.delivery.origin import (
    MEDIA_CACHE,
    TOKEN_PLACEHOLDER,
    TOKEN_QUERY_MAX_LENGTH,
    BadDirective,
    EdgeToken,
    Origin,
    Request,
    TokenSplices,
    create_origin_app,
    hold,
    parse_directives,
    parse_query,
    parse_range,
)
from golive.formats.isobmff import Fragment, InitSegment, TrackInfo
from golive.httpserver import HttpLimits, server_config
from golive.httpserver.headers import HeadBoundedHttp
from golive.packaging.presentation import Continuation, Presentation
from golive.packaging.window import RenditionWindow

PART = 0.25  # part target (s); a keyframe every 4 parts -> 1 s segments
KEYFRAME_EVERY = 4
VIDEO = TrackInfo(
    track_id=1, kind="video", timescale=90000, codec="avc1.64001f", width=1280, height=720
)
INIT = InitSegment(data=b"\x00\x00\x00\x10ftypiso6" + b"moov" * 8, tracks=(VIDEO,))
# Seconds an answer that should come may take: only a guard against hangs, far above what
# any machine needs (the hold limits these tests rely on are 0.2 s and 3 s).
HANG = 30


def fragment(n: int) -> Fragment:
    return Fragment(
        data=f"moof+mdat #{n:05d}|".encode() * 8,
        sequence_number=n + 1,
        independent=n % KEYFRAME_EVERY == 0,
        decode_time=n * PART,
        duration=PART,
    )


@dataclass
class Feed:
    """One presentation with a "video" and an "audio-less low" rendition, fed in lockstep."""

    presentation: Presentation
    count: int = 0
    sent: list[Fragment] = field(default_factory=list)

    @property
    def window(self) -> RenditionWindow:
        return self.presentation.renditions["video"]

    def add(self, n: int = 1, *, real_time: bool = False) -> None:
        """`n` fragments, all arriving now, or (`real_time`) each a part later than the last."""
        start = datetime.now(UTC)
        for i in range(n):
            frag = fragment(self.count)
            arrival = start + timedelta(seconds=PART * (i + 1)) if real_time else datetime.now(UTC)
            for window in self.presentation.renditions.values():
                window.add_fragment(frag, arrival)
            self.sent.append(frag)
            self.count += 1


def make_feed(pid: str = "p1", *, low_latency: bool = True, init: bool = True) -> Feed:
    presentation = Presentation(pid, low_latency=low_latency, part_target=PART, clock=lambda: 0.0)
    for name, bandwidth in (("video", 3_000_000), ("low", 800_000)):
        window = presentation.add_rendition(
            name, bandwidth=bandwidth, average_bandwidth=bandwidth * 9 // 10, frame_rate=30.0
        )
        if init:
            window.set_init(INIT)
    return Feed(presentation)

Adder = Callable[[int, tuple[str, ...]], None]


def adder(f: Feed) -> Adder:
    """`add(n, names)`: the next `n` fragments to each of `names` (the others lag)."""

    def add(n: int, names: tuple[str, ...]) -> None:
        for _ in range(n):
            for name in names:
                f.presentation.add_fragment(name, fragment(f.count))
            f.count += 1

    return add



class Directory:
    def __init__(self) -> None:
        self.presentations: dict[str, Presentation] = {}

    def presentation(self, playback_id: str) -> Presentation | None:
        return self.presentations.get(playback_id)


@pytest.fixture
def directory() -> Directory:
    return Directory()


@pytest.fixture
def feed(directory: Directory) -> Feed:
    f = make_feed()
    f.add(10)  # segments 0 and 1 closed, segment 2 open with 2 parts (in a 1 s window)
    directory.presentations["p1"] = f.presentation
    return f


def client_for(app: Origin) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://origin")


@dataclass(frozen=True)
class Served:
    server: uvicorn.Server
    port: int

    def connections(self) -> list[HeadBoundedHttp]:
        """Its open HTTP connections (golive's protocol)."""
        return [c for c in self.server.server_state.connections
                if isinstance(c, HeadBoundedHttp)]


@contextlib.asynccontextmanager
async def served(app: Origin, *, keep_alive: float | None = None) -> AsyncIterator[Served]:
    """`app` on golive's HTTP stack on a free loopback port, its `/live/` GETs on the fast
    path (golive.httpserver.fast) as a node serves them; `keep_alive`: uvicorn's idle
    timeout in place of its default (5 s)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.setblocking(False)
    config = server_config(app, HttpLimits(), ws=chat_websocket_protocol(), fast=app)
    if keep_alive is not None:
        config.timeout_keep_alive = keep_alive  # type: ignore[assignment]
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started or serving.done(), limit=HANG, what="the server")
        assert server.started
        yield Served(server, sock.getsockname()[1])
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, HANG)


@contextlib.asynccontextmanager
async def origin_client(app: Origin, via: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app`: called as an ASGI app (`asgi`), or over HTTP (`http`, `served`)."""
    if via == "asgi":
        async with client_for(app) as c:
            yield c
        return
    async with served(app) as server, httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{server.port}", timeout=HANG,
            limits=httpx.Limits(max_connections=None)) as c:
        yield c


@pytest.fixture
def origin(directory: Directory) -> Origin:
    return create_origin_app(directory)


# Every test on these two fixtures runs twice: the decisions the fast path makes at once
# must be the ASGI app's, and its held requests must behave the same.
@pytest.fixture(params=["asgi", "http"])
async def client(origin: Origin, request: pytest.FixtureRequest
                 ) -> AsyncIterator[httpx.AsyncClient]:
    async with origin_client(origin, request.param) as c:
        yield c


@pytest.fixture(params=["asgi", "http"])
async def quick(directory: Directory, request: pytest.FixtureRequest
                ) -> AsyncIterator[httpx.AsyncClient]:
    """An origin with a short hold limit (0.2 x target duration)."""
    async with origin_client(create_origin_app(directory, hold_limit_factor=0.2),
                             request.param) as c:
        yield c


async def parked(
    task: asyncio.Task[httpx.Response], waiters: Callable[[], int], expected: int = 1
) -> None:
    """Wait until the server itself counts `expected` requests parked, none of them answered.

    `waiters` reads the server's own state (a window's futures, the origin's holds), so
    "still held" means the request sits on the future that only new media resolves.
    """
    await until(lambda: waiters() >= expected or task.done(), limit=HANG, what="a held request")
    assert not task.done(), f"answered instead of held: {task.result().status_code}"
    assert waiters() == expected


# Playlists -------------------------------------------------------------------------------


async def test_multivariant_lists_renditions(client: httpx.AsyncClient, feed: Feed) -> None:
    r = await client.get("/live/p1.m3u8")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert r.text == feed.presentation.multivariant_playlist()
    assert "#EXT-X-STREAM-INF" in r.text and 'CODECS="avc1.64001f"' in r.text
    assert "RESOLUTION=1280x720" in r.text
    assert "p1/video.m3u8" in r.text.splitlines()
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["cache-control"].startswith("public, max-age=")


async def test_multivariant_waits_for_every_rendition_of_the_ladder(
    origin: Origin, client: httpx.AsyncClient, directory: Directory
) -> None:
    f = make_feed(init=False)
    directory.presentations["p1"] = f.presentation
    task = asyncio.create_task(client.get("/live/p1.m3u8"))
    await parked(task, lambda: origin.held_requests)
    # The first init alone is no answer: a player (or an edge) loading a one-rendition
    # multivariant would never learn of the other.
    f.window.set_init(INIT)
    # Woken by that init, the request parks again on a fresh future of the presentation.
    await parked(task, lambda: len(f.presentation._ready_waiters))
    f.presentation.renditions["low"].set_init(INIT)
    r = await asyncio.wait_for(task, HANG)
    assert r.status_code == 200
    assert [line for line in r.text.splitlines() if not line.startswith("#")] == [
        "p1/video.m3u8",
        "p1/low.m3u8",
    ]


async def test_multivariant_answers_once_a_late_rendition_is_dropped(
    origin: Origin, client: httpx.AsyncClient, directory: Directory
) -> None:
    f = make_feed(init=False)
    directory.presentations["p1"] = f.presentation
    f.window.set_init(INIT)
    task = asyncio.create_task(client.get("/live/p1.m3u8"))
    await parked(task, lambda: origin.held_requests)
    f.presentation.remove_rendition("low")  # its encoder output failed
    r = await asyncio.wait_for(task, HANG)
    assert r.status_code == 200
    assert "p1/video.m3u8" in r.text and "low" not in r.text


async def test_incomplete_ladder_after_the_wait_is_an_uncached_404(
    quick: httpx.AsyncClient, directory: Directory
) -> None:
    f = make_feed(init=False)
    f.window.set_init(INIT)
    directory.presentations["p1"] = f.presentation
    r = await quick.get("/live/p1.m3u8")
    assert r.status_code == 404
    assert r.headers["cache-control"] == "no-cache"
    # Its one ready rendition is not refused to a player that asks for it by name: it is
    # held for its first media (none comes here), then a 503 to retry, never a 404.
    named = await quick.get("/live/p1/video.m3u8")
    assert named.status_code == 503 and named.headers["retry-after"] == "1"
    f.add()
    assert (await quick.get("/live/p1/video.m3u8")).status_code == 200


async def test_media_playlist_waits_for_its_own_init(
    origin: Origin, client: httpx.AsyncClient, directory: Directory
) -> None:
    f = make_feed(init=False)
    directory.presentations["p1"] = f.presentation
    task = asyncio.create_task(client.get("/live/p1/low.m3u8"))
    await parked(task, lambda: origin.held_requests)
    f.window.set_init(INIT)  # the sibling's init does not answer it
    await parked(task, lambda: len(f.presentation._ready_waiters))
    f.presentation.renditions["low"].set_init(INIT)
    f.add(KEYFRAME_EVERY + 1)  # a whole first segment
    r = await asyncio.wait_for(task, HANG)
    assert r.status_code == 200 and "#EXT-X-MAP" in r.text


async def test_first_load_waits_for_the_first_whole_segment(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    f = make_feed()
    directory.presentations["p1"] = f.presentation
    f.add(2)  # the only segment is still open: parts, no segment URI yet
    task = asyncio.create_task(client.get("/live/p1/video.m3u8"))
    await parked(task, lambda: f.window.waiter_count)
    # A player already playing asks with directives: it is not held for this.
    blocking = await asyncio.wait_for(
        client.get("/live/p1/video.m3u8", params={"_HLS_msn": f.window.last_msn, "_HLS_part": 1}),
        HANG,
    )
    assert blocking.status_code == 200 and "#EXTINF" not in blocking.text
    f.add(KEYFRAME_EVERY - 1)  # the next keyframe closes the first segment
    r = await asyncio.wait_for(task, HANG)
    assert r.status_code == 200
    assert "#EXTINF:1.00000," in r.text and f"video/seg-{f.window.media_sequence}.m4s" in r.text


async def test_multivariant_without_media_is_404_after_the_wait(
    quick: httpx.AsyncClient, directory: Directory
) -> None:
    directory.presentations["p1"] = make_feed(init=False).presentation
    r = await quick.get("/live/p1.m3u8")
    assert r.status_code == 404
    assert "max-age=1" in r.headers["cache-control"]


async def test_media_playlist(client: httpx.AsyncClient, feed: Feed) -> None:
    r = await client.get("/live/p1/video.m3u8")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert r.text == feed.presentation.media_playlist("video")
    assert "#EXT-X-PART:" in r.text and "#EXT-X-PRELOAD-HINT" in r.text
    assert "#EXT-X-RENDITION-REPORT" in r.text
    # A plain low-latency reload: one second at an edge.
    assert r.headers["cache-control"] == "public, max-age=1"


async def test_standard_latency_playlist_ignores_directives(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    f = make_feed(low_latency=False)
    f.add(10)
    directory.presentations["p1"] = f.presentation
    # A held request would end in a 503 at the hold limit (nothing else arrives).
    r = await asyncio.wait_for(
        client.get("/live/p1/video.m3u8", params={"_HLS_msn": f.window.last_msn + 1}), HANG
    )
    assert r.status_code == 200
    assert f.window.waiter_count == 0
    assert r.headers["cache-control"] == f"public, max-age={max(1, f.window.target_duration // 2)}"


async def test_blocking_reload_is_released_by_the_part(
    client: httpx.AsyncClient, feed: Feed
) -> None:
    msn, idx = feed.window.next_part()
    assert feed.window.state(msn, idx) == "pending"
    task = asyncio.create_task(
        client.get("/live/p1/video.m3u8", params={"_HLS_msn": msn, "_HLS_part": idx})
    )
    await parked(task, lambda: feed.window.waiter_count)
    feed.add()
    r = await asyncio.wait_for(task, HANG)
    assert r.status_code == 200
    assert f"video/part-{msn}.{idx}.m4s" in r.text
    target = feed.window.target_duration
    assert r.headers["cache-control"] == f"public, max-age={3 * target}"


async def test_a_listed_rendition_without_media_yet_is_held_then_answered_never_404(
    directory: Directory
) -> None:
    """A node that took a broadcast over a moment ago has its presentation (and inits)
    before its first part; players come with the dead node's numbers. They are held like
    a blocking reload, and a 503 (retry) at worst: a 404 told hls.js the rendition was
    gone, and it ended its MediaSource (issue 15's three-node test)."""
    taken_over = Presentation("p2", low_latency=True, part_target=PART, clock=lambda: 0.0,
                              continues=Continuation(next_msn=500, discontinuity_sequence=0))
    taken_over.add_rendition("video", bandwidth=3_000_000, average_bandwidth=2_700_000,
                             frame_rate=30.0).set_init(INIT)
    feed = Feed(taken_over)
    directory.presentations["p2"] = taken_over
    async with client_for(create_origin_app(directory, hold_limit_factor=3.0)) as c:
        held = asyncio.create_task(
            c.get("/live/p2/video.m3u8", params={"_HLS_msn": 498, "_HLS_part": 3}))
        await parked(held, lambda: feed.window.waiter_count)
        feed.add()
        answer = await asyncio.wait_for(held, HANG)
        assert answer.status_code == 200, answer.text
        assert "part-" in answer.text
    empty = make_feed("p3")
    directory.presentations["p3"] = empty.presentation
    async with client_for(create_origin_app(directory, hold_limit_factor=0.2)) as c:
        late = await asyncio.wait_for(c.get("/live/p3/video.m3u8"), HANG)
    assert late.status_code == 503 and late.headers["retry-after"] == "1"


async def test_blocking_reload_for_existing_part_answers_at_once(
    client: httpx.AsyncClient, feed: Feed
) -> None:
    msn, part = feed.window.last_msn, feed.window.last_part
    assert feed.window.state(msn, part) == "ready"
    # Nothing is added: a request that waited would end in a 503 at the hold limit.
    r = await asyncio.wait_for(
        client.get("/live/p1/video.m3u8", params={"_HLS_msn": msn, "_HLS_part": part}), HANG
    )
    assert r.status_code == 200
    assert f"video/part-{msn}.{part}.m4s" in r.text


async def test_blocking_reload_for_next_segment(client: httpx.AsyncClient, feed: Feed) -> None:
    msn = feed.window.last_msn + 1
    assert feed.window.state(msn, None) == "pending"
    task = asyncio.create_task(client.get("/live/p1/video.m3u8", params={"_HLS_msn": msn}))
    await parked(task, lambda: feed.window.waiter_count)
    while feed.window.state(msn, None) != "ready":
        # Parts of the segment do not release a wait for the whole segment.
        assert feed.window.waiter_count == 1
        feed.add()
        assert feed.count < 100
    r = await asyncio.wait_for(task, HANG)
    assert r.status_code == 200
    assert f"video/seg-{msn}.m4s" in r.text
    assert feed.window.waiter_count == 0


@pytest.mark.parametrize(
    "query",
    [
        {"_HLS_part": "1"},
        {"_HLS_msn": "abc"},
        {"_HLS_msn": "-1"},
        {"_HLS_msn": "1.5"},
        {"_HLS_msn": "2", "_HLS_part": "x"},
        {"_HLS_skip": "maybe"},
    ],
)
async def test_malformed_directives_are_400(
    client: httpx.AsyncClient, feed: Feed, query: dict[str, str]
) -> None:
    r = await client.get("/live/p1/video.m3u8", params=query)
    assert r.status_code == 400
    assert r.headers["cache-control"] == "no-cache"


async def test_too_far_ahead_is_400(client: httpx.AsyncClient, feed: Feed) -> None:
    msn = feed.window.last_msn + 100
    assert feed.window.state(msn, 0) == "too_far"
    r = await client.get("/live/p1/video.m3u8", params={"_HLS_msn": msn, "_HLS_part": 0})
    assert r.status_code == 400


async def test_hold_limit_gives_503(quick: httpx.AsyncClient, feed: Feed) -> None:
    msn, idx = feed.window.next_part()
    r = await asyncio.wait_for(
        quick.get("/live/p1/video.m3u8", params={"_HLS_msn": msn, "_HLS_part": idx}), HANG
    )
    assert r.status_code == 503
    assert r.headers["cache-control"] == "no-cache"
    r = await asyncio.wait_for(quick.get(f"/live/p1/video/part-{msn}.{idx}.m4s"), HANG)
    assert r.status_code == 503
    assert feed.window.waiter_count == 0  # the timed-out waits left nothing behind


async def test_a_hinted_part_is_held_past_the_playlist_hold_limit(
    client: httpx.AsyncClient, feed: Feed
) -> None:
    # A starved encoder's next part may come after the blocking reload's limit (three
    # target durations, then 503 per RFC 8216bis); the hinted part's request is held on
    # (twice that): a 503 on media is a failed request to a player, not a retry hint.
    msn, idx = feed.window.next_part()
    part = asyncio.create_task(client.get(f"/live/p1/video/part-{msn}.{idx}.m4s"))
    await parked(part, lambda: feed.window.waiter_count)
    r = await asyncio.wait_for(
        client.get("/live/p1/video.m3u8", params={"_HLS_msn": msn, "_HLS_part": idx}), HANG
    )
    assert r.status_code == 503  # the playlist's limit passed
    assert not part.done() and feed.window.waiter_count == 1
    feed.add(1)
    r = await asyncio.wait_for(part, HANG)
    assert r.status_code == 200 and r.content


async def test_ended_playlist_ignores_directives(client: httpx.AsyncClient, feed: Feed) -> None:
    msn, idx = feed.window.next_part()
    waiting = asyncio.create_task(
        client.get("/live/p1/video.m3u8", params={"_HLS_msn": msn, "_HLS_part": idx})
    )
    await parked(waiting, lambda: feed.window.waiter_count)
    feed.presentation.end()
    r = await asyncio.wait_for(waiting, HANG)
    assert r.status_code == 200 and "#EXT-X-ENDLIST" in r.text
    for query in ({"_HLS_msn": msn + 50, "_HLS_part": 0}, {"_HLS_msn": msn + 1}):
        r = await asyncio.wait_for(client.get("/live/p1/video.m3u8", params=query), HANG)
        assert r.status_code == 200 and "#EXT-X-ENDLIST" in r.text
        assert r.headers["cache-control"] == "public, max-age=60"


async def test_skip_gives_delta_update(client: httpx.AsyncClient, directory: Directory) -> None:
    f = make_feed()
    f.add(KEYFRAME_EVERY * 40)
    directory.presentations["p1"] = f.presentation
    full = await client.get("/live/p1/video.m3u8")
    assert "CAN-SKIP-UNTIL" in full.text
    for value in ("YES", "v2"):
        r = await client.get("/live/p1/video.m3u8", params={"_HLS_skip": value})
        assert r.status_code == 200
        assert r.text == f.presentation.media_playlist("video", skip=True)
        assert "#EXT-X-SKIP:SKIPPED-SEGMENTS=" in r.text
        assert len(r.text) < len(full.text)
    # Blocking on the next part, as a client with a current copy does: the delta.
    msn, part = f.window.next_part()
    current: dict[str, str | int] = {"_HLS_msn": msn, "_HLS_part": part, "_HLS_skip": "YES"}
    f.add(1)
    r = await asyncio.wait_for(client.get("/live/p1/video.m3u8", params=current), HANG)
    assert "#EXT-X-SKIP:SKIPPED-SEGMENTS=" in r.text
    # A copy that ends before the segments the delta would skip (video.js 8 asks so after
    # a failed or held reload): it could not fill them in, so the whole playlist.
    first = f.window.media_sequence
    stale: dict[str, str | int] = {"_HLS_msn": first, "_HLS_part": 0, "_HLS_skip": "YES"}
    r = await asyncio.wait_for(client.get("/live/p1/video.m3u8", params=stale), HANG)
    assert r.status_code == 200 and "#EXT-X-SKIP" not in r.text
    assert r.text == f.presentation.media_playlist("video")


async def test_playlist_uris_carry_the_token(directory: Directory, feed: Feed) -> None:
    ring = KeyRing()
    ring.add_key("k1")
    ring.add_playback("p1", signed=True)
    token = ring.token("p1")
    async with client_for(create_origin_app(directory, access=PlaybackAccess(ring))) as client:
        await _signed_playlists(client, token)
        # Behind an edge, one cached playlist serves every token: the edge writes it in.
        r = await client.get("/live/p1/video.m3u8", params={"token": token},
                             headers={"x-golive-edge": "1"})
        assert r.status_code == 200 and token not in r.text
        assert f"?token={TOKEN_PLACEHOLDER}" in r.text
        # A token sent percent-encoded (even the parameter's name) is the same token.
        escaped = token.replace(".", "%2E")
        for query in (f"token={escaped}", f"_HLS_skip=YES&tok%65n={escaped}"):
            r = await client.get(f"/live/p1/video/seg-0.m4s?{query}")
            assert r.status_code == 200, (query, r.text)


async def test_signed_playlists_carry_a_short_session_token_any_node_verifies(
        directory: Directory, feed: Feed) -> None:
    ring = KeyRing()
    ring.add_key("k1")
    ring.add_playback("p1", signed=True)
    token = ring.token("p1")
    key = session_key_from(b"cluster secret")
    here = create_origin_app(directory, access=PlaybackAccess(ring, session_key=key))
    there = create_origin_app(directory, access=PlaybackAccess(ring, session_key=key))
    async with client_for(here) as client, client_for(there) as other:
        public = (await client.get("/live/p1/video.m3u8", params={"token": token})).text
        r = await client.get("/live/p1.m3u8", params={"token": token})
        assert r.status_code == 200 and token not in r.text and "token=" not in r.text
        # The multivariant lists each media playlist below the viewer's session...
        listed = [line for line in r.text.splitlines() if line.startswith("p1/")]
        media = next(line for line in listed if line.endswith("/video.m3u8"))
        session = media.split("/")[1]
        assert all(line.startswith(f"p1/{session}/") for line in listed)
        assert session.startswith("gs1.k1.") and len(session) < len(token) // 3
        assert media == f"p1/{session}/video.m3u8"
        for viewer in (client, other):  # ...which this node and any other of the cluster take
            r = await viewer.get(f"/live/{media}")
            assert r.status_code == 200
            # No token in the playlist: its relative URIs resolve below the session path.
            assert "token=" not in r.text and "#EXT-X-PART:" in r.text
            uris = [line for line in r.text.splitlines() if line and not line.startswith("#")]
            assert uris and all(u.startswith("video/") for u in uris)
            assert r.text == public.replace(f"?token={session}", "")  # the public answer
            r = await viewer.get(f"/live/p1/{session}/{uris[0]}")
            assert r.status_code == 200 and r.content == feed.window.segment_bytes(0)
            assert (await viewer.get(f"/live/p1/{session}/video/init-0.mp4")).status_code == 200
        # A media playlist asked with a token in its query carries the session in each URI.
        assert all(u.endswith(f"?token={session}") for u in
                   [line for line in public.splitlines() if line and not line.startswith("#")])
        forged = session[:-1] + ("A" if session[-1] != "A" else "B")
        for path in (f"/live/p1/{forged}/video/seg-0.m4s", "/live/p1/video/seg-0.m4s"):
            r = await other.get(path, params={"token": forged} if "gs1" not in path else None)
            assert r.status_code == 403 and "does not verify" in r.text
        assert (await other.get(f"/live/p1/{forged}/video.m3u8")).status_code == 403
        # An edge still writes each viewer's own token in (its per-token access cache).
        r = await client.get("/live/p1.m3u8", params={"token": token},
                             headers={"x-golive-edge": "1"})
        assert r.status_code == 200 and f"?token={TOKEN_PLACEHOLDER}" in r.text


async def test_public_playlists_carry_no_token_longer_than_any_golive_verifies(
        directory: Directory, feed: Feed) -> None:
    ring = KeyRing()
    ring.add_playback("p1", signed=False)
    async with client_for(create_origin_app(directory, access=PlaybackAccess(ring))) as client:
        short = "viewer-session-1"
        r = await client.get("/live/p1/video.m3u8", params={"token": short})
        assert r.status_code == 200 and f"?token={short}" in r.text
        # A public id verifies nothing, so a huge token would otherwise be written into
        # every URI: each playlist answer that many times the token's size.
        huge = "x" * (MAX_TOKEN_LENGTH + 1)
        r = await client.get("/live/p1/video.m3u8", params={"token": huge})
        assert r.status_code == 200 and "token=" not in r.text
        plain = await client.get("/live/p1/video.m3u8")
        assert r.text == plain.text


async def _signed_playlists(client: httpx.AsyncClient, token: str) -> None:
    assert (await client.get("/live/p1.m3u8")).status_code == 403
    assert (await client.get("/live/p1.m3u8", params={"token": "forged"})).status_code == 403
    r = await client.get("/live/p1.m3u8", params={"token": token})
    assert r.status_code == 200
    assert f"p1/video.m3u8?token={token}" in r.text.splitlines()
    r = await client.get("/live/p1/video.m3u8", params={"token": token})
    assert r.status_code == 200
    uris = [line for line in r.text.splitlines() if line and not line.startswith("#")]
    assert uris and all(u.endswith(f"?token={token}") for u in uris)
    assert f'.m4s?token={token}"' in r.text  # EXT-X-PART / PRELOAD-HINT URI attributes
    assert f'init-0.mp4?token={token}"' in r.text
    for path in ("/live/p1/video/seg-0.m4s", "/live/p1/video/init-0.mp4"):
        assert (await client.get(path)).status_code == 403
        assert (await client.get(path, params={"token": token})).status_code == 200


# Media -----------------------------------------------------------------------------------


async def test_segment_part_and_init(client: httpx.AsyncClient, feed: Feed) -> None:
    r = await client.get("/live/p1/video/seg-0.m4s")
    assert r.status_code == 200
    assert r.content == feed.window.segment_bytes(0)
    assert r.content.startswith(feed.sent[0].data)
    assert r.headers["content-type"] == "video/iso.segment"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["access-control-allow-origin"] == "*"
    assert "Content-Range" in r.headers["access-control-expose-headers"]

    r = await client.get("/live/p1/video/part-0.1.m4s")
    assert r.status_code == 200 and r.content == feed.sent[1].data

    r = await client.get("/live/p1/video/init-0.mp4")
    assert r.status_code == 200 and r.content == INIT.data
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_preload_hinted_part_is_held_until_produced(
    client: httpx.AsyncClient, feed: Feed
) -> None:
    msn, idx = feed.window.next_part()
    hint = f'URI="video/part-{msn}.{idx}.m4s"'
    assert hint in feed.window.playlist()
    task = asyncio.create_task(client.get(f"/live/p1/video/part-{msn}.{idx}.m4s"))
    await parked(task, lambda: feed.window.waiter_count)
    feed.add()
    r = await asyncio.wait_for(task, HANG)
    assert r.status_code == 200
    assert r.content == feed.sent[-1].data
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_byte_ranges(client: httpx.AsyncClient, feed: Feed) -> None:
    data = feed.window.segment_bytes(0)
    assert data is not None
    n = len(data)
    url = "/live/p1/video/seg-0.m4s"
    cases = {
        "bytes=2-9": (2, 9),
        "bytes=10-": (10, n - 1),
        "bytes=-7": (n - 7, n - 1),
        f"bytes=5-{n + 100}": (5, n - 1),
    }
    for header, (first, last) in cases.items():
        r = await client.get(url, headers={"Range": header})
        assert r.status_code == 206, header
        assert r.headers["content-range"] == f"bytes {first}-{last}/{n}"
        assert r.content == data[first : last + 1]
        assert r.headers["content-length"] == str(last - first + 1)
    for header in (f"bytes={n}-", f"bytes={n + 5}-{n + 9}", "bytes=-0"):
        r = await client.get(url, headers={"Range": header})
        assert r.status_code == 416, header
        assert r.headers["content-range"] == f"bytes */{n}"
    for header in ("bytes=0-1,4-5", "items=0-1", "bytes=x-3", "bytes=9-2"):
        r = await client.get(url, headers={"Range": header})
        assert r.status_code == 200 and r.content == data, header


async def test_head(client: httpx.AsyncClient, feed: Feed) -> None:
    for url in ("/live/p1.m3u8", "/live/p1/video.m3u8", "/live/p1/video/seg-0.m4s"):
        got = await client.get(url)
        r = await client.head(url)
        assert r.status_code == 200
        assert r.content == b""
        assert r.headers["content-length"] == str(len(got.content))
        assert r.headers["content-type"] == got.headers["content-type"]
    r = await client.head("/live/p1/video/seg-0.m4s", headers={"Range": "bytes=0-3"})
    assert r.status_code == 206 and r.content == b"" and r.headers["content-length"] == "4"


async def test_cors_preflight(client: httpx.AsyncClient, feed: Feed) -> None:
    r = await client.options(
        "/live/p1/video/seg-0.m4s",
        headers={
            "Origin": "https://player.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert set(r.headers["access-control-allow-methods"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert r.headers["access-control-allow-headers"] == "Range"


@pytest.mark.parametrize(
    "url",
    [
        "/live/nobody.m3u8",
        "/live/nobody/video.m3u8",
        "/live/p1/nothing.m3u8",
        "/live/p1/nothing/seg-0.m4s",
        "/live/p1/video/init-7.mp4",
        "/live/p1/video/seg-00.m4s",
        "/live/p1/video/part-0.m4s",
        "/live/p1/video/seg-0.mp4",
        "/live/p-1.m3u8",
        "/live/" + "a" * 65 + ".m3u8",
        "/live/p1/" + "v" * 33 + ".m3u8",
        "/live/p1",
        "/elsewhere",
    ],
)
async def test_not_found(client: httpx.AsyncClient, feed: Feed, url: str) -> None:
    r = await client.get(url)
    assert r.status_code == 404


async def test_not_found_does_not_reflect_input(client: httpx.AsyncClient, feed: Feed) -> None:
    r = await client.get("/live/%3Cscript%3Ealert(1)%3C%2Fscript%3E.m3u8")
    assert r.status_code == 404
    assert "script" not in r.text and "alert" not in r.text
    assert r.headers["cache-control"] == "public, max-age=1"


async def test_evicted_and_too_far_media_are_404(client: httpx.AsyncClient, feed: Feed) -> None:
    feed.add(KEYFRAME_EVERY * 30, real_time=True)  # gone: left the playlist long enough ago
    assert feed.window.segment_bytes(0) is None
    assert (await client.get("/live/p1/video/seg-0.m4s")).status_code == 404
    assert (await client.get("/live/p1/video/part-0.0.m4s")).status_code == 404
    far = feed.window.last_msn + 100
    r = await asyncio.wait_for(client.get(f"/live/p1/video/seg-{far}.m4s"), HANG)
    assert r.status_code == 404


async def test_thousand_held_requests_released_by_one_fragment(
    origin: Origin, client: httpx.AsyncClient, feed: Feed
) -> None:
    msn, idx = feed.window.next_part()
    params = {"_HLS_msn": msn, "_HLS_part": idx}
    tasks = [
        asyncio.create_task(
            client.get("/live/p1/video.m3u8", params=params)
            if i % 2
            else client.get(f"/live/p1/video/part-{msn}.{idx}.m4s")
        )
        for i in range(1000)
    ]
    await until(
        lambda: feed.window.waiter_count == 1000 or any(t.done() for t in tasks),
        limit=HANG,
        what="a thousand held requests",
    )
    assert not any(t.done() for t in tasks)
    assert origin.held_requests == feed.window.waiter_count == 1000
    feed.add()
    responses = await asyncio.wait_for(asyncio.gather(*tasks), HANG)
    assert all(r.status_code == 200 for r in responses)
    assert feed.window.waiter_count == origin.held_requests == 0
    # Every woken reload got the playlist that lists the part (one answer, shared).
    playlists = {r.text for r in responses[1::2]}
    assert len(playlists) == 1 and f"part-{msn}.{idx}.m4s" in playlists.pop()


async def test_abandoned_held_request_leaves_no_waiter_after_the_hold_limit(
    directory: Directory, feed: Feed
) -> None:
    """Through a real server: a player that hangs up costs a waiter until the hold limit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    app = create_origin_app(directory, hold_limit_factor=0.2)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        msn, idx = feed.window.next_part()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /live/p1/video.m3u8?_HLS_msn={msn}&_HLS_part={idx} HTTP/1.1\r\n"
            "Host: origin\r\n\r\n".encode()
        )
        await writer.drain()
        await until(lambda: feed.window.waiter_count > 0, limit=HANG, what="the request held")
        assert feed.window.waiter_count == 1
        writer.close()
        await writer.wait_closed()
        await until(
            lambda: feed.window.waiter_count == 0, limit=HANG, what="the hold limit to end it"
        )
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, HANG)


# Units -----------------------------------------------------------------------------------


async def test_hold_gives_up_at_the_limit_and_cancels_the_wait() -> None:
    cancelled = False

    async def wait_forever() -> None:
        nonlocal cancelled
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled = True
            raise

    assert await asyncio.wait_for(hold(wait_forever(), 0.05), HANG) == "timeout"
    assert cancelled

    async def quick() -> None:
        await asyncio.sleep(0)

    assert await hold(quick(), 1) == "ready"


def test_parse_directives() -> None:
    d = parse_directives({"_HLS_msn": "12", "_HLS_part": "3", "_HLS_skip": "YES"})
    assert (d.msn, d.part, d.skip, d.blocking) == (12, 3, True, True)
    assert not parse_directives({}).blocking
    with pytest.raises(BadDirective):
        parse_directives({"_HLS_part": "3"})
    with pytest.raises(BadDirective):
        parse_directives({"_HLS_msn": "+3"})


@given(st.binary(max_size=64) | st.text("ab=&%+;2F_", max_size=32).map(str.encode))
def test_parse_query_reads_what_parse_qsl_reads(raw: bytes) -> None:
    expected = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    assert parse_query(raw) == expected


@given(st.binary(max_size=64) | st.text("tokenab=&%+;2F_", max_size=32).map(str.encode)
       | st.text("ab=&%+.-_", max_size=32).map(lambda t: ("token=" + t).encode()))
def test_request_token_reads_what_parse_qsl_reads(raw: bytes) -> None:
    expected = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)).get("token")
    assert Request({"method": "GET", "query_string": raw}).token == (expected or None)


def test_parse_range() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range("bytes=-20", 10) == (0, 9)
    assert parse_range("bytes=0-", 0) == "unsatisfiable"


async def test_program_date_time_follows_media_time_not_arrival_jitter(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    # Shaka Player places each part by its playlist date: a date that disagrees with the
    # durations before it moves the part's timestampOffset, and the SourceBuffer then drops
    # the part's frames up to the next keyframe.
    f = make_feed()
    directory.presentations["p1"] = f.presentation
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    jitter = [0.0, 0.04, -0.03, 0.05, 0.01, -0.04, 0.03]
    offsets: dict[int, float] = {}  # lead segment (from the first) -> its date less media time
    for n in range(60):
        frag = fragment(n)
        # The encoder's start-up backlog arrives in a burst, then parts come in real time
        # with a few tens of milliseconds of jitter.
        arrival = start + 1.0 + n * 0.05 if n < 8 else start + frag.decode_time + jitter[n % 7]
        for window in f.presentation.renditions.values():
            window.add_fragment(frag, datetime.fromtimestamp(arrival, UTC))
        if n < KEYFRAME_EVERY:
            continue  # a first load waits for the first whole segment
        text = (await client.get("/live/p1/video.m3u8")).text
        lead = int(text.split("#EXT-X-MEDIA-SEQUENCE:")[1].split("\n")[0]) - f.window.last_msn
        lead += f.window.last_msn - f.presentation.first_msn
        date = datetime.fromisoformat(text.split("#EXT-X-PROGRAM-DATE-TIME:")[1].split("\n")[0])
        media_time = lead * KEYFRAME_EVERY * PART
        offsets[lead] = date.timestamp() - media_time
        # Never later than the media could have arrived, beyond the settle margin.
        assert date.timestamp() <= start + 1.0 + media_time + 0.15
    # Past the burst, every lead segment's date agrees with the durations before it,
    # whatever the arrival jitter: one offset for the whole timeline.
    assert len(offsets) > 5
    settled = {round(offset, 3) for lead, offset in offsets.items() if lead >= 2}
    assert len(settled) == 1, offsets


@pytest.fixture
def ladder_feed(directory: Directory) -> tuple[Feed, Adder]:
    """A fresh two-rendition feed served as p1, and its `adder`."""
    f = make_feed()
    directory.presentations["p1"] = f.presentation
    return f, adder(f)

# A rendition suspended under load -------------------------------------------------------


async def test_suspended_rendition_keeps_answering_with_gaps(
    origin: Origin, client: httpx.AsyncClient, ladder_feed: tuple[Feed, Adder]
) -> None:
    f, add = ladder_feed
    presentation = f.presentation
    add(10, ("video", "low"))
    presentation.suspend_rendition("video")  # the encoder gave the top rendition up
    add(9, ("low",))
    r = await client.get("/live/p1.m3u8")
    assert r.status_code == 200 and "p1/video.m3u8" not in r.text and "p1/low.m3u8" in r.text
    # A player that loaded the ladder before still holds video.m3u8: it never 404s.
    r = await client.get("/live/p1/video.m3u8")
    assert r.status_code == 200 and "#EXT-X-GAP" in r.text
    window = presentation.renditions["video"]
    gap_msn = window.last_msn - 1
    assert window.is_gap(gap_msn, None)
    # Blocking reload goes on: the next part (a gap) answers it.
    task = asyncio.create_task(
        client.get("/live/p1/video.m3u8", params={"_HLS_msn": window.last_msn + 1, "_HLS_part": 0})
    )
    await parked(task, lambda: window.waiter_count)
    add(4, ("low",))
    r = await asyncio.wait_for(task, HANG)
    assert r.status_code == 200
    assert f'part-{window.last_msn}.0.m4s",INDEPENDENT=YES,GAP=YES' in r.text
    # Only the gap media itself is missing, and says so.
    for path in (f"seg-{gap_msn}.m4s", f"part-{gap_msn}.1.m4s"):
        r = await client.get(f"/live/p1/video/{path}")
        assert r.status_code == 404 and r.text.startswith("gap:")
    first = window.media_sequence
    r = await client.get(f"/live/p1/video/seg-{first}.m4s")
    assert r.status_code == 200  # media from before the suspension is still served


async def test_a_rung_a_restart_left_behind_waits_for_its_gaps_and_204s_its_hint(
    origin: Origin, client: httpx.AsyncClient, ladder_feed: tuple[Feed, Adder]
) -> None:
    # An encoder restart finds "video" two segments behind "low". Its playlist does not
    # end in gaps while the new run starts (Shaka Player fails for good on a variant whose
    # newest media is all gaps when the other is disabled): the part a player parked on
    # is answered empty at once, a blocking reload with low's numbers waits for the next
    # run, which lists the gaps and its own first part together.
    f, add = ladder_feed
    presentation = f.presentation
    add(2 * KEYFRAME_EVERY, ("video", "low"))
    window = presentation.renditions["video"]
    behind = window.last_msn + 1
    task = asyncio.create_task(client.get(f"/live/p1/video/part-{behind}.0.m4s"))
    await parked(task, lambda: window.waiter_count)
    add(2 * KEYFRAME_EVERY, ("low",))
    presentation.mark_discontinuity()  # a degrade step: low ran ahead, "video" lagged
    r = await asyncio.wait_for(task, HANG)
    assert r.status_code == 204 and r.content == b""
    text = (await client.get("/live/p1/video.m3u8")).text
    assert "GAP" not in text and f'HINT:TYPE=PART,URI="video/part-{behind}.0.m4s"' in text
    until = presentation.renditions["low"].last_msn + 1
    reload = asyncio.create_task(
        client.get("/live/p1/video.m3u8", params={"_HLS_msn": until, "_HLS_part": 0})
    )
    await parked(reload, lambda: window.waiter_count)
    add(1, ("video", "low"))  # the next run
    r = await asyncio.wait_for(reload, HANG)
    assert r.status_code == 200
    assert f'URI="video/part-{behind}.0.m4s",INDEPENDENT=YES,GAP=YES' in r.text
    assert f'URI="video/part-{until}.0.m4s",INDEPENDENT=YES\n' in r.text
    assert r.text.count("#EXT-X-GAP") == until - behind


async def test_a_hinted_part_an_encoder_restart_cut_off_answers_an_empty_204(
    origin: Origin, client: httpx.AsyncClient, feed: Feed
) -> None:
    # RFC 8216bis 6.2.6 suggests 404 for a hint the server did not publish; Shaka Player
    # fails its stream on a media 404, so the part that will never exist is empty instead.
    window = feed.window
    playlist = (await client.get("/live/p1/video.m3u8")).text
    msn, idx = window.next_part()
    assert f'PRELOAD-HINT:TYPE=PART,URI="video/part-{msn}.{idx}.m4s"' in playlist
    task = asyncio.create_task(client.get(f"/live/p1/video/part-{msn}.{idx}.m4s"))
    await parked(task, lambda: window.waiter_count)
    window.set_init(InitSegment(INIT.data + b"-restarted", INIT.tracks))  # a degrade step
    r = await asyncio.wait_for(task, HANG)
    assert r.status_code == 204 and r.content == b""
    assert r.headers["cache-control"] == MEDIA_CACHE
    assert r.headers["access-control-allow-origin"] == "*"
    # The new run starts a new segment; a part that was never hinted is still a 404.
    feed.add(KEYFRAME_EVERY)
    assert (await client.get(f"/live/p1/video/part-{msn + 1}.0.m4s")).status_code == 200
    assert (await client.get(f"/live/p1/video/part-{msn}.{idx + 1}.m4s")).status_code == 404


SPLICED = ('#EXTM3U\n#EXT-X-MAP:URI="v/init-0.mp4"\n#EXTINF:1.0,\nv/seg-1.m4s\n'
           '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="v/part-2.0.m4s"\n')


def test_token_splices_carry_each_viewers_token_and_keep_a_bounded_few() -> None:
    splices = TokenSplices(size=2, queries=3)

    def expected(query: str) -> bytes:
        return (SPLICED.replace('.mp4"', f'.mp4{query}"').replace(".m4s\n", f".m4s{query}\n")
                .replace('.m4s"', f'.m4s{query}"')).encode()

    tokens = [f"eyJ.{n}.sig-_" for n in range(10)] + ["a b/+&", "x" * (TOKEN_QUERY_MAX_LENGTH + 1)]
    for _ in range(2):  # the second time round, from what is kept (or made again)
        for token in tokens:
            quoted = token.replace(" ", "%20").replace("/", "%2F").replace("+", "%2B").replace(
                "&", "%26")
            assert splices.apply(SPLICED, token) == expected(f"?token={quoted}")
    assert len(splices._queries) <= 3  # bounded, and the over-long token never kept
    assert all(len(t) <= TOKEN_QUERY_MAX_LENGTH for t in splices._queries)
    assert splices.apply(SPLICED, None) == SPLICED.encode()
    assert splices.apply(SPLICED, EdgeToken.PLACEHOLDER) == expected(f"?token={TOKEN_PLACEHOLDER}")
    assert splices.apply(SPLICED, EdgeToken.ESI) == expected('<esi:include src="/_golive/token"/>')
