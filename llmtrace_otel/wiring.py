"""How llmtrace-otel is put together: the one place that builds every part from Settings.

Read it top to bottom. Each part takes its own small config (or a few keyword arguments)
and the parts it needs; nothing else in the product reads :class:`Settings`, and nothing
imports this module but the entry points (the CLI, the SDK's ``instrument()``) and tests.
Parts are built in dependency order, so none is patched in after the fact:

1. **Settings -> part configs**: the small typed configs of the proxy, the receiver, the
   upstream client, the tenancy policy, OTLP and the circuit breakers.
2. **Metrics**: the resource, the meter provider with its readers (Prometheus for
   ``/metrics``, OTLP when configured) and the instruments.
3. **Tenancy** (it needs the meter): the state backend, budgets, alerts, the tenancy guard
   and the two stages it adds to the chain (spend recorder, anomaly detector).
4. **The pipeline**: the enrichers in order (cost, security, spend, anomaly, content
   policy), one export sink per exporter, the chain and the tracer provider.
5. **Front doors**: the proxy (request guards, the relay, the API, viewer, budgets and
   receiver routes on its port) and the collector (OTLP receivers). The SDK's front door
   builds its pipeline with :func:`build_pipeline`.
6. **Several processes** (``server.workers``): the same parts split between the telemetry
   process (the pipeline, the exporters, /metrics and /health for all:
   :func:`build_telemetry_process`) and the relay workers (the front doors, shipping their
   spans to it: :func:`build_proxy_worker`, :func:`build_collector_worker`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import (
    SERVICE_INSTANCE_ID,
    SERVICE_NAME,
    OTELResourceDetector,
    Resource,
)
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry

from llmtrace_otel.api import API_PREFIX, ApiContext, api_routes
from llmtrace_otel.config import (
    BackendErrorPolicy,
    ConfigError,
    Enforcement,
    PiiExport,
    Settings,
    StateBackend,
    StreamScan,
    field_by_name,
    otlp_requested,
    split_list,
    worker_count,
)
from llmtrace_otel.config.tenants import BudgetLimit
from llmtrace_otel.exporters.otlp import OtlpTarget
from llmtrace_otel.exporters.store import open_store, store_exporter
from llmtrace_otel.guards import GuardChain, RequestGuard
from llmtrace_otel.proxy.app import Closer, ProxyServer
from llmtrace_otel.proxy.handler import ProxyContext
from llmtrace_otel.proxy.routing import Router
from llmtrace_otel.proxy.security_guard import SecurityGuard
from llmtrace_otel.proxy.stream_guard import StreamScanPolicy
from llmtrace_otel.proxy.upstream import UpstreamClient, UpstreamConfig
from llmtrace_otel.receiver.collector import CollectorServer
from llmtrace_otel.receiver.forward import OTLPForwarder
from llmtrace_otel.receiver.http import OTLP_PATHS, otlp_routes
from llmtrace_otel.receiver.metrics_codec import encode_metrics_data
from llmtrace_otel.receiver.service import OTLPReceiver, ReceiverConfig
from llmtrace_otel.supervisor.hub import Hub, Rendered, WorkerSnapshots
from llmtrace_otel.supervisor.peer_metrics import PeerMetrics
from llmtrace_otel.supervisor.shipper import SpanShipper
from llmtrace_otel.supervisor.spend import ForwardedSpend, spend_handler
from llmtrace_otel.supervisor.telemetry_process import TelemetryProcess
from llmtrace_otel.supervisor.worker_link import WorkerLink, forwarding_ops_routes
from llmtrace_otel.telemetry.instruments import ProxyInstruments
from llmtrace_otel.telemetry.merging_reader import (
    MergingInMemoryMetricReader,
    MergingPeriodicExportingMetricReader,
    MergingPrometheusMetricReader,
    MergingReader,
)
from llmtrace_otel.telemetry.metric_sources import (
    CumulativeSource,
    LocalHistograms,
    takes_local_histograms,
)
from llmtrace_otel.telemetry.metrics_merge import GAUGE_MERGE, GaugeMerge
from llmtrace_otel.telemetry.pipeline import INSTRUMENTATION_NAME, Telemetry
from llmtrace_otel.telemetry.process import observe_process, register_process_collectors
from llmtrace_otel.telemetry.provider_health import ProviderHealth
from llmtrace_otel.tenancy.alerts import Alert, AlertDispatcher, AlertSeverity
from llmtrace_otel.tenancy.api import budget_routes
from llmtrace_otel.tenancy.budgets import BudgetTracker
from llmtrace_otel.tenancy.guard import TenancyGuard
from llmtrace_otel.tenancy.identity import TenantResolver, parse_trusted
from llmtrace_otel.tenancy.key_secret import load_or_create_secret, secret_path_for
from llmtrace_otel.tenancy.metrics import GAUGE_MERGE as TENANCY_GAUGE_MERGE
from llmtrace_otel.tenancy.metrics import TenancyInstruments
from llmtrace_otel.tenancy.notifiers import (
    DeliveryChannel,
    Notifier,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
)
from llmtrace_otel.tenancy.policy import PolicyBook, RateLimits, TenantPolicy
from llmtrace_otel.tenancy.spend import SpendRecorder, SpendSink
from llmtrace_otel.tenancy.state import MemoryBackend
from llmtrace_otel.tenancy.state import StateBackend as TenancyBackend
from llmtrace_otel.tenancy.windows import Window
from llmtrace_otel.ui import UI_PREFIX, ui_routes
from llmtrace_otel.version import __version__
from llmtrace_otel.web.auth import BearerToken
from llmtrace_otel.web.gate import SMALL_BODY_BYTES
from llmtrace_otel.web.metrics_exposition import render as render_exposition
from llmtrace_otel.web.ops import HEALTH_PATH, METRICS_PATH
from llmtrace_otel.web.root import RootInfo, root_routes
from llmtrace_otel.web.server import RouteSpec, ServerConfig
from llmtrace_processors.anomaly import Anomaly, AnomalyConfig, AnomalyProcessor
from llmtrace_processors.breaker import BreakerPolicy, CircuitBreakers
from llmtrace_processors.chain import (
    BackgroundSpanProcessor,
    EnrichingSpanProcessor,
    build_chain,
)
from llmtrace_processors.content_policy import ContentPolicyProcessor
from llmtrace_processors.cost import CostProcessor, PriceTable
from llmtrace_processors.genai_latest import genai_latest
from llmtrace_processors.labels import BoundedLabels
from llmtrace_processors.security.findings import Severity
from llmtrace_processors.security.processor import SecurityProcessor
from llmtrace_processors.sinks import ExportSink

__all__ = [
    "Extras",
    "build_collector",
    "build_collector_worker",
    "build_pipeline",
    "build_proxy",
    "build_proxy_worker",
    "build_telemetry_process",
    "worker_environment",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Extras:
    """What tests and embedders add to the configured product, without global state."""

    #: More sinks after the chain (an ``InMemorySpanExporter`` behind a processor, ...).
    span_processors: Sequence[SpanProcessor] = ()
    #: More metric readers (a ``MergingInMemoryMetricReader``, ...). A reader that is not a
    #: ``MergingReader`` cannot receive pre-aggregated histograms: with one, every histogram
    #: is the SDK's (slower, the same data).
    metric_readers: Sequence[MetricReader] = ()
    #: More enrichers, after the configured analysis and before the content policy.
    enrichers: Sequence[EnrichingSpanProcessor] = ()
    #: Request guards instead of the configured ones (None: the configured ones).
    guards: Sequence[RequestGuard] | None = None


# -- 1. Settings -> part configs ------------------------------------------------------------

def server_config(settings: Settings) -> ServerConfig:
    return ServerConfig(
        host=settings.host, port=settings.port, max_body_bytes=settings.max_body_bytes,
        idle_timeout_s=settings.idle_timeout_s, body_timeout_s=settings.body_timeout_s,
        max_header_bytes=settings.max_header_bytes, max_connections=settings.max_connections,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        allowed_hosts=split_list(settings.allowed_hosts),
        max_inflight_body_bytes=settings.max_inflight_body_bytes)


def upstream_config(settings: Settings) -> UpstreamConfig:
    return UpstreamConfig(
        connect_timeout_s=settings.connect_timeout_s, read_timeout_s=settings.read_timeout_s,
        total_timeout_s=settings.total_timeout_s,
        max_connections=settings.max_upstream_connections,
        retry_connect_failures=settings.retry_connect_failures)


def receiver_config(settings: Settings) -> ReceiverConfig:
    return ReceiverConfig(
        max_body_bytes=settings.max_body_bytes, auth_token=settings.receiver_auth_token,
        queue_size=settings.receiver_queue_size, retry_after_s=settings.receiver_retry_after_s,
        genai_latest=genai_latest(settings.semconv_stability_opt_in),
        join_wait_s=settings.receiver_join_wait_s,
        keep_content=settings.capture_content
        and settings.security_pii_export is not PiiExport.REDACT)


def otlp_target(settings: Settings) -> OtlpTarget:
    return OtlpTarget(settings.otlp_endpoint, settings.otlp_protocol.value)


def breaker_policy(settings: Settings) -> BreakerPolicy:
    return BreakerPolicy(
        failure_threshold=settings.breaker_failure_threshold, window=settings.breaker_window,
        recovery_s=settings.breaker_recovery_s,
        half_open_probes=settings.breaker_half_open_probes)


def default_policy(settings: Settings) -> TenantPolicy:
    """The policy of every tenant without its own entry (``limits.*``, ``budgets.*``)."""
    budgets: dict[Window, BudgetLimit] = {}
    for window in Window:
        soft = getattr(settings, f"budget_{window.value}_soft_usd") or None
        hard = getattr(settings, f"budget_{window.value}_hard_usd") or None
        if soft is not None or hard is not None:
            budgets[window] = BudgetLimit(soft, hard)
    return TenantPolicy(RateLimits(settings.requests_per_s, settings.request_burst,
                                   settings.tokens_per_min), budgets)


# -- 2. Metrics -------------------------------------------------------------------------------

@dataclass
class _Metering:
    """The first half of a pipeline: everything the other parts need a meter for."""

    resource: Resource
    meter_provider: MeterProvider
    meter: Meter
    registry: CollectorRegistry | None
    push_readers: list[MetricReader]
    instruments: ProxyInstruments
    breakers: CircuitBreakers | None
    tenant_labels: BoundedLabels
    histograms: LocalHistograms | None
    prometheus_reader: MergingPrometheusMetricReader | None
    #: A relay worker's cumulative metrics, read when the telemetry process asks.
    snapshot_reader: MergingInMemoryMetricReader | None = None


def _resource(settings: Settings) -> Resource:
    detected = OTELResourceDetector().detect()  # OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
    attributes: dict[str, str] = {"service.version": __version__}
    if SERVICE_NAME not in detected.attributes:
        attributes[SERVICE_NAME] = settings.service_name
    return Resource.create(attributes).merge(detected)


#: How each gauge of several worker processes combines (``metrics_merge.py``).
_GAUGE_MERGE: Final[Mapping[str, GaugeMerge]] = MappingProxyType(
    {**GAUGE_MERGE, **TENANCY_GAUGE_MERGE})


def _worker_resource(resource: Resource, index: int) -> Resource:
    """A relay worker's metrics are its own stream (OTLP pushes them per process): its own
    ``service.instance.id``, derived from the configured one when there is one."""
    base = resource.attributes.get(SERVICE_INSTANCE_ID)
    instance = f"{base}/worker-{index}" if base else f"{uuid.uuid4()}"
    return resource.merge(Resource({SERVICE_INSTANCE_ID: instance}))


def _metering(settings: Settings, env: Mapping[str, str], extras: Extras,
              instrumentation_name: str, meter_provider: MeterProvider | None, *,
              worker: int | None = None) -> _Metering:
    """``worker``: the index of a relay worker (no /metrics of its own: a snapshot reader
    the telemetry process reads instead)."""
    resource = _resource(settings)
    registry: CollectorRegistry | None = None
    prometheus: MergingPrometheusMetricReader | None = None
    push_readers: list[MetricReader] = []
    snapshot_reader: MergingInMemoryMetricReader | None = None
    readers: list[MetricReader] | None = None
    if worker is not None:
        resource = _worker_resource(resource, worker)
    if meter_provider is None:
        readers = list(extras.metric_readers)
        if worker is not None:
            if settings.metrics_enabled:
                snapshot_reader = MergingInMemoryMetricReader(gauges=_GAUGE_MERGE)
                readers.append(snapshot_reader)
        elif settings.metrics_enabled:
            registry = CollectorRegistry()
            # Without the otel_scope_* labels: ~90 bytes on every line of /metrics, and
            # nothing a metric name and target_info (service.version) do not already say.
            prometheus = MergingPrometheusMetricReader(
                registry=registry, scope_info_enabled=False, gauges=_GAUGE_MERGE)
            readers.append(prometheus)
        if otlp_requested(settings.otlp_endpoint, env):
            push_readers.append(MergingPeriodicExportingMetricReader(
                otlp_target(settings).metric_exporter(), gauges=_GAUGE_MERGE))
            readers.extend(push_readers)
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    # else: the application's provider (SDK): its readers are its own
    meter = meter_provider.get_meter(instrumentation_name, __version__)
    histograms = _local_histograms(meter, resource, readers)
    instruments = ProxyInstruments(
        meter,
        histograms=histograms,
        genai_latest=genai_latest(settings.semconv_stability_opt_in),
        model_cap=BoundedLabels(settings.metrics_max_models,
                                allow=split_list(settings.metrics_model_allowlist)),
        provider_health=ProviderHealth(
            window_s=settings.provider_health_window_s,
            min_calls=settings.provider_health_min_calls,
            failure_ratio=settings.provider_health_failure_ratio,
            consecutive_failures=settings.provider_health_consecutive_failures,
        ),
    )
    if settings.metrics_process:
        if registry is not None:
            register_process_collectors(registry)
        observe_process(meter)
    # breakers guard exporters and analysis stages: not in a relay worker, which has neither
    breakers = (CircuitBreakers(breaker_policy(settings))
                if settings.breaker_enabled and worker is None else None)
    if breakers is not None:
        breakers.observe(meter)
    for reader in readers or ():
        if isinstance(reader, MergingReader):
            reader.set_drop_counter(instruments.count_drop)
    return _Metering(resource, meter_provider, meter, registry, push_readers, instruments,
                     breakers, BoundedLabels(settings.metric_tenants), histograms, prometheus,
                     snapshot_reader)


def _local_histograms(meter: Meter, resource: Resource,
                      readers: Sequence[MetricReader] | None) -> LocalHistograms | None:
    """Pre-aggregated histograms (``telemetry/histograms.py``), merged into every reader,
    when every reader can take them; None (the SDK's histograms) when the meter provider
    is the application's (its readers are not ours) or one reader cannot (not a
    ``MergingReader``, or it asked for another histogram aggregation)."""
    if readers is None:
        return None
    if not all(isinstance(reader, MergingReader) and takes_local_histograms(reader)
               for reader in readers):
        _log.info("a metric reader cannot take pre-aggregated histograms: using the SDK's")
        return None
    local = LocalHistograms(InstrumentationScope(meter.name, meter.version, meter.schema_url),
                            resource)
    for reader in readers:
        assert isinstance(reader, MergingReader)
        reader.add_source(local)
    return local


# -- 3. Tenancy -------------------------------------------------------------------------------

@dataclass
class _Tenancy:
    #: None in the telemetry process (its relay workers admit requests).
    guard: TenancyGuard | None
    #: Chain stages it adds: the spend recorder (budgets), the anomaly detector.
    enrichers: list[EnrichingSpanProcessor]
    #: The budgets this process enforces (None: no budgets, or not a relaying process).
    budgets: BudgetTracker | None


def _state_backend(settings: Settings) -> TenancyBackend:
    if settings.state_backend is StateBackend.REDIS:
        from llmtrace_otel.tenancy.redis_state import RedisBackend

        return RedisBackend(settings.redis_url, timeout_s=settings.redis_timeout_s)
    return MemoryBackend()


def _alerts(settings: Settings, instruments: TenancyInstruments) -> AlertDispatcher | None:
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


def _anomaly_alerts(alerts: AlertDispatcher
                    ) -> Callable[[str, str | None, Anomaly], None]:
    def listener(tenant: str, agent: str | None, anomaly: Anomaly) -> None:
        kind = anomaly.anomaly_type.value
        alerts.raise_alert(Alert(
            kind="anomaly", severity=AlertSeverity.WARNING, tenant=tenant, agent=agent,
            subject=kind, summary=f"tenant {tenant}: {anomaly.describe()}",
            details={"anomaly_type": kind, "value": anomaly.value,
                     "mean": round(anomaly.mean, 9), "stddev": round(anomaly.stddev, 9),
                     "score": round(anomaly.score, 2), "samples": anomaly.samples}))
    return listener


def _tenant_key_secret(settings: Settings) -> str | None:
    """``tenancy.key_secret``, else the one kept beside the SQLite store (created once),
    so tenant ids derived from API keys survive restarts; None (random per process, with
    a warning) when there is neither. A store that cannot hold it does not stop the proxy:
    telemetry never takes traffic down (the store's own failure shows on /health)."""
    if settings.tenant_key_secret is not None:
        return settings.tenant_key_secret
    if not settings.sqlite_enabled:
        _log.warning("tenancy.key_secret is not set and there is no local store to keep one "
                     "in: tenant ids derived from API keys change at every restart. Set "
                     "tenancy.key_secret.")
        return None
    path = secret_path_for(settings.sqlite_path)
    try:
        secret, created = load_or_create_secret(path)
    except OSError as exc:
        _log.warning("tenancy.key_secret is not set and the secret kept in %s cannot be used "
                     "(%s): tenant ids derived from API keys change at every restart. Set "
                     "tenancy.key_secret.", path, exc)
        return None
    if created:
        _log.info("tenancy.key_secret is not set: generated one for tenant ids derived from "
                  "API keys, kept in %s (0600)", path)
    if settings.state_backend is StateBackend.REDIS:
        _log.warning("state.backend=redis shares limits and budgets between instances, but "
                     "tenant ids derived from API keys use this instance's secret (%s): set "
                     "the same tenancy.key_secret on every instance", path)
    return secret


def _tenancy(settings: Settings, metering: _Metering, *, relay: bool = True,
             analysis: bool = True, spend: SpendSink | None = None) -> _Tenancy | None:
    """The tenancy guard and its chain stages; None when ``tenancy.enabled`` is off.

    A single process builds both; with relay workers, each worker builds the guard
    (``analysis=False``: limits and budgets are enforced where requests are admitted) and
    the telemetry process the stages (``relay=False``), its spend recorder sending each
    call's spend to a worker (``spend``) instead of to a tracker of its own.
    """
    if not settings.tenancy_enabled:
        return None
    instruments = TenancyInstruments(metering.meter, metering.tenant_labels)
    book = PolicyBook(default_policy(settings), settings.tenants)
    alerts = _alerts(settings, instruments)
    guard = budgets = None
    if relay:
        resolver = TenantResolver(
            settings.default_tenant, _tenant_key_secret(settings),
            trusted=parse_trusted(split_list(settings.tenant_header_trusted_from)),
            key_tenants=settings.tenants.key_tenants())
        backend = _state_backend(settings)
        if book.any_budgets:
            budgets = BudgetTracker(book, backend, key_prefix=settings.state_key_prefix,
                                    instruments=instruments, alerts=alerts)
        guard = TenancyGuard(
            resolver, book, backend, instruments, key_prefix=settings.state_key_prefix,
            budgets=budgets, alerts=alerts,
            fail_closed=settings.limits_on_backend_error is BackendErrorPolicy.CLOSED)
    enrichers: list[EnrichingSpanProcessor] = []
    if analysis:
        sink = spend if spend is not None else budgets
        if book.any_budgets and sink is not None:
            enrichers.append(SpendRecorder(sink, settings.default_tenant))
        if settings.anomaly_enabled:
            anomaly = AnomalyProcessor(
                config=AnomalyConfig(sigma=settings.anomaly_sigma,
                                     min_samples=settings.anomaly_min_samples,
                                     alpha=settings.anomaly_alpha,
                                     rate_window_s=settings.anomaly_rate_window_s),
                meter_provider=metering.meter_provider, tenant_label=metering.tenant_labels,
                on_drop=metering.instruments.count_drop)
            if alerts is not None:
                anomaly.add_listener(_anomaly_alerts(alerts))
            enrichers.append(anomaly)
    return _Tenancy(guard, enrichers, budgets)


# -- 4. The pipeline --------------------------------------------------------------------------

def _redacting(settings: Settings) -> bool:
    """``security.pii_export: redact`` with content exported (content that is not exported
    needs no redaction)."""
    return (settings.security_enabled and settings.security_pii_export is PiiExport.REDACT
            and settings.capture_content)


def _security(settings: Settings, meter_provider: MeterProvider
              ) -> list[EnrichingSpanProcessor]:
    """The security stage, when enabled: content is analysed before it is stripped. With the
    latest GenAI conventions it also writes gen_ai.evaluation.result events."""
    if not settings.security_enabled:
        return []
    processor = SecurityProcessor(
        min_severity=Severity.parse(settings.security_min_severity),
        meter_provider=meter_provider,
        redact=_redacting(settings),
        evaluation_events=genai_latest(settings.semconv_stability_opt_in))
    if settings.security_workers <= 0:
        return [processor]
    # Detectors in worker processes (processors/security/pool.py); the processor above
    # builds the enrichments and scans in-process if the pool fails.
    from llmtrace_processors.security.offload import OffloadedSecurityProcessor
    from llmtrace_processors.security.pool import DetectorPool

    pool = DetectorPool(settings.security_workers)
    return [OffloadedSecurityProcessor(processor, pool, meter_provider=meter_provider)]


def _exporters(settings: Settings, env: Mapping[str, str], metering: _Metering,
               blocking_export: bool) -> list[ExportSink]:
    """One sink per configured exporter, each with its own queue, breaker and books."""
    breakers, instruments = metering.breakers, metering.instruments
    sinks: list[ExportSink] = []
    store = store_exporter(settings, on_operation=instruments.count_storage)  # SQLite or PG
    if store is not None:
        sinks.append(ExportSink(
            store.name, store.exporter,
            max_queue_size=settings.analysis_queue_size, schedule_delay_millis=500,
            on_drop=instruments.count_drop, meter_provider=metering.meter_provider,
            block_when_full=blocking_export,
            breaker=breakers.new(f"export.{store.name}") if breakers is not None else None,
        ))
    if otlp_requested(settings.otlp_endpoint, env):
        sinks.append(ExportSink(
            "otlp", otlp_target(settings).span_exporter(),
            max_queue_size=settings.analysis_queue_size,
            on_drop=instruments.count_drop, meter_provider=metering.meter_provider,
            block_when_full=blocking_export,
            breaker=breakers.new("export.otlp") if breakers is not None else None,
        ))
    return sinks


def _guard_analysis(enrichers: Sequence[EnrichingSpanProcessor], breakers: CircuitBreakers,
                    settings: Settings) -> None:
    """A breaker per analysis stage (``analysis.<stage>``); stages that must never be
    skipped (content policy, budget spend) get none."""
    policy = dataclasses.replace(breaker_policy(settings),
                                 slow_call_s=settings.breaker_analysis_slow_ms / 1000)
    for enricher in enrichers:
        if not enricher.bypassable:
            continue
        name, n = f"analysis.{enricher.stage}", 1
        while breakers.get(name) is not None:
            n += 1
            name = f"analysis.{enricher.stage}#{n}"
        enricher.set_breaker(breakers.new(name, policy))


def _pipeline(settings: Settings, env: Mapping[str, str], metering: _Metering, extras: Extras,
              *, stages: Sequence[EnrichingSpanProcessor] = (),
              sinks: Sequence[SpanProcessor] = (), instrumentation_name: str,
              tracer_provider: TracerProvider | None, blocking_export: bool,
              exporters: bool = True) -> Telemetry:
    """The chain from the enrichers to the exporters, on a tracer provider."""
    prices = PriceTable.builtin()
    if settings.pricing_file:
        prices = prices.merged_with(PriceTable.from_file(settings.pricing_file))
    enrichers: list[EnrichingSpanProcessor] = [
        CostProcessor(prices=prices, meter_provider=metering.meter_provider,
                      tenant_label=metering.tenant_labels),
        *_security(settings, metering.meter_provider),
        *stages,
        *extras.enrichers,
        ContentPolicyProcessor(capture_content=settings.capture_content,
                               require_redaction=_redacting(settings)),
    ]
    if metering.breakers is not None:
        _guard_analysis(enrichers, metering.breakers, settings)
    export_sinks = _exporters(settings, env, metering, blocking_export) if exporters else []
    head = build_chain(
        enrichers,
        [*export_sinks, *sinks, *extras.span_processors],
        max_queue_size=settings.analysis_queue_size,
        on_drop=metering.instruments.count_drop,
        stall_timeout_s=settings.analysis_stall_timeout_s or None,
    )
    if tracer_provider is None:
        tracer_provider = TracerProvider(resource=metering.resource)
    tracer_provider.add_span_processor(head)
    return Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=metering.meter_provider,
        tracer=tracer_provider.get_tracer(instrumentation_name, __version__),
        meter=metering.meter,
        instruments=metering.instruments,
        prometheus_registry=metering.registry,
        head=head,
        needs_content=settings.capture_content or any(
            getattr(enricher, "needs_content", False) for enricher in enrichers),
        exporters=export_sinks,
        tenant_labels=metering.tenant_labels,
        breakers=metering.breakers,
        push_readers=metering.push_readers,
        histograms=metering.histograms,
        prometheus_reader=metering.prometheus_reader,
    )


