"""BANDWIDTH and AVERAGE-BANDWIDTH as RFC 8216bis 4.4.6.2 measures them from segments."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from golive.packaging import BitRateMeter, measure_segments


def test_the_peak_is_the_richest_set_between_half_and_one_and_a_half_targets() -> None:
    # Target 2 s: a 2 s segment counts alone; a 0.6 s one only with its neighbours.
    meter = BitRateMeter()
    meter.add(250_000, 2.0, 2)  # 1 Mbit/s
    assert (meter.peak, meter.average) == (1_000_000, 1_000_000)
    meter.add(150_000, 0.6, 2)  # 2 Mbit/s, but too short a set alone (under 1 s)...
    assert meter.peak == math.ceil(400_000 * 8 / 2.6)  # ...so with the 2 s one before it
    meter.add(150_000, 0.6, 2)  # two of them: 1.2 s at 2 Mbit/s (all three: over 3 s)
    assert meter.peak == 2_000_000
    assert meter.average == round(550_000 * 8 / 3.2)


def test_short_sets_that_are_too_short_never_count() -> None:
    meter = BitRateMeter()
    meter.add(1_000_000, 0.2, 1)  # 40 Mbit/s for a fifth of a second: under half a target
    assert meter.peak == 0 and meter.average == 40_000_000
    meter.add(10_000, 0.4, 1)
    assert meter.peak == math.ceil(1_010_000 * 8 / 0.6)


def test_a_whole_playlist_is_measured_under_its_own_target() -> None:
    assert measure_segments([]) == (0, 0)
    peak, average = measure_segments([(125_000, 1.0), (250_000, 1.0), (125_000, 1.0)])
    assert (peak, average) == (2_000_000, round(500_000 * 8 / 3))
    # The longest segment sets the target (2 s): a pair of 1 s segments is a set too.
    peak, _ = measure_segments([(500_000, 2.0), (300_000, 1.0), (300_000, 1.0)])
    assert peak == 2_400_000


@given(st.lists(st.tuples(st.integers(1, 10_000_000), st.floats(0.05, 4.0)), min_size=1,
                max_size=40))
def test_the_peak_is_at_most_the_richest_segment_and_is_it_where_each_counts_alone(
    segments: list[tuple[int, float]],
) -> None:
    # A set's rate is a mean of its segments' rates: never over the richest one.
    peak, _ = measure_segments(segments)
    rates = [size * 8 / duration for size, duration in segments]
    assert peak <= math.ceil(max(rates))
    target = math.ceil(max(duration for _, duration in segments) - 1e-3)
    if all(duration >= 0.5 * target for _, duration in segments):
        assert peak == math.ceil(max(rates))


@pytest.mark.parametrize("duration", [0.0, -1.0])
def test_a_segment_without_duration_is_left_out(duration: float) -> None:
    meter = BitRateMeter()
    meter.add(1000, duration, 1)
    assert (meter.segments, meter.peak, meter.average) == (0, 0, 0)
