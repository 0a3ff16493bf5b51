"""The GenAI client metrics of the latest semantic conventions (semantic-conventions-genai),
recorded instead of the previous ones with
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``.

Per call (``chat``, ``text_completion``, ``generate_content`` are *inference* operations):

- ``gen_ai.client.operation.duration`` becomes ``gen_ai.client.inference.duration``;
  embeddings: ``gen_ai.client.embeddings.duration``; other operations keep the old name;
- ``gen_ai.client.operation.time_to_first_chunk`` / ``time_per_output_chunk`` become
  ``gen_ai.client.inference.time_to_first_chunk`` / ``time_per_output_chunk``;
- ``gen_ai.client.token.usage`` (a histogram by ``gen_ai.token.type``) is replaced by the
  counters ``gen_ai.client.inference.usage.{input_tokens, output_tokens,
  cache_read.input_tokens, cache_write.input_tokens, reasoning.output_tokens}`` (by
  ``gen_ai.token.modality``) and the histograms
  ``gen_ai.client.inference.operation.{input,output}_tokens``; embeddings:
  ``gen_ai.client.embeddings.operation.input_tokens``.

The usage counters are recorded for every inference call, failed ones included, with 0 when
the provider reported no usage (as the conventions ask), under ``gen_ai.token.modality =
unknown``: no API we relay breaks usage down by modality. The per-operation histograms are
recorded only with reported usage (the conventions: otherwise MUST NOT report usage).
Counters are pre-aggregated totals (``processors/totals.py``), like the proxy's others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from opentelemetry.metrics import Meter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
)
from opentelemetry.semconv._incubating.metrics.gen_ai_metrics import (
    GEN_AI_CLIENT_OPERATION_DURATION,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT

from llmtrace_otel.providers.types import Usage
from llmtrace_otel.telemetry.histograms import HistogramFactory, HistogramRecorder
from llmtrace_processors.genai_latest import (
    GEN_AI_CLIENT_EMBEDDINGS_DURATION,
    GEN_AI_CLIENT_EMBEDDINGS_OPERATION_INPUT_TOKENS,
    GEN_AI_CLIENT_INFERENCE_DURATION,
    GEN_AI_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS,
    GEN_AI_CLIENT_INFERENCE_OPERATION_OUTPUT_TOKENS,
    GEN_AI_CLIENT_INFERENCE_TIME_PER_OUTPUT_CHUNK,
    GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK,
    GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS,
    GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS,
    GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS,
    GEN_AI_CLIENT_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS,
    GEN_AI_TOKEN_MODALITY,
    GEN_AI_TOKEN_MODALITY_UNKNOWN,
    INFERENCE_OPERATIONS,
    LATEST_CHUNK_BUCKETS,
)
from llmtrace_processors.totals import CounterTotals

__all__ = ["GENAI_LABELS", "OPTIONAL_GENAI_LABELS", "LatestGenAiMetrics"]

#: The attributes of the GenAI client histograms (both conventions), in the order of the
#: label values the instruments record (token usage adds ``gen_ai.token.type``).
GENAI_LABELS: Final = (GEN_AI_OPERATION_NAME, GEN_AI_PROVIDER_NAME, SERVER_ADDRESS, SERVER_PORT,
                       GEN_AI_REQUEST_MODEL, GEN_AI_RESPONSE_MODEL, ERROR_TYPE)
#: Left out of a series when the call has none ("").
OPTIONAL_GENAI_LABELS: Final = frozenset({GEN_AI_REQUEST_MODEL, GEN_AI_RESPONSE_MODEL, ERROR_TYPE})
_ERROR = GENAI_LABELS.index(ERROR_TYPE)

_EMBEDDINGS = "embeddings"
#: Label keys of the usage counters, in the order of their values.
_USAGE_LABELS = (GEN_AI_OPERATION_NAME, GEN_AI_PROVIDER_NAME, GEN_AI_REQUEST_MODEL,
                 GEN_AI_RESPONSE_MODEL, SERVER_ADDRESS, SERVER_PORT, GEN_AI_TOKEN_MODALITY)
#: Where each of the usage counters' labels (but the modality) is in GENAI_LABELS.
_USAGE_FROM_GENAI = tuple(GENAI_LABELS.index(key) for key in _USAGE_LABELS[:-1])


class LatestGenAiMetrics:
    """Creates the latest instruments once; :meth:`record` once per call."""

    def __init__(self, meter: Meter, histograms: HistogramFactory, *,
                 duration_buckets: tuple[float, ...], token_buckets: tuple[float, ...]) -> None:
        def histogram(name: str, unit: str, description: str,
                      buckets: tuple[float, ...]) -> HistogramRecorder:
            return histograms.histogram(name, unit=unit, description=description,
                                        bounds=buckets, labels=GENAI_LABELS,
                                        optional=OPTIONAL_GENAI_LABELS)

        self._duration = {
            "inference": histogram(GEN_AI_CLIENT_INFERENCE_DURATION, "s",
                                   "GenAI client inference operation duration.",
                                   duration_buckets),
            _EMBEDDINGS: histogram(GEN_AI_CLIENT_EMBEDDINGS_DURATION, "s",
                                   "GenAI client embeddings operation duration.",
                                   duration_buckets),
            "other": histogram(GEN_AI_CLIENT_OPERATION_DURATION, "s",
                               "GenAI operation duration.", duration_buckets),
        }
        self._ttfc = histogram(GEN_AI_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK, "s",
                               "Time to receive the first chunk of a streamed response.",
                               LATEST_CHUNK_BUCKETS)
        self._time_per_chunk = histogram(GEN_AI_CLIENT_INFERENCE_TIME_PER_OUTPUT_CHUNK, "s",
                                         "Time between consecutive chunks after the first.",
                                         LATEST_CHUNK_BUCKETS)
        self._input_per_call = histogram(GEN_AI_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS,
                                         "{token}", "Input tokens per inference operation.",
                                         token_buckets)
        self._output_per_call = histogram(GEN_AI_CLIENT_INFERENCE_OPERATION_OUTPUT_TOKENS,
                                          "{token}", "Output tokens per inference operation.",
                                          token_buckets)
        self._embedding_input = histogram(GEN_AI_CLIENT_EMBEDDINGS_OPERATION_INPUT_TOKENS,
                                          "{token}", "Input tokens per embeddings operation.",
                                          token_buckets)

        def counter(name: str, description: str) -> CounterTotals:
            return CounterTotals(meter, name, labels=_USAGE_LABELS, unit="{token}",
                                 description=description, omit_empty=True)

        self._usage = (
            counter(GEN_AI_CLIENT_INFERENCE_USAGE_INPUT_TOKENS,
                    "Input tokens used, including cached tokens."),
            counter(GEN_AI_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS,
                    "Output tokens used, including reasoning tokens."),
            counter(GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS,
                    "Input tokens served from a provider-managed cache."),
            counter(GEN_AI_CLIENT_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS,
                    "Input tokens written to a provider-managed cache."),
            counter(GEN_AI_CLIENT_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS,
                    "Output tokens used for reasoning."),
        )

    def record(self, operation: str, attributes: tuple[str | int, ...],
               duration_s: float, ttfc_s: float | None, chunk_intervals_s: Sequence[float],
               usage: Usage | None) -> None:
        """One call; ``attributes`` are the values of :data:`GENAI_LABELS` (``error.type``
        on failure, "" for an attribute the call has not), model names already capped."""
        inference = operation in INFERENCE_OPERATIONS
        kind = "inference" if inference else operation if operation == _EMBEDDINGS else "other"
        self._duration[kind].record(duration_s, attributes)
        if not inference:
            if kind == _EMBEDDINGS and usage is not None and usage.input_tokens is not None:
                self._embedding_input.record(usage.input_tokens, attributes)
            return
        # the streaming histograms are not recorded by outcome: without error.type
        streaming = (*attributes[:_ERROR], "", *attributes[_ERROR + 1:])
        if ttfc_s is not None:
            self._ttfc.record(ttfc_s, streaming)
        for interval in chunk_intervals_s:
            self._time_per_chunk.record(interval, streaming)
        if usage is not None:
            if usage.input_tokens is not None:
                self._input_per_call.record(usage.input_tokens, attributes)
            if usage.output_tokens is not None:
                self._output_per_call.record(usage.output_tokens, attributes)
        labels: tuple[str | int, ...] = tuple(
            attributes[i] for i in _USAGE_FROM_GENAI) + (GEN_AI_TOKEN_MODALITY_UNKNOWN,)
        counts = (0, 0, 0, 0, 0) if usage is None else (
            usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
            usage.cache_creation_input_tokens, usage.reasoning_output_tokens)
        for counter, count in zip(self._usage, counts, strict=True):
            counter.add(count or 0, labels)
