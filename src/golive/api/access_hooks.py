"""REST endpoint of a stream's own access hook (control plane), under `/api/v1`.

A stream's hook replaces the node's (`access_hook_url`) for that stream's publishes,
play sessions and chat joins; null falls back to the node's. The playback gate reads
the change within seconds.
"""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from golive.api.audit import AuditTrail
from golive.api.auth import Authenticator, Principal
from golive.api.errors import ApiError, not_found
from golive.api.schemas import Data, ErrorBody
from golive.store import Store


class AccessHookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(
        max_length=2000, description="http(s) URL golive POSTs access questions to; null "
        "uses the node's access_hook_url (if any).")


class AccessHookOut(BaseModel):
    stream_id: str
    url: str | None = Field(description="The stream's own hook; null: the node's applies.")
    node_url: str | None = Field(description="The node's access_hook_url.")


def access_hooks_router(auth: Authenticator, store: Store, node_url: str | None,
                        audit: AuditTrail) -> APIRouter:
    Reader = Annotated[Principal, auth.scope("streams:read")]
    Writer = Annotated[Principal, auth.scope("streams:write")]
    not_found_doc: dict[int | str, dict[str, object]] = {
        404: {"model": ErrorBody, "description": "Not found"}
    }
    router = APIRouter(tags=["access hooks"])
    path = "/live-streams/{stream_id}/access-hook"

    @router.get(path, responses=not_found_doc, summary="A live stream's access hook")
    async def get_access_hook(principal: Reader, stream_id: str) -> Data[AccessHookOut]:
        record = await store.get_stream(stream_id)
        if record is None:
            raise not_found("live stream", stream_id)
        return Data(data=AccessHookOut(stream_id=stream_id, url=record.access_hook_url,
                                       node_url=node_url))

    @router.put(path, responses=not_found_doc, summary="Set or clear a live stream's access hook")
    async def set_access_hook(
        request: Request, principal: Writer, stream_id: str, body: AccessHookUpdate
    ) -> Data[AccessHookOut]:
        try:
            found = await store.set_access_hook(stream_id, body.url)
        except ValueError as exc:
            raise ApiError(422, f"url: {exc}") from None
        if not found:
            raise not_found("live stream", stream_id)
        await audit.record(request, principal, "live_stream.access_hook", "live_stream",
                           stream_id, url=body.url)
        return Data(data=AccessHookOut(stream_id=stream_id, url=body.url, node_url=node_url))

    return router
