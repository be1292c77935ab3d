"""Program dates by the ingest clock: a starved encoder never moves a published date.

The encoder's parts arrive late while it is starved and fast while it catches up; the
dates come from when its input reached ingest (`origin`), so every media playlist any
player ever loaded agrees with every later one, and the renditions agree with each other.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.llhls_rules import DatedSegment, PublishedDates

from golive.formats.isobmff import Fragment, InitSegment, TrackInfo
from golive.packaging.presentation import Presentation

PART = 0.2
PARTS_PER_GOP = 5  # one-second segments
T0 = 1_700_000_000.0  # when the first run's input for media time 0 reached ingest
RENDITIONS = ("720p", "360p", "180p")


def _init(height: int) -> InitSegment:
    video = TrackInfo(1, "video", 90000, "avc1.64001f", height * 16 // 9, height)
    return InitSegment(f"init-{height}".encode(), (video,))


class Broadcast:
    """A presentation fed as the transcoder feeds it, on a clock the test sets."""

    def __init__(self) -> None:
        self.now = T0
        self.presentation = Presentation(
            "pb_dates", low_latency=True, part_target=PART, clock=lambda: self.now
        )
        for i, name in enumerate(RENDITIONS):
            window = self.presentation.add_rendition(
                name, bandwidth=3_000_000 >> i, average_bandwidth=2_500_000 >> i, frame_rate=30
            )
            window.set_init(_init(720 >> i))
        self.dated = PublishedDates()
        self.count = 0

    def part(self, name: str, index: int, arrived_at: float, origin: float | None) -> None:
        """Run-relative part `index` of rendition `name`, out of the encoder at `arrived_at`."""
        self.now = arrived_at
        self.count += 1
        fragment = Fragment(b"m" * 50, self.count, index % PARTS_PER_GOP == 0, index * PART, PART)
        assert self.presentation.add_fragment(name, fragment, origin=origin)
        for rendition in RENDITIONS:  # what a player reloading any playlist now is given
            text = self.presentation.media_playlist(rendition)
            assert text is not None
            self.dated.see(rendition, text)

    def restart(self) -> None:
        self.presentation.mark_discontinuity()

    def segments(self, name: str) -> list[DatedSegment]:
        text = self.presentation.media_playlist(name)
        assert text is not None
        return self.dated.see(name, text)


def _starved_run(b: Broadcast, *, origin: float | None, start: float, parts: int) -> None:
    """One encoder run whose input arrives in real time from `start`: its parts come out
    late at first (3.5 s behind for the top rung, less for the lower ones), then the
    encoder catches up to a steady 0.3 s behind."""
    for i in range(parts):
        for r, name in enumerate(RENDITIONS):
            lag = max(0.3, 3.5 - 0.35 * i) - 0.05 * r
            b.part(name, i, start + i * PART + PART + lag, origin)


def test_a_starved_encoder_never_moves_a_published_date_and_renditions_agree() -> None:
    b = Broadcast()
    _starved_run(b, origin=T0, start=T0, parts=40)
    b.restart()  # a degrade step: the next run's input starts 0.4 s after the last
    second = T0 + 40 * PART + 0.4
    _starved_run(b, origin=second, start=second, parts=40)
    assert b.dated.moved == []
    assert all(len(b.segments(name)) >= 6 for name in RENDITIONS)
    for (name, msn), seen in b.dated.first_seen.items():
        assert b.dated.first_seen[(RENDITIONS[0], msn)].date == seen.date, (name, msn)
    top = sorted((s for (n, _), s in b.dated.first_seen.items() if n == RENDITIONS[0]),
                 key=lambda s: s.msn)
    assert sum(s.discontinuity for s in top) == 1
    for before, after in itertools.pairwise(top):
        if after.discontinuity:  # a restart never goes back in time
            assert after.date >= before.date + before.duration - 0.0005
        else:
            assert abs(after.date - (before.date + before.duration)) < 0.0005
    # Every date is when the input arrived: the first run's media time 0 is T0, the
    # second run's is its own input's arrival.
    assert top[0].date == T0
    assert any(abs(s.date - second) < 0.0005 and s.discontinuity for s in top)


def test_without_the_ingest_clock_a_starved_encoder_rewrites_dates() -> None:
    """The failure this fixes: dates from the parts' own arrival move back as it catches up."""
    b = Broadcast()
    _starved_run(b, origin=None, start=T0, parts=40)
    assert b.dated.moved


