"""The chat's HTTP surface at the site root: WebSocket `/chat/PLAYBACK_ID` and the identity cookie (chat).

Identity, in order: a chat token (`?token=`, minted with `POST /api/v1/chat-tokens`),
else the signed `golive_chat` cookie or `?identity=` (the same signed value), else
none: the viewer reads along and sends `{"type": "join", "name": ...}` before
chatting. A join answers with `{"type": "identity", "user", "token"}`; a page keeps
the name across visits either by storing that token and passing it as
`?identity=`, or by calling `POST /chat/PLAYBACK_ID/identity {"name": ...}`, which
sets the cookie (HttpOnly) before it opens the socket.

The chat of a signed playback id is closed to anyone without a signed playback token
for chat (`aud` c, `?playback_token=JWT`): the socket is refused with 4403 and a reason.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from golive.chat.frames import error_frame
from golive.chat.identity import (
    COOKIE_NAME,
    RESERVED_NAMES,
    ChatUser,
    InvalidIdentity,
    name_key,
    new_anonymous_id,
    validate_display_name,
)
from golive.chat.room import (
    CLOSE_BAD_TOKEN,
    CLOSE_FORBIDDEN,
    CLOSE_FULL,
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_UNKNOWN_ROOM,
    ChatConnection,
    frame_budget,
)
from golive.chat.service import ChatService
from golive.chat.transport import raw_channel
from golive.core import RepeatedLog
from golive.delivery import Refusal, Viewer

log = logging.getLogger(__name__)

COOKIE_MAX_AGE = 365 * 24 * 3600
def chat_routes(service: ChatService) -> list[BaseRoute]:
    """Routes for the root application: the chat WebSocket and the identity endpoint."""
    settings = service.settings
    frame_rate, frame_burst = frame_budget(settings.chat_user_rate, settings.chat_user_burst)
    refusals = RepeatedLog(log)  # a flood of sockets must not flood the log too

    def identity_of(connection: HTTPConnection) -> ChatUser | None:
        value = connection.query_params.get("identity") or connection.cookies.get(COOKIE_NAME)
        if not value:
            return None
        try:
            return service.signer.read_identity(value)
        except InvalidIdentity:
            return None  # a stale or forged cookie: the viewer just joins again

    async def refuse(websocket: WebSocket, code: int, reason: str) -> None:
        await websocket.send_text(json.dumps(error_frame(reason)))
        await websocket.close(code, reason)

    async def chat_socket(websocket: WebSocket) -> None:
        playback_id = websocket.path_params["playback_id"]
        await websocket.accept()
        if service.connection_count >= service.max_connections:
            await refuse(websocket, CLOSE_FULL, "chat server is full; try again later")
            return
        # Behind trusted_proxies, the forwarded client (the HTTP server resolves it).
        ip = websocket.client.host if websocket.client else ""
        if not service.addresses.take(ip):
            refusals.warning(ip, asyncio.get_running_loop().time(),
                             "chat connection refused ip=%s reason=per_address_limit limit=%d",
                             ip, service.addresses.limit)
            await refuse(websocket, CLOSE_POLICY, "too many chat connections from your address")
            return
        try:
            await serve(websocket, playback_id, ip)
        finally:
            service.addresses.give_back(ip)

    async def serve(websocket: WebSocket, playback_id: str, ip: str) -> None:
        if service.access is not None:
            # A signed playback id's chat needs a playback token for chat (aud c); what is
            # refused is the same whether or not the stream is live.
            verdict = await service.access.check(
                playback_id, websocket.query_params.get("playback_token") or None,
                audience="c", viewer=Viewer("chat", ip, websocket.headers.get("user-agent", "")),
                referrer=websocket.headers.get("referer") or websocket.headers.get("origin"),
                own_host=websocket.headers.get("host"))
            if isinstance(verdict, Refusal):
                code = CLOSE_UNKNOWN_ROOM if verdict.status == 404 else CLOSE_FORBIDDEN
                await refuse(websocket, code, verdict.reason)
                return
        room = await service.open_room(playback_id)
        if room is None:
            await refuse(websocket, CLOSE_UNKNOWN_ROOM, f"no chat for playback id {playback_id!r}")
            return
        user: ChatUser | None
        token = websocket.query_params.get("token")
        if token:
            try:
                user = service.signer.read_token(token)
                if user.stream_id is not None and user.stream_id != room.stream_id:
                    raise InvalidIdentity("chat token is for another stream")
            except InvalidIdentity as exc:
                service.release(room)
                await refuse(websocket, CLOSE_BAD_TOKEN, str(exc))
                return
        else:
            user = identity_of(websocket)
        connection = ChatConnection(websocket, user, ip,
                                    queue_size=settings.chat_send_queue,
                                    raw=raw_channel(websocket.scope),
                                    frame_rate=frame_rate, frame_burst=frame_burst)
        connection.start()
        code, reason = CLOSE_GOING_AWAY, ""
        try:
            await service.enter(room, connection)
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    connection.bad_frames += 1
                    service.reply(connection, error_frame("send JSON text frames, not binary"))
                else:
                    await service.handle_frame(connection, text)
                if connection.bad_frames >= settings.chat_max_bad_frames:
                    code, reason = CLOSE_POLICY, "too many invalid frames"
                    break
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if connection.dropped is None or task is None:
                raise
            task.uncancel()  # cancelled by `ChatConnection.drop`, not by shutdown
            code, reason = connection.close_code, connection.dropped
        finally:
            service.leave(connection)
        await connection.finish(code, reason)

    async def set_identity(request: Request) -> JSONResponse:
        if await service.store.find_stream_by_playback_id(
            request.path_params["playback_id"]
        ) is None:
            return JSONResponse({"error": {"type": "not_found",
                                           "messages": ["no chat for this playback id"]}}, 404)
        try:
            body = await request.json()
            name = validate_display_name(body.get("name") if isinstance(body, dict) else None)
            if name_key(name) in RESERVED_NAMES:
                raise InvalidIdentity("this name is kept for the streamer; pick another")
        except (ValueError, InvalidIdentity) as exc:
            message = str(exc) if isinstance(exc, InvalidIdentity) else "body must be JSON"
            return JSONResponse({"error": {"type": "invalid_parameters",
                                           "messages": [f"name: {message}"]}}, 422)
        previous = identity_of(request)
        user = ChatUser(id=previous.id if previous else new_anonymous_id(), name=name)
        value = service.signer.sign_identity(user)
        response = JSONResponse({"user": {"id": user.id, "name": user.name}, "token": value})
        response.set_cookie(COOKIE_NAME, value, max_age=COOKIE_MAX_AGE, path="/chat",
                            httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")
        return response

    return [
        WebSocketRoute("/chat/{playback_id}", chat_socket),
        Route("/chat/{playback_id}/identity", set_identity, methods=["POST"]),
    ]
