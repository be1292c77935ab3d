"""The live pipeline without a real encoder: planning from the source, presentations, sinks,
restarts and discontinuities. ffmpeg is a stand-in that only reads its input."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.media.conftest import fake_ffmpeg, pid_alive, read_flv, until
from tests.mediatools import FFMPEG

from golive.core.events import EventBus, EventType, Subscription
from golive.formats.isobmff import Fragment, InitSegment, TrackInfo
from golive.formats.tag import MediaTag, TagType
from golive.media.command import CPU_ONLY, WEBRTC_OUTPUT
from golive.media.ladder import SourceInfo
from golive.media.pipeline import (
    CONTINUATION_WAIT,
    SOUND_GAP_MS,
    BroadcastPipeline,
    LivePipeline,
    _RunEvents,
)
from golive.media.source import SourceProbe
from golive.packaging import Continuation, Presentation
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
    assert source == SourceInfo(640, 360, 30.0, "h264", has_audio=True,
                                video_profile="Constrained Baseline")
    assert probe.video_frames == 30  # a second at 30 fps settles the frame rate
    assert list(probe.tags) == tags[: at + 1]  # held for the transcoder, headers included


def test_a_codec_without_a_configuration_record_is_probed_like_one_with(tmp_path: Path) -> None:
    # Sorenson H.263 (FLV codec 2: an old Flash-era encoder, or ffmpeg -c:v flv) sends no
    # sequence header: its source was held until the probe's tag limit, about 10 s.
    flv = tmp_path / "h263.flv"
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=30", "-f", "lavfi", "-i", "sine", "-t", "4",
                    "-c:v", "flv", "-c:a", "aac", "-f", "flv", str(flv)], check=True, timeout=60)
    meter, probe = IngestMeter(), SourceProbe()
    found = None
    for tag in read_flv(flv):
        meter.observe(tag, tag.timestamp / 1000)
        if (found := probe.push(tag, meter)) is not None:
            break
    assert found == SourceInfo(320, 240, 30.0, "h263", has_audio=True)
    assert probe.video_frames == 30


def test_a_rejoin_probe_answers_at_the_first_keyframe(source_360p: Path) -> None:
    tags = read_flv(source_360p)
    silent = [t for t in tags if t.type is not TagType.AUDIO]
    for stream, expect_audio, frames, has_audio in (
        (tags, True, 1, True),  # the audio configuration precedes the first frame
        (silent, False, 1, False),
        (silent, True, 30, False),  # audio awaited; a second of video settles it
    ):
        meter = IngestMeter()
        probe = SourceProbe(rejoin=True, expect_audio=expect_audio)
        found = None
        for tag in stream:
            meter.observe(tag, tag.timestamp / 1000)
            if (found := probe.push(tag, meter)) is not None:
                break
        assert found is not None and (found.width, found.height) == (640, 360)
        assert (probe.video_frames, found.has_audio) == (frames, has_audio)


def test_a_rejoin_probe_ignores_what_the_meter_kept_from_the_last_publisher(
    source_360p: Path, source_720p: Path
) -> None:
    meter = IngestMeter()
    for tag in read_flv(source_720p):  # the publisher before: audio, 1280x720
        meter.observe(tag, tag.timestamp / 1000)
    probe = SourceProbe(rejoin=True, expect_audio=True)
    found = None
    for tag in read_flv(source_360p):
        if tag.type is TagType.AUDIO:
            continue
        meter.observe(tag, 10 + tag.timestamp / 1000)
        if (found := probe.push(tag, meter)) is not None:
            break
    assert found is not None and not found.has_audio and found.width == 640


def test_an_audio_configuration_without_sound_is_no_audio(source_360p: Path) -> None:
    # An encoder that announces AAC and never sends a frame: a ladder with audio would wait
    # for one for ever (ffmpeg writes nothing before every encoder had its first input).
    announced = [t for t in read_flv(source_360p)
                 if t.type is not TagType.AUDIO or t.body[1] == 0]
    assert any(t.type is TagType.AUDIO for t in announced)
    meter, probe = IngestMeter(), SourceProbe()
    found = None
    for tag in announced:
        meter.observe(tag, tag.timestamp / 1000)
        if (found := probe.push(tag, meter)) is not None:
            break
    assert found is not None and not found.has_audio and probe.audio_tags == 1
    assert probe.video_frames == 91  # its sound was waited for, three seconds
    # Sound that comes in that time (a file muxed video first) is had.
    late = [t for t in read_flv(source_360p)
            if t.type is not TagType.AUDIO or t.body[1] == 0 or t.timestamp >= 2000]
    meter, probe = IngestMeter(), SourceProbe()
    for tag in late:
        meter.observe(tag, tag.timestamp / 1000)
        if (found := probe.push(tag, meter)) is not None:
            break
    assert found is not None and found.has_audio and probe.video_frames == 60


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


async def test_a_takeover_waits_a_little_for_where_the_other_node_left_off(
    tmp_path: Path, bus: EventBus, clock: Clock, source_360p: Path
) -> None:
    """A broadcast another node served until it died continues that node's numbers; when
    the cluster's registry answers after the source probe, the first presentation waits
    for it (holding the tags) instead of numbering from the clock, but not for ever."""
    looked_up: dict[str, Continuation] = {}
    pending = {"br_1", "br_2"}
    live: LivePipeline[RecordingSink] = LivePipeline(
        ffmpeg=fake_ffmpeg(tmp_path, "exec cat >/dev/null\n"), bus=bus, clock=clock,
        ended_ttl=0, capabilities=CPU_ONLY,
        continuation=lambda broadcast: looked_up.pop(broadcast.id, None),
        continuation_pending=lambda broadcast: broadcast.id in pending)
    try:
        tags = read_flv(source_360p)
        broadcast = make_broadcast("pb_a")
        live.broadcast_started(broadcast)
        publish(broadcast, first_seconds(tags, 1.5))
        assert live.presentation("pb_a") is None  # source known, registry not answered
        looked_up["br_1"] = Continuation(next_msn=4242, discontinuity_sequence=3)
        pending.discard("br_1")
        publish(broadcast, first_seconds(tags, 1.6)[len(first_seconds(tags, 1.5)):])
        presentation = live.presentation("pb_a")
        assert presentation is not None and presentation.first_msn == 4242
        bp = only_pipeline(broadcast)
        # Every tag held while waiting went to the transcoder.
        assert bp.transcoder is not None

        # A registry that never answers: after CONTINUATION_WAIT, numbered from the clock.
        other = dataclasses.replace(make_broadcast("pb_b"), id="br_2")
        live.broadcast_started(other)
        publish(other, first_seconds(tags, 1.5))
        assert live.presentation("pb_b") is None
        clock.now += CONTINUATION_WAIT + 0.1
        publish(other, first_seconds(tags, 1.6)[len(first_seconds(tags, 1.5)):])
        late = live.presentation("pb_b")
        assert late is not None and late.first_msn == int(clock.now * 2)
    finally:
        await live.close()


async def test_fragments_go_to_their_window_stamped_by_the_clock(
    pipeline: LivePipeline[RecordingSink], clock: Clock, source_360p: Path
) -> None:
    broadcast = make_broadcast("pb_a")
    pipeline.broadcast_started(broadcast)
    publish(broadcast, first_seconds(read_flv(source_360p), 1.2))
    bp = only_pipeline(broadcast)
    bp.on_init("360p", InitSegment(b"init", (VIDEO, AUDIO)))
    clock.now = START + 42.5
    bp.on_fragment("360p", fragment(1), None)
    bp.on_fragment("nope", fragment(2), None)  # a rendition the presentation does not have
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
    bp.on_fragment(WEBRTC_OUTPUT, fragment(1), None)
    bp.on_fragment(WEBRTC_OUTPUT, fragment(2), None)
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
        bp.on_fragment(WEBRTC_OUTPUT, fragment(1), None)  # ignored, not an error
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
    bp.on_fragment(WEBRTC_OUTPUT, fragment(1), None)  # ignored, not an error
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
        bp.on_fragment("360p", fragment(n, independent=n == 1), None)
    bp.on_restart(1, "ffmpeg exited with code 1")
    bp.on_fragment("360p", fragment(6), None)
    presentation = pipeline.presentation("pb_a")
    assert presentation is not None
    playlist = presentation.media_playlist("360p")
    assert playlist is not None and "#EXT-X-DISCONTINUITY\n" in playlist
    (warning,) = warnings(events)
    assert warning["code"] == "transcoder_restarted" and warning["attempt"] == 1
    bp.on_warning("slow_encode", "too slow", {"speed": 0.5})
    assert warnings(events) == [{"code": "slow_encode", "message": "too slow", "speed": 0.5}]
    # A dropped rendition stays served (players may hold it), suspended until restored.
    bp.on_rendition_dropped("360p", "encoder at 0.50x real time")
    assert presentation.renditions["360p"].suspended
    bp.on_rendition_restored("360p")
    bp.on_fragment("360p", fragment(7, independent=True), None)  # no aligned segment start known
    assert presentation.renditions["360p"].suspended


def publish_until_started(broadcast: Broadcast, tags: list[MediaTag]) -> list[MediaTag]:
    """Publish `tags` one by one until the broadcast's transcoder starts; the tags it took."""
    bp = only_pipeline(broadcast)
    for i, tag in enumerate(tags):
        publish(broadcast, [tag])
        if bp.transcoder is not None:
            return tags[: i + 1]
    raise AssertionError("the transcoder never started")


