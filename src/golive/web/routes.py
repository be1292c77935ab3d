"""HTTP routes of the viewer-facing pages: watch, embed, live status, QoE intake, assets (web).

Pages are rendered on the server from Jinja2 templates (autoescaped); the player and
the chat are small ES modules under `static/`. Everything a crowd hits at once (the
status poll, the playback id lookup) is answered from a short in-process cache and
carries cache headers an edge can collapse on.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from golive.store import PlaybackIdRecord, PlaybackViewStore, Store, StreamRecord, ViewConflict
from golive.web.assets import HLS_JS, AssetCatalog
from golive.web.qoe import (
    MAX_BODY_BYTES,
    BatchError,
    QoeIntake,
    parse_batch,
    server_events,
    utc_now,
)

if TYPE_CHECKING:
    from golive.packaging import Presentation

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
PLAYBACK_ID = re.compile(r"[A-Za-z0-9]{1,64}")
LOOKUP_TTL = 2.0
STATUS_TTL = 1.0
CACHE_ENTRIES = 10_000
MAX_TOKEN_LENGTH = 4096
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Content-Type-Options": "nosniff",
}

Lookup = tuple[StreamRecord, PlaybackIdRecord] | None


class LivePresentations(Protocol):
    """Where the pages learn whether a playback id is live right now (the live pipeline)."""

    def presentation(self, playback_id: str) -> Presentation | None: ...


class _TtlCache:
    """A small bounded cache of values that may be a second or two stale."""

    def __init__(self, ttl: float, size: int = CACHE_ENTRIES) -> None:
        self._ttl = ttl
        self._size = size
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    async def get(self, key: str, load: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        value = await load()
        self._entries.pop(key, None)
        self._entries[key] = (now, value)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return value


class WebPages:
    """The watch and embed pages and their small JSON endpoints."""

    def __init__(self, store: Store, live: LivePresentations, *, views: PlaybackViewStore,
                 assets: AssetCatalog,
                 realtime_ice_servers: list[dict[str, str]] | None = None) -> None:
        self.store = store
        # Set when the node plays WHEP: pages of streams with `webrtc_playback` offer
        # "Real-time", and the browser's RTCPeerConnection gets these ICE servers (none:
        # host only).
        self.realtime_ice_servers = realtime_ice_servers
        self.views = views
        self.live = live
        self.assets = assets
        # QoE admission (per address, per stream, per view) and the viewer count.
        self.qoe_intake = QoeIntake()
        self.viewers = self.qoe_intake.viewers
        self._lookups = _TtlCache(LOOKUP_TTL)
        self._statuses = _TtlCache(STATUS_TTL)
        self._templates = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._templates.globals["asset"] = self.assets.url
        self._templates.globals["import_map"] = self.assets.import_map
        self._templates.globals["has_hls_js"] = HLS_JS in self.assets

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/watch/{playback_id}", self.watch, methods=["GET", "HEAD"]),
            Route("/watch/{playback_id}/status", self.status, methods=["GET", "HEAD"]),
            Route("/embed/{playback_id}", self.embed, methods=["GET", "HEAD"]),
            Route("/qoe/{playback_id}", self.qoe, methods=["POST"]),
            Route("/static/{path:path}", self.assets.endpoint, methods=["GET", "HEAD"]),
        ]

    # Lookups ---------------------------------------------------------------------------

    async def lookup(self, playback_id: str) -> Lookup:
        if not PLAYBACK_ID.fullmatch(playback_id):
            return None

        async def load() -> Lookup:
            return await self.store.find_stream_by_playback_id(playback_id)

        found: Lookup = await self._lookups.get(playback_id, load)
        return found

    def is_live(self, playback_id: str) -> bool:
        presentation = self.live.presentation(playback_id)
        return (presentation is not None and not presentation.ended
                and presentation.multivariant_playlist() is not None)

    # Pages -----------------------------------------------------------------------------

    def _render(self, name: str, status: int = 200, headers: dict[str, str] | None = None,
                **context: Any) -> HTMLResponse:
        html = self._templates.get_template(name).render(**context)
        return HTMLResponse(html, status, headers={**PAGE_HEADERS, **(headers or {})})

    def _message(self, status: int, title: str, text: str, *, embed: bool = False
                 ) -> HTMLResponse:
        headers = {"Content-Security-Policy": "frame-ancestors *"} if embed else None
        return self._render("message.html", status, headers, title=title, text=text,
                            embed=embed)

    async def _page(self, request: Request, *, embed: bool) -> Response:
        playback_id = request.path_params["playback_id"]
        found = await self.lookup(playback_id)
        if found is None:
            return self._message(404, "Stream not found",
                                 "There is no stream at this address. Check the link.",
                                 embed=embed)
        stream, pid = found
        token = request.query_params.get("token") or None
        if token is not None and len(token) > MAX_TOKEN_LENGTH:
            return self._message(400, "Bad link", "The playback token in this link is too long.",
                                 embed=embed)
        if pid.policy == "signed" and token is None:
            return self._message(403, "This stream needs a token",
                                 "This stream is private: open it with a link that carries "
                                 "a playback token (?token=…).", embed=embed)
        suffix = f"?token={quote(token, safe='')}" if token else ""
        config = {
            "playbackId": playback_id,
            "title": stream.name,
            "manifestUrl": f"/live/{playback_id}.m3u8{suffix}",
            "statusUrl": f"/watch/{playback_id}/status",
            "qoeUrl": f"/qoe/{playback_id}",
            "chatUrl": f"/chat/{playback_id}",
            "live": self.is_live(playback_id),
            "realtime": self._realtime_config(playback_id, stream, pid),
        }
        origin = f"{request.url.scheme}://{request.url.netloc}"
        context = {"stream": stream, "playback_id": playback_id, "config": config,
                   "embed_url": f"{origin}/embed/{playback_id}{suffix}", "embed": embed}
        if embed:
            return self._render("embed.html", headers={
                "Content-Security-Policy": "frame-ancestors *"}, **context)
        return self._render("watch.html", headers={"X-Frame-Options": "SAMEORIGIN"}, **context)

    def _realtime_config(self, playback_id: str, stream: StreamRecord,
                         pid: PlaybackIdRecord) -> dict[str, Any] | None:
        """What the player needs for WHEP playback, or None where the page must not offer it.

        Only streams with `webrtc_playback` have a WebRTC output. WHEP serves public
        playback ids only (signed ones would need the token checks of the security
        issue), so signed pages never show the toggle.
        """
        if (self.realtime_ice_servers is None or not stream.webrtc_playback
                or pid.policy != "public"):
            return None
        return {"whepUrl": f"/whep/{playback_id}", "iceServers": self.realtime_ice_servers}

    async def watch(self, request: Request) -> Response:
        return await self._page(request, embed=False)

    async def embed(self, request: Request) -> Response:
        return await self._page(request, embed=True)

    # Status ----------------------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        playback_id = request.path_params["playback_id"]

        async def load() -> dict[str, Any] | None:
            found = await self.lookup(playback_id)
            if found is None:
                return None
            return {"live": self.is_live(playback_id), "title": found[0].name,
                    "viewers": self.viewers.count(playback_id)}

        body: dict[str, Any] | None = await self._statuses.get(playback_id, load)
        if body is None:
            return JSONResponse({"error": "not_found"}, 404,
                                headers={"Cache-Control": "public, max-age=1"})
        return JSONResponse(body, headers={"Cache-Control": "public, max-age=1",
                                           "Access-Control-Allow-Origin": "*"})

    # QoE -------------------------------------------------------------------------------

    async def qoe(self, request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return _problem(413, f"body must be at most {MAX_BODY_BYTES} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _problem(413, f"body must be at most {MAX_BODY_BYTES} bytes")
        try:
            batch = parse_batch(bytes(body))
        except BatchError as exc:
            return _problem(422, str(exc))
        remote = request.client.host if request.client else ""
        playback_id = request.path_params["playback_id"]
        # Bounds per address come before the lookup: a flood never reaches the database.
        refused = self.qoe_intake.admit_beacon(remote, batch.view_id)
        if refused is None:
            found = await self.lookup(playback_id)
            if found is None:
                return _problem(404, "unknown playback id")
            stream, _ = found
            refused = self.qoe_intake.admit_view(remote, batch.view_id, stream.id)
        if refused is not None:
            return _problem(429, refused.message, {"Retry-After": refused.retry_after_header})
        try:
            await self.views.record(
                view_id=batch.view_id, playback_id=playback_id, stream_id=stream.id,
                user_agent=request.headers.get("user-agent", ""),
                events=server_events(batch, utc_now()), now=utc_now(),
            )
        except ViewConflict:
            return _problem(409, "this view id belongs to another playback id")
        self.qoe_intake.stored(playback_id, remote)
        return Response(status_code=204, headers={"Cache-Control": "no-store"})


def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status,
                        headers={"Cache-Control": "no-store", **(headers or {})})


def web_routes(store: Store, live: LivePresentations, *, views: PlaybackViewStore,
               assets: AssetCatalog,
               realtime_ice_servers: list[dict[str, str]] | None = None) -> list[BaseRoute]:
    """The web pages' routes, for the composition root to add to the site root.

    `realtime_ice_servers` (a list, possibly empty) turns on the watch page's "Real-time"
    (WHEP) option for streams with `webrtc_playback`; None leaves it off everywhere.
    """
    return WebPages(store, live, views=views, assets=assets,
                    realtime_ice_servers=realtime_ice_servers).routes()
