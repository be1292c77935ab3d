"""The REST API (control plane), mounted by the caller at `/api/v1`.

`create_api_app` builds a FastAPI sub-application serving `/live-streams`, `/tokens`,
OpenAPI at `/openapi.json` and docs at `/docs`. Changes are announced on the event
bus (`live_stream.created` ...); the event recorder, not the API, stores them.
"""

from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Body, FastAPI, Query, Request, Response

from golive import __version__
from golive.api.audit import AuditTrail
from golive.api.auth import Authenticator, Principal
from golive.api.errors import (
    ApiError,
    BodyLimitMiddleware,
    install_error_handlers,
    not_found,
)
from golive.api.profiles import (
    announce_pin,
    forced_change,
    frozen,
    profile_unknown,
    profiles_router,
)
from golive.api.schemas import (
    ApiToken,
    ApiTokenWithSecret,
    Data,
    ErrorBody,
    LiveStream,
    LiveStreamCreate,
    LiveStreamUpdate,
    LiveStreamWithBackupKey,
    LiveStreamWithKey,
    PlaybackId,
    PlaybackIdCreate,
    StreamAlerts,
    StreamEventOut,
    TokenCreate,
    event_out,
    live_stream_out,
    playback_id_out,
    token_out,
)
from golive.core import Event, EventBus, EventType, new_stream_key
from golive.media import ProfileError
from golive.ops import ProfileCatalog, ProfileFrozen
from golive.settings import Settings
from golive.store import Store, StreamRecord


class BroadcastView(Protocol):
    """What the API needs from the broadcast hub (`golive.stream.BroadcastHub`)."""

    def ingest_facts(self, stream_id: str) -> dict[str, Any] | None: ...

    async def stream_changed(self, stream_id: str) -> None: ...


class AlertView(Protocol):
    """What the API shows of the alert engine (`golive.health.AlertEngine`)."""

    def alerts(self, stream_id: str) -> dict[str, list[dict[str, Any]]]:
        """Active and recent alerts of a stream."""
        ...


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": desc}
    for code, desc in (
        (401, "Missing or invalid bearer token"),
        (403, "Token scope does not allow this request"),
        (422, "Invalid parameters; each message names the field"),
    )
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Not found"}
}


