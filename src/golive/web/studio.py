"""The streamer's studio at `/studio`: login with an API token, streams, ingest health, chat,
the audit log (web).

The browser never holds the API token. A login checks the token exactly as the API
does (`Authenticator.authenticate`, admin scope) and keeps it in a server-side session
(`golive.web.session`); the pages call same-origin JSON endpoints under
`/studio/api/`, which check the session cookie and the CSRF header and then forward
the request in-process to the REST API app with the session's token. So the studio
can do exactly what the API allows, with the API's validation and events, and a
revoked token ends the studio session on its next request. Logins are throttled per
source address with the API's own budget (`Authenticator.authenticate_from`): an
address that keeps pasting wrong tokens is answered 429 with `Retry-After`.

The forwarded request's path comes only from the allowlisted route, on the API
client's fixed base URL; nothing the browser sends (its Host header included) can
turn a studio call into another API route such as `/tokens`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from golive.api import STUDIO_CLIENT_HEADER, Authenticator, Throttled
from golive.chat import InvalidIdentity, validate_display_name
from golive.web.assets import AssetCatalog, page_templates
from golive.web.session import (
    SESSION_COOKIE,
    SessionBook,
    SessionSigner,
    StudioSession,
    StudioSessions,
)

log = logging.getLogger(__name__)

CSRF_HEADER = "x-csrf-token"
MAX_FORM_BYTES = 8 * 1024
MAX_BODY_BYTES = 64 * 1024
MAX_TOKEN_LENGTH = 4096
STREAM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# What the studio's pages may ask the API for; nothing else (tokens, playback ids) passes.
FORWARDED = re.compile(
    r"live-streams(/[A-Za-z0-9_-]{1,64}(/(reset-stream-key|enable|disable|events|alerts|qoe"
    r"|destinations"  # read: the stream page's list of simulcast targets and their state
    r"|broadcasts"  # read: past broadcasts, each with a link to its report page
    r"|preflight|preflights(/[A-Za-z0-9_-]{1,64})?"
    r"|chat(/(messages(/[0-9]{1,18})?|bans(/[A-Za-z0-9_-]{1,64})?|clear))?))?)?"
    r"|audit"  # read-only: the audit log's table on the streams page
    r"|assets(/[A-Za-z0-9_-]{1,64})?"  # a stream's recordings: list, play, download, delete
    r"|signing-keys(/[A-Za-z0-9_-]{1,64})?"  # list, create (private key shown once), delete
)
# Routes the studio calls for itself, beyond what its pages may forward.
INTERNAL = re.compile(r"chat-tokens|broadcasts/[A-Za-z0-9_-]{1,64}/report\.html")
# The report page keeps the API's own headers (its strict Content-Security-Policy).
REPORT_PAGE_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy",
                       "cache-control")
FORWARDED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# A Host header worth showing back in ingest URLs: a name or address and a port, no more.
SHOWN_HOST = re.compile(r"([A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}(:[0-9]{1,5})?"
                        r"|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}
JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class Studio:
    """The studio's pages, its login session and its forwarding JSON endpoints."""

    def __init__(self, *, auth: Authenticator, api: httpx.AsyncClient, secret: bytes,
                 assets: AssetCatalog, sessions: SessionBook | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`api` reaches the REST API app (in process) at a fixed base URL; its owner closes it.
        `sessions` defaults to this node's memory; a cluster passes one backed by Redis."""
        self.auth = auth
        self.signer = SessionSigner(secret)
        self.sessions = sessions if sessions is not None else SessionBook(StudioSessions())
        self.assets = assets
        self._clock = clock
        self._api = api
        self._templates = page_templates(self.assets)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/studio", self.streams_page, methods=["GET", "HEAD"]),
            Route("/studio/login", self.login_page, methods=["GET", "HEAD"]),
            Route("/studio/login", self.login, methods=["POST"]),
            Route("/studio/logout", self.logout, methods=["POST"]),
            Route("/studio/streams/{stream_id}", self.stream_page, methods=["GET", "HEAD"]),
            Route("/studio/broadcasts/{broadcast_id}/report", self.report_page,
                  methods=["GET", "HEAD"]),
            Route("/studio/api/chat-token/{stream_id}", self.chat_token, methods=["POST"]),
            Route("/studio/api/{path:path}", self.forward, methods=FORWARDED_METHODS),
        ]

    # Sessions ----------------------------------------------------------------------------

    async def session_of(self, request: Request) -> StudioSession | None:
        value = request.cookies.get(SESSION_COOKIE)
        if not value:
            return None
        now = self._clock()
        session_id = self.signer.read(value, now)
        return await self.sessions.get(session_id, now) if session_id else None

    def _set_cookie(self, response: Response, request: Request, session: StudioSession) -> None:
        response.set_cookie(
            SESSION_COOKIE, self.signer.sign(session.id, session.expires_at),
            max_age=round(session.expires_at - self._clock()), path="/studio",
            httponly=True, samesite="strict", secure=request.url.scheme == "https",
        )

    @staticmethod
    def _clear_cookie(response: Response, request: Request) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/studio", httponly=True,
                               samesite="strict", secure=request.url.scheme == "https")

    @staticmethod
    def _same_origin(request: Request) -> bool:
        """Forms posted from another site are refused (login CSRF, forced logout)."""
        origin = request.headers.get("origin")
        if origin is not None:
            return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"
        return request.headers.get("sec-fetch-site", "same-origin") in {"same-origin", "none"}

    # Pages -------------------------------------------------------------------------------

    def _render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self._templates.get_template(name).render(**context)
        return HTMLResponse(html, status, headers=dict(PAGE_HEADERS))

    def _login_redirect(self) -> Response:
        return RedirectResponse("/studio/login", 303, headers={"Cache-Control": "no-store"})

    def _page_context(self, session: StudioSession) -> dict[str, Any]:
        return {"who": session.name, "csrf": self.signer.csrf_token(session.id)}

    async def login_page(self, request: Request) -> Response:
        if await self.session_of(request) is not None:
            return RedirectResponse("/studio", 303)
        return self._render("studio_login.html")

    async def login(self, request: Request) -> Response:
        if not self._same_origin(request):
            return self._render("studio_login.html", 403,
                                error="This login form was sent from another site.")
        body = await _read_body(request, MAX_FORM_BYTES)
        token = ""
        if body is not None:
            token = (parse_qs(body.decode("utf-8", "replace")).get("token") or [""])[0].strip()
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return self._render("studio_login.html", 400, error="Paste an API token to sign in.")
        remote = request.client.host if request.client else ""
        try:
            principal = await self.auth.authenticate_from(token, remote, surface="studio")
        except Throttled as throttled:
            page = self._render("studio_login.html", 429,
                                error="Too many wrong tokens from this address; "
                                      f"try again in {throttled.retry_after:.0f} s.")
            page.headers.update(throttled.header)
            return page
        if principal is None:
            log.info("studio login refused reason=invalid_token")
            return self._render("studio_login.html", 401,
                                error="That token is not valid, or it was revoked.")
        if not principal.allows("admin"):
            return self._render("studio_login.html", 403,
                                error=f"The token {principal.name!r} lacks the admin scope; "
                                      "the studio needs an admin token.")
        session = await self.sessions.create(token, principal.name, self._clock())
        log.info("studio login token=%s", principal.name)
        response = RedirectResponse("/studio", 303, headers={"Cache-Control": "no-store"})
        self._set_cookie(response, request, session)
        return response

    async def logout(self, request: Request) -> Response:
        session = await self.session_of(request)
        if session is not None:
            body = await _read_body(request, MAX_FORM_BYTES) or b""
            csrf = (parse_qs(body.decode("utf-8", "replace")).get("csrf") or [""])[0]
            if not self._same_origin(request) or not self.signer.check_csrf(session.id, csrf):
                return JSONResponse({"error": "bad CSRF token"}, 403, headers=JSON_HEADERS)
            await self.sessions.drop(session.id)
        response = self._login_redirect()
        self._clear_cookie(response, request)
        return response

    async def streams_page(self, request: Request) -> Response:
        session = await self.session_of(request)
        if session is None:
            return self._login_redirect()
        return self._render("studio_streams.html", **self._page_context(session))

    async def stream_page(self, request: Request) -> Response:
        session = await self.session_of(request)
        if session is None:
            return self._login_redirect()
        stream_id = request.path_params["stream_id"]
        if not STREAM_ID.fullmatch(stream_id):
            return self._render("message.html", 404, title="Stream not found",
                                text="There is no stream at this address.", embed=False)
        answer = await self._call(request, session, "GET", f"/live-streams/{stream_id}")
        if answer.status_code == 401:
            await self.sessions.drop(session.id)
            return self._login_redirect()
        if answer.status_code != 200:
            return self._render("message.html", 404, title="Stream not found",
                                text="There is no stream at this address; it may have been "
                                     "deleted.", embed=False)
        stream: dict[str, Any] = answer.json()["data"]
        ids = stream.get("playback_ids") or []
        public = next((p["id"] for p in ids if p.get("policy") == "public"), None)
        chat_id = ids[0]["id"] if ids else None
        player = None
        if public is not None:
            player = {
                "playbackId": public, "title": stream["name"],
                "manifestUrl": f"/live/{public}.m3u8",
                "statusUrl": f"/watch/{public}/status", "qoeUrl": f"/qoe/{public}",
                "chatUrl": f"/chat/{public}", "live": stream["status"] == "active",
            }
        studio = {"streamId": stream_id, "chatUrl": f"/chat/{chat_id}" if chat_id else None,
                  "whipUrl": f"{request.url.scheme}://{request.headers.get('host', '')}/whip"}
        return self._render("studio_stream.html", stream=stream, config=player, studio=studio,
                            watch_url=f"/watch/{public}" if public else None,
                            **self._page_context(session))

    async def report_page(self, request: Request) -> Response:
        """A finished broadcast's report: the API's self-contained page, served as the
        API serves it (its Content-Security-Policy allows no script and no request)."""
        session = await self.session_of(request)
        if session is None:
            return self._login_redirect()
        broadcast_id = request.path_params["broadcast_id"]
        if not STREAM_ID.fullmatch(broadcast_id):
            return self._render("message.html", 404, title="Broadcast not found",
                                text="There is no broadcast at this address.", embed=False)
        answer = await self._call(request, session, "GET",
                                  f"/broadcasts/{broadcast_id}/report.html")
        if answer.status_code == 401:
            await self.sessions.drop(session.id)
            return self._login_redirect()
        if answer.status_code == 409:
            return self._render("message.html", 409, title="Still live",
                                text="This broadcast is still live; its report exists once "
                                     "it ends.", embed=False)
        if answer.status_code != 200:
            return self._render("message.html", 404, title="Broadcast not found",
                                text="There is no broadcast at this address; its stream may "
                                     "have been deleted.", embed=False)
        headers = {name: answer.headers[name] for name in REPORT_PAGE_HEADERS
                   if name in answer.headers}
        return HTMLResponse(answer.text, headers={**headers, "X-Frame-Options": "DENY"})

    # JSON endpoints ----------------------------------------------------------------------

    async def _guard(self, request: Request) -> StudioSession | Response:
        session = await self.session_of(request)
        if session is None:
            return JSONResponse({"error": "not signed in"}, 401, headers=JSON_HEADERS)
        if not self.signer.check_csrf(session.id, request.headers.get(CSRF_HEADER)):
            return JSONResponse({"error": "bad or missing CSRF token"}, 403, headers=JSON_HEADERS)
        return session

    async def _call(self, request: Request, session: StudioSession, method: str, path: str,
                    *, query: str = "", body: bytes | None = None,
                    content_type: str | None = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {session.token}", "accept": "application/json",
                   # The audit log says where the browser was (believed in process only).
                   STUDIO_CLIENT_HEADER: request.client.host if request.client else ""}
        # The API shows ingest URLs with the host the browser used; only a plain
        # host[:port] passes, and it never takes part in choosing the route.
        host = request.headers.get("host", "")
        if SHOWN_HOST.fullmatch(host):
            headers["host"] = host
        if content_type:
            headers["content-type"] = content_type
        outgoing = self._api.build_request(
            method, path, params=httpx.QueryParams(query), headers=headers, content=body
        )
        # The allowlist holds for the route actually called, whatever `path` looked like.
        called = outgoing.url.path.removeprefix(self._api.base_url.path.rstrip("/") + "/")
        if not (FORWARDED.fullmatch(called) or INTERNAL.fullmatch(called)):
            log.warning("studio refused an API call outside its allowlist method=%s", method)
            return httpx.Response(404, json={"error": "not available from the studio"})
        return await self._api.send(outgoing)

    async def _relay(self, session: StudioSession, answer: httpx.Response) -> Response:
        if answer.status_code == 401:
            # The token was revoked (or the admin token changed): the session ends with it.
            await self.sessions.drop(session.id)
        headers = dict(JSON_HEADERS)
        content_type = answer.headers.get("content-type")
        if content_type:
            headers["content-type"] = content_type
        return Response(answer.content, answer.status_code, headers=headers)

    async def forward(self, request: Request) -> Response:
        guarded = await self._guard(request)
        if isinstance(guarded, Response):
            return guarded
        path = request.path_params["path"]
        if not FORWARDED.fullmatch(path):
            return JSONResponse({"error": "not available from the studio"}, 404,
                                headers=JSON_HEADERS)
        body = await _read_body(request, MAX_BODY_BYTES)
        if body is None:
            return JSONResponse({"error": f"body must be at most {MAX_BODY_BYTES} bytes"}, 413,
                                headers=JSON_HEADERS)
        answer = await self._call(request, guarded, request.method, f"/{quote(path)}",
                                  query=request.url.query, body=body or None,
                                  content_type=request.headers.get("content-type"))
        return await self._relay(guarded, answer)

    async def chat_token(self, request: Request) -> Response:
        """A moderator chat token for the signed-in user, for one stream's chat."""
        guarded = await self._guard(request)
        if isinstance(guarded, Response):
            return guarded
        stream_id = request.path_params["stream_id"]
        if not STREAM_ID.fullmatch(stream_id):
            return JSONResponse({"error": "unknown stream"}, 404, headers=JSON_HEADERS)
        ttl = max(60, int(guarded.expires_at - self._clock()))
        body = {
            "user_id": "studio_" + hashlib.sha256(guarded.name.encode()).hexdigest()[:16],
            "display_name": _chat_name(guarded.name),
            "capabilities": ["send", "moderate"],
            "ttl": ttl,
            "stream_id": stream_id,
        }
        answer = await self._call(request, guarded, "POST", "/chat-tokens",
                                  body=json.dumps(body).encode(),
                                  content_type="application/json")
        return await self._relay(guarded, answer)


def _chat_name(token_name: str) -> str:
    if token_name == "admin_token":
        return "Host"
    try:
        return validate_display_name(token_name[:32])
    except InvalidIdentity:
        return "Host"


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def studio_routes(studio: Studio) -> list[BaseRoute]:
    """The studio's routes, for the composition root to add to the site root."""
    return studio.routes()
