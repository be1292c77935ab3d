"""A returning publisher rejoins the broadcast's ladder, or says why it cannot."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

from golive.media.command import build_command, filter_graph
from golive.media.ladder import SourceInfo, plan_ladder
from golive.media.profiles import load_profile, parse_profile
from golive.media.rejoin import RejoinError, rejoin_plan

DEFAULT = load_profile("default")
MIXED = parse_profile(
    """
    name = "mixed"
    version = 1
    [[renditions]]
    name = "source"
    passthrough = true
    video_bitrate_kbps = 4000
    [[renditions]]
    name = "360p"
    height = 360
    video_bitrate_kbps = 700
    """
)


def source(w: int, h: int, fps: float = 30, *, codec: str = "h264", audio: bool = True) -> SourceInfo:
    return SourceInfo(w, h, fps, codec, audio)


def test_a_smaller_publisher_keeps_every_rung_and_is_upscaled_to_the_top_one() -> None:
    plan = plan_ladder(DEFAULT, source(1280, 720), "low")
    rejoined = rejoin_plan(plan, source(640, 360, 25))
    assert rejoined.renditions == plan.renditions  # names, sizes, rates, bitrates, GOPs
    assert (rejoined.gop_duration, rejoined.part_target) == (plan.gop_duration, plan.part_target)
    assert rejoined.source == source(640, 360, 25)
    assert any("640x360" in note and "kept" in note for note in rejoined.notes)
    graph, _ = filter_graph(rejoined)
    assert graph.startswith("[0:v:0]fps=30,split=3")  # 25 fps in, the ladder's 30 out
    for w, h in ((1280, 720), (854, 480), (640, 360)):  # up, down, the source's size
        assert f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,format=yuv420p" in graph


def test_a_publisher_of_another_shape_is_letterboxed_not_stretched() -> None:
    plan = plan_ladder(DEFAULT, source(1280, 720), "low")
    portrait = rejoin_plan(plan, source(720, 1280))
    graph, labels = filter_graph(portrait)
    # What ffmpeg makes of the 720p rung's branch for a 720x1280 picture: pillarboxed.
    branch = graph.split(";")[1]
    chain = branch[branch.index("]") + 1:branch.rindex("[")].split(",format=")[0]
    chain = chain.split(",", 1)[1] if chain.startswith("fps=") else chain
    picture = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=white:size=720x1280",
         "-frames:v", "1", "-filter_complex", f"[0:v]{chain},format=gray[o]", "-map", "[o]",
         "-f", "rawvideo", "pipe:1"],
        check=True, capture_output=True, timeout=60,
    ).stdout
    assert len(picture) == 1280 * 720  # the rung's size, whatever came in
    row = picture[360 * 1280:361 * 1280]
    assert max(row[:200]) < 40 and max(row[-200:]) < 40  # black bars left and right
    assert min(row[600:680]) > 200  # the white picture in the middle, not stretched
    assert labels["720p"] == "[v0]"
    argv = build_command(portrait, ffmpeg="ffmpeg", output_fds={"720p": 3, "480p": 4, "360p": 5})
    assert argv.count("-filter_complex") == 1


def test_a_passthrough_rendition_follows_the_new_picture_size() -> None:
    plan = plan_ladder(MIXED, source(1280, 720), "low")
    rejoined = rejoin_plan(plan, source(1920, 1080))
    top = rejoined.rendition("source")
    assert (top.width, top.height, top.passthrough) == (1920, 1080, True)
    assert top.bandwidth == plan.rendition("source").bandwidth
    assert rejoined.rendition("360p") == plan.rendition("360p")


def test_a_passthrough_rendition_cannot_carry_another_codec() -> None:
    plan = plan_ladder(MIXED, source(1280, 720), "low")
    with pytest.raises(RejoinError, match=r"passthrough rendition .source. copies H\.264.*hevc"):
        rejoin_plan(plan, source(1280, 720, codec="hevc"))
    with pytest.raises(RejoinError, match=r"sends H\.264 High 4:2:2, which browsers do not"):
        rejoin_plan(plan, dataclasses.replace(source(1280, 720), video_profile="High 4:2:2"))
    # An encoded ladder decodes anything ffmpeg can: HEVC in, the same H.264 ladder out.
    encoded = plan_ladder(DEFAULT, source(1280, 720), "low")
    assert rejoin_plan(encoded, source(1280, 720, codec="hevc")).renditions == encoded.renditions


@pytest.mark.parametrize(("before", "after", "says"), [(True, False, "no audio"), (False, True, "audio now")])
def test_an_audio_track_that_comes_or_goes_changes_the_codecs(
    before: bool, after: bool, says: str
) -> None:
    plan = plan_ladder(DEFAULT, source(1280, 720, audio=before), "low")
    with pytest.raises(RejoinError, match=says):
        rejoin_plan(plan, source(1280, 720, audio=after))


def test_a_publisher_without_video_cannot_rejoin() -> None:
    plan = plan_ladder(DEFAULT, source(1280, 720), "low")
    with pytest.raises(RejoinError, match="no usable video"):
        rejoin_plan(plan, source(0, 0))


def test_an_audio_only_broadcast_takes_back_sound_alone_and_nothing_else() -> None:
    radio = plan_ladder(DEFAULT, source(0, 0, codec="unknown"), "low")
    assert radio.audio_only
    again = rejoin_plan(radio, source(0, 0, codec="unknown"))
    assert again.renditions == radio.renditions and again.part_target == radio.part_target
    with pytest.raises(RejoinError, match="sends video and the broadcast was audio only"):
        rejoin_plan(radio, source(1280, 720))
    with pytest.raises(RejoinError, match="neither video nor audio"):
        rejoin_plan(radio, source(0, 0, audio=False))
