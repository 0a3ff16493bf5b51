"""Circuit breakers: state machine on a hand-driven clock, and their wiring into the chain
(an enricher bypassed while open) and the export sinks (spans dropped and counted)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmtrace_processors.attributes import LLMTRACE_ANALYSIS_SKIPPED
from llmtrace_processors.breaker import (
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    CircuitBreakers,
)
from llmtrace_processors.chain import EnrichingSpanProcessor, Enrichment, build_chain
from llmtrace_processors.sinks import ExportSink


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock, **policy: object) -> CircuitBreaker:
    values: dict[str, object] = {"failure_threshold": 3, "window": 5, "recovery_s": 10.0,
                                 "half_open_probes": 2}
    values.update(policy)
    return CircuitBreaker("test", BreakerPolicy(**values), clock=clock)  # type: ignore[arg-type]


def _fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        permit = breaker.acquire()
        assert permit is not None
        breaker.record(permit, False, reason="boom")


def _succeed(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        permit = breaker.acquire()
        assert permit is not None
        breaker.record(permit, True)


def test_opens_after_threshold_failures_in_the_window() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    _fail(breaker, 2)
    _succeed(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    _fail(breaker)  # 3 failures among the last 5 calls
    assert breaker.state is BreakerState.OPEN
    assert breaker.acquire() is None and not breaker.accepting()
    snap = breaker.snapshot()
    assert snap.times_opened == 1 and snap.rejected == 1 and snap.last_failure == "boom"
    assert snap.retry_in_s == pytest.approx(10.0)


def test_trip_opens_at_once_and_a_stale_outcome_cannot_close_it() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    _succeed(breaker, 4)
    stuck = breaker.acquire()  # a call that will not come back in time
    assert stuck is not None
    breaker.trip("stalled: one call over 30.0 s")
    assert breaker.state is BreakerState.OPEN
    snap = breaker.snapshot()
    assert snap.times_opened == 1 and snap.last_failure == "stalled: one call over 30.0 s"
    breaker.record(stuck, True)  # it returns at last: admitted before the trip, ignored
    assert breaker.state is BreakerState.OPEN
    clock.now += 5
    breaker.trip("stalled again")  # tripping an open breaker restarts its recovery time
    clock.now += 9.9
    assert breaker.state is BreakerState.OPEN
    clock.now += 0.1
    assert breaker.accepting()


def test_a_held_trip_stays_open_past_its_recovery_time_until_released() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    breaker.trip("stalled: a call over 30.0 s has not returned", hold=True)
    clock.now += 60
    assert breaker.state is BreakerState.OPEN and not breaker.accepting()
    assert breaker.acquire() is None
    breaker.release()  # the recovery time has long passed: a probe may go at once
    assert breaker.state is BreakerState.HALF_OPEN and breaker.accepting()


def test_failures_that_leave_the_window_are_forgotten() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(10):  # one failure in every 3 calls never reaches 3 in a window of 5
        _fail(breaker)
        _succeed(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().failures <= 2


def test_half_open_after_recovery_then_closes_on_probes() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    _fail(breaker, 3)
    clock.now += 9.9
    assert breaker.state is BreakerState.OPEN and not breaker.accepting()
    clock.now += 0.1
    assert breaker.accepting()
    assert breaker.state is BreakerState.HALF_OPEN
    first, second = breaker.acquire(), breaker.acquire()
    assert first is not None and second is not None
    assert breaker.acquire() is None  # only two probes at a time
    breaker.record(first, True)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record(second, True)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().failures == 0  # a fresh window


def test_failed_probe_opens_again_for_a_full_recovery_time() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    _fail(breaker, 3)
    clock.now += 10
    _fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert breaker.snapshot().times_opened == 2
    clock.now += 9
    assert breaker.acquire() is None
    clock.now += 1
    assert breaker.acquire() is not None


def test_stale_outcomes_are_ignored() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    slow_call = breaker.acquire()  # admitted while closed, still running...
    assert slow_call is not None
    _fail(breaker, 3)  # ...when the breaker opens
    clock.now += 10
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record(slow_call, True)
    breaker.record(slow_call, True)
    assert breaker.state is BreakerState.HALF_OPEN  # the old call's successes do not close it


def test_slow_success_counts_as_failure() -> None:
    clock = Clock()
    breaker = _breaker(clock, slow_call_s=0.1, failure_threshold=2)
    for _ in range(2):
        permit = breaker.acquire()
        assert permit is not None
        breaker.record(permit, True, duration_s=0.5)
    assert breaker.state is BreakerState.OPEN
    assert (breaker.snapshot().last_failure or "").startswith("slow: 0.500 s")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("window", 0, "window must be >= 1"),
    ("failure_threshold", 0, "failure_threshold must be between 1"),
    ("failure_threshold", 30, "failure_threshold must be between 1"),
    ("recovery_s", 0, "recovery_s must be > 0"),
    ("half_open_probes", 0, "half_open_probes must be >= 1"),
    ("slow_call_s", -1.0, "slow_call_s must be > 0"),
])
def test_policy_rejects_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BreakerPolicy(**{field: value})  # type: ignore[arg-type]


def test_concurrent_callers_keep_consistent_counts() -> None:
    breaker = CircuitBreaker("threads", BreakerPolicy(failure_threshold=50, window=100))
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(2000):
            permit = breaker.acquire()
            if permit is not None:
                breaker.record(permit, True)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snap = breaker.snapshot()
    assert snap.state is BreakerState.CLOSED and snap.calls == 100 and snap.failures == 0


def test_gauge_reports_one_series_per_state() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    clock = Clock()
    breakers = CircuitBreakers(BreakerPolicy(failure_threshold=1, window=1), clock=clock)
    broken = breakers.new("export.sqlite")
    breakers.new("analysis.cost")
    breakers.observe(meter)
    _fail(broken)
    data = reader.get_metrics_data()
    assert data is not None
    [metric] = [m for rm in data.resource_metrics for sm in rm.scope_metrics
                for m in sm.metrics if m.name == "llmtrace.circuit_breaker.state"]
    values = {(p.attributes["subsystem"], p.attributes["state"]): p.value
              for p in metric.data.data_points}
    assert values == {
        ("export.sqlite", "closed"): 0, ("export.sqlite", "open"): 1,
        ("export.sqlite", "half_open"): 0,
        ("analysis.cost", "closed"): 1, ("analysis.cost", "open"): 0,
        ("analysis.cost", "half_open"): 0,
    }
    with pytest.raises(ValueError, match="already exists"):
        breakers.new("analysis.cost")


# -- wiring: enrichers -------------------------------------------------------------------


class _Flaky(EnrichingSpanProcessor):
    stage = "flaky"

    def __init__(self) -> None:
        super().__init__()
        self.fail = True
        self.calls = 0

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        self.calls += 1
        if self.fail:
            raise RuntimeError("analysis bug")
        return Enrichment(attributes={"flaky.ok": True})


def _genai_spans(provider: TracerProvider, count: int) -> None:
    tracer = provider.get_tracer("t")
    for _ in range(count):
        tracer.start_span("chat m", attributes={"gen_ai.operation.name": "chat"}).end()


def test_enricher_that_keeps_raising_is_bypassed_then_probed_back() -> None:
    clock = Clock()
    memory = InMemorySpanExporter()
    drops: list[tuple[str, str]] = []
    flaky = _Flaky()
    flaky.set_breaker(CircuitBreaker("analysis.flaky", BreakerPolicy(
        failure_threshold=3, window=10, recovery_s=5, half_open_probes=1), clock=clock))
    provider = TracerProvider()
    provider.add_span_processor(build_chain([flaky], [SimpleSpanProcessor(memory)],
                                            background=False,
                                            on_drop=lambda s, r: drops.append((s, r))))
    _genai_spans(provider, 10)
    assert flaky.calls == 3  # bypassed after the third failure
    assert drops == [("flaky", "processor_error")] * 3 + [("flaky", "circuit_open")] * 7
    spans = memory.get_finished_spans()
    assert len(spans) == 10  # every span still reaches the exporter
    assert [(s.attributes or {}).get(LLMTRACE_ANALYSIS_SKIPPED) for s in spans[3:]] == \
        [("flaky",)] * 7
    flaky.fail = False
    clock.now += 5
    _genai_spans(provider, 2)
    assert flaky.calls == 5
    assert all((s.attributes or {}).get("flaky.ok") for s in memory.get_finished_spans()[-2:])


# -- wiring: export sinks ----------------------------------------------------------------


class _Switchable(SpanExporter):
    def __init__(self) -> None:
        self.up = False
        self.calls = 0
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        if not self.up:
            return SpanExportResult.FAILURE
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def test_open_sink_drops_without_calling_the_exporter_and_recovers() -> None:
    clock = Clock()
    exporter = _Switchable()
    drops: list[tuple[str, str]] = []
    breaker = CircuitBreaker("export.x", BreakerPolicy(
        failure_threshold=2, window=5, recovery_s=5, half_open_probes=1), clock=clock)
    sink = ExportSink("x", exporter, max_export_batch_size=1, schedule_delay_millis=60_000,
                      on_drop=lambda s, r: drops.append((s, r)), breaker=breaker)
    provider = TracerProvider()
    provider.add_span_processor(sink)
    try:
        for _ in range(2):
            _genai_spans(provider, 1)
            sink.force_flush(5000)
        assert breaker.state is BreakerState.OPEN and exporter.calls == 2
        _genai_spans(provider, 5)  # dropped at the door: never queued, exporter not called
        sink.force_flush(5000)
        assert exporter.calls == 2 and sink.queue_depth == 0
        assert drops == [("export.x", "export_failed")] * 2 + [("export.x", "circuit_open")] * 5
        exporter.up = True
        clock.now += 5
        _genai_spans(provider, 3)
        sink.force_flush(5000)
        assert breaker.state is BreakerState.CLOSED and exporter.exported == 3
        assert (sink.last_ok, sink.failed_batches) == (True, 2)
    finally:
        provider.shutdown()


class _Stuck(SpanExporter):
    """An export that hangs until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(30)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.release.set()


