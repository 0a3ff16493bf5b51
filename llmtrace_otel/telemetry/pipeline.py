"""Builds the OTel pipeline of one process from Settings: providers, chain, exporters.

::

    span end ─> BackgroundSpanProcessor (bounded queue, worker thread)
                 └─> CostProcessor ─> ContentPolicyProcessor ─> FanOut
                                                               ├─> BatchSpanProcessor(SQLite)
                                                               ├─> BatchSpanProcessor(OTLP)
                                                               └─> extra processors (tests)
    metrics ─> MeterProvider ─> PrometheusMetricReader (private registry, served at /metrics)
                            └─> PeriodicExportingMetricReader(OTLP)

Nothing here is global: the providers are returned, not installed with ``set_*_provider``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from llmtrace_otel import __version__
from llmtrace_otel.config import Settings, otlp_requested
from llmtrace_otel.telemetry.instruments import ProxyInstruments
from processors.chain import BackgroundSpanProcessor, EnrichingSpanProcessor, build_chain
from processors.content_policy import ContentPolicyProcessor
from processors.cost import CostProcessor, PriceTable

__all__ = ["CountingExporter", "Telemetry", "build_telemetry"]

_log = logging.getLogger(__name__)
INSTRUMENTATION_NAME = "llmtrace_otel.proxy"


class CountingExporter(SpanExporter):
    """Wraps an exporter: failures are logged and counted as drops, never raised."""

    def __init__(self, name: str, inner: SpanExporter, instruments: ProxyInstruments) -> None:
        self.name = name
        self._inner = inner
        self._instruments = instruments
        #: Outcome of the latest export (None before the first); read by /health.
        self.last_ok: bool | None = None
        self.failed_batches = 0

    def export(self, spans: Sequence) -> SpanExportResult:  # type: ignore[type-arg]
        try:
            result = self._inner.export(spans)
        except Exception:
            _log.exception("exporter %s raised; %d spans dropped", self.name, len(spans))
            result = SpanExportResult.FAILURE
        self.last_ok = result is SpanExportResult.SUCCESS
        if not self.last_ok:
            self.failed_batches += 1
            for _ in range(len(spans)):
                self._instruments.count_drop(f"export.{self.name}", "export_failed")
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


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
    exporters: list[CountingExporter] = field(default_factory=list)

    def force_flush(self, timeout_millis: int = 10000) -> bool:
        spans = self.tracer_provider.force_flush(timeout_millis)
        metrics = self.meter_provider.force_flush(timeout_millis)
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


def _blocking_batch(exporter: CountingExporter, settings: Settings, delay_ms: int
                    ) -> SpanProcessor:
    from llmtrace_otel.telemetry.blocking_batch import BlockingBatchSpanProcessor

    return BlockingBatchSpanProcessor(exporter, max_queue_size=settings.analysis_queue_size,
                                      schedule_delay_s=delay_ms / 1000)


def build_telemetry(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    extra_span_processors: Sequence[SpanProcessor] = (),
    extra_metric_readers: Sequence[MetricReader] = (),
    extra_enrichers: Sequence[EnrichingSpanProcessor] = (),
    blocking_export: bool = False,
) -> Telemetry:
    """Create providers, the processor chain and every configured exporter.

    ``extra_*`` let tests (and embedders) add an InMemorySpanExporter, an
    InMemoryMetricReader or their own processors without touching global state.
    ``blocking_export`` (collector mode) makes a full exporter queue wait instead of drop,
    so backpressure reaches the OTLP senders (``telemetry/blocking_batch.py``).
    """
    env = os.environ if env is None else env
    resource = _resource(settings, env)

    readers: list[MetricReader] = list(extra_metric_readers)
    registry: CollectorRegistry | None = None
    if settings.metrics_enabled:
        registry = CollectorRegistry()
        readers.append(PrometheusMetricReader(registry=registry))
    if otlp_requested(settings, env):
        readers.append(_otlp_metric_reader(settings))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    meter = meter_provider.get_meter(INSTRUMENTATION_NAME, __version__)
    instruments = ProxyInstruments(meter)

    sinks: list[SpanProcessor] = []
    exporters: list[CountingExporter] = []
    if settings.sqlite_enabled:
        from llmtrace_otel.exporters.sqlite import SQLiteSpanExporter

        sqlite = CountingExporter("sqlite", SQLiteSpanExporter(settings.sqlite_path), instruments)
        exporters.append(sqlite)
        sinks.append(
            _blocking_batch(sqlite, settings, 500) if blocking_export else BatchSpanProcessor(
                sqlite,
                max_queue_size=settings.analysis_queue_size,
                schedule_delay_millis=500,
                max_export_batch_size=512,
                meter_provider=meter_provider,
            )
        )
    if otlp_requested(settings, env):
        otlp = CountingExporter("otlp", _otlp_span_exporter(settings), instruments)
        exporters.append(otlp)
        sinks.append(
            _blocking_batch(otlp, settings, 5000) if blocking_export else BatchSpanProcessor(
                otlp,
                max_queue_size=settings.analysis_queue_size,
                meter_provider=meter_provider,
            )
        )
    sinks.extend(extra_span_processors)

    prices = PriceTable.builtin()
    if settings.pricing_file:
        prices = prices.merged_with(PriceTable.from_file(settings.pricing_file))
    enrichers: list[EnrichingSpanProcessor] = [
        CostProcessor(prices=prices, meter_provider=meter_provider),
        *extra_enrichers,
        ContentPolicyProcessor(capture_content=settings.capture_content),
    ]
    head = build_chain(
        enrichers,
        sinks,
        max_queue_size=settings.analysis_queue_size,
        on_drop=instruments.count_drop,
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(head)
    tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME, __version__)
    needs_content = settings.capture_content or any(
        getattr(enricher, "needs_content", False) for enricher in enrichers
    )
    return Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        tracer=tracer,
        meter=meter,
        instruments=instruments,
        prometheus_registry=registry,
        head=head,
        needs_content=needs_content,
        exporters=exporters,
    )
