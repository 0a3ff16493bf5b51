"""Security findings as ``gen_ai.evaluation.result`` events, so that GenAI-aware backends (the
latest GenAI semantic conventions' evaluation event) show them beside other evaluations.

With ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` the security processor adds,
to the ``llmtrace.security.finding`` events it always writes (the store, viewer and API read
those):

- one evaluation named ``llmtrace.security`` for every analysed span: ``score.value`` the span's
  0-100 score, ``score.label`` ``flagged`` or ``clean``;
- one per reported finding (the same ones, at most ``MAX_FINDING_EVENTS``): ``name`` the finding
  type, ``score.value`` its confidence (0-1), ``score.label`` its severity, ``explanation`` the
  detector's message (the same text as the finding event's, never the matched value).

Each carries ``gen_ai.response.id`` when the span has one, as the conventions recommend for
correlating an evaluation with its response.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from opentelemetry.sdk.trace import Event
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_EVALUATION_EXPLANATION,
    GEN_AI_EVALUATION_NAME,
    GEN_AI_EVALUATION_SCORE_LABEL,
    GEN_AI_EVALUATION_SCORE_VALUE,
    GEN_AI_RESPONSE_ID,
)
from opentelemetry.util.types import AttributeValue

from llmtrace_processors.genai_latest import GEN_AI_EVALUATION_RESULT_EVENT
from llmtrace_processors.security.findings import Finding

__all__ = ["SECURITY_EVALUATION", "evaluation_events"]

#: ``gen_ai.evaluation.name`` of the span-level result.
SECURITY_EVALUATION: Final = "llmtrace.security"


def evaluation_events(score: float, findings: Sequence[Finding],
                      span_attributes: Mapping[str, AttributeValue],
                      timestamp: int | None) -> list[Event]:
    """The span's evaluation, then one per finding (most severe first, as given)."""
    common: dict[str, AttributeValue] = {}
    response_id = span_attributes.get(GEN_AI_RESPONSE_ID)
    if isinstance(response_id, str):
        common[GEN_AI_RESPONSE_ID] = response_id
    events = [Event(GEN_AI_EVALUATION_RESULT_EVENT, {
        GEN_AI_EVALUATION_NAME: SECURITY_EVALUATION,
        GEN_AI_EVALUATION_SCORE_VALUE: float(score),
        GEN_AI_EVALUATION_SCORE_LABEL: "flagged" if findings else "clean",
        **common,
    }, timestamp)]
    for finding in findings:
        attributes: dict[str, AttributeValue] = {
            GEN_AI_EVALUATION_NAME: finding.finding_type,
            GEN_AI_EVALUATION_SCORE_VALUE: float(finding.confidence),
            GEN_AI_EVALUATION_SCORE_LABEL: finding.severity.label,
            **common,
        }
        if finding.message:
            attributes[GEN_AI_EVALUATION_EXPLANATION] = finding.message
        events.append(Event(GEN_AI_EVALUATION_RESULT_EVENT, attributes, timestamp))
    return events
