"""An offset-preserving, NFKC-folded view of a text for pattern detectors.

Pattern detectors (PII, secrets) must report offsets into the text they were *given*, so
that a redactor can cut exactly that span out of the exported copy. Yet a number written
with full-width digits (``４５３２ …``), a key split by a zero-width space or a phone number
with a Unicode dash should still be found. :func:`text_view` builds a scanning copy in
which every character is NFKC-folded, format characters (zero-width, bidi controls, soft
hyphen) are removed and Unicode dashes become ``-``, together with a map from each
position of the copy back to the original text.

ASCII text (the common case) and text that is already NFKC with no format characters
are returned as-is with no map, so the view costs one ``isascii`` or one
``is_normalized`` call.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["TextView", "text_view"]

# Format characters that hide inside tokens (category Cf) and dashes NFKC leaves alone.
_NEEDS_FOLD = re.compile(
    r"[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    r"\u2066-\u206f\ufeff\u2010-\u2015\u2212\ufe58\ufe63\uff0d]"
)
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d")


@dataclass(frozen=True, slots=True)
class TextView:
    """``text`` is what detectors scan; :meth:`span` maps its offsets to the original."""

    text: str
    original: str
    #: ``index_map[i]`` is the original index of ``text[i]``; ``None`` means identity.
    index_map: tuple[int, ...] | None = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original ``(start, end)`` of the scanned ``text[start:end]`` (end exclusive)."""
        if self.index_map is None:
            return start, end
        if end <= start:
            pos = self.index_map[start] if start < len(self.index_map) else len(self.original)
            return pos, pos
        return self.index_map[start], self.index_map[end - 1] + 1


def text_view(text: str) -> TextView:
    """Fold ``text`` for scanning; cheap when there is nothing to fold."""
    if text.isascii() or (
        unicodedata.is_normalized("NFKC", text) and _NEEDS_FOLD.search(text) is None
    ):
        return TextView(text, text)
    pieces: list[str] = []
    index: list[int] = []
    done = 0
    for run in _NON_ASCII.finditer(text):
        start = run.start()
        pieces.append(text[done:start])
        index.extend(range(done, start))
        for i in range(start, run.end()):
            char = text[i]
            if char in _DASHES:
                folded = "-"
            elif unicodedata.category(char) == "Cf":
                continue
            else:
                folded = unicodedata.normalize("NFKC", char)
            pieces.append(folded)
            index.extend([i] * len(folded))
        done = run.end()
    pieces.append(text[done:])
    index.extend(range(done, len(text)))
    return TextView("".join(pieces), text, tuple(index))
