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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from golive.core import RateLimits
from golive.delivery import Audience, PlaybackAccess, Refusal, Viewer
from golive.store import (
    AssetRecord,
    PlaybackIdRecord,
    PlaybackViewStore,
    Store,
    StoreBusy,
    StreamRecord,
    ViewConflict,
)
from golive.web.assets import AssetCatalog, page_templates
from golive.web.qoe import (
    MAX_BODY_BYTES,
    BatchError,
    QoeIntake,
    parse_batch,
    server_events,
    utc_now,
)
from golive.web.thumbnails import storyboard_step

if TYPE_CHECKING:
    from golive.packaging import Presentation

log = logging.getLogger(__name__)

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


class RecordedAssets(Protocol):
    """Where the pages find a recorded asset by its playback id (the recording library)."""

    async def asset_for_playback(self, playback_id: str) -> AssetRecord | None: ...


@dataclass(frozen=True, slots=True)
class _Titled:
    name: str


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
                 realtime_ice_servers: list[dict[str, str]] | None = None,
                 recordings: RecordedAssets | None = None,
                 access: PlaybackAccess | None = None,
                 limits: RateLimits | None = None,
                 publish_ice_servers: list[dict[str, str]] | None = None) -> None:
        self.store = store
        # The ICE servers /publish's RTCPeerConnection gets (the node's, as WHEP's).
        self.publish_ice_servers = publish_ice_servers or []
        self.recordings = recordings
        # Signed playback ids' pages and status need a playback token; None: all public.
        self.access = access
        # Set when the node plays WHEP: pages of streams with `webrtc_playback` offer
        # "Real-time", and the browser's RTCPeerConnection gets these ICE servers (none:
        # host only).
        self.realtime_ice_servers = realtime_ice_servers
        self.views = views
        self.live = live
        self.assets = assets
        # QoE admission (per address, per stream, per view) and the viewer count.
        # With `limits`, the per-address, per-stream and per-view budgets count cluster-wide.
        self.qoe_intake = QoeIntake(shared=limits)
        self.viewers = self.qoe_intake.viewers
        self._lookups = _TtlCache(LOOKUP_TTL)
        self._statuses = _TtlCache(STATUS_TTL)
        self._templates = page_templates(self.assets)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/watch/{playback_id}", self.watch, methods=["GET", "HEAD"]),
            Route("/watch/{playback_id}/status", self.status, methods=["GET", "HEAD"]),
            Route("/embed/{playback_id}", self.embed, methods=["GET", "HEAD"]),
            Route("/publish", self.publish, methods=["GET", "HEAD"]),
            Route("/", self.home, methods=["GET", "HEAD"]),
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

    def offers_captions(self, playback_id: str) -> bool:
        """Whether the live playlists offer closed captions (a player that loaded them
        before the first caption came learns it here)."""
        presentation = self.live.presentation(playback_id)
        return presentation is not None and not presentation.ended and presentation.captions

    # Pages -----------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        """The site root: where a person who opened the node's address goes next."""
        return self._render("home.html")

    async def publish(self, request: Request) -> Response:
        """Go live from this browser: camera, microphone or screen over WHIP. The page holds
        no secret; the stream key the publisher types is the WHIP bearer token."""
        headers = {
            "X-Frame-Options": "DENY",
            # Capture only for this page itself, never for a page that frames it.
            "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self)",
        }
        return self._render("publish.html", headers=headers,
                            config={"iceServers": self.publish_ice_servers})

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
        if found is None and self.recordings is not None and PLAYBACK_ID.fullmatch(playback_id):
            asset = await self.recordings.asset_for_playback(playback_id)
            if asset is not None:
                return await self._asset_page(request, asset, embed=embed)
        if found is None:
            return self._message(404, "Stream not found",
                                 "There is no stream at this address. Check the link.",
                                 embed=embed)
        stream, pid = found
        tokens = self._page_tokens(request, embed=embed)
        if isinstance(tokens, Response):
            return tokens
        token, chat_token, thumbnail_token = tokens
        refusal = await self._refusal(request, playback_id, token)
        if refusal is not None:
            title = ("This stream needs a token" if pid.policy == "signed" and token is None
                     else "This stream cannot be played here")
            return self._refused(refusal, title, embed=embed)
        suffix = f"?token={quote(token, safe='')}" if token else ""
        chat_suffix = f"?playback_token={quote(chat_token, safe='')}" if chat_token else ""
        config = {
            "playbackId": playback_id,
            "title": stream.name,
            "manifestUrl": f"/live/{playback_id}.m3u8{suffix}",
            "statusUrl": f"/watch/{playback_id}/status{suffix}",
            "qoeUrl": f"/qoe/{playback_id}",
            "chatUrl": f"/chat/{playback_id}{chat_suffix}",
            "chatReplayUrl": f"/chat/{playback_id}/replay",
            # `?chat=replay`: show the chat in time with the video (by its program
            # date-time) rather than as it happens; what an asset's page does.
            "chatReplay": request.query_params.get("chat") == "replay",
            "live": self.is_live(playback_id),
            "realtime": self._realtime_config(playback_id, stream, suffix),
            # Seconds the live playlists list (a recorded stream's DVR window): the player
            # shows a seek bar over them and a "Go live" button; 0: the live edge only.
            "dvr": stream.dvr_window if stream.recording else 0,
        }
        # The DVR seek bar's stills (`/thumbnail/PID.jpg?segment=MSN`).
        if config["dvr"]:
            config.update(await self._preview(request, playback_id, pid.policy == "public",
                                              thumbnail_token))
        origin = f"{request.url.scheme}://{request.url.netloc}"
        context = {"stream": stream, "playback_id": playback_id, "config": config,
                   "embed_url": f"{origin}/embed/{playback_id}{suffix}", "embed": embed,
                   "meta": self._metadata(origin, stream, pid, live=config["live"])}
        if embed:
            return self._render("embed.html", headers={
                "Content-Security-Policy": "frame-ancestors *"}, **context)
        return self._render("watch.html", headers={"X-Frame-Options": "SAMEORIGIN"}, **context)

    def _metadata(self, origin: str, stream: StreamRecord, pid: PlaybackIdRecord, *,
                  live: bool) -> dict[str, Any]:
        """OpenGraph and schema.org facts of a live stream's watch page.

        A signed playback id's page is private: no thumbnail (it would need the token) and
        `noindex`. A live one is a `VideoObject` published by a live `BroadcastEvent`
        that started when the presentation did (its first segment number is twice that
        Unix time, by the public LL-HLS numbering contract).
        """
        public = pid.policy == "public"
        description = (f"{stream.name} is live now on golive." if live
                       else f"{stream.name} on golive.")
        presentation = self.live.presentation(pid.id) if live else None
        audio_only = presentation is not None and presentation.audio_only
        image = (f"{origin}/thumbnail/{pid.id}.jpg?width=1280"
                 if live and public and not audio_only else None)
        extra: dict[str, Any] = {"uploadDate": _iso(stream.created_at)}
        if presentation is not None:
            started = datetime.fromtimestamp(presentation.first_msn / 2, UTC)
            extra["publication"] = {"@type": "BroadcastEvent", "isLiveBroadcast": True,
                                    "startDate": started.isoformat()}
        return _page_metadata(origin, pid.id, stream.name, description, image=image,
                              public=public, video=extra, audio_only=audio_only)

    async def _asset_page(self, request: Request, asset: AssetRecord, *, embed: bool) -> Response:
        """A recorded asset's page: the same player on its VOD playlist, with seeking."""
        tokens = self._page_tokens(request, embed=embed)
        if isinstance(tokens, Response):
            return tokens
        token, chat_token, thumbnail_token = tokens
        playback_id = asset.playback_id
        # The same gate as the origin's /vod/ (aud v): a signed recording's page needs
        # the token its playlist and media will be asked with, and says why without one.
        refusal = await self._refusal(request, playback_id, token)
        if refusal is not None:
            title = ("This recording needs a token"
                     if asset.playback_policy == "signed" and token is None
                     else "This recording cannot be played here")
            return self._refused(refusal, title, embed=embed)
        if asset.status != "ready":
            return self._message(404, "Recording not ready",
                                 "This recording is still being prepared, or failed. Try "
                                 "again in a moment.", embed=embed)
        suffix = f"?token={quote(token, safe='')}" if token else ""
        stream = await self.store.get_stream(asset.stream_id)
        title = f"{stream.name} (recording)" if stream is not None else "Recording"
        config: dict[str, Any] = {
            "playbackId": playback_id,
            "title": title,
            # The origin writes the token into every URI of the VOD playlist it serves.
            "manifestUrl": f"/vod/{playback_id}.m3u8{suffix}",
            "statusUrl": None,
            # No QoE from a recording's viewers: views are stored per live stream, and
            # would count in its live alerts and QoE (the intake knows no asset ids).
            "qoeUrl": None,
            "chatUrl": None,
            "live": False,
            "vod": True,
            "duration": asset.duration,
            "realtime": None,
            "previewStep": storyboard_step(asset.duration),
        }
        # The seek bar's stills (`/thumbnail/PID.jpg?time=`, the storyboard's moments), for
        # a recording with pictures.
        if any(r.width for r in asset.renditions):
            config.update(await self._preview(request, playback_id,
                                              asset.playback_policy == "public",
                                              thumbnail_token))
        origin = f"{request.url.scheme}://{request.url.netloc}"
        # Chat replay: the stream's chat beside the recording, in time with it.
        # A signed recording's chat replays with a chat token (aud c), as its live chat.
        config["chatReplay"] = True
        config["chatReplayUrl"] = (f"/chat/{playback_id}/replay"
                                   + (f"?playback_token={quote(chat_token, safe='')}"
                                      if chat_token else ""))
        context: dict[str, Any] = {
            "stream": _Titled(title), "playback_id": playback_id, "config": config,
            "embed_url": f"{origin}/embed/{playback_id}{suffix}", "embed": embed,
            "meta": self._asset_metadata(origin, asset, title)}
        if embed:
            return self._render("embed.html", headers={
                "Content-Security-Policy": "frame-ancestors *"}, **context)
        return self._render("watch.html", headers={"X-Frame-Options": "SAMEORIGIN"}, **context)

    def _asset_metadata(self, origin: str, asset: AssetRecord, title: str) -> dict[str, Any]:
        """A recording's page: a `VideoObject` with its duration, the progressive MP4 as
        its content, a still from its middle, published by the (ended) live broadcast.
        A signed recording's page is private, as a signed stream's: `noindex`, and no
        still or MP4 address (each would need a token)."""
        playback_id = asset.playback_id
        public = asset.playback_policy == "public"
        audio_only = not any(r.width for r in asset.renditions)
        still = max(0.0, min(10.0, asset.duration / 2))
        image = (f"{origin}/thumbnail/{playback_id}.jpg?time={still:.1f}&width=1280"
                 if public and not audio_only else None)
        video: dict[str, Any] = {
            "uploadDate": _iso(asset.created_at),
            "duration": f"PT{asset.duration:.3f}S",
        }
        if public:
            video["contentUrl"] = f"{origin}/vod/{playback_id}/high.mp4"
        publication: dict[str, Any] = {"@type": "BroadcastEvent", "isLiveBroadcast": True,
                                       "startDate": _iso(asset.created_at)}
        if asset.ended_at is not None:
            publication["endDate"] = _iso(asset.ended_at)
        video["publication"] = publication
        return _page_metadata(origin, playback_id, title, f"{title} on golive.", image=image,
                              public=public, video=video, audio_only=audio_only)

    def _page_tokens(self, request: Request, *, embed: bool
                     ) -> tuple[str | None, str | None, str | None] | Response:
        """A page's `?token=` (aud v), `?chat_token=` (aud c) and `?thumbnail_token=` (aud
        t: a signed playback id's seek bar stills, as Mux Player's thumbnail-token),
        bounded; or the 400."""
        found: list[str | None] = []
        for name, what in (("token", "playback"), ("chat_token", "chat"),
                           ("thumbnail_token", "thumbnail")):
            value = request.query_params.get(name) or None
            if value is not None and len(value) > MAX_TOKEN_LENGTH:
                return self._message(400, "Bad link", f"The {what} token in this link is too "
                                     "long.", embed=embed)
            found.append(value)
        return found[0], found[1], found[2]

    async def _preview(self, request: Request, playback_id: str, public: bool,
                       thumbnail_token: str | None) -> dict[str, str | None]:
        """The seek bar's stills: `previewUrl` (the thumbnail route) for a public playback
        id, or a signed one whose page was given a thumbnail token the route takes
        (`previewToken`, added to each still's address); none otherwise."""
        if public:
            return {"previewUrl": f"/thumbnail/{playback_id}.jpg", "previewToken": None}
        if thumbnail_token is None or self.access is None or await self._refusal(
                request, playback_id, thumbnail_token, audience="t") is not None:
            return {"previewUrl": None, "previewToken": None}
        return {"previewUrl": f"/thumbnail/{playback_id}.jpg", "previewToken": thumbnail_token}

    def _refused(self, refusal: Refusal, title: str, *, embed: bool) -> HTMLResponse:
        return self._message(refusal.status, title,
                             f"{refusal.reason[0].upper()}{refusal.reason[1:]}.", embed=embed)

    def _realtime_config(self, playback_id: str, stream: StreamRecord,
                         suffix: str) -> dict[str, Any] | None:
        """What the player needs for WHEP playback (the token rides along), or None where
        the page must not offer it: only streams with `webrtc_playback` have a WebRTC
        output."""
        if self.realtime_ice_servers is None or not stream.webrtc_playback:
            return None
        return {"whepUrl": f"/whep/{playback_id}{suffix}",
                "iceServers": self.realtime_ice_servers}

    async def _refusal(self, request: Request, playback_id: str, token: str | None, *,
                       audience: Audience = "v") -> Refusal | None:
        """Why this request may not see a playback id's page or status (None: it may)."""
        if self.access is None:
            return None
        viewer = Viewer("page", request.client.host if request.client else "",
                        request.headers.get("user-agent", ""))
        verdict = await self.access.check(playback_id, token, audience=audience, viewer=viewer,
                                          referrer=request.headers.get("referer"),
                                          own_host=request.headers.get("host"))
        return verdict if isinstance(verdict, Refusal) else None

    async def watch(self, request: Request) -> Response:
        return await self._page(request, embed=False)

    async def embed(self, request: Request) -> Response:
        return await self._page(request, embed=True)

    # Status ----------------------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        playback_id = request.path_params["playback_id"]
        token = request.query_params.get("token") or None
        if token is not None and len(token) > MAX_TOKEN_LENGTH:
            return _problem(400, "the playback token is too long")
        if PLAYBACK_ID.fullmatch(playback_id):
            # Before anything live is looked at: a signed stream's status does not leak.
            refusal = await self._refusal(request, playback_id, token)
            if refusal is not None and refusal.status != 404:
                return JSONResponse({"error": refusal.reason}, refusal.status,
                                    headers={"Cache-Control": "no-store"})

        async def load() -> dict[str, Any] | None:
            found = await self.lookup(playback_id)
            if found is None:
                return None
            return {"live": self.is_live(playback_id), "title": found[0].name,
                    "viewers": self.viewers.count(playback_id),
                    "captions": self.offers_captions(playback_id)}

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
        refused = await self.qoe_intake.check_beacon(remote, batch.view_id)
        if refused is None:
            found = await self.lookup(playback_id)
            if found is None:
                return _problem(404, "unknown playback id")
            stream, _ = found
            refused = await self.qoe_intake.check_view(remote, batch.view_id, stream.id)
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
        except StoreBusy as exc:
            # Not stored: the player keeps the batch and sends it again (qoe.js).
            return _problem(503, str(exc), {"Retry-After": str(exc.retry_after)})
        self.qoe_intake.stored(playback_id, remote)
        return Response(status_code=204, headers={"Cache-Control": "no-store"})


