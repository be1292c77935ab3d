"""REST endpoints of a stream's destinations (simulcast targets), under `/api/v1`.

`POST /live-streams/ID/destinations` checks the URL as the forwarder will
(`check_destination_url`: rtmp, rtmps or srt; no private targets unless
`destination_allow_private_targets`), the pinned profile's destination policy (a profile
with `[[destinations]]` classes admits only URLs one admits, up to its `max_count`, and
gives them its rendition) and the `rendition` (`source`, or a rendition of the stream's
pinned ladder), and answers 422 with the reason; the key is stored and only ever shown
masked. `GET` lists them with, while the stream is live, each one's state
(`connecting`, `live`, `errored`), reason and since when. `PATCH` turns one on or off or
changes its rendition. Adding, changing or removing one while live starts or stops just
that one.
"""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from golive.api.audit import AuditTrail
from golive.api.auth import Authenticator, Principal
from golive.api.errors import ApiError, not_found
from golive.api.schemas import Data, ErrorBody
from golive.media import (
    DestinationNotAdmitted,
    DestinationRefused,
    DestinationView,
    StreamProfile,
    admit_destination,
    check_destination_url,
    mask_secret,
)
from golive.store import (
    MAX_DESTINATION_NAME_LENGTH,
    MAX_DESTINATION_SECRET_LENGTH,
    DestinationLimit,
    DestinationRecord,
    DestinationStore,
    Store,
    StreamRecord,
)

RENDITION_DOC = ("`source` (the publisher's own media, as sent) or the name of a rendition "
                 "of the stream's pinned ladder: its encoded output is forwarded as is. "
                 "Default: the profile's destination class's, else `source`.")


class DestinationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=MAX_DESTINATION_NAME_LENGTH, description="A label.")
    url: str = Field(min_length=1, max_length=2048, description="rtmp://, rtmps:// or srt:// "
                     "URL without the key (an srt:// URL is always mode=caller).")
    key: str | None = Field(None, min_length=1, max_length=MAX_DESTINATION_SECRET_LENGTH,
                            description="RTMP(S): the stream key, appended to the URL's path; "
                            "SRT: the passphrase. Stored; only ever shown masked.")
    enabled: bool = Field(True, description="Forwarded while the stream is live.")
    rendition: str | None = Field(None, min_length=1, max_length=64, description=RENDITION_DOC)


class DestinationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = Field(None, description="Forwarded while the stream is live.")
    rendition: str | None = Field(None, min_length=1, max_length=64, description=RENDITION_DOC)


class DestinationOut(BaseModel):
    id: str
    stream_id: str
    name: str
    url: str
    key: str | None = Field(description="The key masked (its last 4 characters at most).")
    enabled: bool
    rendition: str = Field(description=RENDITION_DOC)
    created_at: datetime
    status: Literal["idle", "connecting", "live", "errored"] = Field(
        description="idle while the stream is not live (or the destination is disabled).")
    reason: str | None = Field(description="Why the last attempt ended (errored).")
    since: datetime | None = Field(description="When the destination entered `status`.")
    attempts: int = Field(description="Attempts in the current broadcast.")


def destination_out(record: DestinationRecord, view: DestinationView | None) -> DestinationOut:
    return DestinationOut(
        id=record.id, stream_id=record.stream_id, name=record.name, url=record.url,
        key=mask_secret(record.secret) if record.secret else None, enabled=record.enabled,
        rendition=record.rendition, created_at=record.created_at,
        status=view.state.value if view is not None else "idle",
        reason=view.reason if view is not None else None,
        since=view.since if view is not None else None,
        attempts=view.attempts if view is not None else 0,
    )


