"""ExportSink: a real BatchSpanProcessor per exporter, with every lost span counted."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmtrace_processors.sinks import ExportSink


class GatedExporter(SpanExporter):
    """Blocks in export until released; then hands spans to an in-memory exporter."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.memory = InMemorySpanExporter()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.gate.wait(10)
        return self.memory.export(spans)


class FailingExporter(SpanExporter):
    def __init__(self, raise_: bool) -> None:
        self.raise_ = raise_
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        if self.raise_:
            raise OSError("disk full")
        return SpanExportResult.FAILURE


def _tracer_with(sink: ExportSink) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(sink)
    return provider


def test_full_queue_drops_are_counted_and_nothing_else_is_lost() -> None:
    drops: list[tuple[str, str]] = []
    exporter = GatedExporter()
    sink = ExportSink("slow", exporter, max_queue_size=4, max_export_batch_size=1,
                      schedule_delay_millis=1, on_drop=lambda s, r: drops.append((s, r)))
    provider = _tracer_with(sink)
    tracer = provider.get_tracer("t")
    tracer.start_span("first").end()
    assert exporter.entered.wait(5)  # the worker holds span 1 inside export
    for i in range(10):
        tracer.start_span(f"s{i}").end()
    exporter.gate.set()
    assert sink.force_flush(10_000)
    exported = len(exporter.memory.get_finished_spans())
    assert drops == [("export.slow", "queue_full")] * len(drops)
    assert exported + len(drops) == 11
    assert len(drops) >= 6  # at most 4 waiting + 1 in export when 10 arrived
    assert sink.queue_depth == 0
    provider.shutdown()


@pytest.mark.parametrize("raise_", [False, True], ids=["failure", "raises"])
def test_failed_and_raising_exports_count_every_span(raise_: bool) -> None:
    drops: list[tuple[str, str]] = []
    sink = ExportSink("otlp", FailingExporter(raise_), max_queue_size=64,
                      on_drop=lambda s, r: drops.append((s, r)))
    provider = _tracer_with(sink)
    for i in range(5):
        provider.get_tracer("t").start_span(f"s{i}").end()
    sink.force_flush()
    assert drops == [("export.otlp", "export_failed")] * 5
    assert sink.last_ok is False and sink.failed_batches >= 1
    assert sink.queue_depth == 0
    provider.shutdown()


def test_spans_after_shutdown_are_counted() -> None:
    drops: list[tuple[str, str]] = []
    memory = InMemorySpanExporter()
    sink = ExportSink("sqlite", memory, on_drop=lambda s, r: drops.append((s, r)))
    provider = _tracer_with(sink)
    tracer = provider.get_tracer("t")
    tracer.start_span("kept").end()
    sink.shutdown()
    assert [s.name for s in memory.get_finished_spans()] == ["kept"]
    assert sink.last_ok is True
    sink.on_end(memory.get_finished_spans()[0])
    assert drops == [("export.sqlite", "shutdown")]
