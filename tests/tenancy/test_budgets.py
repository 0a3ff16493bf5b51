"""Budgets as a tenant and an operator see them: refused or not, when the budget resets,
which alerts fire, and what /api/v1/budgets and the budget gauges report.

The real TenancyGuard and BudgetTracker on in-memory state and a clock the test moves;
spend arrives the way the spend recorder delivers it (``submit`` from another thread).
Alerts go to a channel that keeps what it is offered. Budgets through the running proxy
(cost processor, Slack receiver, the HTTP API) are in test_budgets_through_proxy.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from tornado.httputil import HTTPHeaders

from llmtrace_otel.config.tenants import (
    ANY_AGENT,
    BudgetLimit,
    Budgets,
    TenantOverride,
    TenantOverrides,
)
from llmtrace_otel.guards import CallInfo
from llmtrace_otel.providers.types import LLMRequest, Operation
from llmtrace_otel.tenancy.alerts import Alert, AlertDispatcher, AlertSeverity
from llmtrace_otel.tenancy.budgets import BudgetTracker, SpendEvent
from llmtrace_otel.tenancy.guard import TenancyGuard
from llmtrace_otel.tenancy.identity import AGENT_HEADER, TENANT_HEADER, TenantResolver
from llmtrace_otel.tenancy.metrics import TenancyInstruments
from llmtrace_otel.tenancy.policy import PolicyBook, TenantPolicy
from llmtrace_otel.tenancy.state import MemoryBackend, StateUnavailable
from llmtrace_otel.tenancy.windows import Window
from llmtrace_otel.web.errors import ErrorReply
from tests.tenancy.support import NOON, Clock

#: The test's calls come from 127.0.0.1, a caller trusted to name its tenant in the header.
LOCAL = (ipaddress.ip_network("127.0.0.0/8"),)

DAILY_RESET = "2030-06-13T00:00:00Z"  # NOON is 2030-06-12 12:00 UTC
HOURLY_RESET = "2030-06-12T13:00:00Z"
NO_OVERRIDES = TenantOverrides()


class Kept:
    """An alert channel that keeps every alert offered to it."""

    name = "kept"
    min_severity = AlertSeverity.INFO

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def offer(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def close(self, timeout_s: float) -> None:
        return None


class Ledger:
    """A tenancy guard with budgets; ``ask`` is a call arriving, ``spend`` one ending."""

    def __init__(self, budgets: Budgets, overrides: TenantOverrides = NO_OVERRIDES,
                 backend: Any = None) -> None:
        self.clock = Clock(NOON)
        self.kept = Kept()
        self.reader = InMemoryMetricReader()
        meter = MeterProvider(metric_readers=[self.reader]).get_meter("test")
        self.instruments = TenancyInstruments(meter, lambda tenant: tenant)
        book = PolicyBook(TenantPolicy(budgets=budgets), overrides)
        self.backend = backend or MemoryBackend()
        self.tracker = BudgetTracker(book, self.backend, key_prefix="t:",
                                     instruments=self.instruments,
                                     alerts=AlertDispatcher([self.kept], cooldown_s=0),
                                     clock=self.clock)
        self.guard = TenancyGuard(TenantResolver("default", trusted=LOCAL), book, self.backend,
                                  self.instruments, key_prefix="t:", budgets=self.tracker,
                                  clock=self.clock)
        self.loop = asyncio.new_event_loop()
        self.tracker.bind_loop(self.loop)  # as the first call through the guard does

    def close(self) -> None:
        self.loop.run_until_complete(self.guard.aclose())
        self.loop.close()

    def ask(self, tenant: str = "team-a", agent: str | None = None) -> ErrorReply | None:
        headers = HTTPHeaders({TENANT_HEADER: tenant})
        if agent is not None:
            headers[AGENT_HEADER] = agent
        call = CallInfo("POST", "/v1/chat/completions", headers, "openai.chat_completions",
                        "openai", LLMRequest(operation=Operation.CHAT), "127.0.0.1")
        verdict = self.loop.run_until_complete(self.guard.check(call))
        return None if verdict is None else verdict.reject

    def spend(self, usd: float | None, tenant: str = "team-a", agent: str | None = None) -> None:
        """A call ended costing ``usd``: submitted from another thread, as the recorder does."""
        sender = threading.Thread(target=self.tracker.submit,
                                  args=(SpendEvent(tenant, agent, usd),))
        sender.start()
        sender.join()

        async def written() -> None:
            await asyncio.sleep(0)  # the submitted write starts
            await self.tracker.drain()

        self.loop.run_until_complete(written())

    def status(self, tenant: str | None = None) -> list[dict[str, Any]]:
        return self.loop.run_until_complete(self.tracker.status(self.tracker.known(tenant)))

    def windows(self, tenant: str = "team-a", agent: str | None = None
                ) -> dict[str, dict[str, Any]]:
        (scope,) = [s for s in self.status(tenant) if s["agent"] == agent]
        return {w["window"]: w for w in scope["windows"]}

    def counted(self, name: str, **labels: str) -> float:
        """The value of counter ``name`` for ``labels`` (0 when absent)."""
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        if labels.items() <= dict(point.attributes or {}).items():
                            return float(point.value)
        return 0.0

    def gauges(self) -> dict[tuple[str, str, str], float]:
        data = self.reader.get_metrics_data()
        found = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name.startswith("llmtrace.budget.") and \
                            metric.name.endswith("_usd"):
                        for point in metric.data.data_points:
                            labels = point.attributes or {}
                            found[(metric.name, str(labels["tenant"]),
                                   str(labels["window"]))] = point.value
        return found


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    budgets, overrides = request.param
    made = Ledger(budgets, overrides)
    yield made
    made.close()


def budgets(overrides: TenantOverrides = NO_OVERRIDES,
            **windows: BudgetLimit) -> pytest.MarkDecorator:
    limits = {Window(name): limit for name, limit in windows.items()}
    return pytest.mark.parametrize("ledger", [(limits, overrides)], indirect=True)


@budgets(daily=BudgetLimit(soft_usd=0.5, hard_usd=1.0))
def test_a_hard_budget_refuses_from_the_limit_on_until_the_window_resets(
        ledger: Ledger) -> None:
    ledger.spend(0.6)
    assert ledger.ask() is None
    ledger.spend(0.39)
    assert ledger.ask() is None  # $0.99 of $1.00: still under
    ledger.spend(0.01)
    refused = ledger.ask()  # exactly at the limit: spent
    assert refused is not None and refused.status == 429 and refused.code == "budget_exceeded"
    assert refused.message == ("tenant team-a has spent $1.0000 of its daily budget of $1.00; "
                               f"the budget resets at {DAILY_RESET}")
    assert dict(refused.headers) == {"Retry-After": "43200"}  # 12 h to midnight
    assert ledger.ask("team-b") is None  # another tenant's budget is its own
    ledger.clock.advance(43_199.5)
    assert dict(ledger.ask().headers) == {"Retry-After": "1"}  # half a second: 1, never 0
    ledger.clock.advance(0.5)
    assert ledger.ask() is None  # a new day, a new budget


@budgets(hourly=BudgetLimit(hard_usd=1.0), daily=BudgetLimit(hard_usd=1.0))
def test_when_two_windows_are_spent_the_later_reset_is_reported(ledger: Ledger) -> None:
    ledger.spend(1.0)
    refused = ledger.ask()
    assert refused is not None
    assert "daily budget" in refused.message and DAILY_RESET in refused.message
    assert dict(refused.headers) == {"Retry-After": "43200"}
    ledger.clock.advance(3600)  # the hourly budget resets, the daily one is still spent
    assert ledger.ask() is not None


@budgets(hourly=BudgetLimit(hard_usd=1.0), daily=BudgetLimit(hard_usd=5.0))
def test_only_the_spent_window_is_reported(ledger: Ledger) -> None:
    ledger.spend(1.0)
    refused = ledger.ask()
    assert refused is not None
    assert "hourly budget of $1.00" in refused.message and HOURLY_RESET in refused.message
    assert dict(refused.headers) == {"Retry-After": "3600"}


@budgets(daily=BudgetLimit(soft_usd=0.5, hard_usd=1.0))
def test_each_limit_alerts_once_when_crossed(ledger: Ledger) -> None:
    ledger.spend(0.4)
    assert ledger.kept.alerts == []
    ledger.spend(0.1)  # reaches the soft limit exactly
    (soft,) = ledger.kept.alerts
    assert (soft.kind, soft.severity, soft.tenant, soft.agent, soft.subject) == (
        "budget_soft", AlertSeverity.WARNING, "team-a", None, "daily")
    assert soft.summary == ("tenant team-a reached its daily soft budget: $0.50 of $0.50 "
                            "(calls still pass)")
    assert soft.details == {"window": "daily", "spend_usd": 0.5, "limit_usd": 0.5,
                            "resets_at": DAILY_RESET}
    ledger.spend(0.2)  # over the soft limit already: no second alert
    assert len(ledger.kept.alerts) == 1
    ledger.spend(0.4)  # 0.7 -> 1.1 crosses the hard limit
    hard = ledger.kept.alerts[1]
    assert (hard.kind, hard.severity) == ("budget_hard", AlertSeverity.CRITICAL)
    assert hard.summary == ("tenant team-a reached its daily hard budget: $1.10 of $1.00 "
                            "(further calls are refused until the reset)")
    ledger.spend(0.1)
    assert len(ledger.kept.alerts) == 2


@budgets(daily=BudgetLimit(soft_usd=0.5))
def test_an_unpriced_call_is_counted_never_as_free_spend(ledger: Ledger) -> None:
    ledger.spend(0.25)
    ledger.spend(None)
    daily = ledger.windows()["daily"]
    assert (daily["spend_usd"], daily["calls"], daily["unpriced_calls"]) == (0.25, 2, 1)
    assert ledger.kept.alerts == [] and ledger.tracker.lost == 0  # recorded, not lost


@budgets(daily=BudgetLimit(soft_usd=1 / 3))
def test_reported_amounts_are_rounded_as_documented(ledger: Ledger) -> None:
    ledger.clock.advance(1 / 3)
    ledger.spend(1 / 3)
    daily = ledger.windows()["daily"]
    assert daily["spend_usd"] == 0.333333333  # USD to 9 digits
    assert daily["utilisation"] == 1.0
    assert daily["resets_in_s"] == 43_199.667  # seconds to 3
    ledger.spend(1 / 7)
    assert ledger.windows()["daily"]["utilisation"] == 1.428571  # a ratio to 6
    (alert,) = ledger.kept.alerts
    assert alert.details["spend_usd"] == 0.333333  # alert amounts to 6


AGENTS = TenantOverrides((("team-a", TenantOverride(agents={
    "planner": {Window.DAILY: BudgetLimit(hard_usd=0.5)},
    ANY_AGENT: {Window.HOURLY: BudgetLimit(soft_usd=2.0)},
})),))


@budgets(AGENTS)
def test_an_agent_budget_refuses_only_that_agent(ledger: Ledger) -> None:
    ledger.spend(0.5, agent="planner")
    refused = ledger.ask(agent="planner")
    assert refused is not None
    assert refused.message.startswith("agent planner of tenant team-a has spent $0.5000 of "
                                      "its daily budget of $0.50")
    assert ledger.ask(agent="writer") is None
    assert ledger.ask() is None  # the tenant itself has no budget
    (alert,) = ledger.kept.alerts
    assert (alert.kind, alert.agent) == ("budget_hard", "planner")
    assert alert.summary.startswith("agent planner of tenant team-a reached its daily hard")


@budgets(AGENTS)
def test_the_budgets_report_lists_tenants_and_agents_with_their_windows(
        ledger: Ledger) -> None:
    ledger.ask(agent="writer")  # seen: listed
    ledger.spend(0.2, agent="planner")
    ledger.spend(0.3, agent="writer")
    scopes = [(s["tenant"], s["agent"]) for s in ledger.status()]
    assert scopes == [("team-a", None), ("team-a", "planner"), ("team-a", "writer")]
    tenant = ledger.windows()
    assert set(tenant) == {"hourly", "daily", "weekly", "monthly"}  # all, limit or not
    assert tenant["daily"]["spend_usd"] == 0.5 and tenant["daily"]["utilisation"] is None
    planner = ledger.windows(agent="planner")
    assert set(planner) == {"daily"}  # an agent's windows: those with a limit
    assert (planner["daily"]["spend_usd"], planner["daily"]["utilisation"]) == (0.2, 0.4)
    writer = ledger.windows(agent="writer")
    assert set(writer) == {"hourly"} and writer["hourly"]["utilisation"] == 0.15
    assert ledger.status("nobody") == [{"tenant": "nobody", "agent": None, "windows": [
        w | {"spend_usd": 0.0, "calls": 0, "unpriced_calls": 0, "utilisation": None}
        for w in ledger.status("nobody")[0]["windows"]]}]


@budgets(hourly=BudgetLimit(soft_usd=1.0), daily=BudgetLimit(soft_usd=1.0, hard_usd=2.0))
def test_the_report_states_where_each_window_stands(ledger: Ledger) -> None:
    ledger.clock.advance(15 * 60)
    ledger.spend(1.0)
    windows = ledger.windows()
    hourly, daily = windows["hourly"], windows["daily"]
    assert (hourly["state"], hourly["utilisation"]) == ("soft_exceeded", 1.0)
    assert (daily["state"], daily["utilisation"]) == ("soft_exceeded", 0.5)
    assert windows["weekly"]["state"] == "ok"
    assert hourly["window_start"] == "2030-06-12T12:00:00Z"
    assert (hourly["resets_at"], hourly["resets_in_s"]) == (HOURLY_RESET, 2700.0)
    assert daily["resets_in_s"] == 42_300.0
    ledger.spend(0.99)
    assert ledger.windows()["daily"]["state"] == "soft_exceeded"
    ledger.spend(0.01)
    assert ledger.windows()["daily"]["state"] == "hard_exceeded"
    assert ledger.windows()["hourly"]["state"] == "soft_exceeded"  # no hard limit there


@budgets(hourly=BudgetLimit(soft_usd=3.0), daily=BudgetLimit(soft_usd=9.0, hard_usd=4.0))
def test_the_gauges_show_spend_and_the_binding_limit_until_the_window_ends(
        ledger: Ledger) -> None:
    ledger.spend(1.5)
    gauges = ledger.gauges()
    assert gauges[("llmtrace.budget.spend_usd", "team-a", "hourly")] == 1.5
    assert gauges[("llmtrace.budget.limit_usd", "team-a", "hourly")] == 3.0  # soft only
    assert gauges[("llmtrace.budget.limit_usd", "team-a", "daily")] == 4.0  # hard wins
    assert ("llmtrace.budget.spend_usd", "team-a", "weekly") not in gauges  # no limit
    ledger.clock.advance(3600)  # the hourly window ended: its gauge is gone
    assert ("llmtrace.budget.spend_usd", "team-a", "hourly") not in ledger.gauges()
    assert ledger.gauges()[("llmtrace.budget.spend_usd", "team-a", "daily")] == 1.5


@budgets(daily=BudgetLimit(hard_usd=1.0))
def test_spend_that_cannot_be_written_is_counted_as_lost(ledger: Ledger) -> None:
    lone = BudgetTracker(ledger.tracker.book, ledger.backend, key_prefix="t:",
                         instruments=ledger.instruments)
    lone.submit(SpendEvent("team-a", None, 1.0))  # before any call: no event loop yet
    assert lone.lost == 1
    assert ledger.counted("llmtrace.limits.degraded", backend="memory",
                          operation="no_event_loop") == 1
    broken = Ledger({Window.DAILY: BudgetLimit(hard_usd=1.0)}, backend=_Unreachable())
    try:
        broken.ask()  # binds the loop; the admission itself degrades (fail open)
        broken.spend(1.0)
        assert broken.tracker.lost == 1
        assert broken.counted("llmtrace.limits.degraded", backend="unreachable",
                              operation="add_spend") == 1
    finally:
        broken.close()
    failing = Ledger({Window.DAILY: BudgetLimit(hard_usd=1.0)}, backend=_Broken())
    try:
        failing.spend(1.0)  # a bug in the backend, not an outage: lost and logged
        assert failing.tracker.lost == 1
    finally:
        failing.close()


def test_shutdown_waits_for_spend_writes_in_flight() -> None:
    slow = Ledger({Window.DAILY: BudgetLimit(hard_usd=1.0)}, backend=_Slow())
    sender = threading.Thread(target=slow.tracker.submit,
                              args=(SpendEvent("team-a", None, 0.25),))
    sender.start()
    sender.join()
    slow.close()  # the guard's aclose drains the tracker before closing the backend
    assert slow.backend.written == [0.25]
    assert not slow.tracker._tasks  # and nothing is left behind once written


class _Broken(MemoryBackend):
    """A backend with a bug: it raises something other than StateUnavailable."""

    async def add_spend(self, *args: Any) -> Any:
        raise KeyError("bug")


class _Slow(MemoryBackend):
    """Writes take a while, as a round trip to Redis does."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[float | None] = []

    async def add_spend(self, keys: Any, usd: float | None, now: float) -> Any:
        await asyncio.sleep(0.05)
        self.written.append(usd)
        return await super().add_spend(keys, usd, now)


