"""One value, one finding: keep the strongest of overlapping candidates.

A number can look like a phone number and an SSN; ``OPENAI_API_KEY=sk-proj-...`` is a
generic credential assignment and an OpenAI key. Detectors collect every candidate and
keep, of each group of overlapping ones, the most confident (the longer on a tie).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from typing import Protocol, TypeVar

__all__ = ["Spanned", "keep_strongest"]


class Spanned(Protocol):
    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...

    @property
    def confidence(self) -> float: ...


_S = TypeVar("_S", bound=Spanned)


def keep_strongest(candidates: Iterable[_S]) -> list[_S]:
    """Non-overlapping candidates, most confident first to be kept, ordered by start.

    O(n log n): kept spans never overlap, so a candidate only needs checking against its
    neighbours in start order.
    """
    ordered = sorted(candidates, key=lambda c: (-c.confidence, c.start - c.end, c.start))
    starts: list[int] = []
    kept: list[_S] = []
    for candidate in ordered:
        i = bisect_right(starts, candidate.start)
        if i and kept[i - 1].end > candidate.start:
            continue
        if i < len(kept) and kept[i].start < candidate.end:
            continue
        starts.insert(i, candidate.start)
        kept.insert(i, candidate)
    return kept
