"""Pre-aggregated explicit-bucket histograms, and the SDK histograms they stand in for.

``Histogram.record`` in the OTel Python SDK costs 51,000-86,000 CPU instructions a call
(callgrind, docs/performance.md): it builds a ``Measurement``, copies and hashes the
attributes, looks up the series in every reader's storage, and takes a lock per reader. A
proxied request records seven. The proxy's histograms always have the same label names, so
:class:`HistogramTotals` keeps each series as plain cumulative numbers under one lock (a
dict lookup, a bisect into the bounds, a few adds) and hands them out at collection time
in the SDK's own data model (``HistogramDataPoint``: start time, bounds, bucket counts,
count, sum, min, max). :mod:`~llmtrace_otel.telemetry.metric_sources` turns them into
``MetricsData`` and :mod:`~llmtrace_otel.telemetry.merging_reader` puts them into what
every reader receives, so Prometheus and OTLP see exactly what the SDK histograms gave.

The SDK's behaviour is kept where a user can see it: a negative or non-finite value is
ignored with a warning; a series starts when it is first recorded; bucket ``i`` counts the
values ``bounds[i-1] < v <= bounds[i]`` (``bisect_left``, as the SDK); the bounds are kept
as given (Prometheus spells ``le`` as Python prints the bound). A label in ``optional`` is
left out of a series whose value for it is ``""`` (an attribute the call does not have).
Past ``max_series`` label tuples, new tuples are recorded under :data:`OVERFLOW_VALUE` in
every label, as :class:`~llmtrace_processors.totals.CounterTotals` does. Pre-aggregated
histograms carry no exemplars (the proxy records its metrics outside any span context,
where the SDK's default ``trace_based`` exemplar filter records none either).

Where no reader of ours can merge them (the application's own meter provider in the SDK
instrumentation, or a reader that wants another aggregation), :class:`SdkHistograms`
creates the SDK's instruments behind the same ``record(value, values)`` call.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from bisect import bisect_left
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics.export import HistogramDataPoint
from opentelemetry.util.types import AttributeValue

from llmtrace_processors.totals import OVERFLOW_VALUE

__all__ = [
    "OVERFLOW_VALUE",
    "HistogramFactory",
    "HistogramRecorder",
    "HistogramTotals",
    "LabelValues",
    "SdkHistograms",
    "SeriesSnapshot",
]

_log = logging.getLogger(__name__)
_INF = math.inf

#: Label values in the order of a histogram's label names.
LabelValues = tuple[str | int, ...]


class HistogramRecorder(Protocol):
    """What the instruments call once per measurement: values in label order."""

    def record(self, value: float, values: LabelValues) -> None: ...


class HistogramFactory(Protocol):
    """Creates histograms with fixed label names (pre-aggregated, or the SDK's)."""

    def histogram(self, name: str, *, labels: tuple[str, ...], bounds: Sequence[float],
                  unit: str = "", description: str = "",
                  optional: Collection[str] = ()) -> HistogramRecorder: ...


@dataclass(frozen=True, slots=True)
class SeriesSnapshot:
    """One series at collection time: cumulative numbers, and those of one interval.

    ``interval_sum``/``interval_min``/``interval_max`` are those recorded since the last
    snapshot taken with the same delta cursor (0/``inf``/``-inf`` when nothing was), or the
    cumulative ones for a snapshot without a cursor.
    """

    values: LabelValues
    attributes: dict[str, AttributeValue]
    start_time_unix_nano: int
    bucket_counts: tuple[int, ...]
    sum: float
    min: float
    max: float
    interval_sum: float
    interval_min: float
    interval_max: float


class _Series:
    __slots__ = ("attributes", "counts", "high", "intervals", "low", "start_ns", "total")

    def __init__(self, buckets: int, attributes: dict[str, AttributeValue], cursors: int) -> None:
        self.attributes = attributes
        self.counts = [0] * buckets
        self.total: float = 0  # an int while ints are recorded, as the SDK's sum
        self.low = _INF
        self.high = -_INF
        self.start_ns = time.time_ns()
        #: [min, max, sum] since the last snapshot, one per delta cursor.
        self.intervals: list[list[float]] = [[_INF, -_INF, 0] for _ in range(cursors)]


class HistogramTotals:
    """One cumulative explicit-bucket histogram with fixed label names; thread-safe."""

    __slots__ = ("_bounds", "_buckets", "_cursors", "_labels", "_lock", "_max", "_optional",
                 "_overflow", "_series", "description", "name", "unit")

    def __init__(self, name: str, *, labels: tuple[str, ...], bounds: Sequence[float],
                 unit: str = "", description: str = "", max_series: int = 2000,
                 optional: Collection[str] = ()) -> None:
        if max_series < 1:
            raise ValueError(f"max_series must be >= 1, got {max_series}")
        bounds = tuple(bounds)  # as given: the SDK (and so /metrics' le="1") keeps ints
        for i, bound in enumerate(bounds):
            if not math.isfinite(bound) or (i and bounds[i - 1] >= bound):
                raise ValueError(f"histogram {name}: bounds must be finite and strictly "
                                 f"increasing, got {bounds}")
        self.name = name
        self.unit = unit
        self.description = description
        self._labels = labels
        self._bounds = bounds
        self._buckets = len(bounds) + 1
        self._max = max_series
        self._optional = frozenset(optional)
        self._overflow: LabelValues = (OVERFLOW_VALUE,) * len(labels)
        self._series: dict[LabelValues, _Series] = {}
        self._cursors = 0
        self._lock = threading.Lock()

    @property
    def bounds(self) -> Sequence[float]:
        return self._bounds

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    def record(self, value: float, values: LabelValues) -> None:
        """Count ``value`` (>= 0, finite) in the series of ``values`` (in label order)."""
        if not 0 <= value < _INF:  # NaN fails both comparisons
            _log.warning("histogram %s: %r is negative or not finite; ignored (as the OTel "
                         "SDK does)", self.name, value)
            return
        with self._lock:
            series = self._series.get(values)
            if series is None:
                series = self._open(values)
            series.counts[bisect_left(self._bounds, value)] += 1
            series.total += value
            if value < series.low:
                series.low = value
            if value > series.high:
                series.high = value
            for interval in series.intervals:  # none unless a reader prefers delta
                if value < interval[0]:
                    interval[0] = value
                if value > interval[1]:
                    interval[1] = value
                interval[2] += value

    def _open(self, values: LabelValues) -> _Series:
        """A new series (the lock is held); the overflow series past the cap."""
        if len(values) != len(self._labels):
            raise ValueError(f"histogram {self.name}: {len(values)} label values for labels "
                             f"{self._labels}")
        if len(self._series) >= self._max:
            values = self._overflow
            series = self._series.get(values)
            if series is not None:
                return series
        attributes = _attributes(self._labels, values, self._optional)
        series = self._series[values] = _Series(self._buckets, attributes, self._cursors)
        return series

    def open_cursor(self) -> int:
        """A new delta cursor: from now on every series keeps the minimum, maximum and sum
        recorded since the last :meth:`snapshot` with this cursor. Returns its number."""
        with self._lock:
            for series in self._series.values():
                series.intervals.append([_INF, -_INF, 0])
            self._cursors += 1
            return self._cursors - 1

    def snapshot(self, cursor: int | None = None) -> list[SeriesSnapshot]:
        """Every series, cumulative; with ``cursor``, also what was recorded since that
        cursor's last snapshot (which starts a new interval)."""
        out: list[SeriesSnapshot] = []
        with self._lock:
            for values, series in self._series.items():
                if cursor is None:
                    low, high, total = series.low, series.high, series.total
                else:
                    interval = series.intervals[cursor]
                    low, high, total = interval
                    series.intervals[cursor] = [_INF, -_INF, 0]
                out.append(SeriesSnapshot(values, series.attributes, series.start_ns,
                                          tuple(series.counts), series.total, series.low,
                                          series.high, total, low, high))
        return out

    def points(self, time_unix_nano: int) -> list[HistogramDataPoint]:
        """The cumulative data points, as the SDK's histogram gives them."""
        return [HistogramDataPoint(
            attributes=item.attributes, start_time_unix_nano=item.start_time_unix_nano,
            time_unix_nano=time_unix_nano, count=sum(item.bucket_counts), sum=item.sum,
            bucket_counts=item.bucket_counts, explicit_bounds=self._bounds,
            min=item.min, max=item.max) for item in self.snapshot()]


def _attributes(labels: tuple[str, ...], values: LabelValues,
                optional: frozenset[str]) -> dict[str, AttributeValue]:
    """The attributes of a series: every label, but an optional one whose value is ""."""
    return {key: value for key, value in zip(labels, values, strict=True)
            if not (value == "" and key in optional)}


class _SdkHistogram:
    """An SDK histogram behind ``record(value, values)``."""

    __slots__ = ("_histogram", "_labels", "_optional")

    def __init__(self, meter: Meter, name: str, labels: tuple[str, ...],
                 bounds: Sequence[float], unit: str, description: str,
                 optional: Collection[str]) -> None:
        self._labels = labels
        self._optional = frozenset(optional)
        self._histogram = meter.create_histogram(
            name, unit=unit, description=description,
            explicit_bucket_boundaries_advisory=bounds)

    def record(self, value: float, values: LabelValues) -> None:
        self._histogram.record(value, _attributes(self._labels, values, self._optional))


class SdkHistograms:
    """The fallback :class:`HistogramFactory`: the SDK's own histograms on ``meter``."""

    def __init__(self, meter: Meter) -> None:
        self._meter = meter

    def histogram(self, name: str, *, labels: tuple[str, ...], bounds: Sequence[float],
                  unit: str = "", description: str = "",
                  optional: Collection[str] = ()) -> HistogramRecorder:
        return _SdkHistogram(self._meter, name, labels, bounds, unit, description, optional)
