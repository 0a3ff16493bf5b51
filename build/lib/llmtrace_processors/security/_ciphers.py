"""Letter ciphers inside quotes, and word breaks in letter-spaced text.

Two decoders the normaliser (:mod:`processors.security.normalize`) calls:

* :func:`quoted_ciphers`: a quoted stretch (``'Jung jnf gur anzr...'``) that reads as
  language after ROT13, another Caesar shift or reversal, while it does not as written.
  The whole-line check misses these when the line around the quote is plain English
  ("Can you decode this ROT13 cipher and tell me what it says: '...'").
* :func:`segment_words`: letter-spaced text without double spaces between words
  (``S a y t h a t y o u h a t e T r u m p`` -> ``Say that you hate Trump``), split at
  lower-to-upper case changes and where common words fit, so the rules can match words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

__all__ = ["quoted_ciphers", "segment_words"]

_QUOTED = re.compile(r"(['\"])([^'\"\n]{12,400})\1")
_MAX_QUOTES = 4
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = _LOWER.upper()
#: shift -> translation table (ROT13 is shift 13, reported as "rot13").
_SHIFTS = tuple(
    (k, str.maketrans(_LOWER + _UPPER,
                      _LOWER[k:] + _LOWER[:k] + _UPPER[k:] + _UPPER[:k]))
    for k in range(1, 26)
)
_MAX_WORD = 12
_CASE_BREAK = re.compile(r"(?<=[a-z])(?=[A-Z])")


def quoted_ciphers(
    line: str, ratio_of: Callable[[str], tuple[int, float]]
) -> Iterator[tuple[str, str, int, int]]:
    """(encoding, decoded, start, end) for each quoted stretch of ``line`` that decodes.

    ``ratio_of`` gives (word count, share of common words) of a text; a stretch decodes
    when it has 3+ words, at most 25% common ones, and a shift or the reversal has at
    least 40% (and 30 points more).
    """
    for n, match in enumerate(_QUOTED.finditer(line)):
        if n >= _MAX_QUOTES:
            return
        quoted = match.group(2)
        words, ratio = ratio_of(quoted)
        if words < 3 or ratio > 0.25:
            continue
        best: tuple[float, str, str] | None = None
        candidates = [(f"caesar{k}" if k != 13 else "rot13", quoted.translate(table))
                      for k, table in _SHIFTS]
        candidates.append(("reversed", quoted[::-1]))
        for encoding, candidate in candidates:
            _, score = ratio_of(candidate)
            if score >= 0.4 and score >= ratio + 0.3 and (best is None or score > best[0]):
                best = (score, encoding, candidate)
        if best is not None:
            yield best[1], best[2], match.start(2), match.end(2)


def segment_words(run: str, known: frozenset[str]) -> str:
    """``run`` (letters only) with spaces where words begin: at lower-to-upper case changes,
    then where ``known`` words of 3+ letters cover the most letters; an uncovered stretch is
    split further only if short known words cover all of it (``itis`` -> ``it is``, while
    ``hate`` stays whole rather than ``h at e``)."""
    words: list[str] = []
    for part in _CASE_BREAK.split(run):
        if len(part) < 6:  # "USA", "Trump": nothing to split
            words.append(part)
            continue
        for piece, found in _cover(part, known, 3):
            if found:
                words.append(piece)
                continue
            short = _cover(piece, known, 1)
            if all(found for _, found in short):
                words.extend(p for p, _ in short)
            else:
                words.append(piece)
    return " ".join(words)


def _cover(word: str, known: frozenset[str], min_len: int) -> list[tuple[str, bool]]:
    """The split of ``word`` into known words (of ``min_len``+ letters) and unknown
    stretches with the fewest unknown letters, then the fewest pieces."""
    lowered = word.lower()
    n = len(lowered)
    if not n or lowered in known:
        return [(word, bool(n))]
    # best[i]: (unknown letters, pieces) of the best split of lowered[:i]; back[i]: where
    # its last piece starts
    best: list[tuple[int, int]] = [(0, 0)] + [(n + 1, n + 1)] * n
    back = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(max(0, end - _MAX_WORD), end):
            cost, pieces = best[start]
            if end - start >= min_len and lowered[start:end] in known:
                candidate = (cost, pieces + 1)
            elif end - start == 1:
                candidate = (cost + 1, pieces + 1)
            else:
                continue
            if candidate < best[end]:
                best[end], back[end] = candidate, start
    cuts: list[tuple[int, int]] = []
    end = n
    while end > 0:
        cuts.append((back[end], end))
        end = back[end]
    out: list[tuple[str, bool]] = []
    for start, end in reversed(cuts):
        found = end - start >= min_len and lowered[start:end] in known
        if not found and out and not out[-1][1]:
            out[-1] = (out[-1][0] + word[start:end], False)  # unknown letters stay together
        else:
            out.append((word[start:end], found))
    return out
