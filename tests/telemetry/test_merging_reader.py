"""MergingReader + LocalHistograms: pre-aggregated histograms reach every reader as the SDK's
would, cumulative or delta; other sources are merged in; failures are counted, never fatal."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    MetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry, generate_latest

from llmtrace_otel.receiver.metrics_codec import decode_metrics_data, encode_metrics_data
from llmtrace_otel.telemetry.histograms import HistogramRecorder, SdkHistograms
from llmtrace_otel.telemetry.instruments import TIME_TO_FIRST_CHUNK_BUCKETS
from llmtrace_otel.telemetry.merging_reader import (
    MERGE_STAGE,
    MergingInMemoryMetricReader,
    MergingPrometheusMetricReader,
)
from llmtrace_otel.telemetry.metric_sources import (
    CumulativeSource,
    LocalHistograms,
    takes_local_histograms,
)

BOUNDS = (0.01, 0.1, 1, 10)
DELTA = {Histogram: AggregationTemporality.DELTA}
RESOURCE = Resource.create({"service.name": "merging-test"})


class _Pair:
    """The same histogram twice in one meter provider: the SDK's ("sdk.h") and ours
    ("local.h"), recorded with the same values."""

    def __init__(self, *readers: MetricReader) -> None:
        self.provider = MeterProvider(resource=RESOURCE, metric_readers=list(readers))
        meter = self.provider.get_meter("scope.x", "1.2.3")
        self.local = LocalHistograms(
            InstrumentationScope(meter.name, meter.version, meter.schema_url), RESOURCE)
        for reader in readers:
            reader.add_source(self.local)  # type: ignore[attr-defined]
        shape: dict[str, Any] = {"labels": ("route",), "bounds": BOUNDS, "unit": "s",
                                 "description": "How long."}
        self.histograms: list[HistogramRecorder] = [
            SdkHistograms(meter).histogram("sdk.h", **shape),
            self.local.histogram("local.h", **shape)]

    def record(self, value: float, route: str) -> None:
        for histogram in self.histograms:
            histogram.record(value, (route,))


def _metrics(data: MetricsData | None) -> dict[str, Any]:
    assert data is not None
    (resource_metrics,) = data.resource_metrics
    assert resource_metrics.resource is RESOURCE
    (scope_metrics,) = resource_metrics.scope_metrics  # ours joined the SDK's scope
    assert (scope_metrics.scope.name, scope_metrics.scope.version) == ("scope.x", "1.2.3")
    return {metric.name: metric for metric in scope_metrics.metrics}


def _points(metric: Any) -> dict[str, tuple[Any, ...]]:
    out = {}
    for point in metric.data.data_points:
        assert isinstance(point, HistogramDataPoint)
        out[point.attributes["route"]] = (point.count, point.sum, tuple(point.bucket_counts),
                                          tuple(point.explicit_bounds), point.min, point.max)
    return out


def test_a_cumulative_reader_gets_local_histograms_as_the_sdk_gives_its_own() -> None:
    reader = MergingInMemoryMetricReader()
    pair = _Pair(reader)
    for value, route in ((0.005, "/a"), (0.5, "/a"), (3, "/b"), (30, "/a")):
        pair.record(value, route)
    metrics = _metrics(reader.get_metrics_data())
    sdk, local = metrics["sdk.h"], metrics["local.h"]
    assert (local.unit, local.description) == (sdk.unit, sdk.description) == ("s", "How long.")
    assert local.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    assert _points(local) == _points(sdk)
    pair.record(0.05, "/b")
    again = _metrics(reader.get_metrics_data())
    assert _points(again["local.h"]) == _points(again["sdk.h"])
    assert _points(again["local.h"])["/b"][0] == 2  # cumulative


def test_a_delta_reader_gets_the_change_since_its_last_collection_like_the_sdk() -> None:
    delta = MergingInMemoryMetricReader(preferred_temporality=DELTA)
    other_delta = MergingInMemoryMetricReader(preferred_temporality=DELTA)
    cumulative = MergingInMemoryMetricReader()
    pair = _Pair(delta, other_delta, cumulative)
    rounds = [[(0.5, "/a"), (7, "/a"), (0.02, "/b")],
              [(0.03, "/a"), (0.04, "/a")],          # /b had nothing: left out
              [],                                     # nothing at all
              [(9, "/b"), (0.001, "/a"), (20, "/a")]]
    ends: list[int] = []
    for number, records in enumerate(rounds):
        for value, route in records:
            pair.record(value, route)
        data = delta.get_metrics_data()
        if not records:  # nothing anywhere: the SDK delivers nothing, as it always did
            assert data is None
            continue
        metrics = _metrics(data)
        local = metrics["local.h"]
        assert local.data.aggregation_temporality is AggregationTemporality.DELTA
        assert _points(local) == _points(metrics["sdk.h"]), f"round {number}"
        if number == 1:  # the interval starts where the reader's previous one ended
            assert {point.start_time_unix_nano for point in local.data.data_points} == {
                ends[0]}
        ends.extend(point.time_unix_nano for point in local.data.data_points[:1])
    pair.provider.get_meter("scope.x", "1.2.3").create_counter("c").add(1)
    assert set(_metrics(delta.get_metrics_data())) == {"c"}  # no histogram had records
    # a second delta reader has its own intervals, a cumulative one the running totals
    other = _metrics(other_delta.get_metrics_data())
    assert _points(other["local.h"]) == _points(other["sdk.h"])
    assert _points(other["local.h"])["/a"][0] == 6
    totals = _metrics(cumulative.get_metrics_data())
    assert _points(totals["local.h"]) == _points(totals["sdk.h"])


def test_the_prometheus_scrape_is_the_one_of_sdk_histograms() -> None:
    registry = CollectorRegistry()
    plain_registry = CollectorRegistry()
    merging = MergingPrometheusMetricReader(registry=registry, scope_info_enabled=False)
    pair = _Pair(merging)
    plain = PrometheusMetricReader(registry=plain_registry, scope_info_enabled=False)
    sdk = SdkHistograms(MeterProvider(resource=RESOURCE, metric_readers=[plain])
                        .get_meter("scope.x", "1.2.3")).histogram(
        "local.h", labels=("route",), bounds=BOUNDS, unit="s", description="How long.")
    for value, route in ((0.005, "/a"), (0.5, "/a"), (3, "/b"), (30, "/a")):
        pair.record(value, route)
        sdk.record(value, (route,))

    def lines(reg: CollectorRegistry) -> list[str]:
        return sorted(line for line in generate_latest(reg).decode().splitlines()
                      if line.startswith(("local_h", "# HELP local_h", "# TYPE local_h")))

    assert lines(registry) == lines(plain_registry)
    assert 'local_h_seconds_bucket{le="1",route="/a"} 2.0' in lines(registry)


def test_a_failing_source_is_left_out_and_counted() -> None:
    drops: list[tuple[str, str]] = []

    class Broken:
        def collect_for(self, reader: MetricReader) -> MetricsData | None:
            raise RuntimeError("peer gone")

    reader = MergingInMemoryMetricReader()
    pair = _Pair(reader)
    reader.add_source(Broken())
    reader.set_drop_counter(lambda stage, reason: drops.append((stage, reason)))
    pair.record(1, "/a")
    metrics = _metrics(reader.get_metrics_data())
    assert set(metrics) == {"sdk.h", "local.h"}
    assert drops == [(MERGE_STAGE, "source_error")]


def test_data_that_cannot_be_merged_leaves_the_sdk_metrics_and_is_counted() -> None:
    drops: list[tuple[str, str]] = []
    peer_reader = MergingInMemoryMetricReader()
    peer = _Pair(peer_reader)
    peer.record(1, "/a")
    peer_data = peer_reader.get_metrics_data()
    reader = MergingInMemoryMetricReader()
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    # "sdk.h" as a counter here, a histogram in the peer: not mergeable
    provider.get_meter("scope.x", "1.2.3").create_counter("sdk.h", unit="s").add(1)
    reader.add_source(CumulativeSource(lambda: peer_data))
    reader.set_drop_counter(lambda stage, reason: drops.append((stage, reason)))
    metrics = _metrics(reader.get_metrics_data())
    assert list(metrics) == ["sdk.h"] and metrics["sdk.h"].data.data_points[0].value == 1
    assert drops == [(MERGE_STAGE, "merge_failed")]


def test_peer_metrics_are_merged_and_bounds_spelt_as_declared() -> None:
    """The metrics of another process, through OTLP bytes, summed into this one's scrape;
    a bound declared 1.0 stays le="1.0" although OTLP brought it back as 1."""
    peer_reader = MergingInMemoryMetricReader()
    peer_provider = MeterProvider(resource=RESOURCE, metric_readers=[peer_reader])
    peer_meter = peer_provider.get_meter("scope.x", "1.2.3")
    peer_local = LocalHistograms(InstrumentationScope("scope.x", "1.2.3"), RESOURCE)
    peer_reader.add_source(peer_local)
    peer_meter.create_counter("calls").add(3)
    peer_local.histogram("ttfc", labels=(), bounds=TIME_TO_FIRST_CHUNK_BUCKETS,
                         unit="s").record(0.9, ())
    payload = encode_metrics_data(peer_reader.get_metrics_data())  # type: ignore[arg-type]

    registry = CollectorRegistry()
    reader = MergingPrometheusMetricReader(registry=registry, scope_info_enabled=False)
    meter = MeterProvider(resource=RESOURCE, metric_readers=[reader]).get_meter(
        "scope.x", "1.2.3")
    local = LocalHistograms(InstrumentationScope("scope.x", "1.2.3"), RESOURCE)
    reader.add_source(local)
    ttfc = local.histogram("ttfc", labels=(), bounds=TIME_TO_FIRST_CHUNK_BUCKETS, unit="s")
    reader.add_source(CumulativeSource(lambda: decode_metrics_data(payload)))
    meter.create_counter("calls").add(2)
    text = generate_latest(registry).decode()
    assert "calls_total 5.0" in text
    assert 'ttfc_seconds_bucket{le="1.0"} 1.0' in text  # the peer's only
    ttfc.record(2, ())
    text = generate_latest(registry).decode()
    assert 'ttfc_seconds_bucket{le="1.0"} 1.0' in text
    assert 'ttfc_seconds_bucket{le="2.5"} 2.0' in text
    assert "ttfc_seconds_count 2.0" in text


def test_a_cumulative_source_refuses_a_delta_reader() -> None:
    drops: list[tuple[str, str]] = []
    reader = MergingInMemoryMetricReader(preferred_temporality=DELTA)
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    provider.get_meter("scope.x").create_counter("c").add(1)
    reader.add_source(CumulativeSource(lambda: None))
    reader.set_drop_counter(lambda stage, reason: drops.append((stage, reason)))
    reader.get_metrics_data()
    assert drops == [(MERGE_STAGE, "source_error")]


def test_a_reader_wanting_exponential_histograms_cannot_take_local_ones() -> None:
    assert takes_local_histograms(MergingInMemoryMetricReader())
    assert not takes_local_histograms(MergingInMemoryMetricReader(
        preferred_aggregation={Histogram: ExponentialBucketHistogramAggregation()}))


def test_the_same_histogram_asked_twice_is_one_and_a_conflict_is_refused() -> None:
    local = LocalHistograms(InstrumentationScope("s"), RESOURCE)
    first = local.histogram("h", labels=("a",), bounds=(1, 2), unit="s")
    assert local.histogram("h", labels=("a",), bounds=(1, 2), unit="s") is first
    with pytest.raises(ValueError, match="another shape"):
        local.histogram("h", labels=("b",), bounds=(1, 2), unit="s")
