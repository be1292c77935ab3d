"""The composition root: the one place that builds every service and wires them together.

`Golive` owns the lifecycle of one node: store, event bus, broadcast hub, protocol
servers, live pipeline and the HTTP server. Tests start it in-process on free ports
(`port=0`); `golive serve` runs it until interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import hmac
import ipaddress
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from golive import __version__
from golive.api import (
    STUDIO_SCOPE_KEY,
    Authenticator,
    access_hooks_router,
    assets_router,
    audit_router,
    chat_router,
    create_api_app,
    destinations_router,
    pipeline_facts_out,
    preflight_router,
    qoe_router,
    reports_router,
    signing_keys_router,
    webhooks_router,
)
from golive.api import AuditTrail as ApiAuditTrail
from golive.chat import (
    ChatService,
    ChatSigner,
    ReviewHook,
    chat_routes,
    chat_websocket_protocol,
    load_chat_secret,
    replay_routes,
)
from golive.cluster import BroadcastRegistry, WebhookWakeups
from golive.core import (
    Event,
    EventBus,
    EventType,
    FailureThrottle,
    RateLimits,
    RedisLink,
    Subscription,
    bind_stream,
    hash_stream_key,
    tune_garbage_collector,
)
from golive.delivery import (
    AccessHook,
    HookedPublishTarget,
    Origin,
    OwnerRelay,
    PlaybackAccess,
    PlaybackRule,
    RelaySeal,
    StreamHook,
    VerificationKey,
    WebRtcFeed,
    WhepEndpoint,
    session_key_from,
)
from golive.health import (
    STATE_EVENTS,
    AlertEngine,
    BroadcastReports,
    IngestHistory,
    IngestHistoryRetention,
    MetricSources,
    NodeMetrics,
    QoeReports,
    QoeRetention,
    Readiness,
    RecentViews,
    SrtSample,
    ViewerWindows,
)
from golive.httpserver import (
    ConnectionBudget,
    HandshakeGate,
    HttpLimits,
    connection_budget,
    server_config,
)
from golive.ingest import RtmpServer, SrtServer, WhipEndpoint, WhipLimits
from golive.logs import configure_logging
from golive.media import (
    AlertSpec,
    DestinationRelay,
    DestinationTarget,
    LivePipeline,
    SlateCache,
    SloSpec,
    StreamProfile,
    Thumbnailer,
    detect_capabilities,
    load_profile,
    parse_profile,
)
from golive.ops import (
    PreflightDesk,
    PreflightDestination,
    PreflightPublishTarget,
    ProfileCatalog,
    SrtStats,
    TcpStats,
    document_profile,
)
from golive.packaging import Presentation, SegmentObserver
from golive.recording import (
    AssetMp4s,
    LiveArchive,
    Recorder,
    RecordingLibrary,
    RetentionSweeper,
    VodCatalog,
    open_storage,
)
from golive.settings import Settings, SettingsProblem
from golive.store import (
    AssetStore,
    ChatStore,
    DestinationStore,
    EventRecorder,
    PlaybackViewStore,
    Store,
    StoreStreamDirectory,
    StreamRecord,
)
from golive.stream import Broadcast, BroadcastHub, GuardedPublishTarget, StreamPolicy
from golive.web import (
    AssetCatalog,
    RecordedFrames,
    SessionBook,
    Studio,
    StudioSessions,
    ThumbnailRoute,
    studio_routes,
    web_routes,
)
from golive.webhooks import DeliveryPolicy, WebhookDispatcher
from golive.webrtc import WebRtcOptions, check_aiortc, install_host_address_hook

log = logging.getLogger(__name__)

READY_METRIC_MAX_AGE = 5.0
"""Seconds /metrics reuses the latest readiness check for `golive_ready` (/readyz always
checks anew)."""
READY_METRIC_WAIT = 0.1
"""Seconds a scrape waits for a due readiness check before answering the previous one."""


@contextlib.contextmanager
def _listening(what: str, setting: str, host: str, port: int) -> Iterator[None]:
    """An address this node cannot listen on (taken, not this host's, not allowed) stops
    it with the setting to change, as a settings problem, not a traceback."""
    try:
        yield
    except OSError as exc:
        # The system's words for the errno: asyncio's and uvloop's own messages repeat the
        # address, and uvloop's for a datagram socket keeps the errno in its cause.
        errno = exc.errno or getattr(exc.__cause__, "errno", None)
        reason = os.strerror(errno) if errno else str(exc)
        raise SettingsProblem(
            f"cannot listen for {what} on {host}:{port}: {reason}; stop what "
            f"holds that address, or set {setting} (GOLIVE_{setting.upper()}) to another"
        ) from exc


class _NoPresentations:
    """The origin's directory on a node that does not transcode (GOLIVE_TRANSCODE=false)."""

    def presentation(self, playback_id: str) -> Presentation | None:
        return None


class _NodePresentations:
    """This node's live presentations as the broadcast registry reads them (the pipeline
    is built after the registry, which must observe broadcasts before it)."""

    def __init__(self, node: Golive) -> None:
        self._node = node

    def presentation(self, playback_id: str) -> Presentation | None:
        pipeline = self._node.pipeline
        return pipeline.presentation(playback_id) if pipeline is not None else None


class _StoreAccess:
    """The store as `golive.delivery.AccessDirectory`: playback rules and public keys.

    A recorded asset's playback id follows its own policy (copied from the stream's
    playback id when it was recorded), with the stream's referrer rules and hook.
    """

    def __init__(self, store: Store, assets: AssetStore) -> None:
        self._store = store
        self._assets = assets

    async def playback_rule(self, playback_id: str) -> PlaybackRule | None:
        found = await self._store.find_stream_by_playback_id(playback_id)
        if found is None:
            asset = await self._assets.by_playback_id(playback_id)
            if asset is None:
                return None
            stream = await self._store.get_stream(asset.stream_id)
            return PlaybackRule(playback_id=asset.playback_id, stream_id=asset.stream_id,
                                signed=asset.playback_policy == "signed",
                                access_hook_url=None if stream is None
                                else stream.access_hook_url)
        stream, pid = found
        return PlaybackRule(playback_id=pid.id, stream_id=stream.id,
                            signed=pid.policy == "signed",
                            allowed_referrers=pid.allowed_referrers,
                            allow_empty_referrer=pid.allow_empty_referrer,
                            access_hook_url=stream.access_hook_url)

    async def verification_key(self, key_id: str) -> VerificationKey | None:
        record = await self._store.get_signing_key(key_id)
        if record is None:
            return None
        return VerificationKey(id=record.id, algorithm=record.algorithm,
                               public_key_pem=record.public_key)

    async def stream_of_key(self, stream_key: str) -> StreamHook | None:
        record = await self._store.find_stream_by_key_hash(hash_stream_key(stream_key))
        return None if record is None else StreamHook(record.id, record.access_hook_url)


class _Dispatch:
    """The HTTP root: `/live/...` and `/vod/...` to the origin, the rest to the FastAPI app.

    WHEP requests (session setup, a few per viewer) are counted with the origin's.
    """

    def __init__(self, origin: Origin, rest: Any) -> None:
        self._origin = origin
        self._rest = rest

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (path.startswith("/live/") or path.startswith("/vod/")):
            await self._origin(scope, receive, send)
        elif scope["type"] == "http" and path.startswith("/whep/"):
            stats = self._origin.stats

            async def counted(message: Any) -> None:
                if message["type"] == "http.response.start":
                    stats.answered("whep", message["status"], 0)
                elif message["type"] == "http.response.body":
                    stats.bytes_out += len(message.get("body", b""))
                await send(message)

            await self._rest(scope, receive, counted)
        else:
            await self._rest(scope, receive, send)


def _node_id(settings: Settings) -> str:
    """This node's name in webhook leases: the same after a restart, another on another
    host or data directory."""
    where = f"{socket.gethostname()}:{settings.data_dir.resolve()}"
    return "node_" + hashlib.sha256(where.encode()).hexdigest()[:16]


class _ViaStudio:
    """The API as the studio reaches it in process: marked, so the audit log believes the
    browser address the studio passes on (no request from outside carries the mark)."""

    def __init__(self, api: Any) -> None:
        self._api = api

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._api({**scope, STUDIO_SCOPE_KEY: True}, receive, send)


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
                facts["srt"]["unsupported_audio"] = srt.unsupported_audio
                facts["srt"]["unsupported_video"] = srt.unsupported_video
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
        self.profiles: ProfileCatalog | None = None
        self.preflight: PreflightDesk | None = None
        self.hub: BroadcastHub | None = None
        self.rtmp: RtmpServer | None = None
        self.rtmps: RtmpServer | None = None
        self.srt: SrtServer | None = None
        self.pipeline: LivePipeline[WebRtcFeed] | None = None
        self._forced_profiles: asyncio.Task[None] | None = None
        self.http: FastAPI | None = None
        self.chat: ChatService | None = None
        self.whip: WhipEndpoint | None = None
        self.whep: WhepEndpoint | None = None
        self.thumbnailer: Thumbnailer | None = None
        self._http_server: uvicorn.Server | None = None
        self.tls_gate: HandshakeGate | None = None  # HTTPS handshakes in progress, when TLS is on
        self.http_connections: ConnectionBudget | None = None  # open on http_port
        self._http_task: asyncio.Task[None] | None = None
        self._http_socket: socket.socket | None = None
        self._recorder: EventRecorder | None = None
        self.webhooks: WebhookDispatcher | None = None
        self._chat_review: ReviewHook | None = None
        self._studio_api: httpx.AsyncClient | None = None
        self._signing_secret: bytes | None = None
        self.recorder: Recorder | None = None
        self.recordings: RecordingLibrary | None = None
        self._sweeper: RetentionSweeper | None = None
        self._qoe_retention: QoeRetention | None = None
        self._history_retention: IngestHistoryRetention | None = None
        self.access: PlaybackAccess | None = None
        self.access_hook: AccessHook | None = None
        self.alerts: AlertEngine | None = None
        self.ingest_history: IngestHistory | None = None
        self.recent_views: RecentViews | None = None
        self.origin: Origin | None = None
        self.readiness: Readiness | None = None
        self.metrics: NodeMetrics | None = None
        self.destinations: DestinationRelay | None = None
        # With redis_url, rate limits and studio sessions are shared with the other nodes.
        self.redis_link: RedisLink | None = (
            RedisLink(settings.redis_url, settings.redis_prefix) if settings.redis_url else None)
        self.rate_limits = RateLimits(self.redis_link)
        # With redis_url: which node holds which broadcast, and the relay that answers
        # for the broadcasts other nodes hold.
        self.registry: BroadcastRegistry | None = None
        self.relay: OwnerRelay | None = None
        self.wakeups: WebhookWakeups | None = None

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
        return f"{self.settings.http_scheme}://{self.settings.advertised_host}:{self.http_port}"

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
        # HTTPS and RTMPS: both files or neither, loadable, before anything listens.
        tls = s.check_tls()
        s.data_dir.mkdir(parents=True, exist_ok=True)
        if s.redis_url and s.chat_secret is None:
            log.warning("redis_url is set but chat_secret is not: this node signs studio "
                        "sessions and chat tokens with a secret of its own, which the other "
                        "nodes refuse; set GOLIVE_CHAT_SECRET to the same value on every node")
        self.store = await Store.open(
            s.resolved_database_url, event_history=s.event_history, pool=s.database_pool
        )
        # Release profiles: the files' versions published, streams from before versioning
        # pinned to the newest of theirs, before any publisher is let in.
        self.profiles = ProfileCatalog(self.store, s.resolved_profiles_dir)
        await self.profiles.sync()
        await self.profiles.pin_unpinned(by="golive (upgrade)")
        # What a killed run left live is closed, and announced, by the hub's start().

        # Webhooks: the recorder writes each event's outbox rows with the event and wakes
        # the dispatcher, which sends them (and what a killed run left pending).
        self.webhooks = WebhookDispatcher(self.store, DeliveryPolicy(
            timeout=s.webhook_timeout, retry_first=s.webhook_retry_first,
            retry_longest=max(s.webhook_retry_first, s.webhook_retry_longest),
            retry_for=s.webhook_retry_for, allow_private=s.webhook_allow_private_targets,
            log_retention=s.webhook_log_retention, window=s.webhook_window,
            node_id=_node_id(s)))
        await self.webhooks.start()
        on_queued = self.webhooks.wake
        if s.redis_url:
            # The node holding an endpoint's lease hears of deliveries queued on any node.
            self.wakeups = WebhookWakeups(s.redis_url, s.redis_prefix, _node_id(s),
                                          wake=self.webhooks.wake)
            await self.wakeups.start()
            on_queued = self.wakeups.queued
        self._recorder = EventRecorder(self.store, self.bus, on_queued=on_queued)
        self._recorder.start()

        # Recording: segments to local disk or S3 as they complete; assets, VOD, retention.
        # What a killed run left (spool, open recordings) is stored and finished here.
        storage = open_storage(s)
        assets = AssetStore(self.store.engine)
        self.recordings = RecordingLibrary(assets, storage, self.bus)
        self.recorder = Recorder(
            store=self.store, assets=assets, storage=storage, bus=self.bus,
            spool_dir=s.data_dir / "spool", queue_segments=s.recording_queue_segments,
            spool_bytes=s.recording_spool_bytes, retention_days=s.recording_retention_days,
        )
        await self.recorder.start()
        self._sweeper = RetentionSweeper(self.recordings, interval=s.recording_sweep_interval)
        self._sweeper.start()
        # QoE: raw beacons of old views downsampled to one summary each.
        self._qoe_retention = QoeRetention(
            PlaybackViewStore(self.store.engine), raw_retention=s.qoe_raw_retention,
            interval=min(3600.0, s.qoe_raw_retention / 4))
        self._qoe_retention.start()
        self._history_retention = IngestHistoryRetention(
            self.store.prune_broadcast_samples, retention=s.ingest_history_retention,
            interval=min(3600.0, s.ingest_history_retention / 4))
        self._history_retention.start()

        self.hub = BroadcastHub(
            StoreStreamDirectory(self.store), self.bus, max_publishers=s.max_publishers,
            failover_after=s.failover_after,
            failover_return_after=s.failover_return_after,
        )
        await self.hub.start()
        if s.redis_url:
            # Before the pipeline: a broadcast's continuation is looked up as it starts.
            self.registry = BroadcastRegistry(s.redis_url, s.redis_prefix,
                                              presentations=_NodePresentations(self),
                                              ttl=s.cluster_entry_ttl)
            self.hub.add_observer(self.registry)
            # Relayed requests are sealed with the secret the nodes share (chat_secret), so
            # an owner trusts the relaying node's check of the viewer.
            self.relay = OwnerRelay(self.registry, timeout=s.cluster_relay_timeout,
                                    takeover_hold=s.cluster_takeover_hold,
                                    seal=RelaySeal(self._secret()))
        # Access hooks (the node's and each stream's), for publishing, playing and chat.
        self.access_hook = AccessHook(timeout=s.access_hook_timeout,
                                      fail_open=s.access_hook_fail_open)
        store_access = _StoreAccess(self.store, assets)
        # Every ingest protocol opens publishers through this: wrong keys are throttled
        # per source address across RTMP, SRT and WHIP at once, before any hook is asked.
        # A stream with a preflight waiting publishes to it, off the air, with its usual
        # key; every other publisher goes on to the access hook and the hub.
        preflight_destination_store = DestinationStore(self.store.engine)

        async def preflight_destinations(stream_id: str) -> list[PreflightDestination]:
            return [PreflightDestination(d.name, d.target_url) for d in
                    await preflight_destination_store.list_destinations(stream_id)
                    if d.enabled]

        self.preflight = PreflightDesk(
            self.store, self.profiles, s.ffmpeg_path(), srt_stats=self._srt_stats,
            tcp_stats=self._tcp_stats, destinations=preflight_destinations,
            allow_private_destinations=s.destination_allow_private_targets)
        await self.preflight.recover()
        self.publish_target = GuardedPublishTarget(
            PreflightPublishTarget(
                HookedPublishTarget(self.hub, self.access_hook, default_url=s.access_hook_url,
                                    stream_of_key=store_access.stream_of_key),
                self.preflight),
            FailureThrottle(limits=self.rate_limits, name="publish-key-guesses"))

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
                recording=self._recording_for,
                slates=SlateCache(ffmpeg, s.data_dir / "slate"),
                continuation=self.registry.continuation if self.registry is not None
                else None,
                continuation_pending=self.registry.continuation_pending
                if self.registry is not None else None,
            )
            self.hub.add_observer(self.pipeline)
            self.hub.use_slate(self.pipeline)
            # A forced profile change on a live stream reaches its running ladder now.
            self._forced_profiles = asyncio.create_task(
                self._apply_forced_profiles(self.bus.subscribe(maxsize=100, accept=_forced_pin)),
                name="forced-profiles")

        # Simulcast: each live broadcast forwarded (ffmpeg -c copy) to its stream's
        # enabled destinations; a failing one touches neither the ladder nor another.
        destination_store = DestinationStore(self.store.engine)

        async def load_destinations(stream_id: str) -> list[DestinationTarget]:
            return [DestinationTarget(d.id, d.target_url, d.rendition)
                    for d in await destination_store.list_destinations(stream_id) if d.enabled]

        relay_ffmpeg = _ffmpeg_or_none(s)
        if relay_ffmpeg is not None:
            self.destinations = DestinationRelay(
                load=load_destinations, bus=self.bus, ffmpeg=relay_ffmpeg,
                queue_bytes=s.destination_queue_bytes,
                allow_private=s.destination_allow_private_targets,
                renditions=self.pipeline)
            self.hub.add_observer(self.destinations)

        # Recent QoE windows (the alert rules', the studio's) from memory, caught up from
        # the store, instead of re-reading the same beacons on every evaluation and poll;
        # asks within 2 s of a stream's last catch-up share it (beacons come every 10 s).
        self.recent_views = RecentViews(PlaybackViewStore(self.store.engine),
                                        state_types=STATE_EVENTS, fresh_for=2.0)
        # Alerts: every live stream's rules, once a second, with the profile's thresholds;
        # a sample of what they measured is kept for the post-event report.
        if s.alerts:
            self.ingest_history = IngestHistory(self.store.record_broadcast_samples,
                                                interval=s.ingest_history_interval)
            self.ingest_history.start()
            self.alerts = AlertEngine(self.bus, load_spec=self._alert_spec,
                                      pipeline=self.pipeline, srt=self._srt_sample,
                                      viewers=ViewerWindows(self.recent_views),
                                      load_slo=self._slo_spec,
                                      interval=s.alerts_interval,
                                      history=self.ingest_history)
            self.hub.add_observer(self.alerts)
            self.alerts.start()

        # Signed playback and playback restrictions, for every surface that plays.
        # Playlists carry a short session token in place of each viewer's JWT, signed
        # with a key derived from the secret the nodes share, so any node verifies it; a
        # cluster without a configured shared secret keeps the JWTs (each node's own
        # generated secret would not verify on the next node a viewer reaches).
        shared = s.chat_secret is not None or not s.redis_url
        self.access = PlaybackAccess(
            store_access, hook=self.access_hook, default_hook_url=s.access_hook_url,
            session_key=session_key_from(self._secret()) if shared else None)

        # Chat: rooms, moderation and system messages; routes in _build_http.
        self._chat_review = ReviewHook(s.chat_review_timeout)
        self.chat = ChatService(
            s, self.store, self.bus, messages=ChatStore(self.store.engine),
            signer=ChatSigner(self._secret()), review=self._chat_review, access=self.access,
            limits=self.rate_limits,
        )
        await self.chat.start()

        self.http = self._build_http()
        await self._warm_routes()
        with _listening("HTTP", "http_port", s.host, s.http_port):
            self._http_socket = bind_stream(s.host, s.http_port, 1024)
        # /live/ (playlists and media, the bulk of all requests) goes straight to the
        # origin; everything else through FastAPI's routing.
        from golive.delivery import create_origin_app

        vod = VodCatalog(self.recordings)
        mp4 = AssetMp4s(self.recordings)  # /vod/PID/high.mp4, low.mp4
        self.origin = create_origin_app(self.pipeline or _NoPresentations(), vod=vod, mp4=mp4,
                                        access=self.access,
                                        dvr=LiveArchive(self.recordings.storage),
                                        relay=self.relay)
        root = _Dispatch(self.origin, self.http)
        # Heads, bodies and WebSocket messages bounded before any route holds them.
        limits = HttpLimits.from_settings(s)
        # HTTPS when set: handshakes bounded in time and number (tls_handshake_timeout,
        # tls_max_handshakes).
        self.tls_gate = None if tls is None else HandshakeGate(tls, limits.tls)
        # Connections in all and per address (http_max_connections[_per_address]).
        self.http_connections = connection_budget(s)
        config = server_config(root, limits,
                               ws=chat_websocket_protocol(),  # exposes the transport to /chat/
                               trusted_proxies=s.trusted_proxies, tls=self.tls_gate,
                               fast=self.origin, budget=self.http_connections)
        self._http_server = uvicorn.Server(config)
        self._http_task = asyncio.create_task(
            self._http_server.serve(sockets=[self._http_socket]), name="http-server"
        )
        if self.registry is not None:
            await self.registry.start(s.node_url or self.http_url)

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
            with _listening("RTMP", "rtmp_port", s.host, s.rtmp_port):
                await self.rtmp.start()
        if s.rtmps_port is not None:
            assert tls is not None  # (check_tls refuses rtmps_port without it)
            context = tls
            self.rtmps = RtmpServer(
                self.publish_target, host=s.host, port=s.rtmps_port, ssl_context=context,
                max_tls_handshakes=s.tls_max_handshakes, **rtmp_options
            )
            with _listening("RTMPS", "rtmps_port", s.host, s.rtmps_port):
                await self.rtmps.start()
        if s.srt_port is not None:
            store = self.store
            self.srt = SrtServer(
                self.publish_target,
                host=s.host,
                port=s.srt_port,
                latency=s.srt_latency_ms / 1000,
                passphrase_for=store.srt_passphrase,
                check_timeout=s.srt_check_timeout,
                media_timeout=s.srt_media_timeout,
                max_connections=s.max_publishers * 2,
            )
            with _listening("SRT", "srt_port", s.host, s.srt_port):
                await self.srt.start()

        self.metrics = NodeMetrics(MetricSources(
            hub=self.hub, origin=self.origin.stats, pipeline=self.pipeline, srt=self.srt,
            whep=self.whep, chat=self.chat, webhooks=self.webhooks, recorder=self.recorder,
            access_hook=self.access_hook, readiness=self.readiness, thumbnails=self.thumbnailer,
            http=self.http_connections))

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

    def _srt_stats(self, stream_key: str) -> SrtStats | None:
        """The SRT link figures of the publisher with this key, for a preflight."""
        facts = self.srt.connection_facts().get(stream_key) if self.srt is not None else None
        if facts is None:
            return None
        st = facts.stats
        return SrtStats(rtt_ms=st.rtt_ms, latency_ms=st.latency_ms,
                        packets_received=st.packets_received, packets_lost=st.packets_lost,
                        retransmitted=st.retransmitted, dropped=st.dropped,
                        unsupported_video=facts.unsupported_video,
                        unsupported_audio=facts.unsupported_audio)

    async def _pinned_profile(self, stream: StreamRecord) -> StreamProfile:
        """The profile version the stream is pinned to."""
        assert self.profiles is not None
        return document_profile(await self.profiles.current(stream))

    def _tcp_stats(self, stream_key: str) -> TcpStats | None:
        """The TCP round trip of the RTMP(S) publisher with this key, for a preflight."""
        for server in (self.rtmp, self.rtmps):
            found = server.tcp_round_trip(stream_key) if server is not None else None
            if found is not None:
                return TcpStats(rtt_ms=found.rtt_ms, rtt_var_ms=found.rtt_var_ms)
        return None

    async def _apply_forced_profiles(self, events: Subscription) -> None:
        """Each forced pin of a live stream applied to the broadcast's ladder at once."""
        with events:
            async for event in events:
                try:
                    await self._apply_forced_profile(event)
                except Exception:
                    log.exception("forced profile not applied live stream_id=%s",
                                  event.stream_id)

    async def _apply_forced_profile(self, event: Event) -> None:
        assert self.profiles is not None
        label = event.data.get("changes", {}).get("profile")
        if self.pipeline is None or event.stream_id is None or not isinstance(label, str):
            return
        profile = document_profile(await self.profiles.resolve(label))
        removed = self.pipeline.apply_profile(event.stream_id, profile)
        log.info("forced profile stream_id=%s profile=%s applied_live=%s removed=%s",
                 event.stream_id, label, removed is not None,
                 ",".join(removed or ()))

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
        if self.preflight is not None:
            await self.preflight.close()
        if self.hub is not None:
            await self.hub.close()
        if self.registry is not None:
            await self.registry.close()
        if self.relay is not None:
            await self.relay.close()
        if self.pipeline is not None:
            await self.pipeline.close()
        if self._forced_profiles is not None:
            self._forced_profiles.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._forced_profiles
        if self.destinations is not None:
            await self.destinations.close()
        if self.alerts is not None:
            await self.alerts.close()
        if self.ingest_history is not None:
            await self.ingest_history.close()  # what it holds, before the store closes
        # Ended presentations finish their recordings; what storage does not take in
        # time waits in the spool for the next start.
        if self._sweeper is not None:
            await self._sweeper.close()
        if self._qoe_retention is not None:
            await self._qoe_retention.close()
        if self._history_retention is not None:
            await self._history_retention.close()
        if self.recorder is not None:
            await self.recorder.close()
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
        if self.access_hook is not None:
            await self.access_hook.close()
        if self._recorder is not None:
            await self._recorder.stop()
        if self.wakeups is not None:
            await self.wakeups.close()
        if self.webhooks is not None:
            await self.webhooks.close()
        if self.store is not None:
            await self.store.close()
        if self.redis_link is not None:
            await self.redis_link.close()

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
        auth = Authenticator(s, self.store, throttle=FailureThrottle(
            limits=self.rate_limits, name="api-token-guesses"))
        api = create_api_app(settings=s, store=self.store, bus=self.bus,
                             broadcasts=_LiveView(self), auth=auth, alerts=self.alerts,
                             catalog=self.profiles)
        # Chat: REST under /api/v1, WebSocket /chat/PLAYBACK_ID at the root.
        assert self.chat is not None
        api.include_router(chat_router(auth, self.chat))
        assert self.webhooks is not None
        api.include_router(webhooks_router(auth, self.store, s, ApiAuditTrail(self.store),
                                           self.webhooks.wake))
        api.include_router(audit_router(auth, self.store))
        assert self.recordings is not None
        api.include_router(assets_router(auth, self.recordings, ApiAuditTrail(self.store)))
        assert self.preflight is not None
        api.include_router(preflight_router(auth, self.store, self.preflight,
                                            ApiAuditTrail(self.store)))
        api.include_router(signing_keys_router(auth, self.store, ApiAuditTrail(self.store)))
        assert self.recent_views is not None
        api.include_router(qoe_router(auth, self.store, QoeReports(self.recent_views)))
        api.include_router(reports_router(auth, self.store, BroadcastReports(self.store)))
        relay = self.destinations
        api.include_router(destinations_router(
            auth, self.store, ApiAuditTrail(self.store),
            allow_private=s.destination_allow_private_targets,
            status=relay.status if relay is not None else lambda _stream_id: {},
            changed=relay.sync if relay is not None else lambda _stream_id: None,
            profile_of=self._pinned_profile))
        api.include_router(access_hooks_router(auth, self.store, s.access_hook_url,
                                               ApiAuditTrail(self.store)))
        app.router.routes.extend(chat_routes(self.chat))
        app.router.routes.extend(replay_routes(self.chat, self.recordings))
        app.mount("/api/v1", api)

        hub = self.hub

        @app.get("/healthz", include_in_schema=False)
        async def healthz() -> JSONResponse:
            return JSONResponse(
                {"status": "ok", "version": __version__, "live_broadcasts": len(hub.broadcasts)}
            )

        # /readyz: 503 with the reasons while the node cannot take work.
        self.readiness = Readiness(engine=self.store.engine, ffmpeg=_ffmpeg_or_none(s),
                                   data_dir=s.data_dir,
                                   min_free_percent=s.readyz_min_free_percent)
        readiness = self.readiness

        @app.get("/readyz", include_in_schema=False)
        async def readyz() -> JSONResponse:
            reasons = await readiness.check()
            if reasons:
                return JSONResponse({"status": "not ready", "reasons": list(reasons)},
                                    status_code=503, headers={"Cache-Control": "no-store"})
            return JSONResponse({"status": "ready"}, headers={"Cache-Control": "no-store"})

        # /metrics lists stream ids: the admin token, or a client inside metrics_allow.
        networks = s.metrics_networks
        admin = s.admin_token.get_secret_value().encode() if s.admin_token else None

        @app.get("/metrics", include_in_schema=False)
        async def metrics(request: Request) -> Response:
            if not _may_read_metrics(request, networks, admin):
                return JSONResponse(
                    {"detail": "metrics need the admin token (Authorization: Bearer) or a "
                               "client address inside metrics_allow"}, status_code=403)
            assert self.metrics is not None
            await readiness.recent(READY_METRIC_MAX_AGE, wait=READY_METRIC_WAIT)
            return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST,
                            headers={"Cache-Control": "no-store"})

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
                max_pending_per_address=s.whep_max_pending_per_address,
                max_pending_total=s.whep_max_pending, access=self.access,
                owners=self.registry)  # in a cluster: 307 to the node holding the broadcast
            app.include_router(self.whep.router())

        # Web pages: /watch/PID, /embed/PID, /watch/PID/status, /qoe/PID, /static/.
        assets = AssetCatalog()
        realtime_ice = webrtc.browser_ice_servers() if self.whep is not None else None
        app.router.routes.extend(web_routes(
            self.store, self.pipeline or _NoPresentations(),
            views=PlaybackViewStore(self.store.engine), assets=assets,
            realtime_ice_servers=realtime_ice, recordings=self.recordings,
            access=self.access, limits=self.rate_limits if self.redis_link else None,
            publish_ice_servers=webrtc.browser_ice_servers()))

        # Thumbnails: /thumbnail/PID.jpg, decoded from the live window's segments (?segment=
        # anywhere in a DVR window, past memory from the recording), and ?time= from an
        # asset's stored ones.
        self.thumbnailer = Thumbnailer(s.ffmpeg_path(), concurrency=s.thumbnail_concurrency)
        app.router.routes.extend(ThumbnailRoute(
            self.pipeline or _NoPresentations(), self.thumbnailer,
            RecordedFrames(self.recordings), access=self.access, relay=self.relay,
            dvr=LiveArchive(self.recordings.storage)).routes())

        # Studio: /studio pages and /studio/api/ (session cookie + CSRF), which forward
        # in-process to the API app with the signed-in session's token. The client's
        # base URL is fixed: a request's Host header never picks the API route.
        self._studio_api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=_ViaStudio(api), client=("127.0.0.1", 0)),
            base_url=httpx.URL(scheme="http", host=s.advertised_host, path="/"), timeout=30,
        )
        app.router.routes.extend(studio_routes(Studio(
            auth=auth, api=self._studio_api, secret=self._secret(), assets=assets,
            sessions=SessionBook(StudioSessions(), link=self.redis_link,
                                 secret=self._secret()))))

        return app

    async def _warm_routes(self) -> None:
        """Have FastAPI build its route tables now, not on the first requests.

        FastAPI (0.16x) builds each included router's effective routes lazily, on the first
        request routed through it: ~0.2 s of CPU on the event loop (over a second of wall
        time on a loaded node), paid by whichever request comes first, a studio poll or a
        scrape among live streams. A request in process that matches no route, to the node's
        app and to the API app mounted in it, walks every included router and so builds
        them all before the node serves."""
        assert self.http is not None and self._studio_api is not None
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.http),
                                     base_url="http://127.0.0.1") as node:
            for client in (node, self._studio_api):
                answer = await client.get("/.golive-warm-routes")
                if answer.status_code != 404:
                    log.warning("warming the routes: %d, not 404", answer.status_code)

    async def _alert_spec(self, policy: StreamPolicy) -> AlertSpec:
        """The alert thresholds of a broadcast's pinned profile version (the published
        text it runs), else of the profile file (read in a thread)."""
        return (await self._profile_of(policy)).alerts

    async def _slo_spec(self, policy: StreamPolicy) -> SloSpec:
        """The viewer SLOs (`[slo]`) the viewer-side alert rules judge a broadcast by."""
        return (await self._profile_of(policy)).slo

    async def _profile_of(self, policy: StreamPolicy) -> StreamProfile:
        if policy.profile_document:
            return parse_profile(policy.profile_document, source=policy.profile)
        dirs = (self.settings.resolved_profiles_dir,)
        name = policy.profile.partition("@")[0]
        return await asyncio.to_thread(load_profile, name, dirs)

    def _srt_sample(self, broadcast: Broadcast) -> SrtSample | None:
        """The SRT statistics of a broadcast's publisher, for the alert rules."""
        publisher = broadcast.publisher
        if self.srt is None or publisher is None:
            return None
        facts = self.srt.connection_facts().get(publisher.stream_key)
        if facts is None:
            return None
        st = facts.stats
        return SrtSample(rtt_ms=st.rtt_ms, packets_received=st.packets_received,
                         packets_lost=st.packets_lost, retransmitted=st.retransmitted,
                         dropped=st.dropped, latency_ms=st.latency_ms,
                         unsupported_audio=facts.unsupported_audio,
                         unsupported_video=facts.unsupported_video)

    def _recording_for(self, broadcast: Broadcast) -> SegmentObserver | None:
        """The recording of a broadcast whose stream records, asked once per broadcast."""
        policy = broadcast.policy
        if not policy.recording or self.recorder is None:
            return None
        signed = bool(policy.playback_ids) and policy.playback_ids[0].signed
        return self.recorder.begin(
            stream_id=broadcast.stream_id, broadcast_id=broadcast.id, signed=signed
        )

    def _secret(self) -> bytes:
        """The node's signing secret (chat identities, studio sessions, relayed requests,
        playback session tokens), read once."""
        if self._signing_secret is None:
            s = self.settings
            configured = s.chat_secret.get_secret_value() if s.chat_secret else None
            self._signing_secret = load_chat_secret(configured, s.data_dir)
        return self._signing_secret