@settings(max_examples=60, deadline=None)
@given(
    runs=st.lists(
        st.tuples(
            st.integers(min_value=6, max_value=25),  # parts in the run
            st.floats(min_value=0.0, max_value=5.0),  # gap before the run's input
            st.lists(st.floats(min_value=0.0, max_value=4.0), min_size=1, max_size=25),
        ),
        min_size=1,
        max_size=3,
    ),
    skew=st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=3, max_size=3),
)
def test_dates_stay_put_for_any_encoder_timing(
    runs: list[tuple[int, float, list[float]]], skew: list[float]
) -> None:
    """Any encoder delays (late, fast, jittered; each rendition its own): no published
    date moves, the renditions agree, and no segment is dated after its first part
    came out of the encoder."""
    b = Broadcast()
    start = T0
    out_at = {name: T0 for name in RENDITIONS}  # parts of one rendition come in order
    came_out: dict[tuple[str, float], float] = {}
    for n, (parts, gap, lags) in enumerate(runs):
        if n:
            b.restart()
            start += gap
        for i in range(parts):
            for r, name in enumerate(RENDITIONS):
                lag = lags[i % len(lags)] + skew[r]
                at = max(out_at[name], start + (i + 1) * PART + lag)
                out_at[name] = at
                came_out.setdefault((name, start + i * PART), at)
                b.part(name, i, at, start)
        start += parts * PART
    assert b.dated.moved == []
    for (name, msn), seen in b.dated.first_seen.items():
        date = seen.date
        top = b.dated.first_seen.get((RENDITIONS[0], msn))
        if top is not None:
            assert abs(top.date - date) < 0.0005, (name, msn)
        # (A playlist prints dates to the millisecond.)
        matching = [v for (n, t), v in came_out.items() if n == name and abs(t - date) < 0.0011]
        assert matching, (name, msn, date)
        assert date <= min(matching) + 0.0011


def test_production_lag_is_the_encode_delay_behind_the_ingest_clock() -> None:
    """`production()`'s lag (golive_part_production_lag_seconds): how long after its input
    reached ingest a part came out, even while the encoder keeps a steady pace."""
    b = Broadcast()
    for i in range(10):
        b.part(RENDITIONS[0], i, T0 + i * PART + 0.35, T0)
    produced = b.presentation.renditions[RENDITIONS[0]].production()
    assert produced is not None
    arrived, lag = produced
    assert abs(arrived.timestamp() - (T0 + 9 * PART + 0.35)) < 1e-6
    assert abs(lag - 0.35) < 1e-6


def test_a_segment_after_missing_media_is_dated_on_its_own() -> None:
    """Parts missing on one timeline (a rung's gate closed mid-GOP, fragments dropped):
    the next segment carries its own date from the first playlist that lists it, so no
    date moves when the playlist's first segment, always dated, slides past the hole."""
    b = Broadcast()
    name = RENDITIONS[0]
    for i in range(60):
        if not 12 <= i < 15:  # the parts at 2.4-3.0 s never come
            b.part(name, i, T0 + i * PART + 0.3, T0)
    assert b.dated.moved == []
    after = [s for (n, _), s in b.dated.first_seen.items() if n == name and s.date > T0 + 2.0]
    assert abs(min(s.date for s in after) - (T0 + 20 * PART)) < 0.0005  # its true date
    assert not any(s.discontinuity for s in after)