def build_pipeline(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    extras: Extras = Extras(),
    instrumentation_name: str = INSTRUMENTATION_NAME,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    exporters: bool = True,
) -> Telemetry:
    """The pipeline alone (no tenancy, no server): what the SDK instrumentation uses.

    ``tracer_provider`` / ``meter_provider`` are used instead of new ones: the chain is
    added to the given tracer provider, and a given meter provider keeps its own readers.
    ``exporters=False`` leaves out our own span exporters (SQLite, OTLP).
    """
    env = os.environ if env is None else env
    metering = _metering(settings, env, extras, instrumentation_name, meter_provider)
    return _pipeline(settings, env, metering, extras, instrumentation_name=instrumentation_name,
                     tracer_provider=tracer_provider, blocking_export=False,
                     exporters=exporters)


# -- 5. Front doors ---------------------------------------------------------------------------

def _request_guards(settings: Settings, tenancy: _Tenancy | None) -> list[RequestGuard]:
    """The request guards the settings ask for, in the order they run."""
    guards: list[RequestGuard] = []
    if tenancy is not None and tenancy.guard is not None:
        guards.append(tenancy.guard)
    if settings.security_enforcement is not Enforcement.OFF:
        guards.append(SecurityGuard(
            mode=settings.security_enforcement,
            enforce_types=split_list(settings.security_enforce_types),
            min_severity=Severity.parse(settings.security_enforce_min_severity),
            fail_closed=settings.security_fail_closed,
            max_chars=settings.security_guard_max_chars,
            budget_ms=settings.security_guard_budget_ms,
        ))
    return guards


