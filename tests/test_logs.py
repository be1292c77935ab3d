from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from golive.logs import printable


def test_control_characters_are_escaped_so_no_line_can_be_forged() -> None:
    assert printable("key\nlevel=error msg=forged") == "key\\x0alevel=error msg=forged"
    assert printable("\x1b[31mred\r\t\x7f\x85\u2028") == "\\x1b[31mred\\x0d\\x09\\x7f\\x85\\u2028"
    assert printable("a\\x0a") == "a\\\\x0a"  # a client's own backslash is not an escape
    assert printable("café 直播") == "café 直播"


def test_long_values_are_cut_with_an_ellipsis() -> None:
    assert printable("x" * 10, limit=4) == "xxxx…"
    assert printable("x" * 4, limit=4) == "xxxx"
    assert printable("\n\n", limit=5) == "\\x0a…"  # an escape is never cut in half


@given(st.text(), st.integers(0, 300))
def test_output_is_one_printable_line_of_bounded_length(value: str, limit: int) -> None:
    out = printable(value, limit)
    assert out.isprintable()
    assert len(out) <= limit + 1
