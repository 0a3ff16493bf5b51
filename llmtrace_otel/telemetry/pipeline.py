"""The OTel pipeline of one process, once built: its providers, instruments and handles.

::

    span end ─> BackgroundSpanProcessor (bounded queue, worker thread)
                 └─> CostProcessor ─> SecurityProcessor ─> ... ─> ContentPolicyProcessor ─> FanOut
                                                                                         ├─> SQLite
                                                                                         ├─> OTLP
                                                                                         └─> extras
    metrics ─> MeterProvider ─> PrometheusMetricReader (private registry, served at /metrics)
                            └─> PeriodicExportingMetricReader(OTLP)

:mod:`llmtrace_otel.wiring` builds it; nothing here is global (the providers are held,
not installed with ``set_*_provider``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from llmtrace_otel.telemetry.health import HealthReport
from llmtrace_otel.telemetry.histograms import HistogramFactory
from llmtrace_otel.telemetry.instruments import ProxyInstruments
from llmtrace_otel.telemetry.merging_reader import MergingPrometheusMetricReader
from llmtrace_processors.breaker import CircuitBreakers
from llmtrace_processors.chain import BackgroundSpanProcessor
from llmtrace_processors.labels import BoundedLabels
from llmtrace_processors.sinks import ExportSink

__all__ = ["INSTRUMENTATION_NAME", "QueuedHead", "Telemetry"]

#: Instrumentation scope of the proxy's and the receiver's own spans and metrics.
INSTRUMENTATION_NAME = "llmtrace_otel.proxy"


@runtime_checkable
class QueuedHead(Protocol):
    """A head span processor with a bounded queue of its own (its depth is on /health)."""

    @property
    def queue_depth(self) -> int: ...

    @property
    def capacity(self) -> int: ...


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
    #: One cardinality cap shared by every metric labelled with a tenant.
    tenant_labels: BoundedLabels = field(default_factory=lambda: BoundedLabels(100))
    #: Circuit breakers of the exporters and analysis processors (None: breakers off).
    breakers: CircuitBreakers | None = None
    #: Metric readers that push (OTLP), flushed by :meth:`force_flush`.
    push_readers: list[MetricReader] = field(default_factory=list)
    #: Where histograms come from: pre-aggregated ones merged into every reader
    #: (``metric_sources.LocalHistograms``), or None: the SDK's own on ``meter``.
    histograms: HistogramFactory | None = None
    #: The reader behind /metrics; ``add_source`` merges more into what it serves.
    prometheus_reader: MergingPrometheusMetricReader | None = None

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

    def health(self) -> HealthReport:
        """The pipeline's part of ``/health``: exporters, the analysis queue, upstream
        providers and circuit breakers. Servers add their own parts to it."""
        report = HealthReport()
        for exporter in self.exporters:
            state = ("unknown" if exporter.last_ok is None
                     else "ok" if exporter.last_ok else "failing")
            report.add(f"exporter.{exporter.name}",
                       {"state": state, "failed_batches": exporter.failed_batches},
                       degraded=state == "failing")
        head = self.head
        if isinstance(head, BackgroundSpanProcessor | QueuedHead):
            depth, capacity = head.queue_depth, head.capacity
            full = depth >= capacity * 0.9
            # a relay worker's head ships spans to the telemetry process (server.workers)
            name = "analysis_queue" if isinstance(head, BackgroundSpanProcessor) else "ship_queue"
            report.add(name, {"state": "saturated" if full else "ok",
                              "depth": depth, "capacity": capacity}, degraded=full)
        for provider in self.instruments.provider_health.states():
            report.providers[provider.provider] = provider.as_dict()
            report.degraded |= not provider.available
        if self.breakers is not None:
            for snap in self.breakers.snapshots():
                report.breakers[snap.subsystem] = snap.as_dict()
                report.degraded |= snap.as_dict()["state"] != "closed"
        return report
