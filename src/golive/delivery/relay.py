"""Answering for a broadcast another node holds: `/live/` requests relayed to its owner,
one upstream request per object however many viewers ask (delivery).

In a cluster any node may get any viewer's request. When the origin has no presentation
for a playback id it asks an `OwnerDirectory` (the cluster's broadcast registry) which
node holds it and fetches the same path from that node's internal URL. Requests for the
same object are collapsed: one upstream request in flight per (owner, path, LL-HLS
directives, token or not), every viewer asking meanwhile awaits it, and a successful
answer is kept for as long as its Cache-Control allows (capped, bounded in bytes), so a
crowd on a non-owner node costs the owner what one viewer costs. Blocking playlist
reloads collapse on their (msn, part, skip) like any other key.

Playback tokens, referrer restrictions and access hooks are checked here, before
relaying, exactly as for a local broadcast, with the viewer's own address, referrer and
user agent. The owner would see none of them (only this node's address, and one viewer's
request for many), so each upstream request carries a `RelaySeal`: an HMAC, under a key
derived from the secret the cluster's nodes share (`chat_secret`), over the time, the path
and the LL-HLS directives. An owner that verifies it answers without checking again; a
viewer cannot forge it, and a captured one is good for that one object for a minute. (Nodes
that do not share the secret still relay: the owner then checks the forwarded token, and
referrer restrictions and hooks see the relaying node.) The owner also gets the first
viewer's token and `X-Golive-Edge`, so a tokened playlist comes back with the edge
placeholder in its URIs; that placeholder is taken out once per answer, and the origin
writes each viewer's token in with the same shared templates it uses for its own
broadcasts. `/thumbnail/` is relayed the same way (sealed, without a token).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, Protocol
from urllib.parse import quote

import aiohttp
from yarl import URL

__all__ = ["OWNER_UNKNOWN", "RELAY_HEADER", "THUMBNAIL_PARAMS", "OwnerDirectory", "OwnerRelay",
           "OwnerUnknown", "RelaySeal", "Relayed"]

# Headers of the owner's answer a viewer gets as they are; the rest is the owner's business.
PASSED_HEADERS: Final = frozenset({
    "cache-control", "content-type", "access-control-allow-origin",
    "access-control-expose-headers", "retry-after", "accept-ranges",
})
MAX_BODY_BYTES = 32 * 1024 * 1024  # an answer larger than this is refused (502)
READ_CHUNK = 256 * 1024  # bytes asked of the owner's answer at a time
CACHE_BYTES = 64 * 1024 * 1024  # answers kept for later viewers, all owners together
CACHE_SECONDS = 30.0  # the longest an answer is kept, whatever its max-age says
MAX_IN_FLIGHT = 512  # distinct upstream requests at once; beyond it 503
TAKEOVER_HOLD = 8.0  # seconds a request waits for a broadcast's next owner before a 503
TAKEOVER_RETRY = 0.25  # seconds between looking for it meanwhile
_MAX_AGE = re.compile(r"max-age=([0-9]{1,10})")
DIRECTIVES = ("_HLS_msn", "_HLS_part", "_HLS_skip")
THUMBNAIL_PARAMS = ("width", "segment")
RELAY_HEADER = "x-golive-relay"
SEAL_WINDOW = 60.0  # seconds a seal is good for, either side of the owner's clock
# What an owner writes where a token goes when asked with `X-Golive-Edge` (origin.py).
_PLACEHOLDER_QUERY = "?token=GOLIVE_EDGE_TOKEN"
_SEAL = re.compile(r"([0-9]{1,12})\.([0-9a-f]{64})")


class RelaySeal:
    """Proves to an owner that a request comes from a node of the cluster, which has
    checked the viewer (module doc). The key is derived from the nodes' shared secret."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"golive/relay-seal", hashlib.sha256).digest()

    def _mac(self, stamp: int, path: str, params: tuple[str, ...]) -> str:
        message = "\n".join((str(stamp), path, *params)).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def seal(self, path: str, params: tuple[str, ...], now: float | None = None) -> str:
        """The header value for GET `path` (decoded, from the root) with `params`
        (`name=value`, in the order `relay_params` gives)."""
        stamp = int(time.time() if now is None else now)
        return f"{stamp}.{self._mac(stamp, path, params)}"

    def verify(self, value: str | None, path: str, params: tuple[str, ...],
               now: float | None = None) -> bool:
        if value is None:
            return False
        match = _SEAL.fullmatch(value)
        if match is None:
            return False
        stamp = int(match.group(1))
        if abs((time.time() if now is None else now) - stamp) > SEAL_WINDOW:
            return False
        return hmac.compare_digest(match.group(2), self._mac(stamp, path, params))


