"""The last step of the chain: strip message content the user did not opt in to export.

Producers may put content on GenAI spans so that in-process analysis (security, PII) can
see it; this processor removes it from what exporters receive unless capture is enabled
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``), the semconv opt-in.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_COMPLETION,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROMPT,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_DEFINITIONS,
)

from llmtrace_processors.chain import DropCounter, EnrichingSpanProcessor, Enrichment

__all__ = ["CONTENT_ATTRIBUTES", "ContentPolicyProcessor"]

#: Attributes that carry message content, current and legacy names.
CONTENT_ATTRIBUTES: frozenset[str] = frozenset(
    {
        GEN_AI_INPUT_MESSAGES,
        GEN_AI_OUTPUT_MESSAGES,
        GEN_AI_SYSTEM_INSTRUCTIONS,
        GEN_AI_TOOL_DEFINITIONS,
        GEN_AI_TOOL_CALL_ARGUMENTS,
        GEN_AI_TOOL_CALL_RESULT,
        GEN_AI_PROMPT,
        GEN_AI_COMPLETION,
    }
)
# OpenLLMetry-style indexed keys: gen_ai.prompt.0.content, gen_ai.completion.0.content
_CONTENT_PREFIXES = (GEN_AI_PROMPT + ".", GEN_AI_COMPLETION + ".")


class ContentPolicyProcessor(EnrichingSpanProcessor):
    """Removes content attributes unless ``capture_content`` is true."""

    stage = "content_policy"
    #: What keeps un-opted-in content out of the exports: never bypassed.
    bypassable = False

    def __init__(
        self,
        next_processor: SpanProcessor | None = None,
        *,
        capture_content: bool = False,
        on_drop: DropCounter | None = None,
    ) -> None:
        super().__init__(next_processor, on_drop=on_drop)
        self.capture_content = capture_content

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        if self.capture_content:
            return None
        keys = (span.attributes or {}).keys()
        # This runs for every GenAI span: a C-level set intersection for the named keys,
        # and one comprehension (no generator frames) for the indexed ones.
        remove = CONTENT_ATTRIBUTES.intersection(keys).union(
            [key for key in keys if key.startswith(_CONTENT_PREFIXES)])
        return Enrichment(remove=remove) if remove else None
