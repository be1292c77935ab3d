"""Request and response models of the REST API (shaped like Mux's live-stream API).

Request models forbid unknown fields, so a typo is a 422 rather than silently ignored.
Every success body is `{"data": ...}` (`Data[T]`).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from golive.api.auth import Scope
from golive.media import PipelineFacts
from golive.settings import Settings
from golive.store import (
    ApiTokenRecord,
    EventRecord,
    PlaybackIdRecord,
    StreamRecord,
)

T = TypeVar("T")

LatencyMode = Literal["low", "standard"]
PlaybackPolicy = Literal["public", "signed"]
TokenScope = Scope  # golive.api.auth's list; the store checks the same names (TOKEN_SCOPES)
StreamStatus = Literal["idle", "active", "disabled"]


DVR_WINDOW_HELP = ("Seconds of the broadcast its live playlists list, so viewers can seek back "
        "(a seek bar and a go-live button on the watch page); 0: off, at most 21600 (6 h). "
        "Segments older than the live window are served from the recording, so a DVR window "
        "needs `recording`.")

class Data(BaseModel, Generic[T]):
    data: T


class ErrorDetail(BaseModel):
    type: str = Field(examples=["invalid_parameters"])
    messages: list[str] = Field(examples=[["name: String should have at least 1 character"]])


class ErrorBody(BaseModel):
    error: ErrorDetail


# Requests ---------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LiveStreamCreate(_Request):
    name: str = Field(min_length=1, max_length=200, description="Human-readable name.")
    latency_mode: LatencyMode = Field("low", description="`low` (LL-HLS) or `standard`.")
    reconnect_window: float | None = Field(
        None,
        ge=0,
        le=1800,
        description="Seconds a broadcast waits for its publisher to come back; "
        "empty means the server default.",
    )
    profile: str = Field(
        "default", min_length=1, max_length=64,
        description="Release profile: `NAME` pins its newest published version, `NAME@VERSION` "
        "that one; the stream shows the pin as `NAME@VERSION`.",
    )
    recording: bool = Field(False, description="Record broadcasts of this stream.")
    recording_retention_days: int | None = Field(
        None, ge=1, le=36500,
        description="Days this stream's recordings are kept; empty: the node's setting.",
    )
    playback_policy: PlaybackPolicy = Field(
        "public", description="Policy of the playback id created with the stream."
    )
    srt_passphrase: str | None = Field(
        None,
        min_length=10,
        max_length=79,
        description="SRT encryption passphrase (10-79 characters); empty: SRT unencrypted.",
    )
    webrtc_playback: bool | None = Field(
        None,
        strict=True,
        description="Real-time (WHEP) playback at `/whep/PLAYBACK_ID`, under half a second "
        "behind live: broadcasts get one more encode (a WebRTC-safe output). Empty means the "
        "server default (`webrtc_playback` setting).",
    )
    dvr_window: int = Field(0, strict=True, ge=0, le=21600, description=DVR_WINDOW_HELP)


class ProfileForce(_Request):
    """An emergency change of a live stream's profile: why, and every field it changes."""

    reason: str = Field(min_length=1, max_length=1000, description="Why it cannot wait.")
    fields: list[str] = Field(
        min_length=1, max_length=32,
        description="Every profile field the change touches, as TOML paths "
        "(`renditions[0].video_bitrate_kbps`, or a whole table: `alerts`); the change is "
        "refused if it touches any other.",
    )

    @field_validator("fields")
    @classmethod
    def _bounded(cls, value: list[str]) -> list[str]:
        if any(len(f) > 200 for f in value):
            raise ValueError("each field path is at most 200 characters")
        return value


