"""Token buckets: pure, driven by a hand-held clock."""

from __future__ import annotations

import pytest

from golive.core import BucketTable, TokenBucket


def test_burst_then_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time(0.0) == pytest.approx(0.5)
    assert not bucket.take(0.4)
    assert bucket.take(0.5)
    assert bucket.take(100.0) and bucket.take(100.0) and bucket.take(100.0)
    assert not bucket.take(100.0)  # never more than the burst saved up


def test_clock_going_backwards_is_harmless() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert bucket.take(11.0)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, now=0)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0, now=0)


def test_table_is_bounded() -> None:
    table = BucketTable(rate=1.0, burst=1, max_keys=2)
    assert table.bucket("a", 0).take(0)
    table.bucket("b", 0)
    table.bucket("c", 0)  # forgets "a", the least recently used
    assert len(table) == 2
    assert table.bucket("a", 0).take(0)  # a fresh bucket