def _stream_scan(settings: Settings, telemetry: Telemetry) -> StreamScanPolicy | None:
    if settings.security_stream_scan is StreamScan.OFF:
        return None
    return StreamScanPolicy(mode=settings.security_stream_scan,
                            stop_severity=Severity.parse(settings.security_stream_stop_severity),
                            on_drop=telemetry.instruments.count_drop)


def _admin_auth(settings: Settings) -> BearerToken:
    """``api.admin_token``: what the query API, the viewer's data, budgets and /metrics
    require when it is set."""
    return BearerToken(settings.api_admin_token, "api.admin_token")


def _read_routes(settings: Settings, telemetry: Telemetry, tenancy: _Tenancy | None,
                 closers: list[Closer]) -> list[RouteSpec]:
    """``/api/v1/*`` (query API and budgets) and ``/ui``, when ``api.enabled``."""
    if not settings.api_enabled:
        return []
    if settings.api_admin_token is None and settings.host not in ("127.0.0.1", "::1",
                                                                  "localhost"):
        _log.warning("the query API and /ui are open to anyone who reaches %s:%d; set "
                     "api.admin_token (or api.enabled=false)", settings.host, settings.port)
    auth = _admin_auth(settings)
    store = open_store(settings, on_operation=telemetry.instruments.count_storage)
    api = ApiContext(store, auth)
    closers.append(api.close)
    tracker = tenancy.budgets if tenancy is not None else None
    # budgets before the API's catch-all: every /api/v1 path is the API's, never relayed
    return [*budget_routes(tracker, auth), *api_routes(api), *ui_routes()]


