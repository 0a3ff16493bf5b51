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
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
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
    otlp_requested,
    split_list,
)
from llmtrace_otel.config.tenants import BudgetLimit
from llmtrace_otel.exporters.otlp import OtlpTarget
from llmtrace_otel.exporters.sqlite import SpanStore, SQLiteSpanExporter
from llmtrace_otel.guards import GuardChain, RequestGuard
from llmtrace_otel.proxy.app import Closer, ProxyServer
from llmtrace_otel.proxy.handler import ProxyContext
from llmtrace_otel.proxy.routing import Router
from llmtrace_otel.proxy.security_guard import SecurityGuard
from llmtrace_otel.proxy.stream_guard import StreamScanPolicy
from llmtrace_otel.proxy.upstream import UpstreamClient, UpstreamConfig
from llmtrace_otel.receiver.collector import CollectorServer
from llmtrace_otel.receiver.forward import MetricsForwarder
from llmtrace_otel.receiver.http import OTLP_PATHS, otlp_routes
from llmtrace_otel.receiver.service import OTLPReceiver, ReceiverConfig
from llmtrace_otel.telemetry.instruments import ProxyInstruments
from llmtrace_otel.telemetry.pipeline import INSTRUMENTATION_NAME, Telemetry
from llmtrace_otel.telemetry.process import observe_process, register_process_collectors
from llmtrace_otel.telemetry.provider_health import ProviderHealth
from llmtrace_otel.tenancy.alerts import Alert, AlertDispatcher, AlertSeverity
from llmtrace_otel.tenancy.api import budget_routes
from llmtrace_otel.tenancy.budgets import BudgetTracker
from llmtrace_otel.tenancy.guard import TenancyGuard
from llmtrace_otel.tenancy.identity import TenantResolver, parse_trusted
from llmtrace_otel.tenancy.key_secret import load_or_create_secret, secret_path_for
from llmtrace_otel.tenancy.metrics import TenancyInstruments
from llmtrace_otel.tenancy.notifiers import (
    DeliveryChannel,
    Notifier,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
)
from llmtrace_otel.tenancy.policy import PolicyBook, RateLimits, TenantPolicy
from llmtrace_otel.tenancy.spend import SpendRecorder
from llmtrace_otel.tenancy.state import MemoryBackend
from llmtrace_otel.tenancy.state import StateBackend as TenancyBackend
from llmtrace_otel.tenancy.windows import Window
from llmtrace_otel.ui import UI_PREFIX, ui_routes
from llmtrace_otel.version import __version__
from llmtrace_otel.web.auth import BearerToken
from llmtrace_otel.web.gate import SMALL_BODY_BYTES
from llmtrace_otel.web.server import RouteSpec, ServerConfig
from llmtrace_processors.anomaly import Anomaly, AnomalyConfig, AnomalyProcessor
from llmtrace_processors.breaker import BreakerPolicy, CircuitBreakers
from llmtrace_processors.chain import EnrichingSpanProcessor, build_chain
from llmtrace_processors.content_policy import ContentPolicyProcessor
from llmtrace_processors.cost import CostProcessor, PriceTable
from llmtrace_processors.labels import BoundedLabels
from llmtrace_processors.security.findings import Severity
from llmtrace_processors.security.processor import SecurityProcessor
from llmtrace_processors.sinks import ExportSink

__all__ = ["Extras", "build_collector", "build_pipeline", "build_proxy"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Extras:
    """What tests and embedders add to the configured product, without global state."""

    #: More sinks after the chain (an ``InMemorySpanExporter`` behind a processor, ...).
    span_processors: Sequence[SpanProcessor] = ()
    #: More metric readers (an ``InMemoryMetricReader``, ...).
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
        queue_size=settings.receiver_queue_size, retry_after_s=settings.receiver_retry_after_s)


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


def _resource(settings: Settings) -> Resource:
    detected = OTELResourceDetector().detect()  # OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
    attributes: dict[str, str] = {"service.version": __version__}
    if SERVICE_NAME not in detected.attributes:
        attributes[SERVICE_NAME] = settings.service_name
    return Resource.create(attributes).merge(detected)


