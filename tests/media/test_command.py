"""The ffmpeg command: one split, aligned keyframes everywhere, a pipe per rendition."""

from __future__ import annotations

import pytest

from golive.media.command import (
    ANALYSIS_OUTPUT,
    CPU_ONLY,
    DEINTERLACE,
    WEBRTC_OUTPUT,
    EncoderCapabilities,
    WebRtcRendition,
    build_command,
    filter_graph,
    frag_duration_us,
)
from golive.media.ladder import LadderPlan, SourceInfo, plan_ladder
from golive.media.profiles import load_profile, parse_profile

GPU = EncoderCapabilities(libx264=True, h264_nvenc=True)


def plan_for(
    w: int = 1920,
    h: int = 1080,
    fps: float = 30,
    *,
    profile: str = "default",
    mode: str = "low",
    audio: bool = True,
) -> LadderPlan:
    return plan_ladder(load_profile(profile), SourceInfo(w, h, fps, "h264", audio), mode)  # type: ignore[arg-type]


def fds(plan: LadderPlan, first: int = 10) -> dict[str, int]:
    return {r.name: first + i for i, r in enumerate(plan.renditions)}


def outputs(argv: list[str]) -> list[list[str]]:
    """Split argv into per-output option lists (each ends with its pipe:N)."""
    start = argv.index("pipe:0") + 1
    groups, current = [], []
    for arg in argv[start:]:
        current.append(arg)
        if arg.startswith("pipe:"):
            groups.append(current)
            current = []
    assert not current, "options after the last output"
    return groups


