"""The WHEP rendition: its ffmpeg output, its samples, and AVCC turned into Annex-B."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest
from aiortc.codecs.h264 import h264_depayload
from tests.mediatools import FFMPEG

from golive.delivery.whep import WebRtcFeed, avcc_to_annexb, parse_avcc
from golive.formats.isobmff import Fragment, FragmentReader, InitSegment, fragment_samples
from golive.media.command import (
    MOVFLAGS,
    WEBRTC_OUTPUT,
    WebRtcRendition,
    build_command,
    degraded_webrtc,
    filter_graph,
)
from golive.media.health import degrade_steps
from golive.media.ladder import LadderPlan, SourceInfo, plan_ladder
from golive.media.profiles import load_profile


def plan_for(w: int, h: int, profile: str = "default") -> LadderPlan:
    return plan_ladder(load_profile(profile), SourceInfo(w, h, 30, "h264", True), "low")


def test_webrtc_output_degrades_with_the_rung_it_copies() -> None:
    """Issue 10: the WHEP output used to keep its preset and full frame rate through every
    degrade step, costing a starved encoder as much as before."""
    plan = plan_ladder(load_profile("default"), SourceInfo(1280, 720, 30, "h264", True), "low")
    webrtc = WebRtcRendition.for_plan(plan)
    assert webrtc.follows == "480p" and webrtc.preset == "veryfast"
    steps = {s.action: s for s in degrade_steps(plan, libx264=True)}
    # The preset step: the ladder's faster preset is faster than WHEP's own, so it follows.
    assert degraded_webrtc(webrtc, steps["preset"].apply(plan)).preset == "superfast"
    # The frame-rate step halves 480p: WHEP halves too, a keyframe a second still.
    halved = degraded_webrtc(webrtc, steps["frame_rate"].apply(plan))
    assert (halved.frame_rate_expr, halved.gop_frames, halved.preset) == ("15", 15, "superfast")
    assert (halved.width, halved.height) == (webrtc.width, webrtc.height)
    fds = {r.name: 10 + i for i, r in enumerate(plan.renditions)}
    argv = build_command(steps["frame_rate"].apply(plan), ffmpeg="ffmpeg",
                         output_fds={**fds, WEBRTC_OUTPUT: 30}, webrtc=halved)
    # The WHEP output's arguments: from its -map (the last but audio's) on.
    tail = argv[len(argv) - 1 - argv[::-1].index("baseline") - 8:]
    assert tail[tail.index("-preset") + 1] == "superfast" and tail[tail.index("-g") + 1] == "15"
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph.count("fps=15,") == 3  # 480p, 360p and the WHEP output
    # Back to the full ladder: back to WHEP's own settings.
    assert degraded_webrtc(webrtc, steps["full"].apply(plan)) == webrtc


def test_webrtc_output_is_one_more_pipe_with_baseline_and_opus() -> None:
    plan = plan_for(1920, 1080)
    webrtc = WebRtcRendition.for_plan(plan)
    sizes = sorted((r.width, r.height) for r in plan.renditions)
    assert (webrtc.width, webrtc.height) == sizes[1]  # second-lowest of a long ladder
    fds = {r.name: 10 + i for i, r in enumerate(plan.renditions)}
    with pytest.raises(ValueError):
        build_command(plan, ffmpeg="ffmpeg", output_fds=fds, webrtc=webrtc)
    argv = build_command(plan, ffmpeg="ffmpeg", output_fds={**fds, WEBRTC_OUTPUT: 30},
                         webrtc=webrtc)
    assert argv[-1] == "pipe:30"
    last = argv[argv.index("pipe:" + str(max(fds.values()))) + 1 :]
    assert last[last.index("-profile:v") + 1] == "baseline"
    assert last[last.index("-bf") + 1] == "0"
    assert last[last.index("-g") + 1] == "30"  # 1 s GOP
    assert last[last.index("-c:a") + 1] == "libopus" and last[last.index("-ar") + 1] == "48000"
    graph, labels = filter_graph(plan, webrtc)
    assert f"split={len(plan.renditions) + 1}" in graph and WEBRTC_OUTPUT in labels
    without = build_command(plan, ffmpeg="ffmpeg", output_fds=fds)
    assert "libopus" not in without


def test_webrtc_output_of_a_passthrough_ladder_still_encodes() -> None:
    plan = plan_for(1280, 720, "passthrough")
    webrtc = WebRtcRendition.for_plan(plan)
    fds = {r.name: 10 + i for i, r in enumerate(plan.renditions)}
    argv = build_command(plan, ffmpeg="ffmpeg", output_fds={**fds, WEBRTC_OUTPUT: 30},
                         webrtc=webrtc)
    assert "-filter_complex" in argv and "libx264" in argv


@pytest.fixture(scope="module")
def webrtc_mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path: Path = tmp_path_factory.mktemp("webrtc") / "out.mp4"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "2",
         "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
         "-profile:v", "baseline", "-bf", "0", "-g", "30",
         "-c:a", "libopus", "-ar", "48000", "-ac", "2",
         "-f", "mp4", "-movflags", MOVFLAGS, "-frag_duration", "1", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path.read_bytes()


def split(data: bytes) -> tuple[InitSegment, list[Fragment]]:
    items = FragmentReader().feed(data)
    init = items[0]
    assert isinstance(init, InitSegment)
    fragments = [i for i in items[1:] if isinstance(i, Fragment)]
    return init, fragments


def test_samples_come_out_of_fragments_and_decode(webrtc_mp4: bytes) -> None:
    init, fragments = split(webrtc_mp4)
    video = init.video
    assert video is not None
    audio = next(t for t in init.tracks if t.kind == "audio")
    avcc = parse_avcc(init.data)
    assert avcc is not None
    length_size, sets = avcc
    assert length_size == 4 and [s[0] & 0x1F for s in sets] == [7, 8]
    samples = [s for f in fragments for s in fragment_samples(init, f)]
    frames = [s for s in samples if s.track_id == video.track_id]
    opus = [s for s in samples if s.track_id == audio.track_id]
    assert len(frames) == 60 and len(opus) >= 95
    assert [i for i, s in enumerate(frames) if s.sync] == [0, 30]
    times = [s.decode_time for s in frames]
    assert times == sorted(times) and all(s.duration > 0 for s in frames)
    assert all(s.duration == 960 for s in opus[:-1])
    decoder = av.CodecContext.create("h264", "r")
    decoded = 0
    for s in frames:
        annexb = avcc_to_annexb(s.data, length_size, sets, s.sync)
        assert annexb.startswith(b"\x00\x00\x00\x01")
        if s.sync:
            assert annexb[4] & 0x1F == 7  # SPS first before every IDR
        for frame in decoder.decode(av.Packet(annexb)):
            assert (frame.width, frame.height) == (160, 120)
            decoded += 1
    assert decoded >= 59


async def test_feed_starts_a_new_viewer_at_a_keyframe(webrtc_mp4: bytes) -> None:
    init, fragments = split(webrtc_mp4)
    feed = WebRtcFeed("s")
    feed.on_init(init)
    for fragment in fragments[:5]:  # the first keyframe goes by before anyone watches
        feed.on_fragment(fragment)
    video, audio = feed.track("video"), feed.track("audio")
    for fragment in fragments[5:]:
        feed.on_fragment(fragment)
    first = await video.recv()
    # RTP payloads, packetized once for every viewer: SPS and PPS aggregated (STAP-A) first.
    assert first.keyframe and first.payloads[0][0] & 0x1F == 24
    assert first.payloads[0][3] & 0x1F == 7
    assert first.timestamp == 90_000  # the second GOP, one second in (90 kHz RTP clock)
    assert all(len(p) <= 1300 for p in first.payloads)
    # What a receiver reassembles from those payloads decodes, frame after frame.
    decoder = av.CodecContext.create("h264", "r")
    frame, decoded, last = first, 0, 0
    while True:
        annexb = b"".join(h264_depayload(p) for p in frame.payloads)
        decoded += len(decoder.decode(av.Packet(annexb)))
        assert frame.timestamp > last or frame is first
        last = frame.timestamp
        if video.queued:  # what the feed gave, without waiting for more
            frame = await video.recv()
        else:
            break
    assert decoded >= 25
    sound, after = await audio.recv(), await audio.recv()
    assert len(sound.payloads) == 1 and after.timestamp - sound.timestamp == 960  # 20 ms
    feed.close()
    assert video.readyState == "ended"
