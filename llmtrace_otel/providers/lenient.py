"""A best-effort reading of an LLM request body that its API's strict parser refused.

The adapters parse exactly what each API documents, and a body off that shape (``"n":
1.5``, a message with ``"name": 7``) is relayed unparsed with the problem noted on the
span. The upstream may still accept it, and read its text. A request-path security check
that skipped such a body could be talked around by one malformed field, so it reads the
body here instead: every string of the JSON object except those of fields that are not
text for the model (model name, roles, ids, enums, ...), as plain text parts in one user
message. It over-reads rather than under-reads, which is the side a security check errs
on; it is never used for telemetry (the span keeps the strict result and its problem).
"""

from __future__ import annotations

from typing import Any

from llmtrace_otel.providers._json import loads
from llmtrace_otel.providers.types import ChatMessage, LLMRequest, Operation, TextPart

__all__ = ["lenient_request"]

# Fields whose strings are not text the model reads as instructions or content.
_NOT_TEXT = frozenset({
    "model", "role", "type", "id", "tool_call_id", "call_id", "tool_choice", "user",
    "service_tier", "modalities", "voice", "format", "response_format", "reasoning_effort",
    "encoding_format", "media_type", "mime_type", "detail", "url", "image_url", "file_id",
    "previous_response_id", "truncation", "stop", "stop_sequences", "metadata",
})
_MAX_STRINGS = 10_000


def lenient_request(body: bytes) -> LLMRequest | None:
    """The texts of ``body`` as a request of one user message; None if it is not a JSON
    object, or holds no text."""
    try:
        data = loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    texts: list[str] = []
    stack: list[Any] = [data]
    while stack and len(texts) < _MAX_STRINGS:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(item for key, item in value.items() if key not in _NOT_TEXT)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and value.strip():
            texts.append(value)
    if not texts:
        return None
    texts.reverse()  # the order they appear in the body
    model = data.get("model")
    return LLMRequest(
        operation=Operation.CHAT, model=model if isinstance(model, str) else None,
        input_messages=(ChatMessage("user", tuple(TextPart(text) for text in texts)),))
