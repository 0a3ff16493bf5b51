"""A batching span processor that makes its caller wait instead of dropping when full.

The SDK's ``BatchSpanProcessor`` drops a span (with a log line) when its queue is full: the
right choice where ``on_end`` runs on an application's thread. In collector mode the
caller is the analysis worker, and a span that was accepted from an OTLP sender must not
vanish because an exporter is slow: here ``on_end`` waits for room, analysis stalls, its
queue fills, the receiver's queue fills, and senders are told to retry
(RESOURCE_EXHAUSTED / 429). Backpressure reaches the senders instead of data being lost.

Export batching is the SDK's: up to ``max_export_batch_size`` spans per call, at least
every ``schedule_delay_s``; one worker thread per exporter.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["BlockingBatchSpanProcessor"]

_log = logging.getLogger(__name__)


class BlockingBatchSpanProcessor(SpanProcessor):
    """``BatchSpanProcessor`` semantics, except that a full queue blocks ``on_end``."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = 8192,
        max_export_batch_size: int = 512,
        schedule_delay_s: float = 0.5,
        on_drop: Callable[[int], None] = lambda count: None,
    ) -> None:
        if max_queue_size < 1 or max_export_batch_size < 1:
            raise ValueError("max_queue_size and max_export_batch_size must be >= 1")
        self._exporter = exporter
        self._max = max_queue_size
        self._batch = min(max_export_batch_size, max_queue_size)
        self._delay = schedule_delay_s
        self._on_drop = on_drop
        self._queue: deque[ReadableSpan] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._exporting = False
        self._flush_requests = 0
        self._stopped = False
        self._worker = threading.Thread(target=self._run, name="llmtrace-export", daemon=True)
        self._worker.start()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        with self._cond:
            while len(self._queue) >= self._max and not self._stopped:
                self._cond.wait(0.1)
            if self._stopped:
                dropped = True
            else:
                dropped = False
                self._queue.append(span)
                if len(self._queue) >= self._batch:
                    self._cond.notify_all()
        if dropped:
            self._on_drop(1)

    def _ready(self) -> bool:
        return len(self._queue) >= self._batch or self._stopped or (
            self._flush_requests > 0 and bool(self._queue))

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._ready, timeout=self._delay)
                if not self._queue:
                    if self._stopped:
                        return
                    continue
                batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
                self._exporting = True
                self._cond.notify_all()  # room for waiting callers
            try:
                self._exporter.export(batch)
            except Exception:  # exporters should not raise; never let the worker die
                _log.exception("span exporter raised; %d spans lost", len(batch))
            with self._cond:
                self._exporting = False
                self._cond.notify_all()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        with self._cond:
            self._flush_requests += 1
            self._cond.notify_all()
            try:
                done = self._cond.wait_for(
                    lambda: not self._queue and not self._exporting,
                    timeout=max(0.0, deadline - time.monotonic()))
            finally:
                self._flush_requests -= 1
        flushed = self._exporter.force_flush(max(0, int((deadline - time.monotonic()) * 1000)))
        return bool(done) and flushed is not False  # the base class returns None

    def shutdown(self) -> None:
        if self._stopped:
            return
        self.force_flush()
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._worker.join(30)
        self._exporter.shutdown()
