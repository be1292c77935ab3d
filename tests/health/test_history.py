"""The ingest history a post-event report draws: one sample a broadcast per interval,
written in batches, bounded while the store is away (golive.health.history)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from tests.health.test_diagnosis import facts, signals

from golive.health import EncoderSignals, IngestHistory, IngestHistoryRetention, SrtSignals
from golive.health.history import sample_data
from golive.store import BroadcastSampleRecord
from golive.stream import Broadcast


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Writer:
    def __init__(self) -> None:
        self.batches: list[list[BroadcastSampleRecord]] = []
        self.failing = False

    async def __call__(self, samples: Sequence[BroadcastSampleRecord]) -> int:
        if self.failing:
            raise OSError("the database is away")
        self.batches.append(list(samples))
        return len(samples)


def broadcast(bid: str, stream_id: str = "ls_1") -> Broadcast:
    return cast(Broadcast, SimpleNamespace(id=bid, stream_id=stream_id))


def test_a_sample_keeps_the_figures_the_report_draws() -> None:
    data = sample_data(signals(
        ingest=facts(total_bitrate_kbps=2628.04, keyframe_interval_s=4.0, av_drift_s=-0.25),
        ingest_speed=0.8,
        srt=SrtSignals(rtt_ms=42.25, loss_ratio=0.0125, retransmit_ratio=0.01, dropped=0,
                       latency_ms=120),
        encoder=EncoderSignals(degrade_step=1, speed=0.9, exhausted=False, restarts=0,
                               renditions=("720p",), live_speed=0.95)))
    assert data == {
        "connected": True, "bitrate_kbps": 2628.0, "video_bitrate_kbps": 2500.0,
        "frame_rate": 30.0, "keyframe_interval_s": 4.0, "ingest_speed": 0.8,
        "av_drift_s": -0.25, "encoder_speed": 0.95, "degrade_step": 1, "srt_rtt_ms": 42.2,
        "srt_loss_percentage": 1.25}
    # While the publisher is away its last bitrate is no measurement.
    away: dict[str, Any] = sample_data(signals(connected=False, protocol=None))
    assert (away["connected"], away["bitrate_kbps"], away["srt_rtt_ms"]) == (False, None, None)


async def test_one_sample_per_interval_per_broadcast_written_in_one_batch() -> None:
    clock, write = Clock(), Writer()
    history = IngestHistory(write, interval=10.0, clock=clock)
    one, two = broadcast("bc_1"), broadcast("bc_2", "ls_2")
    for _ in range(10):  # the engine measures every second
        history.observe(one, signals())
        history.observe(two, signals(stream_id="ls_2"))
        clock.now += 1
    history.observe(one, signals())  # 10 s after its first: a second sample
    await history.flush()
    (batch,) = write.batches
    assert [(s.broadcast_id, s.stream_id) for s in batch] == [
        ("bc_1", "ls_1"), ("bc_2", "ls_2"), ("bc_1", "ls_1")]
    assert history.written == 3
    await history.flush()  # nothing pending: no write
    assert len(write.batches) == 1
    history.ended(one)  # a new broadcast of the stream starts its own count
    history.observe(broadcast("bc_1"), signals())
    await history.close()
    assert len(write.batches) == 2


async def test_the_store_away_drops_samples_and_holds_no_more_than_its_bound() -> None:
    clock, write = Clock(), Writer()
    history = IngestHistory(write, interval=1.0, max_pending=5, clock=clock)
    for i in range(8):
        history.observe(broadcast(f"bc_{i}"), signals())
    assert history.dropped == 3  # the oldest three made room
    write.failing = True
    await history.flush()  # logged, not raised: the broadcasts go on
    assert (history.dropped, history.written) == (8, 0)
    write.failing = False
    clock.now += 1
    history.observe(broadcast("bc_0"), signals())
    await history.flush()
    assert [s.broadcast_id for s in write.batches[0]] == ["bc_0"]


async def test_samples_past_their_retention_are_pruned_in_batches() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    asked: list[datetime] = []
    left = [2500]

    async def prune(before: datetime) -> int:
        asked.append(before)
        gone = min(1000, left[0])
        left[0] -= gone
        return gone

    sweep = IngestHistoryRetention(prune, retention=86_400, interval=3600, clock=lambda: now)
    assert await sweep.sweep() == 2500
    assert asked == [now - timedelta(days=1)] * 4  # 1000, 1000, 500, then none left
