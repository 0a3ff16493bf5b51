"""merge_metrics_data and the OTLP metrics codec: N worker processes' metrics, sent as OTLP
bytes and merged, are what one process that saw all the traffic reports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogram,
    Gauge,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import use_span

from llmtrace_otel.providers.types import Usage
from llmtrace_otel.receiver.metrics_codec import decode_metrics_data, encode_metrics_data
from llmtrace_otel.telemetry.instruments import CallOutcome, ProxyInstruments
from llmtrace_otel.telemetry.merging_reader import MergingInMemoryMetricReader
from llmtrace_otel.telemetry.metric_sources import LocalHistograms
from llmtrace_otel.telemetry.metrics_merge import (
    GAUGE_MERGE,
    GaugeMerge,
    MetricsMergeError,
    merge_metrics_data,
)
from llmtrace_otel.telemetry.provider_health import PROVIDER_AVAILABLE_METRIC, ProviderHealth
from llmtrace_processors.breaker import BREAKER_METRIC

SCOPE = ("llmtrace_otel.proxy", "9.9.9")


def _outcomes() -> list[CallOutcome]:
    """Calls of every kind: ok, streamed, failing upstream, errors, embeddings, agents, no
    model, no server address."""
    calls = []
    for i in range(30):
        streamed = i % 3 == 0
        calls.append(CallOutcome(
            provider="openai" if i % 4 else "anthropic",
            operation="embeddings" if i % 7 == 0 else "invoke_agent" if i % 13 == 12 else "chat",
            request_model=None if i % 11 == 0 else f"model-{i % 3}",
            response_model=f"model-{i % 3}-2025" if i % 5 else None,
            server_address="api.example.com" if i % 9 else "", server_port=443,
            status_code=502 if i % 8 == 0 else 200, duration_s=0.013 * (i + 1),
            error_type="502" if i % 8 == 0 else None,
            usage=Usage(input_tokens=10 * i, output_tokens=i + 1) if i % 6 else None,
            time_to_first_chunk_s=0.002 * i if streamed else None,
            chunk_intervals_s=(0.01, 0.02 * i) if streamed else ()))
    return calls


class _Process:
    """The proxy's instruments in one process, read as an OTLP reader would."""

    def __init__(self, instance: str, active: int, breaker_open: int) -> None:
        self.reader = MergingInMemoryMetricReader()
        resource = Resource.create({"service.name": "proxy", "service.instance.id": instance})
        meter = MeterProvider(resource=resource, metric_readers=[self.reader]).get_meter(*SCOPE)
        local = LocalHistograms(InstrumentationScope(*SCOPE), resource)
        self.reader.add_source(local)
        # unavailable after one failure: the workers disagree about anthropic (below)
        self.instruments = ProxyInstruments(meter, histograms=local,
                                            provider_health=ProviderHealth(consecutive_failures=1))
        self.instruments.observe_active_connections(lambda: active)

        def gauges(name: str, values: Sequence[tuple[float, dict[str, str]]]) -> None:
            def observe(options: CallbackOptions) -> Iterable[Observation]:
                return [Observation(value, attributes) for value, attributes in values]
            meter.create_observable_gauge(name, [observe])

        gauges(BREAKER_METRIC, [(breaker_open, {"subsystem": "export.otlp", "state": "open"}),
                                (1 - breaker_open, {"subsystem": "export.otlp",
                                                    "state": "closed"})])
        gauges("queue.depth", [(5, {"exporter": "sqlite"})])

    def otlp(self) -> bytes:
        data = self.reader.get_metrics_data()
        assert data is not None
        return encode_metrics_data(data)


def _series(data: MetricsData) -> dict[tuple[str, frozenset[Any]], Any]:
    """(metric, attributes) -> what the point says, times left out."""
    out: dict[tuple[str, frozenset[Any]], Any] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            assert (scope_metrics.scope.name, scope_metrics.scope.version) == SCOPE
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, frozenset(point.attributes.items()))
                    assert key not in out
                    if isinstance(point, HistogramDataPoint):
                        out[key] = (point.count, pytest.approx(point.sum),
                                    tuple(point.bucket_counts), tuple(point.explicit_bounds),
                                    point.min, point.max)
                    else:
                        out[key] = pytest.approx(point.value)
    return out


