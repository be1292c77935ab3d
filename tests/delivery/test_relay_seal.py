"""The seal a node puts on requests it relays to a broadcast's owner (golive.delivery.relay).

An owner answers a sealed request without checking the viewer again, so the seal must
hold only for the cluster's own secret, the one object, and about a minute."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from golive.delivery import RelaySeal
from golive.delivery.relay import SEAL_WINDOW, relay_params

SECRET = b"s" * 32
PATH = "/live/abc/480p/part-12.3.m4s"
NOW = 1_800_000_000.0


def test_a_seal_holds_for_its_path_and_directives_within_the_window() -> None:
    seal = RelaySeal(SECRET)
    value = seal.seal(PATH, ("_HLS_msn=12", "_HLS_part=3"), now=NOW)
    assert seal.verify(value, PATH, ("_HLS_msn=12", "_HLS_part=3"), now=NOW + SEAL_WINDOW)
    # Another object, other directives, another secret, too old or too new: no.
    assert not seal.verify(value, "/live/abc/480p/part-12.4.m4s", ("_HLS_msn=12", "_HLS_part=3"),
                           now=NOW)
    assert not seal.verify(value, PATH, ("_HLS_msn=13", "_HLS_part=3"), now=NOW)
    assert not seal.verify(value, PATH, (), now=NOW)
    assert not RelaySeal(b"t" * 32).verify(value, PATH, ("_HLS_msn=12", "_HLS_part=3"), now=NOW)
    assert not seal.verify(value, PATH, ("_HLS_msn=12", "_HLS_part=3"),
                           now=NOW + SEAL_WINDOW + 1)
    assert not seal.verify(value, PATH, ("_HLS_msn=12", "_HLS_part=3"),
                           now=NOW - SEAL_WINDOW - 1)
    assert not seal.verify(None, PATH, (), now=NOW)


def test_only_the_relayed_parameters_count_in_their_order() -> None:
    query = {"token": "jwt", "_HLS_part": "3", "_HLS_msn": "12", "x": "y"}
    assert relay_params(query) == ("_HLS_msn=12", "_HLS_part=3")
    assert relay_params({"width": "160", "token": "t"}, ("width",)) == ("width=160",)


@given(st.text(max_size=200))
def test_arbitrary_header_values_are_refused_without_raising(value: str) -> None:
    assert not RelaySeal(SECRET).verify(value, PATH, (), now=NOW)
