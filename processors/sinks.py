"""The end of a chain: one exporter behind its own ``BatchSpanProcessor``, every loss counted.

The SDK's ``BatchSpanProcessor`` is what exports (batching, its worker thread, flush and
shutdown semantics), but when its queue is full it drops the span with only a log line,
and a failed export is invisible to the caller. :class:`ExportSink` keeps the books around
it with public API only: it counts the spans handed to the batch processor and not yet
given to the exporter, refuses (and counts, ``reason="queue_full"``) a span that would not
fit, and counts every span of a batch the exporter failed or raised on
(``reason="export_failed"``). One slow or broken exporter fills only its own queue.

With ``block_when_full`` a span that would not fit makes ``on_end`` wait for room instead
of being dropped. That is for callers that may wait: in collector mode the caller is the
analysis worker, and waiting there is how backpressure travels back to the OTLP senders
(the receiver's queue fills and they are told to retry) instead of accepted spans being
lost at the exporter.

With a :class:`~processors.breaker.CircuitBreaker`, an exporter that keeps failing is
skipped while the breaker is open: spans are dropped at ``on_end`` without being queued
(and a batch already queued is dropped without calling the exporter), counted with
``reason="circuit_open"``, and nothing waits, not even with ``block_when_full``. After the
recovery time the next batches are probes; when they succeed, export resumes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from llmtrace_processors.breaker import CircuitBreaker
from llmtrace_processors.chain import DropCounter

__all__ = ["EXPORT_DURATION_BUCKETS", "ExportSink"]

_log = logging.getLogger(__name__)
_METER = "llmtrace.processors.sinks"
_EXPORTER = "exporter"
#: Seconds; a local SQLite batch takes milliseconds, a remote OTLP one up to its timeout.
EXPORT_DURATION_BUCKETS: Sequence[float] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
)


def _ignore_drop(stage: str, reason: str) -> None:
    return None


class _AccountingExporter(SpanExporter):
    """What the batch processor exports through: settles the sink's books per batch."""

    def __init__(self, sink: ExportSink, inner: SpanExporter) -> None:
        self._sink = sink
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        breaker = self._sink.breaker
        permit = None
        if breaker is not None:
            permit = breaker.acquire()
            if permit is None:  # open: skip the exporter, count the spans
                self._sink._settle(len(spans), None)
                return SpanExportResult.FAILURE
        started = time.perf_counter()
        reason = None
        try:
            result = self._inner.export(spans)
        except Exception as exc:
            _log.exception("exporter %s raised; %d spans dropped", self._sink.name, len(spans))
            result, reason = SpanExportResult.FAILURE, f"raised {type(exc).__name__}"
        seconds = time.perf_counter() - started
        ok = result is SpanExportResult.SUCCESS
        if breaker is not None and permit is not None:
            breaker.record(permit, ok, seconds, reason=reason or "export failed")
        self._sink._settle(len(spans), ok, seconds)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class ExportSink(SpanProcessor):
    """``BatchSpanProcessor(exporter)`` with a bounded, counted queue and export outcome.

    ``name`` labels the drop counter (stage ``export.<name>``), ``/health`` and the
    sink's metrics: ``llmtrace.export.duration`` (seconds per exported batch, by
    ``exporter`` and ``outcome``), ``llmtrace.export.queue.depth`` and
    ``llmtrace.export.queue.capacity`` (spans, read at collection time).
    ``last_ok`` is the outcome of the latest export (``None`` before the first) and
    ``failed_batches`` counts failed exports. ``breaker`` (optional) skips the exporter
    while it keeps failing.
    """

    def __init__(
        self,
        name: str,
        exporter: SpanExporter,
        *,
        max_queue_size: int = 8192,
        schedule_delay_millis: float = 1000,
        max_export_batch_size: int = 512,
        on_drop: DropCounter | None = None,
        meter_provider: MeterProvider | None = None,
        block_when_full: bool = False,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if max_queue_size < 1:
            raise ValueError(f"max_queue_size must be >= 1, got {max_queue_size}")
        self.name = name
        self.exporter = exporter
        self.breaker = breaker
        self.last_ok: bool | None = None
        self.failed_batches = 0
        self._max = max_queue_size
        self._pending = 0
        self._stopped = False
        self._block = block_when_full
        self._lock = threading.Condition(threading.Lock())
        self._stage = f"export.{name}"
        self._on_drop = on_drop or _ignore_drop
        meter = get_meter(_METER, meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "llmtrace.export.duration", unit="s", description="Time to export one batch.",
            explicit_bucket_boundaries_advisory=EXPORT_DURATION_BUCKETS)
        meter.create_observable_gauge(
            "llmtrace.export.queue.depth", [self._observe_depth], unit="{span}",
            description="Spans waiting for this exporter.")
        meter.create_observable_gauge(
            "llmtrace.export.queue.capacity", [self._observe_capacity], unit="{span}",
            description="Spans this exporter's queue holds before it drops.")
        self._batch = BatchSpanProcessor(
            _AccountingExporter(self, exporter),
            max_queue_size=max_queue_size,
            schedule_delay_millis=schedule_delay_millis,
            max_export_batch_size=min(max_export_batch_size, max_queue_size),
            meter_provider=meter_provider,
        )

    @property
    def queue_depth(self) -> int:
        """Spans accepted and not yet handed to the exporter."""
        return self._pending

    @property
    def capacity(self) -> int:
        return self._max

    def set_drop_counter(self, on_drop: DropCounter) -> None:
        self._on_drop = on_drop

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None  # export needs finished spans only

    def on_end(self, span: ReadableSpan) -> None:
        breaker = self.breaker
        if breaker is not None and not breaker.accepting():
            self._on_drop(self._stage, "circuit_open")
            return
        with self._lock:
            while self._block and not self._stopped and self._pending >= self._max:
                if breaker is not None and not breaker.accepting():
                    break  # the breaker opened while we waited: stop waiting
                self._lock.wait(0.1)  # woken by _settle; the timeout only re-checks
            reason = "shutdown" if self._stopped else (
                None if self._pending < self._max else
                "circuit_open" if breaker is not None and not breaker.accepting() else
                "queue_full")
            if reason is None:
                self._pending += 1
        if reason is not None:
            self._on_drop(self._stage, reason)
            return
        self._batch.on_end(span)

    def _observe_depth(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self._pending, {_EXPORTER: self.name})

    def _observe_capacity(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self._max, {_EXPORTER: self.name})

    def _settle(self, count: int, ok: bool | None, seconds: float = 0.0) -> None:
        """Books for one batch: exported (``ok``), failed, or skipped by the breaker (None)."""
        with self._lock:
            self._pending = max(0, self._pending - count)
            self._lock.notify_all()
        if ok is None:
            for _ in range(count):
                self._on_drop(self._stage, "circuit_open")
            return
        self._duration.record(seconds, {_EXPORTER: self.name,
                                        "outcome": "ok" if ok else "failed"})
        self.last_ok = ok
        if not ok:
            self.failed_batches += 1
            for _ in range(count):
                self._on_drop(self._stage, "export_failed")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._batch.force_flush(timeout_millis)

    def shutdown(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify_all()
        self._batch.shutdown()