def _receiver(settings: Settings, telemetry: Telemetry,
              env: Mapping[str, str]) -> OTLPReceiver:
    forwarder = None
    if settings.receiver_forward_metrics:
        resolved = otlp_target(settings).resolved("metrics", env)
        if resolved is None:  # checked by config; the environment may have changed since
            raise ConfigError("receiver.forward_metrics: needs an OTLP endpoint to forward "
                              "to (otlp.endpoint or OTEL_EXPORTER_OTLP_ENDPOINT)")
        endpoint, headers = resolved
        forwarder = OTLPForwarder(endpoint, settings.otlp_protocol.value, headers)
    logs_forwarder = None  # logs go on whenever there is somewhere to send them
    resolved_logs = otlp_target(settings).resolved("logs", env)
    if resolved_logs is not None:
        logs_forwarder = OTLPForwarder(resolved_logs[0], settings.otlp_protocol.value,
                                       resolved_logs[1], signal="logs")
    return OTLPReceiver(receiver_config(settings), telemetry, forwarder=forwarder,
                        logs_forwarder=logs_forwarder)


def _proxy_server(settings: Settings, env: Mapping[str, str], telemetry: Telemetry,
                  tenancy: _Tenancy | None, extras: Extras, *,
                  ops: Sequence[RouteSpec] | None = None) -> ProxyServer:
    """The relay on top of a pipeline (this process's, or a worker's shipping one)."""
    guards = GuardChain(
        _request_guards(settings, tenancy) if extras.guards is None else extras.guards,
        telemetry.instruments.count_drop)
    closers: list[Closer] = []
    routes = _read_routes(settings, telemetry, tenancy, closers)
    body_limits = [(API_PREFIX, SMALL_BODY_BYTES), (UI_PREFIX, SMALL_BODY_BYTES)] \
        if routes else []
    if settings.receiver_on_proxy:  # OTLP/HTTP on the proxy's own port
        receiver = _receiver(settings, telemetry, env)
        routes.extend(otlp_routes(receiver))
        body_limits.extend((path, settings.max_body_bytes + 1024 * 1024)
                           for path in OTLP_PATHS)
        closers.append(lambda: receiver.close(settings.shutdown_timeout_s))
    routes.extend(root_routes(RootInfo(  # "/", /favicon.ico, /robots.txt: never relayed
        ui=UI_PREFIX + "/" if settings.api_enabled else None,
        api=API_PREFIX + "/" if settings.api_enabled else None,
        metrics=METRICS_PATH if settings.metrics_enabled else None, health=HEALTH_PATH)))

    def flush_telemetry() -> None:
        try:
            telemetry.force_flush()
        finally:
            telemetry.shutdown()

    closers.append(flush_telemetry)
    closers.append(guards.aclose)  # after the flush: spend of the last spans
    context = ProxyContext(
        router=Router(settings.upstream_url, settings.anthropic_upstream_url,
                      max_providers=settings.metrics_max_providers),
        upstream=UpstreamClient(upstream_config(settings)),
        telemetry=telemetry,
        guards=guards,
        max_body_bytes=settings.max_body_bytes,
        stream_include_usage=settings.stream_include_usage,
        stream_scan=_stream_scan(settings, telemetry),
    )
    return ProxyServer(
        server_config(settings), context, routes=routes, body_limits=body_limits,
        closers=closers, metrics_auth=_admin_auth(settings), ops=ops,
        http_metrics_exclude=(split_list(settings.metrics_http_exclude_paths)
                              if settings.metrics_http_server else None),
    )