class _Unreachable(MemoryBackend):
    """State that cannot be reached, as when Redis is down."""

    name = "unreachable"

    async def admit(self, *args: Any) -> Any:
        raise StateUnavailable("down")

    async def add_spend(self, *args: Any) -> Any:
        raise StateUnavailable("down")


TWO_AGENTS = TenantOverrides((("team-a", TenantOverride(agents={
    "a": {Window.DAILY: BudgetLimit(hard_usd=0.5)},
    "b": {Window.DAILY: BudgetLimit(hard_usd=0.5)},
})),))


@budgets(TWO_AGENTS)
def test_each_agent_has_a_budget_of_its_own(ledger: Ledger) -> None:
    ledger.spend(0.5, agent="a")
    assert ledger.ask(agent="a") is not None
    assert ledger.ask(agent="b") is None
    assert ledger.windows(agent="b")["daily"]["spend_usd"] == 0.0
    assert ledger.windows()["daily"]["spend_usd"] == 0.5  # and the tenant's, once


@budgets(daily=BudgetLimit(soft_usd=0.5))
def test_a_total_within_a_nano_dollar_of_the_limit_has_reached_it(ledger: Ledger) -> None:
    ledger.spend(0.49999999994)  # 0.5 to the nano-dollar: the crossing is now
    (alert,) = ledger.kept.alerts
    assert alert.summary.startswith("tenant team-a reached its daily soft budget: $0.50")
    ledger.spend(0.00000000006)
    assert len(ledger.kept.alerts) == 1  # not a second time


