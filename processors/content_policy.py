"""The last step of the chain: strip message content the user did not opt in to export.

Producers may put content on GenAI spans so that in-process analysis (security, PII) can
see it; this processor removes it from what exporters receive unless capture is enabled
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``), the semconv opt-in. The duplicate
span of a call (``llmtrace.call.duplicate_of``) never keeps content: it was not analysed
(nor redacted), and its twin, which was, holds the call's content.

With ``require_redaction`` (``security.pii_export: redact``) content is exported only from
spans the security stage redacted (they carry ``llmtrace.security.redacted``). A span it
skipped (open breaker, stalled, failed) keeps its content out of the exports instead:
``llmtrace.content.withheld = "not_redacted"`` says so, and each is counted
(``llmtrace_telemetry_dropped_total{stage="content_policy",reason="unredacted_content"}``).
Redaction fails closed.
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

from llmtrace_processors.attributes import (
    LLMTRACE_CALL_DUPLICATE_OF,
    LLMTRACE_CONTENT_WITHHELD,
    LLMTRACE_SECURITY_REDACTED,
)
from llmtrace_processors.chain import DropCounter, EnrichingSpanProcessor, Enrichment, is_genai_span

__all__ = ["CONTENT_ATTRIBUTES", "ContentPolicyProcessor"]

_NOT_REDACTED = "not_redacted"

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
        require_redaction: bool = False,
        on_drop: DropCounter | None = None,
    ) -> None:
        super().__init__(next_processor, on_drop=on_drop)
        self.capture_content = capture_content
        self.require_redaction = require_redaction

    def applies_to(self, span: ReadableSpan) -> bool:
        return is_genai_span(span)  # duplicates too

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        attributes = span.attributes or {}
        duplicate = LLMTRACE_CALL_DUPLICATE_OF in attributes
        if self.capture_content and not duplicate and not (
                self.require_redaction and LLMTRACE_SECURITY_REDACTED not in attributes):
            return None
        keys = attributes.keys()
        # This runs for every GenAI span: a C-level set intersection for the named keys,
        # and one comprehension (no generator frames) for the indexed ones.
        remove = CONTENT_ATTRIBUTES.intersection(keys).union(
            [key for key in keys if key.startswith(_CONTENT_PREFIXES)])
        if not remove:
            return None
        if not self.capture_content or duplicate:
            return Enrichment(remove=remove)
        self._on_drop(self.stage, "unredacted_content")  # fail closed: withheld, counted
        return Enrichment(attributes={LLMTRACE_CONTENT_WITHHELD: _NOT_REDACTED}, remove=remove)