def destinations_router(
    auth: Authenticator, store: Store, audit: AuditTrail, *, allow_private: bool,
    status: Callable[[str], dict[str, DestinationView]], changed: Callable[[str], None],
    profile_of: Callable[[StreamRecord], Awaitable[StreamProfile]],
) -> APIRouter:
    """`profile_of(stream)`: the stream's pinned profile (its ladder, its destination policy)."""
    Reader = Annotated[Principal, auth.scope("streams:read")]
    Writer = Annotated[Principal, auth.scope("streams:write")]
    not_found_doc: dict[int | str, dict[str, object]] = {
        404: {"model": ErrorBody, "description": "Not found"}
    }
    destinations = DestinationStore(store.engine)
    router = APIRouter(tags=["destinations"])
    path = "/live-streams/{stream_id}/destinations"

    async def admit(stream_id: str, url: str, rendition: str | None,
                    ignore: str | None = None) -> str:
        """The rendition a destination of `url` gets, after the profile's policy and ladder
        (`ignore`: the destination being changed, not counted against `max_count`)."""
        stream = await store.get_stream(stream_id)
        if stream is None:
            raise not_found("live stream", stream_id)
        others = [d.url for d in await destinations.list_destinations(stream_id)
                  if d.id != ignore]
        try:
            return admit_destination(await profile_of(stream), url, rendition, others)
        except DestinationNotAdmitted as exc:
            raise ApiError(409 if exc.conflict else 422, str(exc)) from None

    @router.get(path, responses=not_found_doc, summary="A live stream's destinations")
    async def list_destinations(principal: Reader, stream_id: str) -> Data[list[DestinationOut]]:
        if await store.get_stream(stream_id) is None:
            raise not_found("live stream", stream_id)
        views = status(stream_id)
        return Data(data=[destination_out(r, views.get(r.id))
                          for r in await destinations.list_destinations(stream_id)])

    @router.post(path, status_code=201, responses=not_found_doc,
                 summary="Add a destination (forwarded at once when live)")
    async def create_destination(
        request: Request, principal: Writer, stream_id: str, body: DestinationCreate
    ) -> Data[DestinationOut]:
        if "?" in body.url and "passphrase=" in body.url.partition("?")[2]:
            raise ApiError(422, "url: put the SRT passphrase in `key`, not in the URL")
        try:
            await check_destination_url(body.url, allow_private=allow_private)
        except DestinationRefused as exc:
            raise ApiError(422, f"url: {exc}") from None
        rendition = await admit(stream_id, body.url, body.rendition)
        try:
            record = await destinations.create_destination(
                stream_id, name=body.name, url=body.url, secret=body.key, enabled=body.enabled,
                rendition=rendition)
        except DestinationLimit as exc:
            raise ApiError(409, str(exc)) from None
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        if record is None:
            raise not_found("live stream", stream_id)
        await audit.record(request, principal, "live_stream.destination.create", "live_stream",
                           stream_id, destination=record.id, name=record.name, url=record.url,
                           rendition=record.rendition)
        changed(stream_id)
        return Data(data=destination_out(record, None))

    @router.patch(path + "/{destination_id}", responses=not_found_doc,
                  summary="Turn a destination on or off, or change its rendition (live at once)")
    async def update_destination(
        request: Request, principal: Writer, stream_id: str, destination_id: str,
        body: DestinationPatch,
    ) -> Data[DestinationOut]:
        if body.rendition is not None:
            current = await destinations.get_destination(stream_id, destination_id)
            if current is None:
                raise not_found("destination", destination_id)
            await admit(stream_id, current.url, body.rendition, ignore=destination_id)
        record = await destinations.update_destination(
            stream_id, destination_id, enabled=body.enabled, rendition=body.rendition)
        if record is None:
            raise not_found("destination", destination_id)
        await audit.record(request, principal, "live_stream.destination.update", "live_stream",
                           stream_id, destination=destination_id,
                           **body.model_dump(exclude_none=True))
        changed(stream_id)
        return Data(data=destination_out(record, status(stream_id).get(record.id)))

    @router.delete(path + "/{destination_id}", status_code=204, responses=not_found_doc,
                   summary="Remove a destination (stopped at once when live)")
    async def delete_destination(
        request: Request, principal: Writer, stream_id: str, destination_id: str
    ) -> Response:
        if not await destinations.delete_destination(stream_id, destination_id):
            raise not_found("destination", destination_id)
        await audit.record(request, principal, "live_stream.destination.delete", "live_stream",
                           stream_id, destination=destination_id)
        changed(stream_id)
        return Response(status_code=204)

    return router
