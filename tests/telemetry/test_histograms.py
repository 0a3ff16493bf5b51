"""HistogramTotals: pre-aggregated histograms that hold what the SDK's histogram would."""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from llmtrace_otel.telemetry.histograms import OVERFLOW_VALUE, HistogramTotals, SdkHistograms

BOUNDS = (1, 4, 16, 64)
#: On the bounds, between them, below and above them; ints and floats.
VALUES = [0, 1, 1.0000001, 4, 3.99, 16, 17, 64, 64.5, 1000, 0.25, 2, 2]


def _sdk_points(reader: InMemoryMetricReader, name: str) -> list[HistogramDataPoint]:
    data = reader.get_metrics_data()
    assert data is not None
    return [point for rm in data.resource_metrics for sm in rm.scope_metrics
            for metric in sm.metrics if metric.name == name
            for point in metric.data.data_points]


def _shape(point: HistogramDataPoint) -> tuple[Any, ...]:
    """Everything but the times."""
    return (dict(point.attributes or {}), point.count, point.sum, tuple(point.bucket_counts),
            tuple(point.explicit_bounds), point.min, point.max)


def test_the_points_are_the_sdk_histograms() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    sdk = SdkHistograms(meter).histogram("h", labels=("route", "code"), bounds=BOUNDS)
    ours = HistogramTotals("h", labels=("route", "code"), bounds=BOUNDS)
    for i, value in enumerate(VALUES):
        values = ("/a" if i % 3 else "/b", 200 if i % 2 else 500)
        sdk.record(value, values)
        ours.record(value, values)
    expected = sorted(map(_shape, _sdk_points(reader, "h")), key=repr)
    got = sorted(map(_shape, ours.points(1)), key=repr)
    assert got == expected
    assert len(got) == 4
    # ints stay ints (Prometheus spells le="1", not "1.0"), as the SDK keeps them
    assert all(type(bound) is int for point in ours.points(1) for bound in point.explicit_bounds)
    only_ints = HistogramTotals("n", labels=(), bounds=BOUNDS)
    only_ints.record(3, ())
    only_ints.record(5, ())
    assert type(only_ints.points(1)[0].sum) is int


def test_bucket_i_counts_values_up_to_and_including_its_bound() -> None:
    totals = HistogramTotals("h", labels=(), bounds=BOUNDS)
    for value in (1, 1.5, 4, 64, 64.01):
        totals.record(value, ())
    (point,) = totals.points(5)
    assert point.bucket_counts == (1, 2, 0, 1, 1)
    assert (point.count, point.min, point.max, point.time_unix_nano) == (5, 1, 64.01, 5)
    assert point.sum == pytest.approx(134.51)


def test_negative_and_non_finite_values_are_ignored_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    totals = HistogramTotals("h", labels=(), bounds=BOUNDS)
    with caplog.at_level(logging.WARNING):
        for bad in (-1, math.nan, math.inf):
            totals.record(bad, ())
    assert totals.points(1) == []
    assert caplog.text.count("histogram h:") == 3


def test_an_optional_label_is_left_out_when_empty() -> None:
    totals = HistogramTotals("h", labels=("op", "error.type"), bounds=BOUNDS,
                             optional=("error.type",))
    totals.record(1, ("chat", ""))
    totals.record(1, ("", "timeout"))  # not optional: kept, even empty
    attributes = [dict(point.attributes or {}) for point in totals.points(1)]
    assert attributes == [{"op": "chat"}, {"op": "", "error.type": "timeout"}]


def test_series_beyond_the_cap_go_to_the_overflow_series() -> None:
    totals = HistogramTotals("h", labels=("model", "code"), bounds=BOUNDS, max_series=3)
    for i in range(10):
        totals.record(i, (f"m{i}", 200))
    totals.record(1, ("m0", 200))  # an existing series keeps counting
    points = {tuple((point.attributes or {}).values()): point for point in totals.points(1)}
    assert points[("m0", 200)].count == 2
    assert points[(OVERFLOW_VALUE, OVERFLOW_VALUE)].count == 7
    assert points[(OVERFLOW_VALUE, OVERFLOW_VALUE)].min == 3
    assert len(points) == 4


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        HistogramTotals("h", labels=(), bounds=(1, 1, 2))
    with pytest.raises(ValueError, match="finite"):
        HistogramTotals("h", labels=(), bounds=(1, math.inf))
    with pytest.raises(ValueError, match="max_series"):
        HistogramTotals("h", labels=(), bounds=(1,), max_series=0)
    with pytest.raises(ValueError, match="1 label values"):
        HistogramTotals("h", labels=("a", "b"), bounds=(1,)).record(1, ("x",))


def test_a_cursor_sees_what_was_recorded_since_its_last_snapshot() -> None:
    totals = HistogramTotals("h", labels=("k",), bounds=BOUNDS)
    totals.record(10, ("a",))
    cursor = totals.open_cursor()
    totals.record(2, ("a",))
    totals.record(3, ("a",))
    totals.record(7, ("b",))  # a series newer than the cursor
    first = {item.values: item for item in totals.snapshot(cursor)}
    assert (first[("a",)].interval_sum, first[("a",)].interval_min,
            first[("a",)].interval_max) == (5, 2, 3)
    assert (first[("a",)].sum, first[("a",)].min, first[("a",)].max) == (15, 2, 10)
    assert (first[("b",)].interval_sum, first[("b",)].interval_min) == (7, 7)
    again = {item.values: item for item in totals.snapshot(cursor)}
    assert (again[("a",)].interval_sum, again[("a",)].interval_min,
            again[("a",)].interval_max) == (0, math.inf, -math.inf)


def test_concurrent_records_lose_nothing() -> None:
    totals = HistogramTotals("h", labels=("k",), bounds=BOUNDS)
    totals.open_cursor()

    def work() -> None:
        for i in range(5000):
            totals.record(i % 100, (str(i % 3),))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    points = totals.points(1)
    assert sum(point.count for point in points) == 20_000
    assert all(sum(point.bucket_counts) == point.count for point in points)
    assert sum(point.sum for point in points) == 4 * 50 * sum(range(100))
