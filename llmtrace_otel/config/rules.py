"""Rules that involve more than one setting (each key's own rules live in FIELDS).

Each rule looks at the resolved settings (and the environment, for the standard ``OTEL_*``
variables) and returns the problems it finds as ``(key, message)``; validation collects every
problem of every rule, so ``validate`` reports them all at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from llmtrace_otel.config.settings import Settings
from llmtrace_otel.config.values import otlp_requested

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


#: Every cross-field rule, in the order their problems are reported.
CROSS_FIELD_RULES: tuple[Callable[[Settings, Mapping[str, str]], Iterator[Problem]], ...] = (
    _breaker_threshold,
    _budget_order,
    _forward_needs_endpoint,
)
