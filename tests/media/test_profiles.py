"""Stream profiles: the built-ins, user overrides, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from golive.media.profiles import (
    ProfileError,
    builtin_profile_names,
    list_profiles,
    load_profile,
    parse_profile,
)

MINIMAL = """
name = "tiny"
version = 3
[[renditions]]
name = "240p"
height = 240
video_bitrate_kbps = 300
"""


def test_builtins_are_valid_and_shaped_as_documented() -> None:
    assert builtin_profile_names() == ["default", "low-cpu", "passthrough"]
    default = load_profile("default")
    assert default.version >= 1
    assert [(r.name, r.height, r.max_frame_rate) for r in default.renditions] == [
        ("1080p", 1080, 30), ("720p", 720, 30), ("480p", 480, 30), ("360p", 360, 30),
    ]  # fmt: skip
    bitrates = [r.video_bitrate_kbps for r in default.renditions]
    assert bitrates == sorted(bitrates, reverse=True) and 5000 <= bitrates[0] <= 7000
    assert all(r.maxrate >= r.video_bitrate_kbps and r.bufsize > 0 for r in default.renditions)
    assert (default.audio.codec, default.audio.bitrate_kbps, default.audio.sample_rate) == (
        "aac", 128, 48000,
    )  # fmt: skip
    assert default.latency.low_latency_gop_seconds == 1.0
    assert default.latency.standard_gop_seconds == 2.0
    assert default.latency.part_target_seconds == 0.2
    assert default.alerts.min_encode_speed == 1.0
    assert default.fallback.drop_top_rendition_on_slow_encode
    assert default.encoder.x264_preset == "veryfast"

    low = load_profile("low-cpu")
    assert [r.height for r in low.renditions] == [480, 360]
    assert low.encoder.x264_preset in {"superfast", "ultrafast"}

    passthrough = load_profile("passthrough")
    assert [(r.name, r.passthrough) for r in passthrough.renditions] == [("source", True)]


def test_minimal_profile_gets_defaults() -> None:
    profile = parse_profile(MINIMAL)
    assert profile.label == "tiny@3"
    rung = profile.renditions[0]
    assert (rung.max_frame_rate, rung.x264_profile, rung.maxrate, rung.bufsize) == (
        30.0, "high", 330, 330,
    )  # fmt: skip
    assert profile.audio.bitrate_kbps == 128


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("name = [", "invalid TOML"),
        (MINIMAL.replace("height = 240", "height = 241"), "height must be even"),
        (MINIMAL.replace("version = 3", "version = 0"), "version"),
        (MINIMAL.replace("video_bitrate_kbps = 300", ""), "video_bitrate_kbps"),
        (MINIMAL + "colour = 'red'\n", "colour"),
        (MINIMAL.replace('name = "240p"', 'name = "../x"'), "renditions[0].name"),
        (
            MINIMAL + '[[renditions]]\nname = "240p"\nheight = 200\nvideo_bitrate_kbps = 1\n',
            "renditions[1].video_bitrate_kbps: must be between 50 and 200000 (got 1)",
        ),
        (
            MINIMAL + '[[renditions]]\nname = "240p"\nheight = 200\nvideo_bitrate_kbps = 100\n',
            "unique",
        ),
        (MINIMAL + "[fallback]\nmin_renditions = 2\n", "min_renditions"),
        (MINIMAL + "[fallback]\nfailover_after = 0\n", "fallback.failover_after"),
        (MINIMAL + "[fallback]\nfailover_after = 90\n", "fallback.failover_after"),
        (
            MINIMAL + "[latency]\npart_target_seconds = 1.5\nlow_latency_gop_seconds = 1.0\n",
            "part_target_seconds",
        ),
        (MINIMAL.replace("height = 240", "height = 240\nmaxrate_kbps = 100"), "maxrate_kbps"),
        (MINIMAL.split("[[renditions]]")[0] + "renditions = []\n",
         "renditions: must have between 1 and 8 items (got [])"),
    ],
)
def test_bad_profiles_get_a_clear_error(text: str, complaint: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_profile(text, source="bad.toml")
    assert "bad.toml" in str(info.value)
    assert complaint in str(info.value)


def test_a_rendition_missing_a_field_is_the_only_complaint() -> None:
    """pydantic also finds the list too short once it dropped the bad item; the operator is
    told only what to fix."""
    text = MINIMAL.replace("video_bitrate_kbps = 300", "")
    with pytest.raises(ProfileError) as info:
        parse_profile(text, source="bad.toml")
    assert str(info.value) == "profile bad.toml: renditions[0].video_bitrate_kbps: required"


def test_user_directory_adds_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(MINIMAL)
    (tmp_path / "default.toml").write_text(MINIMAL.replace('name = "tiny"', 'name = "default"'))
    assert load_profile("tiny", extra_dirs=[tmp_path]).version == 3
    assert load_profile("default", extra_dirs=[tmp_path]).renditions[0].name == "240p"
    assert load_profile("default").renditions[0].name == "1080p"
    names = {p.name: p for p in list_profiles([tmp_path])}
    assert set(names) == {"default", "low-cpu", "passthrough", "tiny"}
    assert names["default"].version == 3  # the user's file wins


def test_missing_name_comes_from_the_file_and_must_agree(tmp_path: Path) -> None:
    (tmp_path / "nameless.toml").write_text(MINIMAL.replace('name = "tiny"\n', ""))
    assert load_profile("nameless", extra_dirs=[tmp_path]).name == "nameless"
    (tmp_path / "liar.toml").write_text(MINIMAL)
    with pytest.raises(ProfileError, match="named 'liar' but declares 'tiny'"):
        load_profile("liar", extra_dirs=[tmp_path])


def test_unknown_and_unsafe_names(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"unknown profile 'nope'.*default"):
        load_profile("nope", extra_dirs=[tmp_path])
    with pytest.raises(ProfileError, match="invalid profile name"):
        load_profile("../etc/passwd")


def test_list_skips_broken_user_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "broken.toml").write_text("name = [")
    names = [p.name for p in list_profiles([tmp_path, tmp_path / "missing"])]
    assert "broken" not in names and "default" in names
    assert "broken.toml" in caplog.text


def test_failover_after_is_the_node_s_unless_the_profile_says() -> None:
    assert parse_profile(MINIMAL, source="t.toml").fallback.failover_after is None
    tight = parse_profile(MINIMAL + "[fallback]\nfailover_after = 0.5\n", source="t.toml")
    assert tight.fallback.failover_after == 0.5
