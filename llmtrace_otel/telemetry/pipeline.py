"""Builds the OTel pipeline of one process from Settings: providers, chain, exporters.

::

    span end ─> BackgroundSpanProcessor (bounded queue, worker thread)
                 └─> CostProcessor ─> SecurityProcessor ─> ContentPolicyProcessor ─> FanOut
                                                                                 ├─> SQLite
                                                                                 ├─> OTLP
                                                                                 └─> extras
    metrics ─> MeterProvider ─> PrometheusMetricReader (private registry, served at /metrics)
                            └─> PeriodicExportingMetricReader(OTLP)

Nothing here is global: the providers are returned, not installed with ``set_*_provider``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmtrace_processors.breaker import BreakerPolicy, CircuitBreakers
from llmtrace_processors.chain import BackgroundSpanProcessor, EnrichingSpanProcessor, build_chain
from llmtrace_processors.content_policy import ContentPolicyProcessor
from llmtrace_processors.cost import CostProcessor, PriceTable
from llmtrace_processors.labels import BoundedLabels
from llmtrace_processors.security.findings import Severity
from llmtrace_processors.security.processor import SecurityProcessor
from llmtrace_processors.sinks import ExportSink
from llmtrace_processors.slot import EnricherSlot
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from llmtrace_otel import __version__
from llmtrace_otel.config import Settings, otlp_requested, split_list
from llmtrace_otel.exporters.store import store_exporter
from llmtrace_otel.telemetry.instruments import ProxyInstruments
from llmtrace_otel.telemetry.process import observe_process, register_process_collectors
from llmtrace_otel.telemetry.provider_health import ProviderHealth

__all__ = ["Telemetry", "build_telemetry"]

_log = logging.getLogger(__name__)
INSTRUMENTATION_NAME = "llmtrace_otel.proxy"


@dataclass
class Telemetry:
    """The tracer, meter and instruments of one process, and how to stop them."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    tracer: Tracer
    meter: Meter
    instruments: ProxyInstruments
    prometheus_registry: CollectorRegistry | None
    head: BackgroundSpanProcessor | SpanProcessor
    #: True when something in-process reads message content (capture or analysis).
    needs_content: bool
    exporters: list[ExportSink] = field(default_factory=list)
    #: Where parts built after the pipeline attach enrichers (after cost, before the
    #: content policy): the tenancy spend recorder and anomaly processor.
    enricher_slot: EnricherSlot = field(default_factory=EnricherSlot)
    #: One cardinality cap shared by every metric labelled with a tenant.
    tenant_labels: BoundedLabels = field(default_factory=lambda: BoundedLabels(100))
    #: Circuit breakers of the exporters and analysis processors (None: breakers off).
    breakers: CircuitBreakers | None = None
    #: Metric readers that push (OTLP), flushed by :meth:`force_flush`.
    push_readers: list[MetricReader] = field(default_factory=list)

    def force_flush(self, timeout_millis: int = 10000) -> bool:
        """Flush spans through the chain and every exporter, and push metrics (OTLP).

        Only push readers are flushed: ``MeterProvider.force_flush`` would also make the
        Prometheus reader collect, which queues a second copy of every series for the next
        scrape (duplicate samples on /metrics).
        """
        spans = self.tracer_provider.force_flush(timeout_millis)
        metrics = all(reader.force_flush(timeout_millis) for reader in self.push_readers)
        return bool(spans and metrics)

    def shutdown(self) -> None:
        try:
            self.tracer_provider.shutdown()
        finally:
            self.meter_provider.shutdown()


def _resource(settings: Settings, env: Mapping[str, str]) -> Resource:
    detected = OTELResourceDetector().detect()  # OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
    attributes: dict[str, str] = {"service.version": __version__}
    if SERVICE_NAME not in detected.attributes:
        attributes[SERVICE_NAME] = settings.service_name
    return Resource.create(attributes).merge(detected)


def _otlp_endpoint(settings: Settings, signal: str) -> str | None:
    if settings.otlp_endpoint is None:
        return None  # the exporter reads OTEL_EXPORTER_OTLP_* itself
    if settings.otlp_protocol == "grpc":
        return settings.otlp_endpoint
    return settings.otlp_endpoint.rstrip("/") + f"/v1/{signal}"


def _otlp_span_exporter(settings: Settings) -> SpanExporter:
    endpoint = _otlp_endpoint(settings, "traces")
    if settings.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HTTPSpanExporter,
    )
    return HTTPSpanExporter(endpoint=endpoint)


def _otlp_metric_reader(settings: Settings) -> MetricReader:
    endpoint = _otlp_endpoint(settings, "metrics")
    if settings.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        return PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HTTPMetricExporter,
    )
    return PeriodicExportingMetricReader(HTTPMetricExporter(endpoint=endpoint))


def _breakers(settings: Settings) -> tuple[CircuitBreakers | None, BreakerPolicy]:
    """The breaker set of one pipeline, and the policy of its analysis breakers."""
    policy = BreakerPolicy(
        failure_threshold=settings.breaker_failure_threshold,
        window=settings.breaker_window,
        recovery_s=settings.breaker_recovery_s,
        half_open_probes=settings.breaker_half_open_probes,
    )
    analysis = dataclasses.replace(policy, slow_call_s=settings.breaker_analysis_slow_ms / 1000)
    return (CircuitBreakers(policy) if settings.breaker_enabled else None), analysis


