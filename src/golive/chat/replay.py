"""`GET /chat/PLAYBACK_ID/replay`: a stream's chat for a time range, for replay beside video (chat).

Query: `from` and `to` (Unix seconds, the player's program date-time), optional
`limit` (1..200, default 100) and `after` (the `next` cursor of the previous page).
Answers `{"messages": [message frames, oldest first], "next": cursor | null}` with
only undeleted messages. A live stream's playback id or a ready asset's (the chat of
the stream it recorded) may be asked. Public like the watch page; a signed playback id
(a signed stream's, or its recording's) needs a playback token for chat (`aud` c) as
`?playback_token=JWT`, as its live chat does, and is refused with the reason without one.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from golive.chat.history import ReplayRequestError, replay_page
from golive.chat.service import ChatService
from golive.delivery import Refusal, Viewer
from golive.store import AssetRecord

_PLAYBACK_ID = re.compile(r"[A-Za-z0-9]{1,64}")
_SECONDS = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,6})?")  # up to the year 2286
_LIMIT = re.compile(r"[0-9]{1,4}")
MAX_CURSOR_LENGTH = 40
MAX_TOKEN_LENGTH = 4096
# A range that ended a while ago changes only when a moderator deletes a message, so an
# edge may keep it briefly: a crowd replaying one recording costs one query per page.
SETTLED_AFTER = 10.0
SETTLED_CACHE = "public, max-age=30"
SETTLED_PRIVATE_CACHE = "private, max-age=30"
HEADERS = {"Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff"}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers={**HEADERS, "Cache-Control": "no-store"})


def _seconds(request: Request, name: str) -> float:
    value = request.query_params.get(name)
    if value is None or not _SECONDS.fullmatch(value):
        raise ReplayRequestError(f"{name} must be Unix seconds, like 1764864000.5")
    return float(value)


class RecordedAssets(Protocol):
    """Recorded assets by playback id (the recording library): an asset's page replays
    the chat of the stream it was recorded from."""

    async def asset_for_playback(self, playback_id: str) -> AssetRecord | None: ...


async def _stream_of(service: ChatService, assets: RecordedAssets | None,
                     playback_id: str) -> tuple[str, str] | None:
    """(stream id, playback policy) of a live stream's or a ready asset's playback id."""
    found = await service.store.find_stream_by_playback_id(playback_id)
    if found is not None:
        return found[0].id, found[1].policy
    asset = await assets.asset_for_playback(playback_id) if assets is not None else None
    if asset is None or asset.status != "ready":
        return None
    return asset.stream_id, asset.playback_policy


async def _refusal(service: ChatService, request: Request, playback_id: str
                   ) -> Refusal | None:
    """Why this request may not replay the chat (None: it may): the live chat's gate."""
    assert service.access is not None
    token = request.query_params.get("playback_token") or None
    if token is not None and len(token) > MAX_TOKEN_LENGTH:
        raise ReplayRequestError("playback_token is too long")
    viewer = Viewer("chat", request.client.host if request.client else "",
                    request.headers.get("user-agent", ""))
    verdict = await service.access.check(
        playback_id, token, audience="c", viewer=viewer,
        referrer=request.headers.get("referer") or request.headers.get("origin"),
        own_host=request.headers.get("host"))
    return verdict if isinstance(verdict, Refusal) else None


def replay_routes(service: ChatService, assets: RecordedAssets | None = None
                  ) -> list[BaseRoute]:
    """The replay endpoint, for the composition root to add beside `chat_routes`."""

    async def replay(request: Request) -> Response:
        playback_id = request.path_params["playback_id"]
        if not _PLAYBACK_ID.fullmatch(playback_id):
            return _error(404, "unknown playback id")
        query = request.query_params
        try:
            start, end = _seconds(request, "from"), _seconds(request, "to")
            limit_text = query.get("limit", "100")
            if not _LIMIT.fullmatch(limit_text):
                raise ReplayRequestError("limit must be a whole number")
            after = query.get("after")
            if after is not None and len(after) > MAX_CURSOR_LENGTH:
                raise ReplayRequestError("after must be a cursor returned as next")
            found = await _stream_of(service, assets, playback_id)
            if found is None:
                return _error(404, "unknown playback id")
            stream_id, policy = found
            if service.access is not None:
                refusal = await _refusal(service, request, playback_id)
                if refusal is not None:
                    return _error(refusal.status, refusal.reason)
            elif policy != "public":
                return _error(403, "chat replay of a signed playback id needs token checks, "
                                   "which this node does not run")
            page = await replay_page(
                service.messages, stream_id,
                start=datetime.fromtimestamp(start, UTC), end=datetime.fromtimestamp(end, UTC),
                after=after, limit=int(limit_text))
        except ReplayRequestError as exc:
            return _error(400, str(exc))
        settled = end < time.time() - SETTLED_AFTER
        cache = "no-cache"
        if settled:
            # A signed id's chat is the token holder's: no shared cache keeps it.
            cache = SETTLED_CACHE if policy == "public" else SETTLED_PRIVATE_CACHE
        return JSONResponse({"messages": page.frames, "next": page.next_cursor},
                            headers={**HEADERS,
                                     "Cache-Control": cache})

    return [Route("/chat/{playback_id}/replay", replay, methods=["GET", "HEAD"])]
