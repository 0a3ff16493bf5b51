"""CostProcessor: prices GenAI spans from their semconv usage attributes.

Adds ``llmtrace.cost.*`` attributes to the exported copy of each priced span and counts
the spend in a metric. Prices come from a :class:`~processors.cost.prices.PriceTable`
(built-in and dated, or the user's); nothing is fetched at run time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from opentelemetry.metrics import MeterProvider, get_meter
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_SYSTEM,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_COMPLETION_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_PROMPT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)
from opentelemetry.util.types import AttributeValue

from llmtrace_processors.attributes import (
    LLMTRACE_COST_CACHE_CREATION_USD,
    LLMTRACE_COST_CACHE_READ_USD,
    LLMTRACE_COST_INPUT_USD,
    LLMTRACE_COST_OUTPUT_USD,
    LLMTRACE_COST_PRICING_MODEL,
    LLMTRACE_COST_USD,
    LLMTRACE_TENANT_ID,
)
from llmtrace_processors.chain import DropCounter, EnrichingSpanProcessor, Enrichment
from llmtrace_processors.cost.prices import PriceTable, ResolvedPrice, TokenUsage
from llmtrace_processors.genai_latest import GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS
from llmtrace_processors.totals import CounterTotals

__all__ = [
    "COST_METRIC",
    "COST_METRIC_UNIT",
    "DEFAULT_TENANT",
    "UNPRICED_METRIC",
    "CostProcessor",
    "read_usage",
]

_log = logging.getLogger(__name__)

#: Counter of spend. The Prometheus exporter drops the ``{USD}`` annotation, so the
#: series is ``llmtrace_cost_usd_total`` (and stays so through a Collector).
COST_METRIC = "llmtrace.cost.usd"
COST_METRIC_UNIT = "{USD}"
#: Counter of GenAI spans with usage whose model has no price (``provider`` label).
UNPRICED_METRIC = "llmtrace.cost.unpriced"
#: Tenant label when a span carries no ``llmtrace.tenant.id``.
DEFAULT_TENANT = "default"
_UNKNOWN_PROVIDER = "unknown"

_METER_NAME = "processors.cost"


def _token_count(attributes: Mapping[str, AttributeValue], *keys: str) -> int | None:
    """The first usable count among ``keys``: an int (or integral float) >= 0."""
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and value >= 0:
            return value
    return None


def read_usage(attributes: Mapping[str, AttributeValue]) -> TokenUsage | None:
    """Semconv usage of a span, or None when it reports neither input nor output tokens.

    Legacy ``gen_ai.usage.prompt_tokens``/``completion_tokens`` are read when the
    current keys are absent. Malformed counts (negative, non-integer) count as absent.
    """
    input_tokens = _token_count(attributes, GEN_AI_USAGE_INPUT_TOKENS, GEN_AI_USAGE_PROMPT_TOKENS)
    output_tokens = _token_count(
        attributes, GEN_AI_USAGE_OUTPUT_TOKENS, GEN_AI_USAGE_COMPLETION_TOKENS
    )
    if input_tokens is None and output_tokens is None:
        return None
    return TokenUsage(
        input_tokens=input_tokens or 0,
        output_tokens=output_tokens or 0,
        cache_read_input_tokens=_token_count(attributes, GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) or 0,
        cache_creation_input_tokens=_token_count(  # the latest name, or the previous one
            attributes, GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
            GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        )
        or 0,
        reasoning_output_tokens=_token_count(attributes, GEN_AI_USAGE_REASONING_OUTPUT_TOKENS) or 0,
    )


def _string(attributes: Mapping[str, AttributeValue], *keys: str) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


class CostProcessor(EnrichingSpanProcessor):
    """Adds ``llmtrace.cost.*`` to GenAI spans that report token usage.

    * Model: ``gen_ai.response.model`` (what was billed), else ``gen_ai.request.model``.
    * No usage attributes: the span passes unchanged (no cost is not a cost of 0).
    * Unknown model: the span passes unchanged and ``llmtrace.cost.unpriced`` counts it.
    * A span that already carries ``llmtrace.cost.usd`` (priced upstream, e.g. received
      over OTLP from another llmtrace instance) is neither re-priced nor counted again.

    Spend is counted in ``llmtrace.cost.usd`` (``{USD}``) with labels ``tenant``
    (``llmtrace.tenant.id`` of the span, else of its resource, else ``"default"``) and
    ``model`` (the price-table entry,
    so its cardinality is bounded by the table). ``tenant_label`` caps the tenant label's
    cardinality (``processors.labels.BoundedLabels``).
    """

    stage = "cost"

    def __init__(
        self,
        next_processor: SpanProcessor | None = None,
        *,
        prices: PriceTable | None = None,
        meter_provider: MeterProvider | None = None,
        on_drop: DropCounter | None = None,
        tenant_label: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(next_processor, on_drop=on_drop)
        self.prices = prices if prices is not None else PriceTable.builtin()
        #: Maps a tenant id to its metric label (e.g. a processors.labels.BoundedLabels).
        self._tenant_label = tenant_label
        meter = get_meter(_METER_NAME, meter_provider=meter_provider)
        # Pre-aggregated (processors/totals.py): a synchronous Counter.add per span costs
        # ~70,000 instructions in the SDK.
        self._spend = CounterTotals(
            meter, COST_METRIC, labels=("tenant", "model"), unit=COST_METRIC_UNIT,
            description="Cost of GenAI calls at list prices.",
        )
        self._unpriced = CounterTotals(
            meter, UNPRICED_METRIC, labels=("provider",), unit="{span}",
            description="GenAI spans with token usage whose model has no known price.",
        )

    def price(self, attributes: Mapping[str, AttributeValue]) -> ResolvedPrice | None:
        """The price entry for a span's model (response model first, then request)."""
        provider = _string(attributes, GEN_AI_PROVIDER_NAME, GEN_AI_SYSTEM)
        seen: set[str] = set()
        for key in (GEN_AI_RESPONSE_MODEL, GEN_AI_REQUEST_MODEL):
            model = _string(attributes, key)
            if model is None or model in seen:
                continue
            seen.add(model)
            resolved = self.prices.resolve(model, provider)
            if resolved is not None:
                return resolved
        return None

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        attributes = span.attributes or {}
        if LLMTRACE_COST_USD in attributes:
            return None
        usage = read_usage(attributes)
        if usage is None:
            return None
        resolved = self.price(attributes)
        if resolved is None:
            provider = _string(attributes, GEN_AI_PROVIDER_NAME, GEN_AI_SYSTEM)
            self._unpriced.add(1, (provider or _UNKNOWN_PROVIDER,))
            _log.debug(
                "no price for model %r (provider %r)",
                _string(attributes, GEN_AI_RESPONSE_MODEL, GEN_AI_REQUEST_MODEL),
                provider,
            )
            return None
        cost = resolved.cost(usage)
        tenant = (
            _string(attributes, LLMTRACE_TENANT_ID)
            or _string(span.resource.attributes, LLMTRACE_TENANT_ID)
            or DEFAULT_TENANT
        )
        total = cost.total_usd
        label = self._tenant_label(tenant) if self._tenant_label is not None else tenant
        self._spend.add(total, (label, resolved.model))
        return Enrichment(
            attributes={
                LLMTRACE_COST_USD: total,
                LLMTRACE_COST_INPUT_USD: cost.input_usd,
                LLMTRACE_COST_CACHE_READ_USD: cost.cache_read_usd,
                LLMTRACE_COST_CACHE_CREATION_USD: cost.cache_creation_usd,
                LLMTRACE_COST_OUTPUT_USD: cost.output_usd,
                LLMTRACE_COST_PRICING_MODEL: resolved.model,
            }
        )
