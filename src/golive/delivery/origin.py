"""The LL-HLS HTTP origin: playlists and CMAF media of live presentations and recorded
assets (delivery stage).

Serves the public playback URLs below `/live/`, answers LL-HLS delivery directives
(blocking playlist reload, preload-hinted parts, playlist delta updates), checks playback
tokens and sets the cache headers an edge cache (nginx, a CDN) relies on. Held requests are
plain awaits on the rendition window's futures: a thousand waiting players cost memory only.

It is a bare ASGI app rather than a framework route: every viewer asks for a playlist
and a part several times a second, so the per-request cost is what sets how many
viewers one core serves. Below `/vod/` it serves recorded assets from a `VodDirectory`:
the same URL shapes, whole playlists, media from storage. A live stream's DVR window
lists segments older than the rendition window holds; those come from a `DvrArchive`.
"""

from __future__ import annotations

import asyncio
import enum
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import parse_qsl, quote

from starlette.types import Receive, Scope, Send

from golive.delivery.access import (
    MAX_TOKEN_LENGTH,
    SESSION_PREFIX,
    Grant,
    PlaybackAccess,
    Refusal,
    Viewer,
)
from golive.delivery.dvr import DvrArchive
from golive.delivery.progressive import (
    MP4_CACHE,
    ProgressiveDirectory,
    StreamedResponse,
    progressive_response,
)
from golive.delivery.relay import RELAY_HEADER, OwnerRelay, Relayed
from golive.delivery.stats import OriginStats, RequestKind
from golive.delivery.vod import UNAVAILABLE, VOD_PLAYLIST_MAX_AGE, VodDirectory
from golive.httpserver.fast import HEADERS_BY_NAME, FastHold, FastRoutes, SharedBody

if TYPE_CHECKING:
    from golive.packaging import Presentation, RenditionWindow

__all__ = ["PresentationDirectory", "create_origin_app"]

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
INIT_TYPE = "video/mp4"
SEGMENT_TYPE = "video/iso.segment"

# Media URLs name content that never changes: a new init gets a new generation, a new
# segment or part a new sequence number.
MEDIA_CACHE = "public, max-age=31536000, immutable"
# An ended playlist no longer changes, but the playback id is reused by the stream's next
# broadcast, so an edge must not keep it for long.
ENDED_PLAYLIST_MAX_AGE = 60
# Errors may stop being errors a moment later (the broadcast starts, the part appears);
# a 404 is kept one second so a crowd asking for a missing stream is collapsed at the edge,
# anything else is not cached at all.
NOT_FOUND_CACHE = "public, max-age=1"
ERROR_CACHE = "no-cache"
# How long a multivariant request waits for a starting broadcast's inits (every rendition's),
# in units of hold_limit_factor (3.0 -> 6 s).
READY_HOLD_UNIT = 2.0
# How long a request for media not yet made (a preload-hinted part) is held, in playlist
# hold limits. RFC 8216bis bounds only the blocking playlist reload (a 503 after three
# target durations); players wait longer for a first byte of media (hls.js 10 s, Shaka
# 30 s), and a 503 there is a failed request: Shaka fails for good once every variant of
# a starved encoder has one. Twice the playlist's limit lets a slow encoder's part come.
MEDIA_HOLD_UNITS = 2.0

_PID = r"(?P<pid>[A-Za-z0-9]{1,64})"
_RENDITION = r"(?P<rendition>[A-Za-z0-9_-]{1,32})"
_NUMBER = r"(?:0|[1-9][0-9]{0,11})"
# A signed viewer's session token as a path segment after the playback id (see
# `_session_multivariant`): every relative URI of the playlists below it inherits it.
_SESSION_TOKEN = rf"{re.escape(SESSION_PREFIX)}[A-Za-z0-9_.-]{{1,120}}"
_SESSION = rf"(?:(?P<session>{_SESSION_TOKEN})/)?"
_SESSION_SEGMENT = re.compile(_SESSION_TOKEN)
MULTIVARIANT_PATH = re.compile(rf"{_PID}\.m3u8")
MEDIA_PLAYLIST_PATH = re.compile(rf"{_PID}/{_SESSION}{_RENDITION}\.m3u8")
INIT_PATH = re.compile(rf"{_PID}/{_SESSION}{_RENDITION}/init-(?P<gen>{_NUMBER})\.mp4")
SEGMENT_PATH = re.compile(rf"{_PID}/{_SESSION}{_RENDITION}/seg-(?P<msn>{_NUMBER})\.m4s")
MP4_PATH = re.compile(rf"{_PID}/(?P<quality>high|low)\.mp4")
PART_PATH = re.compile(
    rf"{_PID}/{_SESSION}{_RENDITION}/part-(?P<msn>{_NUMBER})\.(?P<idx>{_NUMBER})\.m4s")
# What an edge asks (once per token, then caches) before serving a request from its cache.
ACCESS_PATH = re.compile(rf"{_PID}/access")
# An edge that sends this header gets playlists whose URIs carry TOKEN_PLACEHOLDER instead
# of the token: one cached copy for every viewer, the edge writing each viewer's token in.
EDGE_HEADER = b"x-golive-edge"
TOKEN_PLACEHOLDER = "GOLIVE_EDGE_TOKEN"
# An edge that sends `X-Golive-Edge: esi` (deploy/varnish/golive.vcl) gets an ESI include
# in place of each URI's whole `?token=...`, which it answers with the viewer's own.
ESI_EDGE = b"esi"
ESI_TOKEN_INCLUDE = '<esi:include src="/_golive/token"/>'


class EdgeToken(enum.Enum):
    """What goes where a token goes, for an edge: not a string, so that no token a client
    sends can be taken for it (or share its cached playlist answer). A `str` token is
    always one viewer's own."""

    PLACEHOLDER = "placeholder"  # TOKEN_PLACEHOLDER, which the edge replaces
    ESI = "esi"  # ESI_TOKEN_INCLUDE in place of the whole `?token=...`


# A playback token as the playlist handlers carry it into URIs.
SpliceToken = str | EdgeToken | None
# How long an edge may keep "allowed" for a public playback id (a switch to signed waits
# that long at the edge), and "refused" for any.
PUBLIC_ACCESS_MAX_AGE = 10
REFUSED_ACCESS_MAX_AGE = 2
MAX_ACCESS_MAX_AGE = 300
# Playlist answers kept ready to send (see `_playlist_response`): a few per rendition and
# directive; each is one playlist's bytes. Signed viewers share templates instead, as many.
PLAYLIST_RESPONSES = 256
# Whole parts' answers kept ready to send (see `_part_response`): the newest few of each
# rendition are what viewers ask for. Each holds its part's bytes (~75 KB at 3 Mb/s).
PART_RESPONSES = 64
# A kept part at least this large is sent from a file (`SharedBody`): below it a copy
# costs less than the file's own write (once a second) and its descriptor.
SHARED_BODY_MIN = 16 * 1024
# Viewers' tokens kept as the `?token=...` bytes their playlists' URIs end with, if no
# longer than a JWT golive verifies is (RS256 ~500 characters): at most ~12 MB, whatever
# clients send (a public playback id's URIs carry any token a viewer gives, unverified).
TOKEN_QUERIES = 4096
TOKEN_QUERY_MAX_LENGTH = 1024
# Fast-path decisions kept per presentation for its current version (`_FastMemo`), and the
# presentations that keep some: a part's answer holds its bytes, so few are kept. A full
# memo keeps what it has until the next version: the viewers' own questions come first
# after each change, and a client varying its query string only pays for its own.
FAST_MEMOS = 64
FAST_MEMO_PRESENTATIONS = 64
# Where a token goes: the end of a URI line, or of a URI="..." attribute's value.
_URI_TO_SIGN = re.compile(r'(^[^#\n][^\n]*)|(URI="[^"]*)(?=")', re.MULTILINE)
_DIRECTIVE_INT = re.compile(r"[0-9]{1,12}")

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, Age, Date",
}
PREFLIGHT_HEADERS = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Range",
    "Access-Control-Max-Age": "86400",
    "Cache-Control": "public, max-age=86400",
}


