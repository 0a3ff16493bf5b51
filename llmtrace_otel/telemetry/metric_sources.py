"""Sources of ``MetricsData`` that the SDK does not collect: merged into what readers receive.

A :class:`MetricsSource` is asked by a merging reader
(:mod:`~llmtrace_otel.telemetry.merging_reader`) at every collection for its metrics, in
that reader's temporality. Two kinds exist:

- :class:`LocalHistograms`: this process's pre-aggregated histograms
  (:class:`~llmtrace_otel.telemetry.histograms.HistogramTotals`) of one instrumentation
  scope. It is also the :class:`~llmtrace_otel.telemetry.histograms.HistogramFactory` the
  instruments create their histograms from. A cumulative reader gets the cumulative points
  (each series' start time is its first record, as the SDK's). A reader that prefers delta
  gets the change since its own last collection: the source keeps, per reader, the bucket
  counts it last reported and, in every series, the minimum, maximum and sum recorded since
  (a "cursor"), so delta points are exact (min and max included) and series without new
  records are left out, as the SDK's delta histograms are.
- :class:`CumulativeSource`: whatever a function returns, already cumulative (the metrics
  of other worker processes, decoded from OTLP): for cumulative readers (Prometheus) only.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.view import DefaultAggregation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from llmtrace_otel.compat import histogram_preferences
from llmtrace_otel.telemetry.histograms import HistogramTotals, LabelValues, SeriesSnapshot

__all__ = ["CumulativeSource", "LocalHistograms", "MetricsSource", "takes_local_histograms"]

_log = logging.getLogger(__name__)


class MetricsSource(Protocol):
    """Metrics a reader receives besides the SDK's own."""

    def collect_for(self, reader: MetricReader) -> MetricsData | None:
        """This source's metrics for one collection of ``reader``, in its temporality."""
        ...


def takes_local_histograms(reader: MetricReader) -> bool:
    """Whether ``reader`` receives histograms as :class:`LocalHistograms` makes them: with
    the default aggregation (explicit buckets from the instrument's advice). A reader that
    asked for another (base-2 exponential, through
    ``OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION``) needs the SDK's."""
    return isinstance(histogram_preferences(reader)[1], DefaultAggregation)


@dataclass
class _Cursor:
    """What one delta reader was last given."""

    #: Histogram name -> the reader's cursor number in it.
    numbers: dict[str, int] = field(default_factory=dict)
    #: (histogram name, label values) -> the bucket counts last reported.
    reported: dict[tuple[str, LabelValues], tuple[int, ...]] = field(default_factory=dict)
    #: When the reader last collected (None: never).
    last_ns: int | None = None


class LocalHistograms:
    """This process's pre-aggregated histograms of one scope, as a source and a factory."""

    def __init__(self, scope: InstrumentationScope, resource: Resource) -> None:
        self.scope = scope
        self.resource = resource
        self._histograms: dict[str, HistogramTotals] = {}
        self._cursors: weakref.WeakKeyDictionary[MetricReader, _Cursor] = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()

    def histogram(self, name: str, *, labels: tuple[str, ...], bounds: Sequence[float],
                  unit: str = "", description: str = "",
                  optional: Collection[str] = ()) -> HistogramTotals:
        """The histogram ``name`` (the same object when asked again with the same shape)."""
        created = HistogramTotals(name, labels=labels, bounds=bounds, unit=unit,
                                  description=description, optional=optional)
        with self._lock:
            existing = self._histograms.get(name)
            if existing is None:
                self._histograms[name] = created
                return created
        if (existing.labels, tuple(existing.bounds), existing.unit, existing.description) != (
                labels, tuple(bounds), unit, description):
            raise ValueError(f"histogram {name} already exists with another shape (labels "
                             f"{existing.labels}, unit {existing.unit!r})")
        return existing

    def declared_bounds(self) -> dict[str, Sequence[float]]:
        """Each histogram's bounds as its instrument declared them, by name."""
        with self._lock:
            return {name: histogram.bounds for name, histogram in self._histograms.items()}

    def collect_for(self, reader: MetricReader) -> MetricsData | None:
        now = time.time_ns()
        with self._lock:
            histograms = list(self._histograms.values())
        if histogram_preferences(reader)[0] is AggregationTemporality.DELTA:
            with self._lock:  # one delta collection at a time: the cursors move
                cursor = self._cursors.setdefault(reader, _Cursor())
                metrics = [self._delta(histogram, cursor, now) for histogram in histograms]
                cursor.last_ns = now
        else:
            metrics = [_metric(histogram, histogram.points(now),
                               AggregationTemporality.CUMULATIVE) for histogram in histograms]
        present = [metric for metric in metrics if metric.data.data_points]
        if not present:
            return None
        return MetricsData([ResourceMetrics(
            self.resource, [ScopeMetrics(self.scope, present, self.scope.schema_url or "")],
            self.resource.schema_url)])

    @staticmethod
    def _delta(histogram: HistogramTotals, cursor: _Cursor, now: int) -> Metric:
        number = cursor.numbers.get(histogram.name)
        if number is None:  # first collection of this reader, or a newer histogram
            number = cursor.numbers[histogram.name] = histogram.open_cursor()
        points: list[HistogramDataPoint] = []
        for item in histogram.snapshot(number):
            key = (histogram.name, item.values)
            before = cursor.reported.get(key)
            cursor.reported[key] = item.bucket_counts
            point = _delta_point(item, before, histogram.bounds,
                                 cursor.last_ns or item.start_time_unix_nano, now)
            if point is not None:
                points.append(point)
        return _metric(histogram, points, AggregationTemporality.DELTA)


def _delta_point(item: SeriesSnapshot, before: tuple[int, ...] | None,
                 bounds: Sequence[float], start: int, now: int) -> HistogramDataPoint | None:
    """The change of one series since ``before`` (None: never reported, all of it)."""
    if before is None:
        counts, total, low, high = item.bucket_counts, item.sum, item.min, item.max
    else:
        counts = tuple(now_count - then for now_count, then in
                       zip(item.bucket_counts, before, strict=True))
        total, low, high = item.interval_sum, item.interval_min, item.interval_max
    count = sum(counts)
    if not count:
        return None
    return HistogramDataPoint(
        attributes=item.attributes, start_time_unix_nano=start, time_unix_nano=now,
        count=count, sum=total, bucket_counts=counts, explicit_bounds=bounds,
        min=low, max=high)


def _metric(histogram: HistogramTotals, points: list[HistogramDataPoint],
            temporality: AggregationTemporality) -> Metric:
    return Metric(name=histogram.name, description=histogram.description,
                  unit=histogram.unit,
                  data=Histogram(data_points=points, aggregation_temporality=temporality))


class CumulativeSource:
    """A source for cumulative readers: ``fetch()`` returns cumulative ``MetricsData``
    (e.g. the merged metrics of the other worker processes), or None."""

    def __init__(self, fetch: Callable[[], MetricsData | None]) -> None:
        self._fetch = fetch

    def collect_for(self, reader: MetricReader) -> MetricsData | None:
        if histogram_preferences(reader)[0] is not AggregationTemporality.CUMULATIVE:
            raise ValueError(f"{type(reader).__name__} prefers delta temporality; a "
                             "CumulativeSource only feeds cumulative readers (Prometheus)")
        return self._fetch()
