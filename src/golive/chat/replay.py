"""`GET /chat/PLAYBACK_ID/replay`: a stream's chat for a time range, for replay beside video (chat).

Query: `from` and `to` (Unix seconds, the player's program date-time), optional
`limit` (1..200, default 100) and `after` (the `next` cursor of the previous page).
Answers `{"messages": [message frames, oldest first], "next": cursor | null}` with
only undeleted messages. A live stream's playback id or a ready asset's (the chat of
the stream it recorded) may be asked. Public like the watch page; signed playback ids are refused
until playback tokens are checked here too.
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
from golive.store import AssetRecord

_PLAYBACK_ID = re.compile(r"[A-Za-z0-9]{1,64}")
_SECONDS = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,6})?")  # up to the year 2286
_LIMIT = re.compile(r"[0-9]{1,4}")
MAX_CURSOR_LENGTH = 40
# A range that ended a while ago changes only when a moderator deletes a message, so an
# edge may keep it briefly: a crowd replaying one recording costs one query per page.
SETTLED_AFTER = 10.0
SETTLED_CACHE = "public, max-age=30"
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
            if policy != "public":
                return _error(403, "chat replay serves public playback ids only")
            page = await replay_page(
                service.messages, stream_id,
                start=datetime.fromtimestamp(start, UTC), end=datetime.fromtimestamp(end, UTC),
                after=after, limit=int(limit_text))
        except ReplayRequestError as exc:
            return _error(400, str(exc))
        settled = end < time.time() - SETTLED_AFTER
        return JSONResponse({"messages": page.frames, "next": page.next_cursor},
                            headers={**HEADERS,
                                     "Cache-Control": SETTLED_CACHE if settled else "no-cache"})

    return [Route("/chat/{playback_id}/replay", replay, methods=["GET", "HEAD"])]
