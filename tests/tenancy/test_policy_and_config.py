"""The tenants: section and the flat tenancy settings: parsing, merging, precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmtrace_otel.config import ConfigError, load_settings
from llmtrace_otel.config.tenants import BudgetLimit
from llmtrace_otel.tenancy.identity import (
    IdentityError,
    IdentitySource,
    TenantResolver,
    parse_trusted,
)
from llmtrace_otel.tenancy.policy import PolicyBook, RateLimits, TenantPolicy
from llmtrace_otel.tenancy.windows import Window, window_bounds
from llmtrace_otel.wiring import default_policy

YAML = """
limits:
  requests_per_s: 5
budgets:
  daily_soft_usd: 10
  daily_hard_usd: 20
tenants:
  team-a:
    requests_per_s: 50
    tokens_per_min: 100000
    budgets:
      monthly: {soft_usd: 100, hard_usd: 500}
    agents:
      batch:
        budgets: {daily: {hard_usd: 2}}
      "*":
        budgets: {hourly: {soft_usd: 1}}
  team-b: {}
"""


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_settings(str(path), env=env or {})


def test_tenants_section_parses_and_merges_with_defaults(tmp_path: Path) -> None:
    settings = _load(tmp_path, YAML)
    book = PolicyBook(default_policy(settings), settings.tenants)
    assert settings.tenants.names == ("team-a", "team-b")
    a = book.for_tenant("team-a")
    assert a.limits == RateLimits(requests_per_s=50, tokens_per_min=100000)
    assert a.budgets == {Window.DAILY: BudgetLimit(10, 20), Window.MONTHLY: BudgetLimit(100, 500)}
    assert a.agent_budgets("batch") == {Window.DAILY: BudgetLimit(None, 2)}
    assert a.agent_budgets("other") == {Window.HOURLY: BudgetLimit(1, None)}
    assert a.agent_budgets(None) == {}
    assert book.for_tenant("team-b") == TenantPolicy(RateLimits(5), {Window.DAILY:
                                                                    BudgetLimit(10, 20)})
    assert book.for_tenant("anyone") is book.defaults
    assert book.any_budgets and book.any_limits


def test_env_sets_defaults_over_the_file(tmp_path: Path) -> None:
    settings = _load(tmp_path, YAML, env={"LLMTRACE_LIMITS_REQUESTS_PER_S": "7",
                                          "LLMTRACE_STATE_BACKEND": "redis"})
    assert settings.requests_per_s == 7 and settings.state_backend == "redis"


@pytest.mark.parametrize(("text", "message"), [
    ("tenants:\n  team-a:\n    request_per_s: 5\n",
     "tenants.team-a (file "),
    ("tenants:\n  team-a:\n    request_per_s: 5\n",
     "unknown key(s) request_per_s; known keys: requests_per_s, request_burst"),
    ("tenants:\n  team-a:\n    requests_per_s: -1\n",
     "tenants.team-a.requests_per_s (file"),
    ("tenants:\n  team-a:\n    requests_per_s: 5000000\n",
     "must be 0 (unlimited) or between 0 and 1e+06, got 5000000"),
    ("tenants:\n  team-a:\n    tokens_per_min: lots\n", "expected a number, got 'lots'"),
    ("tenants:\n  team-a:\n    budgets:\n      daily: {soft_usd: 5, hard_usd: 1}\n",
     "tenants.team-a.budgets.daily (file"),
    ("tenants:\n  team-a:\n    budgets:\n      daily: {soft_usd: 5, hard_usd: 1}\n",
     "soft_usd (5) must not exceed hard_usd (1)"),
    ("tenants:\n  team-a:\n    budgets:\n      yearly: {hard_usd: 1}\n",
     "tenants.team-a.budgets (file"),
    ("tenants:\n  team-a:\n    budgets:\n      daily: {}\n", "set soft_usd, hard_usd or both"),
    ("tenants:\n  'bad tenant':\n    requests_per_s: 1\n", "'bad tenant' is not a valid id"),
    ("tenants:\n  team-a:\n    agents:\n      bot: {limits: 1}\n",
     "tenants.team-a.agents.bot (file"),
    ("tenants: [1, 2]\n", "tenants (file"),
])
def test_bad_tenants_section_names_the_exact_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert message in str(caught.value)


@pytest.mark.parametrize(("env", "message"), [
    ({"LLMTRACE_LIMITS_REQUESTS_PER_S": "-5"},
     "limits.requests_per_s (env LLMTRACE_LIMITS_REQUESTS_PER_S): must be 0 (off) or between "
     "1e-06 and 1e+06, got -5"),
    ({"LLMTRACE_LIMITS_TOKENS_PER_MIN": "1e15"},
     "limits.tokens_per_min (env LLMTRACE_LIMITS_TOKENS_PER_MIN): must be 0 (off) or between"),
    ({"LLMTRACE_BUDGETS_DAILY_SOFT_USD": "10", "LLMTRACE_BUDGETS_DAILY_HARD_USD": "5"},
     "budgets.daily: soft_usd (10) must not exceed hard_usd (5)"),
    ({"LLMTRACE_STATE_BACKEND": "etcd"},
     "state.backend (env LLMTRACE_STATE_BACKEND): 'etcd' is not one of memory, redis"),
    ({"LLMTRACE_STATE_REDIS_URL": "http://x"},
     "state.redis_url (env LLMTRACE_STATE_REDIS_URL): 'http://x' is not a redis"),
    ({"LLMTRACE_LIMITS_ON_BACKEND_ERROR": "maybe"},
     "limits.on_backend_error (env LLMTRACE_LIMITS_ON_BACKEND_ERROR): 'maybe' is not one of "
     "open, closed"),
    ({"LLMTRACE_TENANCY_DEFAULT_TENANT": "has space"},
     "tenancy.default_tenant (env LLMTRACE_TENANCY_DEFAULT_TENANT): 'has space' is not a valid "
     "tenant id"),
    ({"LLMTRACE_ALERTS_SLACK_MIN_SEVERITY": "loud"},
     "alerts.slack.min_severity (env LLMTRACE_ALERTS_SLACK_MIN_SEVERITY): 'loud' is not one of "
     "info, warning, error, critical"),
    ({"LLMTRACE_ALERTS_WEBHOOK_URL": "ftp://x"},
     "alerts.webhook.url (env LLMTRACE_ALERTS_WEBHOOK_URL): 'ftp://x'"),
    ({"LLMTRACE_ANOMALY_SIGMA": "0"},
     "anomaly.sigma (env LLMTRACE_ANOMALY_SIGMA): must be between 0.5 and 100, got 0"),
    ({"LLMTRACE_ALERTS_RETRIES": "100"},
     "alerts.retries (env LLMTRACE_ALERTS_RETRIES): must be between 0 and 10, got 100"),
])
def test_absurd_flat_settings_fail_at_startup(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env=env)
    assert message in str(caught.value)


def test_resolver_order_and_validation() -> None:
    resolver = TenantResolver("fallback", secret="k", trusted=parse_trusted(["10.0.0.0/8"]))
    assert resolver.resolve({"X-LLMTrace-Tenant-ID": "t1", "Authorization": "Bearer sk"},
                            "10.1.2.3").source is IdentitySource.HEADER
    bearer = resolver.resolve({"Authorization": "Bearer sk-1"})
    assert bearer.source is IdentitySource.API_KEY
    assert resolver.resolve({"x-api-key": "sk-1"}).tenant == bearer.tenant  # same key
    assert resolver.resolve({"api-key": "sk-2"}).tenant != bearer.tenant
    assert resolver.resolve({"Authorization": "Basic abc"}).tenant == "fallback"
    assert TenantResolver("fallback", secret="other").resolve(
        {"Authorization": "Bearer sk-1"}).tenant != bearer.tenant
    assert not TenantResolver("f").stable and resolver.stable
    for bad in ("", " ", "a b", "-lead", "x" * 129, "{tag}", "a|b"):
        with pytest.raises(IdentityError):
            resolver.resolve({"X-LLMTrace-Tenant-ID": bad}, "10.0.0.1")


def test_window_bounds_are_calendar_windows_in_utc() -> None:
    from datetime import UTC, datetime

    def at(*parts: int) -> float:
        return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]

    now = at(2030, 12, 31, 23, 30)  # a Tuesday
    assert window_bounds(Window.HOURLY, now) == (at(2030, 12, 31, 23), at(2031, 1, 1))
    assert window_bounds(Window.DAILY, now) == (at(2030, 12, 31), at(2031, 1, 1))
    assert window_bounds(Window.WEEKLY, now) == (at(2030, 12, 30), at(2031, 1, 6))
    assert window_bounds(Window.MONTHLY, now) == (at(2030, 12, 1), at(2031, 1, 1))
    assert window_bounds(Window.MONTHLY, at(2032, 2, 29, 12)) == (at(2032, 2, 1),
                                                                  at(2032, 3, 1))