def _blocking_sink_with_stuck_exporter() -> tuple[
        _Stuck, CircuitBreaker, TracerProvider, list[tuple[str, str]]]:
    """A collector-mode sink (waits when full) of one span, its exporter stuck, a breaker
    that opens on the first failure; drops are collected in the returned list."""
    exporter = _Stuck()
    drops: list[tuple[str, str]] = []
    breaker = CircuitBreaker("export.x", BreakerPolicy(
        failure_threshold=1, window=1, recovery_s=60), clock=Clock())
    sink = ExportSink("x", exporter, max_queue_size=1, max_export_batch_size=1,
                      block_when_full=True, on_drop=lambda s, r: drops.append((s, r)),
                      breaker=breaker)
    provider = TracerProvider()
    provider.add_span_processor(sink)
    return exporter, breaker, provider, drops


def test_blocking_sink_does_not_wait_while_its_breaker_is_open() -> None:
    """Collector mode waits for room in a full export queue; an open breaker drops instead,
    so a dead exporter cannot stall the worker that feeds every other exporter."""
    exporter, breaker, provider, drops = _blocking_sink_with_stuck_exporter()
    try:
        _genai_spans(provider, 1)
        assert exporter.entered.wait(10)  # the queue is full: one span, its export stuck
        _fail(breaker)  # meanwhile the breaker learns the exporter is dead
        finished = threading.Event()

        def flood() -> None:
            _genai_spans(provider, 50)
            finished.set()

        threading.Thread(target=flood, daemon=True).start()
        assert finished.wait(10), "on_end blocked behind an open breaker"
        assert drops == [("export.x", "circuit_open")] * 50
    finally:
        exporter.release.set()
        provider.shutdown()


def test_a_caller_waiting_for_room_stops_waiting_when_the_breaker_opens() -> None:
    exporter, breaker, provider, drops = _blocking_sink_with_stuck_exporter()
    try:
        _genai_spans(provider, 1)
        assert exporter.entered.wait(10)
        finished = threading.Event()

        def wait_for_room() -> None:
            _genai_spans(provider, 1)  # blocks: the queue is full
            finished.set()

        threading.Thread(target=wait_for_room, daemon=True).start()
        assert not finished.wait(0.3)  # waiting, as collector mode wants
        _fail(breaker)
        assert finished.wait(10), "still waiting after the breaker opened"
        assert drops == [("export.x", "circuit_open")]
    finally:
        exporter.release.set()
        provider.shutdown()
