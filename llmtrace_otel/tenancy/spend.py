"""SpendRecorder: reads each GenAI span's cost at the end of the chain and records it.

A stage of the chain after ``CostProcessor``, so it sees the span the exporters see:
``llmtrace.cost.usd`` when the model has a price. A span with token usage but no cost is
recorded as an *unpriced* call; a span without usage (a refused or failed call) costs
nothing and is skipped. It adds nothing to the span.

Where the spend goes is a :class:`SpendSink`: the :class:`BudgetTracker` of this process, or,
with relay workers (``server.workers``), the telemetry process's link to a worker, whose
tracker records it (budgets are enforced where requests are admitted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.types import AttributeValue

from llmtrace_otel.tenancy.budgets import SpendEvent
from llmtrace_processors.attributes import LLMTRACE_AGENT_ID, LLMTRACE_COST_USD, LLMTRACE_TENANT_ID
from llmtrace_processors.chain import EnrichingSpanProcessor, Enrichment
from llmtrace_processors.cost import read_usage

__all__ = ["SpendRecorder", "SpendSink"]


class SpendSink(Protocol):
    """Takes the spend of a call; callable from any thread, never blocks."""

    def submit(self, event: SpendEvent) -> None: ...


def _text(attributes: Mapping[str, AttributeValue], key: str) -> str | None:
    value = attributes.get(key)
    return value if isinstance(value, str) and value else None


class SpendRecorder(EnrichingSpanProcessor):
    stage = "budgets"
    #: Spend that is not recorded is budget that is not enforced: never bypassed.
    bypassable = False

    def __init__(self, tracker: SpendSink, default_tenant: str) -> None:
        super().__init__()
        self._tracker = tracker
        self._default = default_tenant

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        attributes = span.attributes or {}
        if read_usage(attributes) is None:
            return None
        cost = attributes.get(LLMTRACE_COST_USD)
        usd = float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) \
            else None
        self._tracker.submit(SpendEvent(
            tenant=_text(attributes, LLMTRACE_TENANT_ID) or self._default,
            agent=_text(attributes, LLMTRACE_AGENT_ID),
            usd=usd,
        ))
        return None