class LiveStreamUpdate(_Request):
    name: str | None = Field(None, min_length=1, max_length=200)
    latency_mode: LatencyMode | None = None
    reconnect_window: float | None = Field(None, ge=0, le=1800)
    profile: str | None = Field(
        None, min_length=1, max_length=64,
        description="Pin another profile version (`NAME` = its newest, or `NAME@VERSION`). "
        "Refused with 409 while the stream is live unless `force` is given.",
    )
    force: ProfileForce | None = Field(
        None, description="Change the profile of a live stream anyway (audited, and an event "
        "of the broadcast); only with `profile`.",
    )
    recording: bool | None = None
    recording_retention_days: int | None = Field(None, ge=1, le=36500)
    srt_passphrase: str | None = Field(
        None, max_length=79, description="New SRT passphrase; an empty string removes it."
    )
    webrtc_playback: bool | None = Field(
        None, strict=True, description="Turn real-time (WHEP) playback on or off; a broadcast already "
        "live keeps what it started with, the next one gets the new choice.",
    )
    dvr_window: int | None = Field(
        None, strict=True, ge=0, le=21600, description=DVR_WINDOW_HELP + " A broadcast already "
        "live keeps the window it started with.",
    )


class PlaybackIdCreate(_Request):
    policy: PlaybackPolicy = "public"


class TokenCreate(_Request):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[TokenScope] = Field(
        ["admin"], min_length=1, max_length=7,
        description="What the token may do; `admin` is everything, `NAME:write` "
        "includes `NAME:read`.",
    )
    expires_at: datetime | None = Field(
        None, description="When the token stops working (UTC, in the future); empty: never."
    )

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A time without a zone is read as UTC."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# Responses --------------------------------------------------------------------------


class PlaybackId(BaseModel):
    id: str
    policy: str


class Ingest(BaseModel):
    rtmp: str = Field(description="RTMP server URL (put the stream key in your encoder).")
    rtmp_url: str | None = Field(None, description="Full RTMP URL including the stream key.")
    srt: str | None = Field(
        None,
        description="SRT URL (with `?streamid=KEY` when the key is known); null while the "
        "node has no SRT listener.",
    )
    rtmps: str | None = Field(None, description="RTMPS server URL, when RTMPS is enabled.")
    rtmps_url: str | None = None


class LiveStream(BaseModel):
    id: str
    name: str
    status: StreamStatus
    latency_mode: str
    reconnect_window: float
    profile: str = Field(description="The pinned release profile, `NAME@VERSION`.")
    recording: bool
    recording_retention_days: int | None = None
    stream_key_prefix: str = Field(description="First characters of the stream key.")
    backup_stream_key_prefix: str | None = Field(
        None, description="First characters of the backup stream key (a second encoder "
        "publishes with it exactly like with the stream key); null until one is made.",
    )
    srt_encrypted: bool = Field(False, description="SRT publishers must use the passphrase.")
    webrtc_playback: bool = Field(
        False, description="Broadcasts also play in real time over WHEP (`/whep/PLAYBACK_ID`)."
    )
    dvr_window: int = Field(0, description=DVR_WINDOW_HELP)
    playback_ids: list[PlaybackId]
    active_broadcast_id: str | None
    ingest: Ingest
    live: dict[str, Any] | None = Field(
        None, description="Facts about the live broadcast (bitrate, publisher...), if any."
    )
    created_at: datetime
    updated_at: datetime


class LiveStreamWithBackupKey(LiveStream):
    backup_stream_key: str = Field(
        description="The full backup stream key; shown only when it is made or replaced "
        "(create, reset-stream-key, reset-backup-stream-key)."
    )


class LiveStreamWithKey(LiveStreamWithBackupKey):
    """Create and reset-stream-key: both keys are new and shown this once."""

    stream_key: str = Field(description="The full stream key; shown only on create and reset.")


class StreamEventOut(BaseModel):
    id: int
    type: str
    stream_id: str
    broadcast_id: str | None
    at: datetime
    data: dict[str, Any]


