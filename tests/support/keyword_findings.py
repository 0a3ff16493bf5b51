"""A minimal real security enricher for read-side tests: it flags a fixed keyword.

The project's security processor (issue 4) emits ``llmtrace.security.finding`` span events and
``llmtrace.security.score``; until it lands, read-side tests need spans with that shape coming
through the real pipeline. This processor reads the captured input messages (it declares
``needs_content``, as a real detector does), and for every occurrence of ``keyword`` in the
text of the user messages emits one finding event with type, severity, confidence, side,
detector, start/end offsets (into that side's text parts joined with ``\\n``) and evidence.
"""

from __future__ import annotations

import json

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GEN_AI_INPUT_MESSAGES

from llmtrace_processors.attributes import (
    LLMTRACE_SECURITY_FINDING_EVENT,
    LLMTRACE_SECURITY_MAX_SEVERITY,
    LLMTRACE_SECURITY_SCORE,
)
from llmtrace_processors.chain import EnrichingSpanProcessor, Enrichment

__all__ = ["SCORE", "KeywordFindings"]

#: The llmtrace.security.score (0-100) of a flagged span.
SCORE = 72.0


class KeywordFindings(EnrichingSpanProcessor):
    stage = "keyword_findings"
    needs_content = True

    def __init__(self, keyword: str, *, finding_type: str = "prompt_injection",
                 severity: str = "high") -> None:
        super().__init__()
        self.keyword = keyword
        self.finding_type = finding_type
        self.severity = severity

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        raw = (span.attributes or {}).get(GEN_AI_INPUT_MESSAGES)
        if not isinstance(raw, str):
            return None
        texts = [
            part.get("content", "")
            for message in json.loads(raw)
            for part in message.get("parts", ())
            if part.get("type") == "text"
        ]
        text = "\n".join(texts)
        events = []
        at = text.find(self.keyword)
        while at >= 0:
            events.append(
                Event(
                    LLMTRACE_SECURITY_FINDING_EVENT,
                    {
                        "type": self.finding_type,
                        "severity": self.severity,
                        "confidence": 0.9,
                        "side": "input",
                        "detector": "keyword",
                        "start": at,
                        "end": at + len(self.keyword),
                        "evidence": self.keyword,
                    },
                    timestamp=span.end_time,
                )
            )
            at = text.find(self.keyword, at + 1)
        if not events:
            return None
        # The 0-100 score and the summary attributes of the real security processor.
        return Enrichment(attributes={LLMTRACE_SECURITY_SCORE: SCORE,
                                      LLMTRACE_SECURITY_MAX_SEVERITY: self.severity},
                          events=events)
