"""The supervised ffmpeg: real encodes, aligned keyframes, restarts, fallbacks, no leftovers."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.asyncio
from tests.llhls_rules import check_media_playlist
from tests.media.conftest import Recorder, fake_ffmpeg, feed, pid_alive, read_flv, until
from tests.media.mp4info import Track, read_fragment, read_init
from tests.mediatools import FFMPEG, FFPROBE, make_radio
from tests.starvation import PROFILE as STARVE_PROFILE

from golive.formats.isobmff import Fragment, InitSegment
from golive.formats.tag import MediaTag, TagType
from golive.media import transcoder as transcoder_module
from golive.media.command import WEBRTC_OUTPUT, WebRtcRendition
from golive.media.feed import TagKind, classify
from golive.media.ladder import LadderPlan, SourceInfo, plan_ladder
from golive.media.profiles import StreamProfile, load_profile
from golive.media.source import SourceProbe
from golive.media.transcoder import EncoderCapabilities, Transcoder
from golive.packaging.window import RenditionWindow
from golive.stream import IngestMeter, Splice

CPU = EncoderCapabilities()


def plan_360p(profile: str = "default") -> LadderPlan:
    return plan_ladder(load_profile(profile), SourceInfo(640, 360, 30, "h264", True), "low")


def plan_720p() -> LadderPlan:
    return plan_ladder(load_profile("default"), SourceInfo(1280, 720, 29.97, "h264", True), "low")


def transcoder(plan: LadderPlan, events: Recorder, **kwargs: Any) -> Transcoder:
    kwargs.setdefault("capabilities", CPU)
    return Transcoder(ffmpeg=FFMPEG, plan=plan, events=events, stream_id="ls_test", **kwargs)


def check_run(
    events: Recorder, plan: LadderPlan, run: int, tmp_path: Path
) -> dict[str, list[float]]:
    """Every rendition of `run`: right init, parts within the target, decodable by ffprobe.

    Returns the decode times (s) of each rendition's independent fragments.
    """
    keyframes: dict[str, list[float]] = {}
    for rendition in plan.renditions:
        init = events.inits[(run, rendition.name)]
        fragments = events.fragments[(run, rendition.name)]
        tracks = read_init(init.data)
        (video,) = [t for t in tracks.values() if t.handler == "vide"]
        (audio,) = [t for t in tracks.values() if t.handler == "soun"]
        assert (video.codec, video.width, video.height) == (
            "avc1",
            rendition.width,
            rendition.height,
        )
        assert (audio.codec, audio.timescale) == ("mp4a", 48000)
        times = []
        for i, fragment in enumerate(fragments):
            runs = read_fragment(fragment.data)
            if video.track_id not in runs:  # the audio tail flushed when ffmpeg stops
                assert i == len(fragments) - 1 and set(runs) == {audio.track_id}
                continue
            timing = runs[video.track_id]
            assert timing.duration / video.timescale <= plan.part_target + 1e-6
            assert fragment.independent == timing.starts_with_sync
            if timing.starts_with_sync:
                times.append(round(timing.decode_time / video.timescale, 4))
        keyframes[rendition.name] = times
        # The part sizes are whole frames: all but the last of a GOP are full.
        assert max(video_samples(fragments, video.track_id)) == rendition.part_frames
        path = tmp_path / f"run{run}-{rendition.name}.mp4"
        path.write_bytes(init.data + b"".join(f.data for f in fragments))
        probe = subprocess.run(
            [FFPROBE, "-v", "error", "-count_frames", "-select_streams", "v:0",
             "-show_entries", "stream=codec_name,width,height,nb_read_frames",
             "-of", "csv=p=0", str(path)],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert probe.stderr == ""
        codec, width, height, frames = probe.stdout.strip().split(",")
        assert (codec, int(width), int(height)) == ("h264", rendition.width, rendition.height)
        assert int(frames) > 0
    return keyframes


async def publish_looped(t: Transcoder, tags: list[MediaTag], *, pace: float) -> None:
    """`tags` again and again at `pace` times real time, timestamps going on (until
    cancelled): a publisher for as long as a test needs."""
    offset = 0
    while True:
        await feed(t.push, tags, pace=pace, offset_ms=offset)
        offset += tags[-1].timestamp + 33


def video_samples(fragments: list[Fragment], track_id: int) -> list[int]:
    counts = (read_fragment(f.data).get(track_id) for f in fragments)
    return [run.samples for run in counts if run is not None]


# Real encodes -------------------------------------------------------------------------


async def test_360p_source_through_the_default_profile(source_360p: Path, tmp_path: Path) -> None:
    plan = plan_360p()
    assert plan.names == ("360p",)
    events = Recorder()
    t = transcoder(plan, events)
    tags = read_flv(source_360p)
    for tag in tags[:50]:  # pushed before start, as the pipeline does with its probe backlog
        t.push(tag)
    await t.start()
    try:
        await feed(t.push, tags[50:])
        await until(lambda: events.count() >= 25, what="5 s of fragments")
        # The graph's analysis branch measured the sine and the test picture meanwhile.
        levels = t.stats.levels
        assert levels is not None and levels.audio_rms_dbfs is not None
        assert -40 < levels.audio_rms_dbfs < -10 and levels.audio_peak_dbfs is not None
        assert levels.silent_s == 0.0 and levels.clipping_ratio == 0.0
        assert levels.black_s == 0.0 and levels.luma_high is not None
    finally:
        await t.stop()
    assert not events.order_errors and not events.restarts
    keyframes = check_run(events, plan, 0, tmp_path)
    assert keyframes["360p"][:5] == [0.0, 1.0, 2.0, 3.0, 4.0]
    # 30 fps: six-frame parts of exactly 200 ms, five per 1 s GOP, from the first part on.
    tracks = read_init(events.inits[(0, "360p")].data)
    video = next(track for track in tracks.values() if track.handler == "vide")
    first = read_fragment(events.fragments[(0, "360p")][0].data)
    assert first[video.track_id].samples == 6
    assert events.progress and events.progress[-1].out_time is not None
    stats = t.stats
    assert stats.restarts == 0 and stats.dropped_input_bytes == 0 and not stats.running
    assert stats.renditions == ("360p",) and stats.encoder == "libx264"
    assert t.stats.renditions == ("360p",)


async def test_sound_alone_is_encoded_to_one_aac_rendition_of_whole_frame_parts(
    tmp_path: Path,
) -> None:
    # A radio show: AAC at 44.1 kHz and nothing else, as `ffmpeg -vn -c:a aac -f flv` sends.
    flv = make_radio(tmp_path / "radio.flv", sample_rate=44100)
    plan = plan_ladder(load_profile("default"), SourceInfo(0, 0, 0, "unknown", True), "low")
    assert plan.names == ("audio",) and plan.part_target == 0.192
    events = Recorder()
    t = transcoder(plan, events)
    await t.start()
    try:
        await feed(t.push, read_flv(flv))
        await until(lambda: events.count() >= 25, what="5 s of parts")
        levels = t.stats.levels  # the sound is measured beside the one output
        assert levels is not None and levels.audio_rms_dbfs is not None
        assert -40 < levels.audio_rms_dbfs < -10 and levels.silent_s == 0.0
        assert levels.black_s is None or levels.black_s == 0.0
    finally:
        await t.stop()
    assert not events.order_errors and not events.restarts and not events.warnings
    assert t.stats.renditions == ("audio",)
    (audio,) = read_init(events.inits[(0, "audio")].data).values()
    assert (audio.handler, audio.codec, audio.timescale) == ("soun", "mp4a", 48000)
    fragments = events.fragments[(0, "audio")]
    # Every part is nine 1024-sample frames (192 ms at 48 kHz), independent, back to back;
    # only the tail flushed at the stop may be shorter.
    timings = [read_fragment(f.data)[audio.track_id] for f in fragments]
    assert all(f.independent for f in fragments)
    assert {run.samples for run in timings[:-1]} == {9}
    assert {run.duration for run in timings[:-1]} == {9 * 1024}
    assert all(b.decode_time == a.decode_time + a.duration for a, b in itertools.pairwise(timings))
    path = tmp_path / "audio.mp4"
    path.write_bytes(events.inits[(0, "audio")].data + b"".join(f.data for f in fragments))
    probe = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "stream=codec_type,codec_name,sample_rate",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert probe.stderr == "" and probe.stdout.strip() == "aac,audio,48000"



async def transcode_360p(
    tags: list[MediaTag], *, parts: int
) -> tuple[LadderPlan, Transcoder, InitSegment, list[Fragment], Track, Track]:
    """`tags` through the 360p ladder at their own pace until `parts` parts came: the plan,
    the stopped transcoder, its init and fragments, and the init's video and audio tracks."""
    plan = plan_360p()
    events = Recorder()
    t = transcoder(plan, events)
    await t.start()
    try:
        await feed(t.push, tags, pace=1)
        await until(lambda: events.count() >= parts, what=f"{parts} parts")
    finally:
        await t.stop()
    assert not events.order_errors and not events.restarts
    init = events.inits[(0, "360p")]
    tracks = read_init(init.data)
    video = next(track for track in tracks.values() if track.handler == "vide")
    audio = next(track for track in tracks.values() if track.handler == "soun")
    return plan, t, init, events.fragments[(0, "360p")], video, audio


