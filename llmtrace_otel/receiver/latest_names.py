"""What the receiver stores and forwards with the latest GenAI conventions switched on.

The dialect normalisation (``dialects/``) gives every received span one vocabulary: the
GenAI names the proxy emits by default. With ``OTEL_SEMCONV_STABILITY_OPT_IN=
gen_ai_latest_experimental`` the proxy emits the latest names instead, and so must the
receiver: :func:`emit_latest_genai_names` wraps the normaliser so that a received span leaves
it with the latest names, whatever the sender used. The one span attribute renamed in the
latest conventions is ``gen_ai.usage.cache_creation.input_tokens`` ->
``gen_ai.usage.cache_write.input_tokens`` (the latest key wins when a span has both).
Received message content is left as sent (its per-message ``finish_reason``, deprecated in
the latest conventions, included).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import Event
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
)

from llmtrace_otel.receiver.decode import Normaliser
from llmtrace_processors.genai_latest import GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS

__all__ = ["emit_latest_genai_names"]

#: Previous name -> latest name, for the span attributes the latest conventions renamed.
_RENAMED = {GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS}


def emit_latest_genai_names(normalise: Normaliser) -> Normaliser:
    """``normalise``, then the previous GenAI names renamed to the latest ones."""

    def latest(attributes: dict[str, Any], events: list[Event], *, start_ns: int
               ) -> tuple[dict[str, Any], list[Event]] | None:
        result = normalise(attributes, events, start_ns=start_ns)
        current, current_events = result if result is not None else (attributes, events)
        if _RENAMED.keys().isdisjoint(current):
            return result
        renamed = dict(current)  # the received mapping is never modified
        for previous, name in _RENAMED.items():
            if previous in renamed:
                value = renamed.pop(previous)
                renamed.setdefault(name, value)
        return renamed, list(current_events)

    return latest
