"""JSON text from untrusted places (span attributes, tool arguments, tokens in prompts).

``json.loads`` fails with a ``ValueError`` on malformed text, but with a
``RecursionError`` on text nested deeper than the interpreter's recursion limit
(``[[[[...`` a few thousand deep, or a JWT whose header is that, inside a prompt). Code that
reads such text catches ``ValueError``; a ``RecursionError`` got past it and took the whole
analysis of the span down with it. :func:`loads` makes every failure a ``ValueError``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads"]


def loads(text: str | bytes | bytearray) -> Any:
    """``json.loads`` whose every failure is a ``ValueError`` (deep nesting included)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
