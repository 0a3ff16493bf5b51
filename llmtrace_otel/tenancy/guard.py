"""TenancyGuard: the request guard that identifies the tenant and enforces its limits.

Per call, on the event loop: resolve the tenant (and agent) from the headers and put them
on the span; then, when the tenant has rate limits or hard budgets, one backend operation
(in memory, or one Redis round trip) admits or refuses the call:

* over a rate limit: 429 ``rate_limited`` with ``Retry-After`` and ``X-RateLimit-*``;
* a hard budget spent: 429 ``budget_exceeded`` with ``Retry-After`` until the reset;
* an invalid tenant/agent header: 400 ``invalid_tenant_id``;
* state backend unreachable: the call passes (``limits.on_backend_error: open``, the
  default) or gets 503 ``limits_unavailable`` (``closed``); either way it is logged,
  counted in ``llmtrace_limits_degraded_total`` and shown on ``/health``.

Admitted calls get ``X-RateLimit-*`` headers; when they end, the tokens/min bucket is
reconciled with the usage the upstream reported.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.util.types import AttributeValue

from llmtrace_otel.guards import CallInfo, CallResult, Verdict
from llmtrace_otel.tenancy.alerts import Alert, AlertDispatcher, AlertSeverity
from llmtrace_otel.tenancy.budgets import BudgetTracker
from llmtrace_otel.tenancy.identity import IdentityError, TenantResolver
from llmtrace_otel.tenancy.limiter import Limit, RateLimiter
from llmtrace_otel.tenancy.metrics import TenancyInstruments
from llmtrace_otel.tenancy.policy import PolicyBook
from llmtrace_otel.tenancy.state import StateBackend, StateUnavailable
from llmtrace_otel.web.errors import ErrorReply
from llmtrace_processors.attributes import (
    LLMTRACE_AGENT_ID,
    LLMTRACE_TENANT_HEADER_IGNORED,
    LLMTRACE_TENANT_ID,
    LLMTRACE_TENANT_SOURCE,
)

__all__ = ["TenancyGuard"]

_log = logging.getLogger(__name__)
_UNITS = {Limit.REQUESTS: "requests/s", Limit.TOKENS: "tokens/min"}


class TenancyGuard:
    """Tenant resolution, rate limits and budgets as one :class:`RequestGuard`."""

    name = "tenancy"

    def __init__(self, resolver: TenantResolver, book: PolicyBook, backend: StateBackend,
                 instruments: TenancyInstruments, *, key_prefix: str = "llmtrace:",
                 budgets: BudgetTracker | None = None, alerts: AlertDispatcher | None = None,
                 fail_closed: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.resolver = resolver
        self.book = book
        self.backend = backend
        self.budgets = budgets
        self.alerts = alerts
        self.instruments = instruments
        self.limiter = RateLimiter(key_prefix)
        self.fail_closed = fail_closed
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warned_header = False

    def _note_ignored_header(self, client_address: str | None) -> None:
        """Say once per process that a tenant header was ignored, and how to trust it."""
        if self._warned_header:
            return
        self._warned_header = True
        _log.warning("X-LLMTrace-Tenant-ID from %s ignored: that caller is not in "
                     "tenancy.header_trusted_from, so its tenant comes from its API key "
                     "(spans carry llmtrace.tenant.header_ignored; see docs/tenancy.md)",
                     client_address or "an unknown address")

    # -- check ---------------------------------------------------------------------

    async def check(self, call: CallInfo) -> Verdict | None:
        try:
            identity = self.resolver.resolve(call.headers, call.client_address)
        except IdentityError as exc:
            return Verdict(reject=ErrorReply(400, "invalid_tenant_id", str(exc)))
        attributes: dict[str, AttributeValue] = {
            LLMTRACE_TENANT_ID: identity.tenant,
            LLMTRACE_TENANT_SOURCE: str(identity.source),
        }
        if identity.agent is not None:
            attributes[LLMTRACE_AGENT_ID] = identity.agent
        if identity.header_ignored:
            attributes[LLMTRACE_TENANT_HEADER_IGNORED] = True
            self._note_ignored_header(call.client_address)
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            if self.budgets is not None:
                self.budgets.bind_loop(self._loop)
        policy = self.book.for_tenant(identity.tenant)
        buckets = self.limiter.buckets(identity.tenant, policy.limits, call.request)
        budgets = self.budgets
        windows = []
        if budgets is not None and call.api is not None:
            budgets.note_seen(identity)
            windows = budgets.admission_keys(identity, self.clock())
        if not buckets and not windows:
            return Verdict(attributes)
        now = self.clock()
        try:
            admission = await self.backend.admit([b for _, b in buckets],
                                                 [w.key for w in windows], now)
        except StateUnavailable as exc:
            return self._degraded(attributes, "admit", exc)
        if windows:
            assert budgets is not None
            budgets.observe(identity.tenant, windows, admission.spend)
        if not admission.budget_ok:
            assert budgets is not None
            message, wait, window = budgets.refusal(windows, admission.spend, identity, now)
            self.instruments.budget_exceeded(identity.tenant, window.window.value,
                                             window.scope)
            return Verdict(attributes, reject=ErrorReply(
                429, "budget_exceeded", message,
                headers=(("Retry-After", str(max(1, math.ceil(wait)))),)))
        binding = self.limiter.binding(buckets, admission)
        if binding is None:
            return Verdict(attributes)
        limit, bucket, state = binding
        headers = self.limiter.headers(bucket, state)
        if not admission.allowed:
            self.instruments.rate_limited(identity.tenant, limit.value)
            retry = self.limiter.retry_after(state)
            message = (f"tenant {identity.tenant} is over its limit of "
                       f"{_amount(policy.limits, limit)} {_UNITS[limit]}; retry in {retry} s")
            return Verdict(attributes, reject=ErrorReply(
                429, "rate_limited", message, headers=(("Retry-After", retry), *headers)))
        return Verdict(attributes, response_headers=headers)

    def _degraded(self, attributes: dict[str, AttributeValue], operation: str,
                  exc: Exception) -> Verdict:
        self.instruments.degraded(self.backend.name, operation)
        if self.alerts is not None:
            self.alerts.raise_alert(Alert(
                kind="state_backend_degraded", severity=AlertSeverity.ERROR, tenant="*",
                subject=self.backend.name,
                summary=(f"limits state backend {self.backend.name} unreachable; calls are "
                         f"{'refused' if self.fail_closed else 'passing without limits'}"),
                details={"error": str(exc)}))
        if self.fail_closed:
            return Verdict(attributes, reject=ErrorReply(
                503, "limits_unavailable",
                "rate limits and budgets cannot be checked right now; retry shortly",
                headers=(("Retry-After", "1"),)))
        return Verdict(attributes)

    # -- completion ------------------------------------------------------------------

    def on_complete(self, call: CallInfo, result: CallResult) -> None:
        # the tenant check() resolved, as it put it on the span (no second HMAC of the key)
        tenant = result.attributes.get(LLMTRACE_TENANT_ID)
        if not isinstance(tenant, str):
            try:
                tenant = self.resolver.resolve(call.headers, call.client_address).tenant
            except IdentityError:
                return
        usage = result.response.usage if result.response is not None else None
        self.instruments.request(tenant, result.status_code)
        if usage is not None:
            for direction, count in (("input", usage.input_tokens),
                                     ("output", usage.output_tokens)):
                if count:
                    self.instruments.tokens(tenant, direction, count)
        limits = self.book.for_tenant(tenant).limits
        if limits.tokens_per_min <= 0:
            return
        delta = self.limiter.reconciliation(self.limiter.reservation(limits, call.request),
                                            usage)
        if delta:
            self._spawn(self._reconcile(tenant, delta))

    async def _reconcile(self, tenant: str, delta: float) -> None:
        limits = self.book.for_tenant(tenant).limits
        bucket = self.limiter.token_bucket(tenant, limits)
        try:
            await self.backend.adjust(bucket, delta, self.clock())
        except StateUnavailable:
            self.instruments.degraded(self.backend.name, "adjust")

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("token reconciliation failed", exc_info=task.exception())

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait for reconciliations and spend writes in flight."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
        if self.budgets is not None:
            await self.budgets.drain(timeout_s)

    # -- lifecycle -------------------------------------------------------------------

    def health(self) -> tuple[dict[str, object], bool]:
        """The ``tenancy`` component of /health, and whether it is degraded."""
        available = getattr(self.backend, "available", True)
        details: dict[str, object] = {
            "state": "ok" if available else "failing",
            "backend": self.backend.name,
            "on_backend_error": "closed" if self.fail_closed else "open",
            "errors": getattr(self.backend, "errors", 0),
        }
        last = getattr(self.backend, "last_error", None)
        if last:
            details["last_error"] = last
        if self.budgets is not None:
            details["spend_records_lost"] = self.budgets.lost
        return details, not available

    async def aclose(self) -> None:
        await self.drain()
        await self.backend.aclose()
        if self.alerts is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.alerts.close, 5.0)


def _amount(limits: Any, limit: Limit) -> str:
    value = limits.requests_per_s if limit is Limit.REQUESTS else limits.tokens_per_min
    return f"{value:g}"
