"""REST endpoints of preflight (control plane): open a session on an idle stream, read its
go / no-go with every check. Included by the composition root, which owns the desk."""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field

from golive.api.audit import AuditTrail
from golive.api.auth import Authenticator, Principal
from golive.api.errors import ApiError, not_found
from golive.api.schemas import Data
from golive.ops import (
    PREFLIGHT_MAX_DURATION,
    PREFLIGHT_MIN_DURATION,
    PreflightDesk,
    PreflightRefused,
)
from golive.store import PreflightRecord, Store


class PreflightCreate(BaseModel):
    duration: float = Field(
        10.0, ge=PREFLIGHT_MIN_DURATION, le=PREFLIGHT_MAX_DURATION,
        description="Seconds of the real scene to publish and measure.",
    )


class PreflightCheckOut(BaseModel):
    name: str
    status: str = Field(description="`pass`, `warn` or `fail`")
    measured: str
    threshold: str
    fix: str | None


class PreflightOut(BaseModel):
    id: str
    live_stream_id: str
    status: str = Field(description="`waiting` for the publisher (same ingest URL and stream "
                        "key as a broadcast; nothing goes on the air), `capturing`, "
                        "`analyzing`, then `done`, `expired` or `failed`.")
    profile: str = Field(description="The pinned profile judged against, `NAME@VERSION`.")
    duration: float
    verdict: str | None = Field(description="`go` or `no_go` once done.")
    media_seconds: float | None = None
    checks: list[PreflightCheckOut] = Field(default_factory=list)
    error: str | None
    created_at: datetime
    finished_at: datetime | None


def preflight_out(record: PreflightRecord) -> PreflightOut:
    result: dict[str, Any] = record.result or {}
    return PreflightOut(
        id=record.id, live_stream_id=record.stream_id, status=record.status,
        profile=record.profile, duration=record.duration, verdict=record.verdict,
        media_seconds=result.get("media_seconds"),
        checks=[PreflightCheckOut(**c) for c in result.get("checks", [])],
        error=record.error, created_at=record.created_at, finished_at=record.finished_at,
    )


def preflight_router(auth: Authenticator, store: Store, desk: PreflightDesk,
                     trail: AuditTrail) -> APIRouter:
    Reader = Annotated[Principal, auth.scope("streams:read")]
    Writer = Annotated[Principal, auth.scope("streams:write")]
    router = APIRouter(prefix="/live-streams/{stream_id}", tags=["preflight"])

    @router.post("/preflight", status_code=201,
                 summary="Open a preflight session: publish the real scene, get go / no-go")
    async def create(
        request: Request, principal: Writer, stream_id: str,
        body: Annotated[PreflightCreate | None, Body()] = None,
    ) -> Data[PreflightOut]:
        record = await store.get_stream(stream_id)
        if record is None:
            raise not_found("live stream", stream_id)
        try:
            session = await desk.arm(record, (body or PreflightCreate()).duration)
        except PreflightRefused as exc:
            raise ApiError(409, str(exc)) from None
        except LookupError:
            raise not_found("live stream", stream_id) from None
        await trail.record(request, principal, "live_stream.preflight", "live_stream",
                           stream_id, preflight_id=session.id, duration=session.duration)
        return Data(data=preflight_out(session))

    @router.get("/preflights", summary="The stream's preflight sessions, newest first")
    async def list_all(
        principal: Reader, stream_id: str, limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> Data[list[PreflightOut]]:
        if await store.get_stream(stream_id) is None:
            raise not_found("live stream", stream_id)
        return Data(data=[preflight_out(r) for r in
                          await store.list_preflights(stream_id, limit=limit)])

    @router.get("/preflights/{preflight_id}", summary="One preflight session and its checks")
    async def get_one(principal: Reader, stream_id: str, preflight_id: str) -> Data[PreflightOut]:
        record = await store.get_preflight(preflight_id)
        if record is None or record.stream_id != stream_id:
            raise not_found("preflight", preflight_id)
        return Data(data=preflight_out(record))

    return router