@budgets(AGENTS)
def test_an_agent_without_a_budget_is_reported_within_its_tenant(ledger: Ledger) -> None:
    ledger.ask("team-b", agent="bot")  # team-b has no agent budgets
    assert [(s["tenant"], s["agent"]) for s in ledger.status("team-b")] == [("team-b", None)]


@budgets(daily=BudgetLimit(soft_usd=1.0))
def test_the_report_lists_the_1000_most_recently_seen_tenants(ledger: Ledger) -> None:
    for index in range(1000):
        ledger.ask(f"t{index}")
    ledger.ask("t0")  # seen again: the most recent now
    ledger.ask("t1000")  # one too many: the least recently seen (t1) is forgotten
    known = {tenant for tenant, _ in ledger.tracker.known()}
    assert len(known) == 1000 and "t0" in known and "t1000" in known and "t1" not in known


@budgets(daily=BudgetLimit(soft_usd=1.0))
def test_the_gauges_keep_running_windows_of_thousands_of_tenants(ledger: Ledger) -> None:
    limits = {Window.DAILY: BudgetLimit(soft_usd=1.0)}
    for index in range(4001):  # past the point where ended windows are pruned
        tenant = f"t{index}"
        keys = ledger.tracker.windows(tenant, None, limits, NOON)
        ledger.tracker.observe(tenant, keys, [0.25])
    rows = ledger.tracker.observed()
    assert len(rows) == 4001 and ("t4000", "daily", 0.25, 1.0) in rows
