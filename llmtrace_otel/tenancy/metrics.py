"""The tenancy metric instruments (Prometheus names in docs/telemetry.md).

Every ``tenant`` label goes through one shared :class:`~processors.labels.BoundedLabels`,
so the first ``tenancy.metric_tenants`` tenants have their own series and the rest share
``_other``. Counters are :class:`~processors.totals.CounterTotals` (plain
totals reported at collection): some are counted on every call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Final

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from llmtrace_otel.telemetry.metrics_merge import GaugeMerge
from llmtrace_processors.totals import CounterTotals

__all__ = ["BUDGET_LIMIT_METRIC", "BUDGET_SPEND_METRIC", "GAUGE_MERGE", "TenancyInstruments"]

BUDGET_SPEND_METRIC = "llmtrace.budget.spend_usd"
BUDGET_LIMIT_METRIC = "llmtrace.budget.limit_usd"
#: How the budget gauges of several worker processes combine
#: (:func:`~llmtrace_otel.telemetry.metrics_merge.merge_metrics_data`): the state is shared
#: (Redis), so every worker reports the same value; summing would multiply it.
GAUGE_MERGE: Final[Mapping[str, GaugeMerge]] = MappingProxyType({
    BUDGET_SPEND_METRIC: GaugeMerge.MAX,
    BUDGET_LIMIT_METRIC: GaugeMerge.MAX,
})


class TenancyInstruments:
    def __init__(self, meter: Meter, tenant_label: Callable[[str], str]) -> None:
        self.tenant_label = tenant_label
        self._meter = meter

        def counter(name: str, labels: tuple[str, ...], unit: str,
                    description: str) -> CounterTotals:
            return CounterTotals(meter, name, labels=labels, unit=unit, description=description)

        self._rate_limited = counter(
            "llmtrace.rate_limited", ("tenant", "limit"), "{request}",
            "Calls refused with 429 by a tenant's rate limit.")
        self._budget_exceeded = counter(
            "llmtrace.budget.exceeded", ("tenant", "window", "scope"), "{request}",
            "Calls refused with 429 because a hard budget is spent.")
        self._degraded = counter(
            "llmtrace.limits.degraded", ("backend", "operation"), "{operation}",
            "Limit/budget operations that could not reach the state backend.")
        self._requests = counter(
            "llmtrace.tenant.requests", ("tenant", "status_code"), "{request}",
            "Calls per tenant.")
        self._tokens = counter(
            "llmtrace.tenant.tokens", ("tenant", "direction"), "{token}",
            "Tokens reported by the upstream, per tenant.")
        self._alerts = counter(
            "llmtrace.alerts", ("kind", "severity", "outcome"), "{alert}",
            "Alerts raised, or suppressed by the cool-down.")
        self._deliveries = counter(
            "llmtrace.alert.deliveries", ("channel", "outcome"), "{delivery}",
            "Alert deliveries per channel: sent, retried, failed, queue_full.")

    def observe_budgets(self, current: Callable[[], Iterable[tuple[str, str, float, float]]]
                        ) -> None:
        """``llmtrace_budget_spend_usd`` and ``llmtrace_budget_limit_usd`` gauges
        ({tenant, window}) from ``current()``: (tenant, window, spend, limit) rows, read
        at collection time. Tenants past the label cap are left out (a gauge summed
        into ``_other`` would mean nothing)."""

        def rows() -> list[tuple[dict[str, str], float, float]]:
            out = []
            for tenant, window, spend, limit in current():
                label = self.tenant_label(tenant)
                if label == tenant:
                    out.append(({"tenant": tenant, "window": window}, spend, limit))
            return out

        def spend(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(value, labels) for labels, value, _ in rows()]

        def limit(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(value, labels) for labels, _, value in rows()]

        self._meter.create_observable_gauge(
            BUDGET_SPEND_METRIC, callbacks=[spend], unit="{USD}",
            description="Spend in the current budget window (windows with a limit).")
        self._meter.create_observable_gauge(
            BUDGET_LIMIT_METRIC, callbacks=[limit], unit="{USD}",
            description="The window's hard limit (its soft limit when it has no hard one).")

    def rate_limited(self, tenant: str, limit: str) -> None:
        self._rate_limited.add(1, (self.tenant_label(tenant), limit))

    def budget_exceeded(self, tenant: str, window: str, scope: str) -> None:
        self._budget_exceeded.add(1, (self.tenant_label(tenant), window, scope))

    def degraded(self, backend: str, operation: str) -> None:
        self._degraded.add(1, (backend, operation))

    def request(self, tenant: str, status_code: int) -> None:
        self._requests.add(1, (self.tenant_label(tenant), str(status_code)))

    def tokens(self, tenant: str, direction: str, count: int) -> None:
        self._tokens.add(count, (self.tenant_label(tenant), direction))

    def alert(self, kind: str, severity: str, outcome: str) -> None:
        self._alerts.add(1, (kind, severity, outcome))

    def delivery(self, channel: str, outcome: str) -> None:
        self._deliveries.add(1, (channel, outcome))
