"""The audit log over the API: who changed what, from where (control plane).

`AuditTrail.record` is the one call every control-plane change makes after it
succeeds (streams, keys, chat moderation, tokens, webhooks; later signing keys,
assets, profiles). Who is the request's token (its id and name, or the admin token);
from where is the client address the HTTP server resolved (`trusted_proxies`
applied). A change the studio forwards in process is marked by the studio
(`STUDIO_CLIENT_HEADER`, believed only on the studio's own in-process route) with
the browser's address, so the log says "studio" and where the browser was.
`GET /audit` lists the log newest first with filters and keyset pages.
"""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from golive.api.auth import Authenticator, Principal
from golive.api.schemas import Data
from golive.store import Actor, AuditRecord, Store

# Set by the studio on the requests it forwards; the API believes it only when the
# ASGI scope carries STUDIO_SCOPE_KEY, which only the in-process studio route sets.
STUDIO_CLIENT_HEADER = "x-golive-studio-client"
STUDIO_SCOPE_KEY = "golive.studio"


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: dict[str, Any]
    remote_address: str
    action: str
    target: dict[str, Any]
    details: dict[str, Any]


def audit_out(record: AuditRecord) -> AuditEntryOut:
    return AuditEntryOut(
        id=record.id, at=record.at,
        actor={"type": record.actor_type, "id": record.actor_id, "name": record.actor_name},
        remote_address=record.remote_address, action=record.action,
        target={"type": record.target_type, "id": record.target_id},
        details=record.details,
    )


def actor_of(request: Request, principal: Principal) -> Actor:
    remote = request.client.host if request.client else ""
    kind = "admin_token" if principal.token_id is None else "token"
    if request.scope.get(STUDIO_SCOPE_KEY):
        kind = "studio"
        remote = request.headers.get(STUDIO_CLIENT_HEADER, remote)[:100]
    return Actor(type=kind, name=principal.name, id=principal.token_id, remote_address=remote)


class AuditTrail:
    """Records control-plane changes made through the API."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(self, request: Request, principal: Principal, action: str,
                     target_type: str, target_id: str | None = None,
                     **details: Any) -> None:
        await self._store.record_audit(actor_of(request, principal), action, target_type,
                                       target_id, details)


def _utc(value: datetime | None) -> datetime | None:
    """A time without a zone is read as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def audit_router(auth: Authenticator, store: Store) -> APIRouter:
    Admin = Annotated[Principal, auth.scope("admin")]
    router = APIRouter(tags=["audit"])

    @router.get("/audit", summary="The audit log, newest first (page with `before`)")
    async def list_audit(
        principal: Admin,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[int | None, Query(ge=1, description="Entry id to page below")] = None,
        actor_id: Annotated[str | None, Query(max_length=64, description="A token id")] = None,
        action: Annotated[str | None, Query(
            max_length=64, description="An action (`live_stream.create`) or a family "
            "(`live_stream.*`)")] = None,
        target_type: Annotated[str | None, Query(max_length=32)] = None,
        target_id: Annotated[str | None, Query(max_length=64)] = None,
        since: Annotated[datetime | None, Query(description="At or after (ISO 8601)")] = None,
        until: Annotated[datetime | None, Query(description="Before (ISO 8601)")] = None,
    ) -> Data[list[AuditEntryOut]]:
        records = await store.list_audit(
            limit=limit, before=before, actor_id=actor_id, action=action,
            target_type=target_type, target_id=target_id, since=_utc(since), until=_utc(until))
        return Data(data=[audit_out(r) for r in records])

    return router
