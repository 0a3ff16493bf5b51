"""Metric readers that receive more than the SDK collects: extra sources merged in.

The OTel Python SDK (1.45) has no ``MetricProducer``; what a reader receives is what the
``MeterProvider`` collected, handed to the reader's ``_receive_metrics`` (the SDK's
documented extension point for readers). :class:`MergingReader` overrides it: at every
collection it asks each of its :class:`~llmtrace_otel.telemetry.metric_sources.MetricsSource`
for its metrics in the reader's temporality, merges them with the SDK's
(:func:`~llmtrace_otel.telemetry.metrics_merge.merge_metrics_data`, under the SDK's
resource) and passes the result on to the reader's own ``_receive_metrics``: Prometheus
translates it for ``/metrics``, the periodic reader exports it over OTLP, the in-memory
reader keeps it. Nothing downstream knows the difference.

The sources are this process's pre-aggregated histograms
(:class:`~llmtrace_otel.telemetry.metric_sources.LocalHistograms`), added by the assembly
to every reader, and whatever else is added with :meth:`MergingReader.add_source` (the
metrics of other worker processes, for ``/metrics``). A source that fails, or data that
cannot be merged, is left out of that one collection, logged, and counted as
``llmtrace_telemetry_dropped_total{stage="metrics.merge"}``; the SDK's own metrics are
delivered regardless.

The SDK calls ``_receive_metrics`` only when it collected something, so the sources are
asked only then: in the proxy always (its counters and gauges are observed at every
collection). Nothing is lost when they are not: the next collection has the totals, or for a
delta reader the change since the last one that was delivered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)

from llmtrace_otel.telemetry.metric_sources import LocalHistograms, MetricsSource
from llmtrace_otel.telemetry.metrics_merge import GAUGE_MERGE, GaugeMerge, merge_metrics_data

__all__ = [
    "MERGE_STAGE",
    "MergingInMemoryMetricReader",
    "MergingPeriodicExportingMetricReader",
    "MergingPrometheusMetricReader",
    "MergingReader",
]

_log = logging.getLogger(__name__)

#: ``stage`` label of the drops counted here.
MERGE_STAGE = "metrics.merge"

DropCounter = Callable[[str, str], None]


def _ignore_drop(stage: str, reason: str) -> None:
    return None


class MergingReader(MetricReader):
    """Mixin: put before a concrete reader class; call :meth:`_init_sources` before its
    ``__init__``."""

    _sources: list[MetricsSource]
    _gauges: Mapping[str, GaugeMerge]
    _on_drop: DropCounter

    def _init_sources(self, sources: Sequence[MetricsSource],
                      gauges: Mapping[str, GaugeMerge] | None) -> None:
        self._sources = list(sources)
        self._gauges = GAUGE_MERGE if gauges is None else gauges
        self._on_drop = _ignore_drop
        self._sources_lock = threading.Lock()

    def add_source(self, source: MetricsSource) -> None:
        """Merge ``source`` into every later collection of this reader."""
        with self._sources_lock:
            self._sources = [*self._sources, source]

    def set_gauge_merge(self, gauges: Mapping[str, GaugeMerge]) -> None:
        """How the gauges of several sources combine (:data:`GAUGE_MERGE` by default)."""
        self._gauges = gauges

    def set_drop_counter(self, on_drop: DropCounter) -> None:
        """Where a left-out source or a failed merge is counted (``stage, reason``)."""
        self._on_drop = on_drop

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
                         **kwargs: Any) -> None:
        # the concrete reader after this mixin in the MRO (Prometheus, periodic, in-memory)
        super()._receive_metrics(  # type: ignore[safe-super]
            self._merged(metrics_data), timeout_millis=timeout_millis, **kwargs)

    def _merged(self, metrics_data: MetricsData) -> MetricsData:
        parts = [metrics_data]
        for source in self._sources:
            try:
                extra = source.collect_for(self)
            except Exception:  # telemetry never breaks: this collection goes on without it
                _log.exception("metrics source %r failed; its metrics are left out of this "
                               "collection", source)
                self._on_drop(MERGE_STAGE, "source_error")
                continue
            if extra is not None:
                parts.append(extra)
        if len(parts) == 1:
            return metrics_data
        resource = (metrics_data.resource_metrics[0].resource
                    if metrics_data.resource_metrics else None)
        bounds: dict[str, Sequence[float]] = {}
        for source in self._sources:
            if isinstance(source, LocalHistograms):
                bounds.update(source.declared_bounds())
        try:
            return merge_metrics_data(parts, resource=resource, gauges=self._gauges,
                                      bounds=bounds)
        except Exception:
            _log.exception("merging the metrics of %d sources failed; this collection has "
                           "the SDK's own metrics only", len(parts) - 1)
            self._on_drop(MERGE_STAGE, "merge_failed")
            return metrics_data


class MergingPrometheusMetricReader(MergingReader, PrometheusMetricReader):
    """``PrometheusMetricReader`` (same arguments) with extra sources merged in."""

    def __init__(self, *, sources: Sequence[MetricsSource] = (),
                 gauges: Mapping[str, GaugeMerge] | None = None, **kwargs: Any) -> None:
        self._init_sources(sources, gauges)
        super().__init__(**kwargs)


class MergingPeriodicExportingMetricReader(MergingReader, PeriodicExportingMetricReader):
    """``PeriodicExportingMetricReader`` (same arguments) with extra sources merged in."""

    def __init__(self, exporter: MetricExporter, *, sources: Sequence[MetricsSource] = (),
                 gauges: Mapping[str, GaugeMerge] | None = None, **kwargs: Any) -> None:
        self._init_sources(sources, gauges)
        super().__init__(exporter, **kwargs)


class MergingInMemoryMetricReader(MergingReader, InMemoryMetricReader):
    """``InMemoryMetricReader`` (same arguments) with extra sources merged in: what a test,
    or a worker process handing its metrics to another, reads."""

    def __init__(self, *, sources: Sequence[MetricsSource] = (),
                 gauges: Mapping[str, GaugeMerge] | None = None, **kwargs: Any) -> None:
        self._init_sources(sources, gauges)
        super().__init__(**kwargs)
