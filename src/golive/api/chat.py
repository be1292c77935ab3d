"""REST endpoints of the chat (control plane): chat tokens, moderation, per-stream chat settings.

`chat_router` is included into the API app by the composition root, so paths are
relative to `/api/v1`. Moderation goes through the in-process `ChatService`, so an
action taken here reaches everyone in the room at once.
"""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from golive.api.audit import AuditTrail
from golive.api.auth import Authenticator, Principal
from golive.api.errors import ApiError, not_found
from golive.api.schemas import Data, ErrorBody
from golive.chat import ChatService, InvalidIdentity, validate_display_name, validate_user_id
from golive.store import (
    MAX_BLOCKED_TERMS,
    MAX_TERM_LENGTH,
    ChatBanRecord,
    ChatMessageRecord,
    ChatSettingsRecord,
)

Capability = Literal["send", "moderate"]
MAX_TOKEN_TTL = 30 * 24 * 3600


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatTokenCreate(_Request):
    user_id: str = Field(min_length=1, max_length=64, description="Your app's user id.")
    display_name: str = Field(min_length=1, max_length=32, description="Name shown in chat.")
    capabilities: list[Capability] = Field(
        ["send"], description="`send` and/or `moderate`."
    )
    ttl: int = Field(3600, ge=1, le=MAX_TOKEN_TTL, description="Seconds the token is valid.")
    stream_id: str | None = Field(
        None, max_length=40, description="Limit the token to one stream's chat."
    )

    @field_validator("display_name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            return validate_display_name(value)
        except InvalidIdentity as exc:
            raise ValueError(str(exc)) from None

    @field_validator("user_id")
    @classmethod
    def _user(cls, value: str) -> str:
        try:
            return validate_user_id(value)
        except InvalidIdentity as exc:
            raise ValueError(str(exc)) from None


class ChatToken(BaseModel):
    token: str
    user_id: str
    display_name: str
    capabilities: list[str]
    expires_at: datetime
    stream_id: str | None


class ChatUserOut(BaseModel):
    id: str
    name: str


class ChatMessageOut(BaseModel):
    id: int
    user: ChatUserOut
    text: str
    sent_at: datetime
    deleted_at: datetime | None
    ip: str


class ChatBanCreate(_Request):
    user_id: str | None = Field(None, min_length=1, max_length=64)
    ip: str | None = Field(None, min_length=1, max_length=64)
    duration: int | None = Field(
        None, ge=1, le=365 * 24 * 3600, description="Seconds (a timeout); empty bans for good."
    )
    reason: str = Field("", max_length=200)

    @model_validator(mode="after")
    def _someone(self) -> "ChatBanCreate":
        if self.user_id is None and self.ip is None:
            raise ValueError("give user_id, ip, or both")
        return self


class ChatBanOut(BaseModel):
    id: str
    user_id: str | None
    ip: str | None
    until: datetime | None
    reason: str
    created_at: datetime


class ChatSettingsUpdate(_Request):
    slow_mode: int | None = Field(None, ge=0, le=3600, description="Seconds between a "
                                  "user's messages; 0 turns slow mode off.")
    signed_in_only: bool | None = Field(None, description="Only chat-token holders may send.")
    review_hook_url: str | None = Field(None, max_length=2000,
                                        description="Message review hook; null removes it.")
    review_hook_fallback: Literal["allow", "deny"] | None = Field(
        None, description="What to do when the hook does not answer in time."
    )
    blocked_terms: list[Annotated[str, Field(max_length=MAX_TERM_LENGTH * 4)]] | None = Field(
        None, max_length=MAX_BLOCKED_TERMS,
        description="Words and phrases the chat refuses, in messages and display names "
        "(moderators are not held to them). Whole words, any case or Unicode form; a `*` "
        "at a term's start or end stands for any letters (`spam*`, `*coin`). Replaces the "
        "list; [] empties it. Kept "
        f"case-folded; at most {MAX_BLOCKED_TERMS} terms of {MAX_TERM_LENGTH} characters.",
    )


class ChatSettingsOut(BaseModel):
    slow_mode: int
    signed_in_only: bool
    review_hook_url: str | None
    review_hook_fallback: str
    blocked_terms: list[str]


def _message_out(r: ChatMessageRecord) -> ChatMessageOut:
    return ChatMessageOut(id=r.id, user=ChatUserOut(id=r.user_id, name=r.user_name), text=r.text,
                          sent_at=r.sent_at, deleted_at=r.deleted_at, ip=r.ip)


def _ban_out(r: ChatBanRecord) -> ChatBanOut:
    return ChatBanOut(id=r.id, user_id=r.user_id, ip=r.ip, until=r.until, reason=r.reason,
                      created_at=r.created_at)


def _settings_out(r: ChatSettingsRecord) -> ChatSettingsOut:
    return ChatSettingsOut(slow_mode=r.slow_mode, signed_in_only=r.signed_in_only,
                           review_hook_url=r.review_hook_url,
                           review_hook_fallback=r.review_hook_fallback,
                           blocked_terms=list(r.blocked_terms))


def chat_router(auth: Authenticator, chat: ChatService) -> APIRouter:
    Reader = Annotated[Principal, auth.scope("streams:read")]
    # Moderation, and everything that shows viewers' addresses or mints chat identities.
    Moderator = Annotated[Principal, auth.scope("chat:moderate")]
    not_found_doc: dict[int | str, dict[str, object]] = {
        404: {"model": ErrorBody, "description": "Not found"}
    }
    router = APIRouter(tags=["chat"])
    store = chat.store
    trail = AuditTrail(store)

    async def existing(stream_id: str) -> None:
        if await store.get_stream(stream_id) is None:
            raise not_found("live stream", stream_id)

    @router.post("/chat-tokens", status_code=201, summary="Mint a chat token for one of your users")
    async def create_chat_token(principal: Moderator, body: ChatTokenCreate) -> Data[ChatToken]:
        if body.stream_id is not None:
            await existing(body.stream_id)
        caps: list[str] = sorted(set(body.capabilities))
        token = chat.mint_token(user_id=body.user_id, display_name=body.display_name,
                                capabilities=caps, ttl=body.ttl, stream_id=body.stream_id)
        return Data(data=ChatToken(
            token=token, user_id=body.user_id, display_name=body.display_name,
            capabilities=caps, stream_id=body.stream_id,
            expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=body.ttl),
        ))

    base = "/live-streams/{stream_id}/chat"

    @router.get(base, responses=not_found_doc, summary="Chat settings of a live stream")
    async def get_chat_settings(principal: Reader, stream_id: str) -> Data[ChatSettingsOut]:
        await existing(stream_id)
        return Data(data=_settings_out(await chat.messages.get_settings(stream_id)))

    @router.patch(base, responses=not_found_doc, summary="Change chat settings of a live stream")
    async def update_chat_settings(
        request: Request, principal: Moderator, stream_id: str, body: ChatSettingsUpdate
    ) -> Data[ChatSettingsOut]:
        changes = body.model_dump(exclude_unset=True)
        nulls = sorted(k for k, v in changes.items() if v is None and k != "review_hook_url")
        if nulls:
            raise ApiError(422, *(f"{k}: may not be null" for k in nulls))
        record = await chat.update_settings(stream_id, **changes)
        if record is None:
            raise not_found("live stream", stream_id)
        if "blocked_terms" in changes:  # how many, not the list (up to 1000 terms)
            changes["blocked_terms"] = len(record.blocked_terms)
        await trail.record(request, principal, "chat.update_settings", "live_stream", stream_id,
                           changes=changes)
        return Data(data=_settings_out(record))

    @router.get(base + "/messages", responses=not_found_doc,
                summary="Chat messages, newest first (page with `before`)")
    async def list_messages(
        principal: Moderator,
        stream_id: str,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[int | None, Query(ge=1, description="Message id to page below")] = None,
        include_deleted: bool = False,
    ) -> Data[list[ChatMessageOut]]:
        await existing(stream_id)
        records = await chat.messages.list_messages(
            stream_id, limit=limit, before=before, include_deleted=include_deleted
        )
        return Data(data=[_message_out(r) for r in records])

    @router.delete(base + "/messages/{message_id}", status_code=204, responses=not_found_doc,
                   summary="Delete a chat message (disappears for everyone)")
    async def delete_message(
        request: Request, principal: Moderator, stream_id: str, message_id: int
    ) -> Response:
        if not await chat.delete_message(stream_id, message_id):
            await existing(stream_id)
            raise not_found("chat message", str(message_id))
        await trail.record(request, principal, "chat.delete_message", "live_stream", stream_id,
                           message_id=message_id)
        return Response(status_code=204)

    @router.get(base + "/bans", responses=not_found_doc, summary="Active chat bans and timeouts")
    async def list_bans(principal: Moderator, stream_id: str) -> Data[list[ChatBanOut]]:
        await existing(stream_id)
        records = await chat.messages.active_bans(stream_id, datetime.now(UTC))
        return Data(data=[_ban_out(r) for r in records])

    @router.post(base + "/bans", status_code=201, responses=not_found_doc,
                 summary="Ban or time out a user id and/or an IP address")
    async def create_ban(
        request: Request, principal: Moderator, stream_id: str, body: ChatBanCreate
    ) -> Data[ChatBanOut]:
        await existing(stream_id)
        record = await chat.ban(stream_id, user_id=body.user_id, ip=body.ip,
                                seconds=body.duration, reason=body.reason or f"by {principal.name}")
        await trail.record(request, principal, "chat.ban", "live_stream", stream_id,
                           ban_id=record.id, user_id=body.user_id, ip=body.ip,
                           duration=body.duration, reason=record.reason)
        return Data(data=_ban_out(record))

    @router.delete(base + "/bans/{ban_id}", status_code=204, responses=not_found_doc,
                   summary="Lift a chat ban")
    async def delete_ban(
        request: Request, principal: Moderator, stream_id: str, ban_id: str
    ) -> Response:
        if not await chat.lift_ban(stream_id, ban_id):
            await existing(stream_id)
            raise not_found("chat ban", ban_id)
        await trail.record(request, principal, "chat.lift_ban", "live_stream", stream_id,
                           ban_id=ban_id)
        return Response(status_code=204)

    @router.post(base + "/clear", status_code=204, responses=not_found_doc,
                 summary="Clear the chat for everyone")
    async def clear_chat(request: Request, principal: Moderator, stream_id: str) -> Response:
        await existing(stream_id)
        await chat.clear(stream_id)
        await trail.record(request, principal, "chat.clear", "live_stream", stream_id)
        return Response(status_code=204)

    return router