def relay_params(query: Mapping[str, str], names: tuple[str, ...] = DIRECTIVES
                 ) -> tuple[str, ...]:
    """The parameters of `query` a relayed request carries (and its seal covers)."""
    return tuple(f"{name}={query[name]}" for name in names if name in query)


class OwnerUnknown:
    """The broadcast is live somewhere (or was a moment ago) but no node holds it now."""

    __slots__ = ()


OWNER_UNKNOWN: Final = OwnerUnknown()


class OwnerDirectory(Protocol):
    """Which node holds the live broadcast of a playback id."""

    async def owner_url(self, playback_id: str) -> str | OwnerUnknown | None:
        """The owner's internal base URL; OWNER_UNKNOWN while it is being taken over (or
        the directory cannot be asked); None when no node holds it (not live)."""
        ...

    def owner_failed(self, playback_id: str, url: str) -> None:
        """`url` did not answer for `playback_id`: forget what was cached about it."""
        ...


@dataclass(frozen=True, slots=True)
class Relayed:
    """An answer as the relay hands it to the origin: status, headers, body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    playlist: bool
    text: str | None = None
    """A playlist's text with the edge placeholder taken out (tokens are written in by the
    origin per viewer); None for media, or a playlist that did not decode."""

    @property
    def max_age(self) -> int:
        return _max_age(self)


@dataclass(slots=True)
class _Kept:
    answer: Relayed
    until: float


Key = tuple[str, str, tuple[str, ...], bool]


class OwnerRelay:
    """Fetches `/live/` objects from their owner node, collapsed and briefly kept."""

    def __init__(self, directory: OwnerDirectory, *, timeout: float,
                 max_body: int = MAX_BODY_BYTES, cache_bytes: int = CACHE_BYTES,
                 takeover_hold: float = TAKEOVER_HOLD, seal: RelaySeal | None = None) -> None:
        self._directory = directory
        self.seal = seal
        """Seals this node's upstream requests and checks other nodes' (None: neither)."""
        self._timeout = timeout
        self._takeover_hold = takeover_hold
        self._max_body = max_body
        self._cache_bytes = cache_bytes
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: dict[Key, asyncio.Future[Relayed]] = {}
        self._kept: OrderedDict[Key, _Kept] = OrderedDict()
        self._kept_bytes = 0
        self.upstream_requests = 0
        """Requests sent to owners (for tests and the bench: collapsing keeps it low)."""
        self.relayed = 0
        """Viewer requests answered from an owner's answer."""

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def trusts(self, seal: str | None, path: str, query: Mapping[str, str],
               names: tuple[str, ...] = DIRECTIVES) -> bool:
        """Whether a request for `path` (decoded, from the root) comes sealed by a node of
        the cluster, which checked its viewer: then it is answered without a check."""
        return self.seal is not None and seal is not None and self.seal.verify(
            seal, path, relay_params(query, names))

    async def answer(self, playback_id: str, path: str, query: Mapping[str, str],
                     token: str | None, *, prefix: str = "live",
                     params: tuple[str, ...] = DIRECTIVES,
                     here: Callable[[], bool] | None = None,
                     ) -> Relayed | Literal["unknown", "absent", "failed", "here"]:
        """The owner's answer to GET `/{prefix}/{path}` for this viewer.

        `query` holds the request's parameters (only `params` are relayed), `token` the
        viewer's playback token, already checked. "absent": live nowhere
        (404). While the owner does not answer, or no node owns a broadcast that was live
        a moment ago (its node died, its publisher is moving to another), the request is
        held like a blocking reload, up to `takeover_hold` seconds, and answered by the
        next owner: players then go on instead of counting errors. Past that, "unknown"
        (no owner) or "failed" (the owner did not answer): 503 + Retry-After. "here":
        `here()` says this node serves the broadcast now (it is the one taking it over),
        so the caller answers it itself.
        """
        deadline = time.monotonic() + self._takeover_hold
        while True:
            answer = await self._answer_once(playback_id, f"{prefix}/{path}", query, token,
                                             params)
            if answer not in ("unknown", "failed") or time.monotonic() >= deadline:
                return answer
            await asyncio.sleep(TAKEOVER_RETRY)
            if here is not None and here():
                return "here"

    async def _answer_once(self, playback_id: str, path: str, query: Mapping[str, str],
                           token: str | None, params: tuple[str, ...]
                           ) -> Relayed | Literal["unknown", "absent", "failed"]:
        owner = await self._directory.owner_url(playback_id)
        if owner is None:
            return "absent"
        if isinstance(owner, OwnerUnknown):
            return "unknown"
        directives = relay_params(query, params)
        key: Key = (owner, path, directives, token is not None)
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None:
            if kept.until > now:
                self._kept.move_to_end(key)
                self.relayed += 1
                return kept.answer
            self._forget(key)
        pending = self._in_flight.get(key)
        if pending is None:
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                return "failed"
            pending = asyncio.get_running_loop().create_future()
            pending.add_done_callback(_retrieve)
            self._in_flight[key] = pending
            # A task of its own: a viewer that goes away must not cancel the others' fetch.
            task = asyncio.create_task(self._fetch(key, directives, token, pending),
                                       name=f"relay-{playback_id}")
            task.add_done_callback(_retrieve)
        try:
            answer = await asyncio.shield(pending)
        except _OwnerFailed:
            self._directory.owner_failed(playback_id, owner)
            return "failed"
        self.relayed += 1
        return answer

    async def _fetch(self, key: Key, directives: tuple[str, ...], token: str | None,
                     pending: asyncio.Future[Relayed]) -> None:
        owner, path, _, tokened = key
        query = "&".join([quote(item, safe="=") for item in directives]
                         + ([f"token={quote(token, safe='')}"] if token else []))
        url = f"{owner}/{path}" + (f"?{query}" if query else "")
        headers = {"X-Golive-Edge": "1"} if tokened else {}
        if self.seal is not None:
            headers[RELAY_HEADER] = self.seal.seal(f"/{path}", directives)
        try:
            answer = await self._get(url, headers)
        except Exception as exc:
            pending.set_exception(_OwnerFailed(str(exc)))
        else:
            max_age = _max_age(answer)
            if answer.status in (200, 204) and max_age > 0:
                self._keep(key, answer, min(float(max_age), CACHE_SECONDS))
            pending.set_result(answer)
        finally:
            self._in_flight.pop(key, None)

    async def _get(self, url: str, headers: dict[str, str]) -> Relayed:
        # `encoded`: the URL goes out as built here (paths are the origin's own names,
        # the query quoted above), so the seal covers what the owner decodes.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(total=self._timeout), auto_decompress=False,
                skip_auto_headers=("User-Agent",))
        self.upstream_requests += 1
        async with self._session.get(URL(url, encoded=True), headers=headers,
                                     allow_redirects=False) as response:
            length = response.content_length
            if length is not None and length > self._max_body:
                raise _OwnerFailed(f"answer of {length} bytes is over {self._max_body}")
            body = await _read_body(response.content, self._max_body)
            if length is not None and len(body) != length:
                raise _OwnerFailed(f"answer of {len(body)} bytes, {length} announced")
            passed = tuple((name.lower(), value) for name, value in response.headers.items()
                           if name.lower() in PASSED_HEADERS)
            content_type = response.headers.get("content-type", "")
            playlist = "mpegurl" in content_type
            text = None
            if playlist and response.status == 200:
                with contextlib.suppress(UnicodeDecodeError):
                    text = body.decode().replace(_PLACEHOLDER_QUERY, "")
            return Relayed(response.status, passed, body, playlist, text)

    def _keep(self, key: Key, answer: Relayed, seconds: float) -> None:
        size = len(answer.body)
        if size > self._cache_bytes // 8:
            return
        self._forget(key)
        self._kept[key] = _Kept(answer, time.monotonic() + seconds)
        self._kept_bytes += size
        while self._kept_bytes > self._cache_bytes and self._kept:
            _, oldest = self._kept.popitem(last=False)
            self._kept_bytes -= len(oldest.answer.body)

    def _forget(self, key: Key) -> None:
        kept = self._kept.pop(key, None)
        if kept is not None:
            self._kept_bytes -= len(kept.answer.body)


class _OwnerFailed(Exception):
    pass


def _retrieve(future: asyncio.Future[Relayed] | asyncio.Task[None]) -> None:
    """Marks a failure as seen: every viewer awaiting it may have gone away meanwhile."""
    with contextlib.suppress(asyncio.CancelledError):
        future.exception()


async def _read_body(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, to its end, refused past `limit` bytes. (`StreamReader.read(n)`
    returns what has arrived so far: a segment larger than one read came back cut short,
    and was kept and given to every viewer as if whole.)"""
    chunks: list[bytes] = []
    size = 0
    while chunk := await content.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _OwnerFailed(f"answer is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _max_age(answer: Relayed) -> int:
    for name, value in answer.headers:
        if name == "cache-control":
            if "no-store" in value or "no-cache" in value:
                return 0
            match = _MAX_AGE.search(value)
            return int(match.group(1)) if match else 0
    return 0
