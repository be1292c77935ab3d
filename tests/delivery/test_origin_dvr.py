"""A DVR window at the origin: the whole window in the playlist, delta updates, and segments
older than the rendition window served from the broadcast's recording (a real recorder on
local disk and SQLite, no stand-ins)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import m3u8
import pytest
from tests.delivery.test_origin import INIT, Directory, Feed, client_for
from tests.llhls_rules import check_media_playlist
from tests.store.conftest import store  # noqa: F401  (the fixture, for these tests too)

from golive.core import EventBus
from golive.delivery import create_origin_app
from golive.formats.isobmff import InitSegment
from golive.packaging import Presentation
from golive.recording import (
    LiveArchive,
    LocalStorage,
    Recorder,
    RecordingSession,
    segment_key,
)
from golive.store import AssetStore, Store


@dataclass
class Dvr:
    feed: Feed
    recorder: Recorder
    session: RecordingSession
    client: httpx.AsyncClient


@pytest.fixture
async def dvr(store: Store, tmp_path: Path) -> AsyncIterator[Dvr]:  # noqa: F811
    storage = LocalStorage(tmp_path / "recordings")
    recorder = Recorder(store=store, assets=AssetStore(store.engine), storage=storage,
                        bus=EventBus(), spool_dir=tmp_path / "spool")
    await recorder.start()
    stream, _ = await store.create_stream(name="show", recording=True, dvr_window=120)
    session = recorder.begin(stream_id=stream.id, broadcast_id="br_dvr1", signed=False)
    presentation = Presentation("p1", low_latency=True, part_target=0.25, clock=lambda: 0.0,
                                dvr_window=stream.dvr_window)
    presentation.observe(session)
    window = presentation.add_rendition("video", bandwidth=3_000_000,
                                        average_bandwidth=2_700_000, frame_rate=30.0)
    window.set_init(INIT)
    directory = Directory()
    directory.presentations["p1"] = presentation
    origin = create_origin_app(directory, dvr=LiveArchive(storage))
    async with client_for(origin) as client:
        yield Dvr(Feed(presentation), recorder, session, client)
    await recorder.close()


async def test_old_segments_and_inits_come_from_the_recording(dvr: Dvr) -> None:
    feed, window = dvr.feed, dvr.feed.window
    feed.add(4 * 60)  # 60 one-second segments of the first encoder run
    window.set_init(InitSegment(INIT.data + b"-restart", INIT.tracks))
    feed.add(4 * 100 + 2)  # 100 more on a new timeline: the window slid past the first 40
    await dvr.recorder.wait_idle()

    response = await dvr.client.get("/live/p1/video.m3u8")
    assert response.status_code == 200
    full = check_media_playlist(response.text, low_latency=True)
    uris = [s.uri for s in full.segments if s.uri]
    assert 115 <= len(uris) <= 121  # the last 120 seconds
    oldest = int(uris[0].removeprefix("video/seg-").removesuffix(".m4s"))
    assert oldest == full.media_sequence and oldest > 0 and window.archived(oldest)

    # The oldest listed segment is long gone from memory: served from storage, same URL.
    segment = await dvr.client.get(f"/live/p1/{uris[0]}")
    assert segment.status_code == 200
    assert segment.content == b"".join(f.data for f in feed.sent[oldest * 4 : oldest * 4 + 4])
    assert segment.headers["cache-control"] == "public, max-age=31536000, immutable"
    ranged = await dvr.client.get(f"/live/p1/{uris[0]}", headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.content == segment.content[:10]
    # The first run's init is listed (its segments still are) and comes from storage too.
    assert '#EXT-X-MAP:URI="video/init-0.mp4"' in response.text
    init = await dvr.client.get("/live/p1/video/init-0.mp4")
    assert init.status_code == 200 and init.content == INIT.data
    # The newest segments come from memory, as ever.
    newest = await dvr.client.get(f"/live/p1/{uris[-1]}")
    assert newest.status_code == 200 and newest.content == window.segment_bytes(
        int(uris[-1].removeprefix("video/seg-").removesuffix(".m4s")))
    # Out of the window: not served, even though the recording has it.
    assert (await dvr.client.get(f"/live/p1/video/seg-{oldest - 1}.m4s")).status_code == 404
    assert (await dvr.client.get("/live/p1/video/part-1.0.m4s")).status_code == 404


async def test_delta_updates_carry_a_long_window(dvr: Dvr) -> None:
    feed = dvr.feed
    feed.add(4 * 200 + 1)
    full = await dvr.client.get("/live/p1/video.m3u8")
    msn = feed.window.last_msn
    delta = await dvr.client.get("/live/p1/video.m3u8",
                                 params={"_HLS_msn": str(msn), "_HLS_part": "0", "_HLS_skip": "YES"})
    assert delta.status_code == 200
    parsed = check_media_playlist(delta.text, low_latency=True)
    assert parsed.skip is not None and parsed.skip.skipped_segments > 100
    assert len(delta.content) * 3 < len(full.content)  # 2 min here; 10 min: < 1/10 (packaging)
    assert m3u8.loads(full.text).media_sequence == parsed.media_sequence
    assert parsed.segments[-1].parts  # the open segment's parts, as in the full form


async def test_a_segment_not_yet_stored_is_retried_not_missing(dvr: Dvr) -> None:
    feed = dvr.feed
    feed.add(4 * 20 + 1, real_time=True)
    await dvr.recorder.wait_idle()
    # One listed, archived segment's object is not in storage: while the recording still
    # has jobs on their way there, that is "not stored yet" (503, retry), never a 404 an
    # edge would keep; with none pending it was lost (404).
    oldest = feed.window.media_sequence
    assert feed.window.archived(oldest)
    storage = dvr.recorder.storage
    assert isinstance(storage, LocalStorage)
    await storage.delete([segment_key(dvr.session.asset_id, "video", oldest)])
    dvr.session.pending += 1  # as the recorder counts a job handed over and not yet stored
    answer = await dvr.client.get(f"/live/p1/video/seg-{oldest}.m4s")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.headers["cache-control"] == "no-cache"
    dvr.session.pending -= 1
    assert (await dvr.client.get(f"/live/p1/video/seg-{oldest}.m4s")).status_code == 404