def build_proxy(settings: Settings, *, env: Mapping[str, str] | None = None,
                extras: Extras = Extras()) -> ProxyServer:
    """``llmtrace-otel serve``: the relay with its pipeline, guards and read routes."""
    env = os.environ if env is None else env
    metering = _metering(settings, env, extras, INSTRUMENTATION_NAME, None)
    tenancy = _tenancy(settings, metering)
    telemetry = _pipeline(settings, env, metering, extras,
                          stages=tenancy.enrichers if tenancy is not None else (),
                          instrumentation_name=INSTRUMENTATION_NAME, tracer_provider=None,
                          blocking_export=False)
    return _proxy_server(settings, env, telemetry, tenancy, extras)


def _collector_server(settings: Settings, env: Mapping[str, str], telemetry: Telemetry, *,
                      ops: Sequence[RouteSpec] | None = None) -> CollectorServer:
    closers: list[Closer] = []
    try:
        receiver = _receiver(settings, telemetry, env)
        # the query API and the viewer on the collect port too, as on the proxy's
        routes = _read_routes(settings, telemetry, None, closers)
    except BaseException:
        telemetry.shutdown()
        raise
    return CollectorServer(server_config(settings), receiver, telemetry,
                           grpc_endpoint=settings.receiver_grpc_endpoint,
                           http_endpoint=settings.receiver_http_endpoint,
                           routes=routes, closers=closers,
                           metrics_auth=_admin_auth(settings), ops=ops)


