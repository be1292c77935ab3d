"""The live pipeline without a real encoder: planning from the source, presentations, sinks,
restarts and discontinuities. ffmpeg is a stand-in that only reads its input."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.media.conftest import fake_ffmpeg, pid_alive, read_flv, until

from golive.core.events import EventBus, EventType, Subscription
from golive.formats.isobmff import Fragment, InitSegment, TrackInfo
from golive.formats.tag import MediaTag, TagType
from golive.media.command import CPU_ONLY, WEBRTC_OUTPUT
from golive.media.ladder import SourceInfo
from golive.media.pipeline import BroadcastPipeline, LivePipeline
from golive.media.source import SourceProbe
from golive.stream import Broadcast, IngestMeter, PlaybackId, StreamPolicy

START = 1_700_000_000.0  # the fake wall clock's first reading
VIDEO = TrackInfo(1, "video", 90000, "avc1.64001e", 640, 360)
AUDIO = TrackInfo(2, "audio", 48000, "mp4a.40.2", None, None)


class Clock:
    """A wall clock that moves only when told."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class RecordingSink:
    """An `OutputSink` that keeps what it was given."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.inits: list[InitSegment] = []
        self.fragments: list[Fragment] = []
        self.closed = 0

    def on_init(self, init: InitSegment) -> None:
        self.inits.append(init)

    def on_fragment(self, fragment: Fragment) -> None:
        self.fragments.append(fragment)

    def close(self) -> None:
        self.closed += 1


def make_broadcast(
    *playback_ids: str, profile: str = "default", signed: set[str] | None = None,
    webrtc_playback: bool = True,
) -> Broadcast:
    policy = StreamPolicy(
        stream_id="ls_1",
        enabled=True,
        playback_ids=tuple(PlaybackId(pid, signed=pid in (signed or ())) for pid in playback_ids),
        profile=profile,
        latency_mode="low",
        reconnect_window=10,
        recording=False,
        webrtc_playback=webrtc_playback,
    )
    return Broadcast(id="br_1", policy=policy, started_at=datetime.now(UTC))


def publish(broadcast: Broadcast, tags: Iterable[MediaTag]) -> None:
    """What the hub does with each tag: the meter sees it, then every sink."""
    for tag in tags:
        broadcast.meter.observe(tag, tag.timestamp / 1000)
        for sink in list(broadcast.sinks):
            sink.push(tag)


def first_seconds(tags: list[MediaTag], seconds: float) -> list[MediaTag]:
    return [tag for tag in tags if tag.timestamp <= seconds * 1000]


def fragment(n: int, *, independent: bool = True) -> Fragment:
    return Fragment(b"m" * 100, n, independent, n * 0.2, 0.2)


def warnings(events: Subscription) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    while (event := events.get_nowait()) is not None:
        if event.type is EventType.LIVE_STREAM_WARNING:
            found.append(dict(event.data))
    return found


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def pipeline(
    tmp_path: Path, bus: EventBus, clock: Clock
) -> AsyncIterator[LivePipeline[RecordingSink]]:
    live = LivePipeline(
        ffmpeg=fake_ffmpeg(tmp_path, "exec cat >/dev/null\n"),  # reads stdin until it closes
        bus=bus,
        clock=clock,
        ended_ttl=0,
        capabilities=CPU_ONLY,
        webrtc_sink=RecordingSink,
    )
    yield live
    await live.close()


def only_pipeline(broadcast: Broadcast) -> BroadcastPipeline[RecordingSink]:
    (sink,) = broadcast.sinks
    assert isinstance(sink, BroadcastPipeline)
    return sink


# Source ------------------------------------------------------------------------------


def test_probe_waits_for_a_second_of_video(source_360p: Path) -> None:
    tags = read_flv(source_360p)
    meter, probe = IngestMeter(), SourceProbe()
    found: list[tuple[int, SourceInfo]] = []
    for i, tag in enumerate(tags):
        meter.observe(tag, tag.timestamp / 1000)
        source = probe.push(tag, meter)
        if source is not None:
            found.append((i, source))
            break
    ((at, source),) = found
    assert source == SourceInfo(640, 360, 30.0, "h264", has_audio=True)
    assert probe.video_frames == 30  # a second at 30 fps settles the frame rate
    assert list(probe.tags) == tags[: at + 1]  # held for the transcoder, headers included


def test_probe_takes_an_audio_only_source() -> None:
    meter, probe = IngestMeter(), SourceProbe()
    results = []
    for i in range(50):
        tag = MediaTag(TagType.AUDIO, i * 21, b"\xaf\x01" + bytes(100))
        meter.observe(tag, i * 0.021)
        results.append(probe.push(tag, meter))
    assert results[:-1] == [None] * 49
    assert results[-1] == SourceInfo(0, 0, 30.0, "unknown", has_audio=True)


# Pipeline ----------------------------------------------------------------------------


async def test_a_broadcast_is_planned_and_published_under_every_playback_id(
    pipeline: LivePipeline[RecordingSink], source_360p: Path
) -> None:
    broadcast = make_broadcast("pb_a", "pb_b")
    pipeline.broadcast_started(broadcast)
    bp = only_pipeline(broadcast)
    tags = read_flv(source_360p)
    publish(broadcast, first_seconds(tags, 0.5))
    assert bp.transcoder is None and pipeline.presentation("pb_a") is None  # still probing
    publish(broadcast, first_seconds(tags, 1.2)[len(first_seconds(tags, 0.5)) :])
    transcoder = bp.transcoder
    assert transcoder is not None and bp.plan is not None
    presentation = pipeline.presentation("pb_a")
    assert presentation is not None and presentation is pipeline.presentation("pb_b")
    assert list(presentation.renditions) == list(bp.plan.names) == ["360p"]
    assert presentation.first_msn == int(START * 2)  # numbered from the injected clock
    await until(lambda: transcoder.pid is not None, what="the stand-in ffmpeg")
    facts = pipeline.facts("ls_1")
    assert facts is not None and facts.profile == "default@1"
    assert (facts.renditions, facts.latency_mode, facts.encoder) == (("360p",), "low", None)
    assert facts.transcoder is not None and facts.transcoder.running
    assert facts.webrtc is not None and (facts.webrtc.width, facts.webrtc.height) == (640, 360)
    assert pipeline.facts("ls_other") is None


async def test_fragments_go_to_their_window_stamped_by_the_clock(
    pipeline: LivePipeline[RecordingSink], clock: Clock, source_360p: Path
) -> None:
    broadcast = make_broadcast("pb_a")
    pipeline.broadcast_started(broadcast)
    publish(broadcast, first_seconds(read_flv(source_360p), 1.2))
    bp = only_pipeline(broadcast)
    bp.on_init("360p", InitSegment(b"init", (VIDEO, AUDIO)))
    clock.now = START + 42.5
    bp.on_fragment("360p", fragment(1))
    bp.on_fragment("nope", fragment(2))  # a rendition the presentation does not have
    presentation = pipeline.presentation("pb_a")
    assert presentation is not None
    playlist = presentation.media_playlist("360p")
    assert playlist is not None
    stamped = datetime.fromtimestamp(START + 42.5, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    assert f"#EXT-X-PROGRAM-DATE-TIME:{stamped}Z" in playlist
    assert presentation.multivariant_playlist() is not None


async def test_the_webrtc_output_goes_to_the_registered_sink_only(
    pipeline: LivePipeline[RecordingSink], source_360p: Path
) -> None:
    broadcast = make_broadcast("pb_a")
    pipeline.broadcast_started(broadcast)
    publish(broadcast, first_seconds(read_flv(source_360p), 1.2))
    bp = only_pipeline(broadcast)
    sink = pipeline.webrtc_feed("pb_a")
    assert sink is not None and sink is bp.webrtc_sink and sink.stream_id == "ls_1"
    init = InitSegment(b"webrtc-init", (VIDEO,))
    bp.on_init(WEBRTC_OUTPUT, init)
    bp.on_fragment(WEBRTC_OUTPUT, fragment(1))
    bp.on_fragment(WEBRTC_OUTPUT, fragment(2))
    assert sink.inits == [init] and [f.sequence_number for f in sink.fragments] == [1, 2]
    presentation = pipeline.presentation("pb_a")
    assert presentation is not None and WEBRTC_OUTPUT not in presentation.renditions
    assert presentation.multivariant_playlist() is None  # HLS never sees the WebRTC output
    facts = pipeline.facts("ls_1")
    assert facts is not None and facts.webrtc is not None and facts.webrtc.fragments == 2
    pipeline.broadcast_ended(broadcast)
    assert sink.closed == 1 and pipeline.webrtc_feed("pb_a") is None


async def test_without_a_sink_factory_there_is_no_webrtc_output(
    tmp_path: Path, bus: EventBus, clock: Clock, source_360p: Path
) -> None:
    live: LivePipeline[RecordingSink] = LivePipeline(
        ffmpeg=fake_ffmpeg(tmp_path, "exec cat >/dev/null\n"), bus=bus, clock=clock,
        capabilities=CPU_ONLY,
    )  # fmt: skip
    try:
        assert not live.webrtc_playback
        broadcast = make_broadcast("pb_a")
        live.broadcast_started(broadcast)
        publish(broadcast, first_seconds(read_flv(source_360p), 1.2))
        bp = only_pipeline(broadcast)
        bp.on_fragment(WEBRTC_OUTPUT, fragment(1))  # ignored, not an error
        facts = live.facts("ls_1")
        assert facts is not None and facts.webrtc is None and bp.webrtc is None
        assert live.webrtc_feed("pb_a") is None
    finally:
        await live.close()


async def test_a_stream_without_webrtc_playback_gets_no_webrtc_output(
    pipeline: LivePipeline[RecordingSink], source_360p: Path
) -> None:
    """The node can play WHEP (a sink factory), but this stream does not ask for it."""
    assert pipeline.webrtc_playback
    broadcast = make_broadcast("pb_a", webrtc_playback=False)
    pipeline.broadcast_started(broadcast)
    publish(broadcast, first_seconds(read_flv(source_360p), 1.2))
    bp = only_pipeline(broadcast)
    assert bp.transcoder is not None and bp.webrtc is None and bp.webrtc_sink is None
    bp.on_fragment(WEBRTC_OUTPUT, fragment(1))  # ignored, not an error
    facts = pipeline.facts("ls_1")
    assert facts is not None and facts.webrtc is None
    assert pipeline.webrtc_feed("pb_a") is None


async def test_a_restart_marks_a_discontinuity_and_warns(
    pipeline: LivePipeline[RecordingSink], bus: EventBus, source_360p: Path
) -> None:
    events = bus.subscribe()
    broadcast = make_broadcast("pb_a")
    pipeline.broadcast_started(broadcast)
    publish(broadcast, first_seconds(read_flv(source_360p), 1.2))
    bp = only_pipeline(broadcast)
    bp.on_init("360p", InitSegment(b"init", (VIDEO, AUDIO)))
    for n in range(1, 6):
        bp.on_fragment("360p", fragment(n, independent=n == 1))
    bp.on_restart(1, "ffmpeg exited with code 1")
    bp.on_fragment("360p", fragment(6))
    presentation = pipeline.presentation("pb_a")
    assert presentation is not None
    playlist = presentation.media_playlist("360p")
    assert playlist is not None and "#EXT-X-DISCONTINUITY\n" in playlist
    (warning,) = warnings(events)
    assert warning["code"] == "transcoder_restarted" and warning["attempt"] == 1
    bp.on_warning("slow_encode", "too slow", {"speed": 0.5})
    assert warnings(events) == [{"code": "slow_encode", "message": "too slow", "speed": 0.5}]
    bp.on_rendition_dropped("360p", "encoder at 0.50x real time")
    assert presentation.renditions == {}


async def test_a_returning_publisher_gets_a_fresh_timeline_on_the_same_presentation(
    pipeline: LivePipeline[RecordingSink], source_360p: Path, source_720p: Path
) -> None:
    broadcast = make_broadcast("pb_a")
    pipeline.broadcast_started(broadcast)
    publish(broadcast, first_seconds(read_flv(source_360p), 1.2))
    bp = only_pipeline(broadcast)
    first = bp.transcoder
    sink = bp.webrtc_sink
    assert first is not None
    await until(lambda: first.pid is not None, what="the stand-in ffmpeg")
    pid = first.pid
    assert pid is not None
    presentation = pipeline.presentation("pb_a")
    assert presentation is not None
    bp.on_init("360p", InitSegment(b"init", (VIDEO, AUDIO)))
    bp.on_fragment("360p", fragment(1))

    # The publisher drops out: its ffmpeg stops, the presentation stays.
    pipeline.publisher_lost(broadcast)
    assert bp.transcoder is None
    await until(lambda: not pid_alive(pid), what="the old ffmpeg to go")
    # It comes back with a 720p encoder: the source is identified again.
    broadcast.meter = IngestMeter()
    pipeline.publisher_resumed(broadcast)
    assert bp.transcoder is None  # probing again
    publish(broadcast, first_seconds(read_flv(source_720p), 1.2))
    second = bp.transcoder
    assert second is not None and second is not first
    assert bp.plan is not None and bp.plan.names == ("720p", "480p", "360p")
    assert pipeline.presentation("pb_a") is presentation  # same playback URLs
    assert set(presentation.renditions) == {"720p", "480p", "360p"}
    # New renditions join after the old one's numbers; the old one continues discontinuous.
    old_last = presentation.renditions["360p"].last_msn
    assert old_last == int(START * 2)
    assert presentation.renditions["720p"].next_part() == (old_last + 1, 0)
    bp.on_fragment("360p", fragment(2))
    playlist = presentation.media_playlist("360p")
    assert playlist is not None and "#EXT-X-DISCONTINUITY\n" in playlist
    assert bp.webrtc_sink is sink  # one sink per broadcast, across restarts


async def test_an_ended_broadcast_ends_its_playlists_and_is_unpublished(
    pipeline: LivePipeline[RecordingSink], source_360p: Path
) -> None:
    broadcast = make_broadcast("pb_a")
    pipeline.broadcast_started(broadcast)
    publish(broadcast, first_seconds(read_flv(source_360p), 1.2))
    presentation = pipeline.presentation("pb_a")
    assert presentation is not None
    pipeline.broadcast_ended(broadcast)
    assert presentation.ended and pipeline.facts("ls_1") is None
    assert (
        pipeline.presentation("pb_a") is presentation
    )  # served a while for players to see the end
    await until(lambda: pipeline.presentation("pb_a") is None, what="the ended presentation to go")


async def test_an_unknown_profile_falls_back_to_the_default_with_a_warning(
    pipeline: LivePipeline[RecordingSink], bus: EventBus
) -> None:
    events = bus.subscribe()
    broadcast = make_broadcast("pb_a", profile="no-such-profile")
    pipeline.broadcast_started(broadcast)
    assert only_pipeline(broadcast).profile.name == "default"
    (warning,) = warnings(events)
    assert warning["code"] == "unknown_profile"


async def test_signed_playback_ids_are_not_served_yet(
    pipeline: LivePipeline[RecordingSink], source_360p: Path
) -> None:
    broadcast = make_broadcast("pb_a", "pb_s", signed={"pb_s"})
    pipeline.broadcast_started(broadcast)
    publish(broadcast, first_seconds(read_flv(source_360p), 1.2))
    assert await pipeline.authorize("pb_a", None)
    assert not await pipeline.authorize("pb_s", None)
    assert await pipeline.authorize("pb_unknown", None)  # the origin answers 404
