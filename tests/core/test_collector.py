"""The process's garbage-collector policy."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from golive.core import tune_garbage_collector
from golive.core.collector import YOUNG_GENERATION_THRESHOLD


@pytest.fixture
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_young_generation_is_collected_less_often_older_ones_as_before(restored: None) -> None:
    gc.set_threshold(700, 11, 12)
    tune_garbage_collector()
    assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, 11, 12)
    assert gc.isenabled()