def _forced_pin(event: Event) -> bool:
    """A forced profile pin of a stream while it was live."""
    return (event.type is EventType.LIVE_STREAM_UPDATED and event.broadcast_id is not None
            and "forced" in event.data)


def _ffmpeg_or_none(settings: Settings) -> str | None:
    try:
        return settings.ffmpeg_path()
    except RuntimeError:
        return None


def _may_read_metrics(request: Request, networks: tuple[Any, ...], admin: bytes | None) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if (admin is not None and scheme.lower() == "bearer"
            and hmac.compare_digest(token.strip().encode(), admin)):
        return True
    host = request.client.host if request.client is not None else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket's IPv4 client
    return any(address in network for network in networks)


def freeze_startup_heap() -> int:
    """Move everything alive now into the collector's permanent generation; the count moved.

    Called by `golive serve` once the node has started: the imported modules, the
    app, its routes and settings (hundreds of thousands of objects, none of them
    ever garbage) are then skipped by every later collection, so a full collection
    walks only what came after (connections, rooms, requests) instead of that too.
    The collection first leaves no start-up garbage to pin. bench/chat.py measures
    the effect on the chat's delivery tail (its "gc.freeze" column).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def serve_forever(settings: Settings) -> None:
    node = Golive(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with node:
        frozen = freeze_startup_heap()
        log.info("golive started heap_frozen_objects=%d", frozen)
        _print_banner(node)
        await stop.wait()
        log.info("golive stopping")


def _print_banner(node: Golive) -> None:
    s = node.settings
    lines = [
        "",
        f"  golive {__version__} is running",
        f"  HTTP        {node.http_url}   (API: {node.http_url}/api/v1, docs: /api/v1/docs)",
        f"  Studio      {node.http_url}/studio   (go live from a browser: /publish)",
        f"  RTMP ingest {node.rtmp_url()}STREAM_KEY",
        *([f"  RTMPS       rtmps://{s.advertised_host}:{node.rtmps.port}/live/STREAM_KEY"]
          if node.rtmps is not None else []),
        *([f"  SRT ingest  {node.srt_url()}STREAM_KEY"] if node.srt is not None else []),
        *([f"  WHIP ingest {node.http_url}/whip   (Bearer token: the stream key)"]
          if node.whip is not None else []),
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
    tune_garbage_collector()
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
