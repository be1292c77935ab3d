"""Recorded media made without an encoder: segments as packaging hands them to the recorder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from golive.core import EventBus, random_id
from golive.formats.isobmff import InitSegment, TrackInfo
from golive.packaging import CompletedSegment, RenditionInfo
from golive.recording import LocalStorage, Recorder, RecordingSession
from golive.store import AssetStore, Store

START = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
INFO = RenditionInfo("360p", 1_000_000, 900_000, 30.0)
INIT = InitSegment(b"init-bytes", (TrackInfo(1, "video", 90000, "avc1.42c01e", 640, 360),))


def segment(msn: int, *, discontinuity: bool = False) -> CompletedSegment:
    """A one-second segment numbered `msn` (media time and date count from msn 1000)."""
    return CompletedSegment(
        rendition="360p", msn=msn, generation=0, discontinuity=discontinuity,
        media_start=float(msn - 1000), duration=1.0,
        program_date_time=START + timedelta(seconds=msn - 1000), data=bytes([msn % 256]) * 100,
    )


def record(session: RecordingSession, count: int, *, first: int = 1000, end: bool = True
           ) -> None:
    session.init_segment(INFO, 0, INIT)
    for msn in range(first, first + count):
        session.segment_completed(segment(msn))
    if end:
        session.presentation_ended()


async def recorded_asset(store: Store, recordings: Path, count: int = 3) -> str:
    """A ready asset of `count` segments in local storage under `recordings`; its id."""
    stream, _ = await store.create_stream(name="show", recording=True)
    recorder = Recorder(store=store, assets=AssetStore(store.engine),
                        storage=LocalStorage(recordings), bus=EventBus(),
                        spool_dir=recordings.parent / "spool")
    await recorder.start()
    session = recorder.begin(stream_id=stream.id, broadcast_id=random_id("br"), signed=False)
    record(session, count)
    await recorder.wait_idle()
    await recorder.close()
    return session.asset_id
