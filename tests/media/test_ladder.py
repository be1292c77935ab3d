"""Ladder planning: no upscaling, even sizes, snapped rates, whole-frame GOPs and parts."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from golive.media.ladder import (
    AUDIO_ONLY_RENDITION,
    LadderError,
    SourceInfo,
    output_frame_rate,
    part_frames,
    plan_ladder,
    snap_frame_rate,
)
from golive.media.profiles import load_profile, parse_profile

DEFAULT = load_profile("default")


def source(w: int, h: int, fps: float = 30, codec: str = "h264", audio: bool = True) -> SourceInfo:
    return SourceInfo(width=w, height=h, frame_rate=fps, video_codec=codec, has_audio=audio)


def test_1080p_source_gets_the_whole_ladder() -> None:
    plan = plan_ladder(DEFAULT, source(1920, 1080), "low")
    assert [(r.name, r.resolution, r.frame_rate) for r in plan.renditions] == [
        ("1080p", "1920x1080", 30), ("720p", "1280x720", 30),
        ("480p", "854x480", 30), ("360p", "640x360", 30),
    ]  # fmt: skip
    assert plan.gop_duration == 1.0 and plan.part_target == 0.2
    assert all((r.gop_frames, r.part_frames) == (30, 6) for r in plan.renditions)
    assert plan.rendition("720p").video_bitrate == 3_000_000


def test_never_upscales() -> None:
    plan = plan_ladder(DEFAULT, source(1280, 720), "low")
    assert plan.names == ("720p", "480p", "360p")
    assert plan.renditions[0].resolution == "1280x720"
    assert any("1080p" in note for note in plan.notes)


def test_360p_source_gets_only_360p() -> None:
    plan = plan_ladder(DEFAULT, source(640, 360), "low")
    assert [(r.name, r.resolution) for r in plan.renditions] == [("360p", "640x360")]


def test_top_rendition_is_capped_at_the_source() -> None:
    plan = plan_ladder(DEFAULT, source(1600, 900, 25), "low")
    top = plan.renditions[0]
    assert (top.name, top.resolution) == ("900p", "1600x900")
    # Fewer pixels, fewer bits, but never fewer than the next rung down.
    assert plan.rendition("720p").video_bitrate < top.video_bitrate < 6_000_000
    assert plan.names == ("900p", "720p", "480p", "360p")


def test_tiny_source_still_gets_one_rendition() -> None:
    plan = plan_ladder(DEFAULT, source(320, 240, 15), "low")
    assert [(r.name, r.resolution, r.frame_rate) for r in plan.renditions] == [
        ("240p", "320x240", 15)
    ]
    assert plan.renditions[0].part_frames == 3


@pytest.mark.parametrize(
    ("w", "h", "expected"),
    [
        (641, 361, ["640x360"]),  # odd source: even output, aspect kept
        (1279, 719, ["1278x718", "854x480", "640x360"]),
        (1440, 1080, ["1440x1080", "960x720", "640x480", "480x360"]),  # 4:3
        (1080, 1920, ["1080x1920", "720x1280", "480x854", "360x640"]),  # portrait: short side
        (2560, 1440, ["1920x1080", "1280x720", "854x480", "640x360"]),
    ],
)
def test_sizes_are_even_and_keep_the_aspect(w: int, h: int, expected: list[str]) -> None:
    plan = plan_ladder(DEFAULT, source(w, h), "low")
    assert [r.resolution for r in plan.renditions] == expected
    for r in plan.renditions:
        assert r.width % 2 == 0 and r.height % 2 == 0
        assert abs(r.width / r.height - w / h) < 0.01


@pytest.mark.parametrize(
    ("measured", "expected"),
    [
        (30, Fraction(30)),
        (29.97, Fraction(30000, 1001)),
        (29.8, Fraction(30000, 1001)),  # jittery measurement
        (59.94, Fraction(60000, 1001)),
        (25.2, Fraction(25)),
        (23.976, Fraction(24000, 1001)),
        (15, Fraction(15)),
        (0, None),
        (float("nan"), None),
        (10_000, None),
    ],
)
def test_frame_rates_snap_to_standard_values(measured: float, expected: Fraction | None) -> None:
    assert snap_frame_rate(measured) == expected


@pytest.mark.parametrize(
    ("source_rate", "cap", "expected"),
    [
        (Fraction(60), 30, Fraction(30)),
        (Fraction(60000, 1001), 30, Fraction(30000, 1001)),
        (Fraction(50), 30, Fraction(25)),  # every other frame, not 30 from 50
        (Fraction(120), 30, Fraction(30)),
        (Fraction(31), 30, Fraction(30)),  # 15.5 would halve the motion: use the cap
        (Fraction(24), 30, Fraction(24)),
        (Fraction(60), 60, Fraction(60)),
    ],
)
def test_output_rate_never_exceeds_the_cap(
    source_rate: Fraction, cap: int, expected: Fraction
) -> None:
    assert output_frame_rate(source_rate, cap) == expected


def test_fractional_rates_round_parts_down_to_whole_frames() -> None:
    plan = plan_ladder(DEFAULT, source(1280, 720, 29.97), "low")
    # Six frames at 29.97 fps are 200.2 ms, over the 200 ms target: parts are five.
    assert all((r.gop_frames, r.part_frames) == (30, 5) for r in plan.renditions)
    assert plan.part_target == pytest.approx(5 * 1001 / 30000)
    assert plan.part_target <= 0.2
    assert plan.gop_duration == pytest.approx(1.001)
    assert plan.renditions[0].frame_rate_expr == "30000/1001"
    assert plan.renditions[0].frame_rate == 29.97


@pytest.mark.parametrize(
    ("gop", "rate", "target", "expected"),
    [
        (30, Fraction(30), 0.2, 6),
        (30, Fraction(30000, 1001), 0.2, 5),
        (25, Fraction(25), 0.2, 5),
        (24, Fraction(24), 0.2, 4),  # 4.8 → 4, which also divides the GOP
        (60, Fraction(60), 0.2, 12),
        (50, Fraction(50), 0.2, 10),
        (35, Fraction(35), 0.2, 7),
        (31, Fraction(31), 0.2, 6),  # no divisor close enough: as many as fit
        (30, Fraction(30), 0.01, 1),
    ],
)
def test_part_frames(gop: int, rate: Fraction, target: float, expected: int) -> None:
    frames = part_frames(gop, rate, target)
    assert frames == expected
    assert frames / rate <= max(float(target), float(1 / rate)) + 1e-9


def test_standard_latency_uses_the_longer_gop() -> None:
    plan = plan_ladder(DEFAULT, source(1280, 720), "standard")
    assert plan.gop_duration == 2.0 and plan.renditions[0].gop_frames == 60
    with pytest.raises(LadderError, match="latency mode"):
        plan_ladder(DEFAULT, source(1280, 720), "ultra")  # type: ignore[arg-type]


def test_60fps_source_with_a_60fps_rung_keeps_gops_aligned() -> None:
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
    plan = plan_ladder(profile, source(1920, 1080, 60), "low")
    top, low = plan.renditions
    assert (top.frame_rate, low.frame_rate) == (60, 30)
    assert (top.gop_frames, low.gop_frames) == (60, 30)  # the same 1 s
    assert (top.part_frames, low.part_frames) == (12, 6)  # the same 200 ms


def test_passthrough_needs_h264() -> None:
    passthrough = load_profile("passthrough")
    plan = plan_ladder(passthrough, source(1920, 1080, 60, codec="avc1.64002a"), "low")
    (only,) = plan.renditions
    assert only.passthrough and only.resolution == "1920x1080" and only.frame_rate == 60
    assert plan.part_target == 0.2
    with pytest.raises(LadderError, match="no rendition"):
        plan_ladder(passthrough, source(1920, 1080, codec="hevc"), "low")


def test_passthrough_next_to_encoded_renditions() -> None:
    profile = parse_profile(
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
    plan = plan_ladder(profile, source(1280, 720), "low")
    assert plan.names == ("source", "360p")
    assert any("keyframes" in note for note in plan.notes)
    measured = SourceInfo(1280, 720, 30, "h264", True, video_bitrate=2_500_000)
    assert plan_ladder(profile, measured, "low").rendition("source").video_bitrate == 2_500_000
    hevc = plan_ladder(profile, source(1280, 720, codec="hevc"), "low")
    assert hevc.names == ("360p",)
    assert any("not H.264" in note for note in hevc.notes)
    # A contribution encoder's 10-bit or 4:2:2 H.264 is encoded, not copied: browsers
    # (MSE, Safari) decode 8-bit 4:2:0 Baseline, Main and High only.
    for profile_name, copied in (("High", True), ("Constrained Baseline", True),
                                 ("Main", True), (None, True), ("High 10", False),
                                 ("High 4:2:2", False), ("High 4:2:2 Intra", False)):
        planned = plan_ladder(profile, dataclasses.replace(
            source(1280, 720), video_profile=profile_name), "low")
        assert ("source" in planned.names) is copied, profile_name
    ten_bit = plan_ladder(profile, dataclasses.replace(source(1280, 720),
                                                       video_profile="High 10"), "low")
    assert any("H.264 High 10, which browsers do not decode" in n for n in ten_bit.notes)
    # With nothing to encode instead, the refusal says why (the broadcast's warning).
    only = parse_profile('name = "only"\nversion = 1\n[[renditions]]\nname = "source"\n'
                         'passthrough = true\nvideo_bitrate_kbps = 4000\n')
    with pytest.raises(LadderError, match=r"H\.264 High 4:2:2, which browsers do not decode"):
        plan_ladder(only, dataclasses.replace(source(1280, 720), video_profile="High 4:2:2"),
                    "low")


def test_bandwidth_is_peak_with_audio_and_overhead() -> None:
    plan = plan_ladder(DEFAULT, source(1920, 1080), "low")
    for r in plan.renditions:
        assert r.audio_bitrate == 128_000
        assert r.bandwidth > r.maxrate + r.audio_bitrate
        assert r.video_bitrate + r.audio_bitrate < r.average_bandwidth < r.bandwidth
    silent = plan_ladder(DEFAULT, source(1920, 1080, audio=False), "low")
    assert not silent.has_audio and silent.renditions[0].audio_bitrate == 0
    assert silent.renditions[0].bandwidth < plan.renditions[0].bandwidth


def test_sound_alone_gets_one_aac_rendition_of_whole_frames() -> None:
    plan = plan_ladder(DEFAULT, source(0, 0, codec="unknown"), "low")
    assert plan.audio_only and plan.has_audio
    (audio,) = plan.renditions
    assert (audio.name, audio.width, audio.height, audio.frame_rate) == (AUDIO_ONLY_RENDITION,
                                                                          0, 0, 0)
    assert audio.audio_bitrate == 128_000 and audio.video_bitrate == 0
    assert audio.average_bandwidth < audio.bandwidth and audio.bandwidth > 128_000
    # 48 kHz: 1024-sample frames of 21.33 ms; nine fit in the 200 ms part target, and
    # segments are five parts (the profile's 1 s GOP) or ten (standard latency's 2 s).
    frame = Fraction(1024, 48_000)
    assert plan.part_target == float(9 * frame) == 0.192
    assert plan.gop_duration == float(45 * frame)
    standard = plan_ladder(DEFAULT, source(0, 0), "standard")
    assert standard.part_target == 0.192 and standard.gop_duration == float(90 * frame)
    # The parts stay whole frames at the other output rate.
    cd = DEFAULT.model_copy(update={"audio": DEFAULT.audio.model_copy(
        update={"sample_rate": 44_100})})
    assert plan_ladder(cd, source(0, 0), "low").part_target == float(8 * Fraction(1024, 44_100))
    # Nothing to degrade, nothing to drop.
    assert not plan.can_drop_rendition() and plan.frame_rate_divisor(AUDIO_ONLY_RENDITION) == 1
    assert not plan_ladder(DEFAULT, source(640, 360), "low").audio_only


def test_neither_video_nor_audio_is_an_error() -> None:
    with pytest.raises(LadderError, match="neither usable video nor audio"):
        plan_ladder(DEFAULT, source(0, 0, audio=False), "low")


def test_dropping_the_top_rendition_respects_the_minimum() -> None:
    plan = plan_ladder(DEFAULT, source(1280, 720), "low")
    smaller, victim = plan.without_top_rendition()
    assert victim.name == "720p" and smaller.names == ("480p", "360p")
    smallest, _ = smaller.without_top_rendition()
    assert smallest.names == ("360p",)
    assert not smallest.can_drop_rendition()
    with pytest.raises(LadderError, match="minimum"):
        smallest.without_top_rendition()