async def test_a_sound_that_begins_after_the_picture_starts_the_broadcast_with_it(
    source_360p: Path, tmp_path: Path
) -> None:
    # A publisher whose sound begins 1.5 s after its picture. Started at the first keyframe,
    # the audio track would begin 1.5 s late: an fMP4 edit list, which MSE players ignore
    # (all of the sound 1.5 s early, for the whole broadcast), and a first part holding
    # the picture until the sound came. The broadcast starts at the next keyframe instead.
    tags = [tag for tag in read_flv(source_360p)
            if tag.type is not TagType.AUDIO or tag.body[1] == 0 or tag.timestamp >= 1500]
    plan, _, init, fragments, video, audio = await transcode_360p(tags, parts=15)
    # Every part has its picture and is as long as its picture (the tail of sound flushed
    # at the stop aside), from the first on.
    whole = [f for f in fragments if video.track_id in read_fragment(f.data)]
    assert fragments[: len(whole)] == whole and len(whole) >= 15
    for fragment in whole:
        timing = read_fragment(fragment.data)[video.track_id]
        assert fragment.duration == timing.duration / video.timescale <= plan.part_target + 1e-6
    window = RenditionWindow("360p", part_target=plan.part_target, low_latency=True,
                             bandwidth=1, average_bandwidth=1, frame_rate=30)
    window.set_init(init)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for fragment in whole:
        window.add_fragment(fragment, start + timedelta(seconds=fragment.decode_time))
        check_media_playlist(window.playlist(), low_latency=True)
    assert window.parts_out_of_spec == 0
    # Both tracks start together, and there is sound from the start.
    path = tmp_path / "late-sound.mp4"
    path.write_bytes(init.data + b"".join(f.data for f in whole))
    probe = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=start_time",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert abs(float(probe.stdout)) < 0.03
    assert read_fragment(whole[0].data)[audio.track_id].decode_time == 0
    assert audio_level(path, 0.0, 1.0) > -40


def with_sound(source: Path, codec: str, tmp_path: Path) -> Path:
    """`source` with its sound encoded again as `codec` (FLV: MP3 as legacy sound format 2,
    Opus, AC-3, E-AC-3 and FLAC as Enhanced RTMP audio)."""
    path = tmp_path / f"{source.stem}-{codec}.flv"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-i", str(source), "-c:v", "copy",
         "-c:a", {"mp3": "libmp3lame", "opus": "libopus", "ac3": "ac3", "eac3": "eac3",
                  "flac": "flac"}[codec],
         "-ar", "44100" if codec == "mp3" else "48000", "-f", "flv", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