async def go_live_then_drop(
    pipeline: LivePipeline[RecordingSink], source: Path
) -> tuple[Broadcast, BroadcastPipeline[RecordingSink], Presentation]:
    """A broadcast from `source` with one part of media, whose publisher then drops out."""
    broadcast = make_broadcast("pb_a")
    pipeline.broadcast_started(broadcast)
    publish(broadcast, first_seconds(read_flv(source), 1.2))
    bp = only_pipeline(broadcast)
    first = bp.transcoder
    assert first is not None and bp.plan is not None
    await until(lambda: first.pid is not None, what="the stand-in ffmpeg")
    pid = first.pid
    assert pid is not None
    presentation = pipeline.presentation("pb_a")
    assert presentation is not None
    for name in bp.plan.names:
        bp.on_init(name, InitSegment(b"init-" + name.encode(), (VIDEO, AUDIO)))
        bp.on_fragment(name, fragment(1), None)
    pipeline.publisher_lost(broadcast)
    assert bp.transcoder is not None  # a takeover (standby, slate) would resume it now
    await asyncio.sleep(0)  # nothing did: it stops once the hub's call is over
    assert bp.transcoder is None
    await until(lambda: not pid_alive(pid), what="the old ffmpeg to go")
    return broadcast, bp, presentation


