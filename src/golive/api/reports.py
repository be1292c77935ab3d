"""Post-event reports over the API: a stream's past broadcasts and one broadcast's report.

`GET /live-streams/ID/broadcasts` lists a stream's broadcasts (newest first) with their
start, end, duration and peak viewers; `GET /broadcasts/ID/report` answers the report
of a finished broadcast as JSON (the `report.json` of `golive report`) and
`GET /broadcasts/ID/report.html` as the self-contained page, served with a Content
Security Policy that allows nothing but its inline styles (the page has no scripts and
fetches nothing). The report comes from `golive.health` through `ReportSource`, wired by
the composition root (the API does not import health). All routes need `streams:read`.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from golive.api.auth import Authenticator, Principal
from golive.api.errors import ApiError, not_found
from golive.api.schemas import Data, ErrorBody
from golive.store import BroadcastRecord, PlaybackViewStore, Store

MAX_BROADCASTS = 100
# The report page draws inline SVG and styles; it runs nothing and loads nothing.
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
              "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
REPORT_HEADERS = {"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff",
                  "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


class ReportSource(Protocol):
    """What the API needs from `golive.health`: a finished broadcast's report."""

    async def report(self, broadcast_id: str) -> dict[str, Any]:
        """The report as JSON-safe data; ValueError when it cannot be made."""
        ...

    async def html(self, report: dict[str, Any]) -> str:
        """The report as one self-contained HTML page."""
        ...


class BroadcastOut(BaseModel):
    """One broadcast of a live stream: a publisher session from connect to end."""

    id: str
    stream_id: str
    started_at: datetime
    ended_at: datetime | None = Field(description="Null while the broadcast is live.")
    duration_s: float = Field(description="Until now while live.")
    protocol: str = Field(description="Ingest protocol: rtmp, rtmps, srt or whip.")
    peak_viewers: int = Field(
        description="Most views open at once (a view is open from its start to its "
                    "player's last QoE report); players that send no reports are not counted.")
    peak_viewers_truncated: bool = Field(
        description="More views overlapped the broadcast than one query reads: the peak "
                    "is a lower bound.")
    report_available: bool = Field(description="The broadcast ended, so it has a report.")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def reports_router(auth: Authenticator, store: Store, source: ReportSource) -> APIRouter:
    Reader = Annotated[Principal, auth.scope("streams:read")]
    router = APIRouter(responses={404: {"model": ErrorBody, "description": "Not found"}})
    views = PlaybackViewStore(store.engine)

    async def broadcast_out(record: BroadcastRecord, now: datetime) -> BroadcastOut:
        start = _aware(record.started_at)
        end = _aware(record.ended_at) if record.ended_at is not None else now
        peak, truncated = await views.peak_views(record.stream_id, start, max(end, start))
        return BroadcastOut(id=record.id, stream_id=record.stream_id, started_at=start,
                            ended_at=end if record.ended_at is not None else None,
                            duration_s=round(max(0.0, (end - start).total_seconds()), 3),
                            protocol=record.protocol, peak_viewers=peak,
                            peak_viewers_truncated=truncated,
                            report_available=record.ended_at is not None)

    async def finished(broadcast_id: str) -> dict[str, Any]:
        record = await store.get_broadcast(broadcast_id)
        if record is None:
            raise not_found("broadcast", broadcast_id)
        if record.ended_at is None:
            raise ApiError(409, f"broadcast {broadcast_id!r} is still live; its report "
                                "exists once it ends", type="broadcast_live")
        try:
            return await source.report(broadcast_id)
        except ValueError as exc:  # its stream was deleted between the two reads
            raise ApiError(404, str(exc)) from None

    @router.get("/live-streams/{stream_id}/broadcasts", tags=["live streams"],
                summary="A live stream's broadcasts, newest first, with their peak viewers")
    async def list_broadcasts(
        principal: Reader,
        stream_id: Annotated[str, Path(max_length=64)],
        limit: Annotated[int, Query(ge=1, le=MAX_BROADCASTS)] = 20,
    ) -> Data[list[BroadcastOut]]:
        if await store.get_stream(stream_id) is None:
            raise not_found("live stream", stream_id)
        now = datetime.now(UTC)
        return Data(data=[await broadcast_out(record, now)
                          for record in await store.list_broadcasts(stream_id, limit=limit)])

    @router.get("/broadcasts/{broadcast_id}/report", tags=["live streams"],
                responses={409: {"model": ErrorBody, "description": "Still live"}},
                summary="The post-event report of a finished broadcast (JSON)")
    async def broadcast_report(
        principal: Reader, broadcast_id: Annotated[str, Path(max_length=64)],
    ) -> Data[dict[str, Any]]:
        return Data(data=await finished(broadcast_id))

    @router.get("/broadcasts/{broadcast_id}/report.html", tags=["live streams"],
                response_class=HTMLResponse,
                responses={409: {"model": ErrorBody, "description": "Still live"}},
                summary="The post-event report of a finished broadcast (one HTML page)")
    async def broadcast_report_html(
        principal: Reader, broadcast_id: Annotated[str, Path(max_length=64)],
    ) -> HTMLResponse:
        page = await source.html(await finished(broadcast_id))
        return HTMLResponse(page, headers=REPORT_HEADERS)

    return router
