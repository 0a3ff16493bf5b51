"""The upstream's own error message, made fit for a span's status description.

An upstream that answers 429 or 5xx says why in its error body ("Rate limit reached for
gpt-4o-mini in organization org-... on requests per min (RPM): Limit 3, Used 3, Requested 1.
Please try again in 20s."); ``error.type`` only keeps its class. The message goes on the span
as the status description (where OTel puts an error's human-readable detail; the store keeps it
as ``status_message``, the viewer shows it), after:

- whitespace runs (newlines, tabs, control characters) become one space;
- secrets are replaced by ``[SECRET:<KIND>]`` placeholders (the security detectors' secret
  rules: API keys, tokens, credentials in URLs or assignments), since some upstreams echo part
  of the key they refused;
- it is cut to :data:`MAX_CHARS` characters (with ``…``).
"""

from __future__ import annotations

from typing import Final

from llmtrace_processors.security.redaction import redact_text
from llmtrace_processors.security.secrets import detect_secrets

__all__ = ["MAX_CHARS", "status_description"]

#: Longest status description kept (the text of a long error body rarely adds anything).
MAX_CHARS: Final = 512


def status_description(message: str) -> str:
    """``message`` on one line, without secrets, at most :data:`MAX_CHARS` characters."""
    # Only the start is read (a body may be megabytes): what is kept comes from it even after
    # the placeholders have shortened it.
    head = message[: MAX_CHARS * 8]
    text = " ".join("".join(c if c.isprintable() else " " for c in head).split())
    redacted = redact_text(text, detect_secrets(text))
    if redacted is not None:
        text = redacted.text
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS - 1].rstrip() + "…"
    return text