def spliced_takeover(pipeline: LivePipeline[RecordingSink], broadcast: Broadcast) -> None:
    """What the hub does when the standby (or the slate) takes over: the input is lost
    and, in the same call, a new one resumes on the continued timeline."""
    pipeline.publisher_lost(broadcast)
    broadcast.splice.switch()
    pipeline.publisher_resumed(broadcast)


async def test_a_spliced_takeover_keeps_the_running_transcoder(
    pipeline: LivePipeline[RecordingSink], bus: EventBus, source_360p: Path, source_720p: Path
) -> None:
    events = bus.subscribe()
    broadcast = make_broadcast("pb_a")
    pipeline.broadcast_started(broadcast)
    publish(broadcast, first_seconds(read_flv(source_360p), 1.2))
    bp = only_pipeline(broadcast)
    assert broadcast.failover_after is None  # the default profile leaves it to the node
    first = bp.transcoder
    assert first is not None
    await until(lambda: first.pid is not None, what="the stand-in ffmpeg")
    fed = first.stats.input_bytes
    spliced_takeover(pipeline, broadcast)
    backup = read_flv(source_720p)  # another size: the graph fits it to the ladder
    publish(broadcast, first_seconds(backup, 0.5))
    await asyncio.sleep(0)  # a stop after the loss would run now
    assert bp.transcoder is first and bp.spliced_inputs == 1
    assert first.stats.input_bytes > fed and first.stats.restarts == 0
    assert bp.plan is not None and bp.plan.source.width == 640  # the ladder stays
    assert warnings(events) == []


async def test_a_takeover_in_another_codec_restarts_the_transcoder_and_says_why(
    pipeline: LivePipeline[RecordingSink], bus: EventBus, source_360p: Path
) -> None:
    events = bus.subscribe()
    broadcast = make_broadcast("pb_a")
    pipeline.broadcast_started(broadcast)
    publish(broadcast, first_seconds(read_flv(source_360p), 1.2))
    bp = only_pipeline(broadcast)
    first = bp.transcoder
    assert first is not None
    spliced_takeover(pipeline, broadcast)
    # The same stream, labelled HEVC (FLV codec id 12): the running H.264 decoder cannot.
    hevc = [MediaTag(t.type, t.timestamp, bytes([t.body[0] & 0xF0 | 12]) + t.body[1:])
            if t.type is TagType.VIDEO else t for t in read_flv(source_360p)]
    publish(broadcast, first_seconds(hevc, 0.3))
    assert bp.transcoder is not first and bp.spliced_inputs == 0
    (warning,) = [w for w in warnings(events) if w["code"] == "transcoder_restarted_for_input"]
    assert "hevc" in str(warning["reason"]) and "h264" in str(warning["reason"])


