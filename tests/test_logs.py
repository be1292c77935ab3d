from __future__ import annotations

import logging

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from golive.logs import configure_logging, printable


async def test_requests_golive_makes_are_not_logged_with_their_urls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level,
             {name: logging.getLogger(name).level for name in ("httpx", "httpcore")})
    try:
        configure_logging("info")
        transport = httpx.MockTransport(lambda request: httpx.Response(404))
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get("http://hooks.example/allow?secret=s3cr3t&token=eyJhbGci")
        logging.getLogger("golive.test").info("still logging")
    finally:
        root.handlers[:], level, levels = saved
        root.setLevel(level)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)
    err = capsys.readouterr().err
    assert "still logging" in err
    assert "s3cr3t" not in err and "hooks.example" not in err, err


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
