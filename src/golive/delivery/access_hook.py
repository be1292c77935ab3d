"""Access hooks: an application's own yes or no before a publish, a play session or a chat join.

Like MediaMTX's `authHTTPAddress` and SRS's `on_play`/`on_publish`: golive POSTs a JSON
description of the request (action, protocol, stream id, playback id, remote address,
user agent, referrer, verified token claims) to the stream's hook, or the node's, and
the hook answers `{"allow": true|false, "reason": "...", "cache_seconds": N}`.

Decisions are cached per viewer session (a playback token, else address and user agent;
for a publish, the source address), so a player is asked about once per session, not
per part, and concurrent requests of one session share one call. A hook that times out
or fails is logged and counted (`errors`); `fail_open` decides, and that decision is
kept for `FAILURE_TTL` so a dead hook costs a viewer at most one timeout per interval.

The publish side (`HookedPublishTarget`) wraps the hub's `PublishTarget` here, beside
the play side, so one client and one cache serve every hook call of the node.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from golive.core import RepeatedLog, address_of
from golive.stream import Disconnect, Publisher, PublishRefused, PublishTarget, RefusalReason

__all__ = [
    "AccessHook",
    "AccessQuestion",
    "HookDecision",
    "HookedPublishTarget",
    "StreamHook",
]

log = logging.getLogger(__name__)

HookAction = Literal["publish", "play", "chat"]
MAX_ANSWER_BYTES = 16 * 1024
MAX_REASON_LENGTH = 300
MAX_CACHE_SECONDS = 24 * 3600
DEFAULT_CACHE_SECONDS = 60.0
FAILURE_TTL = 30.0
MAX_SESSIONS = 100_000
MAX_HEADER_VALUE = 1000  # user agent and referrer, as sent to the hook


@dataclass(frozen=True, slots=True)
class AccessQuestion:
    """What golive tells an access hook about a request."""

    action: HookAction
    protocol: str  # rtmp, srt, whip (publish); hls, whep, page (play); chat
    stream_id: str
    playback_id: str | None
    remote_address: str
    user_agent: str = ""
    referrer: str = ""
    claims: Mapping[str, Any] | None = None

    def body(self) -> bytes:
        return json.dumps({
            "action": self.action,
            "protocol": self.protocol,
            "stream_id": self.stream_id,
            "playback_id": self.playback_id,
            "remote_address": self.remote_address,
            "user_agent": self.user_agent[:MAX_HEADER_VALUE],
            "referrer": self.referrer[:MAX_HEADER_VALUE],
            "token_claims": dict(self.claims) if self.claims is not None else None,
        }, default=str).encode()


@dataclass(frozen=True, slots=True)
class HookDecision:
    allowed: bool
    reason: str
    cache_seconds: float
    failed: bool = False  # the hook did not answer usably; fail_open decided


class _HookFailure(Exception):
    pass


class AccessHook:
    """The node's access hook client: bounded calls, a per-session decision cache."""

    def __init__(self, *, timeout: float, fail_open: bool,
                 client: httpx.AsyncClient | None = None, max_sessions: int = MAX_SESSIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout = timeout
        self._fail_open = fail_open
        self._client = client or httpx.AsyncClient(follow_redirects=False)
        self._own_client = client is None
        self._max_sessions = max_sessions
        self._clock = clock
        self._decisions: OrderedDict[tuple[str, ...], tuple[float, HookDecision]] = OrderedDict()
        self._asking: dict[tuple[str, ...], asyncio.Future[HookDecision]] = {}
        self._log = RepeatedLog(log)
        self.calls = 0  # requests sent to hooks
        self.errors = 0  # of which failed: timeout, refused connection, non-2xx, bad answer

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def ask(self, url: str, question: AccessQuestion, session: str) -> HookDecision:
        """The hook's decision for this session, from the cache while it lasts."""
        key = (url, question.action, question.stream_id, question.playback_id or "", session)
        cached = self._decisions.get(key)
        if cached is not None:
            if self._clock() < cached[0]:
                return cached[1]
            del self._decisions[key]
        pending = self._asking.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[HookDecision] = asyncio.get_running_loop().create_future()
        self._asking[key] = future
        try:
            decision = await self._call(url, question)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # waiters, if any, re-raise it; nobody else must see it
            raise
        finally:
            del self._asking[key]
        future.set_result(decision)
        ttl = FAILURE_TTL if decision.failed else decision.cache_seconds
        if ttl > 0:
            self._decisions[key] = (self._clock() + ttl, decision)
            while len(self._decisions) > self._max_sessions:
                self._decisions.popitem(last=False)
        return decision

    async def _call(self, url: str, question: AccessQuestion) -> HookDecision:
        self.calls += 1
        started = self._clock()
        try:
            async with asyncio.timeout(self._timeout):
                answer = await self._post(url, question.body())
            return _decision(answer)
        except (TimeoutError, httpx.HTTPError, _HookFailure) as exc:
            self.errors += 1
            what = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            self._log.warning(url, started,
                              "access hook failed url=%s action=%s stream_id=%s error=%s "
                              "fail_open=%s", url, question.action, question.stream_id, what,
                              self._fail_open)
            if self._fail_open:
                return HookDecision(True, "", FAILURE_TTL, failed=True)
            return HookDecision(False, f"the access hook did not answer ({what})", FAILURE_TTL,
                                failed=True)

    async def _post(self, url: str, body: bytes) -> Any:
        headers = {"content-type": "application/json", "user-agent": "golive-access-hook"}
        async with self._client.stream("POST", url, content=body, headers=headers) as response:
            if not 200 <= response.status_code < 300:
                raise _HookFailure(f"HTTP {response.status_code}")
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > MAX_ANSWER_BYTES:
                    raise _HookFailure(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        try:
            return json.loads(data)
        except ValueError:
            raise _HookFailure("answer is not JSON") from None


def _decision(answer: Any) -> HookDecision:
    if not isinstance(answer, dict) or not isinstance(answer.get("allow"), bool):
        raise _HookFailure('answer must be a JSON object with "allow": true or false')
    reason = answer.get("reason", "")
    if not isinstance(reason, str):
        raise _HookFailure('"reason" must be a string')
    cache = answer.get("cache_seconds", DEFAULT_CACHE_SECONDS)
    if isinstance(cache, bool) or not isinstance(cache, int | float) or not math.isfinite(cache):
        raise _HookFailure('"cache_seconds" must be a number')
    return HookDecision(answer["allow"], reason[:MAX_REASON_LENGTH],
                        min(max(0.0, float(cache)), MAX_CACHE_SECONDS))


@dataclass(frozen=True, slots=True)
class StreamHook:
    """The stream a stream key opens, and its own access hook URL (None: the node's)."""

    stream_id: str
    hook_url: str | None


class HookedPublishTarget:
    """A `PublishTarget` that asks the stream's access hook before a publisher goes live.

    Unknown keys pass straight to the hub, which refuses them (and the throttle in
    front counts them); the hook only ever hears about real streams.
    """

    def __init__(self, target: PublishTarget, hook: AccessHook, *, default_url: str | None,
                 stream_of_key: Callable[[str], Awaitable[StreamHook | None]]) -> None:
        self._target = target
        self._hook = hook
        self._default_url = default_url
        self._stream_of_key = stream_of_key

    async def open_publisher(
        self,
        stream_key: str,
        *,
        protocol: str,
        remote_address: str,
        disconnect: Disconnect | None = None,
    ) -> Publisher:
        found = await self._stream_of_key(stream_key)
        url = None if found is None else found.hook_url or self._default_url
        if found is not None and url:
            address = address_of(remote_address)
            decision = await self._hook.ask(
                url, AccessQuestion("publish", protocol, found.stream_id, None, address),
                session=address)
            if not decision.allowed:
                log.info("publish refused by access hook stream_id=%s protocol=%s address=%s "
                         "reason=%s", found.stream_id, protocol, address, decision.reason)
                raise PublishRefused(RefusalReason.ACCESS_DENIED,
                                     f"access hook: {decision.reason or 'denied'}")
        return await self._target.open_publisher(
            stream_key, protocol=protocol, remote_address=remote_address, disconnect=disconnect)
