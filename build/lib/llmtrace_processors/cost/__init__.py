"""Cost analysis: price GenAI spans from their token usage.

Add :class:`CostProcessor` to an enrichment chain (``processors.chain.build_chain``);
prices come from the dated built-in :class:`PriceTable`, optionally overridden by a
file (ours or LiteLLM's). See docs/pricing.md.
"""

from __future__ import annotations

from llmtrace_processors.cost.prices import (
    CostBreakdown,
    ModelPrice,
    PriceFileError,
    PriceTable,
    ResolvedPrice,
    TokenUsage,
    load_price_table,
)
from llmtrace_processors.cost.processor import (
    COST_METRIC,
    COST_METRIC_UNIT,
    UNPRICED_METRIC,
    CostProcessor,
    read_usage,
)

__all__ = [
    "COST_METRIC",
    "COST_METRIC_UNIT",
    "UNPRICED_METRIC",
    "CostBreakdown",
    "CostProcessor",
    "ModelPrice",
    "PriceFileError",
    "PriceTable",
    "ResolvedPrice",
    "TokenUsage",
    "load_price_table",
    "read_usage",
]
