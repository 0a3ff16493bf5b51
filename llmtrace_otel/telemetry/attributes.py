"""Mapping of a parsed LLM call to GenAI semantic-convention span attributes.

Keys come from ``opentelemetry.semconv`` (and ``llmtrace_processors.genai_latest`` for the
latest names it does not ship yet); this module is the only place that decides which
attribute a request or response field becomes. ``latest=True``
(``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``) writes the latest names:
``gen_ai.usage.cache_write.input_tokens`` instead of ``...cache_creation.input_tokens``.
"""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_EMBEDDINGS_DIMENSION_COUNT,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_CHOICE_COUNT,
    GEN_AI_REQUEST_ENCODING_FORMATS,
    GEN_AI_REQUEST_FREQUENCY_PENALTY,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_PRESENCE_PENALTY,
    GEN_AI_REQUEST_SEED,
    GEN_AI_REQUEST_STOP_SEQUENCES,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_K,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)
from opentelemetry.semconv._incubating.attributes.openai_attributes import (
    OPENAI_RESPONSE_SERVICE_TIER,
    OPENAI_RESPONSE_SYSTEM_FINGERPRINT,
)
from opentelemetry.util.types import AttributeValue

from llmtrace_otel.providers.types import LLMRequest, LLMResponse, Operation, Usage
from llmtrace_processors.genai_latest import GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS

__all__ = ["request_attributes", "response_attributes", "span_name", "usage_attributes"]

Attributes = dict[str, AttributeValue]


def span_name(operation: Operation | str, model: str | None) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``, or the operation alone."""
    op = operation.value if isinstance(operation, Operation) else operation
    return f"{op} {model}" if model else op


def request_attributes(request: LLMRequest, provider: str) -> Attributes:
    attrs: Attributes = {
        GEN_AI_OPERATION_NAME: request.operation.value,
        GEN_AI_PROVIDER_NAME: provider,
    }
    if request.model is not None:
        attrs[GEN_AI_REQUEST_MODEL] = request.model
    if request.operation is not Operation.EMBEDDINGS:
        attrs[GEN_AI_REQUEST_STREAM] = request.stream
    optional: tuple[tuple[str, AttributeValue | None], ...] = (
        (GEN_AI_REQUEST_TEMPERATURE, request.temperature),
        (GEN_AI_REQUEST_TOP_P, request.top_p),
        (GEN_AI_REQUEST_TOP_K, request.top_k),
        (GEN_AI_REQUEST_MAX_TOKENS, request.max_tokens),
        (GEN_AI_REQUEST_SEED, request.seed),
        (GEN_AI_REQUEST_FREQUENCY_PENALTY, request.frequency_penalty),
        (GEN_AI_REQUEST_PRESENCE_PENALTY, request.presence_penalty),
        (GEN_AI_REQUEST_CHOICE_COUNT, request.choice_count),
    )
    for key, value in optional:
        if value is not None:
            attrs[key] = value
    if request.stop_sequences:
        attrs[GEN_AI_REQUEST_STOP_SEQUENCES] = request.stop_sequences
    if request.encoding_formats:
        attrs[GEN_AI_REQUEST_ENCODING_FORMATS] = request.encoding_formats
    return attrs


def usage_attributes(usage: Usage, *, latest: bool = False) -> Attributes:
    attrs: Attributes = {}
    cache_write = (GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS if latest
                   else GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)
    fields: tuple[tuple[str, int | None], ...] = (
        (GEN_AI_USAGE_INPUT_TOKENS, usage.input_tokens),
        (GEN_AI_USAGE_OUTPUT_TOKENS, usage.output_tokens),
        (GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, usage.cache_read_input_tokens),
        (cache_write, usage.cache_creation_input_tokens),
        (GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, usage.reasoning_output_tokens),
    )
    for key, value in fields:
        if value is not None:
            attrs[key] = value
    return attrs


def response_attributes(response: LLMResponse, *, latest: bool = False) -> Attributes:
    attrs: Attributes = {}
    if response.id is not None:
        attrs[GEN_AI_RESPONSE_ID] = response.id
    if response.model is not None:
        attrs[GEN_AI_RESPONSE_MODEL] = response.model
    if response.finish_reasons:
        attrs[GEN_AI_RESPONSE_FINISH_REASONS] = response.finish_reasons
    if response.usage is not None:
        attrs.update(usage_attributes(response.usage, latest=latest))
    if response.embedding_dimensions is not None:
        attrs[GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = response.embedding_dimensions
    if response.service_tier is not None:
        attrs[OPENAI_RESPONSE_SERVICE_TIER] = response.service_tier
    if response.system_fingerprint is not None:
        attrs[OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = response.system_fingerprint
    return attrs
