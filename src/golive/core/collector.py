"""The process's garbage-collector policy, set once by `golive serve` (control plane).

CPython collects its youngest generation every 700 net allocations of container objects
by default. An LL-HLS origin holds a blocking reload per viewer until the next part:
at 2,000 viewers about 30,000 young objects are alive at once before the part releases
them together, so a low threshold is crossed several times per part and each young
collection walks what is alive then, although none of it is garbage (the held
requests make no reference cycles: tests/httpserver/test_fast.py checks). Measured with
bench/origin.py at 2,000 viewers (its "gc ms/s" column): 700 cost 20-30% of the origin's
CPU at an earlier stop, 7,000 cost 17-18 ms of collections per second (2.4% of a core,
pauses up to 6 ms), 50,000 cost 0-1 ms per second (one pause of 10 ms in 10 s). Cyclic
garbage waits longer for its collection (tens of thousands of objects at most); older
generations keep their defaults.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_GENERATION_THRESHOLD", "tune_garbage_collector"]

YOUNG_GENERATION_THRESHOLD = 50_000  # CPython's default is 700


def tune_garbage_collector() -> None:
    """Collect the young generation every `YOUNG_GENERATION_THRESHOLD` net allocations."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)
