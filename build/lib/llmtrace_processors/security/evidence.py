"""Redacted evidence for findings: enough to recognise a value, never the value itself.

A :class:`~processors.security.findings.Finding` is exported (span events, SQLite,
OTLP), so its ``evidence`` must be safe to store. These helpers keep the shape of a
value and at most a few of its characters:

- :func:`mask_digits` keeps separators and the last ``keep`` digits (``****-****-****-1234``);
- :func:`mask_email` keeps the first character of the local part and the domain;
- :func:`mask_secret` keeps a known, non-secret prefix (``ghp_``, ``AKIA``), two characters
  after it and the length;
- :func:`excerpt` shortens a matched phrase, masking URL query values and long key-like
  tokens (injection evidence).
"""

from __future__ import annotations

import re

__all__ = ["excerpt", "mask_digits", "mask_email", "mask_middle", "mask_secret"]

_MASK = "*"
_SECRETISH = re.compile(r"(?=[A-Za-z0-9+/_=-]*\d)[A-Za-z0-9+/_=-]{16,}")
_QUERY_VALUE = re.compile(r"=([^&)\s]+)")


def excerpt(text: str, limit: int = 80) -> str:
    """A short, exportable excerpt: folded, truncated, long tokens and URL values masked."""
    text = " ".join(text.split())
    text = _QUERY_VALUE.sub("=…", text)
    text = _SECRETISH.sub(lambda m: m.group()[:4] + "…", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mask_digits(value: str, keep: int = 4) -> str:
    """Mask every digit and letter except the last ``keep`` alphanumerics."""
    total = sum(1 for char in value if char.isalnum())
    keep = min(keep, total // 3)  # never reveal more than a third of a value
    seen = 0
    out: list[str] = []
    for char in value:
        if char.isalnum():
            seen += 1
            out.append(char if seen > total - keep else _MASK)
        else:
            out.append(char)
    return "".join(out)


def mask_email(value: str) -> str:
    """``jane.doe@example.com`` -> ``j***@example.com``."""
    local, _, domain = value.rpartition("@")
    if not local:
        return _MASK * 3
    return f"{local[0]}{_MASK * 3}@{domain}"


def mask_middle(value: str, keep_start: int, keep_end: int) -> str:
    """Keep ``keep_start`` leading and ``keep_end`` trailing characters (capped to a third)."""
    third = len(value) // 3
    keep_start, keep_end = min(keep_start, third), min(keep_end, third)
    hidden = len(value) - keep_start - keep_end
    return f"{value[:keep_start]}{_MASK * min(hidden, 8)}{value[len(value) - keep_end :]}"


def mask_secret(value: str, prefix: str = "", *, shown: int = 2) -> str:
    """``ghp_abcdef...`` -> ``ghp_ab…[40 chars]``: prefix, ``shown`` characters, the length.

    The characters are shown only when at least 12 follow the prefix (random tokens);
    pass ``shown=0`` for human-chosen values such as passwords.
    """
    if prefix and not value.startswith(prefix):
        prefix = ""
    rest = value[len(prefix) :]
    visible = rest[:shown] if len(rest) >= 12 else ""
    return f"{prefix}{visible}…[{len(value)} chars]"
