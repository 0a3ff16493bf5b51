"""Builds the tenancy guard and its parts from Settings (called by ``build_guards``)."""

from __future__ import annotations

import logging

from llmtrace_processors.anomaly import Anomaly, AnomalyConfig, AnomalyProcessor

from llmtrace_otel.config import Settings
from llmtrace_otel.telemetry.pipeline import Telemetry
from llmtrace_otel.tenancy.alerts import Alert, AlertDispatcher, AlertSeverity
from llmtrace_otel.tenancy.budgets import BudgetTracker
from llmtrace_otel.tenancy.guard import TenancyGuard
from llmtrace_otel.tenancy.identity import TenantResolver
from llmtrace_otel.tenancy.metrics import TenancyInstruments
from llmtrace_otel.tenancy.notifiers import (
    DeliveryChannel,
    Notifier,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
)
from llmtrace_otel.tenancy.policy import PolicyBook
from llmtrace_otel.tenancy.settings import default_policy
from llmtrace_otel.tenancy.spend import SpendRecorder
from llmtrace_otel.tenancy.state import MemoryBackend, StateBackend

__all__ = ["build_alerts", "build_backend", "build_tenancy_guard"]

_log = logging.getLogger(__name__)


def build_backend(settings: Settings) -> StateBackend:
    if settings.state_backend == "redis":
        from llmtrace_otel.tenancy.redis_state import RedisBackend

        return RedisBackend(settings.redis_url, timeout_s=settings.redis_timeout_s)
    return MemoryBackend()


def build_alerts(settings: Settings, instruments: TenancyInstruments) -> AlertDispatcher | None:
    channels: list[tuple[Notifier, str]] = []
    if settings.alert_slack_webhook_url:
        channels.append((SlackNotifier(settings.alert_slack_webhook_url),
                         settings.alert_slack_min_severity))
    if settings.alert_pagerduty_routing_key:
        channels.append((PagerDutyNotifier(settings.alert_pagerduty_routing_key,
                                           settings.alert_pagerduty_url),
                         settings.alert_pagerduty_min_severity))
    if settings.alert_webhook_url:
        channels.append((WebhookNotifier(settings.alert_webhook_url),
                         settings.alert_webhook_min_severity))
    if not channels:
        return None
    return AlertDispatcher(
        [DeliveryChannel(notifier, min_severity=AlertSeverity.parse(severity),
                         queue_size=settings.alert_queue_size, timeout_s=settings.alert_timeout_s,
                         retries=settings.alert_retries, backoff_s=settings.alert_backoff_s,
                         count=instruments.delivery)
         for notifier, severity in channels],
        cooldown_s=settings.alert_cooldown_s, count=instruments.alert,
    )


def _anomaly_alert(alerts: AlertDispatcher | None):  # type: ignore[no-untyped-def]
    def listener(tenant: str, agent: str | None, anomaly: Anomaly) -> None:
        if alerts is None:
            return
        kind = anomaly.anomaly_type.value
        alerts.raise_alert(Alert(
            kind="anomaly", severity=AlertSeverity.WARNING, tenant=tenant, agent=agent,
            subject=kind, summary=f"tenant {tenant}: {anomaly.describe()}",
            details={"anomaly_type": kind, "value": anomaly.value,
                     "mean": round(anomaly.mean, 9), "stddev": round(anomaly.stddev, 9),
                     "score": round(anomaly.score, 2), "samples": anomaly.samples}))
    return listener


def build_tenancy_guard(settings: Settings, telemetry: Telemetry) -> TenancyGuard | None:
    """The guard, its state backend, budgets, anomaly detection and alert channels;
    None when ``tenancy.enabled`` is off."""
    if not settings.tenancy_enabled:
        return None
    labels = telemetry.tenant_labels
    instruments = TenancyInstruments(telemetry.meter, labels)
    resolver = TenantResolver(settings.default_tenant, settings.tenant_key_secret)
    if not resolver.stable:
        _log.info("tenancy.key_secret is not set: tenant ids derived from API keys are "
                  "random per process and change at restart")
    book = PolicyBook(default_policy(settings), settings.tenants)
    backend = build_backend(settings)
    alerts = build_alerts(settings, instruments)
    budgets = None
    if book.any_budgets:
        budgets = BudgetTracker(book, backend, key_prefix=settings.state_key_prefix,
                                instruments=instruments, alerts=alerts)
    guard = TenancyGuard(resolver, book, backend, instruments,
                         key_prefix=settings.state_key_prefix, budgets=budgets, alerts=alerts,
                         fail_closed=settings.limits_on_backend_error == "closed")
    slot = telemetry.enricher_slot
    if budgets is not None:
        recorder = SpendRecorder(budgets, settings.default_tenant)
        slot.attach(recorder)
        guard.on_close.append(lambda: slot.detach(recorder))
    if settings.anomaly_enabled:
        processor = AnomalyProcessor(
            config=AnomalyConfig(sigma=settings.anomaly_sigma,
                                 min_samples=settings.anomaly_min_samples,
                                 alpha=settings.anomaly_alpha,
                                 rate_window_s=settings.anomaly_rate_window_s),
            meter_provider=telemetry.meter_provider, tenant_label=labels,
            on_drop=telemetry.instruments.count_drop)
        processor.add_listener(_anomaly_alert(alerts))
        slot.attach(processor)
        guard.on_close.append(lambda: slot.detach(processor))
    return guard