class AlertOut(BaseModel):
    """An alert with its diagnosis (`golive.health`); the data of its `alert.*` events."""

    alert_id: str
    rule: str = Field(description="keyframe_interval, ingest_slow, ingest_stalled, ...")
    state: Literal["pending", "firing", "resolved"]
    broadcast_id: str
    value: float = Field(description="The latest measured value, in `unit`.")
    threshold: float = Field(description="The profile's threshold it was measured against.")
    unit: str
    peak: float = Field(description="The value farthest past the threshold while open.")
    summary: str
    cause: str = Field(description="The most likely cause, from signals across layers.")
    fix: str
    related: dict[str, Any] = Field(description="The signals the diagnosis rests on.")
    started_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    reason: str | None = Field(None, description="Why it resolved.")


class StreamAlerts(BaseModel):
    active: list[AlertOut] = Field(description="Pending and firing alerts, oldest first.")
    recent: list[AlertOut] = Field(description="Resolved alerts, newest first (bounded).")


class ApiToken(BaseModel):
    id: str
    name: str
    scopes: list[str]
    token_prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")
    revoked_at: datetime | None


class ApiTokenWithSecret(ApiToken):
    token: str = Field(description="The full token; shown only once.")


# Conversions ------------------------------------------------------------------------


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def ingest_urls(settings: Settings, host: str, key: str | None = None) -> Ingest:
    h = _host(host)
    rtmp = f"rtmp://{h}:{settings.rtmp_port}/live"
    rtmps = f"rtmps://{h}:{settings.rtmps_port}/live" if settings.rtmps_port else None
    srt = f"srt://{h}:{settings.srt_port}" if settings.srt_port is not None else None
    return Ingest(
        rtmp=rtmp,
        rtmp_url=f"{rtmp}/{key}" if key else None,
        srt=(f"{srt}?streamid={key}" if key else srt) if srt else None,
        rtmps=rtmps,
        rtmps_url=f"{rtmps}/{key}" if key and rtmps else None,
    )


def pipeline_facts_out(facts: PipelineFacts | None) -> dict[str, Any] | None:
    """The live pipeline's facts as JSON-ready data; parts not known yet are left out."""
    if facts is None:
        return None
    return {k: v for k, v in dataclasses.asdict(facts).items() if v is not None}


def playback_id_out(record: PlaybackIdRecord) -> PlaybackId:
    return PlaybackId(id=record.id, policy=record.policy)


def live_stream_out(
    record: StreamRecord,
    *,
    settings: Settings,
    host: str,
    live: dict[str, Any] | None = None,
    key: str | None = None,
    backup_key: str | None = None,
) -> LiveStream:
    fields: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "status": record.status,
        "latency_mode": record.latency_mode,
        "reconnect_window": record.reconnect_window,
        "profile": record.profile_label,
        "recording": record.recording,
        "recording_retention_days": record.recording_retention_days,
        "stream_key_prefix": record.stream_key_prefix,
        "backup_stream_key_prefix": record.backup_stream_key_prefix,
        "srt_encrypted": record.srt_encrypted,
        "webrtc_playback": record.webrtc_playback,
        "dvr_window": record.dvr_window,
        "playback_ids": [playback_id_out(p) for p in record.playback_ids],
        "active_broadcast_id": record.active_broadcast_id,
        "ingest": ingest_urls(settings, host, key),
        "live": live,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
    if key is not None:
        if backup_key is None:
            raise ValueError("a new stream key is shown with the new backup key")
        return LiveStreamWithKey(stream_key=key, backup_stream_key=backup_key, **fields)
    if backup_key is not None:
        return LiveStreamWithBackupKey(backup_stream_key=backup_key, **fields)
    return LiveStream(**fields)


def event_out(record: EventRecord) -> StreamEventOut:
    return StreamEventOut(
        id=record.id,
        type=record.type,
        stream_id=record.stream_id,
        broadcast_id=record.broadcast_id,
        at=record.at,
        data=dict(record.data),
    )


def token_out(record: ApiTokenRecord, secret: str | None = None) -> ApiToken:
    fields: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "scopes": list(record.scopes),
        "token_prefix": record.token_prefix,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "last_used_at": record.last_used_at,
        "revoked_at": record.revoked_at,
    }
    if secret is not None:
        return ApiTokenWithSecret(token=secret, **fields)
    return ApiToken(**fields)
