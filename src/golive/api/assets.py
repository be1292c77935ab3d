"""REST endpoints of recorded assets (control plane): list, get, delete.

`assets_router` is included into the API app by the composition root, so paths are
relative to `/api/v1`. An asset is a recorded broadcast; deleting it removes every
object it owns from storage, then its index, and records `asset.deleted`.
"""

# No `from __future__ import annotations`: FastAPI must see the local Annotated aliases.
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from golive.api.audit import AuditTrail
from golive.api.auth import Authenticator, Principal
from golive.api.errors import ApiError, not_found
from golive.api.schemas import Data, ErrorBody, PlaybackId
from golive.recording import RecordingLibrary, StorageError
from golive.store import AssetRecord

AssetStatus = Literal["preparing", "ready", "errored"]


class AssetRendition(BaseModel):
    name: str
    width: int = Field(description="Picture width; 0 for a rendition of sound alone.")
    height: int = Field(description="Picture height; 0 for a rendition of sound alone.")
    bandwidth: int = Field(description="Peak bits per second, as the multivariant playlist says.")
    codecs: str
    frame_rate: float


class Asset(BaseModel):
    id: str
    status: AssetStatus = Field(
        description="`preparing` while the broadcast records or its last segments upload; "
        "`ready` once it plays; `errored` if nothing could be stored."
    )
    duration: float = Field(description="Seconds of media (the longest rendition).")
    renditions: list[AssetRendition]
    bytes: int = Field(description="Bytes stored: every segment and init of every rendition.")
    closed_captions: bool = Field(
        default=False,
        description="The pictures carry CEA-608 captions (CC1), which the VOD playlist offers.",
    )
    caption_channels: list[str] = Field(
        default_factory=list,
        description="The CEA-608 channels the pictures carry besides CC1 (CC2, CC3, CC4: a "
        "second language is usually CC3), which the VOD playlist offers too.",
    )
    live_stream_id: str
    broadcast_id: str
    playback_ids: list[PlaybackId] = Field(description="Play at /vod/PLAYBACK_ID.m3u8.")
    created_at: datetime
    ended_at: datetime | None
    expires_at: datetime | None = Field(description="When the retention sweeper deletes it.")
    error: str | None = None


def asset_out(record: AssetRecord) -> Asset:
    status: AssetStatus = "preparing" if record.status in ("recording", "preparing") else (
        "ready" if record.status == "ready" else "errored"
    )
    return Asset(
        id=record.id,
        status=status,
        duration=round(record.duration, 3),
        renditions=[
            AssetRendition(name=r.name, width=r.width, height=r.height, bandwidth=r.bandwidth,
                           codecs=r.codecs, frame_rate=r.frame_rate)
            for r in record.renditions
        ],
        bytes=record.bytes,
        closed_captions=record.captions,
        caption_channels=list(record.caption_channels),
        live_stream_id=record.stream_id,
        broadcast_id=record.broadcast_id,
        playback_ids=[PlaybackId(id=record.playback_id, policy=record.playback_policy)],
        created_at=record.created_at,
        ended_at=record.ended_at,
        expires_at=record.expires_at,
        error=record.error,
    )


_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "Not found"}
}


def assets_router(auth: Authenticator, library: RecordingLibrary,
                  audit: AuditTrail) -> APIRouter:
    router = APIRouter(prefix="/assets", tags=["assets"], responses=_NOT_FOUND)
    Reader = Annotated[Principal, auth.scope("assets:read")]
    Writer = Annotated[Principal, auth.scope("assets:write")]

    @router.get("", summary="List assets (oldest first; page with `after`)")
    async def list_assets(
        principal: Reader,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after: Annotated[str | None, Query(max_length=100, description="Last id seen")] = None,
        live_stream_id: Annotated[
            str | None, Query(max_length=40, description="Only this stream's assets")
        ] = None,
    ) -> Data[list[Asset]]:
        try:
            records = await library.assets.list_assets(
                limit=limit, after=after, stream_id=live_stream_id
            )
        except ValueError as exc:
            raise ApiError(422, f"after: {exc}") from None
        return Data(data=[asset_out(r) for r in records])

    @router.get("/{asset_id}", summary="Get an asset")
    async def get_asset(principal: Reader, asset_id: str) -> Data[Asset]:
        record = await library.asset(asset_id)
        if record is None:
            raise not_found("asset", asset_id)
        return Data(data=asset_out(record))

    @router.delete("/{asset_id}", status_code=204, summary="Delete an asset and its media")
    async def delete_asset(request: Request, principal: Writer, asset_id: str) -> Response:
        record = await library.asset(asset_id)
        if record is None:
            raise not_found("asset", asset_id)
        if record.status == "recording":
            raise ApiError(409, "the asset is still recording; delete it once its broadcast ends")
        try:
            await library.delete(asset_id)
        except StorageError as exc:
            raise ApiError(503, f"storage could not delete the asset's media: {exc}") from None
        await audit.record(request, principal, "asset.delete", "asset", asset_id,
                           live_stream_id=record.stream_id)
        return Response(status_code=204)

    return router
