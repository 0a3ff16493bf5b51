"""Per-tenant policies: the defaults (``limits.*``, ``budgets.*``) merged with each tenant's
entry of the ``tenants:`` section (parsed by :mod:`llmtrace_otel.config.tenants`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from llmtrace_otel.config.tenants import (
    ANY_AGENT,
    Budgets,
    TenantOverride,
    TenantOverrides,
)

__all__ = ["PolicyBook", "RateLimits", "TenantPolicy"]


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Token buckets of one tenant. 0 means unlimited; a burst of 0 means the default
    (one second of requests, at least 1; one minute of tokens)."""

    requests_per_s: float = 0.0
    request_burst: float = 0.0
    tokens_per_min: float = 0.0

    @property
    def request_capacity(self) -> float:
        return self.request_burst or max(1.0, self.requests_per_s)

    @property
    def enabled(self) -> bool:
        return self.requests_per_s > 0 or self.tokens_per_min > 0


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """What applies to one tenant, defaults and overrides merged."""

    limits: RateLimits = RateLimits()
    budgets: Budgets = field(default_factory=dict)
    agents: Mapping[str, Budgets] = field(default_factory=dict)

    def agent_budgets(self, agent: str | None) -> Budgets:
        if agent is None:
            return {}
        found = self.agents.get(agent)
        return found if found is not None else self.agents.get(ANY_AGENT, {})


class PolicyBook:
    """Resolves the policy of a tenant (merged once per configured tenant)."""

    __slots__ = ("defaults", "overrides", "_merged")

    def __init__(self, defaults: TenantPolicy, overrides: TenantOverrides) -> None:
        self.defaults = defaults
        self.overrides = overrides
        self._merged: dict[str, TenantPolicy] = {
            name: _merge(defaults, override) for name, override in overrides.entries
        }

    def for_tenant(self, tenant: str) -> TenantPolicy:
        return self._merged.get(tenant, self.defaults)

    @property
    def any_budgets(self) -> bool:
        return any(p.budgets or p.agents for p in (self.defaults, *self._merged.values()))

    @property
    def any_limits(self) -> bool:
        return any(p.limits.enabled for p in (self.defaults, *self._merged.values()))


def _merge(defaults: TenantPolicy, override: TenantOverride) -> TenantPolicy:
    limits = defaults.limits
    for name in ("requests_per_s", "request_burst", "tokens_per_min"):
        value = getattr(override, name)
        if value is not None:
            limits = replace(limits, **{name: value})
    budgets = dict(defaults.budgets)
    budgets.update(override.budgets)
    return TenantPolicy(limits, budgets, override.agents or defaults.agents)
