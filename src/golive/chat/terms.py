"""Blocked terms: words and phrases a stream's chat refuses (chat).

A stream's chat settings may list terms (`blocked_terms`, at most `MAX_BLOCKED_TERMS`,
kept as `golive.store.normalize_term` writes them: NFKC, case-folded, spaces single).
A message that contains one is refused to its sender and seen by nobody; so is a display
name. Moderators and the streamer are not held to them (as to slow mode).

A term matches whole words, whatever their case or Unicode form (full-width letters,
ligatures), with invisible format characters (zero-width spaces and joiners) ignored:
"bad" refuses "so BAD!" but not "badge". A `*` at a term's start or end stands for any
run of letters or digits: "bad*" refuses "badge" too, "*bad" "sinbad" (not inside a
term: nested wildcards can make a search take exponential time on a crafted message).
Words of a phrase may be apart by any whitespace. Single words without a `*` (most
lists) are looked up in a set, one lookup per word of the message; the rest are one
regular expression.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from golive.store import fold_text, normalize_term

_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class BlockedTerms:
    """A compiled list of blocked terms."""

    words: frozenset[str]
    pattern: re.Pattern[str] | None

    def found(self, text: str) -> bool:
        """Whether `text` contains a blocked term."""
        if not self.words and self.pattern is None:
            return False
        folded = fold_text(text)
        if self.words and any(word in self.words for word in _WORD.findall(folded)):
            return True
        return self.pattern is not None and self.pattern.search(folded) is not None


NOTHING_BLOCKED = BlockedTerms(frozenset(), None)


@functools.lru_cache(maxsize=1024)
def blocked_terms(terms: tuple[str, ...]) -> BlockedTerms:
    """`terms` compiled (cached: streams with the same list, or a list read again after
    another node changed other settings, share one)."""
    if not terms:
        return NOTHING_BLOCKED
    words: set[str] = set()
    patterns: list[str] = []
    for term in terms:
        folded = normalize_term(term)
        if not folded:
            continue
        if "*" not in folded and _WORD.fullmatch(folded):
            words.add(folded)
            continue
        # A `*` counts only at an end (as the store keeps terms): wildcards inside a term
        # could make the search take exponential time on a crafted message.
        core = re.escape(folded.strip("*").strip()).replace(re.escape(" "), r"\s+")
        if not core:
            continue
        patterns.append((r"\w*" if folded.startswith("*") else "") + core
                        + (r"\w*" if folded.endswith("*") else ""))
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(patterns) + r")(?!\w)") if patterns else None
    return BlockedTerms(frozenset(words), pattern)
