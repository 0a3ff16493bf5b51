"""Several ``MetricsData`` of the same instruments as one: what N worker processes add up to.

Each worker process records the same instruments; :func:`merge_metrics_data` combines their
collections into one, the way each kind of metric means:

- **sums** (counters, up-down counters): added per (scope, metric, attributes);
  ``llmtrace_requests_total`` of the whole is the sum of the workers', and so is
  ``llmtrace_active_connections`` (an up-down counter);
- **histograms** (explicit buckets): merged bucket by bucket (the bounds must be the same):
  counts, count and sum added, min the smallest, max the largest;
- **gauges**: by the metric's :class:`GaugeMerge` in ``gauges`` (:data:`GAUGE_MERGE` by
  default), summed when the metric is not listed:

  ==================================  =======  ===============================================
  gauge                               merge    why
  ==================================  =======  ===============================================
  ``llmtrace.circuit_breaker.state``  max      1 for a state when any worker's breaker is in it
                                               (``{state="open"} == 1`` alerts on any open one)
  ``llmtrace.provider.available``     min      0 when any worker sees the provider failing
  ``process.uptime``                  max      the oldest worker's
  ``llmtrace.budget.spend_usd``,      max      shared state (Redis): every worker reports the
  ``llmtrace.budget.limit_usd``                same value (``tenancy.metrics.GAUGE_MERGE``)
  ``llmtrace.export.queue.depth``,    sum      spans waiting / room in all the workers' queues
  ``llmtrace.export.queue.capacity``
  ==================================  =======  ===============================================

Each merged point's start time is the earliest of its parts and its time the latest;
exemplars are kept, all of them. Everything ends up under one resource (``resource``, else
the first part's). Scopes, metrics and points keep the order in which they first appear, and
a metric found in one part only is passed on as it is. Parts that cannot be merged (the same
name with another kind, unit, temporality or bounds) raise :class:`MetricsMergeError`
naming the metric.

``bounds`` gives histogram bounds as their instruments declare them: Prometheus spells a
bound as Python prints it (``le="1.0"`` for a float, ``le="1"`` for an int) and OTLP carries
doubles, so a histogram that came through OTLP is given the declared bounds back when they
are numerically the same.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Final

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv._incubating.metrics.process_metrics import PROCESS_UPTIME

from llmtrace_otel.telemetry.provider_health import PROVIDER_AVAILABLE_METRIC
from llmtrace_processors.breaker import BREAKER_METRIC

__all__ = ["GAUGE_MERGE", "GaugeMerge", "MetricsMergeError", "merge_metrics_data",
           "totals_only"]


class MetricsMergeError(ValueError):
    """Two parts hold the same metric in shapes that cannot be combined."""


class GaugeMerge(enum.Enum):
    """How the values of one gauge series in several processes combine."""

    SUM = "sum"
    MAX = "max"
    MIN = "min"


_COMBINE: Final[Mapping[GaugeMerge, Callable[[float, float], float]]] = MappingProxyType({
    GaugeMerge.SUM: lambda a, b: a + b,
    GaugeMerge.MAX: max,
    GaugeMerge.MIN: min,
})

#: The gauges of the pipeline that are not summed (the others are); the tenancy part adds
#: its own (:data:`llmtrace_otel.tenancy.metrics.GAUGE_MERGE`).
GAUGE_MERGE: Final[Mapping[str, GaugeMerge]] = MappingProxyType({
    BREAKER_METRIC: GaugeMerge.MAX,
    PROVIDER_AVAILABLE_METRIC: GaugeMerge.MIN,
    PROCESS_UPTIME: GaugeMerge.MAX,
})


def totals_only(data: MetricsData) -> MetricsData:
    """What a process that has stopped still adds to the whole: its counters and histograms
    (totals of what it did), not its gauges and up-down counters (states it no longer has:
    connections it held, queue depths)."""
    return MetricsData([
        ResourceMetrics(resource_metrics.resource, [
            ScopeMetrics(scope_metrics.scope, [
                metric for metric in scope_metrics.metrics
                if isinstance(metric.data, Histogram)
                or (isinstance(metric.data, Sum) and metric.data.is_monotonic)],
                scope_metrics.schema_url)
            for scope_metrics in resource_metrics.scope_metrics], resource_metrics.schema_url)
        for resource_metrics in data.resource_metrics])


def merge_metrics_data(parts: Iterable[MetricsData], *, resource: Resource | None = None,
                       gauges: Mapping[str, GaugeMerge] = GAUGE_MERGE,
                       bounds: Mapping[str, Sequence[float]] | None = None) -> MetricsData:
    """One ``MetricsData`` holding every metric of ``parts``, combined per series."""
    scopes: dict[InstrumentationScope, dict[str, list[Metric]]] = {}
    scope_urls: dict[InstrumentationScope, str] = {}
    for part in parts:
        for resource_metrics in part.resource_metrics:
            if resource is None:
                resource = resource_metrics.resource
            for scope_metrics in resource_metrics.scope_metrics:
                by_name = scopes.setdefault(scope_metrics.scope, {})
                scope_urls.setdefault(scope_metrics.scope, scope_metrics.schema_url)
                for metric in scope_metrics.metrics:
                    by_name.setdefault(metric.name, []).append(metric)
    if resource is None:
        resource = Resource.get_empty()
    merged = [ScopeMetrics(scope, [_declared(_merge_metric(same, gauges), bounds or {})
                                   for same in by_name.values()], scope_urls[scope])
              for scope, by_name in scopes.items()]
    return MetricsData([ResourceMetrics(resource, merged, resource.schema_url)])


def _merge_metric(same: Sequence[Metric], gauges: Mapping[str, GaugeMerge]) -> Metric:
    first = same[0]
    if len(same) == 1:
        return first
    data = first.data
    for other in same[1:]:
        problem = _mismatch(first, other)
        if problem is not None:
            raise MetricsMergeError(f"metric {first.name}: cannot merge, {problem}")
    if isinstance(data, Sum):
        points = _merge_points(same, _add_numbers)
        return replace(first, data=replace(data, data_points=points))
    if isinstance(data, Gauge):
        combine = _COMBINE[gauges.get(first.name, GaugeMerge.SUM)]
        points = _merge_points(same, lambda a, b: _combine_numbers(a, b, combine))
        return replace(first, data=replace(data, data_points=points))
    if isinstance(data, Histogram):
        points = _merge_points(same, _add_histograms)
        return replace(first, data=replace(data, data_points=points))
    raise MetricsMergeError(f"metric {first.name}: {type(data).__name__} is not merged "
                            "(sums, gauges and explicit-bucket histograms are)")


def _declared(metric: Metric, bounds: Mapping[str, Sequence[float]]) -> Metric:
    """``metric`` with its histogram bounds spelt as declared (when they are the same)."""
    declared = bounds.get(metric.name)
    data = metric.data
    if declared is None or not isinstance(data, Histogram):
        return metric
    if all(point.explicit_bounds is declared for point in data.data_points):
        return metric
    points = [replace(point, explicit_bounds=declared)
              if tuple(point.explicit_bounds) == tuple(declared) else point
              for point in data.data_points]
    return replace(metric, data=replace(data, data_points=points))


def _mismatch(first: Metric, other: Metric) -> str | None:
    a, b = first.data, other.data
    if type(a) is not type(b):
        return f"{type(a).__name__} and {type(b).__name__}"
    if first.unit != other.unit:
        return f"unit {first.unit!r} and {other.unit!r}"
    if isinstance(a, Sum) and isinstance(b, Sum) and a.is_monotonic != b.is_monotonic:
        return "monotonic and non-monotonic sums"
    temporality = getattr(a, "aggregation_temporality", None)
    if temporality != getattr(b, "aggregation_temporality", None):
        return "cumulative and delta temporality"
    return None


def _key(point: Any) -> Hashable:
    attributes = point.attributes or {}
    return frozenset((key, _hashable(value)) for key, value in attributes.items())


def _hashable(value: Any) -> Hashable:
    return tuple(value) if isinstance(value, list) else value


def _merge_points(same: Sequence[Metric], add: Callable[[Any, Any], Any]) -> list[Any]:
    points: dict[Hashable, Any] = {}
    for metric in same:
        for point in metric.data.data_points:
            key = _key(point)
            before = points.get(key)
            points[key] = point if before is None else add(before, point)
    return list(points.values())


def _times(a: Any, b: Any) -> dict[str, Any]:
    starts = [t for t in (a.start_time_unix_nano, b.start_time_unix_nano) if t is not None]
    return {"start_time_unix_nano": min(starts) if starts else None,
            "time_unix_nano": max(a.time_unix_nano, b.time_unix_nano),
            "exemplars": [*a.exemplars, *b.exemplars]}


def _add_numbers(a: NumberDataPoint, b: NumberDataPoint) -> NumberDataPoint:
    return replace(a, value=a.value + b.value, **_times(a, b))


def _combine_numbers(a: NumberDataPoint, b: NumberDataPoint,
                     combine: Callable[[float, float], float]) -> NumberDataPoint:
    return replace(a, value=combine(a.value, b.value), **_times(a, b))


def _add_histograms(a: HistogramDataPoint, b: HistogramDataPoint) -> HistogramDataPoint:
    if tuple(a.explicit_bounds) != tuple(b.explicit_bounds):
        raise MetricsMergeError(f"histogram series {dict(a.attributes or {})}: bounds "
                                f"{tuple(a.explicit_bounds)} and {tuple(b.explicit_bounds)}")
    return replace(
        a, count=a.count + b.count, sum=a.sum + b.sum, min=min(a.min, b.min),
        max=max(a.max, b.max),
        bucket_counts=tuple(x + y for x, y in zip(a.bucket_counts, b.bucket_counts,
                                                    strict=True)),
        **_times(a, b))
