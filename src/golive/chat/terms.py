"""Blocked terms: words and phrases a stream's chat refuses (chat).

A stream's chat settings may list terms (`blocked_terms`, at most `MAX_BLOCKED_TERMS`,
kept as `golive.store.normalize_term` writes them: NFKC, case-folded, spaces single).
A message that contains one is refused to its sender and seen by nobody; so is a display
name. Moderators and the streamer are not held to them (as to slow mode).

A term matches whole words, whatever their case or Unicode form (full-width letters,
ligatures), with invisible format characters (zero-width spaces and joiners) ignored:
"bad" refuses "so BAD!" but not "badge". Letters that only look like others do not hide
a term either: both the terms and the message are matched as their skeleton
(`skeleton`), where diacritics are dropped ("b\u00e4d", or a "bad" buried under
combining marks) and Cyrillic and Greek letters that look Latin read as those ("bad"
spelled with a Cyrillic soft sign and a, or in Greek capitals). A term in Cyrillic or
Greek is matched the same way, so it still finds itself; the price is that a word of
another script that looks exactly like a blocked Latin one is refused too, as a
moderator reading the chat would take it. A `*` at a term's start or end stands for any
run of letters or digits: "bad*" refuses "badge" too, "*bad" "sinbad" (not inside a
term: nested wildcards can make a search take exponential time on a crafted message).
Words of a phrase may be apart by any whitespace. Single words without a `*` (most
lists) are looked up in a set, one lookup per word of the message; the rest are one
regular expression.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from golive.store import fold_text, normalize_term

_WORD = re.compile(r"\w+")

# Combining marks that decorate letters of any alphabet (the diacritics blocks): dropped.
# Marks of scripts that need them to spell (Devanagari's vowel signs, say) are kept.
_DIACRITICS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# Case-folded letters that look like a Latin one, in the fonts chat is read in, and do not
# decompose to it (Unicode TR39 lists more): each string of lookalikes, then what they read as.
_LOOKALIKES = str.maketrans(
    # Cyrillic (lower case; capitals fold to these first)
    "\u0430\u0432\u0435\u0456\u0458\u043a\u043c\u043d\u043e\u043f\u0440\u0441"
    "\u0442\u0443\u0445\u044c\u0455\u04bb\u04cf\u0501\u051b\u051d\u04af\u0261"
    # Greek
    "\u03b1\u03b2\u03b5\u03b6\u03b7\u03b9\u03ba\u03bd\u03bf\u03c1\u03c4\u03c5"
    "\u03c7\u03c9"
    # Latin letters with a stroke, or without their dot
    "\u0131\u0237\u0142\u00f8\u0111\u0127\u019a\u0268\u0289\u0251",
    "abeijkmhonpctyxbshldqwygabeznikvoptuxwijlodhliua",
)


def skeleton(folded: str) -> str:
    """What `folded` (`fold_text`'s output) looks like: diacritics dropped, lookalike
    letters read as the Latin letter they pass for. Terms and messages are both matched so."""
    bare = _DIACRITICS.sub("", unicodedata.normalize("NFD", folded))
    return unicodedata.normalize("NFC", bare).translate(_LOOKALIKES)


@dataclass(frozen=True, slots=True)
class BlockedTerms:
    """A compiled list of blocked terms."""

    words: frozenset[str]
    pattern: re.Pattern[str] | None

    def found(self, text: str) -> bool:
        """Whether `text` contains a blocked term."""
        if not self.words and self.pattern is None:
            return False
        folded = skeleton(fold_text(text))
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
        folded = skeleton(normalize_term(term))
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
