"""The metric instruments of the proxy, created once from a Meter.

GenAI client metrics follow the semantic conventions (names, units, attributes and the
recommended bucket boundaries). The ``llmtrace.*`` family is the operational set that
users of the seed system chart; through the Prometheus reader they appear as
``llmtrace_requests_total``, ``llmtrace_request_duration_seconds``,
``llmtrace_tokens_total``, ``llmtrace_active_connections``,
``llmtrace_upstream_errors_total`` and ``llmtrace_telemetry_dropped_total``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_TOKEN_TYPE,
    GenAiTokenTypeValues,
)
from opentelemetry.semconv._incubating.metrics.gen_ai_metrics import (
    GEN_AI_CLIENT_OPERATION_DURATION,
    GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK,
    GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
    GEN_AI_CLIENT_TOKEN_USAGE,
)

from llmtrace_otel.providers.types import Usage
from llmtrace_otel.telemetry.histograms import HistogramFactory, SdkHistograms
from llmtrace_otel.telemetry.latest_metrics import (
    GENAI_LABELS,
    OPTIONAL_GENAI_LABELS,
    LatestGenAiMetrics,
)
from llmtrace_otel.telemetry.provider_health import ProviderHealth, is_upstream_failure
from llmtrace_processors.labels import BoundedLabels
from llmtrace_processors.totals import CounterTotals

__all__ = [
    "DURATION_BUCKETS",
    "TIME_PER_CHUNK_BUCKETS",
    "TIME_TO_FIRST_CHUNK_BUCKETS",
    "TOKEN_BUCKETS",
    "CallOutcome",
    "ProxyInstruments",
]

# Semconv-recommended ExplicitBucketBoundaries.
TOKEN_BUCKETS: Sequence[float] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
DURATION_BUCKETS: Sequence[float] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
TIME_TO_FIRST_CHUNK_BUCKETS: Sequence[float] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
TIME_PER_CHUNK_BUCKETS: Sequence[float] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)
# The operational latency histogram covers fast failures and long streams alike.
_REQUEST_DURATION_BUCKETS: Sequence[float] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
)

# Label keys of the llmtrace.* family (Prometheus-friendly, as the seed system had them).
_PROVIDER = "provider"
_MODEL = "model"
_STATUS_CODE = "status_code"
_DIRECTION = "direction"
_ERROR_TYPE = "error_type"
_OPERATION = "operation"


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """Everything the metrics need about one finished proxied call."""

    provider: str
    operation: str | None
    request_model: str | None
    response_model: str | None
    server_address: str
    server_port: int
    status_code: int
    duration_s: float
    error_type: str | None = None
    usage: Usage | None = None
    time_to_first_chunk_s: float | None = None
    chunk_intervals_s: Sequence[float] = ()


class ProxyInstruments:
    """Creates the instruments once; :meth:`record` is called once per call.

    ``model_cap`` bounds the model label values of every metric (spans keep the real
    names); ``provider_health`` is fed the outcome of every call. With ``genai_latest``
    (``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``) the GenAI client metrics
    are the latest conventions' (``latest_metrics.py``) instead of the four below; the
    ``llmtrace.*`` family is the same either way.

    Histograms come from ``histograms``: pre-aggregated ones
    (:class:`~llmtrace_otel.telemetry.metric_sources.LocalHistograms`, what the assembly
    passes when every reader merges them), else the SDK's own on ``meter``.
    """

    def __init__(
        self,
        meter: Meter,
        *,
        model_cap: BoundedLabels | None = None,
        provider_health: ProviderHealth | None = None,
        genai_latest: bool = False,
        histograms: HistogramFactory | None = None,
    ) -> None:
        self._meter = meter
        histograms = histograms if histograms is not None else SdkHistograms(meter)
        #: The latest GenAI conventions on spans (the recorder asks) and metrics.
        self.genai_latest = genai_latest
        self._latest = LatestGenAiMetrics(
            meter, histograms, duration_buckets=tuple(DURATION_BUCKETS),
            token_buckets=tuple(TOKEN_BUCKETS)) if genai_latest else None
        self._cap = model_cap if model_cap is not None else BoundedLabels(200)
        self.provider_health = provider_health if provider_health is not None else (
            ProviderHealth())
        self.provider_health.observe_with(meter)
        if self._latest is None:  # the previous GenAI client metrics (the default)
            self._operation_duration = histograms.histogram(
                GEN_AI_CLIENT_OPERATION_DURATION, unit="s",
                description="GenAI operation duration.", bounds=DURATION_BUCKETS,
                labels=GENAI_LABELS, optional=OPTIONAL_GENAI_LABELS,
            )
            self._token_usage = histograms.histogram(
                GEN_AI_CLIENT_TOKEN_USAGE, unit="{token}",
                description="Number of input and output tokens used.", bounds=TOKEN_BUCKETS,
                labels=(*GENAI_LABELS, GEN_AI_TOKEN_TYPE), optional=OPTIONAL_GENAI_LABELS,
            )
            self._ttfc = histograms.histogram(
                GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK, unit="s",
                description="Time to receive the first chunk of a streamed response.",
                bounds=TIME_TO_FIRST_CHUNK_BUCKETS,
                labels=GENAI_LABELS, optional=OPTIONAL_GENAI_LABELS,
            )
            self._time_per_chunk = histograms.histogram(
                GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK, unit="s",
                description="Time between consecutive chunks after the first.",
                bounds=TIME_PER_CHUNK_BUCKETS,
                labels=GENAI_LABELS, optional=OPTIONAL_GENAI_LABELS,
            )
        # Counters are pre-aggregated totals (processors/totals.py): a synchronous
        # Counter.add costs ~70k instructions per call in the SDK.
        self._requests = CounterTotals(
            meter, "llmtrace.requests", labels=(_PROVIDER, _MODEL, _STATUS_CODE),
            unit="{request}", description="Proxied requests by outcome.",
        )
        self._request_duration = histograms.histogram(
            "llmtrace.request.duration", unit="s",
            description="Proxied request duration, first byte in to last byte out.",
            bounds=_REQUEST_DURATION_BUCKETS, labels=(_PROVIDER, _MODEL, _STATUS_CODE),
        )
        self._tokens = CounterTotals(
            meter, "llmtrace.tokens", labels=(_DIRECTION, _PROVIDER, _MODEL), unit="{token}",
            description="Tokens reported by the upstream.",
        )
        self._upstream_errors = CounterTotals(
            meter, "llmtrace.upstream_errors", labels=(_PROVIDER, _ERROR_TYPE), unit="{error}",
            description="Upstream failures: unreachable, timeout, reset, or an error status.",
        )
        self._cache_tokens = CounterTotals(
            meter, "llmtrace.prompt_cache.tokens", labels=(_PROVIDER, _MODEL, _OPERATION),
            unit="{token}",
            description="Input tokens read from (operation=read) or written to "
            "(operation=write) the provider's prompt cache.",
        )
        self._storage = CounterTotals(
            meter, "llmtrace.storage.operations", labels=(_OPERATION, "status"),
            unit="{operation}",
            description="Operations on the SQLite span store (open, write, read) by status.",
        )
        self._dropped = CounterTotals(
            meter, "llmtrace.telemetry.dropped", labels=("stage", "reason"), unit="{span}",
            description="Telemetry dropped or degraded instead of delaying traffic.",
        )

    def observe_active_connections(self, current: Callable[[], int]) -> None:
        """Report ``current()`` as ``llmtrace_active_connections`` at each collection.

        Observed at collection time rather than counted per request: two fewer
        measurements on the request path, and the value cannot drift.
        """

        def callback(options: CallbackOptions) -> Iterable[Observation]:
            yield Observation(current())

        self._meter.create_observable_up_down_counter(
            "llmtrace.active_connections", callbacks=[callback], unit="{connection}",
            description="Requests currently being proxied.",
        )

    def count_storage(self, operation: str, status: str) -> None:
        """One SQLite operation (open, write, read) and how it ended (ok, error)."""
        self._storage.add(1, (operation, status))

    def count_drop(self, stage: str, reason: str) -> None:
        self._dropped.add(1, (stage, reason))

    def count_upstream_error(self, provider: str, error_type: str) -> None:
        self._upstream_errors.add(1, (provider, error_type))

    def record(self, outcome: CallOutcome) -> None:
        self.provider_health.record(
            outcome.provider, is_upstream_failure(outcome.status_code, outcome.error_type))
        cap = self._cap
        model = cap(outcome.request_model or "")
        operational = (outcome.provider, model, str(outcome.status_code))
        self._requests.add(1, operational)
        self._request_duration.record(outcome.duration_s, operational)
        if outcome.operation is None:
            return  # not an LLM call: no GenAI metrics
        genai = (  # GENAI_LABELS; "": the call has no such attribute
            outcome.operation, outcome.provider, outcome.server_address, outcome.server_port,
            model if outcome.request_model else "",
            cap(outcome.response_model) if outcome.response_model else "",
            outcome.error_type or "")
        usage = outcome.usage
        if self._latest is not None:
            self._latest.record(outcome.operation, genai, outcome.duration_s,
                                outcome.time_to_first_chunk_s, outcome.chunk_intervals_s, usage)
            self._operational_tokens(outcome, model)
            return
        self._operation_duration.record(outcome.duration_s, genai)
        if outcome.time_to_first_chunk_s is not None:
            self._ttfc.record(outcome.time_to_first_chunk_s, genai)
        for interval in outcome.chunk_intervals_s:
            self._time_per_chunk.record(interval, genai)
        if usage is not None:
            for token_type, count in (
                (GenAiTokenTypeValues.INPUT.value, usage.input_tokens),
                (GenAiTokenTypeValues.OUTPUT.value, usage.output_tokens),
            ):
                if count is not None:
                    self._token_usage.record(count, (*genai, token_type))
        self._operational_tokens(outcome, model)

    def _operational_tokens(self, outcome: CallOutcome, model: str) -> None:
        """``llmtrace_tokens_total`` and ``llmtrace_prompt_cache_tokens_total``."""
        usage = outcome.usage
        if usage is None:
            return
        for direction, count in (("input", usage.input_tokens), ("output", usage.output_tokens)):
            if count is not None:
                self._tokens.add(count, (direction, outcome.provider, model))
        # Cache-hit ratio = read / input tokens (input includes cached tokens everywhere).
        if usage.cache_read_input_tokens:
            self._cache_tokens.add(usage.cache_read_input_tokens,
                                   (outcome.provider, model, "read"))
        if usage.cache_creation_input_tokens:
            self._cache_tokens.add(usage.cache_creation_input_tokens,
                                   (outcome.provider, model, "write"))
