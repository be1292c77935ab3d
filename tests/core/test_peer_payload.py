"""What one node reads of another's Redis messages (core.peer_payload): bounded, an object,
never its own."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from golive.core import peer_payload


def test_a_peers_object_is_read_and_everything_else_is_not() -> None:
    message = json.dumps({"node": "b", "stream": "ls_1"}).encode()
    assert peer_payload(message, "a", 1024) == {"node": "b", "stream": "ls_1"}
    assert peer_payload(message, "b", 1024) is None  # this node's own, echoed back
    assert peer_payload(message, "a", len(message) - 1) is None  # over the bound
    assert peer_payload(message.decode(), "a", 1024) is None  # not bytes
    assert peer_payload(b"[1, 2]", "a", 1024) is None  # JSON, not an object
    assert peer_payload(b"\xff{", "a", 1024) is None  # not JSON (nor UTF-8)


@given(st.binary(max_size=256))
def test_any_bytes_give_an_object_or_none(data: bytes) -> None:
    payload = peer_payload(data, "a", 128)
    assert payload is None or (isinstance(payload, dict) and len(data) <= 128)
