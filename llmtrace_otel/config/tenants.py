"""The ``tenants:`` section of the file: per-tenant limits and budgets, as plain data.

Defaults come from the flat settings (``limits.*``, ``budgets.*``: file, env, flags);
the ``tenants:`` mapping of the YAML file overrides them per tenant, and per agent of a
tenant for budgets::

    tenants:
      team-a:
        requests_per_s: 20
        tokens_per_min: 200000
        budgets:
          daily: {soft_usd: 50, hard_usd: 100}
        agents:
          nightly-batch:
            budgets: {daily: {hard_usd: 5}}
          "*":                       # every other agent of team-a
            budgets: {hourly: {soft_usd: 1}}
        key_ids: [key-1f2e3d4c5b6a7980]   # calls with these API keys are team-a's

Everything is parsed here into frozen dataclasses (what it means at run time is the tenancy
part's business); a wrong key, type or range is a :class:`ConfigError` naming the exact
path (``tenants.team-a.budgets.daily.hard_usd``) and its source.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from llmtrace_otel.config.choices import BudgetWindow
from llmtrace_otel.config.errors import ConfigError
from llmtrace_otel.config.values import TENANT_ID

__all__ = [
    "ANY_AGENT",
    "MAX_BURST",
    "MAX_REQUESTS_PER_S",
    "MAX_TOKENS_PER_MIN",
    "MAX_USD",
    "BudgetLimit",
    "Budgets",
    "TenantOverride",
    "TenantOverrides",
    "parse_overrides",
    "valid_id",
]

#: Agent key in ``agents:`` that applies to every agent without its own entry.
ANY_AGENT: Final = "*"
MAX_REQUESTS_PER_S: Final = 1_000_000.0
MAX_BURST: Final = 1_000_000_000.0
MAX_TOKENS_PER_MIN: Final = 1e12
MAX_USD: Final = 1e9


def valid_id(text: str) -> bool:
    """A tenant or agent id: 1-128 characters, starting with a letter or digit."""
    return TENANT_ID.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    """Soft (alert) and hard (reject) USD limits of one window; None = not set."""

    soft_usd: float | None = None
    hard_usd: float | None = None

    def __bool__(self) -> bool:
        return self.soft_usd is not None or self.hard_usd is not None


#: Budgets by window; only windows with a limit are present.
Budgets = Mapping[BudgetWindow, BudgetLimit]


@dataclass(frozen=True, slots=True)
class TenantOverride:
    """One tenant's entry under ``tenants:``; None fields inherit the defaults."""

    requests_per_s: float | None = None
    request_burst: float | None = None
    tokens_per_min: float | None = None
    budgets: Budgets = field(default_factory=dict)
    agents: Mapping[str, Budgets] = field(default_factory=dict)
    #: Key ids (``key-`` + 16 hex digits, as shown for calls made with an API key) whose
    #: calls belong to this tenant.
    key_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TenantOverrides:
    """The parsed ``tenants:`` section (immutable, in file order)."""

    entries: tuple[tuple[str, TenantOverride], ...] = ()

    def get(self, tenant: str) -> TenantOverride | None:
        for name, override in self.entries:
            if name == tenant:
                return override
        return None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.entries)

    def key_tenants(self) -> dict[str, str]:
        """Key id -> the tenant it is mapped to (``key_ids:``)."""
        return {key_id: name for name, override in self.entries
                for key_id in override.key_ids}

    def __bool__(self) -> bool:
        return bool(self.entries)

# -- parsing ---------------------------------------------------------------------------

_RATE_KEYS = {"requests_per_s": (0.0, MAX_REQUESTS_PER_S), "request_burst": (1.0, MAX_BURST),
              "tokens_per_min": (0.0, MAX_TOKENS_PER_MIN)}
_TENANT_KEYS = (*_RATE_KEYS, "budgets", "agents", "key_ids")
_KEY_ID = re.compile(r"key-[0-9a-f]{16}")
_LIMIT_KEYS = ("soft_usd", "hard_usd")


def _fail(path: str, source: str, problem: str) -> ConfigError:
    return ConfigError(f"{path} ({source}): {problem}")


def _mapping(value: Any, path: str, source: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, source, f"expected a mapping, got {type(value).__name__}")
    return value


def _known(data: Mapping[str, Any], known: tuple[str, ...], path: str, source: str) -> None:
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise _fail(path, source, f"unknown key(s) {', '.join(unknown)}; "
                                  f"known keys: {', '.join(known)}")


