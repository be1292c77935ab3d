"""golive's one settings model: `golive.toml`, `GOLIVE_*` environment variables, serve flags.

Every field has a default and a description; `golive serve --help` (one flag per
field) and `golive config sample` are generated from this model. It also holds the
checks a node runs before it starts (admin token strength, a usable data_dir),
which raise `SettingsProblem` with a message that says what to fix.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import tempfile
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

if TYPE_CHECKING:
    from golive.store.db import PoolOptions

# The admin token opens the whole API; 32 characters of token_urlsafe are 192 bits.
ADMIN_TOKEN_MIN_LENGTH = 32

MAKE_A_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class SettingsProblem(ValueError):
    """A setting a node cannot start with; the message names it and says what to fix."""


class Settings(BaseSettings):
    """Runtime configuration of one golive node."""

    model_config = SettingsConfigDict(
        env_prefix="GOLIVE_",
        toml_file="golive.toml",
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Field(
        Path("./golive-data"),
        description="Directory for the SQLite database, recordings and other state.",
    )
    host: str = Field("0.0.0.0", description="Address every listener binds to: 0.0.0.0 "
                      "every IPv4 address, :: every address, IPv4 and IPv6, on HTTP, RTMP(S) "
                      "and SRT alike.")
    public_host: str = Field(
        "",
        description="Host name shown in ingest and playback URLs; empty means the address the "
        "request came in on (HTTP) or 127.0.0.1.",
    )
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP port: API, playback, pages.")
    rtmp_port: int = Field(1935, ge=0, le=65535, description="RTMP ingest port (0 picks a free port).")
    rtmps_port: int | None = Field(
        None, ge=0, le=65535, description="RTMPS (RTMP over TLS) port; needs tls_cert and tls_key."
    )
    srt_port: int | None = Field(
        9000, ge=0, le=65535, description="SRT ingest port (UDP; 0 picks a free port); empty: no SRT."
    )
    srt_latency_ms: int = Field(
        120,
        ge=20,
        le=8000,
        description="SRT receive latency (TSBPD) golive asks for; the larger of the caller's "
        "and this one applies. Raise it for lossy, long-distance links.",
    )
    srt_check_timeout: float = Field(
        3.0, gt=0, le=60, description="Seconds the stream key and passphrase checks of one SRT "
        "caller may take (a slow database); then the caller is rejected (SRT_REJX 1503, "
        "unavailable) and its connection slot freed."
    )
    srt_media_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds an SRT publisher may go without delivering "
        "MPEG-TS media (an audio or video frame), from its handshake on; then it is "
        "disconnected. SRT keep-alives, null packets or other data do not count, so a caller "
        "cannot hold a publisher slot without publishing."
    )
    tls_cert: Path | None = Field(
        None, description="PEM certificate chain (leaf first). With tls_key, http_port serves "
        "HTTPS (HTTP/1.1) and rtmps_port can be used; both or neither.",
    )
    tls_key: Path | None = Field(
        None, description="PEM private key of tls_cert (unencrypted); both or neither.",
    )
    tls_handshake_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds an HTTPS client has to complete its TLS "
        "handshake, from connecting; then the connection is closed (a client that sends "
        "nothing, or dribbles its hello, holds nothing longer)."
    )
    tls_max_handshakes: int = Field(
        256, ge=1, le=100_000, description="TLS handshakes in progress at once, per TLS port "
        "(HTTPS on http_port, and rtmps_port, whose handshakes are bounded in time by "
        "rtmp_handshake_timeout); a connection past it is closed at once, unread, so "
        "half-open handshakes cannot hold the port."
    )
    admin_token: SecretStr | None = Field(
        None,
        description="If set, accepted as an admin API token (for automation and first boot).",
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy async URL; empty means SQLite in data_dir "
        "(postgresql+asyncpg://... for PostgreSQL).",
    )
    database_pool_size: int = Field(
        5, ge=1, le=1000,
        description="PostgreSQL only: connections the node keeps open to the database.",
    )
    database_pool_max_overflow: int = Field(
        10, ge=0, le=1000,
        description="PostgreSQL only: connections opened beyond database_pool_size under "
        "load, closed again when returned.",
    )
    database_pool_timeout: float = Field(
        30.0, gt=0, le=600,
        description="PostgreSQL only: seconds a query waits for a free pooled connection "
        "before it fails.",
    )
    database_pool_pre_ping: bool = Field(
        True,
        description="PostgreSQL only: test each pooled connection before use, so a "
        "restarted database costs a reconnect instead of a failed query.",
    )
    redis_url: str = Field(
        "",
        description="Redis URL (redis://host:port/db) shared by the nodes of a cluster: chat "
        "message ids, chat fan-out and moderation across nodes, summed viewer counts, studio "
        "sessions and rate limits (token guesses, chat sends, QoE beacons). Empty means one "
        "process with embedded defaults.",
    )
    redis_prefix: str = Field(
        "golive:", max_length=64,
        description="Prefix of every Redis key and channel this node uses; nodes of one "
        "cluster share it, several clusters on one Redis differ.",
    )
    node_url: str = Field(
        "", max_length=200, pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$",
        description="With redis_url: the URL (scheme://host:port, and a path prefix if a "
        "proxy puts one in front) at which the other "
        "nodes reach this node's HTTP port. The broadcast registry names it for the "
        "broadcasts this node holds, and the other nodes fetch those broadcasts' /live/ "
        "media and playlists from it. Empty means http(s)://advertised host:http_port.",
    )
    cluster_entry_ttl: float = Field(
        3.0, ge=1.0, le=60.0,
        description="With redis_url: seconds a node's entry in the broadcast registry lives "
        "without a heartbeat (it is renewed three times in that time); a node that dies "
        "stops owning its broadcasts this long after.",
    )
    cluster_takeover_hold: float = Field(
        8.0, ge=0.0, le=60.0,
        description="With redis_url: seconds a /live/ request for a broadcast another node "
        "held is kept waiting while that node does not answer or no node holds it yet "
        "(its publisher is moving to another node), before a 503 with Retry-After.",
    )
    cluster_relay_timeout: float = Field(
        15.0, ge=1.0, le=120.0,
        description="With redis_url: seconds a node waits for the owner of a broadcast to "
        "answer one relayed /live/ request (blocking playlist reloads included).",
    )
    ffmpeg: str = Field(
        "",
        description="Path to ffmpeg; empty means the imageio-ffmpeg wheel's binary, else PATH.",
    )
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    log_format: str = Field("text", description="Log format: text (key=value) or json.")

    # HTTP limits (golive.httpserver): what one client may make the node hold.
    http_max_head_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest request line plus headers, in bytes; larger "
        "ones get 431 Request Header Fields Too Large."
    )
    http_head_timeout: float = Field(
        10.0, gt=0, description="Seconds a client has to send a request's line and headers "
        "(from connecting, or from its previous response); then the connection is closed."
    )
    http_keep_alive_timeout: int = Field(
        75, ge=1, le=3600, description="Seconds an idle connection is kept open between "
        "requests. Keep it above the idle timeout of whatever reuses connections to the node "
        "(a proxy, edge or load balancer: nginx's upstream keepalive_timeout, Varnish's "
        "backend_idle_timeout and AWS ALB's idle timeout are 60 s): a connection the node "
        "closes as the proxy sends a request on it fails that request (a 502 to the viewer)."
    )
    http_body_timeout: float = Field(
        30.0, gt=0, description="Seconds a client has to send a request's whole body, from "
        "the end of its headers; a slower one gets 408 Request Timeout and the connection "
        "is closed."
    )
    http_max_connections: int = Field(
        100_000, ge=1, description="Most connections open on http_port at once, chat "
        "WebSockets included (lowered to fit the open-file limit). When it is reached the "
        "connection idle the longest (between requests, or not yet sent one) is closed to "
        "make room; when none is idle the new one is closed at once."
    )
    http_max_connections_per_address: int = Field(
        1_000, ge=1, description="Most connections open on http_port from one client "
        "address (an IPv6 client's /64); past it a new one is closed at once. Counted on "
        "the socket's address: trusted_proxies are exempt. A venue or carrier NAT with "
        "more viewers behind one address than this allows (a browser holds up to 6 "
        "connections to the node) needs it raised, or an edge in front."
    )

    # Ingest limits.
    max_publishers: int = Field(100, ge=1, description="Most publishers connected at once.")
    failover_after: float = Field(
        1.0, gt=0, le=60,
        description="Seconds without media from a stream's active publisher (or with its "
        "frame rate or bitrate under a quarter of its recent rate), while a standby on the "
        "stream's other key (backup key) is connected and sending, before the standby takes "
        "over; a profile's [fallback] failover_after replaces it for its streams.",
    )
    failover_return_after: float = Field(
        0.0, ge=0, le=3600,
        description="Switch back to the primary (stream key) publisher once it has sent "
        "media without a gap for this many seconds as the standby, while the backup feeds "
        "the broadcast; 0: stay on the backup until it fails.",
    )
    rtmp_handshake_timeout: float = Field(
        10.0, gt=0, description="Seconds a client has to finish the RTMP handshake and publish."
    )
    rtmp_idle_timeout: float = Field(
        20.0, gt=0, description="Seconds without any bytes from a publisher before it is dropped."
    )
    rtmp_read_batch_ms: float | None = Field(
        None,
        ge=0,
        le=200,
        description="Once a publisher is live, RTMP reads wait up to this many milliseconds "
        "so one read takes several packets: a third to half less CPU per stream for at most "
        "this much extra delay. 0 reads every packet as it arrives. Empty: 40, and 0 for "
        "streams with webrtc_playback (WebRTC players grow their jitter buffer with bursty "
        "input); a number applies to every stream.",
    )
    rtmp_max_message_size: int = Field(
        16 * 1024 * 1024,
        ge=64 * 1024,
        description="Largest RTMP message accepted, in bytes (a big keyframe fits easily).",
    )
    default_reconnect_window: float = Field(
        60.0,
        ge=0,
        le=1800,
        description="Seconds a broadcast waits for its publisher to come back before going idle, "
        "for streams that do not set their own.",
    )
    transcode: bool = Field(
        True,
        description="Run the ffmpeg ladder and LL-HLS packaging for live broadcasts; false "
        "means ingest only (useful for benchmarks and relay-only nodes).",
    )
    alerts: bool = Field(
        True,
        description="Evaluate the alert rules of every live stream (thresholds in its "
        "profile's [alerts] table) and publish alert.firing / alert.resolved events.",
    )
    alerts_interval: float = Field(
        1.0, gt=0, le=60, description="Seconds between two evaluations of the alert rules."
    )
    ingest_history_interval: float = Field(
        10.0, ge=1, le=300, description="Seconds between two samples of a live broadcast's "
        "ingest and encoder figures (bitrate, frame rate, keyframe interval, encoder speed, "
        "SRT round trip and loss) kept in the database for its post-event report; taken "
        "from the alert rules' measurements, so only while `alerts` is on."
    )
    ingest_history_retention: float = Field(
        90 * 86_400.0, gt=0, description="Seconds those samples are kept (a report of an "
        "older broadcast has no ingest figures). Checked every quarter of this, at most "
        "hourly."
    )
    qoe_raw_retention: float = Field(
        7 * 86_400.0, gt=0, description="Seconds the players' raw QoE beacons of a view are "
        "kept after its last report; then the view keeps only its summary (startup, "
        "rebuffering, latency samples, renditions) and its beacons are deleted. Checked "
        "every quarter of this, at most hourly."
    )
    profiles_dir: Path | None = Field(
        None,
        description="Directory of release profile TOML files (NAME.toml, winning over the "
        "built-ins of the same name); each new `version` is published, immutable, when golive "
        "next reads the directory. Empty means data_dir/profiles.",
    )
    thumbnail_concurrency: int = Field(
        2,
        ge=1,
        le=64,
        description="ffmpeg thumbnail decodes (/thumbnail/PLAYBACK_ID.jpg) run at once; "
        "more requests wait, identical ones share a decode.",
    )
    ended_playlist_ttl: float = Field(
        60.0,
        ge=0,
        description="Seconds an ended broadcast's playlists (with EXT-X-ENDLIST) stay served.",
    )
    event_history: int = Field(
        1000, ge=10, description="Events kept per stream in the database (oldest are pruned)."
    )

    # Chat (see golive.chat).
    chat_secret: SecretStr | None = Field(
        None,
        description="Secret that signs chat identity cookies and chat tokens, studio "
        "sessions, the short playback session tokens signed playlists carry, and /live/ and "
        "/thumbnail/ requests one node relays to another (the owner then trusts the relaying "
        "node's check of the viewer); the nodes of a cluster need the same one. Empty means "
        "a random one generated once and kept in data_dir/chat-secret.",
    )
    chat_history: int = Field(
        50, ge=0, le=500, description="Messages a viewer receives when entering a chat room."
    )
    chat_max_message_length: int = Field(
        500, ge=1, le=2000, description="Longest chat message, in characters (after trimming)."
    )
    chat_user_rate: float = Field(
        1.0, gt=0, description="Messages per second one chat user may send on average."
    )
    chat_user_burst: int = Field(
        5, ge=1, description="Messages one chat user may send in a quick burst."
    )
    chat_room_rate: float = Field(
        100.0, gt=0, description="Messages per second one stream's chat accepts in total; "
        "more are refused with \"chat is busy\"."
    )
    chat_room_burst: int = Field(
        200, ge=1, description="Messages a stream's chat accepts in a quick burst."
    )
    chat_flush_interval: float = Field(
        0.05, ge=0.001, le=1.0,
        description="Seconds between a chat room's outgoing batches (events that arrive in "
        "between go out together as one JSON array).",
    )
    chat_send_queue: int = Field(
        64, ge=1, description="Outgoing batches queued per chat connection; a viewer that "
        "falls further behind is dropped from the room.",
    )
    chat_send_timeout: float = Field(
        10.0, gt=0, description="Seconds one send to a chat viewer may take before the viewer "
        "is dropped from the room.",
    )
    chat_max_frame_bytes: int = Field(
        4096, ge=256, description="Largest WebSocket frame a chat client may send, in bytes."
    )
    chat_max_bad_frames: int = Field(
        5, ge=1, description="Invalid frames (bad JSON, too big, unknown type) a chat client "
        "may send before it is disconnected.",
    )
    chat_max_connections: int = Field(
        50_000, ge=1, description="Most chat WebSocket connections on this node."
    )
    chat_max_connections_per_address: int = Field(
        20, ge=1, description="Most chat WebSocket connections from one client address "
        "(behind trusted_proxies, the forwarded one); more are refused.",
    )
    access_hook_url: str | None = Field(
        None, max_length=2000, pattern=r"^https?://",
        description="Access hook for every stream without its own: before a publish, a play "
        "session or a chat join golive POSTs a JSON description there and the hook answers "
        '{"allow": true|false, "reason": "...", "cache_seconds": N}. Unset: no hook.',
    )
    access_hook_timeout: float = Field(
        2.0, gt=0, le=30, description="Seconds to wait for the access hook's answer; past it "
        "access_hook_fail_open decides.",
    )
    access_hook_fail_open: bool = Field(
        False, description="When the access hook times out or fails: true lets the request "
        "in, false (the default) refuses it. Either way the failure is logged and counted "
        "(golive_access_hook_errors_total).",
    )
    chat_review_timeout: float = Field(
        0.2, gt=0, le=5.0, description="Seconds to wait for a stream's message review hook "
        "before applying its fallback."
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or networks (CIDR) of reverse proxies whose "
        "X-Forwarded-For and X-Forwarded-Proto headers are trusted for the client address "
        "and scheme (chat bans, per-address limits and throttles, logs).",
    )
    metrics_allow: list[str] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"], max_length=100,
        description="Networks (CIDR) whose clients may read /metrics without a token; any "
        "other client needs the admin token as a Bearer token (the metrics list stream ids). "
        "Empty: the token only.",
    )
    readyz_min_free_percent: float = Field(
        5.0, ge=0, le=100,
        description="/readyz answers 503 when the data directory's disk has less than this "
        "percentage free.",
    )

    # Destinations (simulcast, golive.media.destinations) -- begin.
    destination_allow_private_targets: bool = Field(
        False, description="Allow destination URLs (simulcast targets) whose host resolves to "
        "a private, loopback or link-local address (checked when a destination is saved and "
        "before every attempt); off, such targets are refused (SSRF).",
    )
    destination_queue_bytes: int = Field(
        8 * 1024 * 1024, ge=256 * 1024, le=256 * 1024 * 1024,
        description="Bytes of media one destination may have waiting; past it, whole GOPs "
        "are dropped (and counted) so a slow target never holds up ingest or the ladder.",
    )
    # Destinations -- end.

    # Webhooks (golive.webhooks) -- begin.
    webhook_allow_private_targets: bool = Field(
        False, description="Allow webhook URLs whose host resolves to a private, loopback or "
        "link-local address (checked when an endpoint is saved and before every delivery); "
        "off, such targets are refused (SSRF).",
    )
    webhook_timeout: float = Field(
        10.0, gt=0, le=60, description="Seconds one webhook delivery attempt may take: "
        "resolving, connecting, sending and reading the start of the answer.",
    )
    webhook_retry_first: float = Field(
        5.0, gt=0, le=3600, description="Seconds before a failed webhook delivery is first "
        "retried; each further retry waits twice as long (up to webhook_retry_longest), "
        "less up to a quarter at random.",
    )
    webhook_retry_longest: float = Field(
        1800.0, gt=0, le=86400, description="Longest wait between two attempts of a webhook "
        "delivery.",
    )
    webhook_retry_for: float = Field(
        86400.0, gt=0, le=7 * 86400, description="Seconds after it was queued that a webhook "
        "delivery still failing is given up (it stays in the log and can be redelivered).",
    )
    webhook_window: int = Field(
        8, ge=1, le=64, description="Webhook requests one endpoint may have in flight at "
        "once, over as many keep-alive connections: first attempts start in order of "
        "creation, so one may arrive before an earlier one still in flight (never before "
        "one this many places earlier); 1 sends strictly one at a time. A delivery being "
        "retried is always sent alone, oldest first.",
    )
    webhook_log_retention: float = Field(
        7 * 86400.0, gt=0, description="Seconds finished webhook deliveries stay in the "
        "delivery log.",
    )
    # Webhooks -- end.

    # WebRTC (WHIP ingest, WHEP playback; see golive.webrtc.ice) -- begin.
    webrtc_ice_servers: list[str] = Field(
        default_factory=list,
        description="STUN/TURN server URLs (stun:host:port, turn:host:port?transport=udp) "
        "used by golive's WebRTC side and advertised to WHIP clients; empty means none, so "
        "golive contacts no outside host.",
    )
    webrtc_ice_username: str = Field(
        "", description="Username for the TURN servers in webrtc_ice_servers."
    )
    webrtc_ice_credential: SecretStr | None = Field(
        None, description="Password for the TURN servers in webrtc_ice_servers."
    )
    webrtc_host_addresses: list[str] = Field(
        default_factory=list,
        description="Local IP addresses WebRTC gathers host candidates on (for example "
        '["127.0.0.1"] for tests, or one interface\'s address); empty means every '
        "non-loopback interface.",
    )
    webrtc_public_address: str = Field(
        "",
        description="Public IP address of a server behind 1:1 NAT: added as a host "
        "candidate next to each local one, same port.",
    )
    whip_max_sessions: int = Field(
        20, ge=1, description="Most WHIP (WebRTC) publishers connected at once."
    )
    whip_connect_timeout: float = Field(
        15.0, gt=0, description="Seconds a WHIP client has to complete ICE and DTLS."
    )
    whip_idle_timeout: float = Field(
        20.0, gt=0, description="Seconds without media from a WHIP publisher before it is "
        "dropped.",
    )

    webrtc_playback: bool = Field(
        False, description="Default of new streams' webrtc_playback (WHEP real-time "
        "playback): the transcoder adds one WebRTC-safe output (H.264 constrained baseline, "
        "no B-frames, 1 s GOP, Opus) to each broadcast of a stream that has it, packetized "
        "for every WHEP viewer without re-encoding.",
    )
    whep_max_viewers: int = Field(
        20, ge=1, description="Most WHEP (WebRTC) viewers per broadcast; past it viewers are "
        "told to use LL-HLS.",
    )
    whep_connect_timeout: float = Field(
        5.0, gt=0, description="Seconds a WHEP viewer has to complete ICE and DTLS; until "
        "then it holds no viewer slot, only one of the broadcast's few connecting slots "
        "(a quarter of whep_max_viewers, at least 4).",
    )
    whep_max_pending_per_address: int = Field(
        2, ge=1, description="Most WHEP sessions still connecting from one client address; "
        "more offers are answered 429.",
    )
    whep_max_pending: int = Field(
        64, ge=1, description="Most WHEP sessions still connecting on the whole node, every "
        "broadcast together (each holds a peer connection and its UDP sockets until "
        "whep_connect_timeout); more offers are answered 503 with Retry-After.",
    )

    # Recording -- storage of recorded segments and the assets they become.
    storage_url: str = Field(
        "",
        description="Where recordings are stored: s3://BUCKET/PREFIX for S3-compatible object "
        "storage (see the storage_s3_* settings); empty: local disk under data_dir/recordings.",
    )
    storage_s3_endpoint: str = Field(
        "",
        description="S3 endpoint URL (http://host:port for MinIO, Ceph, moto...); empty: AWS.",
    )
    storage_s3_region: str = Field("us-east-1", description="S3 region.")
    storage_s3_access_key_id: str = Field("", description="S3 access key id; empty: anonymous.")
    storage_s3_secret_access_key: SecretStr | None = Field(
        None, description="S3 secret access key (never logged)."
    )
    storage_s3_path_style: bool = Field(
        True,
        description="Path-style S3 requests (endpoint/bucket/key), as most self-hosted S3 "
        "servers need; false: virtual-hosted style (bucket.endpoint/key).",
    )
    storage_timeout: float = Field(
        10.0, gt=0, le=300,
        description="Seconds one storage request may take before it counts as failed and "
        "is retried later.",
    )
    recording_queue_segments: int = Field(
        256, ge=1, le=100_000,
        description="Segments waiting in memory for storage, across all recordings; past "
        "it, and whenever storage is failing, they wait in the spool on disk.",
    )
    recording_spool_bytes: int = Field(
        2 * 1024**3, ge=0,
        description="Bytes of segments kept on local disk (data_dir/spool) while storage is "
        "slow or down; past it the oldest waiting segments are dropped, with a warning.",
    )
    recording_retention_days: int | None = Field(
        None, ge=1, le=36500,
        description="Days an asset is kept before the sweeper deletes it (a stream's own "
        "recording_retention_days wins); empty: kept until deleted.",
    )
    recording_sweep_interval: float = Field(
        3600.0, gt=0, description="Seconds between sweeps for expired assets."
    )

    @field_validator("webrtc_host_addresses")
    @classmethod
    def _ip_addresses(cls, v: list[str]) -> list[str]:
        import ipaddress

        for address in v:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"webrtc_host_addresses: {address!r} is not an IP address") from None
        return v
    # WebRTC -- end.

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"metrics_allow: {item!r} is not a network (CIDR)") from None
        return v

    @property
    def metrics_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """`metrics_allow`, parsed."""
        import ipaddress

        return tuple(ipaddress.ip_network(item, strict=False) for item in self.metrics_allow)

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, v: str) -> str:
        if v and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?", v):
            raise ValueError("storage_url must be empty (local disk) or s3://BUCKET/PREFIX")
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.lower()
        if v not in {"debug", "info", "warning", "error"}:
            raise ValueError("log_level must be one of debug, info, warning, error")
        return v

    @field_validator("log_format")
    @classmethod
    def _format(cls, v: str) -> str:
        if v not in {"text", "json"}:
            raise ValueError("log_format must be text or json")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("GOLIVE_CONFIG", "golive.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    # Derived values -----------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'golive.db').resolve()}"

    @property
    def database_pool(self) -> PoolOptions:
        from golive.store.db import PoolOptions

        return PoolOptions(
            size=self.database_pool_size, max_overflow=self.database_pool_max_overflow,
            pre_ping=self.database_pool_pre_ping, timeout=self.database_pool_timeout,
        )

    @property
    def advertised_host(self) -> str:
        if self.public_host:
            return self.public_host
        return "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host

    @property
    def recordings_dir(self) -> Path:
        """Where local-disk storage keeps recordings."""
        return self.data_dir / "recordings"

    @property
    def resolved_profiles_dir(self) -> Path:
        """Where user stream profiles are read from (they win over the built-ins)."""
        return self.profiles_dir or self.data_dir / "profiles"

    @property
    def rtmp_read_batch(self) -> float:
        """Seconds RTMP reads of a stream without webrtc_playback are batched for."""
        if self.rtmp_read_batch_ms is not None:
            return self.rtmp_read_batch_ms / 1000
        return 0.040

    @property
    def rtmp_webrtc_read_batch(self) -> float:
        """Seconds RTMP reads of a stream with webrtc_playback are batched for."""
        if self.rtmp_read_batch_ms is not None:
            return self.rtmp_read_batch_ms / 1000
        return 0.0

    # Checks before serving -----------------------------------------------------------

    def check_admin_token(self) -> None:
        """Refuse an admin token short enough to guess; empty means no admin token."""
        token = self.admin_token.get_secret_value() if self.admin_token else ""
        if token and len(token) < ADMIN_TOKEN_MIN_LENGTH:
            raise SettingsProblem(
                f"admin_token (GOLIVE_ADMIN_TOKEN) has {len(token)} characters; it needs at "
                f"least {ADMIN_TOKEN_MIN_LENGTH} because it opens the whole API. "
                f"Make one with:\n\n    {MAKE_A_TOKEN}\n"
            )

    @property
    def http_scheme(self) -> str:
        """What http_port speaks: https when a certificate is configured."""
        return "https" if self.tls_cert is not None else "http"

    def check_tls(self) -> ssl.SSLContext | None:
        """The server TLS context from tls_cert and tls_key, or None when neither is set.

        Both or neither; the files must load as a certificate chain with its own key, so
        a wrong path or a key of another certificate stops the node before it listens.
        """
        if self.tls_cert is None and self.tls_key is None:
            if self.rtmps_port is not None:
                raise SettingsProblem(
                    "rtmps_port is set but tls_cert and tls_key are not: RTMPS needs a PEM "
                    "certificate chain and its private key (GOLIVE_TLS_CERT, GOLIVE_TLS_KEY); "
                    "or leave rtmps_port unset for RTMP only.")
            return None
        if self.tls_cert is None or self.tls_key is None:
            given, missing = (("tls_cert", "tls_key") if self.tls_key is None
                              else ("tls_key", "tls_cert"))
            raise SettingsProblem(
                f"{given} is set but {missing} is not: HTTPS (and RTMPS) need both, a PEM "
                f"certificate chain and its private key (GOLIVE_TLS_CERT, GOLIVE_TLS_KEY), "
                "or neither for plain HTTP."
            )
        for name, path in (("tls_cert", self.tls_cert), ("tls_key", self.tls_key)):
            try:
                with path.open("rb"):
                    pass
            except OSError as exc:
                raise SettingsProblem(
                    f"{name} {path} cannot be read: {_reason(exc)}. Point {name} at a PEM "
                    "file the user running golive can read."
                ) from None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            # A passphrase-protected key would make OpenSSL prompt on the terminal.
            context.load_cert_chain(self.tls_cert, self.tls_key, password=_no_passphrase)
        except ssl.SSLError as exc:
            raise SettingsProblem(
                f"tls_cert {self.tls_cert} and tls_key {self.tls_key} do not load as a PEM "
                f"certificate chain with its unencrypted private key ({exc.reason or exc}); "
                "check that the key belongs to the first certificate."
            ) from None
        return context

    def prepare_data_dir(self) -> Path:
        """Create data_dir if missing and prove a file can be written there."""
        path = self.data_dir
        shown = path if path.is_absolute() else f"{path} ({path.absolute()})"
        where = (
            "set data_dir (golive.toml, GOLIVE_DATA_DIR or --data-dir) to a directory "
            "golive can write"
        )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise SettingsProblem(
                f"data_dir {shown} is a file, not a directory; move it away, or {where}."
            ) from None
        except OSError as exc:
            raise SettingsProblem(
                f"data_dir {shown} cannot be created: {_reason(exc)}. "
                f"Create it yourself, or {where}."
            ) from None
        try:
            # A real file, as the database and recordings will need: os.access says
            # yes to root on read-only mounts and no to ACL grants.
            with tempfile.TemporaryFile(dir=path, prefix=".golive-write-check-"):
                pass
        except OSError as exc:
            raise SettingsProblem(
                f"data_dir {shown} is not writable: {_reason(exc)}. Give the user running "
                f"golive write access to it (chown/chmod), or {where}."
            ) from None
        return path

    def ffmpeg_path(self) -> str:
        """Where ffmpeg is: the setting, else the imageio-ffmpeg wheel's binary, else PATH."""
        if self.ffmpeg:
            return self.ffmpeg
        try:
            import imageio_ffmpeg

            path: str = imageio_ffmpeg.get_ffmpeg_exe()
            return path
        except Exception:
            found = shutil.which("ffmpeg")
            if found is None:
                raise RuntimeError(
                    "ffmpeg not found: install the imageio-ffmpeg wheel, put ffmpeg on PATH, "
                    "or set GOLIVE_FFMPEG"
                ) from None
            return found


def _no_passphrase() -> bytes:
    """The passphrase offered for an encrypted tls_key: none, so loading it fails."""
    return b""


def _reason(exc: OSError) -> str:
    """The OS's words for a failure, without the repeated path."""
    return exc.strerror or str(exc)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from golive.toml, the environment, and explicit overrides (flags)."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
