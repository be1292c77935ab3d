"""The composition root: the one place that builds every service and wires them together.

`Golive` owns the lifecycle of one node: store, event bus, broadcast hub, protocol
servers, live pipeline and the HTTP server. Tests start it in-process on free ports
(`port=0`); `golive serve` runs it until interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import socket
import ssl
import time
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse

from golive import __version__
from golive.api import Authenticator, chat_router, create_api_app, pipeline_facts_out
from golive.chat import (
    ChatService,
    ChatSigner,
    ReviewHook,
    chat_routes,
    chat_websocket_protocol,
    load_chat_secret,
)
from golive.core import EventBus, FailureThrottle
from golive.delivery import WebRtcFeed, WhepEndpoint
from golive.httpserver import HttpLimits, server_config
from golive.ingest import RtmpServer, SrtServer, WhipEndpoint, WhipLimits
from golive.logs import configure_logging
from golive.media import LivePipeline, detect_capabilities
from golive.packaging import Presentation
from golive.settings import Settings
from golive.store import ChatStore, EventRecorder, PlaybackViewStore, Store, StoreStreamDirectory
from golive.stream import BroadcastHub, GuardedPublishTarget
from golive.web import AssetCatalog, Studio, studio_routes, web_routes
from golive.webrtc import WebRtcOptions, check_aiortc, install_host_address_hook

log = logging.getLogger(__name__)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class _NoPresentations:
    """The origin's directory on a node that does not transcode (GOLIVE_TRANSCODE=false)."""

    def presentation(self, playback_id: str) -> Presentation | None:
        return None

    async def authorize(self, playback_id: str, token: str | None) -> bool:
        return True


class _Dispatch:
    """The HTTP root: `/live/...` to the LL-HLS origin, the rest to the FastAPI app."""

    def __init__(self, origin: Any, rest: Any) -> None:
        self._origin = origin
        self._rest = rest

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/live/"):
            await self._origin(scope, receive, send)
        else:
            await self._rest(scope, receive, send)


class _LiveView:
    """What the API shows of a live stream: ingest facts plus the pipeline's (ladder, encoder)."""

    def __init__(self, node: Golive) -> None:
        self._node = node

    def ingest_facts(self, stream_id: str) -> dict[str, Any] | None:
        node = self._node
        assert node.hub is not None
        facts = node.hub.ingest_facts(stream_id)
        if facts is None:
            return None
        if node.pipeline is not None:
            facts["pipeline"] = pipeline_facts_out(node.pipeline.facts(stream_id))
        broadcast = node.hub.broadcast(stream_id)
        publisher = broadcast.publisher if broadcast is not None else None
        if node.srt is not None and publisher is not None and publisher.protocol == "srt":
            srt = node.srt.connection_facts().get(publisher.stream_key)
            if srt is not None:
                facts["srt"] = dataclasses.asdict(srt.stats)
        return facts

    async def stream_changed(self, stream_id: str) -> None:
        assert self._node.hub is not None
        await self._node.hub.stream_changed(stream_id)