def check_number(value: Any, path: str, source: str, low: float, high: float,
           *, zero_ok: bool = False) -> float:
    """A finite number in [low, high] (or exactly 0 when ``zero_ok``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, source, f"expected a number, got {value!r}")
    number_ = float(value)
    if zero_ok and number_ == 0:
        return 0.0
    if not math.isfinite(number_) or not low <= number_ <= high:
        zero = "0 (unlimited) or " if zero_ok else ""
        raise _fail(path, source, f"must be {zero}between {low:g} and {high:g}, got {value!r}")
    return number_


def budget_limit(soft: float | None, hard: float | None, path: str,
                 source: str) -> BudgetLimit:
    if soft is not None and hard is not None and soft > hard:
        raise _fail(path, source, f"soft_usd ({soft:g}) must not exceed hard_usd ({hard:g})")
    return BudgetLimit(soft, hard)


def _budgets(value: Any, path: str, source: str) -> dict[BudgetWindow, BudgetLimit]:
    data = _mapping(value, path, source)
    _known(data, tuple(w.value for w in BudgetWindow), path, source)
    budgets: dict[BudgetWindow, BudgetLimit] = {}
    for window in BudgetWindow:
        if window.value not in data:
            continue
        where = f"{path}.{window.value}"
        entry = _mapping(data[window.value], where, source)
        _known(entry, _LIMIT_KEYS, where, source)
        soft, hard = (
            check_number(entry[key], f"{where}.{key}", source, 1e-9, MAX_USD)
            if entry.get(key) is not None else None
            for key in _LIMIT_KEYS
        )
        limit = budget_limit(soft, hard, where, source)
        if not limit:
            raise _fail(where, source, "set soft_usd, hard_usd or both")
        budgets[window] = limit
    return budgets


def _checked_id(name: Any, path: str, source: str, *, wildcard: bool = False) -> str:
    text = str(name)
    if (wildcard and text == ANY_AGENT) or valid_id(text):
        return text
    raise _fail(path, source, f"{text!r} is not a valid id (1-128 characters: letters, "
                              f"digits and ._:@/+=-, starting with a letter or digit)")


def _key_ids(value: Any, path: str, source: str, mapped: dict[str, str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _fail(path, source, "expected a list of key ids (key- and 16 hex digits)")
    for item in value:
        if not _KEY_ID.fullmatch(item):
            raise _fail(path, source, f"{item!r} is not a key id (key- and 16 hex digits, as "
                                      "llmtrace.tenant.id shows for a call made with the key)")
        tenant = path.split(".")[1]
        if mapped.setdefault(item, tenant) != tenant:
            raise _fail(path, source, f"{item} is already mapped to tenant {mapped[item]!r}")
    return tuple(value)


def parse_overrides(raw: Any, source: str) -> TenantOverrides:
    """Parse the ``tenants:`` section (None or a mapping of tenant id to its entry)."""
    if raw is None:
        return TenantOverrides()
    if isinstance(raw, TenantOverrides):
        return raw
    data = _mapping(raw, "tenants", source)
    entries = []
    mapped: dict[str, str] = {}
    for name, value in data.items():
        tenant = _checked_id(name, f"tenants.{name}", source)
        path = f"tenants.{tenant}"
        entry = _mapping(value if value is not None else {}, path, source)
        _known(entry, _TENANT_KEYS, path, source)
        rates = {
            key: check_number(entry[key], f"{path}.{key}", source, low, high,
                        zero_ok=key != "request_burst")
            for key, (low, high) in _RATE_KEYS.items() if entry.get(key) is not None
        }
        budgets = _budgets(entry["budgets"], f"{path}.budgets", source) \
            if entry.get("budgets") is not None else {}
        agents: dict[str, Budgets] = {}
        if entry.get("agents") is not None:
            for agent_name, agent_value in _mapping(entry["agents"], f"{path}.agents",
                                                    source).items():
                agent = _checked_id(agent_name, f"{path}.agents.{agent_name}", source,
                                    wildcard=True)
                where = f"{path}.agents.{agent}"
                agent_entry = _mapping(agent_value, where, source)
                _known(agent_entry, ("budgets",), where, source)
                agents[agent] = _budgets(agent_entry.get("budgets") or {}, f"{where}.budgets",
                                         source)
        key_ids = _key_ids(entry.get("key_ids"), f"{path}.key_ids", source, mapped)
        entries.append((tenant, TenantOverride(budgets=budgets, agents=agents, key_ids=key_ids,
                                               **rates)))
    return TenantOverrides(tuple(entries))
