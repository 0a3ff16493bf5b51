"""CounterTotals: pre-aggregated cumulative counters read through a real MeterProvider."""

from __future__ import annotations

import threading

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from llmtrace_processors.totals import OVERFLOW_VALUE, CounterTotals


def _points(reader: InMemoryMetricReader, name: str) -> dict[tuple[tuple[str, object], ...], float]:
    data = reader.get_metrics_data()
    out: dict[tuple[tuple[str, object], ...], float] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    assert metric.data.is_monotonic  # a counter, not a gauge
                    for point in metric.data.data_points:
                        out[tuple(sorted(point.attributes.items()))] = point.value
    return out


def test_totals_are_cumulative_per_label_tuple() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    totals = CounterTotals(meter, "llmtrace.tokens", labels=("direction", "model"))
    totals.add(10, ("input", "m1"))
    totals.add(5, ("input", "m1"))
    totals.add(3, ("output", "m1"))
    assert _points(reader, "llmtrace.tokens") == {
        (("direction", "input"), ("model", "m1")): 15,
        (("direction", "output"), ("model", "m1")): 3,
    }
    totals.add(1, ("output", "m1"))
    assert _points(reader, "llmtrace.tokens")[(("direction", "output"), ("model", "m1"))] == 4


def test_series_beyond_the_cap_go_to_the_overflow_series() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    totals = CounterTotals(meter, "llmtrace.requests", labels=("model",), max_series=3)
    for i in range(10):
        totals.add(1, (f"model-{i}",))
    totals.add(1, ("model-0",))  # an existing series keeps counting
    points = _points(reader, "llmtrace.requests")
    assert points[(("model", "model-0"),)] == 2
    assert points[(("model", OVERFLOW_VALUE),)] == 7
    assert len(points) == 4
    assert sum(points.values()) == 11


def test_concurrent_adds_lose_nothing() -> None:
    reader = InMemoryMetricReader()
    totals = CounterTotals(MeterProvider(metric_readers=[reader]).get_meter("t"), "c",
                           labels=("k",))

    def work() -> None:
        for _ in range(20_000):
            totals.add(1, ("x",))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert totals.value(("x",)) == 80_000
    assert _points(reader, "c") == {(("k", "x"),): 80_000}
