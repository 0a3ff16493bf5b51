"""BlockingBatchSpanProcessor, and a slow exporter pushing back all the way to the sender."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from llmtrace_otel.telemetry.blocking_batch import BlockingBatchSpanProcessor
from tests.receiver.harness import running_collector
from tests.receiver.helpers import metric_value, post


class GatedExporter(SpanExporter):
    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[str]] = []
        self.shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.open.wait(30)
        self.batches.append([span.name for span in spans])
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.shut = True


def finished(*names: str, sampled: bool = True) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    for name in names:
        tracer.start_span(name).end()
    spans = list(memory.get_finished_spans())
    if sampled:
        return spans
    return [ReadableSpan(name=s.name, context=SpanContext(s.context.trace_id, s.context.span_id,
                                                          False, TraceFlags(0)))
            for s in spans]


def wait_until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_full_queue_blocks_the_caller_instead_of_dropping() -> None:
    exporter = GatedExporter()
    processor = BlockingBatchSpanProcessor(exporter, max_queue_size=2, max_export_batch_size=2,
                                           schedule_delay_s=0.05)
    spans = finished(*[f"s{i}" for i in range(7)])
    processor.on_end(spans[0])
    processor.on_end(spans[1])
    assert exporter.entered.wait(10)  # s0, s1 are being exported (held at the gate)
    processor.on_end(spans[2])
    processor.on_end(spans[3])  # queue full again
    done = threading.Event()
    caller = threading.Thread(target=lambda: ([processor.on_end(s) for s in spans[4:]],
                                              done.set()))
    caller.start()
    assert not done.wait(0.2), "on_end returned although the queue is full"
    exporter.open.set()
    caller.join(10)
    assert done.is_set()
    processor.shutdown()
    assert sorted(name for batch in exporter.batches for name in batch) == [
        f"s{i}" for i in range(7)]
    assert all(len(batch) <= 2 for batch in exporter.batches)
    assert exporter.shut


def test_flush_exports_a_partial_batch_and_unsampled_spans_are_skipped() -> None:
    exporter = GatedExporter()
    exporter.open.set()
    processor = BlockingBatchSpanProcessor(exporter, max_export_batch_size=100,
                                           schedule_delay_s=60)
    for span in finished("a", "b") + finished("skipped", sampled=False):
        processor.on_end(span)
    assert processor.force_flush(5000)
    assert exporter.batches == [["a", "b"]]
    processor.shutdown()


def test_after_shutdown_spans_are_dropped_and_counted() -> None:
    exporter = GatedExporter()
    exporter.open.set()
    drops: list[int] = []
    processor = BlockingBatchSpanProcessor(exporter, on_drop=drops.append)
    processor.shutdown()
    processor.on_end(finished("late")[0])
    assert drops == [1]


def test_a_slow_exporter_pushes_back_to_the_sender(tmp_path: Path) -> None:
    """Exporter stalls -> analysis stalls -> receiver queue fills -> 429; nothing is lost."""
    exporter = GatedExporter()
    slow = BlockingBatchSpanProcessor(exporter, max_queue_size=2, max_export_batch_size=2,
                                      schedule_delay_s=0.05)
    with running_collector(tmp_path, extra_sinks=[slow], sqlite_enabled=False,
                           analysis_queue_size=2, receiver_queue_size=6) as collector:
        url = f"{collector.http_url}/v1/traces"
        accepted = 0
        statuses = []
        for index in range(40):
            message = ExportTraceServiceRequest()
            scope = message.resource_spans.add().scope_spans.add()
            for k in range(2):
                n = index * 2 + k + 1
                scope.spans.add(trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"),
                                name=f"span-{n}")
            status, _, _ = post(url, message.SerializeToString())
            statuses.append(status)
            if status == 429:
                break
            assert status == 200
            accepted += 2
        assert statuses[-1] == 429, "a stalled exporter never pushed back"
        exporter.open.set()
        wait_until(lambda: sum(len(b) for b in exporter.batches) == accepted)
        text = collector.metrics_text()
    assert metric_value(text, "llmtrace_telemetry_dropped_total", stage="analysis") == 0
    assert accepted >= 6


@pytest.mark.parametrize("bad", [0, -1])
def test_rejects_bad_sizes(bad: int) -> None:
    with pytest.raises(ValueError):
        BlockingBatchSpanProcessor(GatedExporter(), max_queue_size=bad)

