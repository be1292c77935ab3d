"""Whether a new input can be spliced into the running transcoder (media/switch.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.media.conftest import read_flv
from tests.mediatools import FFMPEG

from golive.formats import MediaTag, TagType, describe_video, parse_video_tag
from golive.media.ladder import LadderPlan, SourceInfo, plan_ladder
from golive.media.profiles import load_profile
from golive.media.switch import MAX_HELD_TAGS, InputSwitch

AVC_CONFIG = MediaTag(TagType.VIDEO, 0, b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f")
OTHER_AVC_CONFIG = MediaTag(TagType.VIDEO, 0, b"\x17\x00\x00\x00\x00\x01\x42\x00\x1e")
HEVC_CONFIG = MediaTag(TagType.VIDEO, 0, b"\x1c\x00\x00\x00\x00\x01")
KEY = MediaTag(TagType.VIDEO, 40, b"\x17\x01\x00\x00\x00")
INTER = MediaTag(TagType.VIDEO, 80, b"\x27\x01\x00\x00\x00")
AAC_CONFIG = MediaTag(TagType.AUDIO, 0, b"\xaf\x00\x12\x10")


def plan(profile: str = "default", *, audio: bool = True) -> LadderPlan:
    return plan_ladder(load_profile(profile), SourceInfo(1280, 720, 30, "h264", audio), "low")


def decide(switch: InputSwitch, tags: list[MediaTag]) -> tuple[bool, str, int] | None:
    for tag in tags:
        decision = switch.push(tag)
        if decision is not None:
            return decision.splice, decision.reason, len(decision.tags)
    return None


def test_same_codec_another_configuration_splices_at_the_first_keyframe() -> None:
    switch = InputSwitch(plan(), AVC_CONFIG)
    assert decide(switch, [OTHER_AVC_CONFIG, AAC_CONFIG]) is None  # held: no keyframe yet
    assert decide(switch, [KEY]) == (True, "", 3)  # every held tag goes on, in order


def test_another_codec_restarts() -> None:
    result = decide(InputSwitch(plan(), AVC_CONFIG), [HEVC_CONFIG, AAC_CONFIG, KEY])
    assert result is not None and not result[0]
    assert "hevc" in result[1] and "h264" in result[1]


def test_a_passthrough_rendition_restarts_for_a_new_configuration_only() -> None:
    passthrough = plan("passthrough")
    assert any(r.passthrough for r in passthrough.renditions)
    same = decide(InputSwitch(passthrough, AVC_CONFIG), [AVC_CONFIG, AAC_CONFIG, KEY])
    assert same == (True, "", 3)
    other = decide(InputSwitch(passthrough, AVC_CONFIG), [OTHER_AVC_CONFIG, AAC_CONFIG, KEY])
    assert other is not None and not other[0] and "passthrough" in other[1]


def test_no_audio_restarts_only_when_the_ladder_has_audio_it_cannot_fill() -> None:
    with_audio = decide(InputSwitch(plan(), AVC_CONFIG), [AVC_CONFIG, KEY])
    assert with_audio is not None and not with_audio[0] and "no audio" in with_audio[1]
    silent = decide(InputSwitch(plan(audio=False), AVC_CONFIG), [AVC_CONFIG, KEY])
    assert silent == (True, "", 2)
    # AAC-LC sound the running input fills with silence: spliced, and said to be silent.
    switch = InputSwitch(plan(), AVC_CONFIG, fills_silence=True)
    assert switch.push(AVC_CONFIG) is None
    filled = switch.push(KEY)
    assert filled is not None and filled.splice and filled.silent


def test_an_input_without_a_keyframe_is_not_held_for_ever() -> None:
    result = decide(InputSwitch(plan(), AVC_CONFIG), [INTER] * MAX_HELD_TAGS)
    assert result is not None and not result[0] and result[2] == MAX_HELD_TAGS


OTHER_AAC_CONFIG = MediaTag(TagType.AUDIO, 0, b"\xaf\x00\x12\x08")  # 44.1 kHz stereo


def test_rungs_given_up_restart_for_a_new_configuration_only() -> None:
    # A re-made graph would bring the given-up rungs back: a restart starts them gated.
    gated = frozenset({"720p"})
    same = decide(InputSwitch(plan(), AVC_CONFIG, AAC_CONFIG, gated=gated),
                  [AVC_CONFIG, AAC_CONFIG, KEY])
    assert same == (True, "", 3)
    for new in ([OTHER_AVC_CONFIG, AAC_CONFIG, KEY], [AVC_CONFIG, OTHER_AAC_CONFIG, KEY]):
        result = decide(InputSwitch(plan(), AVC_CONFIG, AAC_CONFIG, gated=gated), new)
        assert result is not None and not result[0] and "720p" in result[1]
    # Nothing given up: the graph may be re-made, the splice goes on.
    ungated = decide(InputSwitch(plan(), AVC_CONFIG, AAC_CONFIG),
                     [OTHER_AVC_CONFIG, OTHER_AAC_CONFIG, KEY])
    assert ungated == (True, "", 3)


def test_a_splice_says_whether_it_brings_a_new_configuration() -> None:
    # ffmpeg may re-make its graph for one, and its gates then count frames from 0 again:
    # the transcoder's next degrade step restarts it instead of setting them.
    for tags, expected in (
        ([AVC_CONFIG, AAC_CONFIG, KEY], False),
        ([AAC_CONFIG, KEY], False),  # no new configuration sent: the old one goes on
        ([OTHER_AVC_CONFIG, AAC_CONFIG, KEY], True),
        ([AVC_CONFIG, OTHER_AAC_CONFIG, KEY], True),
    ):
        switch = InputSwitch(plan(), AVC_CONFIG, AAC_CONFIG)
        decision = next(d for tag in tags if (d := switch.push(tag)) is not None)
        assert decision.splice and decision.reconfigures is expected, tags


AAC_FRAME = MediaTag(TagType.AUDIO, 20, b"\xaf\x01" + bytes(200))


def test_an_audio_only_ladder_splices_sound_at_its_first_frame_and_restarts_for_video() -> None:
    radio = plan_ladder(load_profile("default"), SourceInfo(0, 0, 0, "unknown", True), "low")
    switch = InputSwitch(radio, None, AAC_CONFIG)
    assert decide(switch, [AAC_CONFIG]) is None  # held: no sound yet
    assert decide(switch, [AAC_FRAME]) == (True, "", 2)
    changed = InputSwitch(radio, None, AAC_CONFIG).push(OTHER_AAC_CONFIG)
    assert changed is None
    for tags in ([AVC_CONFIG, AAC_CONFIG, AAC_FRAME], [KEY]):
        switch = InputSwitch(radio, None, AAC_CONFIG)
        assert decide(switch, tags) == (
            False, "the new input sends video and the ladder is audio only", len(tags))
    switch = InputSwitch(radio, None, AAC_CONFIG)
    decision = next(d for tag in (OTHER_AAC_CONFIG, AAC_FRAME)
                    if (d := switch.push(tag)) is not None)
    assert decision.splice and decision.reconfigures


def test_an_interlaced_input_restarts_a_graph_without_a_deinterlacer(tmp_path: Path) -> None:
    flv = tmp_path / "i.flv"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", "testsrc2=size=1280x720:rate=30", "-frames:v", "2", "-c:v", "libx264",
         "-preset", "ultrafast", "-flags", "+ildct+ilme", "-x264-params", "tff=1",
         "-f", "flv", str(flv)],
        check=True, timeout=60,
    )  # fmt: skip
    config = next(t for t in read_flv(flv) if t.type is TagType.VIDEO)
    assert describe_video(parse_video_tag(config.body)).interlaced  # type: ignore[union-attr]
    progressive = plan()
    assert decide(InputSwitch(progressive, AVC_CONFIG, AAC_CONFIG), [config, AAC_CONFIG, KEY]) == (
        False, "the new input is interlaced and the running graph does not deinterlace", 3)
    interlaced = plan_ladder(load_profile("default"),
                             SourceInfo(1280, 720, 30, "h264", True, interlaced=True), "low")
    splice = decide(InputSwitch(interlaced, AVC_CONFIG, AAC_CONFIG), [config, AAC_CONFIG, KEY])
    assert splice is not None and splice[0]