def _iso(value: datetime) -> str:
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


def _page_metadata(origin: str, playback_id: str, title: str, description: str, *,
                   image: str | None, public: bool, video: dict[str, Any],
                   audio_only: bool = False) -> dict[str, Any]:
    """What watch.html renders into OpenGraph tags and one schema.org JSON-LD `VideoObject`
    (an `AudioObject` for sound alone; escaped there: attributes by autoescape, the JSON
    by `tojson`)."""
    page_url = f"{origin}/watch/{playback_id}"
    json_ld: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "AudioObject" if audio_only else "VideoObject",
        "name": title,
        "description": description,
        "embedUrl": f"{origin}/embed/{playback_id}",
        "url": page_url,
        **video,
    }
    if image is not None:
        json_ld["thumbnailUrl"] = [image]
    return {"title": title, "description": description, "url": page_url, "image": image,
            "index": public, "json_ld": json_ld, "audio_only": audio_only}


def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status,
                        headers={"Cache-Control": "no-store", **(headers or {})})


def web_routes(store: Store, live: LivePresentations, *, views: PlaybackViewStore,
               assets: AssetCatalog,
               realtime_ice_servers: list[dict[str, str]] | None = None,
               recordings: RecordedAssets | None = None,
               access: PlaybackAccess | None = None,
               limits: RateLimits | None = None,
               publish_ice_servers: list[dict[str, str]] | None = None) -> list[BaseRoute]:
    """The web pages' routes, for the composition root to add to the site root.

    `realtime_ice_servers` (a list, possibly empty) turns on the watch page's "Real-time"
    (WHEP) option for streams with `webrtc_playback`; None leaves it off everywhere.
    `recordings` lets the watch and embed pages play recorded assets by their playback ids.
    `limits` (the node's shared rate limits) counts QoE beacons across a cluster's nodes.
    `publish_ice_servers` are given to /publish's browser (going live over WHIP).
    """
    return WebPages(store, live, views=views, assets=assets,
                    realtime_ice_servers=realtime_ice_servers, recordings=recordings,
                    access=access, limits=limits,
                    publish_ice_servers=publish_ice_servers).routes()