async def test_a_publisher_returning_at_another_resolution_rejoins_the_same_ladder(
    pipeline: LivePipeline[RecordingSink], source_360p: Path, source_720p: Path
) -> None:
    broadcast, bp, presentation = await go_live_then_drop(pipeline, source_720p)
    planned = bp.plan
    assert planned is not None and planned.names == ("720p", "480p", "360p")
    first = bp.webrtc_sink
    multivariant = presentation.multivariant_playlist()

    # It comes back with a 640x360 encoder.
    pipeline.publisher_resumed(broadcast)
    assert bp.transcoder is None  # identifying the new source
    taken = publish_until_started(broadcast, read_flv(source_360p))
    frames = [t for t in taken if t.type is TagType.VIDEO and t.body[1] == 1]
    assert len(frames) == 1  # its first keyframe starts the encoder: no second of probing
    assert any(t.type is TagType.AUDIO for t in taken)
    plan = bp.plan
    assert plan is not None and plan.source.width == 640 and plan.source.height == 360
    # Same rendition names, sizes, rates and bitrates: the 720p rung is upscaled.
    assert plan.renditions == planned.renditions
    assert pipeline.presentation("pb_a") is presentation  # same playback URLs
    assert set(presentation.renditions) == {"720p", "480p", "360p"}
    assert presentation.multivariant_playlist() == multivariant
    bp.on_fragment("480p", fragment(2), None)
    playlist = presentation.media_playlist("480p")
    assert playlist is not None and "#EXT-X-DISCONTINUITY\n" in playlist
    assert not presentation.ended
    assert bp.webrtc_sink is first  # one sink per broadcast, across restarts


async def test_a_stopped_transcoder_flushing_late_does_not_reach_the_new_timeline(
    pipeline: LivePipeline[RecordingSink], source_360p: Path
) -> None:
    broadcast, bp, presentation = await go_live_then_drop(pipeline, source_360p)
    pipeline.publisher_resumed(broadcast)
    publish_until_started(broadcast, read_flv(source_360p))
    second = bp.transcoder
    assert second is not None
    window = presentation.renditions["360p"]
    before = window.playlist()
    # The first run's ffmpeg flushes a last fragment after the second run started.
    stale = _RunEvents(bp, 1)
    stale.on_fragment("360p", fragment(9), None)
    stale.on_init("360p", InitSegment(b"stale-init", (VIDEO, AUDIO)))
    assert window.playlist() == before and window.init is not None
    assert window.init.data == b"init-360p"
    _RunEvents(bp, 2).on_fragment("360p", fragment(10), None)  # the current run's own do
    assert window.playlist() != before


async def test_a_publisher_returning_without_audio_ends_the_presentation_and_starts_anew(
    pipeline: LivePipeline[RecordingSink],
    bus: EventBus,
    clock: Clock,
    source_360p: Path,
) -> None:
    events = bus.subscribe()
    broadcast, bp, presentation = await go_live_then_drop(pipeline, source_360p)
    clock.now = START + 30
    pipeline.publisher_resumed(broadcast)
    silent = [t for t in read_flv(source_360p) if t.type is not TagType.AUDIO]
    publish(broadcast, first_seconds(silent, 1.2))
    # Every rendition's CODECS changes: players are told the playlists ended.
    assert presentation.ended
    text = presentation.media_playlist("360p")
    assert text is not None and text.endswith("#EXT-X-ENDLIST\n")
    (warning,) = [w for w in warnings(events) if w["code"] == "presentation_restarted"]
    assert "no audio" in str(warning["message"])
    successor = bp.presentation
    assert successor is not None and successor is not presentation
    assert bp.plan is not None and not bp.plan.has_audio and bp.transcoder is not None
    # The ended playlists stay served until the new ladder is complete, and at least three
    # target durations for players to see their end.
    assert pipeline.presentation("pb_a") is presentation
    bp.on_init("360p", InitSegment(b"init-video-only", (VIDEO,)))
    assert pipeline.presentation("pb_a") is presentation
    clock.now += 3 * presentation.renditions["360p"].target_duration
    assert pipeline.presentation("pb_a") is successor
    assert successor.first_msn == int((START + 30) * 2)  # no media URL is reused
    pipeline.broadcast_ended(broadcast)
    assert successor.ended