def test_the_workers_merged_are_the_whole() -> None:
    calls = _outcomes()
    whole = _Process("whole", 0, 0)
    for call in calls:
        whole.instruments.record(call)
    workers = [_Process("w0", 2, 0), _Process("w1", 3, 1), _Process("w2", 0, 0)]
    for i, call in enumerate(calls):
        workers[i % 3].instruments.record(call)
    payloads = [worker.otlp() for worker in workers]
    available = [_series(decode_metrics_data(payload))[
        (PROVIDER_AVAILABLE_METRIC, frozenset({("provider", "anthropic")}))]
        for payload in payloads]
    assert available == [0, 1, 1]  # w0's last anthropic call failed

    merged = merge_metrics_data([decode_metrics_data(payload) for payload in payloads])

    expected = _series(whole.reader.get_metrics_data())  # type: ignore[arg-type]
    got = _series(merged)
    gauges = {PROVIDER_AVAILABLE_METRIC, BREAKER_METRIC, "queue.depth",
              "llmtrace.active_connections"}
    assert {key: value for key, value in got.items() if key[0] not in gauges} == {
        key: value for key, value in expected.items() if key[0] not in gauges}
    assert any(name == "gen_ai.client.token.usage" for name, _ in got)
    assert got[("llmtrace.active_connections", frozenset())] == 5  # summed
    assert got[(PROVIDER_AVAILABLE_METRIC, frozenset({("provider", "anthropic")}))] == 0  # min
    assert got[(PROVIDER_AVAILABLE_METRIC, frozenset({("provider", "openai")}))] == 1
    breaker = {dict(attributes)["state"]: value for name, attributes in got
               if name == BREAKER_METRIC for value in [got[(name, attributes)]]}
    assert breaker == {"open": 1, "closed": 1}  # max: some worker is open, some closed
    assert got[("queue.depth", frozenset({("exporter", "sqlite")}))] == 15  # summed
    # one resource (the first worker's), times spanning all the parts
    (resource_metrics,) = merged.resource_metrics
    assert resource_metrics.resource.attributes["service.instance.id"] == "w0"


def _number_metric(name: str, data_type: type, *points: tuple[dict[str, str], float, int, int],
                   unit: str = "1") -> Metric:
    built = [NumberDataPoint(attributes, start, end, value) for attributes, value, start, end
             in points]
    data: Any = Gauge(built) if data_type is Gauge else Sum(built, 2, True)
    return Metric(name, "", unit, data)


def _data(*metrics: Metric, scope: str = "s") -> MetricsData:
    return MetricsData([ResourceMetrics(Resource.get_empty(), [
        ScopeMetrics(InstrumentationScope(scope), list(metrics), "")], "")])


def test_sums_add_gauges_follow_their_policy_times_span_the_parts() -> None:
    a = _data(_number_metric("c", Sum, ({"k": "x"}, 2, 100, 200), ({"k": "y"}, 1, 100, 200)),
              _number_metric("g", Gauge, ({}, 4, 0, 210)))
    b = _data(_number_metric("c", Sum, ({"k": "x"}, 3, 50, 190)),
              _number_metric("g", Gauge, ({}, 7, 0, 205)))
    merged = merge_metrics_data([a, b], gauges={"g": GaugeMerge.MIN})
    (scope_metrics,) = merged.resource_metrics[0].scope_metrics
    c, g = scope_metrics.metrics
    assert [(dict(p.attributes), p.value, p.start_time_unix_nano, p.time_unix_nano)
            for p in c.data.data_points] == [({"k": "x"}, 5, 50, 200), ({"k": "y"}, 1, 100, 200)]
    assert [(p.value, p.time_unix_nano) for p in g.data.data_points] == [(4, 210)]
    assert merge_metrics_data([a, b]).resource_metrics[0].scope_metrics[0].metrics[1] \
        .data.data_points[0].value == 11  # a gauge not in the table is summed
    only = _data(_number_metric("only", Sum, ({}, 1, 0, 1)))
    assert merge_metrics_data([only, b]).resource_metrics[0].scope_metrics[0].metrics[0] \
        is only.resource_metrics[0].scope_metrics[0].metrics[0]  # one part: passed on


