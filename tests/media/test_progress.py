"""ffmpeg `-progress` parsing: real output, any chunking, garbage never raises."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from golive.media.progress import EncodeProgress, ProgressParser

# Captured from `ffmpeg -progress pipe:1 -stats_period 0.5` (ffmpeg 9).
REAL = b"""frame=24
fps=0.00
stream_0_0_q=20.0
bitrate=  10.3kbits/s
total_size=1259
out_time_us=981167
out_time_ms=981167
out_time=00:00:00.981167
dup_frames=0
drop_frames=0
speed=1.96x
progress=continue
frame=35
fps=29.91
stream_0_0_q=-1.0
bitrate=1513.2kbits/s
total_size=226974
out_time_us=1200000
out_time_ms=1200000
out_time=00:00:01.200000
dup_frames=2
drop_frames=1
speed= 1.5x
progress=end
"""


def test_real_output() -> None:
    first, last = ProgressParser().feed(REAL)
    assert first == EncodeProgress(
        frame=24, fps=0.0, bitrate_kbps=10.3, total_size=1259, out_time_us=981167,
        dup_frames=0, drop_frames=0, speed=1.96, ended=False,
    )  # fmt: skip
    assert last.ended and last.frame == 35 and last.speed == 1.5 and last.fps == 29.91
    assert (last.dup_frames, last.drop_frames) == (2, 1)
    assert last.out_time == 1.2


def test_byte_by_byte_gives_the_same_reports() -> None:
    parser = ProgressParser()
    reports = [r for i in range(len(REAL)) for r in parser.feed(REAL[i : i + 1])]
    assert reports == ProgressParser().feed(REAL)


def test_not_available_values_and_startup_sentinels() -> None:
    (report,) = ProgressParser().feed(
        b"frame=0\nfps=N/A\nbitrate=N/A\ntotal_size=N/A\nout_time_us=-9223372036854775807\n"
        b"out_time=-577014:32:22.775808\nspeed=N/A\nprogress=continue\n"
    )
    assert report == EncodeProgress()


def test_out_time_falls_back_to_the_clock_form() -> None:
    (report,) = ProgressParser().feed(b"out_time=01:02:03.500000\nprogress=continue\n")
    assert report.out_time_us == (3723 * 1_000_000) + 500_000


def test_overlong_lines_and_junk_are_skipped() -> None:
    parser = ProgressParser()
    assert parser.feed(b"frame=" + b"9" * 5000) == []
    assert parser.feed(b"9" * 5000 + b"\nnot a pair\n=\nframe=7\nfps=inf\nspeed=nanx\n") == []
    (report,) = parser.feed(b"progress=continue\n")
    assert report.frame == 7 and report.fps == 0.0 and report.speed is None


@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    parser = ProgressParser()
    for report in parser.feed(data):
        assert isinstance(report, EncodeProgress)
    parser.feed(b"\nprogress=continue\n")


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "frame",
                    "fps",
                    "bitrate",
                    "total_size",
                    "out_time_us",
                    "out_time",
                    "dup_frames",
                    "drop_frames",
                    "speed",
                    "progress",
                    "x",
                ]
            ),
            st.text(max_size=40),
        ),
        max_size=50,
    ),
    st.integers(min_value=1, max_value=64),
)
def test_key_value_soup_in_any_chunking_never_raises(
    pairs: list[tuple[str, str]], chunk: int
) -> None:
    text = "".join(f"{k}={v}\n" for k, v in pairs).encode("utf-8", "surrogatepass")
    whole = ProgressParser().feed(text)
    parser = ProgressParser()
    pieces = [r for i in range(0, len(text), chunk) for r in parser.feed(text[i : i + chunk])]
    assert pieces == whole
