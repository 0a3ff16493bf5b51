"""Names of the latest GenAI semantic conventions (open-telemetry/semantic-conventions-genai)
that ``opentelemetry-semantic-conventions`` 0.66b2 does not ship yet, spelled once.

They are what the project emits with ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``
(the switch the GenAI conventions define; default output keeps the previous names). Read from
the repository's YAML and migration guide (``docs/gen-ai/non-normative/migration.md``:
cache_creation -> cache_write #440, inference metrics under ``gen_ai.client.inference.*`` #521,
``gen_ai.client.token.usage`` replaced by usage counters with ``gen_ai.token.modality`` #374;
``client-embeddings.md`` for the embeddings metrics). Names the package already has
(``gen_ai.evaluation.*``, ``gen_ai.tool.definitions``) come from the package.

Used by ``llmtrace_otel`` (spans, metrics, store) and by the processors (cost reads either
cache name; security findings as ``gen_ai.evaluation.result`` events).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "GENAI_LATEST_OPT_IN",
    "GEN_AI_CLIENT_EMBEDDINGS_DURATION",
    "GEN_AI_CLIENT_EMBEDDINGS_OPERATION_INPUT_TOKENS",
    "GEN_AI_CLIENT_INFERENCE_DURATION",
    "GEN_AI_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS",
    "GEN_AI_CLIENT_INFERENCE_OPERATION_OUTPUT_TOKENS",
    "GEN_AI_CLIENT_INFERENCE_TIME_PER_OUTPUT_CHUNK",
    "GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK",
    "GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS",
    "GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS",
    "GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS",
    "GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS",
    "GEN_AI_CLIENT_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS",
    "GEN_AI_EVALUATION_RESULT_EVENT",
    "GEN_AI_TOKEN_MODALITY",
    "GEN_AI_TOKEN_MODALITY_UNKNOWN",
    "GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS",
    "INFERENCE_OPERATIONS",
    "LATEST_CHUNK_BUCKETS",
    "OPT_IN_ENV",
    "genai_latest",
]

#: The environment variable of the OTel semconv stability opt-in (a comma-separated list).
OPT_IN_ENV: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
#: Its value that asks for the latest experimental GenAI conventions.
GENAI_LATEST_OPT_IN: Final = "gen_ai_latest_experimental"

# Span attributes.
#: Replaces ``gen_ai.usage.cache_creation.input_tokens`` (#440).
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
#: The attribute of the usage counters (``text``, ``image``, ``audio``, ``unknown``).
GEN_AI_TOKEN_MODALITY: Final = "gen_ai.token.modality"
#: The modality when the provider does not break usage down by modality (every API we relay).
GEN_AI_TOKEN_MODALITY_UNKNOWN: Final = "unknown"

# Events.
#: One evaluation of a response (``gen_ai.evaluation.name``, ``.score.value``, ``.score.label``,
#: ``.explanation``): security findings are reported as such too.
GEN_AI_EVALUATION_RESULT_EVENT: Final = "gen_ai.evaluation.result"

# Metrics (client-inference.md, gen-ai-token-metrics.md, client-embeddings.md).
#: Operations whose metrics are the inference ones (the rest keep gen_ai.client.operation.*).
INFERENCE_OPERATIONS: Final = frozenset({"chat", "text_completion", "generate_content"})
GEN_AI_CLIENT_INFERENCE_DURATION: Final = "gen_ai.client.inference.duration"
GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.inference.time_to_first_chunk"
GEN_AI_CLIENT_INFERENCE_TIME_PER_OUTPUT_CHUNK: Final = (
    "gen_ai.client.inference.time_per_output_chunk")
GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.input_tokens"
GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS: Final = "gen_ai.client.inference.usage.output_tokens"
GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS: Final = (
    "gen_ai.client.inference.usage.cache_read.input_tokens")
GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = (
    "gen_ai.client.inference.usage.cache_write.input_tokens")
GEN_AI_CLIENT_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS: Final = (
    "gen_ai.client.inference.usage.reasoning.output_tokens")
GEN_AI_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS: Final = (
    "gen_ai.client.inference.operation.input_tokens")
GEN_AI_CLIENT_INFERENCE_OPERATION_OUTPUT_TOKENS: Final = (
    "gen_ai.client.inference.operation.output_tokens")
GEN_AI_CLIENT_EMBEDDINGS_DURATION: Final = "gen_ai.client.embeddings.duration"
GEN_AI_CLIENT_EMBEDDINGS_OPERATION_INPUT_TOKENS: Final = (
    "gen_ai.client.embeddings.operation.input_tokens")
#: The recommended buckets of the latest time-to-first-chunk and time-per-output-chunk
#: histograms (the duration ones: 0.01 s doubling to 81.92 s).
LATEST_CHUNK_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)


def genai_latest(opt_in: str | None) -> bool:
    """Whether an ``OTEL_SEMCONV_STABILITY_OPT_IN`` value asks for the latest GenAI names."""
    return GENAI_LATEST_OPT_IN in {part.strip() for part in (opt_in or "").split(",")}