def test_the_default_gauge_table_is_the_documented_one() -> None:
    assert GAUGE_MERGE == {BREAKER_METRIC: GaugeMerge.MAX,
                           PROVIDER_AVAILABLE_METRIC: GaugeMerge.MIN,
                           "process.uptime": GaugeMerge.MAX}


def test_what_cannot_be_merged_is_refused_by_name() -> None:
    counter = _data(_number_metric("m", Sum, ({}, 1, 0, 1)))
    with pytest.raises(MetricsMergeError, match="metric m: cannot merge, Sum and Gauge"):
        merge_metrics_data([counter, _data(_number_metric("m", Gauge, ({}, 1, 0, 1)))])
    with pytest.raises(MetricsMergeError, match="unit '1' and 's'"):
        merge_metrics_data([counter, _data(_number_metric("m", Sum, ({}, 1, 0, 1), unit="s"))])

    def histogram(bounds: tuple[float, ...]) -> MetricsData:
        point = HistogramDataPoint({}, 0, 1, 1, 1.0, (1,) + (0,) * len(bounds), bounds, 1, 1)
        return _data(Metric("h", "", "s", HistogramData([point], 2)))  # type: ignore[arg-type]

    with pytest.raises(MetricsMergeError, match="bounds"):
        merge_metrics_data([histogram((1, 2)), histogram((1, 3))])


def test_metrics_data_survives_the_otlp_round_trip() -> None:
    """Sums (int and double), gauges, explicit and exponential histograms, exemplars, the
    scope and the resource: decoded, they equal what the SDK collected."""
    explicit = MergingInMemoryMetricReader()
    exponential = MergingInMemoryMetricReader(
        preferred_aggregation={Histogram: ExponentialBucketHistogramAggregation()})
    resource = Resource.create({"service.name": "round-trip", "n": 3, "flag": True})
    provider = MeterProvider(resource=resource, metric_readers=[explicit, exponential])
    meter = provider.get_meter("scope.rt", "0.1", attributes={"scope.attr": "v"})
    tracer = TracerProvider().get_tracer("t")
    with use_span(tracer.start_span("sampled"), end_on_exit=True):  # exemplars
        meter.create_counter("ints").add(7, {"k": "v"})
        meter.create_counter("doubles").add(2.5)
        meter.create_up_down_counter("updown").add(-3)
        for value in (0.5, 3, 40):
            meter.create_histogram("h", unit="s",
                                   explicit_bucket_boundaries_advisory=(1, 2.5, 10)
                                   ).record(value, {"route": "/x"})
    meter.create_observable_gauge("g", [lambda options: [Observation(1.5, {"a": 1})]])
    for reader in (explicit, exponential):
        original = reader.get_metrics_data()
        assert original is not None
        decoded = decode_metrics_data(encode_metrics_data(original))
        assert _no_none_exemplar_attributes(decoded) == _no_none_exemplar_attributes(original)
    kinds = {type(metric.data) for metric in original.resource_metrics[0].scope_metrics[0]
             .metrics}
    assert ExponentialHistogram in kinds
    points = original.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert points[0].exemplars  # the round trip carried them


def _no_none_exemplar_attributes(data: MetricsData) -> MetricsData:
    """OTLP cannot tell an exemplar's None filtered attributes from {} (metrics_codec.py)."""
    def metric(item: Metric) -> Metric:
        points = [replace(point, exemplars=[
            replace(exemplar, filtered_attributes=exemplar.filtered_attributes or {})
            for exemplar in point.exemplars]) for point in item.data.data_points]
        return replace(item, data=replace(item.data, data_points=points))

    return MetricsData([replace(rm, scope_metrics=[
        replace(sm, metrics=[metric(m) for m in sm.metrics]) for sm in rm.scope_metrics])
        for rm in data.resource_metrics])


def test_garbage_is_a_clear_error() -> None:
    from google.protobuf.message import DecodeError

    with pytest.raises(DecodeError):
        decode_metrics_data(b"\xff\xff\xff not otlp")