async def test_sound_that_begins_after_the_ladder_started_restarts_the_presentation(
    pipeline: LivePipeline[RecordingSink], bus: EventBus, source_360p: Path
) -> None:
    events = bus.subscribe()
    tags = read_flv(source_360p)
    late = 4000  # ms: no sound in the three seconds the probe waits for it
    silent_first = [t for t in tags
                    if t.type is not TagType.AUDIO or t.body[1] == 0 or t.timestamp >= late]
    broadcast = make_broadcast("pb_a")
    pipeline.broadcast_started(broadcast)
    bp = only_pipeline(broadcast)
    taken = publish_until_started(broadcast, silent_first)
    assert bp.plan is not None and not bp.plan.has_audio
    presentation = bp.presentation
    assert presentation is not None
    for name in bp.plan.names:
        bp.on_init(name, InitSegment(b"init-" + name.encode(), (VIDEO,)))
        bp.on_fragment(name, fragment(1), None)
    # The sound begins: the ladder restarts with it, its tracks change, players are told.
    publish(broadcast, [t for t in silent_first[len(taken):] if t.timestamp < late + 1500])
    assert presentation.ended
    (warning,) = [w for w in warnings(events) if w["code"] == "presentation_restarted"]
    assert "audio now" in str(warning["message"])
    assert bp.plan is not None and bp.plan.has_audio and bp.transcoder is not None
    assert bp.presentation is not None and bp.presentation is not presentation


def as_flac(tags: list[MediaTag]) -> list[MediaTag]:
    """The tags with their AAC sound relabelled as FLAC (Enhanced RTMP "fLaC"): sound the
    transcoder's input has no silent frame for. The stand-in ffmpeg decodes nothing."""
    out = []
    for tag in tags:
        if tag.type is TagType.AUDIO:
            kind = b"\x90fLaC" if tag.body[1] == 0 else b"\x91fLaC"
            tag = MediaTag(TagType.AUDIO, tag.timestamp, kind + tag.body[2:])
        out.append(tag)
    return out


async def test_sound_that_stops_while_the_picture_goes_on_is_filled_with_silence(
    pipeline: LivePipeline[RecordingSink], bus: EventBus, source_360p: Path
) -> None:
    # The ladder keeps its audio: the transcoder's input fills the gap with silent frames
    # of the sound's codec (AAC here), so neither the presentation nor the players' tracks change.
    events = bus.subscribe()
    stop = 1500  # ms
    tags = [t for t in read_flv(source_360p)
            if t.type is not TagType.AUDIO or t.body[1] == 0 or t.timestamp < stop]
    broadcast = make_broadcast("pb_a")
    pipeline.broadcast_started(broadcast)
    bp = only_pipeline(broadcast)
    taken = publish_until_started(broadcast, tags)
    presentation = bp.presentation
    assert presentation is not None and bp.plan is not None and bp.plan.has_audio
    transcoder = bp.transcoder
    assert transcoder is not None and transcoder.fills_silence
    publish(broadcast, tags[len(taken):])
    assert not presentation.ended and bp.transcoder is transcoder
    assert not [w for w in warnings(events) if w["code"] == "presentation_restarted"]
    assert transcoder._input.silences_filled == 1


async def test_other_sound_that_stops_while_the_picture_goes_on_ends_the_ladders_audio(
    pipeline: LivePipeline[RecordingSink], bus: EventBus, source_360p: Path
) -> None:
    # ffmpeg would write the picture alone, a second late, and players would freeze where
    # the sound ends: the ladder goes on without audio (once a broadcast).
    events = bus.subscribe()
    stop = 1500  # ms
    tags = as_flac([t for t in read_flv(source_360p)
                   if t.type is not TagType.AUDIO or t.body[1] == 0 or t.timestamp < stop])
    broadcast = make_broadcast("pb_a")
    pipeline.broadcast_started(broadcast)
    bp = only_pipeline(broadcast)
    taken = publish_until_started(broadcast, tags)
    assert bp.plan is not None and bp.plan.has_audio
    assert bp.transcoder is not None and not bp.transcoder.fills_silence
    presentation = bp.presentation
    assert presentation is not None
    for name in bp.plan.names:
        bp.on_init(name, InitSegment(b"init-" + name.encode(), (VIDEO, AUDIO)))
        bp.on_fragment(name, fragment(1), None)
    rest = tags[len(taken):]
    publish(broadcast, [t for t in rest if t.timestamp <= stop + SOUND_GAP_MS])
    assert not presentation.ended  # three seconds of picture without sound: not yet
    publish(broadcast, [t for t in rest if t.timestamp > stop + SOUND_GAP_MS])
    assert presentation.ended
    (warning,) = [w for w in warnings(events) if w["code"] == "presentation_restarted"]
    assert "no audio" in str(warning["message"])
    assert bp.plan is not None and not bp.plan.has_audio and bp.transcoder is not None


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
