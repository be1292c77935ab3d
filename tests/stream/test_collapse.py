"""Telling a collapsed input from its recent normal (stream/collapse.py)."""

from __future__ import annotations

from golive.stream.collapse import RateWatch


def run(watch: RateWatch, start: float, seconds: float, fps: int, size: int) -> float:
    t = start
    for _ in range(round(seconds * fps)):
        t += 1 / fps
        watch.add(t, size, video=True)
    return t


def test_a_steady_input_never_collapses_and_too_little_history_says_nothing() -> None:
    watch = RateWatch()
    assert watch.collapse(0.0, 1.0) is None
    t = run(watch, 0.0, 1.5, 30, 4000)
    assert watch.collapse(t, 1.0) is None  # no 2 s of history before the last second
    t = run(watch, t, 8.0, 30, 4000)
    assert watch.collapse(t, 1.0) is None


def test_frame_rate_and_bitrate_collapses_are_named() -> None:
    watch = RateWatch()
    t = run(watch, 0.0, 5.0, 30, 4000)
    t = run(watch, t, 1.0, 3, 4000)
    reason = watch.collapse(t, 1.0)
    assert reason is not None and reason.startswith("frame rate 3.")
    bytes_only = RateWatch()
    t = run(bytes_only, 0.0, 5.0, 30, 4000)
    t = run(bytes_only, t, 1.0, 30, 400)  # same frames, a tenth of the bits
    reason = bytes_only.collapse(t, 1.0)
    assert reason is not None and reason.startswith("bitrate 96.0 kbit/s")


def test_old_slots_are_forgotten_after_a_long_gap() -> None:
    watch = RateWatch(history=4.0)
    t = run(watch, 0.0, 4.0, 30, 4000)
    t = run(watch, t + 100.0, 4.0, 3, 4000)  # a new normal after a long silence
    assert watch.collapse(t, 1.0) is None
