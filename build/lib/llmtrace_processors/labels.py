"""Bounded metric label values: the first N distinct values keep their name, later ones
share one ``_other`` series.

Tenant ids and model names come from clients (a header, a hash of an API key, a request
body), so a metric labelled with them could grow without bound. :class:`BoundedLabels`
admits values first come, first served until its limit, or only those of an allow-list,
and maps the rest to :data:`OTHER_LABEL`; it is thread-safe (the proxy's event loop and the
analysis worker share one instance, so every metric agrees on which values have their own
series). Spans always keep the real value; only metric series are bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Final

__all__ = ["OTHER_LABEL", "BoundedLabels"]

#: The label value shared by every value past the limit.
OTHER_LABEL: Final = "_other"


class BoundedLabels:
    """Maps label values to themselves (the first ``limit`` distinct ones) or ``_other``.

    ``limit`` 0 sends every value to ``_other`` (the label carries no information). A
    non-empty ``allow`` list replaces the first-come rule: exactly its values pass.
    """

    __slots__ = ("_allow", "_limit", "_lock", "_seen")

    def __init__(self, limit: int, allow: Iterable[str] = ()) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self._allow = frozenset(allow)
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        return len(self._allow) if self._allow else self._limit

    def __len__(self) -> int:
        return len(self._seen)

    def __call__(self, value: str) -> str:
        if self._allow:
            return value if value in self._allow else OTHER_LABEL
        if value in self._seen:  # the common case, lock-free (set reads are atomic)
            return value
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return OTHER_LABEL
