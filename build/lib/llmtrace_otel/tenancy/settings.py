"""The flat tenancy settings: range checks (called by ``config.validate``) and the
default :class:`TenantPolicy` they describe."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from llmtrace_otel.tenancy.alerts import AlertSeverity
from llmtrace_otel.tenancy.policy import (
    MAX_REQUESTS_PER_S,
    MAX_TOKENS_PER_MIN,
    MAX_USD,
    BudgetLimit,
    PolicyError,
    RateLimits,
    TenantPolicy,
    budget_limit,
    check_number,
    valid_id,
)
from llmtrace_otel.tenancy.windows import Window

if TYPE_CHECKING:
    from llmtrace_otel.config import Settings

__all__ = ["check_settings", "default_policy"]

_WHERE = "settings"


def _range(settings: Settings, name: str, key: str, low: float, high: float,
           zero_ok: bool = False) -> None:
    try:
        check_number(getattr(settings, name), key, _WHERE, low, high, zero_ok=zero_ok)
    except PolicyError as exc:
        raise PolicyError(str(exc).replace(f" ({_WHERE})", "")) from None


def _fail(message: str) -> PolicyError:
    return PolicyError(message)


def _budget(settings: Settings, window: Window) -> BudgetLimit:
    soft = getattr(settings, f"budget_{window.value}_soft_usd") or None
    hard = getattr(settings, f"budget_{window.value}_hard_usd") or None
    try:
        return budget_limit(soft, hard, f"budgets.{window.value}", _WHERE)
    except PolicyError as exc:
        raise PolicyError(str(exc).replace(f" ({_WHERE})", "")) from None


def default_policy(settings: Settings) -> TenantPolicy:
    budgets = {w: limit for w in Window if (limit := _budget(settings, w))}
    return TenantPolicy(
        RateLimits(settings.requests_per_s, settings.request_burst, settings.tokens_per_min),
        budgets,
    )


def check_settings(settings: Settings) -> None:
    """Raise :class:`PolicyError` naming the key of the first invalid tenancy setting."""
    if not valid_id(settings.default_tenant):
        raise _fail(f"tenancy.default_tenant: {settings.default_tenant!r} is not a valid "
                    f"tenant id (1-128 letters, digits, ._:@/+=-)")
    _range(settings, "metric_tenants", "tenancy.metric_tenants", 0, 100_000, zero_ok=True)
    _range(settings, "requests_per_s", "limits.requests_per_s", 1e-6, MAX_REQUESTS_PER_S,
           zero_ok=True)
    _range(settings, "request_burst", "limits.request_burst", 1, 1e9, zero_ok=True)
    _range(settings, "tokens_per_min", "limits.tokens_per_min", 1, MAX_TOKENS_PER_MIN,
           zero_ok=True)
    if settings.limits_on_backend_error not in ("open", "closed"):
        raise _fail(f"limits.on_backend_error: {settings.limits_on_backend_error!r} is not "
                    f"open or closed")
    for window in Window:
        for level in ("soft", "hard"):
            name = f"budget_{window.value}_{level}_usd"
            _range(settings, name, f"budgets.{window.value}_{level}_usd", 1e-9, MAX_USD,
                   zero_ok=True)
        _budget(settings, window)
    if settings.state_backend not in ("memory", "redis"):
        raise _fail(f"state.backend: {settings.state_backend!r} is not memory or redis")
    if urlsplit(settings.redis_url).scheme not in ("redis", "rediss", "unix"):
        raise _fail(f"state.redis_url: {settings.redis_url!r} is not a redis://, rediss:// "
                    f"or unix:// URL")
    _range(settings, "redis_timeout_s", "state.redis_timeout_s", 0.001, 60)
    if any(c in settings.state_key_prefix for c in "{}|"):
        raise _fail("state.key_prefix: must not contain {, } or |")
    _range(settings, "anomaly_sigma", "anomaly.sigma", 0.5, 100)
    _range(settings, "anomaly_min_samples", "anomaly.min_samples", 2, 1e9)
    _range(settings, "anomaly_alpha", "anomaly.alpha", 1e-6, 0.999999)
    _range(settings, "anomaly_rate_window_s", "anomaly.rate_window_s", 0.001, 86400)
    for channel in ("slack", "pagerduty", "webhook"):
        value = getattr(settings, f"alert_{channel}_min_severity")
        try:
            AlertSeverity.parse(value)
        except ValueError as exc:
            raise _fail(f"alerts.{channel}.min_severity: {exc}") from None
    for key, url in (("alerts.slack.webhook_url", settings.alert_slack_webhook_url),
                     ("alerts.pagerduty.url", settings.alert_pagerduty_url),
                     ("alerts.webhook.url", settings.alert_webhook_url)):
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise _fail(f"{key}: {url!r} is not an http(s) URL with a host")
    _range(settings, "alert_cooldown_s", "alerts.cooldown_s", 0, 7 * 86400, zero_ok=True)
    _range(settings, "alert_queue_size", "alerts.queue_size", 1, 1_000_000)
    _range(settings, "alert_timeout_s", "alerts.timeout_s", 0.001, 300)
    _range(settings, "alert_retries", "alerts.retries", 0, 10, zero_ok=True)
    _range(settings, "alert_backoff_s", "alerts.backoff_s", 0, 600, zero_ok=True)
