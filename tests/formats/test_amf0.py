"""AMF0: round trips, the encodings publishers send, and hostile bytes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from golive.formats import amf0

keys = st.text(min_size=1, max_size=20)
scalars = (
    st.none()
    | st.just(amf0.UNDEFINED)
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.text(max_size=50)
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(keys, children, max_size=5)
    | st.builds(amf0.EcmaArray, st.dictionaries(keys, children, max_size=5)),
    max_leaves=30,
)


@given(values)
def test_round_trip(value: Any) -> None:
    assert amf0.decode(amf0.encode(value)) == value


@given(st.lists(values, max_size=5))
def test_sequence_round_trip(items: list[Any]) -> None:
    assert amf0.decode_all(amf0.encode_all(items)) == items


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_amf_error(data: bytes) -> None:
    try:
        amf0.decode_all(data)
    except amf0.AmfError:
        pass


def test_connect_command_as_ffmpeg_sends_it() -> None:
    # "connect", 1.0, {app: "live", type: "nonprivate", ...} written by hand per the spec.
    body = (
        b"\x02\x00\x07connect" + b"\x00" + (1.0).hex().encode()[:0] + bytes.fromhex("3ff0000000000000")
        + b"\x03" + b"\x00\x03app\x02\x00\x04live" + b"\x00\x04type\x02\x00\x0anonprivate"
        + b"\x00\x00\x09"
    )
    assert amf0.decode_all(body) == ["connect", 1.0, {"app": "live", "type": "nonprivate"}]


def test_long_string_date_reference_and_typed_object() -> None:
    long = "x" * 70_000
    assert amf0.decode(amf0.encode(long)) == long
    assert amf0.encode(long)[0] == amf0.LONG_STRING
    date = amf0.AmfDate(1_700_000_000_000.0, 0)
    assert amf0.decode(amf0.encode(date)) == date
    # An object, then a reference to it inside a strict array (the array itself is index 0).
    obj = amf0.encode({"a": 1.0})
    data = bytes([amf0.STRICT_ARRAY]) + (2).to_bytes(4, "big") + obj + b"\x07\x00\x01"
    first, second = amf0.decode(data)
    assert first is second
    typed = b"\x10\x00\x03Foo" + b"\x00\x01k\x05" + b"\x00\x00\x09"
    assert amf0.decode(typed) == {"k": None}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x02\x00\x05ab", "truncated"),
        (b"\x0a\xff\xff\xff\xff", "does not fit"),
        (b"\x07\x00\x05", "reference"),
        (b"\x11", "unsupported"),
        (b"\x05\x05", "trailing"),
    ],
)
def test_errors_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(amf0.AmfError, match=message):
        amf0.decode(data)


def test_depth_is_bounded() -> None:
    data = b"\x0a\x00\x00\x00\x01" * 100 + b"\x05"
    with pytest.raises(amf0.AmfError, match="deep"):
        amf0.decode(data)
