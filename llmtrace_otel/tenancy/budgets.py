"""Budgets: USD spend per tenant (and agent) per hourly/daily/weekly/monthly window.

* **Admission** (:meth:`BudgetTracker.admission_keys`): the windows of the tenant and agent
  that have a hard limit are read in the same backend operation as the rate limits; one
  at or over its hard limit refuses the call (429 ``budget_exceeded``, ``Retry-After``
  until the window resets).
* **Recording** (:meth:`BudgetTracker.submit`, called by the spend recorder at the end of
  the span chain, on the analysis thread): the cost the cost processor put on the span
  is added to every window of the tenant, and to the agent's windows that have a limit.
  A call with usage but no known price counts as *unpriced*, never as $0 spent. The
  write runs on the event loop (the backend's loop), off any request's path. A total that
  crosses a soft limit raises a ``budget_soft`` alert, one that crosses a hard limit a
  ``budget_hard`` alert; the backend returns the new total atomically, so exactly one
  instance sees each crossing.

Spend is recorded after the call (a call's cost is only known once it ended), so calls in
flight when a hard limit is reached may overshoot it by their own cost.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from llmtrace_otel.config.tenants import ANY_AGENT, BudgetLimit, Budgets
from llmtrace_otel.tenancy.alerts import Alert, AlertDispatcher, AlertSeverity
from llmtrace_otel.tenancy.identity import Identity
from llmtrace_otel.tenancy.metrics import TenancyInstruments
from llmtrace_otel.tenancy.policy import PolicyBook
from llmtrace_otel.tenancy.state import SpendKey, StateBackend, StateUnavailable
from llmtrace_otel.tenancy.windows import Window, window_bounds

__all__ = ["BudgetTracker", "SpendEvent", "WindowKey"]

_log = logging.getLogger(__name__)
_EXPIRY_MARGIN_S = 3600.0  # keep a window's key an hour past its end (late readers)
_MAX_SEEN = 1000
_USD_DIGITS = 9  # spend compared with a limit to the nano-dollar


@dataclass(frozen=True, slots=True)
class SpendEvent:
    tenant: str
    agent: str | None
    usd: float | None  # None: the call had usage but no known price


@dataclass(frozen=True, slots=True)
class WindowKey:
    """One budget window of one scope (a tenant, or an agent of a tenant)."""

    scope: str  # "tenant" or "agent"
    window: Window
    start: float
    end: float
    limit: BudgetLimit
    key: SpendKey


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


class BudgetTracker:
    def __init__(self, book: PolicyBook, backend: StateBackend, *, key_prefix: str,
                 instruments: TenancyInstruments, alerts: AlertDispatcher | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.book = book
        self.backend = backend
        self._prefix = key_prefix
        self._instruments = instruments
        self._alerts = alerts
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._seen: OrderedDict[tuple[str, str | None], None] = OrderedDict()
        self._bounds_cache: dict[Window, tuple[float, float]] = {}
        # Latest spend seen per (tenant, window) with a limit: (usd, window end, limit).
        self._observed: dict[tuple[str, Window], tuple[float, float, float]] = {}
        self._observed_lock = threading.Lock()
        instruments.observe_budgets(self.observed)
        #: Spend records lost (state unavailable, no event loop yet); read by /health.
        self.lost = 0

    # -- keys ----------------------------------------------------------------------

    def _key(self, tenant: str, agent: str | None, window: Window, start: float) -> str:
        scope = f"|a|{agent}" if agent is not None else ""
        return f"{self._prefix}{{{tenant}}}|sp{scope}|{window}|{int(start)}"

    def _bounds(self, window: Window, now: float) -> tuple[float, float]:
        """window_bounds, computed once per window and reused until it ends."""
        cached = self._bounds_cache.get(window)
        if cached is not None and cached[0] <= now < cached[1]:
            return cached
        cached = self._bounds_cache[window] = window_bounds(window, now)
        return cached

    def windows(self, tenant: str, agent: str | None, budgets: Budgets, now: float, *,
                all_windows: bool = False) -> list[WindowKey]:
        """Window keys of one scope: those with a limit (or all four when recording a
        tenant's spend, so /api/v1/budgets can show spend without a limit)."""
        out = []
        for window in (Window if all_windows else budgets):
            limit = budgets.get(window)
            start, end = self._bounds(window, now)
            limit = limit or BudgetLimit()
            out.append(WindowKey("agent" if agent is not None else "tenant", window, start,
                                 end, limit,
                                 SpendKey(self._key(tenant, agent, window, start),
                                          limit.hard_usd, end + _EXPIRY_MARGIN_S)))
        return out

    def admission_keys(self, identity: Identity, now: float) -> list[WindowKey]:
        """Windows with a hard limit for this call (read at admission)."""
        policy = self.book.for_tenant(identity.tenant)
        keys = [k for k in self.windows(identity.tenant, None, policy.budgets, now)
                if k.limit.hard_usd is not None]
        agent_budgets = policy.agent_budgets(identity.agent)
        if agent_budgets:
            keys.extend(k for k in self.windows(identity.tenant, identity.agent, agent_budgets,
                                                now) if k.limit.hard_usd is not None)
        return keys

    def observe(self, tenant: str, keys: Sequence[WindowKey], totals: Sequence[float]) -> None:
        """Remember the spend just read or written, for the budget gauges."""
        with self._observed_lock:
            for key, total in zip(keys, totals, strict=True):
                reference = key.limit.hard_usd if key.limit.hard_usd is not None \
                    else key.limit.soft_usd
                if key.scope == "tenant" and reference is not None:
                    self._observed[(tenant, key.window)] = (total, key.end, reference)
            if len(self._observed) > 4 * _MAX_SEEN:
                now = self.clock()
                self._observed = {k: v for k, v in self._observed.items() if v[1] > now}

    def observed(self) -> list[tuple[str, str, float, float]]:
        """(tenant, window, spend, limit) of windows still running (gauge callback)."""
        now = self.clock()
        with self._observed_lock:
            items = list(self._observed.items())
        return [(tenant, window.value, usd, limit)
                for (tenant, window), (usd, end, limit) in items if end > now]

    def note_seen(self, identity: Identity) -> None:
        """Remember recent tenants (and agents with budgets) for /api/v1/budgets."""
        pair = (identity.tenant, identity.agent
                if identity.agent is not None
                and self.book.for_tenant(identity.tenant).agent_budgets(identity.agent)
                else None)
        seen = self._seen
        if pair in seen:
            seen.move_to_end(pair)
            return
        seen[pair] = None
        if len(seen) > _MAX_SEEN:
            seen.popitem(last=False)

    def refusal(self, keys: Sequence[WindowKey], totals: Sequence[float],
                identity: Identity, now: float) -> tuple[str, float, WindowKey]:
        """Message, seconds until the call may pass, and the binding window."""
        exhausted = [(k, t) for k, t in zip(keys, totals, strict=True)
                     if k.limit.hard_usd is not None and t >= k.limit.hard_usd]
        key, total = max(exhausted, key=lambda pair: pair[0].end)
        who = f"agent {identity.agent} of tenant {identity.tenant}" if key.scope == "agent" \
            else f"tenant {identity.tenant}"
        message = (f"{who} has spent ${total:.4f} of its {key.window.value} budget of "
                   f"${key.limit.hard_usd:.2f}; the budget resets at {_iso(key.end)}")
        return message, key.end - now, key

    # -- recording (thread-safe entry point) ------------------------------------------

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def submit(self, event: SpendEvent) -> None:
        """Record a call's spend; callable from any thread, never blocks."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.lost += 1
            self._instruments.degraded(self.backend.name, "no_event_loop")
            return
        try:
            loop.call_soon_threadsafe(self._start, event)
        except RuntimeError:  # the loop closed meanwhile
            self.lost += 1

    def _start(self, event: SpendEvent) -> None:
        task = asyncio.get_running_loop().create_task(self.record(event))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.lost += 1
            _log.error("recording spend failed", exc_info=task.exception())

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait for spend writes in flight (shutdown, tests)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)

    async def record(self, event: SpendEvent) -> None:
        now = self.clock()
        policy = self.book.for_tenant(event.tenant)
        keys = self.windows(event.tenant, None, policy.budgets, now, all_windows=True)
        agent_budgets = policy.agent_budgets(event.agent)
        if agent_budgets:
            keys.extend(self.windows(event.tenant, event.agent, agent_budgets, now))
        try:
            totals = await self.backend.add_spend([k.key for k in keys], event.usd, now)
        except StateUnavailable as exc:
            self.lost += 1
            self._instruments.degraded(self.backend.name, "add_spend")
            _log.debug("spend of tenant %s not recorded: %s", event.tenant, exc)
            return
        self.observe(event.tenant, keys, totals)
        if event.usd is None or self._alerts is None:
            return
        for key, total in zip(keys, totals, strict=True):
            # The totals before and after this call and the limit, to the nano-dollar: float
            # subtraction can land a hair under a limit that the previous call had reached
            # exactly (0.7 - 0.2 is 0.49999999999999994), which would raise that crossing's
            # alert a second time. Rounded alike, consecutive calls agree on where the
            # limit was crossed.
            before = round(total - event.usd, _USD_DIGITS)
            after = round(total, _USD_DIGITS)
            for kind, limit, severity in (
                ("budget_soft", key.limit.soft_usd, AlertSeverity.WARNING),
                ("budget_hard", key.limit.hard_usd, AlertSeverity.CRITICAL),
            ):
                if limit is not None and before < round(limit, _USD_DIGITS) <= after:
                    self._alerts.raise_alert(self._alert(kind, severity, event, key, total,
                                                         limit))

    def _alert(self, kind: str, severity: AlertSeverity, event: SpendEvent, key: WindowKey,
               total: float, limit: float) -> Alert:
        who = (f"agent {event.agent} of tenant {event.tenant}" if key.scope == "agent"
               else f"tenant {event.tenant}")
        level = "soft" if kind == "budget_soft" else "hard"
        action = "further calls are refused until the reset" if level == "hard" \
            else "calls still pass"
        return Alert(
            kind=kind, severity=severity, tenant=event.tenant,
            agent=event.agent if key.scope == "agent" else None,
            subject=key.window.value,
            summary=(f"{who} reached its {key.window.value} {level} budget: "
                     f"${total:.2f} of ${limit:.2f} ({action})"),
            details={"window": key.window.value, "spend_usd": round(total, 6),
                     "limit_usd": limit, "resets_at": _iso(key.end)},
        )

    # -- reporting ---------------------------------------------------------------------

    def known(self, tenant: str | None = None) -> list[tuple[str, str | None]]:
        """Scopes to report: configured tenants and their named agents, and recent ones."""
        pairs: dict[tuple[str, str | None], None] = {}
        for name, override in self.book.overrides.entries:
            pairs[(name, None)] = None
            for named in override.agents:
                if named != ANY_AGENT:
                    pairs[(name, named)] = None
        for seen_tenant, seen_agent in self._seen:
            pairs[(seen_tenant, None)] = None
            if seen_agent is not None:
                pairs[(seen_tenant, seen_agent)] = None
        if tenant is not None:
            return [p for p in pairs if p[0] == tenant] or [(tenant, None)]
        return sorted(pairs, key=lambda p: (p[0], p[1] or ""))

    async def status(self, scopes: Sequence[tuple[str, str | None]]) -> list[dict[str, Any]]:
        """Spend, limits, utilisation and reset of every window of ``scopes``."""
        now = self.clock()
        plan: list[tuple[str, str | None, list[WindowKey]]] = []
        for tenant, agent in scopes:
            policy = self.book.for_tenant(tenant)
            budgets = policy.agent_budgets(agent) if agent is not None else policy.budgets
            plan.append((tenant, agent, self.windows(tenant, agent, budgets, now,
                                                     all_windows=agent is None)))
        flat = [k.key.key for _, _, keys in plan for k in keys]
        totals = iter(await self.backend.read_spend(flat, now) if flat else ())
        report = []
        for tenant, agent, keys in plan:
            windows = []
            for key in keys:
                spent = next(totals)
                hard, soft = key.limit.hard_usd, key.limit.soft_usd
                reference = hard if hard is not None else soft
                state = "ok"
                if soft is not None and spent.usd >= soft:
                    state = "soft_exceeded"
                if hard is not None and spent.usd >= hard:
                    state = "hard_exceeded"
                windows.append({
                    "window": key.window.value,
                    "spend_usd": round(spent.usd, 9),
                    "calls": spent.calls,
                    "unpriced_calls": spent.unpriced,
                    "soft_usd": soft,
                    "hard_usd": hard,
                    "utilisation": round(spent.usd / reference, 6) if reference else None,
                    "state": state,
                    "window_start": _iso(key.start),
                    "resets_at": _iso(key.end),
                    "resets_in_s": round(key.end - now, 3),
                })
            report.append({"tenant": tenant, "agent": agent, "windows": windows})
        return report
