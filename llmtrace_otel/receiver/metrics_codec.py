"""``MetricsData`` as OTLP protobuf bytes and back: how metrics cross a process boundary.

Encoding is the OTLP exporters' own (``opentelemetry.exporter.otlp.proto.common``
``encode_metrics``); the SDK has no decoder, so :func:`decode_metrics_data` builds the SDK
objects again (sums, gauges, explicit and exponential histograms, exemplars, scopes and
resources). What OTLP cannot carry comes back as the SDK would have made it, or as close as
the wire allows:

- a gauge point has no start time in OTLP: None, as the SDK's gauges;
- numbers keep int or double (``as_int``/``as_double``); a histogram's sum, min and max are
  doubles on the wire;
- bucket bounds are doubles on the wire, and Prometheus spells a bound as Python prints it
  (``le="1"`` for the int 1, ``le="1.0"`` for the float): integral bounds come back as ints,
  which is how every histogram of ours declares them except the time-to-first-chunk and
  time-per-chunk ones (``1.0``, ``5.0``, ``10.0``); a merging reader spells those as the
  local instrument declares them (:mod:`~llmtrace_otel.telemetry.merging_reader`);
- an empty scope version or schema URL comes back None, as the SDK's meters have them;
- an exemplar's filtered attributes come back ``{}`` when there were none (the SDK says None
  for a measurement without attributes, ``{}`` for one whose attributes were all kept).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Buckets,
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
from opentelemetry.sdk.metrics.export import ExponentialHistogram as ExponentialHistogramData
from opentelemetry.sdk.metrics.export import ExponentialHistogramDataPoint as ExponentialPoint
from opentelemetry.sdk.resources import Resource

from llmtrace_otel.receiver.decode import attributes_of, scope_of

__all__ = ["decode_metrics_data", "encode_metrics_data"]


def encode_metrics_data(data: MetricsData) -> bytes:
    """``data`` as the body of an OTLP ``ExportMetricsServiceRequest``."""
    return encode_metrics(data).SerializeToString()


def decode_metrics_data(payload: bytes | ExportMetricsServiceRequest) -> MetricsData:
    """The SDK's ``MetricsData`` of an OTLP metrics request (its bytes, or parsed).

    Raises ``google.protobuf.message.DecodeError`` for bytes that are not one, and
    ``ValueError`` for a metric without data or with an unknown temporality.
    """
    request = payload
    if isinstance(payload, bytes | bytearray | memoryview):
        request = ExportMetricsServiceRequest()
        request.ParseFromString(bytes(payload))
    assert isinstance(request, ExportMetricsServiceRequest)
    return MetricsData([
        ResourceMetrics(
            Resource(attributes_of(item.resource.attributes), item.schema_url or None),
            [ScopeMetrics(scope_of(scope.scope, scope.schema_url),
                          [_metric(metric) for metric in scope.metrics], scope.schema_url)
             for scope in item.scope_metrics],
            item.schema_url)
        for item in request.resource_metrics])


def _temporality(value: int, name: str) -> AggregationTemporality:
    try:
        temporality = AggregationTemporality(value)
    except ValueError:
        temporality = AggregationTemporality.UNSPECIFIED
    if temporality is AggregationTemporality.UNSPECIFIED:
        raise ValueError(f"metric {name}: aggregation temporality {value} is not delta or "
                         "cumulative")
    return temporality


def _metric(metric: metrics_pb2.Metric) -> Metric:
    kind = metric.WhichOneof("data")
    data: Any
    if kind == "sum":
        data = Sum([_number(point, start=True) for point in metric.sum.data_points],
                   _temporality(metric.sum.aggregation_temporality, metric.name),
                   metric.sum.is_monotonic)
    elif kind == "gauge":
        data = Gauge([_number(point, start=False) for point in metric.gauge.data_points])
    elif kind == "histogram":
        data = Histogram([_histogram(point) for point in metric.histogram.data_points],
                         _temporality(metric.histogram.aggregation_temporality, metric.name))
    elif kind == "exponential_histogram":
        data = ExponentialHistogramData(
            [_exponential(point) for point in metric.exponential_histogram.data_points],
            _temporality(metric.exponential_histogram.aggregation_temporality, metric.name))
    else:
        raise ValueError(f"metric {metric.name!r}: no data, or a kind the SDK has no model "
                         f"for ({kind})")
    return Metric(metric.name, metric.description, metric.unit, data)


def _value(point: metrics_pb2.NumberDataPoint | metrics_pb2.Exemplar) -> int | float:
    return point.as_int if point.WhichOneof("value") == "as_int" else point.as_double


def _exemplars(items: Iterable[metrics_pb2.Exemplar]) -> list[Exemplar]:
    return [Exemplar(attributes_of(item.filtered_attributes), _value(item), item.time_unix_nano,
                     int.from_bytes(item.span_id, "big") if item.span_id else None,
                     int.from_bytes(item.trace_id, "big") if item.trace_id else None)
            for item in items]


def _number(point: metrics_pb2.NumberDataPoint, *, start: bool) -> NumberDataPoint:
    return NumberDataPoint(
        attributes_of(point.attributes),
        point.start_time_unix_nano if start else None,  # type: ignore[arg-type]
        point.time_unix_nano, _value(point), _exemplars(point.exemplars))


def _bounds(bounds: Sequence[float]) -> tuple[float, ...]:
    return tuple(int(bound) if bound.is_integer() else bound for bound in bounds)


def _histogram(point: metrics_pb2.HistogramDataPoint) -> HistogramDataPoint:
    return HistogramDataPoint(
        attributes_of(point.attributes), point.start_time_unix_nano, point.time_unix_nano,
        point.count, point.sum, tuple(point.bucket_counts), _bounds(point.explicit_bounds),
        point.min, point.max, _exemplars(point.exemplars))


def _exponential(point: metrics_pb2.ExponentialHistogramDataPoint) -> ExponentialPoint:
    return ExponentialPoint(
        attributes_of(point.attributes), point.start_time_unix_nano, point.time_unix_nano,
        point.count, point.sum, point.scale, point.zero_count,
        Buckets(point.positive.offset, list(point.positive.bucket_counts)),  # lists, as the SDK
        Buckets(point.negative.offset, list(point.negative.bucket_counts)),
        point.flags, point.min, point.max, _exemplars(point.exemplars))
