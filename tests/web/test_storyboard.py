"""A recording's storyboard: its WebVTT thumbnails track (golive.web.thumbnails)."""

from __future__ import annotations

import pytest

from golive.web.thumbnails import storyboard_step, storyboard_vtt


@pytest.mark.parametrize(("duration", "step"), [
    (0, 2), (1.5, 2), (12, 2), (200, 2), (200.1, 3), (3600, 36), (float("nan"), 2),
])
def test_at_most_a_hundred_stills_two_seconds_apart_at_least(duration: float,
                                                              step: int) -> None:
    assert storyboard_step(duration) == step


def test_a_cue_per_step_to_the_end_each_naming_its_still() -> None:
    vtt = storyboard_vtt("pid", 250.4, token="a b+c")
    blocks = vtt.split("\n\n")
    assert blocks[0] == "WEBVTT"
    cues = [block.split("\n") for block in blocks[1:] if block]
    assert len(cues) == 84  # 3 s apart: 0, 3, ... 249
    assert cues[0] == ["00:00:00.000 --> 00:00:03.000",
                       "/thumbnail/pid.jpg?time=0.0&width=160&token=a%20b%2Bc"]
    assert cues[-1][0] == "00:04:09.000 --> 00:04:10.400"
    assert cues[-1][1].startswith("/thumbnail/pid.jpg?time=249.0&width=160")


def test_hours_and_an_empty_recording() -> None:
    long = storyboard_vtt("pid", 3 * 3600, width=320)  # 108 s apart: 100 cues
    assert long.count(" --> ") == 100
    assert long.rstrip().endswith(
        "02:58:12.000 --> 03:00:00.000\n/thumbnail/pid.jpg?time=10692.0&width=320")
    assert storyboard_vtt("pid", 0).strip() == "WEBVTT"
