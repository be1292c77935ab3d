"""Webhook endpoints over the API: create (the secret shown once), list, change, delete,
the delivery log and manual redelivery (control plane).

A URL is checked where it points before it is saved (`golive.webhooks.resolve_target`:
no private, loopback or link-local targets unless `webhook_allow_private_targets`);
the delivery worker checks again before every attempt.
"""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from golive.api.audit import AuditTrail
from golive.api.auth import Authenticator, Principal
from golive.api.errors import ApiError, not_found
from golive.api.schemas import Data, ErrorBody
from golive.settings import Settings
from golive.store import (
    Store,
    WebhookDeliveryRecord,
    WebhookEndpointRecord,
    check_event_types,
)
from golive.webhooks import TargetRefused, resolve_target

EVENT_TYPES_DOC = ("Event types to send (`live_stream.active`), or a family "
                   "(`live_stream.*`); empty: every event.")


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2000, description="Where events are POSTed.")
    event_types: list[str] = Field([], max_length=50, description=EVENT_TYPES_DOC)
    enabled: bool = True


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, min_length=1, max_length=2000)
    event_types: list[str] | None = Field(None, max_length=50, description=EVENT_TYPES_DOC)
    enabled: bool | None = None


class Webhook(BaseModel):
    id: str
    url: str
    event_types: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(Webhook):
    secret: str = Field(description="Signs every delivery (`golive-signature`); shown only "
                                    "once.")


class WebhookDelivery(BaseModel):
    id: int
    event_id: str
    event_type: str
    created_at: datetime
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    response_status: int | None
    latency_ms: float | None
    error: str | None
    response_excerpt: str | None = Field(description="The first 1 KiB of the last answer.")
    redelivery_of: int | None


def webhook_out(record: WebhookEndpointRecord, secret: str | None = None) -> Webhook:
    fields = {"id": record.id, "url": record.url, "event_types": list(record.event_types),
              "enabled": record.enabled, "created_at": record.created_at,
              "updated_at": record.updated_at}
    if secret is not None:
        return WebhookWithSecret(secret=secret, **fields)
    return Webhook(**fields)


def delivery_out(r: WebhookDeliveryRecord) -> WebhookDelivery:
    return WebhookDelivery(
        id=r.id, event_id=r.event_id, event_type=r.event_type, created_at=r.created_at,
        state=r.state,
        attempts=r.attempts, next_attempt_at=r.next_attempt_at,
        last_attempt_at=r.last_attempt_at, response_status=r.response_status,
        latency_ms=r.latency_ms, error=r.error, response_excerpt=r.response_excerpt,
        redelivery_of=r.redelivery_of,
    )


def webhooks_router(auth: Authenticator, store: Store, settings: Settings,
                    trail: AuditTrail, wake: Callable[[Sequence[str]], None]) -> APIRouter:
    """`wake` tells the delivery worker an endpoint has new pending deliveries."""
    Hooks = Annotated[Principal, auth.scope("webhooks")]
    router = APIRouter(prefix="/webhooks", tags=["webhooks"],
                       responses={404: {"model": ErrorBody, "description": "Not found"}})

    async def checked(url: str) -> None:
        try:
            await resolve_target(url, allow_private=settings.webhook_allow_private_targets)
        except TargetRefused as refused:
            raise ApiError(422, f"url: {refused}") from None

    def event_types(value: list[str]) -> list[str]:
        try:
            return list(check_event_types(value))
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None

    async def existing(webhook_id: str) -> WebhookEndpointRecord:
        record = await store.get_webhook(webhook_id)
        if record is None:
            raise not_found("webhook", webhook_id)
        return record

    @router.post("", status_code=201, summary="Create a webhook endpoint (secret shown once)")
    async def create_webhook(request: Request, principal: Hooks,
                             body: WebhookCreate) -> Data[WebhookWithSecret]:
        types = event_types(body.event_types)
        await checked(body.url)
        record, secret = await store.create_webhook(url=body.url, event_types=types,
                                                    enabled=body.enabled)
        await trail.record(request, principal, "webhook.create", "webhook", record.id,
                           url=record.url, event_types=types, enabled=record.enabled)
        result = webhook_out(record, secret)
        assert isinstance(result, WebhookWithSecret)
        return Data(data=result)

    @router.get("", summary="List webhook endpoints")
    async def list_webhooks(principal: Hooks) -> Data[list[Webhook]]:
        return Data(data=[webhook_out(r) for r in await store.list_webhooks()])

    @router.get("/{webhook_id}", summary="Get a webhook endpoint")
    async def get_webhook(principal: Hooks, webhook_id: str) -> Data[Webhook]:
        return Data(data=webhook_out(await existing(webhook_id)))

    @router.patch("/{webhook_id}", summary="Change a webhook endpoint")
    async def update_webhook(request: Request, principal: Hooks, webhook_id: str,
                             body: WebhookUpdate) -> Data[Webhook]:
        changes = body.model_dump(exclude_unset=True)
        nulls = sorted(k for k, v in changes.items() if v is None)
        if nulls:
            raise ApiError(422, *(f"{k}: may not be null" for k in nulls))
        await existing(webhook_id)
        types = event_types(body.event_types) if body.event_types is not None else None
        if body.url is not None:
            await checked(body.url)
        record = await store.update_webhook(webhook_id, url=body.url, event_types=types,
                                            enabled=body.enabled)
        if record is None:
            raise not_found("webhook", webhook_id)
        await trail.record(request, principal, "webhook.update", "webhook", webhook_id,
                           changes=changes)
        if record.enabled:
            wake([webhook_id])  # re-enabled: what waited goes out now
        return Data(data=webhook_out(record))

    @router.delete("/{webhook_id}", status_code=204, summary="Delete a webhook endpoint")
    async def delete_webhook(request: Request, principal: Hooks, webhook_id: str) -> Response:
        if not await store.delete_webhook(webhook_id):
            raise not_found("webhook", webhook_id)
        await trail.record(request, principal, "webhook.delete", "webhook", webhook_id)
        return Response(status_code=204)

    @router.get("/{webhook_id}/deliveries",
                summary="The endpoint's delivery log, newest first (page with `before`)")
    async def list_deliveries(
        principal: Hooks, webhook_id: str,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[int | None, Query(ge=1, description="Delivery id to page below")]
        = None,
        state: Literal["pending", "delivered", "failed"] | None = None,
    ) -> Data[list[WebhookDelivery]]:
        await existing(webhook_id)
        records = await store.list_deliveries(webhook_id, limit=limit, before=before,
                                              state=state)
        return Data(data=[delivery_out(r) for r in records])

    @router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202,
                 summary="Send a delivery's event again (a new delivery, same event id)")
    async def redeliver(request: Request, principal: Hooks, webhook_id: str,
                        delivery_id: int) -> Data[WebhookDelivery]:
        record = await store.redeliver(webhook_id, delivery_id)
        if record is None:
            await existing(webhook_id)
            raise not_found("webhook delivery", str(delivery_id))
        await trail.record(request, principal, "webhook.redeliver", "webhook", webhook_id,
                           delivery_id=delivery_id, new_delivery_id=record.id)
        wake([webhook_id])
        return Data(data=delivery_out(record))

    return router
