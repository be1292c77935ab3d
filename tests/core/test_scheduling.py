"""The process's thread switching policy."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from golive.core import tune_thread_switching
from golive.core.scheduling import SWITCH_INTERVAL


@pytest.fixture
def restored() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_a_waiting_thread_gets_the_gil_after_a_millisecond(restored: None) -> None:
    sys.setswitchinterval(0.005)
    tune_thread_switching()
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL) == pytest.approx(0.001)
