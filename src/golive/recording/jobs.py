"""One object on its way to storage, and how it waits in the spool (recording).

A `Job` is an init or media segment a recording handed over: its bytes (None while it
waits on disk), where it goes (its key) and what the index says of it once stored.
Its spool header carries everything needed to store and index it after a restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from golive.recording import spool
from golive.recording.storage import init_key, segment_key
from golive.store import AssetRenditionRecord, AssetSegmentRecord

if TYPE_CHECKING:
    from golive.recording.recorder import RecordingSession

__all__ = ["Job", "job_from_spool"]


@dataclass(slots=True)
class Job:
    recording: RecordingSession
    kind: Literal["init", "segment"]
    rendition: str
    generation: int
    data: bytes | None  # None while it waits in the spool
    size: int
    completed_at: float  # monotonic, when packaging handed it over
    segment: AssetSegmentRecord | None = None
    rendition_info: AssetRenditionRecord | None = None
    spooled: spool.SpoolEntry | None = None

    @property
    def key(self) -> str:
        if self.kind == "init":
            return init_key(self.recording.asset_id, self.rendition, self.generation)
        assert self.segment is not None
        return self.segment.key

    def header(self) -> dict[str, Any]:
        header: dict[str, Any] = {
            "asset_id": self.recording.asset_id,
            "kind": self.kind,
            "rendition": self.rendition,
            "generation": self.generation,
        }
        if self.segment is not None:
            s = self.segment
            header["segment"] = {
                "msn": s.msn,
                "media_start": s.media_start,
                "duration": s.duration,
                "program_date_time": s.program_date_time.isoformat(),
                "discontinuity": s.discontinuity,
            }
        if self.rendition_info is not None:
            r = self.rendition_info
            header["rendition_info"] = {
                "bandwidth": r.bandwidth,
                "average_bandwidth": r.average_bandwidth,
                "frame_rate": r.frame_rate,
                "codecs": r.codecs,
                "width": r.width,
                "height": r.height,
            }
        return header


def job_from_spool(session: RecordingSession, entry: spool.SpoolEntry) -> Job | None:
    header = entry.header
    try:
        kind = header["kind"]
        rendition = str(header["rendition"])
        generation = int(header["generation"])
        job = Job(session, kind, rendition, generation, None, entry.size, time.monotonic(),
                   spooled=entry)
        if kind == "segment":
            s = header["segment"]
            msn = int(s["msn"])
            job.segment = AssetSegmentRecord(
                rendition=rendition, msn=msn, generation=generation,
                media_start=float(s["media_start"]), duration=float(s["duration"]),
                program_date_time=datetime.fromisoformat(s["program_date_time"]),
                size=entry.size, discontinuity=bool(s["discontinuity"]),
                key=segment_key(session.asset_id, rendition, msn),
            )
        elif kind == "init":
            r = header.get("rendition_info")
            if r is not None:
                job.rendition_info = AssetRenditionRecord(
                    name=rendition, bandwidth=int(r["bandwidth"]),
                    average_bandwidth=int(r["average_bandwidth"]),
                    frame_rate=float(r["frame_rate"]), codecs=str(r["codecs"]),
                    width=int(r["width"]), height=int(r["height"]),
                )
        else:
            return None
        return job
    except (KeyError, TypeError, ValueError):
        return None
