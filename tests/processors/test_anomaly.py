"""processors.anomaly: EWMA statistics, the per-tenant detector, and the processor in a
real chain (span events, attributes, metric, listeners)."""

from __future__ import annotations

import math
import random

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmtrace_processors.anomaly import (
    Anomaly,
    AnomalyConfig,
    AnomalyDetector,
    AnomalyProcessor,
    AnomalyType,
    Ewma,
    Sample,
)
from llmtrace_processors.chain import build_chain
from llmtrace_processors.labels import OTHER_LABEL, BoundedLabels


def test_ewma_tracks_mean_and_variance() -> None:
    stats = Ewma(alpha=0.01)
    rng = random.Random(7)
    for _ in range(20_000):
        stats.update(rng.gauss(100.0, 5.0))
    assert stats.mean == pytest.approx(100.0, abs=1.5)
    assert stats.stddev == pytest.approx(5.0, rel=0.2)


def _steady(detector: AnomalyDetector, key: str, n: int, start: float = 0.0,
            **fields: float) -> list[Anomaly]:
    found = []
    for i in range(n):
        found += detector.observe(key, Sample(time_s=start + i, **fields))  # type: ignore[arg-type]
    return found


def test_spike_after_warm_up_is_flagged_per_key() -> None:
    detector = AnomalyDetector(AnomalyConfig(sigma=4, min_samples=10, rate_window_s=1e9))
    assert _steady(detector, "a", 9, tokens=100, latency_s=0.5) == []
    # still warming up: even a huge value is not flagged before min_samples
    assert detector.observe("b", Sample(0, tokens=10**6)) == []
    assert _steady(detector, "a", 1, start=9, tokens=100, latency_s=0.5) == []
    [spike] = detector.observe("a", Sample(20, tokens=1000, latency_s=0.5))
    assert spike.anomaly_type is AnomalyType.TOKENS and spike.key == "a"
    assert spike.value == 1000 and spike.mean == 100 and spike.samples == 10
    assert spike.score == pytest.approx(90.0)  # (1000 - 100) / (10% of the mean)
    assert spike.describe() == "tokens 1000 is 90.0 sigma above the mean 100 of 10 samples"
    # a drop is not an anomaly, nor is an ordinary wobble
    assert detector.observe("a", Sample(21, tokens=1, latency_s=0.55)) == []


def test_noisy_baseline_needs_a_real_outlier() -> None:
    rng = random.Random(3)
    detector = AnomalyDetector(AnomalyConfig(sigma=4, min_samples=30, alpha=0.05,
                                             rate_window_s=1e9))
    flagged = []
    for i in range(500):
        flagged += detector.observe("t", Sample(i, cost_usd=abs(rng.gauss(0.01, 0.002))))
    assert len(flagged) <= 2  # a 4-sigma false alarm is rare
    [outlier] = detector.observe("t", Sample(501, cost_usd=0.05))
    assert outlier.anomaly_type is AnomalyType.COST and outlier.score > 4


def test_request_rate_burst_is_flagged_once_per_window() -> None:
    detector = AnomalyDetector(AnomalyConfig(sigma=4, min_samples=5, rate_window_s=10))
    t = 0.0
    for _ in range(10):  # 10 windows of 3 calls each
        for j in range(3):
            assert detector.observe("t", Sample(t + j)) == []
        t += 10
    burst = []
    for j in range(40):  # 40 calls in one window: flagged while it happens, once
        burst += detector.observe("t", Sample(t + j * 0.1))
    assert [a.anomaly_type for a in burst] == [AnomalyType.REQUEST_RATE]
    # 3 + 4 * max(stddev, sqrt(3)) ~ 9.9: the 10th call of the window trips it
    assert burst[0].value == 10 and burst[0].mean == pytest.approx(3.0)


def test_idle_windows_count_as_zero_and_errors_have_their_own_rate() -> None:
    detector = AnomalyDetector(AnomalyConfig(sigma=3, min_samples=5, rate_window_s=1))
    for i in range(10):
        detector.observe("t", Sample(float(i)))
    # 100 idle windows: the baseline rate decays towards 0
    found = []
    for j in range(6):
        found += detector.observe("t", Sample(110 + j * 0.01, error=True))
    kinds = {a.anomaly_type for a in found}
    assert AnomalyType.ERROR_RATE in kinds and AnomalyType.REQUEST_RATE in kinds


def test_memory_is_bounded_by_max_keys() -> None:
    detector = AnomalyDetector(AnomalyConfig(max_keys=3))
    for key in "abcde":
        detector.observe(key, Sample(0, tokens=1))
    assert len(detector) == 3


@pytest.mark.parametrize("bad", [{"sigma": 0}, {"min_samples": 1}, {"alpha": 1.0},
                                 {"rate_window_s": 0}, {"max_keys": 0}])
def test_absurd_config_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AnomalyConfig(**bad)  # type: ignore[arg-type]


def test_processor_in_a_chain_adds_events_metric_and_calls_listeners() -> None:
    memory = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    heard: list[tuple[str, str | None, Anomaly]] = []
    processor = AnomalyProcessor(config=AnomalyConfig(min_samples=5, rate_window_s=1e9),
                                 meter_provider=meters, tenant_label=BoundedLabels(0))
    processor.add_listener(lambda tenant, agent, anomaly: heard.append((tenant, agent,
                                                                          anomaly)))
    provider = TracerProvider()
    provider.add_span_processor(build_chain([processor], [SimpleSpanProcessor(memory)],
                                            background=False))
    tracer = provider.get_tracer("t")
    for tokens in [20] * 6 + [500]:
        with tracer.start_as_current_span("chat m", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": tokens,
            "gen_ai.usage.output_tokens": 0, "llmtrace.tenant.id": "team-a",
            "llmtrace.agent.id": "bot"}):
            pass
    spans = memory.get_finished_spans()
    assert all("llmtrace.anomaly.types" not in (s.attributes or {}) for s in spans[:-1])
    last = spans[-1]
    assert (last.attributes or {})["llmtrace.anomaly.types"] == ("tokens",)
    [event] = [e for e in last.events if e.name == "llmtrace.anomaly"]
    attrs = dict(event.attributes or {})
    assert attrs["llmtrace.anomaly.type"] == "tokens" and attrs["llmtrace.anomaly.value"] == 500
    assert attrs["llmtrace.anomaly.mean"] == 20 and attrs["llmtrace.anomaly.samples"] == 6
    assert math.isclose(attrs["llmtrace.anomaly.score"], 240.0)  # type: ignore[arg-type]
    assert [(t, a, x.anomaly_type) for t, a, x in heard] == [("team-a", "bot",
                                                              AnomalyType.TOKENS)]
    data = reader.get_metrics_data()
    points = [p for rm in data.resource_metrics for sm in rm.scope_metrics
              for m in sm.metrics if m.name == "llmtrace.anomalies" for p in m.data.data_points]
    assert [(dict(p.attributes), p.value) for p in points] == [
        ({"anomaly_type": "tokens", "tenant": OTHER_LABEL}, 1)]


def test_bounded_labels() -> None:
    labels = BoundedLabels(2)
    assert [labels(v) for v in ["a", "b", "c", "a", "d", "b"]] == [
        "a", "b", OTHER_LABEL, "a", OTHER_LABEL, "b"]
    assert len(labels) == 2
    with pytest.raises(ValueError):
        BoundedLabels(-1)