def build_collector(settings: Settings, *, env: Mapping[str, str] | None = None,
                    extras: Extras = Extras()) -> CollectorServer:
    """``llmtrace-otel collect``: the OTLP receivers feeding the same pipeline.

    Exporters wait instead of dropping here: backpressure goes back to the OTLP senders.
    """
    env = os.environ if env is None else env
    metering = _metering(settings, env, extras, INSTRUMENTATION_NAME, None)
    telemetry = _pipeline(settings, env, metering, extras,
                          instrumentation_name=INSTRUMENTATION_NAME, tracer_provider=None,
                          blocking_export=True)
    return _collector_server(settings, env, telemetry)


# -- 6. Several processes (server.workers) -----------------------------------------------------

def _shipping_telemetry(settings: Settings, metering: _Metering, link: WorkerLink, *,
                        block_when_full: bool) -> Telemetry:
    """A relay worker's pipeline: finished spans go to the telemetry process, which
    analyses and exports them. Call on the worker's event loop."""
    shipper = SpanShipper(link.channel, asyncio.get_running_loop(),
                          on_drop=metering.instruments.count_drop,
                          max_queue=settings.analysis_queue_size,
                          block_when_full=block_when_full)
    # the telemetry process holds the workers' batches while its analysis queue is full
    link.on_hold(shipper.hold, shipper.resume)
    tracer_provider = TracerProvider(resource=metering.resource)
    tracer_provider.add_span_processor(shipper)
    return Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=metering.meter_provider,
        tracer=tracer_provider.get_tracer(INSTRUMENTATION_NAME, __version__),
        meter=metering.meter,
        instruments=metering.instruments,
        prometheus_registry=None,
        head=shipper,
        # what the telemetry process's chain reads: content for capture or analysis
        needs_content=settings.capture_content or settings.security_enabled,
        tenant_labels=metering.tenant_labels,
        push_readers=metering.push_readers,
        histograms=metering.histograms,
    )


