"""Rules that involve more than one setting (each key's own rules live in FIELDS).

Each rule looks at the resolved settings (and the environment, for the standard ``OTEL_*``
variables) and returns the problems it finds as ``(key, message)``; validation collects every
problem of every rule, so ``validate`` reports them all at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from llmtrace_otel.config.choices import PiiExport, StateBackend
from llmtrace_otel.config.settings import Settings
from llmtrace_otel.config.values import (
    is_loopback,
    otlp_requested,
    split_endpoint,
    worker_count,
)

__all__ = ["CROSS_FIELD_RULES", "Problem"]

#: (dotted key the problem is about, what is wrong).
Problem = tuple[str, str]
_WINDOWS = ("hourly", "daily", "weekly", "monthly")


def _breaker_threshold(settings: Settings, env: Mapping[str, str]) -> Iterator[Problem]:
    if settings.breaker_failure_threshold > settings.breaker_window:
        yield ("breaker.failure_threshold",
               f"must be between 1 and breaker.window ({settings.breaker_window}), got "
               f"{settings.breaker_failure_threshold}")


def _budget_order(settings: Settings, env: Mapping[str, str]) -> Iterator[Problem]:
    for window in _WINDOWS:
        soft = getattr(settings, f"budget_{window}_soft_usd")
        hard = getattr(settings, f"budget_{window}_hard_usd")
        if soft and hard and soft > hard:
            yield (f"budgets.{window}",
                   f"soft_usd ({soft:g}) must not exceed hard_usd ({hard:g})")


def _forward_needs_endpoint(settings: Settings, env: Mapping[str, str]) -> Iterator[Problem]:
    if settings.receiver_forward_metrics and not (
        otlp_requested(settings.otlp_endpoint, env)
        or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    ):
        yield ("receiver.forward_metrics",
               "needs an OTLP endpoint to forward to (otlp.endpoint or "
               "OTEL_EXPORTER_OTLP_ENDPOINT)")


def _body_budget(settings: Settings, env: Mapping[str, str]) -> Iterator[Problem]:
    if settings.max_inflight_body_bytes < settings.max_body_bytes:
        yield ("server.max_inflight_body_bytes",
               f"must be at least server.max_body_bytes ({settings.max_body_bytes}), or no "
               f"request of that size could ever be received; got "
               f"{settings.max_inflight_body_bytes}")


def _open_receiver(settings: Settings, env: Mapping[str, str]) -> Iterator[Problem]:
    if settings.receiver_auth_token is not None or settings.receiver_allow_unauthenticated:
        return
    for key, endpoint in (("receiver.grpc_endpoint", settings.receiver_grpc_endpoint),
                          ("receiver.http_endpoint", settings.receiver_http_endpoint)):
        if endpoint is None:
            continue
        try:
            host, _ = split_endpoint(endpoint)
        except ValueError:
            continue  # reported by the key's own check
        if not is_loopback(host):
            yield (key, f"{endpoint!r} accepts spans from the network without a token: set "
                        "receiver.auth_token (16+ characters), or "
                        "receiver.allow_unauthenticated=true behind a boundary you trust")
    if settings.receiver_on_proxy and not is_loopback(settings.host):
        yield ("receiver.on_proxy", f"the proxy listens on {settings.host!r}: set "
                                    "receiver.auth_token, or receiver.allow_unauthenticated=true")


def _redaction_needs_analysis(settings: Settings, env: Mapping[str, str]) -> Iterator[Problem]:
    if settings.security_pii_export is PiiExport.REDACT and not settings.security_enabled:
        yield ("security.pii_export",
               "redact needs security.enabled=true (the security stage finds what to redact); "
               "with security off, use telemetry.capture_content=false to keep content out")


def _shared_state(settings: Settings, env: Mapping[str, str]) -> Iterator[Problem]:
    """Rate limits and budgets must be exact across relay workers: with the memory backend
    each worker would keep its own, N separate limits."""
    workers = worker_count(settings.workers)
    if (workers <= 1 or not settings.tenancy_enabled
            or settings.state_backend is not StateBackend.MEMORY):
        return
    limits = bool(settings.requests_per_s or settings.tokens_per_min) or any(
        override.requests_per_s or override.tokens_per_min
        for _, override in settings.tenants.entries)
    budgets = any(getattr(settings, f"budget_{window}_{kind}_usd")
                  for window in _WINDOWS for kind in ("soft", "hard")) or any(
        override.budgets or override.agents for _, override in settings.tenants.entries)
    shared = [what for what, on in (("rate limits", limits), ("budgets", budgets)) if on]
    if shared:
        yield ("server.workers",
               f"{workers} workers with state.backend=memory would each keep their own "
               f"{' and '.join(shared)} ({workers} separate limits): set state.backend=redis "
               "(and state.redis_url) to share them, or server.workers=1")


#: Every cross-field rule, in the order their problems are reported.
CROSS_FIELD_RULES: tuple[Callable[[Settings, Mapping[str, str]], Iterator[Problem]], ...] = (
    _breaker_threshold,
    _budget_order,
    _forward_needs_endpoint,
    _body_budget,
    _open_receiver,
    _redaction_needs_analysis,
    _shared_state,
)