@pytest.mark.parametrize("sound", ["aac", "mp3", "opus", "ac3", "eac3", "flac"])
async def test_sound_that_stops_while_the_picture_goes_on_continues_as_silence(
    source_360p: Path, tmp_path: Path, sound: str
) -> None:
    # A publisher whose sound stops at 2 s while its picture goes on. Without sound ffmpeg
    # writes the picture alone (each part a second late) and MSE players freeze where the
    # buffered sound ends: the input fills the gap with silent frames of the sound's own
    # codec instead.
    stop = 2000
    source = source_360p if sound == "aac" else with_sound(source_360p, sound, tmp_path)
    tags = [tag for tag in read_flv(source)
            if classify(tag) is not TagKind.AUDIO or tag.timestamp < stop]
    _, t, init, fragments, video, audio = await transcode_360p(tags, parts=25)
    assert t._input.silences_filled == 1
    whole = [f for f in fragments if video.track_id in read_fragment(f.data)]
    assert len(whole) >= 25
    # Every part carries sound beside its picture, before the stop and after it, and the
    # sound runs on without a hole to the last part.
    audio_end = None
    for fragment in whole[:-1]:
        run = read_fragment(fragment.data)
        assert audio.track_id in run, fragment.decode_time
        timing = run[audio.track_id]
        if audio_end is not None:
            assert timing.decode_time == audio_end
        audio_end = timing.decode_time + timing.duration
    assert audio_end is not None and audio_end / audio.timescale > 4.5
    path = tmp_path / "stopped-sound.mp4"
    path.write_bytes(init.data + b"".join(f.data for f in whole))
    assert audio_level(path, 0.5, 1.5) > -40
    assert audio_level(path, 3.0, 4.5) < -90


def audio_level(path: Path, start: float, end: float) -> float:
    """The RMS level (dBFS) of `path`'s sound from `start` to `end` seconds."""
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostats", "-i", str(path), "-vn",
         "-af", f"atrim={start}:{end},astats=measure_perchannel=none", "-f", "null", "-"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    found = re.findall(r"RMS level dB: (\S+)", result.stderr)
    assert found, result.stderr[-2000:]
    return -200.0 if found[-1] == "-inf" else float(found[-1])


def field_detection(path: Path) -> dict[str, int]:
    """ffmpeg's idet over a file's pictures: how many look top-field-first, bottom-field-
    first or progressive by their content (combing between lines), not by any flag."""
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostats", "-i", str(path), "-an", "-vf", "idet", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stderr
    # (The last report: a graph that ffmpeg re-made on the first frame reports too.)
    found = re.findall(r"Multi frame detection: TFF: *(\d+) BFF: *(\d+) Progressive: *(\d+)",
                       out)
    assert found, out
    return dict(zip(("tff", "bff", "progressive"), map(int, found[-1]), strict=True))


async def test_an_interlaced_source_is_deinterlaced_before_the_ladder(tmp_path: Path) -> None:
    # 720i30 as a contribution encoder sends it: fields of a 60 Hz picture woven into
    # frames, coded interlaced (MBAFF, frame_mbs_only_flag 0), top field first.
    flv = tmp_path / "interlaced.flv"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=60",
         "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "4",
         "-vf", "tinterlace=mode=interleave_top,setfield=tff",
         "-c:v", "libx264", "-preset", "ultrafast", "-flags", "+ildct+ilme",
         "-x264-params", "tff=1", "-g", "30", "-bf", "0", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-f", "flv", str(flv)],
        check=True, timeout=120,
    )  # fmt: skip
    assert field_detection(flv)["tff"] > 100  # the source itself: combed pictures
    tags = read_flv(flv)
    meter = IngestMeter()
    probe = SourceProbe()
    source = None
    for tag in tags:
        meter.observe(tag, 0.0)
        source = probe.push(tag, meter)
        if source is not None:
            break
    assert source is not None and source.interlaced and source.frame_rate == 30
    plan = plan_ladder(load_profile("default"), source, "low")
    assert any("interlaced" in note for note in plan.notes)
    events = Recorder()
    t = transcoder(plan, events)
    await t.start()
    try:
        await feed(t.push, tags)
        await until(lambda: len(events.fragments.get((0, "360p"), [])) >= 15, what="3 s of parts")
    finally:
        await t.stop()
    assert not events.order_errors and not events.restarts
    for name in ("720p", "360p"):
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(events.inits[(0, name)].data
                         + b"".join(f.data for f in events.fragments[(0, name)]))
        fields = field_detection(path)
        # Woven fields deinterlaced: whole progressive pictures, one per input frame.
        assert fields["progressive"] > 5 * (fields["tff"] + fields["bff"]), (name, fields)


async def test_720p_ladder_has_aligned_keyframes(source_720p: Path, tmp_path: Path) -> None:
    plan = plan_720p()
    assert plan.names == ("720p", "480p", "360p")
    events = Recorder()
    t = transcoder(plan, events)
    await t.start()
    cpu_before = os.times()
    started = time.monotonic()
    try:
        await feed(t.push, read_flv(source_720p))
        await until(
            lambda: all(len(events.fragments.get((0, n), [])) >= 18 for n in plan.names),
            what="3 s in every rendition",
        )
    finally:
        await t.stop()
    elapsed = time.monotonic() - started
    cpu = os.times()
    used = (cpu.children_user + cpu.children_system) - (
        cpu_before.children_user + cpu_before.children_system
    )
    speed = (events.progress[-1].out_time or 0) / elapsed
    print(
        f"\n3-rendition 720p29.97 encode: {speed:.2f}x real time, {used / elapsed:.2f} cores busy"
    )
    keyframes = check_run(events, plan, 0, tmp_path)
    # The publisher's GOP is 2 s; ours is 30 frames (1.001 s) in every rendition.
    assert keyframes["720p"][:3] == [0.0, 1.001, 2.002]
    common = min(len(v) for v in keyframes.values())
    assert common >= 3
    assert len({tuple(v[:common]) for v in keyframes.values()}) == 1
    for name in plan.names:
        fragments = events.fragments[(0, name)]
        track = read_init(events.inits[(0, name)].data)
        video = next(t for t in track.values() if t.handler == "vide")
        # 29.97 fps: five frames (166.8 ms) per part, never six (200.2 ms); the last
        # part may be cut short by the stop.
        assert set(video_samples(fragments, video.track_id)[:-1]) == {5}


