"""Findings of recently seen texts, so repeated texts are analysed once.

System instructions, tool definitions and the earlier turns of a conversation come back on
every call of that conversation; the security processor (and the proxy's request guard)
look them up here instead of running the detectors again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from llmtrace_processors.security.detectors import Detector, ScanContext
from llmtrace_processors.security.findings import Finding
from llmtrace_processors.security.segments import Segment

__all__ = ["DEFAULT_CACHE_SIZE", "MAX_CACHED_CHARS", "FindingsCache"]

#: Remembered (detector, text, context) results; 0 turns the cache off.
DEFAULT_CACHE_SIZE = 512
#: Longer texts (with their system prompt) are analysed every time, never kept.
MAX_CACHED_CHARS = 16_384


class FindingsCache:
    """Least-recently-used map (detector, side, source, system prompt, text) -> findings.

    Holds at most ``size * MAX_CACHED_CHARS`` characters of keys. Findings are frozen, so
    a cached tuple is shared safely. Thread-safe.
    """

    __slots__ = ("_entries", "_lock", "_size")

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        if size < 0:
            raise ValueError(f"cache_size must be >= 0, got {size}")
        self._size = size
        self._entries: OrderedDict[tuple[object, ...], tuple[Finding, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def detect(
        self, detector: Detector, segment: Segment, context: ScanContext
    ) -> tuple[Finding, ...]:
        """``detector.detect(segment, context)``, from the cache when seen before."""
        prompt = context.system_prompt or ""
        if not self._size or len(segment.text) + len(prompt) > MAX_CACHED_CHARS:
            return tuple(detector.detect(segment, context))
        # id(): detectors need not be hashable, and the owner keeps them alive
        key = (id(detector), segment.side, segment.source, prompt, segment.text)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
        found = tuple(detector.detect(segment, context))
        with self._lock:
            self._entries[key] = found
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return found
