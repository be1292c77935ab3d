"""Blocked terms: what a term matches (golive.chat.terms)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from golive.chat.terms import blocked_terms

TERMS = ("bad", "spam*", "*coin", "go away", "$$$", "Straße")


@pytest.mark.parametrize(("text", "found"), [
    ("so BAD!", True), ("bad", True), ("(bad)", True), ("badge", False), ("sinbad", False),
    ("\uff22\uff21\uff24", True),  # full-width letters fold to ASCII (NFKC)
    ("b\u200bad", True), ("b\u00adad", True),  # a zero-width space, a soft hyphen
    ("spam", True), ("spammer", True), ("antispam", False),
    ("bitcoin", True), ("coin", True), ("coins", False),
    ("please go away", True), ("GO\n\t away", True), ("goaway", False), ("go awayy", False),
    ("win $$$ now", True), ("a$$$", False),
    ("STRASSE", True), ("strasse", True),  # case folding: ß folds to ss
    ("", False), ("fine words", False),
])
def test_what_a_term_matches(text: str, found: bool) -> None:
    assert blocked_terms(TERMS).found(text) is found


def test_a_star_inside_a_term_is_no_wildcard() -> None:
    # Nested wildcards (\w*a\w*b\w*c...) took seconds on a 500-character word with every
    # letter but the last: the store refuses such terms, and the matcher reads an inner
    # star as itself.
    crafted = blocked_terms(("*a*b*c*d*e*",))
    assert not crafted.found("abcd" * 125)  # at once (a hang fails the test's timeout)
    assert crafted.found("it was a*b*c*d*e all along")


def test_an_empty_list_blocks_nothing() -> None:
    assert not blocked_terms(()).found("anything at all")
    assert blocked_terms(()) is blocked_terms(())


@given(st.lists(st.text(min_size=1, max_size=20), max_size=20), st.text(max_size=200))
def test_any_terms_compile_and_any_text_is_judged(terms: list[str], text: str) -> None:
    # Terms are re.escape'd: no term, however odd, breaks the pattern or raises.
    assert blocked_terms(tuple(terms)).found(text) in (True, False)


@given(st.from_regex(r"[a-z]{2,10}", fullmatch=True), st.text(max_size=50))
def test_a_word_is_found_wherever_it_stands_alone(word: str, around: str) -> None:
    text = f"{around} {word.upper()} {around}"
    assert blocked_terms((word,)).found(text)
