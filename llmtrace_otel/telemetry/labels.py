"""Bounded metric label values.

Model names come from client requests and upstream responses, so a client can send any
number of them. Every metric label that carries one goes through a :class:`ValueCap`: the
values of an allow-list (when configured) or the first ``max_values`` distinct values seen
pass through; everything else is reported as :data:`OTHER`. Spans always keep the real
value; only metric series are bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

__all__ = ["OTHER", "ValueCap"]

#: The label value that stands for every value beyond the cap.
OTHER = "_other"


class ValueCap:
    """Maps label values onto a bounded set. Thread-safe; the common case takes no lock."""

    __slots__ = ("_allow", "_lock", "_max", "_seen")

    def __init__(self, max_values: int, allow: Iterable[str] = ()) -> None:
        if max_values < 0:
            raise ValueError(f"max_values must be >= 0, got {max_values}")
        self._allow = frozenset(allow)
        self._max = max_values
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        """Distinct values that can appear besides :data:`OTHER`."""
        return len(self._allow) if self._allow else self._max

    def __call__(self, value: str) -> str:
        if self._allow:
            return value if value in self._allow else OTHER
        seen = self._seen
        if value in seen or value == "":
            return value
        with self._lock:
            if value in seen:
                return value
            if len(seen) >= self._max:
                return OTHER
            seen.add(value)
        return value
