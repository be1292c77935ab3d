"""Viewer experience over the API: `/live-streams/ID/qoe` and `/broadcasts/ID/qoe`.

The numbers come from `golive.health` (wired by the composition root through
`QoeSource`, since the API does not import health); this module bounds the window,
checks the stream or broadcast exists, and shapes the answer. Both routes need the
`streams:read` scope, like the other reads of a stream, and answer while the stream
is live (the window then ends now).
"""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from golive.api.auth import Authenticator, Principal
from golive.api.errors import ApiError, not_found
from golive.api.schemas import Data, ErrorBody
from golive.store import Store

GroupBy = Literal["protocol", "browser", "os", "player", "rendition"]
MAX_WINDOW = timedelta(days=31)
DEFAULT_WINDOW = timedelta(hours=1)


class QoeSource(Protocol):
    """What the API needs from `golive.health`: a window's QoE as plain data."""

    async def report(self, stream_id: str, start: datetime, end: datetime,
                     group_by: GroupBy | None) -> dict[str, Any]:
        """Keys of `StreamQoe` (summary and groups as `QoeMetrics` keys)."""
        ...


class QoeMetrics(BaseModel):
    """Mux Data's metrics over a set of views; percentages are 0-100, null where no
    view gave the number."""

    views: int
    started_views: int
    failed_views: int
    playback_failure_percentage: float | None
    exits_before_video_start_percentage: float | None
    startup_time_p50_s: float | None
    startup_time_p95_s: float | None
    watch_time_s: float
    rebuffer_percentage: float | None
    rebuffer_frequency_per_minute: float | None
    rebuffer_duration_s: float | None = Field(description="Rebuffering seconds per started view")
    rebuffer_count: int
    live_latency_p50_s: float | None
    live_latency_p95_s: float | None
    rendition_time_share: dict[str, float] = Field(
        description="Share of watch time per rendition (0-1)")
    rendition_switches: int
    viewer_experience_score: float | None = Field(description="0-100")


class StreamQoe(BaseModel):
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    group_by: GroupBy | None
    truncated: bool = Field(description="The window held more views than one query reads; "
                                        "the numbers cover the most recent ones")
    summary: QoeMetrics
    groups: dict[str, QoeMetrics]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def qoe_router(auth: Authenticator, store: Store, source: QoeSource) -> APIRouter:
    Reader = Annotated[Principal, auth.scope("streams:read")]
    router = APIRouter(responses={404: {"model": ErrorBody, "description": "Not found"}})

    async def answer(stream_id: str, start: datetime, end: datetime,
                     group_by: GroupBy | None) -> Data[StreamQoe]:
        report = await source.report(stream_id, start, end, group_by)
        return Data(data=StreamQoe.model_validate(report))

    @router.get("/live-streams/{stream_id}/qoe", tags=["live streams"],
                response_model_by_alias=True,
                summary="Viewer experience of a live stream over a window (default: last hour)")
    async def stream_qoe(
        principal: Reader,
        stream_id: str,
        start: Annotated[datetime | None, Query(alias="from")] = None,
        end: Annotated[datetime | None, Query(alias="to")] = None,
        group_by: GroupBy | None = None,
    ) -> Data[StreamQoe]:
        if await store.get_stream(stream_id) is None:
            raise not_found("live stream", stream_id)
        end = _aware(end) if end is not None else datetime.now(UTC)
        start = _aware(start) if start is not None else end - DEFAULT_WINDOW
        if start >= end:
            raise ApiError(422, "from: must be before `to`")
        if end - start > MAX_WINDOW:
            raise ApiError(422, f"from: the window may be at most {MAX_WINDOW.days} days")
        return await answer(stream_id, start, end, group_by)

    @router.get("/broadcasts/{broadcast_id}/qoe", tags=["live streams"],
                response_model_by_alias=True,
                summary="Viewer experience of one broadcast (until now while it is live)")
    async def broadcast_qoe(
        principal: Reader,
        broadcast_id: Annotated[str, Path(max_length=64)],
        group_by: GroupBy | None = None,
    ) -> Data[StreamQoe]:
        broadcast = await store.get_broadcast(broadcast_id)
        if broadcast is None:
            raise not_found("broadcast", broadcast_id)
        start = _aware(broadcast.started_at)
        end = _aware(broadcast.ended_at) if broadcast.ended_at else datetime.now(UTC)
        end = max(end, start + timedelta(seconds=1))
        return await answer(broadcast.stream_id, start, min(end, start + MAX_WINDOW), group_by)

    return router