def _metrics_snapshot(reader: MergingInMemoryMetricReader | None) -> Callable[[], bytes]:
    """A worker's cumulative metrics as OTLP protobuf bytes (empty when metrics are off)."""
    def snapshot() -> bytes:
        data = reader.get_metrics_data() if reader is not None else None
        return encode_metrics_data(data) if data is not None else b""
    return snapshot


def _worker_parts(settings: Settings, link: WorkerLink, env: Mapping[str, str], *,
                  collector: bool) -> tuple[_Metering, Telemetry, list[RouteSpec]]:
    """What every relay worker has: its metrics (a snapshot the telemetry process reads),
    its shipping pipeline (blocking when full in collector mode: backpressure goes back to
    the OTLP senders), and /health and /metrics forwarded to the telemetry process."""
    metering = _metering(settings, env, Extras(), INSTRUMENTATION_NAME, None,
                         worker=link.identity.index)
    telemetry = _shipping_telemetry(settings, metering, link, block_when_full=collector)
    # /metrics names models, tenants and providers: behind api.admin_token as everywhere
    ops = forwarding_ops_routes(link, metrics=settings.metrics_enabled,
                                metrics_auth=_admin_auth(settings))
    return metering, telemetry, ops


def build_proxy_worker(settings: Settings, link: WorkerLink, *,
                       env: Mapping[str, str] | None = None) -> ProxyServer:
    """One relay worker of ``serve`` with ``server.workers``: the relay, its guards and
    read routes, shipping its spans to the telemetry process over ``link``; its /health and
    /metrics are the whole product's, rendered by the telemetry process. Call on the
    worker's event loop."""
    env = os.environ if env is None else env
    metering, telemetry, ops = _worker_parts(settings, link, env, collector=False)
    tenancy = _tenancy(settings, metering, analysis=False)
    if tenancy is not None and tenancy.budgets is not None:
        budgets = tenancy.budgets
        link.on_spend(spend_handler(budgets.submit, metering.instruments.count_drop))
    server = _proxy_server(settings, env, telemetry, tenancy, Extras(), ops=ops)
    link.answer(metrics=_metrics_snapshot(metering.snapshot_reader), health=server.health)
    return server


