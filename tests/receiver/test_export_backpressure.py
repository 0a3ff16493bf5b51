"""ExportSink(block_when_full=True), and a slow exporter pushing back all the way to the sender."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from llmtrace_processors.sinks import ExportSink
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
    drops: list[tuple[str, str]] = []
    sink = ExportSink("gated", exporter, max_queue_size=2, max_export_batch_size=2,
                      schedule_delay_millis=50, block_when_full=True,
                      on_drop=lambda stage, reason: drops.append((stage, reason)))
    spans = finished(*[f"s{i}" for i in range(7)])
    sink.on_end(spans[0])
    sink.on_end(spans[1])
    assert exporter.entered.wait(10)  # s0, s1 are being exported (held at the gate)
    done = threading.Event()
    caller = threading.Thread(target=lambda: ([sink.on_end(s) for s in spans[2:]],
                                              done.set()))
    caller.start()
    assert not done.wait(0.2), "on_end returned although the queue is full"
    exporter.open.set()
    caller.join(10)
    assert done.is_set()
    sink.shutdown()
    assert sorted(name for batch in exporter.batches for name in batch) == [
        f"s{i}" for i in range(7)]
    assert drops == []
    assert exporter.shut


def test_without_the_option_a_full_queue_still_drops_and_counts() -> None:
    exporter = GatedExporter()
    drops: list[tuple[str, str]] = []
    sink = ExportSink("gated", exporter, max_queue_size=2, max_export_batch_size=2,
                      schedule_delay_millis=50,
                      on_drop=lambda stage, reason: drops.append((stage, reason)))
    for span in finished("a", "b", "c"):
        sink.on_end(span)
    assert drops == [("export.gated", "queue_full")]
    exporter.open.set()
    sink.shutdown()


def test_shutdown_releases_a_blocked_caller() -> None:
    exporter = GatedExporter()
    drops: list[tuple[str, str]] = []
    sink = ExportSink("gated", exporter, max_queue_size=1, max_export_batch_size=1,
                      schedule_delay_millis=50, block_when_full=True,
                      on_drop=lambda stage, reason: drops.append((stage, reason)))
    first, second = finished("first", "second")
    sink.on_end(first)
    assert exporter.entered.wait(10)
    caller = threading.Thread(target=sink.on_end, args=(second,))
    caller.start()
    stopper = threading.Thread(target=sink.shutdown)
    stopper.start()
    caller.join(10)
    assert not caller.is_alive()
    assert drops == [("export.gated", "shutdown")]
    exporter.open.set()
    stopper.join(10)


def test_a_slow_exporter_pushes_back_to_the_sender(tmp_path: Path) -> None:
    """Exporter stalls -> analysis stalls -> receiver queue fills -> 429; nothing is lost."""
    exporter = GatedExporter()
    slow = ExportSink("slow", exporter, max_queue_size=2, max_export_batch_size=2,
                      schedule_delay_millis=50, block_when_full=True)
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