class PresentationDirectory(Protocol):
    """Where the origin finds live presentations."""

    def presentation(self, playback_id: str) -> Presentation | None: ...


@dataclass(frozen=True, slots=True)
class DeliveryDirectives:
    """The `_HLS_*` query parameters of a media playlist request (RFC 8216bis 6.2.5)."""

    msn: int | None = None
    part: int | None = None
    skip: bool = False

    @property
    def blocking(self) -> bool:
        return self.msn is not None


class BadDirective(ValueError):
    """A delivery directive the origin must answer with 400 Bad Request."""


def parse_directives(query: Mapping[str, str]) -> DeliveryDirectives:
    msn = _directive_int(query, "_HLS_msn")
    part = _directive_int(query, "_HLS_part")
    if part is not None and msn is None:
        raise BadDirective("_HLS_part requires _HLS_msn")
    skip_value = query.get("_HLS_skip")
    if skip_value is not None and skip_value not in ("YES", "v2"):
        raise BadDirective("_HLS_skip must be YES or v2")
    return DeliveryDirectives(msn=msn, part=part, skip=skip_value is not None)


def _directive_int(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if not _DIRECTIVE_INT.fullmatch(value):
        raise BadDirective(f"{name} must be a non-negative integer")
    return int(value)


ByteRange = tuple[int, int]  # first, last (inclusive)


def parse_range(header: str | None, length: int) -> ByteRange | Literal["unsatisfiable"] | None:
    """One `bytes=` range of a representation of `length` bytes; None means "send it all".

    Malformed headers and multiple ranges are ignored (RFC 9110 14.2 allows it): the
    answer is then the whole object, which a player handles as well.
    """
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    first_text, last_text = first_text.strip(), last_text.strip()
    if (
        not dash
        or not (first_text.isdigit() or first_text == "")
        or not (last_text.isdigit() or last_text == "")
    ):
        return None
    if first_text == "":
        if last_text == "":
            return None
        suffix = int(last_text)
        if suffix == 0 or length == 0:
            return "unsatisfiable"
        return max(0, length - suffix), length - 1
    first = int(first_text)
    last = int(last_text) if last_text else length - 1
    if last_text and last < first:
        return None
    if first >= length:
        return "unsatisfiable"
    return first, min(last, length - 1)


RawHeaders = list[tuple[bytes, bytes]]


def raw_headers(headers: Mapping[str, str]) -> RawHeaders:
    """Headers as ASGI sends them: lower-case latin-1 names and values."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


_RAW_CORS = raw_headers(CORS_HEADERS)
_RAW_PREFLIGHT = raw_headers(PREFLIGHT_HEADERS)
_RAW_ACCEPT_RANGES = (b"accept-ranges", b"bytes")
_RAW_PLAYLIST_TYPE = (b"content-type", PLAYLIST_TYPE.encode())
_ESI_INCLUDE = ESI_TOKEN_INCLUDE.encode()
_PLACEHOLDER_QUERY = b"?token=" + TOKEN_PLACEHOLDER.encode()
_RELAY_HEADER = RELAY_HEADER.encode()


class Response:
    """A complete HTTP answer: status, headers and body, sent in two ASGI messages.

    The headers are kept as ASGI wants them (`RawHeaders`), so an answer built once (a
    playlist every held player is woken with) is sent any number of times as it is.
    """

    __slots__ = ("body", "fast_head", "fast_shared", "raw_headers", "status_code")

    def __init__(self, body: bytes, status_code: int,
                 headers: Mapping[str, str] | RawHeaders) -> None:
        self.body = body
        self.status_code = status_code
        self.raw_headers: RawHeaders = (
            headers if isinstance(headers, list) else raw_headers(headers))
        self.fast_head: tuple[RawHeaders, bytes] | None = None  # golive.httpserver.fast
        self.fast_shared: SharedBody | None = None  # (an answer many clients are given)

    async def send(self, send: Send, *, head: bool) -> None:
        # A copy: a shared answer's list must survive whatever a middleware does to it.
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers.copy()})
        await send({"type": "http.response.body", "body": b"" if head else self.body})


def parse_query(raw: bytes) -> dict[str, str]:
    """A query string's parameters, the last of a repeated name winning, as
    `dict(parse_qsl(..., keep_blank_values=True))` gives them.

    Players send plain queries (`_HLS_msn=12&_HLS_part=3&token=eyJ...`: nothing escaped),
    which are split here without `parse_qsl`'s per-pair decoding; only a query with a `%`
    or `+` goes through it.
    """
    if not raw:
        return {}
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    params: dict[str, str] = {}
    for pair in text.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            params[name] = value
    return params


class Request:
    """What the handlers read of a request: method, query parameters, headers; each parsed
    only when a handler first asks for it."""

    __slots__ = ("_headers", "_params", "_query", "_scope", "method")

    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self.method: str = scope["method"]
        self._query: bytes = scope.get("query_string", b"")
        self._params: dict[str, str] | None = None
        self._headers: dict[bytes, bytes] | None = None

    @property
    def query_params(self) -> dict[str, str]:
        if self._params is None:
            self._params = parse_query(self._query)
        return self._params

    @property
    def path(self) -> str:
        path: str = self._scope["path"]
        return path

    @property
    def query_string(self) -> bytes:
        return self._query

    @property
    def token(self) -> str | None:
        """The `token` query parameter; None when absent or empty."""
        query = self._query
        # (bytes.find, not `in`, on every request: see `_decide_fast`.)
        if query.find(b"token=") < 0 and query.find(b"%") < 0:
            return None
        if (query.startswith(b"token=") and query.find(b"&") < 0 and query.find(b"%") < 0
                and query.find(b"+") < 0):
            # A signed viewer's media request: the token alone, nothing to split or decode.
            return query[6:].decode("latin-1") or None
        return self.query_params.get("token") or None

    @property
    def client(self) -> str:
        client = self._scope.get("client")
        return client[0] if client else ""

    def viewer(self) -> Viewer:
        return Viewer("hls", self.client, self.header(b"user-agent") or "")

    def header(self, name: bytes) -> str | None:
        """A request header by lower-case name (the last, if repeated)."""
        value = self.raw_header(name)
        return None if value is None else value.decode("latin-1")

    def raw_header(self, name: bytes) -> bytes | None:
        if self._headers is None:
            scope = self._scope
            # The fast path's dict of a connection's repeated headers, else one of our own.
            self._headers = scope.get(HEADERS_BY_NAME) or dict(scope.get("headers", ()))
        return self._headers.get(name)


def _error(status: int, message: str, *, headers: Mapping[str, str] | None = None) -> Response:
    cache = NOT_FOUND_CACHE if status == 404 else ERROR_CACHE
    body = (message + "\n").encode()
    return Response(
        body,
        status,
        {
            **CORS_HEADERS,
            "Cache-Control": cache,
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Length": str(len(body)),
            **(headers or {}),
        },
    )


def _header_safe(text: str) -> str:
    """One printable ASCII line of at most 300 characters (a hook's reason may be anything)."""
    return "".join(c if " " <= c <= "~" else "?" for c in text[:300])


def _tokens(request: Request, token: str | None) -> tuple[str | None, SpliceToken]:
    """The viewer's token as the origin passes it on, and what goes into playlist URIs."""
    if token is not None and len(token) > MAX_TOKEN_LENGTH:
        # Only a public playback id gets here with it (a signed one was refused it): no
        # token golive verifies is this long, and carrying it into every URI would make
        # each playlist answer that many times its size.
        return None, None
    if token is not None and (edge := request.raw_header(EDGE_HEADER)) is not None:
        return token, EdgeToken.ESI if edge == ESI_EDGE else EdgeToken.PLACEHOLDER
    return token, token


class _Later(enum.Enum):
    LATER = "later"


LATER = _Later.LATER
"""A decision only the asynchronous path can make (media read from the recording)."""


@dataclass(frozen=True, slots=True)
class _Wait:
    """A decision that waits, at most `limit` seconds, for `window`'s (`msn`, `part`), or
    without a window for `presentation`'s whole ladder; it is then made again with
    `after` = `stage` (so a start-up hold is not waited for twice). `timeout` answers
    when what it waited for did not come (None: decide again all the same)."""

    limit: float
    timeout: Response | None
    stage: int
    window: RenditionWindow | None = None
    msn: int = 0
    part: int | None = None
    presentation: Presentation | None = None

    @property
    def fast(self) -> bool:
        """A hold the fast path makes: on a window's (msn, part), with a timeout answer."""
        return self.window is not None and self.timeout is not None

    def until(self) -> Awaitable[None]:
        if self.window is not None:
            return self.window.wait(self.msn, self.part)
        assert self.presentation is not None
        return self.presentation.wait_complete()


Decision = Response | _Wait | _Later


class _HeldAnswer(FastHold):
    """A fast-path request held for a rendition's (msn, part): counted as a hold like one
    `Origin._hold` makes, decided again once the media is there."""

    __slots__ = ("_origin", "_path", "_ready", "_request", "_started", "_wait")

    def __init__(self, origin: Origin, request: Request, path: str, wait: _Wait) -> None:
        self.limit = wait.limit  # (FastHold's own, set here: no super() call per request)
        self._origin = origin
        self._request = request
        self._path = path
        self._wait = wait
        self._ready: Callable[[], None] | None = None  # what the window calls, if it will
        self._started = origin._hold_began()

    def wait(self, ready: Callable[[], None]) -> bool:
        wait = self._wait
        assert wait.window is not None
        if not wait.window.call_when_ready(wait.msn, wait.part, ready):
            return False
        self._ready = ready
        return True

    def resume(self) -> Response | None:
        # The window has let go of `ready` (it called it): so does this hold, or the
        # caller's object behind `ready` and this one would keep each other, and every
        # held request's scope, cycle and request with them, for the garbage collector.
        self._ready = None
        self._origin._hold_ended(self._started, timed_out=False)
        decision = self._origin._decide_fast(self._request, self._path, self._wait.stage)
        return decision if isinstance(decision, Response) else None

    def carry_on(self, routes: FastRoutes, scope: Scope) -> Awaitable[Response]:
        # From the stage this hold passed, as `Origin._settle` goes on after a hold: the
        # start-up holds before it are not made again.
        return self._origin.handle(self._request, self._path, after=self._wait.stage)

    def expire(self) -> Response:
        self.release()
        assert self._wait.timeout is not None
        return self._wait.timeout

    def release(self) -> None:
        wait = self._wait
        assert wait.window is not None
        if self._ready is not None:
            wait.window.forget_callback(wait.msn, wait.part, self._ready)
            self._ready = None
        self._origin._hold_ended(self._started, timed_out=True)


# What a kept decision is found by: the path after the playback id (and the session, if
# any), the query, the decision stage.
_MemoKey = tuple[str, bytes, int]


@dataclass(frozen=True, slots=True)
class _Kept:
    """A fast-path decision for one path and query: what every request with them (below
    any session) gets while the presentation stays at the version it was made at, once
    the request's own access check allows it."""

    viewed: Literal["ll-hls", "hls"] | None  # a media playlist: counted as a view
    decision: Response | _Wait


class _FastMemo:
    """The fast path's decisions for one presentation at one version (`_Kept`).

    Every viewer of a rendition asks the same question at the same moment: the playlist
    once part N exists (held, then answered, together), then part N. Decided once per
    version, a request costs its access check and a lookup instead of a route, a
    presentation, its directives and the window's state made again each time. Any change
    of the presentation (a part, a rendition, its end) makes a new version, so nothing
    kept is ever given for a state it was not made from."""

    __slots__ = ("kept", "presentation", "version")

    def __init__(self, presentation: Presentation) -> None:
        self.presentation = presentation
        self.version = presentation.version
        self.kept: dict[_MemoKey, _Kept] = {}


# A decision is made again after each hold; more holds than this mean it keeps changing.
_MAX_HOLDS = 8
_PLAYLIST_LATE = _error(503, "playlist update did not arrive in time")
_MEDIA_LATE = _error(503, "media did not arrive in time")
_NO_MEDIA_YET = _error(503, "rendition has no media yet; retry", headers={"Retry-After": "1"})


class TokenSplices:
    """Carries a viewer's playback token into every URI of a playlist.

    Relative URIs do not inherit the query string of the playlist they came from, so a
    signed playback would fail on its second request without this. Every viewer of a
    window gets the same playlist text with a different token, so the text is encoded and
    cut at its URI ends once (a small LRU by text), each viewer's token is quoted once (a
    bounded map by token), and each answer is one `bytes.join`: no pattern is matched and
    nothing is rendered or encoded per request.
    """

    def __init__(self, size: int = 64, queries: int = TOKEN_QUERIES) -> None:
        self._size = size
        self._pieces: OrderedDict[str, list[bytes]] = OrderedDict()
        self._max_queries = queries
        self._queries: dict[str, bytes] = {}

    def pieces(self, playlist: str) -> list[bytes]:
        """`playlist`'s bytes cut at each point a token goes (one more piece than points)."""
        pieces = self._pieces.get(playlist)
        if pieces is not None:
            return pieces
        pieces, last = [], 0
        for match in _URI_TO_SIGN.finditer(playlist):
            pieces.append(playlist[last:match.end()].encode())
            last = match.end()
        pieces.append(playlist[last:].encode())
        self._pieces[playlist] = pieces
        while len(self._pieces) > self._size:
            self._pieces.popitem(last=False)
        return pieces

    def query(self, token: str) -> bytes:
        """`?token=TOKEN`, quoted, as the bytes a URI ends with."""
        query = self._queries.get(token)
        if query is None:
            query = b"?token=" + quote(token, safe="").encode()
            if len(token) > TOKEN_QUERY_MAX_LENGTH:
                return query
            if len(self._queries) >= self._max_queries:
                # The oldest out; a viewer still playing with it costs one quote again.
                del self._queries[next(iter(self._queries))]
            self._queries[token] = query
        return query

    def apply(self, playlist: str, token: SpliceToken) -> bytes:
        """`playlist` as bytes with `token` at the end of every URI."""
        if not token:
            return playlist.encode()
        if token is EdgeToken.ESI:
            splice = _ESI_INCLUDE
        elif token is EdgeToken.PLACEHOLDER:
            splice = _PLACEHOLDER_QUERY
        else:
            assert isinstance(token, str)
            splice = self.query(token)
        return splice.join(self.pieces(playlist))


@dataclass(frozen=True, slots=True)
class _PlaylistTemplate:
    """What every signed viewer's answer with one playlist shares: the playlist's bytes cut
    where the token goes, and the headers but Content-Length."""

    pieces: list[bytes]
    head: RawHeaders


def _playlist_head(max_age: int) -> RawHeaders:
    return [*_RAW_CORS, (b"cache-control", b"public, max-age=%d" % max_age), _RAW_PLAYLIST_TYPE]


HoldOutcome = Literal["ready", "timeout"]


async def hold(until: Awaitable[None], limit: float) -> HoldOutcome:
    """Wait for `until`, at most `limit` seconds; a timed-out wait is cancelled, which
    removes its waiter from the window.

    No task is created per held request (a timeout context around a plain await). A
    client that disconnects is not noticed until the wait ends, which the hold limit
    bounds to a few target durations: memory, not CPU, for a few seconds.
    """
    try:
        async with asyncio.timeout(max(0.0, limit)):
            await until
    except TimeoutError:
        return "timeout"
    return "ready"


class Origin:
    """The request handlers; one per app, holding the directory and the hold limit."""

    def __init__(
        self,
        directory: PresentationDirectory,
        *,
        hold_limit_factor: float,
        vod: VodDirectory | None = None,
        mp4: ProgressiveDirectory | None = None,
        access: PlaybackAccess | None = None,
        dvr: DvrArchive | None = None,
        relay: OwnerRelay | None = None,
    ) -> None:
        self.directory = directory
        self.relay = relay
        """In a cluster: answers for playback ids live on another node (None: 404s)."""
        self.vod = vod
        self.dvr = dvr
        self.mp4 = mp4
        self.access = access
        self._splices = TokenSplices()
        self._playlists: OrderedDict[tuple[str, EdgeToken | None, int], Response] = OrderedDict()
        self._templates: OrderedDict[tuple[str, int], _PlaylistTemplate] = OrderedDict()
        self._parts: dict[int, tuple[bytes, Response]] = {}
        self._memos: dict[str, _FastMemo] = {}  # by playback id
        self.hold_limit_factor = hold_limit_factor
        self._held = 0
        self.stats = OriginStats()
        # What each /live/ path is, by its extension, tried in this order (the most asked
        # first: a part is not matched against four other patterns, each re-reading a
        # session segment), and its decision (`_settle` holds where it says to wait; the
        # fast path takes it when it needs no wait).
        self._routes: dict[str, tuple[tuple[re.Pattern[str], _Decider], ...]] = {
            ".m4s": ((PART_PATH, self._part_now), (SEGMENT_PATH, self._segment_now)),
            ".m3u8": ((MEDIA_PLAYLIST_PATH, self._media_playlist_now),
                      (MULTIVARIANT_PATH, self._multivariant_now)),
            ".mp4": ((INIT_PATH, self._init_now),),
        }

    @property
    def held_requests(self) -> int:
        """Requests parked in a hold right now (for tests and stats)."""
        return self._held

    async def _hold(self, until: Awaitable[None], limit: float) -> HoldOutcome:
        started = self._hold_began()
        outcome: HoldOutcome = "timeout"
        try:
            outcome = await hold(until, limit)
            return outcome
        finally:
            self._hold_ended(started, timed_out=outcome != "ready")

    def _hold_began(self) -> float:
        self._held += 1
        return time.perf_counter()

    def _hold_ended(self, started: float, *, timed_out: bool) -> None:
        """Counts one hold, made by `_hold` or by the fast path (`_HeldAnswer`)."""
        self._held -= 1
        self.stats.held(time.perf_counter() - started, timed_out=timed_out)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        request = Request(scope)
        path: str = scope["path"]
        response: Response | StreamedResponse
        kind: RequestKind = "other"
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            response = _error(405, "method not allowed", headers={"Allow": "GET, HEAD, OPTIONS"})
        elif path.startswith("/live/"):
            kind = _live_kind(path)
            response = await self.handle(request, path[len("/live/") :])
        elif path.startswith("/vod/") and self.vod is not None:
            kind = "vod"
            response = await self.handle_vod(request, path[len("/vod/") :], self.vod)
        else:
            response = _error(404, "not found")
        head = request.method == "HEAD"
        if isinstance(response, StreamedResponse):
            self.stats.answered(kind, response.status_code, 0)
            await response.stream(send, receive, head=head)
            return
        self.account(kind, response, head, started)
        await response.send(send, head=head)

    # The fast path (golive.httpserver.fast) ----------------------------------------------

    prefix = b"/live/"

    def answer_now(self, scope: Scope) -> Response | FastHold | None:
        """The answer to a GET or HEAD below `/live/` when it needs no await, or the media
        it waits for (a blocking reload, a preload-hinted part); else None (then
        `answer`). Nothing is counted until `answered`."""
        request = Request(scope)
        path: str = scope["path"][len("/live/"):]
        decision = self._decide_fast(request, path, 0)
        if isinstance(decision, Response) or decision is None:
            return decision
        if isinstance(decision, _Wait) and decision.fast:
            assert decision.window is not None
            return _HeldAnswer(self, request, path, decision)
        return None

    async def answer(self, scope: Scope) -> Response:
        """The answer to a GET or HEAD below `/live/`, waiting where it must."""
        path: str = scope["path"]
        return await self.handle(Request(scope), path[len("/live/"):])

    def answered(self, scope: Scope, response: Response, started: float) -> None:
        """Counts an answer the fast path wrote, as `__call__` counts its own."""
        path: str = scope["path"]
        self.account(_live_kind(path), response, scope["method"] == "HEAD", started)

    def account(self, kind: RequestKind, response: Response, head: bool,
                started: float) -> None:
        stats = self.stats
        stats.answered(kind, response.status_code, 0 if head else len(response.body))
        if kind == "part":
            stats.part_answered(time.perf_counter() - started)

    # /live/ ------------------------------------------------------------------------------

    def _route(self, path: str) -> tuple[re.Match[str], _Decider] | None:
        for pattern, decide in self._routes.get(path[path.rfind("."):], ()):
            if match := pattern.fullmatch(path):
                return match, decide
        return None

    async def handle(self, request: Request, path: str, *, after: int = 0) -> Response:
        """The answer to `path` (below `/live/`); `after`: the decision stage a hold already
        passed (`_settle`)."""
        if request.method == "OPTIONS":
            return Response(b"", 204, _RAW_PREFLIGHT)
        if (route := self._route(path)) is not None:
            return await self._with_access(request, *route, after=after)
        if access := ACCESS_PATH.fullmatch(path):
            return await self._access_answer(request, access["pid"])
        return _error(404, "not found")

    def handle_now(self, request: Request, path: str) -> Response | None:
        """`handle`'s answer when it is ready at once: everything it needs is cached
        (access), local (the presentation) and there (the media, the playlist update);
        None when only `handle` can give it. Makes no decision `handle` would not."""
        decision = self._decide_now(request, path, 0)
        return decision if isinstance(decision, Response) else None

    def _decide_fast(self, request: Request, path: str, after: int) -> Decision | None:
        """`_decide_now` for the fast path, kept for the next request with the same path
        and query while the presentation does not change (`_FastMemo`): media playlists and
        parts, asked without a Range, an edge's or a relaying node's header, or a token in
        the query (a JWT's session token is made per viewer). A signed viewer's session
        in the path is left out of the key: below it every viewer gets the public answer,
        and each request's own session is what its access check verifies."""
        query = request.query_string
        # (bytes.find, not `in`: on CPython 3.11 `in` first tries the needle as an integer,
        # building and dropping a TypeError with a formatted message, twice the cost.)
        if (query.find(b"token=") >= 0 or query.find(b"%") >= 0
                or request.raw_header(b"range") is not None
                or request.raw_header(EDGE_HEADER) is not None
                or request.raw_header(_RELAY_HEADER) is not None):
            return self._decide_now(request, path, after)
        pid, _, rest = path.partition("/")
        session = None
        if rest.startswith(SESSION_PREFIX):
            session, _, rest = rest.partition("/")
        memo = self._memos.get(pid)
        key = (rest, query, after)
        kept = memo.kept.get(key) if memo is not None else None
        if kept is not None:
            assert memo is not None
            presentation = memo.presentation
            if (presentation.version == memo.version
                    and self.directory.presentation(pid) is presentation):
                grant = None
                if self.access is not None:
                    grant = self.access.check_now(
                        pid, session, audience="v", referrer=request.header(b"referer"),
                        own_host=request.header(b"host"))
                    if grant is None:
                        return None
                # A session a token's grant came from was verified, its form with it; any
                # other must have a session's form, as `_decide_now`'s routes ask.
                if (session is not None and (grant is None or grant.claims is None)
                        and _SESSION_SEGMENT.fullmatch(session) is None):
                    return self._decide_now(request, path, after)
                if kept.viewed is not None and after == 0:
                    self.stats.viewer_seen(pid, kept.viewed, request.client, time.monotonic())
                return kept.decision
        return self._decide_now(request, path, after, (key, session))

    def _keep(self, key: _MemoKey, pid: str, presentation: Presentation,
              kept: _Kept) -> None:
        memo = self._memos.get(pid)
        if (memo is None or memo.presentation is not presentation
                or memo.version != presentation.version):
            memo = _FastMemo(presentation)
            self._memos.pop(pid, None)
            self._memos[pid] = memo
            while len(self._memos) > FAST_MEMO_PRESENTATIONS:
                del self._memos[next(iter(self._memos))]  # the least recently changed
        elif len(memo.kept) >= FAST_MEMOS:
            return
        memo.kept[key] = kept

    def _decide_now(self, request: Request, path: str, after: int,
                    keep: tuple[_MemoKey, str | None] | None = None) -> Decision | None:
        """`handle`'s decision without an await (see `_settle` for `after`); None when
        only `handle` can make it. With `keep` (`_decide_fast`'s key and the session it
        read from the path), a media playlist's or a part's decision is kept for the next
        request with that key."""
        if request.method == "OPTIONS":
            return Response(b"", 204, _RAW_PREFLIGHT)
        route = self._route(path)
        if route is None:
            return None if ACCESS_PATH.fullmatch(path) else _error(404, "not found")
        match, decide = route
        pid = match["pid"]
        session = _session_of(match)
        token = session or request.token
        if (self.access is not None and not self._relayed_by_peer(request)
                and self.access.check_now(pid, token, audience="v",
                                          referrer=request.header(b"referer"),
                                          own_host=request.header(b"host")) is None):
            return None
        presentation = self.directory.presentation(pid)
        if presentation is None:
            return None if self.relay is not None else _error(404, "no such live broadcast")
        spliced = None if session else self._viewer_tokens(request, pid, token)[1]
        decision = decide(request, match, presentation, spliced, after)
        if (keep is not None and keep[1] == session
                and (match.re is MEDIA_PLAYLIST_PATH or match.re is PART_PATH)
                and not isinstance(decision, _Later)
                and (decision.fast if isinstance(decision, _Wait)
                     else decision.status_code == 200)):
            viewed: Literal["ll-hls", "hls"] | None = None
            if match.re is MEDIA_PLAYLIST_PATH:  # (its window exists: it was answered)
                window = presentation.renditions[match["rendition"]]
                viewed = "ll-hls" if window.low_latency else "hls"
            self._keep(keep[0], pid, presentation, _Kept(viewed, decision))
        return decision

    async def _settle(self, decide: Callable[[int], Decision], after: int = 0) -> Response | _Later:
        """A decision made, holding wherever it says to wait, and made again after each hold
        (from stage `after`: a hold made before this call counts)."""
        for _ in range(_MAX_HOLDS):
            decision = decide(after)
            if not isinstance(decision, _Wait):
                return decision
            outcome = await self._hold(decision.until(), decision.limit)
            if outcome != "ready" and decision.timeout is not None:
                return decision.timeout
            after = decision.stage
        return _error(503, "the broadcast kept changing; retry", headers={"Retry-After": "1"})

    async def _with_access(
        self,
        request: Request,
        match: re.Match[str],
        decide: _Decider,
        *,
        after: int = 0,
    ) -> Response:
        pid = match["pid"]
        session = _session_of(match)
        token = session or request.token
        # Before the presentation is looked up: a refusal must not tell live from not live.
        # A request another node relays, sealed, was checked there with its own viewer.
        if self.access is not None and not self._relayed_by_peer(request):
            verdict = await self._check(self.access, request, pid, token)
            if isinstance(verdict, Refusal):
                return _error(verdict.status, verdict.reason)
        presentation = self.directory.presentation(pid)
        # Below a session path the playlists need no token: their URIs inherit the path.
        token, spliced = (session, None) if session else self._viewer_tokens(request, pid, token)
        if presentation is None:
            if self.relay is None:
                return _error(404, "no such live broadcast")
            relayed = await self._relayed(self.relay, request, pid, token, spliced,
                                          multivariant=match.re is MULTIVARIANT_PATH,
                                          session=session)
            if relayed is not None:
                return relayed
            # This node took the broadcast over while the request was held: it answers.
            presentation = self.directory.presentation(pid)
            if presentation is None:  # (and lost it again at once)
                return _error(503, "the node serving this broadcast is changing; retry",
                              headers={"Retry-After": "1"})
        found = presentation
        decision = await self._settle(
            lambda stage: decide(request, match, found, spliced, stage), after)
        if isinstance(decision, Response):
            return decision
        # LATER: an init or a segment older than the window holds, from the recording.
        if match.groupdict().get("gen") is not None:
            return await self._archived(request, found, match["rendition"], "init",
                                        int(match["gen"]))
        return await self._archived(request, found, match["rendition"], "segment",
                                    int(match["msn"]))

    def _viewer_tokens(self, request: Request, pid: str, token: str | None
                       ) -> tuple[str | None, SpliceToken]:
        """`_tokens`, with a verified JWT's short session token in playlist URIs (see
        `golive.delivery.access`): a signed viewer's requests then carry ~60 characters
        instead of the JWT's hundreds. For a request the gate has allowed."""
        viewer, spliced = _tokens(request, token)
        if isinstance(spliced, str) and self.access is not None:
            spliced = self.access.session_token(pid, spliced)
        return viewer, spliced

    def _relayed_by_peer(self, request: Request) -> bool:
        relay = self.relay
        if relay is None or relay.seal is None:
            return False
        seal = request.raw_header(_RELAY_HEADER)
        return seal is not None and relay.trusts(seal.decode("latin-1"), request.path,
                                                 request.query_params)

    async def _relayed(self, relay: OwnerRelay, request: Request, pid: str,
                       viewer_token: str | None, token: SpliceToken, *, multivariant: bool,
                       session: str | None) -> Response | None:
        """The answer of the node that holds `pid`'s broadcast (see `golive.delivery.relay`);
        None when this node came to hold it meanwhile (a takeover)."""
        query = request.query_params
        if "_HLS_msn" in query or "_HLS_part" in query or "_HLS_skip" in query:
            try:
                parse_directives(query)
            except BadDirective as exc:
                return _error(400, str(exc))
        directory = self.directory
        path = request.path[len("/live/"):]
        if session:
            # One upstream request per object, whichever viewer's session asked.
            path = path.replace(f"/{session}/", "/", 1)
        answer = await relay.answer(pid, path, query, viewer_token,
                                    here=lambda: directory.presentation(pid) is not None)
        if answer == "here":
            return None
        if answer == "absent":
            return _error(404, "no such live broadcast")
        if answer == "unknown":
            return _error(503, "the node serving this broadcast is changing; retry",
                          headers={"Retry-After": "1"})
        if answer == "failed":
            return _error(503, "the node serving this broadcast did not answer; retry",
                          headers={"Retry-After": "1"})
        assert isinstance(answer, Relayed)
        if answer.text is not None:
            # A playlist, as the owner would answer it without a token: each viewer's (or
            # an edge's) goes in from the same shared templates as for a local broadcast.
            if multivariant:
                return self._multivariant_response(answer.text, pid, token, answer.max_age)
            return self._playlist_response(answer.text, token, answer.max_age)
        body = answer.body
        headers: RawHeaders = [(name.encode("latin-1"), value.encode("latin-1"))
                               for name, value in answer.headers]
        headers.append((b"content-length", b"%d" % len(body)))
        return Response(body, answer.status, headers)

    @staticmethod
    async def _check(access: PlaybackAccess, request: Request, pid: str,
                     token: str | None) -> Grant | Refusal:
        """One playback check (audience v) for a /live/ or /vod/ request, as its viewer."""
        return await access.check(pid, token, audience="v", viewer=request.viewer,
                                  referrer=request.header(b"referer"),
                                  own_host=request.header(b"host"))

    async def _access_answer(self, request: Request, pid: str) -> Response:
        """204 or 403 with the reason, for an edge's `auth_request`; cacheable per token."""
        if self.access is None:
            return Response(b"", 204, {"Cache-Control": f"max-age={PUBLIC_ACCESS_MAX_AGE}"})
        verdict = await self._check(self.access, request, pid,
                                    request.token)
        if isinstance(verdict, Refusal):
            if verdict.status == 404:
                # Nothing to protect (an edge's auth_request only takes 2xx, 401 and 403):
                # the request itself then gets the origin's 404.
                return Response(b"", 204, {"Cache-Control": f"max-age={REFUSED_ACCESS_MAX_AGE}"})
            return _error(verdict.status, verdict.reason, headers={
                "Cache-Control": f"max-age={REFUSED_ACCESS_MAX_AGE}",
                # auth_request drops the body; the edge passes this on to the viewer.
                "X-Golive-Refusal": _header_safe(verdict.reason)})
        if verdict.expires_at is None:
            max_age = PUBLIC_ACCESS_MAX_AGE
        else:
            # Never past the token's expiry: an expired token is asked about again.
            max_age = min(MAX_ACCESS_MAX_AGE, int(verdict.expires_at - time.time()))
        if max_age <= 0:
            return Response(b"", 204, {"Cache-Control": "no-store"})
        return Response(b"", 204, {"Cache-Control": f"max-age={max_age}"})

    # Playlists -------------------------------------------------------------------------

    def _multivariant_now(self, request: Request, match: re.Match[str],
                          presentation: Presentation, token: SpliceToken, after: int) -> Decision:
        # Only the whole ladder is an answer: the inits of a starting broadcast arrive some
        # milliseconds apart, and a playlist listing the first rendition alone would keep
        # a player (and the edge copy every later player gets) on that one for good.
        if after < 1 and not presentation.complete and not presentation.ended:
            return _Wait(self.hold_limit_factor * READY_HOLD_UNIT, None, 1,
                         presentation=presentation)
        text = presentation.multivariant_playlist()
        if text is None:
            return _error(404, "broadcast has no media yet")
        if not presentation.complete and not presentation.ended:
            # A rendition is late past the hold: not an answer to keep, even for a second.
            return _error(404, "broadcast is still starting", headers={"Cache-Control": ERROR_CACHE})
        if presentation.ended:
            max_age = ENDED_PLAYLIST_MAX_AGE
        else:
            # Half a target duration, as for any playlist of a standard HLS stream: the
            # multivariant changes only when renditions or codecs change.
            targets = [w.target_duration for w in presentation.renditions.values()]
            max_age = max(1, max(targets, default=2) // 2)
        return self._multivariant_response(text, match["pid"], token, max_age)

    def _media_playlist_now(self, request: Request, match: re.Match[str],
                            presentation: Presentation, token: SpliceToken,
                            after: int) -> Decision:
        name = match["rendition"]
        window = presentation.renditions.get(name)
        if window is None:
            return _error(404, "no such rendition")
        if after == 0:
            self.stats.viewer_seen(match["pid"], "ll-hls" if window.low_latency else "hls",
                                   request.client, time.monotonic())
        try:
            directives = parse_directives(request.query_params)
        except BadDirective as exc:
            return _error(400, str(exc))
        if after < 1 and window.init is None and not window.ended:
            # Every rendition's init, this one's included (a sibling's alone would not do).
            return _Wait(self.hold_limit_factor * READY_HOLD_UNIT, None, 1,
                         presentation=presentation)
        # Directives are ignored once the stream has ended (nothing more will come) and by
        # a standard-latency window, which does not advertise CAN-BLOCK-RELOAD.
        blocking = directives.blocking and window.low_latency and not window.ended
        if (after < 2 and not blocking and not window.ended
                and window.state(first := window.media_sequence, None) == "pending"):
            # A player's first load waits for the broadcast's first whole segment: while the
            # only segment is still open it has parts but no segment URI, and a player that
            # probes a listed segment at load (Shaka Player 5.2 did, for captions) may pick
            # that one and fail. At most one segment of start-up, once per broadcast.
            return _Wait(self.hold_limit_factor * READY_HOLD_UNIT, None, 2, window, first)
        if blocking:
            msn, part = directives.msn, directives.part
            assert msn is not None
            state = window.state(msn, part)
            if state == "too_far":
                return _error(400, "requested media sequence is too far ahead")
            if state == "pending":
                return _Wait(self._hold_limit(window), _PLAYLIST_LATE, 3, window, msn, part)
        first_media = (window.first_msn, 0 if window.low_latency else None)
        if not window.ended and window.state(*first_media) == "pending":
            # Listed, but nothing in it yet: a broadcast starting, or one this node took
            # over from a node that died a moment ago (its players reload with that node's
            # numbers, which this window has passed). Wait for the first media like a
            # blocking reload, then 503 (retry): a playlist without a segment, or a 404,
            # made hls.js end its stream.
            return _Wait(self._hold_limit(window), _NO_MEDIA_YET, 4, window, *first_media)
        text = presentation.media_playlist(name, skip=directives.skip,
                                           client_has=directives.msn)
        if text is None:
            return _error(404, "rendition has no media")
        return self._playlist_response(text, token, self._playlist_max_age(window, blocking))

    def _playlist_max_age(self, window: RenditionWindow, blocking: bool) -> int:
        target = window.target_duration
        if window.ended:
            return ENDED_PLAYLIST_MAX_AGE
        if blocking:
            # The answer to "the playlist once part N.P exists" stays a correct answer to
            # that question: any later copy would only add parts. The URL is unique to
            # the part, so an edge can keep it while players can still ask for it, a few
            # target durations; it then serves every player of that edge from one fetch.
            return 3 * target
        if window.low_latency:
            # A plain reload is how a low-latency player joins; a second-old copy costs it
            # one extra (blocking, immediately answered) reload, while the edge absorbs the
            # joining crowd. One second is the shortest non-zero integer max-age.
            return 1
        # Standard HLS: RFC 8216 players reload every target duration; half of it keeps
        # an edge copy from making them miss a segment.
        return max(1, target // 2)

    def _hold_limit(self, window: RenditionWindow) -> float:
        return self.hold_limit_factor * window.target_duration

    def _playlist_response(self, text: str, token: SpliceToken, max_age: int) -> Response:
        """The answer carrying playlist `text` with `token` in its URIs.

        Without a viewer's own token it is built once per (text, token, max-age) and shared:
        the players a new part wakes all ask for the same playlist at the same moment. With
        one (signed playback), the headers and the playlist's bytes cut at its URI ends are
        what is shared, and the answer is one join with the viewer's `?token=...`.
        """
        if isinstance(token, str):
            return self._signed_playlist_response(text, token, max_age)
        key = (text, token, max_age)
        response = self._playlists.get(key)
        if response is not None:
            self._playlists.move_to_end(key)
            return response
        body = self._splices.apply(text, token)
        response = Response(body, 200, [*_playlist_head(max_age),
                                        (b"content-length", b"%d" % len(body))])
        self._playlists[key] = response
        if len(self._playlists) > PLAYLIST_RESPONSES:
            self._playlists.popitem(last=False)
        return response

    def _multivariant_response(self, text: str, pid: str, token: SpliceToken,
                               max_age: int) -> Response:
        """A multivariant's answer: below a session path for a viewer with a session token,
        else with `token` in its URIs like any playlist."""
        if isinstance(token, str) and token.startswith(SESSION_PREFIX):
            return self._session_multivariant(text, pid, token, max_age)
        return self._playlist_response(text, token, max_age)

    @staticmethod
    def _session_multivariant(text: str, pid: str, session: str, max_age: int) -> Response:
        """The multivariant for a signed viewer with a session token: each media playlist
        listed below a path segment naming the session (`PID/SESSION/NAME.m3u8`), whose
        playlists then carry no token at all. Their relative URIs resolve below the same
        segment (RFC 3986), so the player sends the session with every request, while
        every viewer's media playlist is the one shared answer public viewers get: no
        per-viewer copy of each blocking reload's ~20 URIs. Once per session: not kept."""
        body = text.replace(f"\n{pid}/", f"\n{pid}/{session}/").replace(
            f'URI="{pid}/', f'URI="{pid}/{session}/').encode()
        return Response(body, 200, [*_playlist_head(max_age),
                                    (b"content-length", b"%d" % len(body))])

    def _signed_playlist_response(self, text: str, token: str, max_age: int) -> Response:
        key = (text, max_age)
        template = self._templates.get(key)
        if template is None:
            template = _PlaylistTemplate(self._splices.pieces(text), _playlist_head(max_age))
            self._templates[key] = template
            if len(self._templates) > PLAYLIST_RESPONSES:
                self._templates.popitem(last=False)
        body = self._splices.query(token).join(template.pieces)
        return Response(body, 200, [*template.head, (b"content-length", b"%d" % len(body))])

    # Media -----------------------------------------------------------------------------

    def _init_now(self, request: Request, match: re.Match[str], presentation: Presentation,
                  token: SpliceToken, after: int) -> Decision:
        window = presentation.renditions.get(match["rendition"])
        if window is None:
            return _error(404, "no such rendition")
        generation = int(match["gen"])
        data = window.init_bytes(generation)
        if data is None and self.dvr is not None and window.archived_init(generation):
            return LATER  # from the recording
        if data is None:
            return _error(404, "no such initialization segment")
        return self._body_response(request, data, INIT_TYPE, MEDIA_CACHE, ranges=True)

    def _segment_now(self, request: Request, match: re.Match[str], presentation: Presentation,
                     token: SpliceToken, after: int) -> Decision:
        return self._media(request, presentation, match["rendition"], int(match["msn"]), None)

    def _part_now(self, request: Request, match: re.Match[str], presentation: Presentation,
                  token: SpliceToken, after: int) -> Decision:
        return self._media(request, presentation, match["rendition"], int(match["msn"]),
                           int(match["idx"]))

    def _media(
        self,
        request: Request,
        presentation: Presentation,
        name: str,
        msn: int,
        part: int | None,
    ) -> Decision:
        window = presentation.renditions.get(name)
        if window is None:
            return _error(404, "no such rendition")
        state = window.state(msn, part)
        if state == "too_far":
            return _error(404, "no such media")
        if state == "pending" and not (part is not None and window.hint_held_back(msn, part)):
            # The preload hint names a part before it exists: the player asks for it at
            # once and gets it the moment it is produced. (Unless it is the one a lagging
            # rung hints while its gaps are held back: never produced, a 204 below.)
            return _Wait(MEDIA_HOLD_UNITS * self._hold_limit(window), _MEDIA_LATE, 1, window,
                         msn, part)
        data = window.segment_bytes(msn) if part is None else window.part_bytes(msn, part)
        if data is None and part is None and self.dvr is not None and window.archived(msn):
            return LATER  # from the recording
        if data is None and part is not None and window.superseded(msn, part):
            # A part the preload hint named and the rendition then never produced (its
            # segment was cut short by an encoder restart or a suspension). RFC 8216bis
            # 6.2.6 allows that and suggests 404, but Shaka Player (5.2) fails its stream
            # on any media 404 (error 1001, critical when no other variant can take over).
            # An empty 204 is a part without media: players go on with the playlist, which
            # no longer lists it. The URL never gets other content, so it caches like media.
            return Response(b"", 204, {"Cache-Control": MEDIA_CACHE, **CORS_HEADERS})
        if data is None and window.is_gap(msn, part):
            # The rendition was suspended under load: its playlist marks this EXT-X-GAP
            # (GAP=YES) and a player should not have asked. The media will never exist.
            return _error(404, "gap: this rendition has no media here")
        if data is None:
            return _error(404, "no such media")
        if part is not None and request.raw_header(b"range") is None:
            return self._part_response(request, data)
        return self._body_response(request, data, SEGMENT_TYPE, MEDIA_CACHE, ranges=True)

    def _part_response(self, request: Request, data: bytes) -> Response:
        """A whole part's answer, built once per part and shared: every viewer asks for the
        newest part the moment it is listed. Kept by the part's bytes (the window's own
        object, never changed), a few per rendition."""
        kept = self._parts.get(id(data))
        if kept is not None and kept[0] is data:
            return kept[1]
        response = self._body_response(request, data, SEGMENT_TYPE, MEDIA_CACHE, ranges=True)
        if len(data) >= SHARED_BODY_MIN:
            response.fast_shared = SharedBody()
        self._parts[id(data)] = (data, response)
        if len(self._parts) > PART_RESPONSES:
            del self._parts[next(iter(self._parts))]  # the oldest
        return response

    async def _archived(self, request: Request, presentation: Presentation, name: str,
                        kind: Literal["init", "segment"], number: int) -> Response:
        """DVR media past the rendition window, from the recording (same URL, same caching)."""
        assert self.dvr is not None
        data = await self.dvr.media(presentation, name, kind, number)
        if data == UNAVAILABLE:
            return _error(503, "recorded media is not available yet", headers={"Retry-After": "1"})
        if data is None:
            return _error(404, "no such media: it was not recorded")
        assert isinstance(data, bytes)
        media_type = INIT_TYPE if kind == "init" else SEGMENT_TYPE
        return self._body_response(request, data, media_type, MEDIA_CACHE, ranges=True)

    # On demand -------------------------------------------------------------------------

    async def handle_vod(self, request: Request, path: str, vod: VodDirectory
                         ) -> Response | StreamedResponse:
        if request.method == "OPTIONS":
            return Response(b"", 204, _RAW_PREFLIGHT)
        if (mp4 := MP4_PATH.fullmatch(path)) and self.mp4 is not None:
            return await self._progressive(request, mp4, vod, self.mp4)
        match = (
            MULTIVARIANT_PATH.fullmatch(path)
            or MEDIA_PLAYLIST_PATH.fullmatch(path)
            or INIT_PATH.fullmatch(path)
            or SEGMENT_PATH.fullmatch(path)
        )
        if match is None:
            return _error(404, "not found")
        pid = match["pid"]
        token = _session_of(match) or request.token
        if (refusal := await self._vod_refusal(request, pid, token, vod)) is not None:
            return refusal
        groups = match.groupdict()
        if "gen" in groups or "msn" in groups:
            kind: Literal["init", "segment"] = "init" if "gen" in groups else "segment"
            number = int(groups["gen"] if kind == "init" else groups["msn"])
            data = await vod.media(pid, match["rendition"], kind, number)
            if data == UNAVAILABLE:
                return _error(503, "recording storage is unavailable", headers={"Retry-After": "2"})
            if data is None:
                return _error(404, "no such media")
            assert isinstance(data, bytes)
            media_type = INIT_TYPE if kind == "init" else SEGMENT_TYPE
            return self._body_response(request, data, media_type, MEDIA_CACHE, ranges=True)
        text = await vod.playlist(pid, groups.get("rendition"))
        if text == UNAVAILABLE:
            return _error(503, "recording index is unavailable", headers={"Retry-After": "2"})
        if text is None:
            return _error(404, "no such asset")
        if token is not None and self.access is not None:
            token = self.access.session_token(pid, token)
        return self._playlist_response(text, token, VOD_PLAYLIST_MAX_AGE)

    async def _vod_refusal(self, request: Request, pid: str, token: str | None,
                           vod: VodDirectory) -> Response | None:
        """The answer refusing this VOD request, or None when it may be served: the same
        token checks and restrictions as live playback (an asset's playback id may be
        signed); without a gate, the catalogue's own rule."""
        if self.access is None:
            return None if await vod.authorize(pid, token) else _error(
                403, "playback not authorized")
        verdict = await self._check(self.access, request, pid, token)
        if isinstance(verdict, Refusal):
            return _error(verdict.status, verdict.reason)
        return None

    async def _progressive(self, request: Request, match: re.Match[str], vod: VodDirectory,
                           mp4: ProgressiveDirectory) -> Response | StreamedResponse:
        """`/vod/PID/high.mp4` or `low.mp4`: the asset remuxed to a progressive MP4, by range."""
        pid = match["pid"]
        token = request.token
        if (refusal := await self._vod_refusal(request, pid, token, vod)) is not None:
            return refusal
        quality: Literal["high", "low"] = "high" if match["quality"] == "high" else "low"
        source = await mp4.progressive(pid, quality)
        if source == UNAVAILABLE:
            return _error(503, "recording storage is unavailable", headers={"Retry-After": "2"})
        if source is None:
            return _error(404, "no such asset, or none a progressive MP4 can hold")
        assert not isinstance(source, str)
        size = source.plan.size
        headers = {**CORS_HEADERS, "Cache-Control": MP4_CACHE, "Accept-Ranges": "bytes",
                   "ETag": source.etag}
        wanted = parse_range(request.header(b"range"), size)
        if wanted == "unsatisfiable":
            return _error(416, "range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
        if wanted is None:
            return progressive_response(source, 0, size - 1, status=200, headers=headers)
        first, last = wanted
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        return progressive_response(source, first, last, status=206, headers=headers)

    # Responses -------------------------------------------------------------------------

    def _body_response(
        self,
        request: Request,
        body: bytes,
        media_type: str,
        cache_control: str,
        *,
        ranges: bool,
    ) -> Response:
        status = 200
        headers = [*_RAW_CORS, (b"cache-control", cache_control.encode())]
        range_header = request.header(b"range") if ranges else None
        if range_header is not None:
            wanted = parse_range(range_header, len(body))
            if wanted == "unsatisfiable":
                return _error(
                    416, "range not satisfiable", headers={"Content-Range": f"bytes */{len(body)}"}
                )
            if wanted is not None:
                first, last = wanted
                headers.append((b"content-range", b"bytes %d-%d/%d" % (first, last, len(body))))
                body = body[first : last + 1]
                status = 206
        if ranges:
            headers.append(_RAW_ACCEPT_RANGES)
        headers.append((b"content-type", media_type.encode()))
        headers.append((b"content-length", b"%d" % len(body)))
        return Response(body, status, headers)


def _session_of(match: re.Match[str]) -> str | None:
    """The session token a request's path names (`PID/SESSION/...`), if its pattern has one."""
    return match["session"] if "session" in match.re.groupindex else None


def _live_kind(path: str) -> RequestKind:
    """What a `/live/` request asks for, from its path alone (cheap: no pattern match)."""
    if path.endswith(".m3u8"):
        return "playlist"
    if "/part-" in path:
        return "part"
    if "/seg-" in path:
        return "segment"
    if "/init-" in path:
        return "init"
    if path.endswith("/access"):
        return "access"
    return "other"


class _Decider(Protocol):
    def __call__(
        self,
        request: Request,
        match: re.Match[str],
        presentation: Presentation,
        token: SpliceToken,
        after: int,
        /,
    ) -> Decision: ...


def create_origin_app(
    directory: PresentationDirectory,
    *,
    hold_limit_factor: float = 3.0,
    vod: VodDirectory | None = None,
    mp4: ProgressiveDirectory | None = None,
    access: PlaybackAccess | None = None,
    dvr: DvrArchive | None = None,
    relay: OwnerRelay | None = None,
) -> Origin:
    """The origin as an ASGI app serving `/live/...`, and `/vod/...` when `vod` is given
    (with `high.mp4` / `low.mp4` when `mp4` is given too).

    `hold_limit_factor` times the rendition's target duration is how long a blocking
    playlist reload or a preload-hinted media request is held before a 503. `access`
    checks playback tokens and restrictions; without it every playback id is public.
    `dvr` serves live DVR windows' segments older than the rendition windows hold.
    `relay`, in a cluster, answers for broadcasts another node holds.
    """
    if not math.isfinite(hold_limit_factor) or hold_limit_factor <= 0:
        raise ValueError("hold_limit_factor must be a positive number")
    return Origin(directory, hold_limit_factor=hold_limit_factor, vod=vod, mp4=mp4,
                  access=access, dvr=dvr, relay=relay)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message: dict[str, Any] = dict(await receive())
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