def _metering(settings: Settings, env: Mapping[str, str], extras: Extras,
              instrumentation_name: str, meter_provider: MeterProvider | None) -> _Metering:
    resource = _resource(settings)
    registry: CollectorRegistry | None = None
    push_readers: list[MetricReader] = []
    if meter_provider is None:
        readers = list(extras.metric_readers)
        if settings.metrics_enabled:
            registry = CollectorRegistry()
            readers.append(PrometheusMetricReader(registry=registry))
        if otlp_requested(settings.otlp_endpoint, env):
            push_readers.append(otlp_target(settings).metric_reader())
            readers.extend(push_readers)
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    # else: the application's provider (SDK): its readers are its own
    meter = meter_provider.get_meter(instrumentation_name, __version__)
    instruments = ProxyInstruments(
        meter,
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
    breakers = CircuitBreakers(breaker_policy(settings)) if settings.breaker_enabled else None
    if breakers is not None:
        breakers.observe(meter)
    return _Metering(resource, meter_provider, meter, registry, push_readers, instruments,
                     breakers, BoundedLabels(settings.metric_tenants))


# -- 3. Tenancy -------------------------------------------------------------------------------

@dataclass
class _Tenancy:
    guard: TenancyGuard
    #: Chain stages it adds: the spend recorder (budgets), the anomaly detector.
    enrichers: list[EnrichingSpanProcessor]


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


def _tenancy(settings: Settings, metering: _Metering) -> _Tenancy | None:
    """The tenancy guard and its chain stages; None when ``tenancy.enabled`` is off."""
    if not settings.tenancy_enabled:
        return None
    instruments = TenancyInstruments(metering.meter, metering.tenant_labels)
    resolver = TenantResolver(
        settings.default_tenant, _tenant_key_secret(settings),
        trusted=parse_trusted(split_list(settings.tenant_header_trusted_from)),
        key_tenants=settings.tenants.key_tenants())
    book = PolicyBook(default_policy(settings), settings.tenants)
    backend = _state_backend(settings)
    alerts = _alerts(settings, instruments)
    enrichers: list[EnrichingSpanProcessor] = []
    budgets = None
    if book.any_budgets:
        budgets = BudgetTracker(book, backend, key_prefix=settings.state_key_prefix,
                                instruments=instruments, alerts=alerts)
        enrichers.append(SpendRecorder(budgets, settings.default_tenant))
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
    guard = TenancyGuard(resolver, book, backend, instruments,
                         key_prefix=settings.state_key_prefix, budgets=budgets, alerts=alerts,
                         fail_closed=settings.limits_on_backend_error is BackendErrorPolicy.CLOSED)
    return _Tenancy(guard, enrichers)


# -- 4. The pipeline --------------------------------------------------------------------------

def _security(settings: Settings, meter_provider: MeterProvider
              ) -> list[EnrichingSpanProcessor]:
    """The security stage, when enabled: content is analysed before it is stripped."""
    if not settings.security_enabled:
        return []
    processor = SecurityProcessor(
        min_severity=Severity.parse(settings.security_min_severity),
        meter_provider=meter_provider,
        # content that is not exported needs no redaction
        redact=settings.security_pii_export is PiiExport.REDACT and settings.capture_content)
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
    if settings.sqlite_enabled:
        sinks.append(ExportSink(
            "sqlite",
            SQLiteSpanExporter(settings.sqlite_path, on_operation=instruments.count_storage,
                               busy_timeout_ms=settings.sqlite_busy_timeout_ms),
            max_queue_size=settings.analysis_queue_size, schedule_delay_millis=500,
            on_drop=instruments.count_drop, meter_provider=metering.meter_provider,
            block_when_full=blocking_export,
            breaker=breakers.new("export.sqlite") if breakers is not None else None,
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
        ContentPolicyProcessor(capture_content=settings.capture_content),
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
    if tenancy is not None:
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
    store = (SpanStore(settings.sqlite_path, on_operation=telemetry.instruments.count_storage)
             if settings.sqlite_enabled else None)
    api = ApiContext(store, auth)
    closers.append(api.close)
    tracker = tenancy.guard.budgets if tenancy is not None else None
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
        forwarder = MetricsForwarder(endpoint, settings.otlp_protocol.value, headers)
    return OTLPReceiver(receiver_config(settings), telemetry, forwarder=forwarder)


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

    def flush_telemetry() -> None:
        try:
            telemetry.force_flush()
        finally:
            telemetry.shutdown()

    closers.append(flush_telemetry)
    closers.append(guards.aclose)  # after the flush: spend of the last spans
    context = ProxyContext(
        router=Router(settings.upstream_url, settings.anthropic_upstream_url),
        upstream=UpstreamClient(upstream_config(settings)),
        telemetry=telemetry,
        guards=guards,
        max_body_bytes=settings.max_body_bytes,
        stream_include_usage=settings.stream_include_usage,
        stream_scan=_stream_scan(settings, telemetry),
    )
    return ProxyServer(
        server_config(settings), context, routes=routes, body_limits=body_limits,
        closers=closers, metrics_auth=_admin_auth(settings),
        http_metrics_exclude=(split_list(settings.metrics_http_exclude_paths)
                              if settings.metrics_http_server else None),
    )


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
    try:
        receiver = _receiver(settings, telemetry, env)
    except BaseException:
        telemetry.shutdown()
        raise
    return CollectorServer(server_config(settings), receiver, telemetry,
                           grpc_endpoint=settings.receiver_grpc_endpoint,
                           http_endpoint=settings.receiver_http_endpoint,
                           metrics_auth=_admin_auth(settings))