def build_collector_worker(settings: Settings, link: WorkerLink, *,
                           env: Mapping[str, str] | None = None) -> CollectorServer:
    """One relay worker of ``collect`` with ``server.workers``: the OTLP receivers, shipping
    what they take to the telemetry process over ``link``. Call on the worker's loop."""
    env = os.environ if env is None else env
    metering, telemetry, ops = _worker_parts(settings, link, env, collector=True)
    server = _collector_server(settings, env, telemetry, ops=ops)
    link.answer(metrics=_metrics_snapshot(metering.snapshot_reader), health=server.health)
    return server


def _render_merged(registry: CollectorRegistry | None, peers: PeerMetrics
                   ) -> Callable[[WorkerSnapshots, str, str], Rendered]:
    """/metrics of the whole product: this process's reader, with the workers' snapshots
    merged in as one more source (``peers``). One scrape at a time: a scrape sets what the
    collection it triggers reads."""
    lock = threading.Lock()

    def render_metrics(snapshots: WorkerSnapshots, accept: str, encoding: str) -> Rendered:
        if registry is None:
            return 404, {"Content-Type": "text/plain"}, b"metrics are off (metrics.enabled)\n"
        with lock:
            peers.update(snapshots)
            body, headers = render_exposition(registry, accept, encoding)
        return 200, dict(headers), body
    return render_metrics


def worker_environment(settings: Settings) -> dict[str, str]:
    """What relay workers get in their environment beyond their parent's: the tenant key
    secret, resolved once here, so that every worker derives the same tenant ids from an
    API key (a generated secret is random per process)."""
    if not settings.tenancy_enabled or settings.tenant_key_secret is not None:
        return {}
    secret = _tenant_key_secret(settings) or secrets.token_urlsafe(32)
    return {field_by_name("tenant_key_secret").env: secret}


def build_telemetry_process(settings: Settings, *, collector: bool = False,
                            env: Mapping[str, str] | None = None,
                            extras: Extras = Extras()) -> TelemetryProcess:
    """The parent of the relay workers of ``serve`` (or ``collect``): the analysis chain
    and the exporters for all of them, and the /metrics and /health they forward. Call on
    the event loop that will run it."""
    env = os.environ if env is None else env
    metering = _metering(settings, env, extras, INSTRUMENTATION_NAME, None)
    peers = PeerMetrics(gauges=_GAUGE_MERGE, on_drop=metering.instruments.count_drop)
    hub = Hub(resource=metering.resource, on_drop=metering.instruments.count_drop,
              on_retired=peers.retire)
    if metering.prometheus_reader is not None:
        metering.prometheus_reader.add_source(CumulativeSource(peers.fetch))
    spend = ForwardedSpend(asyncio.get_running_loop(), hub.send_spend,
                           on_lost=lambda: metering.instruments.count_drop(
                               "telemetry_process.spend", "shutdown"))
    tenancy = None if collector else _tenancy(settings, metering, relay=False, spend=spend)
    telemetry = _pipeline(settings, env, metering, extras,
                          stages=tenancy.enrichers if tenancy is not None else (),
                          instrumentation_name=INSTRUMENTATION_NAME, tracer_provider=None,
                          blocking_export=collector)
    head = telemetry.head
    hub.feed(head, (lambda: (head.queue_depth, head.capacity))
             if isinstance(head, BackgroundSpanProcessor) else None)
    return TelemetryProcess(
        telemetry=telemetry, hub=hub, workers=worker_count(settings.workers),
        render_metrics=_render_merged(metering.registry, peers), meter=metering.meter)
