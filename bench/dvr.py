"""DVR window benchmark: what a long live playlist costs, full and as a delta update.

Feeds a rendition window one-second segments of 0.2 s parts (no encoder: packaging only)
until its DVR window is full, then measures the full media playlist and the delta update
(`_HLS_skip=YES`) a low-latency player reloads: bytes, render time (a new part
invalidates the rendered text, so this is paid once per part per form), and the memory
the window keeps (index and in-memory parts). Compared in the same run against the
limit (a delta under a tenth of the full playlist) and against the same window without
DVR (the live playlist's own cost).

    .venv/bin/python bench/dvr.py
    .venv/bin/python bench/dvr.py --windows 600 3600
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from golive.formats.isobmff import Fragment, InitSegment, TrackInfo
from golive.packaging import RenditionWindow

PART = 0.2
PARTS_PER_SEGMENT = 5
START = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
INIT = InitSegment(b"init", (TrackInfo(1, "video", 90000, "avc1.64001f", 1280, 720),))


def fed(dvr_window: int, seconds: int) -> tuple[RenditionWindow, int]:
    """A window fed `seconds` of media (plus two parts); the bytes tracemalloc saw it keep."""
    tracemalloc.start()
    window = RenditionWindow("720p", part_target=PART, low_latency=True, bandwidth=3_000_000,
                             average_bandwidth=2_700_000, frame_rate=30.0,
                             first_msn=3_530_000_000, dvr_window=dvr_window)
    window.set_init(INIT)
    data = bytes(2000)
    for n in range(seconds * PARTS_PER_SEGMENT + 2):
        t = n * PART
        window.add_fragment(Fragment(data, n + 1, n % PARTS_PER_SEGMENT == 0, t, PART),
                            START + timedelta(seconds=t))
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return window, kept


def render_ms(window: RenditionWindow, *, skip: bool, rounds: int = 20) -> float:
    best = float("inf")
    for _ in range(rounds):
        window._playlists.clear()  # as a new part does
        began = time.perf_counter()
        window.playlist(skip=skip)
        best = min(best, time.perf_counter() - began)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, nargs="+", default=[600, 3600, 21600],
                        help="DVR windows to measure, seconds")
    args = parser.parse_args()
    live, _ = fed(0, 60)
    live_ms = render_ms(live, skip=False)
    live_bytes = len(live.playlist().encode())
    header = (f"{'window':>8} {'full KB':>9} {'delta KB':>9} {'delta/full':>10} {'limit':>6} "
              f"{'full ms':>8} {'delta ms':>9} {'kept MB':>9} {'ok':>3}")
    print(header)
    print(f"{'live':>8} {live_bytes / 1000:9.1f} {'':>9} {'':>10} {'':>6} {live_ms:8.3f} "
          f"{'':>9} {'':>9} {'':>3}")
    for seconds in args.windows:
        window, kept = fed(seconds, seconds + 30)
        full = len(window.playlist().encode())
        delta = len(window.playlist(skip=True).encode())
        ratio = delta / full
        print(f"{seconds:>7}s {full / 1000:9.1f} {delta / 1000:9.1f} {ratio:10.3f} {0.1:6.2f} "
              f"{render_ms(window, skip=False):8.3f} {render_ms(window, skip=True):9.3f} "
              f"{kept / 1e6:9.1f} {'yes' if ratio < 0.1 else 'NO':>3}")


if __name__ == "__main__":
    main()
