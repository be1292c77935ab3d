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
    # Lookalikes: Cyrillic and Greek letters, diacritics (or a pile of combining marks),
    # a dotless i, all read as the Latin letters they pass for.
    ("\u042c\u0430d", True), ("\u0392\u0391D", True), ("b\u00e4d", True),
    ("b\u0337\u0322\u031ba\u0336d", True), ("\u0405\u0420\u0410\u041c", True),
    ("sp\u00e4mmer", True), ("bit\u0441\u043ein", True), ("b\u0430dge", False),
])
def test_what_a_term_matches(text: str, found: bool) -> None:
    assert blocked_terms(TERMS).found(text) is found


def test_a_term_in_another_script_still_finds_itself() -> None:
    """Terms are matched as their skeleton too: a Cyrillic or Greek term, or one with
    diacritics, finds itself in any case, and words of its own script that only share
    letters with it do not."""
    terms = blocked_terms(("\u0434\u0443\u0440\u0430\u043a", "caf\u00e9", "\u03b2\u03bb\u03b1\u03ba\u03b1\u03c2"))
    assert terms.found("\u0422\u042b \u0414\u0423\u0420\u0410\u041a!")  # upper case
    assert terms.found("cafe") and terms.found("CAF\u00c9")
    assert terms.found("\u0392\u039b\u0391\u039a\u0391\u03a3")  # final sigma folds
    assert not terms.found("\u0434\u0443\u0440\u0430\u043a\u0438")  # another word
    # A script whose marks spell (Devanagari vowel signs) keeps them: no two words merge.
    hindi = blocked_terms(("\u092c\u093e\u0924",))
    assert hindi.found("\u092c\u093e\u0924") and not hindi.found("\u092c\u0924")


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
