"""The tenancy metric instruments (Prometheus names in docs/telemetry.md).

Every ``tenant`` label goes through one shared :class:`~processors.labels.BoundedLabels`,
so the first ``tenancy.metric_tenants`` tenants have their own series and the rest share
``_other``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = ["TenancyInstruments"]


class TenancyInstruments:
    def __init__(self, meter: Meter, tenant_label: Callable[[str], str]) -> None:
        self.tenant_label = tenant_label
        self._meter = meter
        self._rate_limited = meter.create_counter(
            "llmtrace.rate_limited", unit="{request}",
            description="Calls refused with 429 by a tenant's rate limit.")
        self._budget_exceeded = meter.create_counter(
            "llmtrace.budget.exceeded", unit="{request}",
            description="Calls refused with 429 because a hard budget is spent.")
        self._degraded = meter.create_counter(
            "llmtrace.limits.degraded", unit="{operation}",
            description="Limit/budget operations that could not reach the state backend.")
        self._requests = meter.create_counter(
            "llmtrace.tenant.requests", unit="{request}", description="Calls per tenant.")
        self._tokens = meter.create_counter(
            "llmtrace.tenant.tokens", unit="{token}",
            description="Tokens reported by the upstream, per tenant.")
        self._alerts = meter.create_counter(
            "llmtrace.alerts", unit="{alert}",
            description="Alerts raised, or suppressed by the cool-down.")
        self._deliveries = meter.create_counter(
            "llmtrace.alert.deliveries", unit="{delivery}",
            description="Alert deliveries per channel: sent, retried, failed, queue_full.")

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
            "llmtrace.budget.spend_usd", callbacks=[spend], unit="{USD}",
            description="Spend in the current budget window (windows with a limit).")
        self._meter.create_observable_gauge(
            "llmtrace.budget.limit_usd", callbacks=[limit], unit="{USD}",
            description="The window's hard limit (its soft limit when it has no hard one).")

    def rate_limited(self, tenant: str, limit: str) -> None:
        self._rate_limited.add(1, {"tenant": self.tenant_label(tenant), "limit": limit})

    def budget_exceeded(self, tenant: str, window: str, scope: str) -> None:
        self._budget_exceeded.add(1, {"tenant": self.tenant_label(tenant), "window": window,
                                      "scope": scope})

    def degraded(self, backend: str, operation: str) -> None:
        self._degraded.add(1, {"backend": backend, "operation": operation})

    def request(self, tenant: str, status_code: int) -> None:
        self._requests.add(1, {"tenant": self.tenant_label(tenant),
                               "status_code": str(status_code)})

    def tokens(self, tenant: str, direction: str, count: int) -> None:
        self._tokens.add(count, {"tenant": self.tenant_label(tenant), "direction": direction})

    def alert(self, kind: str, severity: str, outcome: str) -> None:
        self._alerts.add(1, {"kind": kind, "severity": severity, "outcome": outcome})

    def delivery(self, channel: str, outcome: str) -> None:
        self._deliveries.add(1, {"channel": channel, "outcome": outcome})