class Golive:
    """One golive node. Use `async with Golive(settings) as node:` or `start()`/`stop()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bus = EventBus()
        self.store: Store | None = None
        self.hub: BroadcastHub | None = None
        self.rtmp: RtmpServer | None = None
        self.rtmps: RtmpServer | None = None
        self.srt: SrtServer | None = None
        self.pipeline: LivePipeline[WebRtcFeed] | None = None
        self.http: FastAPI | None = None
        self.chat: ChatService | None = None
        self.whip: WhipEndpoint | None = None
        self.whep: WhepEndpoint | None = None
        self._http_server: uvicorn.Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._http_socket: socket.socket | None = None
        self._recorder: EventRecorder | None = None
        self._chat_review: ReviewHook | None = None
        self._studio_api: httpx.AsyncClient | None = None
        self._signing_secret: bytes | None = None

    # Ports actually bound (useful with port 0) ---------------------------------------

    @property
    def http_port(self) -> int:
        assert self._http_socket is not None
        port: int = self._http_socket.getsockname()[1]
        return port

    @property
    def rtmp_port(self) -> int:
        assert self.rtmp is not None
        return self.rtmp.port

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.advertised_host}:{self.http_port}"

    def srt_url(self, stream_key: str = "") -> str:
        assert self.srt is not None
        return f"srt://{self.settings.advertised_host}:{self.srt.port}?streamid={stream_key}"

    def rtmp_url(self, stream_key: str = "") -> str:
        return f"rtmp://{self.settings.advertised_host}:{self.rtmp_port}/live/{stream_key}"

    # Lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        # Third-party internals golive relies on, checked before anything starts: an
        # untested aiortc or aioice stops the node here, naming the versions it needs.
        check_aiortc()
        install_host_address_hook()
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = await Store.open(s.resolved_database_url, event_history=s.event_history)
        # What a killed run left live is closed, and announced, by the hub's start().

        self._recorder = EventRecorder(self.store, self.bus)
        self._recorder.start()

        self.hub = BroadcastHub(
            StoreStreamDirectory(self.store), self.bus, max_publishers=s.max_publishers
        )
        await self.hub.start()
        # Every ingest protocol opens publishers through this: wrong keys are throttled
        # per source address across RTMP, SRT and WHIP at once.
        self.publish_target = GuardedPublishTarget(self.hub, FailureThrottle())

        if s.transcode:
            ffmpeg = s.ffmpeg_path()
            self.pipeline = LivePipeline(
                ffmpeg=ffmpeg,
                bus=self.bus,
                profiles_dirs=(s.profiles_dir or s.data_dir / "profiles",),
                ended_ttl=s.ended_playlist_ttl,
                capabilities=await detect_capabilities(ffmpeg),
                clock=time.time,  # the one real wall clock packaging reads
                # Only broadcasts of streams with webrtc_playback get a WebRTC output.
                webrtc_sink=WebRtcFeed,
            )
            self.hub.add_observer(self.pipeline)

        # Chat: rooms, moderation and system messages; routes in _build_http.
        self._chat_review = ReviewHook(s.chat_review_timeout)
        self.chat = ChatService(
            s, self.store, self.bus, messages=ChatStore(self.store.engine),
            signer=ChatSigner(self._secret()), review=self._chat_review,
        )
        await self.chat.start()

        self.http = self._build_http()
        self._http_socket = _bind(s.host, s.http_port)
        # /live/ (playlists and media, the bulk of all requests) goes straight to the
        # origin; everything else through FastAPI's routing.
        from golive.delivery import create_origin_app

        root = _Dispatch(create_origin_app(self.pipeline or _NoPresentations()), self.http)
        # Heads, bodies and WebSocket messages bounded before any route holds them.
        config = server_config(root, HttpLimits.from_settings(s),
                               ws=chat_websocket_protocol(),  # exposes the transport to /chat/
                               trusted_proxies=s.trusted_proxies)
        self._http_server = uvicorn.Server(config)
        self._http_task = asyncio.create_task(
            self._http_server.serve(sockets=[self._http_socket]), name="http-server"
        )

        rtmp_options: dict[str, Any] = {
            "handshake_timeout": s.rtmp_handshake_timeout,
            "idle_timeout": s.rtmp_idle_timeout,
            "max_message_size": s.rtmp_max_message_size,
            "max_connections": s.max_publishers * 2,
            "read_batch": s.rtmp_read_batch,
            "webrtc_read_batch": s.rtmp_webrtc_read_batch,
        }
        if s.rtmp_port or s.rtmp_port == 0:
            self.rtmp = RtmpServer(self.publish_target, host=s.host, port=s.rtmp_port, **rtmp_options)
            await self.rtmp.start()
        if s.rtmps_port is not None:
            if s.tls_cert is None or s.tls_key is None:
                raise RuntimeError("rtmps_port needs tls_cert and tls_key")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(s.tls_cert, s.tls_key)
            self.rtmps = RtmpServer(
                self.publish_target, host=s.host, port=s.rtmps_port, ssl_context=context, **rtmp_options
            )
            await self.rtmps.start()
        if s.srt_port is not None:
            store = self.store
            self.srt = SrtServer(
                self.publish_target,
                host=s.host,
                port=s.srt_port,
                latency=s.srt_latency_ms / 1000,
                passphrase_for=store.srt_passphrase,
                max_connections=s.max_publishers * 2,
            )
            await self.srt.start()

        # uvicorn sets `started` once it is accepting connections.
        for _ in range(500):
            if self._http_server.started or self._http_task.done():
                break
            await asyncio.sleep(0.01)
        if self._http_task.done():
            self._http_task.result()
        log.info(
            "golive started version=%s http=%s rtmp_port=%s",
            __version__,
            self.http_url,
            self.rtmp.port if self.rtmp else None,
        )

    async def stop(self) -> None:
        # WebRTC sessions end first, while the hub still takes their close; WHEP
        # viewers before the pipelines go.
        if self.whip is not None:
            await self.whip.close()
        if self.whep is not None:
            await self.whep.close()
        for server in (self.rtmp, self.rtmps, self.srt):
            if server is not None:
                await server.close()
        if self.hub is not None:
            await self.hub.close()
        if self.pipeline is not None:
            await self.pipeline.close()
        if self.chat is not None:
            await self.chat.close()
        if self._http_server is not None and self._http_task is not None:
            self._http_server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http_task, timeout=5)
        if self._studio_api is not None:
            await self._studio_api.aclose()
        if self._chat_review is not None:
            await self._chat_review.close()
        if self._recorder is not None:
            await self._recorder.stop()
        if self.store is not None:
            await self.store.close()

    async def __aenter__(self) -> Golive:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # HTTP -----------------------------------------------------------------------------

    def _build_http(self) -> FastAPI:
        assert self.store is not None and self.hub is not None
        app = FastAPI(
            title="golive", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
        )
        s = self.settings
        # One authenticator for the API, its chat routes and the studio's login.
        auth = Authenticator(s, self.store)
        api = create_api_app(settings=s, store=self.store, bus=self.bus,
                             broadcasts=_LiveView(self), auth=auth)
        # Chat: REST under /api/v1, WebSocket /chat/PLAYBACK_ID at the root.
        assert self.chat is not None
        api.include_router(chat_router(auth, self.chat))
        app.router.routes.extend(chat_routes(self.chat))
        app.mount("/api/v1", api)

        hub = self.hub

        @app.get("/healthz", include_in_schema=False)
        async def healthz() -> JSONResponse:
            return JSONResponse(
                {"status": "ok", "version": __version__, "live_broadcasts": len(hub.broadcasts)}
            )

        @app.get("/metrics", include_in_schema=False)
        async def metrics() -> PlainTextResponse:
            return PlainTextResponse(self._metrics_text(), media_type="text/plain; version=0.0.4")

        # WHIP: POST /whip; PATCH, DELETE, OPTIONS on /whip/SESSION_ID.
        webrtc = WebRtcOptions.from_settings(s)
        self.whip = WhipEndpoint(self.publish_target, webrtc, WhipLimits(
            max_sessions=s.whip_max_sessions, connect_timeout=s.whip_connect_timeout,
            idle_timeout=s.whip_idle_timeout))
        app.include_router(self.whip.router())

        # WHEP: POST /whep/PLAYBACK_ID; DELETE, OPTIONS on /whep/PLAYBACK_ID/SESSION.
        # Mounted whenever the node transcodes: which streams play over it is theirs to say.
        if self.pipeline is not None:
            self.whep = WhepEndpoint(
                self.pipeline, webrtc, max_viewers=s.whep_max_viewers,
                connect_timeout=s.whep_connect_timeout,
                max_pending_per_address=s.whep_max_pending_per_address)
            app.include_router(self.whep.router())

        # Web pages: /watch/PID, /embed/PID, /watch/PID/status, /qoe/PID, /static/.
        assets = AssetCatalog()
        realtime_ice = webrtc.browser_ice_servers() if self.whep is not None else None
        app.router.routes.extend(web_routes(
            self.store, self.pipeline or _NoPresentations(),
            views=PlaybackViewStore(self.store.engine), assets=assets,
            realtime_ice_servers=realtime_ice))

        # Studio: /studio pages and /studio/api/ (session cookie + CSRF), which forward
        # in-process to the API app with the signed-in session's token. The client's
        # base URL is fixed: a request's Host header never picks the API route.
        self._studio_api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api, client=("127.0.0.1", 0)),
            base_url=httpx.URL(scheme="http", host=s.advertised_host, path="/"), timeout=30,
        )
        app.router.routes.extend(studio_routes(Studio(
            auth=auth, api=self._studio_api, secret=self._secret(), assets=assets)))

        return app

    def _secret(self) -> bytes:
        """The node's signing secret (chat identities, studio sessions), read once."""
        if self._signing_secret is None:
            s = self.settings
            configured = s.chat_secret.get_secret_value() if s.chat_secret else None
            self._signing_secret = load_chat_secret(configured, s.data_dir)
        return self._signing_secret

    def _metrics_text(self) -> str:
        assert self.hub is not None
        lines = [
            "# HELP golive_publishers Connected publishers.",
            "# TYPE golive_publishers gauge",
            f"golive_publishers {self.hub.publisher_count}",
            "# HELP golive_broadcasts Live broadcasts (including ones waiting for a reconnect).",
            "# TYPE golive_broadcasts gauge",
            f"golive_broadcasts {len(self.hub.broadcasts)}",
            "# HELP golive_ingest_bytes_total Media bytes received per stream.",
            "# TYPE golive_ingest_bytes_total counter",
        ]
        for b in self.hub.broadcasts:
            facts = b.meter.snapshot(0.0)
            lines.append(f'golive_ingest_bytes_total{{stream_id="{b.stream_id}"}} '
                         f"{facts.bytes_received}")
        if self.pipeline is not None:
            lines += ["# HELP golive_webrtc_video_frames_total Video frames of the WebRTC "
                      "output, per stream (what each WHEP viewer is sent).",
                      "# TYPE golive_webrtc_video_frames_total counter"]
            for b in self.hub.broadcasts:
                pipeline = self.pipeline.for_stream(b.stream_id)
                feed = pipeline.webrtc_sink if pipeline is not None else None
                if feed is not None:
                    lines.append(f'golive_webrtc_video_frames_total{{stream_id="{b.stream_id}"}} '
                                 f"{feed.video_packets}")
        if self.whep is not None:
            counts = self.whep.counts()
            lines += ["# HELP golive_whep_viewers WHEP (WebRTC) viewers with ICE and DTLS "
                      "connected, per stream.", "# TYPE golive_whep_viewers gauge"]
            lines += [f'golive_whep_viewers{{stream_id="{stream_id}"}} {viewers}'
                      for stream_id, (viewers, _, _) in counts.items()]
            lines += ["# HELP golive_whep_connecting WHEP sessions still connecting, per "
                      "stream.", "# TYPE golive_whep_connecting gauge"]
            lines += [f'golive_whep_connecting{{stream_id="{stream_id}"}} {pending}'
                      for stream_id, (_, pending, _) in counts.items()]
            lines += ["# HELP golive_whep_backlog_frames Most video frames any WHEP viewer "
                      "of the stream has waiting to be sent.",
                      "# TYPE golive_whep_backlog_frames gauge"]
            lines += [f'golive_whep_backlog_frames{{stream_id="{stream_id}"}} {backlog}'
                      for stream_id, (_, _, backlog) in counts.items()]
        return "\n".join(lines) + "\n"


async def serve_forever(settings: Settings) -> None:
    node = Golive(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with node:
        _print_banner(node)
        await stop.wait()
        log.info("golive stopping")


def _print_banner(node: Golive) -> None:
    s = node.settings
    lines = [
        "",
        f"  golive {__version__} is running",
        f"  HTTP        {node.http_url}   (API: {node.http_url}/api/v1, docs: /api/v1/docs)",
        f"  RTMP ingest {node.rtmp_url()}STREAM_KEY",
        f"  Data        {s.data_dir.resolve()}",
        "",
        "  Create a stream:      golive streams create --name 'My show'",
        "  Create an API token:  golive tokens create --name admin",
        "  (with `make run`, the CLI is .venv/bin/golive)",
        "",
    ]
    print("\n".join(lines), flush=True)


def run_server(settings: Settings) -> None:
    """Entry point for `golive serve`."""
    configure_logging(settings.log_level, settings.log_format)
    try:
        # uvloop (installed with uvicorn[standard]) roughly halves the event loop's
        # per-read cost, which is most of what ingest costs per stream.
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        runner = asyncio.run
    try:
        runner(serve_forever(settings))
    except KeyboardInterrupt:
        pass
