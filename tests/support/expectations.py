"""What a GenAI span must look like, whichever front door produced it.

Shared by the proxy tests and (later) the SDK-instrumentation and receiver tests, so the
three front doors are held to one expectation.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fake_upstream import MODEL_SUFFIX, TokenUsage


def expected_usage(provider: str, usage: TokenUsage) -> dict[str, int]:
    """Semconv usage attributes for the fake's usage (input is the total, cache included)."""
    if provider == "anthropic":
        total_input = usage.input_tokens + usage.cached_tokens + usage.cache_creation_tokens
    else:
        total_input = usage.input_tokens
    out = {
        genai.GEN_AI_USAGE_INPUT_TOKENS: total_input,
        genai.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
    }
    if usage.cached_tokens:
        out[genai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_tokens
    if usage.cache_creation_tokens:
        out[genai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_creation_tokens
    if usage.reasoning_tokens:
        out[genai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
    return out


def assert_genai_span(
    span: ReadableSpan,
    *,
    operation: str,
    provider: str,
    model: str,
    usage: dict[str, int] | None = None,
    stream: bool | None = None,
    finish_reasons: Sequence[str] | None = None,
    response_model: str | None = None,
    error_type: str | None = None,
) -> None:
    attrs = dict(span.attributes or {})
    assert span.name == f"{operation} {model}", span.name
    assert span.kind is SpanKind.CLIENT
    assert attrs[genai.GEN_AI_OPERATION_NAME] == operation
    assert attrs[genai.GEN_AI_PROVIDER_NAME] == provider
    assert attrs[genai.GEN_AI_REQUEST_MODEL] == model
    if stream is not None:
        assert attrs[genai.GEN_AI_REQUEST_STREAM] is stream
    if error_type is None:
        assert span.status.status_code is not StatusCode.ERROR, attrs.get(ERROR_TYPE)
        assert attrs.get(genai.GEN_AI_RESPONSE_MODEL) == (response_model or model + MODEL_SUFFIX)
        assert attrs.get(genai.GEN_AI_RESPONSE_ID)
    else:
        assert span.status.status_code is StatusCode.ERROR
        assert attrs[ERROR_TYPE] == error_type
    if usage is not None:
        got = {k: v for k, v in attrs.items() if k.startswith("gen_ai.usage.")}
        assert got == usage
    if finish_reasons is not None:
        assert tuple(attrs[genai.GEN_AI_RESPONSE_FINISH_REASONS]) == tuple(finish_reasons)
    if stream:
        ttfc = attrs[genai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
        assert isinstance(ttfc, float) and 0 < ttfc < 30


def metric_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample in a Prometheus text exposition."""
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``; fails if none."""
    matching = [value for sample, got, value in metric_samples(text)
                if sample == name and all(got.get(k) == v for k, v in labels.items())]
    assert matching, f"no sample {name}{labels} in the metrics"
    return sum(matching)