def create_api_app(
    *, settings: Settings, store: Store, bus: EventBus, broadcasts: BroadcastView,
    auth: Authenticator, alerts: AlertView | None = None,
    catalog: ProfileCatalog | None = None,
) -> FastAPI:
    """The API app; `/live-streams/ID/alerts` exists where `alerts` is given."""
    app = FastAPI(
        title="golive API",
        version=__version__,
        description="Control plane of a golive node: live streams, playback ids, API tokens.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        responses=_ERRORS,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware)
    # The scope each route needs; `admin` tokens have them all.
    Reader = Annotated[Principal, auth.scope("streams:read")]
    Writer = Annotated[Principal, auth.scope("streams:write")]
    Admin = Annotated[Principal, auth.scope("admin")]
    trail = AuditTrail(store)
    catalog = catalog or ProfileCatalog(store, settings.resolved_profiles_dir)
    streams = APIRouter(prefix="/live-streams", tags=["live streams"], responses=_NOT_FOUND)
    tokens = APIRouter(prefix="/tokens", tags=["API tokens"])

    def host_of(request: Request) -> str:
        return settings.public_host or request.url.hostname or settings.advertised_host

    def out(request: Request, record: StreamRecord, key: str | None = None,
            backup_key: str | None = None) -> LiveStream:
        return live_stream_out(
            record,
            settings=settings,
            host=host_of(request),
            live=broadcasts.ingest_facts(record.id),
            key=key,
            backup_key=backup_key,
        )

    async def existing(stream_id: str) -> StreamRecord:
        record = await store.get_stream(stream_id)
        if record is None:
            raise not_found("live stream", stream_id)
        return record


    def publish(kind: EventType, stream_id: str, principal: Principal, **data: Any) -> None:
        data["by"] = principal.name
        bus.publish(Event(type=kind, stream_id=stream_id, data=data))

    # Live streams -----------------------------------------------------------------------

    @streams.post("", status_code=201, summary="Create a live stream")
    async def create_stream(
        request: Request, principal: Writer, body: LiveStreamCreate
    ) -> Data[LiveStreamWithKey]:
        try:
            pinned = await catalog.resolve(body.profile)
        except ProfileError as exc:
            raise profile_unknown(exc) from None
        window = body.reconnect_window
        backup_key = new_stream_key()
        record, key = await store.create_stream(
            name=body.name,
            latency_mode=body.latency_mode,
            reconnect_window=settings.default_reconnect_window if window is None else window,
            profile=pinned.name,
            profile_version=pinned.version,
            pinned_by=principal.name,
            recording=body.recording,
            recording_retention_days=body.recording_retention_days,
            playback_policy=body.playback_policy,
            srt_passphrase=body.srt_passphrase,
            webrtc_playback=(settings.webrtc_playback if body.webrtc_playback is None
                             else body.webrtc_playback),
            dvr_window=body.dvr_window,
            backup_stream_key=backup_key,
        )
        publish(EventType.LIVE_STREAM_CREATED, record.id, principal, name=record.name,
                profile=record.profile_label)
        await trail.record(request, principal, "live_stream.create", "live_stream", record.id,
                           name=record.name)
        result = out(request, record, key, backup_key)
        assert isinstance(result, LiveStreamWithKey)
        return Data(data=result)

    @streams.get("", summary="List live streams (oldest first; page with `after`)")
    async def list_streams(
        request: Request,
        principal: Reader,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after: Annotated[str | None, Query(max_length=100, description="Last id seen")] = None,
    ) -> Data[list[LiveStream]]:
        records = await store.list_streams(limit=limit, after=after)
        return Data(data=[out(request, r) for r in records])

    @streams.get("/{stream_id}", summary="Get a live stream")
    async def get_stream(request: Request, principal: Reader, stream_id: str) -> Data[LiveStream]:
        return Data(data=out(request, await existing(stream_id)))

    @streams.patch("/{stream_id}", summary="Update a live stream")
    async def update_stream(
        request: Request, principal: Writer, stream_id: str, body: LiveStreamUpdate
    ) -> Data[LiveStream]:
        changes = body.model_dump(exclude_unset=True, exclude={"force"})
        # A null retention hands the stream back to the node's default.
        nulls = sorted(k for k, v in changes.items()
                       if v is None and k != "recording_retention_days")
        if nulls:
            raise ApiError(422, *(f"{k}: may not be null" for k in nulls))
        if body.force is not None and "profile" not in changes:
            raise ApiError(422, "force: only a change of profile can be forced")
        if not changes:
            return Data(data=out(request, await existing(stream_id)))
        spec = changes.pop("profile", None)
        if spec is not None:
            # The pin first: a live stream refuses it (409), and then nothing else changes.
            current = await existing(stream_id)
            try:
                outcome = await catalog.pin(current, spec, by=principal.name,
                                            force=forced_change(body.force))
            except ProfileError as exc:
                raise profile_unknown(exc) from None
            except ProfileFrozen as exc:
                raise frozen(exc) from None
            except LookupError:
                raise not_found("live stream", stream_id) from None
            if outcome.previous != outcome.current or outcome.forced is not None:
                await announce_pin(bus, trail, request, principal, outcome,
                                   "live_stream.profile_pin")
            if not changes:
                return Data(data=out(request, outcome.stream))
        record = await store.update_stream(stream_id, **changes)
        if record is None:
            raise not_found("live stream", stream_id)
        # Events are recorded and sent to webhooks: never the passphrase itself.
        shown = {k: ("(changed)" if k == "srt_passphrase" else v) for k, v in changes.items()}
        publish(EventType.LIVE_STREAM_UPDATED, stream_id, principal, changes=shown)
        await trail.record(request, principal, "live_stream.update", "live_stream", stream_id,
                           changes=shown)
        return Data(data=out(request, record))

    @streams.delete("/{stream_id}", status_code=204, summary="Delete a live stream")
    async def delete_stream(request: Request, principal: Writer, stream_id: str) -> Response:
        if not await store.delete_stream(stream_id):
            raise not_found("live stream", stream_id)
        publish(EventType.LIVE_STREAM_DELETED, stream_id, principal)
        await trail.record(request, principal, "live_stream.delete", "live_stream", stream_id)
        await broadcasts.stream_changed(stream_id)
        return Response(status_code=204)

    @streams.post("/{stream_id}/reset-stream-key", summary="Replace the stream key and the backup stream key")
    async def reset_stream_key(
        request: Request, principal: Writer, stream_id: str
    ) -> Data[LiveStreamWithKey]:
        backup_key = new_stream_key()
        result = await store.reset_stream_key(stream_id, backup_stream_key=backup_key)
        if result is None:
            raise not_found("live stream", stream_id)
        record, key = result
        publish(EventType.LIVE_STREAM_UPDATED, stream_id, principal,
                changes={"stream_key": "reset", "backup_stream_key": "reset"})
        await trail.record(request, principal, "live_stream.reset_stream_key", "live_stream",
                           stream_id)
        await broadcasts.stream_changed(stream_id)
        payload = out(request, record, key, backup_key)
        assert isinstance(payload, LiveStreamWithKey)
        return Data(data=payload)

    @streams.post("/{stream_id}/reset-backup-stream-key",
                  summary="Make or replace the backup stream key")
    async def reset_backup_stream_key(
        request: Request, principal: Writer, stream_id: str
    ) -> Data[LiveStreamWithBackupKey]:
        result = await store.reset_backup_stream_key(stream_id)
        if result is None:
            raise not_found("live stream", stream_id)
        record, key = result
        publish(EventType.LIVE_STREAM_UPDATED, stream_id, principal,
                changes={"backup_stream_key": "reset"})
        await trail.record(request, principal, "live_stream.reset_backup_stream_key",
                           "live_stream", stream_id)
        # A publisher on the replaced backup key is dropped like one on a replaced key.
        await broadcasts.stream_changed(stream_id)
        payload = out(request, record, backup_key=key)
        assert isinstance(payload, LiveStreamWithBackupKey)
        return Data(data=payload)

    async def set_enabled(
        request: Request, principal: Principal, stream_id: str, enabled: bool
    ) -> Data[LiveStream]:
        before = await existing(stream_id)
        record = await store.set_enabled(stream_id, enabled)
        if record is None:
            raise not_found("live stream", stream_id)
        if (before.status == "disabled") != (record.status == "disabled"):
            kind = EventType.LIVE_STREAM_ENABLED if enabled else EventType.LIVE_STREAM_DISABLED
            publish(kind, stream_id, principal)
        await trail.record(request, principal,
                           "live_stream.enable" if enabled else "live_stream.disable",
                           "live_stream", stream_id)
        await broadcasts.stream_changed(stream_id)
        return Data(data=out(request, record))

    @streams.put("/{stream_id}/enable", summary="Enable a live stream")
    @streams.post("/{stream_id}/enable", include_in_schema=False)
    async def enable_stream(request: Request, principal: Writer, stream_id: str) -> Data[LiveStream]:
        return await set_enabled(request, principal, stream_id, True)

    @streams.put("/{stream_id}/disable", summary="Disable a live stream (kicks its publisher)")
    @streams.post("/{stream_id}/disable", include_in_schema=False)
    async def disable_stream(
        request: Request, principal: Writer, stream_id: str
    ) -> Data[LiveStream]:
        return await set_enabled(request, principal, stream_id, False)

    @streams.post("/{stream_id}/playback-ids", status_code=201, summary="Add a playback id")
    async def add_playback_id(
        request: Request,
        principal: Writer,
        stream_id: str,
        body: Annotated[PlaybackIdCreate | None, Body()] = None,
    ) -> Data[PlaybackId]:
        policy = body.policy if body is not None else "public"
        record = await store.add_playback_id(stream_id, policy)
        if record is None:
            raise not_found("live stream", stream_id)
        publish(EventType.LIVE_STREAM_UPDATED, stream_id, principal, playback_id_added=record.id)
        await trail.record(request, principal, "live_stream.add_playback_id", "live_stream",
                           stream_id, playback_id=record.id, policy=policy)
        return Data(data=playback_id_out(record))

    @streams.delete(
        "/{stream_id}/playback-ids/{playback_id}", status_code=204, summary="Delete a playback id"
    )
    async def delete_playback_id(
        request: Request, principal: Writer, stream_id: str, playback_id: str
    ) -> Response:
        if not await store.delete_playback_id(stream_id, playback_id):
            await existing(stream_id)
            raise not_found("playback id", playback_id)
        publish(
            EventType.LIVE_STREAM_UPDATED, stream_id, principal, playback_id_deleted=playback_id
        )
        await trail.record(request, principal, "live_stream.delete_playback_id", "live_stream",
                           stream_id, playback_id=playback_id)
        return Response(status_code=204)

    @streams.get("/{stream_id}/events", summary="Events of a live stream, newest first")
    async def list_events(
        principal: Reader,
        stream_id: str,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[int | None, Query(ge=1, description="Event id to page below")] = None,
    ) -> Data[list[StreamEventOut]]:
        await existing(stream_id)
        records = await store.list_events(stream_id, limit=limit, before=before)
        return Data(data=[event_out(r) for r in records])

    if alerts is not None:
        engine = alerts

        @streams.get("/{stream_id}/alerts",
                     summary="Alerts of a live stream with their diagnoses: active and recent")
        async def list_alerts(principal: Reader, stream_id: str) -> Data[StreamAlerts]:
            await existing(stream_id)
            return Data(data=StreamAlerts.model_validate(engine.alerts(stream_id)))

    # API tokens ---------------------------------------------------------------------------

    @tokens.post("", status_code=201, summary="Create an API token (shown once)")
    async def create_token(
        request: Request, principal: Admin, body: TokenCreate
    ) -> Data[ApiTokenWithSecret]:
        try:
            record, secret = await store.create_api_token(
                name=body.name, scopes=body.scopes, expires_at=body.expires_at)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        await trail.record(request, principal, "api_token.create", "api_token", record.id,
                           name=record.name, scopes=list(record.scopes),
                           expires_at=record.expires_at)
        result = token_out(record, secret)
        assert isinstance(result, ApiTokenWithSecret)
        return Data(data=result)

    @tokens.get("", summary="List API tokens")
    async def list_tokens(principal: Admin) -> Data[list[ApiToken]]:
        return Data(data=[token_out(r) for r in await store.list_api_tokens()])

    @tokens.delete("/{token_id}", status_code=204, responses=_NOT_FOUND, summary="Revoke a token")
    async def revoke_token(request: Request, principal: Admin, token_id: str) -> Response:
        if not await store.revoke_api_token(token_id):
            raise not_found("API token", token_id)
        await trail.record(request, principal, "api_token.revoke", "api_token", token_id)
        return Response(status_code=204)

    app.include_router(streams)
    app.include_router(tokens)
    app.include_router(profiles_router(auth, store, catalog, bus, trail, out))
    return app