async def test_killed_ffmpeg_is_restarted_quickly(source_360p: Path, tmp_path: Path) -> None:
    plan = plan_360p()
    events = Recorder()
    t = transcoder(plan, events)
    await t.start()
    tags = read_flv(source_360p)
    pusher = asyncio.create_task(feed(t.push, tags, pace=2.0))
    try:
        await until(lambda: events.count() >= 5, what="first fragments")
        pid = t.pid
        assert pid is not None
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        await until(lambda: bool(events.restarts), limit=10, what="on_restart")
        restarted_at, attempt, reason = events.restarts[0]
        assert restarted_at - killed < 1.0
        assert attempt == 1 and "signal 9" in reason
        await until(lambda: events.count(run=1) >= 5, what="fragments after the restart")
        assert t.pid not in (None, pid)
        await pusher
    finally:
        pusher.cancel()
        await t.stop()
    assert not pid_alive(pid)
    assert not events.order_errors
    keyframes = check_run(events, plan, 1, tmp_path)
    assert keyframes["360p"][0] == 0.0  # a fresh timeline after the discontinuity
    assert t.stats.restarts == 1


async def test_reconnect_restarts_on_a_fresh_timeline(source_360p: Path, tmp_path: Path) -> None:
    plan = plan_360p()
    events = Recorder()
    t = transcoder(plan, events)
    await t.start()
    tags = read_flv(source_360p)
    try:
        await feed(t.push, tags[: len(tags) // 2])
        await until(lambda: events.count() >= 8, what="fragments from the first publisher")
        t.restart("reconnect")
        # The publisher is back and its clock starts at 0 again.
        await feed(t.push, tags)
        await until(lambda: events.count(run=1) >= 20, what="fragments after the reconnect")
    finally:
        await t.stop()
    assert [(attempt, reason) for _, attempt, reason in events.restarts] == [(1, "reconnect")]
    keyframes = check_run(events, plan, 1, tmp_path)
    assert keyframes["360p"][:4] == [0.0, 1.0, 2.0, 3.0]
    assert not any(code == "transcoder_failed" for code, _, _ in events.warnings)


async def test_inputs_spliced_in_at_other_sizes_and_audio_rates_keep_one_timeline(
    source_360p: Path, source_720p: Path, tmp_path: Path
) -> None:
    """What a failover does to the running ffmpeg: 640x360 at 48 kHz, then 1280x720 at
    29.97 fps and 44.1 kHz, then 640x360 again, each spliced on by the hub's `Splice` (its
    codec configuration in-band, its timestamps continued): ffmpeg 5.1's decoder takes the
    new configuration, its graph is re-made and fits the picture and resamples the audio
    to the ladder, so there is no restart, one init segment, and decode times that go on
    fragment after fragment at the rendition's size and 48 kHz."""
    plan = plan_360p()
    events = Recorder()
    t = transcoder(plan, events)
    splice = Splice()
    await t.start()
    try:
        for i, source in enumerate((source_360p, source_720p, source_360p)):
            if i:
                splice.switch()
            tags = [out for tag in read_flv(source) if (out := splice.rewrite(tag)) is not None]
            await feed(t.push, tags)
        await until(lambda: events.count() >= 70, limit=120, what="14 s of fragments")
    finally:
        await t.stop()
    assert not events.restarts and t.stats.restarts == 0 and splice.switches == 2
    assert list(events.inits) == [(0, "360p")]  # one init segment: the output never changed
    tracks = read_init(events.inits[(0, "360p")].data)
    video = next(track for track in tracks.values() if track.handler == "vide")
    audio = next(track for track in tracks.values() if track.handler == "soun")
    assert (video.width, video.height, audio.timescale) == (640, 360, 48000)
    fragments = events.fragments[(0, "360p")]
    runs = [read_fragment(f.data).get(video.track_id) for f in fragments]
    timeline = [(r.decode_time, r.duration) for r in runs if r is not None]
    for (start, duration), (following, _) in itertools.pairwise(timeline):
        assert following == start + duration
    assert timeline[-1][0] / video.timescale > 14  # the three inputs' 16 s, all of it encoded
    # The audio goes on too, at the pace of its samples: a resampler re-made with the
    # graph must not start its output over at 0 (it did with `first_pts=0`: ffmpeg
    # padded the whole broadcast so far with silence and squeezed it into 1-tick
    # samples, 302 AAC frames in 0.19 s). Around a splice the new input's sound may
    # start a little after or before the old one ended, which moves a few samples'
    # times by some milliseconds; the sound keeps the picture's length all along.
    sounds = [r for f in fragments if (r := read_fragment(f.data).get(audio.track_id))]
    for run, following_run in itertools.pairwise(sounds):
        assert following_run.decode_time == run.decode_time + run.duration
        assert run.duration > run.samples * 1024 / 2, run
    audio_end = (sounds[-1].decode_time + sounds[-1].duration) / audio.timescale
    video_end = (timeline[-1][0] + timeline[-1][1]) / video.timescale
    assert abs(audio_end - video_end) < 0.5, (audio_end, video_end)
    # ffmpeg 5.1 re-makes the graph without draining it, and the fps filter's held frame
    # goes with it: one frame per re-making. Two frames were seen, only on a loaded
    # machine; the likely reason is a splice that changes both the picture size and the
    # sample rate re-making the graph twice, when the new sound reaches it before the
    # new picture (decoder thread timing). The part around the splice is then that much longer
    # than the part target. Never more, and only there.
    frame = video.timescale / 30
    target = plan.part_target * video.timescale
    extra = [(d - target) / frame for _, d in timeline if d > target + 1]
    assert all(e <= 2 + 1e-6 for e in extra) and sum(extra) <= 2 * splice.switches + 1e-6, extra
    path = tmp_path / "spliced.mp4"
    path.write_bytes(events.inits[(0, "360p")].data + b"".join(f.data for f in fragments))
    probe = subprocess.run(
        [FFPROBE, "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_name,width,height,sample_rate", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert probe.stderr == ""
    assert probe.stdout.split() == ["h264,640,360", "aac,48000"]


async def test_slow_encode_degrades_step_by_step(source_720p: Path) -> None:
    base = load_profile("default").model_dump()
    base["alerts"].update(min_encode_speed=5.0, slow_encode_seconds=1.0)  # nobody is 5x live
    profile = StreamProfile.model_validate(base)
    plan = plan_ladder(profile, SourceInfo(1280, 720, 29.97, "h264", True), "low")
    events = Recorder()
    t = transcoder(plan, events)
    await t.start()
    tags = read_flv(source_720p)

    pusher = asyncio.create_task(publish_looped(t, tags, pace=2))  # a keyframe every 2 s
    try:
        await until(lambda: bool(events.dropped), limit=60, what="a dropped rendition")
        assert events.dropped[0][0] == "720p"
        # The speed the health check decided on is what stats (and /metrics) show.
        speed = t.stats.speed
        assert speed is not None and 0 < speed < 5
        # (480p may already be gone too on a busy machine: the steps below say the order.)
        assert "720p" not in t.plan.names and t.plan.x264_preset == "superfast"
        run = events.run  # the preset step's run: the drop must not restart it

        def past_the_gates() -> bool:  # 360p went on well beyond 720p's and 480p's last parts
            given_up = [events.fragments.get((run, name), []) for name in ("720p", "480p")]
            low = events.fragments.get((run, "360p"), [])
            return len(events.dropped) == 2 and bool(low) and all(
                f and low[-1].decode_time > f[-1].decode_time + 4 for f in given_up
            )
        await until(past_the_gates, limit=90, what="360p going on without 720p and 480p")
    finally:
        pusher.cancel()
        await t.stop()
    steps = [data for code, _, data in events.warnings if code == "slow_encode"]
    # First a faster preset on the same ladder (29.97 fps parts cannot lose frames), then
    # the top renditions: the preset restarts the encoder, giving a rung up does not.
    assert [(s["step"], s["action"], s["preset"], s["rendition"]) for s in steps[:3]] == [
        (1, "preset", "superfast", None), (2, "drop", "superfast", "720p"),
        (3, "drop", "superfast", "480p"),
    ]  # fmt: skip
    assert all(s["speed"] < 5 for s in steps) and steps[0]["renditions"] == list(plan.names)
    assert steps[1]["renditions"] == ["480p", "360p"] and steps[2]["renditions"] == ["360p"]
    assert [reason for _, _, reason in events.restarts] == ["slow_encode: step 1"]
    assert events.run == run
    # Each stopped after a whole GOP, at a keyframe instant of the rendition that went on,
    # and its output went quiet (no audio-only parts either).
    low = events.fragments[(run, "360p")]
    for name in ("720p", "480p"):
        (video,) = [
            t for t in read_init(events.inits[(run, name)].data).values() if t.handler == "vide"
        ]
        timings = [read_fragment(f.data).get(video.track_id) for f in events.fragments[(run, name)]]
        last = [t for t in timings if t is not None and t.samples][-1]
        stop = (last.decode_time + last.duration) / video.timescale
        assert any(abs(f.decode_time - stop) < 0.002 and f.independent for f in low), name
    # 360p is continuous across the instants the others stopped: no gap, no restart. Its
    # video, that is: the last part may hold only the audio left over when the test
    # stopped the encoder (one 11 ms sample seen, under load), whose time is the audio's.
    (video,) = [t for t in read_init(events.inits[(run, "360p")].data).values()
                if t.handler == "vide"]
    timings = [read_fragment(f.data).get(video.track_id) for f in low]
    with_video = [t for t in timings if t is not None and t.samples]
    assert len(with_video) >= len(low) - 1, "a 360p part without video before its last"
    times = [t.decode_time / video.timescale for t in with_video]
    steps_between = [round(b - a, 4) for a, b in itertools.pairwise(times)]
    assert all(0 < d < plan.part_target + 0.01 for d in steps_between), (plan.part_target, [
        d for d in steps_between if not 0 < d < plan.part_target + 0.01])



@pytest.mark.parametrize("reconfigured", [False, True], ids=["gate", "after-a-new-input"])
async def test_a_frame_rate_step_lowers_a_rung_in_the_running_encoder(
    source_360p: Path, reconfigured: bool
) -> None:
    # The step after the preset: 180p at half its frame rate, by its gate in the running
    # ffmpeg. The preset step restarts it (x264 cannot change preset mid-stream); the
    # frame-rate step must not: 360p and 180p go on in the same run, 180p with one frame
    # in two from a keyframe on, its parts still whole and where 360p's are.
    # After a spliced input with a new configuration (its graph may have been re-made,
    # counting frames from 0 again) the step restarts instead, 180p halved from the start.
    # The WHEP output copies 180p, and its frame rate goes with it (a keyframe a second).
    base = StreamProfile.model_validate(tomllib.loads(STARVE_PROFILE)).model_dump()
    base["alerts"].update(min_encode_speed=5.0, slow_encode_seconds=1.0)  # nobody is 5x live
    base["fallback"]["drop_top_rendition_on_slow_encode"] = False  # stop at the fps step
    plan = plan_ladder(StreamProfile.model_validate(base),
                       SourceInfo(640, 360, 30, "h264", True), "low")
    assert plan.names == ("360p", "180p") and plan.frame_rate_divisor("180p") == 2
    events = Recorder()
    webrtc = WebRtcRendition.for_plan(plan)
    assert webrtc.follows == "180p"
    t = transcoder(plan, events, webrtc=webrtc)
    if reconfigured:  # as the pipeline says after such a splice, once the preset's run is up
        restarted = events.on_restart

        def on_restart(attempt: int, reason: str) -> None:
            restarted(attempt, reason)
            t.input_reconfigured()

        events.on_restart = on_restart  # type: ignore[method-assign]
    await t.start()
    tags = read_flv(source_360p)

    def steps() -> list[dict[str, Any]]:
        return [data for code, _, data in events.warnings if code == "slow_encode"]

    def halved_for_a_while() -> bool:
        if len(steps()) < 2:
            return False
        rates = frame_rates(events, events.run, "180p")
        return rates.count(15) >= 20  # four GOPs of five parts

    pusher = asyncio.create_task(publish_looped(t, tags, pace=1))
    try:
        await until(halved_for_a_while, limit=90, what="180p at 15 fps for a few GOPs")
    finally:
        pusher.cancel()
        await t.stop()
    preset, fps = steps()[:2]
    assert (preset["action"], fps["action"]) == ("preset", "frame_rate")
    assert fps["fps"] == {"360p": 30.0, "180p": 15.0} and t.plan.rendition("180p").frame_rate == 15
    restarts = [reason for _, _, reason in events.restarts]
    run = events.run
    low, top = events.fragments[(run, "180p")], events.fragments[(run, "360p")]
    rates = frame_rates(events, run, "180p")
    first = rates.index(15)
    if reconfigured:
        assert restarts == ["slow_encode: step 1", "slow_encode: step 2"] and first == 0
    else:
        assert restarts == ["slow_encode: step 1"]
    assert set(rates[:first]) <= {30} and set(rates[first:-1]) == {15}, rates
    assert low[first].independent  # from a keyframe on
    # The same parts as 360p's (decode times), back to back, at either rate.
    assert [round(f.decode_time, 3) for f in low[:-1]] == [
        round(f.decode_time, 3) for f in top[: len(low) - 1]
    ]
    (video,) = [t for t in read_init(events.inits[(run, "180p")].data).values()
                if t.handler == "vide"]
    timings = [read_fragment(f.data)[video.track_id] for f in low[:-1]]
    for a, b in itertools.pairwise(timings):
        assert a.decode_time + a.duration == b.decode_time
    # WebRTC: a fragment per frame; one frame in two from (about) where 180p's rate fell.
    (video,) = [t for t in read_init(events.inits[(run, WEBRTC_OUTPUT)].data).values()
                if t.handler == "vide"]
    frames = [(timing.decode_time / video.timescale, timing.duration / video.timescale,
               timing.starts_with_sync)
              for f in events.fragments[(run, WEBRTC_OUTPUT)]
              if (timing := read_fragment(f.data).get(video.track_id)) is not None]
    halved = low[first].decode_time
    late = [round(d, 4) for start, d, _ in frames[:-1] if start >= halved + 1.0]
    assert late and set(late) == {round(2 / 30, 4)}, late[:10]
    keys = [round(start, 2) for start, _, sync in frames if sync and start >= halved + 1.0]
    assert all(0.9 < b - a < 1.1 for a, b in itertools.pairwise(keys)), keys


async def test_captions_that_begin_bring_a_halved_rung_back_to_its_full_rate(
    source_360p: Path
) -> None:
    # A rung at half its frame rate keeps the caption data of every other picture only
    # (garbled captions). Captions beginning while 180p runs halved (a captioner joining
    # a loaded node): its gate lets every frame through again, in the same run, and the
    # frame-rate step is not taken again.
    base = StreamProfile.model_validate(tomllib.loads(STARVE_PROFILE)).model_dump()
    base["alerts"].update(min_encode_speed=5.0, slow_encode_seconds=1.0)  # nobody is 5x live
    base["fallback"]["drop_top_rendition_on_slow_encode"] = False
    plan = plan_ladder(StreamProfile.model_validate(base),
                       SourceInfo(640, 360, 30, "h264", True), "low")
    events = Recorder()
    captioned = [False]
    t = transcoder(plan, events, captions=lambda: captioned[0])
    await t.start()
    pusher = asyncio.create_task(publish_looped(t, read_flv(source_360p), pace=1))
    try:
        await until(lambda: frame_rates(events, events.run, "180p").count(15) >= 5,
                    limit=90, what="180p at 15 fps")
        run = events.run
        captioned[0] = True
        t.captions_began()
        halved = len(frame_rates(events, run, "180p"))

        def restored() -> bool:
            return frame_rates(events, run, "180p")[halved:].count(30) >= 10
        await until(restored, limit=60, what="180p back at 30 fps")
    finally:
        pusher.cancel()
        await t.stop()
    (said,) = [data for code, _, data in events.warnings if code == "captions_frame_rate"]
    assert said["fps"] == {"360p": 30.0, "180p": 30.0} and said["step"] == 1
    assert t.plan.rendition("180p").frame_rate == 30
    assert [reason for _, _, reason in events.restarts] == ["slow_encode: step 1"]  # gates
    after = frame_rates(events, run, "180p")[halved:-1]
    back = after.index(30)
    assert set(after[back:]) == {30}, after  # and not halved again, however slow
    assert [code for code, _, _ in events.warnings].count("slow_encode") >= 2


def frame_rates(events: Recorder, run: int, rendition: str) -> list[int]:
    """Video frames per second of each of a run's fragments of `rendition`."""
    if (run, rendition) not in events.inits:
        return []
    tracks = read_init(events.inits[(run, rendition)].data).values()
    (video,) = [t for t in tracks if t.handler == "vide"]
    rates = []
    for f in events.fragments.get((run, rendition), []):
        timing = read_fragment(f.data).get(video.track_id)
        if timing is not None and timing.duration:
            rates.append(round(timing.samples * video.timescale / timing.duration))
    return rates


async def test_a_run_starved_before_its_first_output_counts_as_slow(
    tmp_path: Path, source_360p: Path
) -> None:
    # A restart on a saturated machine: ffmpeg takes its input but never gets to encode a
    # frame, so it never says how far it got. That is speed 0, not "unknown": the degrade
    # steps stopped at the step that restarted it (the starved-player test, run beside
    # other load).
    base = load_profile("default").model_dump()
    base["alerts"].update(slow_encode_seconds=1.0)
    plan = plan_ladder(StreamProfile.model_validate(base),
                       SourceInfo(640, 360, 30, "h264", True), "low")
    events = Recorder()
    t = Transcoder(ffmpeg=fake_ffmpeg(tmp_path, "exec cat > /dev/null\n"), plan=plan,
                   events=events, stream_id="ls_starved", capabilities=CPU)
    await t.start()
    pusher = asyncio.create_task(feed(t.push, read_flv(source_360p), pace=1))
    try:
        await until(lambda: any(code == "slow_encode" for code, _, _ in events.warnings),
                    limit=60, what="a slow_encode warning")
    finally:
        pusher.cancel()
        await t.stop()
    slow = next(data for code, _, data in events.warnings if code == "slow_encode")
    assert slow["speed"] == 0 and slow["step"] == 1


def test_a_starved_encoder_gets_frames_not_seconds_to_answer_a_gate() -> None:
    # ffmpeg reads a gate command as a frame passes its zmq filter. At 0.01x real time and
    # 30 fps that is 3.3 s a frame: a fixed 3 s wait restarted the encoder (make test saw
    # it), the discontinuity the gates exist to avoid.
    reply = transcoder_module.gate_reply_seconds
    assert reply(1.0, 30) == 3.0  # healthy: the floor, many frames' time
    assert reply(0.01, 30) == pytest.approx(8 / 0.3)  # eight frames at the measured speed
    assert reply(0.02, 60) == pytest.approx(8 / 1.2)
    assert reply(0.005, 30) == 30.0  # too slow for gates: the restart, after the cap
    assert reply(None, 30) == reply(0.0, 30) == reply(0.5, 0) == 30.0  # unknown: the cap


@pytest.mark.parametrize(("working", "answers", "cap", "taken"), [
    (True, True, 30.0, True),  # slower than its measured speed, but working: it answers
    (False, False, 30.0, False),  # hung: given up `reply_s` after its last sign of life
    (True, False, 0.6, False),  # working, never answering: the cap
], ids=["working", "hung", "cap"])
async def test_a_gate_answer_is_waited_for_while_the_encoder_works(
        working: bool, answers: bool, cap: float, taken: bool) -> None:
    # make test (beside a busy loop) saw a starved encoder, just restarted, take longer
    # than its measured speed's eight frames to answer a gate, and be restarted for it.
    context = zmq.asyncio.Context()
    ffmpeg, golive = context.socket(zmq.REP), context.socket(zmq.REQ)
    port = ffmpeg.bind_to_random_port("tcp://127.0.0.1")
    golive.connect(f"tcp://127.0.0.1:{port}")
    looks = itertools.count(1)
    looked = 0

    def life() -> int:
        nonlocal looked
        looked = next(looks)
        return looked if working else 0  # a working encoder has more output at each look

    async def encoder() -> None:
        assert await ffmpeg.recv_string() == "gate1 enable 1"
        # It answers once the wait has looked for life four times after the first, each
        # a `reply_s` (0.2 s) apart: counted in looks, so a slow machine changes nothing.
        await until(lambda: looked >= 5, what="the wait's looks")
        await ffmpeg.send_string("0 Success")

    try:
        await golive.send_string("gate1 enable 1")
        answering = asyncio.create_task(encoder()) if answers else None
        assert await transcoder_module.await_gate_reply(golive, life, 0.2, cap) is taken
        if answering is not None:
            await answering
            assert await golive.recv_string() == "0 Success"
        else:
            assert looked >= 2  # it looked for life before it gave up
    finally:
        golive.close(linger=0)
        ffmpeg.close(linger=0)
        context.term()


async def test_without_gates_a_given_up_rung_costs_a_restart(source_720p: Path) -> None:
    # An ffmpeg without the zmq filter: the ladder is rebuilt without the rung, as before.
    base = load_profile("default").model_dump()
    base["alerts"].update(min_encode_speed=5.0, slow_encode_seconds=1.0)
    profile = StreamProfile.model_validate(base)
    plan = plan_ladder(profile, SourceInfo(1280, 720, 29.97, "h264", True), "low")
    events = Recorder()
    t = transcoder(plan, events, capabilities=EncoderCapabilities(rung_gates=False))
    await t.start()
    tags = read_flv(source_720p)

    pusher = asyncio.create_task(publish_looped(t, tags, pace=2))
    try:
        await until(lambda: len(events.restarts) >= 2, limit=60, what="the restart for step 2")
        await until(lambda: events.count(run=2) > 0, limit=20, what="output of the smaller ladder")
    finally:
        pusher.cancel()
        await t.stop()
    assert [reason for _, _, reason in events.restarts[:2]] == [
        "slow_encode: step 1", "slow_encode: step 2",
    ]  # fmt: skip
    assert "720p" not in {name for (run, name) in events.fragments if run == 2}

CONFIG = [
    MediaTag(TagType.SCRIPT, 0, b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09"),
    MediaTag(TagType.VIDEO, 0, b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f"),
]


def video(ts: int, *, key: bool = False, size: int = 1000) -> MediaTag:
    return MediaTag(TagType.VIDEO, ts, bytes([0x17 if key else 0x27, 1, 0, 0, 0]) + bytes(size))


# Lifecycle ----------------------------------------------------------------------------


async def test_stop_leaves_no_process_and_is_idempotent(source_360p: Path) -> None:
    events = Recorder()
    t = transcoder(plan_360p(), events)
    await t.start()
    await feed(t.push, read_flv(source_360p)[:100])
    pid = t.pid
    assert pid is not None and pid_alive(pid)
    await asyncio.gather(t.stop(), t.stop())
    await t.stop()
    assert not pid_alive(pid)  # exited and reaped: no zombie either
    assert t.pid is None and not t.stats.running
    t.push(read_flv(source_360p)[0])  # harmless after stop
    t.restart("late")
    assert not events.restarts


async def test_cancelled_stop_still_kills_ffmpeg(source_360p: Path) -> None:
    t = transcoder(plan_360p(), Recorder())
    await t.start()
    await feed(t.push, read_flv(source_360p)[:50])
    pid = t.pid
    assert pid is not None
    stopping = asyncio.create_task(t.stop())
    await asyncio.sleep(0)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    await until(lambda: not pid_alive(pid), limit=10, what="ffmpeg to be gone")
    await t.stop()


async def test_stop_before_start_and_cancelled_start() -> None:
    t = transcoder(plan_360p(), Recorder())
    await t.stop()
    await t.start()  # after stop: does nothing
    assert t.pid is None

    t = Transcoder(ffmpeg=FFMPEG, plan=plan_360p(), events=Recorder(), stream_id="ls_x")
    starting = asyncio.create_task(t.start())  # detects encoders, then launches
    await asyncio.sleep(0.01)
    starting.cancel()
    await asyncio.gather(starting, return_exceptions=True)
    await t.stop()
    assert t.pid is None


async def test_a_launch_that_stop_cuts_short_is_not_a_failure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A node stopping while ffmpeg is being launched (a publisher had just reconnected):
    # the half-made launch is torn down, and what that raises is no encoder failure.
    launching = asyncio.Event()

    async def spawn(**_: Any) -> Any:
        launching.set()
        try:
            await asyncio.get_running_loop().create_future()  # the launch, in flight
        except asyncio.CancelledError:
            # Its input feed is closed by then: tearing down may fail on it.
            raise OSError(9, "Bad file descriptor") from None

    monkeypatch.setattr(transcoder_module, "spawn", spawn)
    t = transcoder(plan_360p(), Recorder())
    starting = asyncio.create_task(t.start())
    await asyncio.wait_for(launching.wait(), 30)
    await t.stop()
    await asyncio.wait_for(starting, 30)  # ends, raising nothing
    assert not t.stats.failed and t.pid is None


async def test_missing_ffmpeg_fails_clearly(tmp_path: Path) -> None:
    t = Transcoder(
        ffmpeg=str(tmp_path / "no-ffmpeg"),
        plan=plan_360p(),
        events=Recorder(),
        stream_id="ls_x",
        capabilities=CPU,
    )
    with pytest.raises(FileNotFoundError):
        await t.start()
    assert t.stats.failed
    await t.stop()


async def test_gives_up_after_rapid_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transcoder_module, "_BACKOFF_FIRST", 0.01)
    monkeypatch.setattr(transcoder_module, "_BACKOFF_CAP", 0.02)
    events = Recorder()
    t = Transcoder(
        ffmpeg=fake_ffmpeg(tmp_path, "echo 'Error: no luck' >&2; exit 1\n"),
        plan=plan_360p(),
        events=events,
        stream_id="ls_x",
        capabilities=CPU,
    )
    await t.start()
    try:
        await until(lambda: t.stats.failed, limit=20, what="giving up")
    finally:
        await t.stop()
    assert len(events.restarts) == transcoder_module._MAX_RAPID_FAILURES
    assert [a for _, a, _ in events.restarts] == list(range(1, len(events.restarts) + 1))
    assert "no luck" in events.restarts[0][2]
    ((_, message, data),) = [w for w in events.warnings if w[0] == "transcoder_failed"]
    assert "no luck" in message and data["failures"] > transcoder_module._MAX_RAPID_FAILURES


async def test_nvenc_that_fails_to_start_falls_back_to_libx264(
    tmp_path: Path, source_360p: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transcoder_module, "_BACKOFF_FIRST", 0.01)
    # Like a GPU out of encoder sessions: every NVENC run fails, libx264 runs work.
    wrapper = fake_ffmpeg(
        tmp_path,
        'case "$*" in *h264_nvenc*) echo "OpenEncodeSessionEx failed: out of memory" >&2; '
        f'exit 1;; esac\nexec {FFMPEG} "$@"\n',
    )
    events = Recorder()
    t = Transcoder(
        ffmpeg=wrapper,
        plan=plan_360p(),
        events=events,
        stream_id="ls_gpu",
        capabilities=EncoderCapabilities(h264_nvenc=True),
    )
    await t.start()
    try:
        await feed(t.push, read_flv(source_360p), pace=3)
        await until(lambda: events.count() >= 10, what="libx264 output")
    finally:
        await t.stop()
    assert [code for code, _, _ in events.warnings] == ["nvenc_unavailable"]
    assert "OpenEncodeSessionEx" in events.warnings[0][1]
    assert len(events.restarts) == 2 and t.stats.encoder == "libx264"


async def test_input_overflow_is_reported_once_and_push_never_blocks() -> None:
    events = Recorder()
    t = transcoder(plan_360p(), events, max_input_buffer=64 * 1024)  # not started: nobody reads
    for tag in CONFIG:
        t.push(tag)
    t.push(video(0, key=True))
    for gop in range(3):  # three GOPs that each overflow: one warning a minute, not three
        for i in range(1, 80):
            t.push(video((gop * 80 + i) * 33, size=1000))
    overflows = [data for code, _, data in events.warnings if code == "input_overflow"]
    assert len(overflows) == 1 and overflows[0]["buffered_bytes"] > 60 * 1024
    assert t.stats.dropped_input_bytes > 0 and t.stats.dropped_video_frames > 0
    assert t.stats.input_bytes == sum(len(tag.body) for tag in CONFIG) + 5 + 1000 + 3 * 79 * 1005
    await t.stop()