def _guard_analysis(enrichers: Sequence[EnrichingSpanProcessor], breakers: CircuitBreakers,
                    policy: BreakerPolicy) -> None:
    """A breaker per analysis step (``analysis.<stage>``). The content policy gets none: it
    is what keeps un-opted-in content out of the exports, so it is never bypassed. Nor does
    the enricher slot (it runs what is attached later with its own error handling)."""
    for enricher in enrichers:
        if isinstance(enricher, ContentPolicyProcessor | EnricherSlot):
            continue
        name, n = f"analysis.{enricher.stage}", 1
        while breakers.get(name) is not None:
            n += 1
            name = f"analysis.{enricher.stage}#{n}"
        enricher.set_breaker(breakers.new(name, policy))


def _security(settings: Settings, meter_provider: MeterProvider) -> list[EnrichingSpanProcessor]:
    """The SecurityProcessor, when enabled: content is analysed before it is stripped."""
    if not settings.security_enabled:
        return []
    processor = SecurityProcessor(min_severity=Severity.parse(settings.security_min_severity),
                                  meter_provider=meter_provider,
                                  # content that is not exported needs no redaction
                                  redact=settings.security_pii_export == "redact"
                                  and settings.capture_content)
    if settings.security_workers <= 0:
        return [processor]
    # Detectors in worker processes (processors/security/pool.py); the processor above
    # builds the enrichments and scans in-process if the pool fails.
    from llmtrace_processors.security.offload import OffloadedSecurityProcessor
    from llmtrace_processors.security.pool import DetectorPool

    pool = DetectorPool(settings.security_workers)
    return [OffloadedSecurityProcessor(processor, pool, meter_provider=meter_provider)]


def build_telemetry(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    extra_span_processors: Sequence[SpanProcessor] = (),
    extra_metric_readers: Sequence[MetricReader] = (),
    extra_enrichers: Sequence[EnrichingSpanProcessor] = (),
    instrumentation_name: str = INSTRUMENTATION_NAME,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    blocking_export: bool = False,
) -> Telemetry:
    """Create providers, the processor chain and every configured exporter.

    ``extra_*`` let tests (and embedders) add an InMemorySpanExporter, an
    InMemoryMetricReader or their own processors without touching global state.
    ``tracer_provider`` / ``meter_provider`` (used by the SDK instrumentation) are used
    instead of new ones: the chain is added to the given tracer provider, and a given
    meter provider keeps its own readers (no Prometheus or OTLP reader is added to it).
    ``blocking_export`` (collector mode) makes a full exporter queue wait instead of drop,
    so backpressure reaches the OTLP senders (``ExportSink(block_when_full=True)``).
    """
    env = os.environ if env is None else env
    resource = _resource(settings, env)

    registry: CollectorRegistry | None = None
    if meter_provider is None:
        readers: list[MetricReader] = list(extra_metric_readers)
        push_readers: list[MetricReader] = []
        if settings.metrics_enabled:
            registry = CollectorRegistry()
            readers.append(PrometheusMetricReader(registry=registry))
        if otlp_requested(settings, env):
            push_readers.append(_otlp_metric_reader(settings))
            readers.append(push_readers[-1])
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    else:
        push_readers = []  # the application's provider: its readers are its own
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
    if registry is not None and settings.metrics_process:
        register_process_collectors(registry)
    if settings.metrics_process:
        observe_process(meter)
    breakers, analysis_policy = _breakers(settings)
    if breakers is not None:
        breakers.observe(meter)

    sinks: list[SpanProcessor] = []
    exporters: list[ExportSink] = []
    store = store_exporter(settings, on_operation=instruments.count_storage)  # SQLite or PG
    if store is not None:
        exporters.append(ExportSink(
            store.name, store.exporter,
            max_queue_size=settings.analysis_queue_size, schedule_delay_millis=500,
            on_drop=instruments.count_drop, meter_provider=meter_provider,
            block_when_full=blocking_export,
            breaker=breakers.new(f"export.{store.name}") if breakers is not None else None,
        ))
    if otlp_requested(settings, env):
        exporters.append(ExportSink(
            "otlp", _otlp_span_exporter(settings),
            max_queue_size=settings.analysis_queue_size,
            on_drop=instruments.count_drop, meter_provider=meter_provider,
            block_when_full=blocking_export,
            breaker=breakers.new("export.otlp") if breakers is not None else None,
        ))
    sinks.extend(exporters)
    sinks.extend(extra_span_processors)

    prices = PriceTable.builtin()
    if settings.pricing_file:
        prices = prices.merged_with(PriceTable.from_file(settings.pricing_file))
    tenant_labels = BoundedLabels(settings.metric_tenants)
    slot = EnricherSlot()
    enrichers: list[EnrichingSpanProcessor] = [
        CostProcessor(prices=prices, meter_provider=meter_provider, tenant_label=tenant_labels),
        *_security(settings, meter_provider),
        *extra_enrichers,
        slot,
        ContentPolicyProcessor(capture_content=settings.capture_content),
    ]
    if breakers is not None:
        _guard_analysis(enrichers, breakers, analysis_policy)
    head = build_chain(
        enrichers,
        sinks,
        max_queue_size=settings.analysis_queue_size,
        on_drop=instruments.count_drop,
        stall_timeout_s=settings.analysis_stall_timeout_s or None,
    )
    if tracer_provider is None:
        tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(head)
    tracer = tracer_provider.get_tracer(instrumentation_name, __version__)
    needs_content = settings.capture_content or any(
        getattr(enricher, "needs_content", False) for enricher in enrichers
    )
    return Telemetry(
        push_readers=push_readers,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        tracer=tracer,
        meter=meter,
        instruments=instruments,
        prometheus_registry=registry,
        head=head,
        needs_content=needs_content,
        exporters=exporters,
        enricher_slot=slot,
        tenant_labels=tenant_labels,
        breakers=breakers,
    )