def value(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


def test_input_is_live_flv_on_stdin_with_progress_on_stdout() -> None:
    plan = plan_for()
    argv = build_command(plan, ffmpeg="/usr/bin/ffmpeg", output_fds=fds(plan))
    assert argv[0] == "/usr/bin/ffmpeg"
    assert argv[argv.index("-i") - 2 : argv.index("-i") + 2] == ["-f", "flv", "-i", "pipe:0"]
    assert value(argv, "-progress") == "pipe:1"
    assert value(argv, "-stats_period") == "0.5"
    assert "-nostats" in argv and value(argv, "-loglevel") == "warning"
    assert int(value(argv, "-probesize")) <= 1_000_000
    assert int(value(argv, "-analyzeduration")) <= 500_000
    assert "nobuffer" not in " ".join(argv)  # it would discard the probed keyframe


def test_one_filter_graph_splits_once_and_scales_per_rendition() -> None:
    plan = plan_for()
    argv = build_command(plan, ffmpeg="ffmpeg", output_fds=fds(plan))
    assert argv.count("-filter_complex") == 1
    graph = value(argv, "-filter_complex")
    assert graph.count("split=4") == 1 and graph.count("fps=") == 1  # shared rate: once
    assert graph.startswith("[0:v:0]fps=30,split=4")
    # Every rung pins its size, the source-sized top one too (a no-op in libswscale for
    # the planned source; an input spliced in later at another size is fitted).
    for w, h in ((1920, 1080), (1280, 720), (854, 480), (640, 360)):
        assert f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,format=yuv420p" in graph
    maps = [value(group, "-map") for group in outputs(argv)]
    assert maps == ["[v0]", "[v1]", "[v2]", "[v3]"]


def test_every_rendition_has_the_same_keyframe_schedule() -> None:
    plan = plan_for(1280, 720, 29.97)
    groups = outputs(build_command(plan, ffmpeg="ffmpeg", output_fds=fds(plan)))
    assert len(groups) == 3
    forced = {value(g, "-force_key_frames") for g in groups}
    assert forced == {"expr:if(isnan(prev_forced_t),1,gt(floor((t+0.016683)/1.001000000),floor((prev_forced_t+0.016683)/1.001000000)))"}
    for group, rendition in zip(groups, plan.renditions, strict=True):
        assert value(group, "-c:v") == "libx264"
        assert value(group, "-g") == value(group, "-keyint_min") == "30"
        assert value(group, "-sc_threshold") == "0"
        assert value(group, "-bf") == "0"
        assert value(group, "-tune") == "zerolatency"
        assert value(group, "-preset") == "veryfast"
        assert value(group, "-forced-idr") == "1"
        assert value(group, "-b:v") == f"{rendition.video_bitrate // 1000}k"
        assert value(group, "-maxrate") == f"{rendition.maxrate // 1000}k"
        assert value(group, "-bufsize") == f"{rendition.bufsize // 1000}k"
        assert value(group, "-profile:v") == rendition.x264_profile


def test_each_rendition_is_fragmented_mp4_on_its_own_fd() -> None:
    plan = plan_for(1280, 720, 29.97)
    groups = outputs(
        build_command(plan, ffmpeg="ffmpeg", output_fds={"720p": 7, "480p": 9, "360p": 12})
    )
    assert [g[-1] for g in groups] == ["pipe:7", "pipe:9", "pipe:12"]
    for group in groups:
        assert value(group, "-f") == "mp4"
        flags = value(group, "-movflags")
        for flag in ("frag_keyframe", "empty_moov", "default_base_moof", "cmaf"):
            assert f"+{flag}" in flags
        # Five frames at 29.97 are 166.8 ms: cut just under it, never at 200 ms.
        frag = int(value(group, "-frag_duration"))
        assert 4 * 1001 / 30000 * 1e6 < frag < 5 * 1001 / 30000 * 1e6
        assert frag == frag_duration_us(plan)
        assert frag < plan.part_target * 1_000_000
        assert frag > (plan.part_target - 1 / 29.97) * 1_000_000
        assert value(group, "-map").startswith("[v")
        assert group[group.index("-map", group.index("-map") + 1) + 1] == "0:a:0"
        assert value(group, "-c:a") == "aac" and value(group, "-b:a") == "128k"
        assert value(group, "-ar") == "48000"


def test_missing_fd_is_an_error() -> None:
    plan = plan_for(1280, 720)
    with pytest.raises(ValueError, match="480p"):
        build_command(plan, ffmpeg="ffmpeg", output_fds={"720p": 5, "360p": 6})


def test_gpu_variant_uses_nvenc_with_the_same_keyframe_schedule() -> None:
    plan = plan_for(1280, 720)
    cpu = outputs(build_command(plan, ffmpeg="ffmpeg", output_fds=fds(plan), capabilities=CPU_ONLY))
    gpu = outputs(build_command(plan, ffmpeg="ffmpeg", output_fds=fds(plan), capabilities=GPU))
    for c, g in zip(cpu, gpu, strict=True):
        assert value(g, "-c:v") == "h264_nvenc"
        assert value(g, "-preset") == "p1" and value(g, "-tune") == "ll"
        assert value(g, "-zerolatency") == "1" and value(g, "-forced-idr") == "1"
        assert value(g, "-g") == value(c, "-g")
        assert value(g, "-force_key_frames") == value(c, "-force_key_frames")
        assert value(g, "-bf") == "0" and value(g, "-no-scenecut") == "1"
        assert "-x264-params" not in g and "zerolatency" not in g
        assert value(g, "-frag_duration") == value(c, "-frag_duration")
    assert EncoderCapabilities().video_encoder == "libx264"
    with pytest.raises(RuntimeError, match="neither"):
        _ = EncoderCapabilities(libx264=False).video_encoder


def test_standard_latency_allows_b_frames_and_lookahead() -> None:
    plan = plan_for(1280, 720, mode="standard")
    group = outputs(build_command(plan, ffmpeg="ffmpeg", output_fds=fds(plan)))[0]
    assert "-tune" not in group and "-bf" not in group
    assert value(group, "-g") == "60"
    assert "-thread_type" not in build_command(plan, ffmpeg="ffmpeg", output_fds=fds(plan))


def test_passthrough_copies_the_source_video() -> None:
    plan = plan_for(1920, 1080, 60, profile="passthrough")
    argv = build_command(plan, ffmpeg="ffmpeg", output_fds={"source": 4})
    assert "-filter_complex" not in argv
    (group,) = outputs(argv)
    assert value(group, "-map") == "0:v:0" and value(group, "-c:v") == "copy"
    assert "-force_key_frames" not in group and "-g" not in group
    assert value(group, "-c:a") == "aac"


def test_mixed_rates_get_fps_per_branch() -> None:
    profile = parse_profile(
        """
        name = "hfr"
        version = 1
        [[renditions]]
        name = "720p60"
        height = 720
        max_frame_rate = 60
        video_bitrate_kbps = 4500
        [[renditions]]
        name = "360p"
        height = 360
        video_bitrate_kbps = 700
        """
    )
    plan = plan_ladder(profile, SourceInfo(1280, 720, 60, "h264", False), "low")
    graph, labels = filter_graph(plan)
    assert graph.startswith("[0:v:0]split=2[s0][s1]")
    assert "[s0]fps=60,scale=w=" in graph and "[s1]fps=30,scale=w=" in graph
    assert labels == {"720p60": "[v0]", "360p": "[v1]"}
    argv = build_command(plan, ffmpeg="ffmpeg", output_fds={"720p60": 3, "360p": 4})
    assert "0:a:0" not in argv and "-c:a" not in argv  # no audio in the source
    groups = outputs(argv)
    assert [value(g, "-g") for g in groups] == ["60", "30"]
    # Half a 60 fps frame of slack: exact for both rates.
    assert value(groups[0], "-force_key_frames") == (
        "expr:if(isnan(prev_forced_t),1,gt(floor((t+0.008333)/1.000000000),floor((prev_forced_t+0.008333)/1.000000000)))"
    )


def test_the_analysis_output_adds_a_picture_branch_and_an_audio_chain() -> None:
    plan = plan_for(1280, 720)
    plain = value(build_command(plan, ffmpeg="ffmpeg", output_fds=fds(plan)), "-filter_complex")
    assert "signalstats" not in plain and "astats" not in plain
    with_fds = {**fds(plan), ANALYSIS_OUTPUT: 9}
    argv = build_command(plan, ffmpeg="ffmpeg", output_fds=with_fds)
    graph = value(argv, "-filter_complex")
    encoded = len(plan.renditions)
    # One more branch of the single split: a 64x36 copy at 2 fps, measured and sunk.
    assert f"split={encoded + 1}" in graph and graph.count("split=") == 1
    picture = next(c for c in graph.split(";") if "signalstats" in c)
    assert picture.startswith(f"[s{encoded}]fps=2,scale=64:36")
    assert picture.endswith("nullsink") and "file='pipe\\:9':direct=1" in picture
    audio = next(c for c in graph.split(";") if "astats" in c)
    assert audio.startswith("[0:a:0]asetnsamples=n=4800") and audio.endswith("anullsink")
    # The analysis is not an output: no -map or pipe:9 among them.
    assert "pipe:9" not in argv and len(outputs(argv)) == encoded
    # No audio track, no audio chain; a passthrough-only ladder has no graph at all.
    silent = plan_for(1280, 720, audio=False)
    graph = value(build_command(silent, ffmpeg="ffmpeg",
                                output_fds={**fds(silent), ANALYSIS_OUTPUT: 9}), "-filter_complex")
    assert "signalstats" in graph and "astats" not in graph
    copy = plan_for(1920, 1080, 60, profile="passthrough")
    argv = build_command(copy, ffmpeg="ffmpeg", output_fds={"source": 4, ANALYSIS_OUTPUT: 9})
    assert "-filter_complex" not in argv


def test_an_audio_only_ladder_is_one_aac_output_measured_beside_it() -> None:
    radio = plan_ladder(load_profile("default"), SourceInfo(0, 0, 0, "unknown", True), "low")
    plain = build_command(radio, ffmpeg="ffmpeg", output_fds={"audio": 3})
    (output,) = outputs(plain)
    assert output[:4] == ["-map", "0:a:0", "-af", "aresample=async=1"]
    assert value(output, "-c:a") == "aac" and value(output, "-ar") == "48000"
    assert value(output, "-frag_duration") == str(frag_duration_us(radio)) == "191000"
    assert "-filter_complex" not in plain and "-c:v" not in plain and "libx264" not in plain
    measured = build_command(radio, ffmpeg="ffmpeg",
                             output_fds={"audio": 3, ANALYSIS_OUTPUT: 9})
    graph = value(measured, "-filter_complex")
    assert graph.startswith("[0:a:0]aresample=async=1,asplit=2[aout][alevel];[alevel]")
    assert "pipe\\:9" in graph and value(measured, "-map") == "[aout]"
    assert len(outputs(measured)) == 1
    with pytest.raises(ValueError, match="no WebRTC output"):
        build_command(radio, ffmpeg="ffmpeg", output_fds={"audio": 3, WEBRTC_OUTPUT: 4},
                      webrtc=WebRtcRendition.for_plan(plan_for()))


def test_only_an_interlaced_source_is_deinterlaced_at_the_head_of_the_graph() -> None:
    progressive = plan_for(1280, 720)
    interlaced = plan_ladder(load_profile("default"),
                             SourceInfo(1920, 1080, 29.97, "h264", True, interlaced=True), "low")
    graph, _ = filter_graph(progressive, control="ipc:///tmp/g")
    assert "bwdif" not in graph  # (the filter holds a frame back: no cost where not needed)
    graph, _ = filter_graph(interlaced, control="ipc:///tmp/g")
    head = graph.split(";")[0]
    # After the command tap, before the shared frame rate and the split: every rung (and
    # the WebRTC output and picture analysis) gets whole frames.
    assert head.index("zmq=") < head.index(DEINTERLACE) < head.index("fps=") < head.index("split=")
    assert DEINTERLACE == "bwdif=mode=send_frame:parity=auto:deint=interlaced"
    assert any("interlaced" in note for note in interlaced.notes)
