"""The security stage of a chain with its detectors in a :class:`DetectorPool`.

:class:`OffloadedSecurityProcessor` takes the place of a
:class:`~processors.security.processor.SecurityProcessor` in a chain and gives the same
result (the processor it wraps builds every enrichment and records every metric), but the
scans run in worker processes, in batches, while the chain's thread goes on with the next
spans::

    on_end (chain thread) ── span ─> FIFO of pending spans (at most max_pending)
            └─ content attributes ─> open batch ─(batch_size, or max_delay_s)─> worker
    release thread: head of the FIFO, once its batch is back ─> enrichment, copy ─> next

* **Order is kept**: spans leave in the order they came, whether they needed a scan or
  not; the next processor is only ever called from the release thread.
* **Backpressure**: with ``max_pending`` spans waiting, ``on_end`` waits (the chain
  thread is a worker thread; in collector mode the wait travels back to the senders).
* **Worker failure loses nothing**: a batch whose worker died (or that could not be sent)
  is scanned in-process, each of its spans counted in ``llmtrace.security.offload.fallbacks``
  (``reason`` = ``worker_failed``); the pool is restarted, at most ``max_restarts`` times,
  after which every span is scanned in-process (``reason`` = ``pool_disabled``).
* ``force_flush`` sends the open batch and waits until every pending span is released;
  ``shutdown`` does that, stops the release thread and the workers, then shuts ``next``
  down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial

from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider, get_meter
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from llmtrace_processors.chain import DropCounter, EnrichingSpanProcessor, Enrichment, copy_span
from llmtrace_processors.security.pool import BatchResult, DetectorPool, Job, content_of
from llmtrace_processors.security.processor import LocatedFinding, SecurityProcessor

__all__ = ["FALLBACKS_METRIC", "OffloadedSecurityProcessor"]

_log = logging.getLogger(__name__)
FALLBACKS_METRIC = "llmtrace.security.offload.fallbacks"


@dataclass(slots=True)
class _Batch:
    jobs: list[Job] = field(default_factory=list)
    opened: float = field(default_factory=time.monotonic)
    result: BatchResult | None = None
    #: Why the batch is scanned in-process ("worker_failed", "pool_disabled"), if it is.
    fallback: str | None = None
    #: The pool generation it was sent to (a failure restarts that generation only).
    generation: int = -1
    done: bool = False


@dataclass(slots=True)
class _Pending:
    span: ReadableSpan
    batch: _Batch | None = None  # None: no scan needed, ready at once
    index: int = 0


class OffloadedSecurityProcessor(EnrichingSpanProcessor):
    """A SecurityProcessor whose scans run in ``pool`` (see the module docstring)."""

    stage = "security"
    needs_content = True

    def __init__(
        self,
        processor: SecurityProcessor,
        pool: DetectorPool,
        next_processor: SpanProcessor | None = None,
        *,
        batch_size: int = 64,
        max_delay_s: float = 0.01,
        max_pending: int = 4096,
        max_restarts: int = 3,
        meter_provider: MeterProvider | None = None,
        on_drop: DropCounter | None = None,
    ) -> None:
        super().__init__(next_processor, on_drop=on_drop)
        if batch_size < 1 or max_pending < batch_size:
            raise ValueError("need batch_size >= 1 and max_pending >= batch_size")
        self.processor = processor
        self.pool: DetectorPool | None = pool
        self._batch_size = batch_size
        self._delay = max_delay_s
        self._max_pending = max_pending
        self._restarts_left = max_restarts
        self._fallbacks = get_meter("processors.security", meter_provider=meter_provider
                                    ).create_counter(
            FALLBACKS_METRIC, unit="{span}",
            description="Spans scanned in-process because the detector pool failed.")
        # re-entrant: a future that is already done runs its callback (which takes this
        # lock) inside add_done_callback, under the lock
        self._cond = threading.Condition(threading.RLock())
        self._fifo: deque[_Pending] = deque()
        self._open: _Batch | None = None
        self._releasing = 0  # spans popped from the FIFO, not yet handed on
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="llmtrace-security-release",
                                        daemon=True)
        self._thread.start()

    # -- chain thread ---------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self._next is not None:
            self._next.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if self._stopping:  # after shutdown: in-process, on this thread
            super().on_end(span)
            return
        job = content_of(span.attributes or {}) if self.applies_to(span) else None
        with self._cond:
            self._cond.wait_for(lambda: len(self._fifo) < self._max_pending or self._stopping)
            pending = _Pending(span)
            if job:
                batch = self._open
                if batch is None:
                    batch = self._open = _Batch()
                pending.batch, pending.index = batch, len(batch.jobs)
                batch.jobs.append(job)
                if len(batch.jobs) >= self._batch_size:
                    self._send_locked()
            self._fifo.append(pending)
            self._cond.notify_all()

    # -- sending and receiving ------------------------------------------------------------

    def _send_locked(self) -> None:
        batch, self._open = self._open, None
        if batch is None:
            return
        pool = self.pool
        if pool is None:
            batch.fallback, batch.done = "pool_disabled", True
            return
        try:
            future, batch.generation = pool.submit(batch.jobs)
        except Exception:  # broken or shut down: scanned in-process on release
            _log.warning("could not send a batch to the security detector pool; "
                         "scanning it in-process", exc_info=True)
            batch.generation = pool.generation
            batch.fallback, batch.done = "worker_failed", True
            return
        future.add_done_callback(partial(self._received, batch))

    def _received(self, batch: _Batch, future: Future[BatchResult]) -> None:
        try:
            batch.result = future.result()
        except Exception:
            _log.exception("a security detector worker failed; its %d spans are scanned "
                           "in-process", len(batch.jobs))
            batch.fallback = "worker_failed"
        with self._cond:
            batch.done = True
            self._cond.notify_all()

    # -- release thread -------------------------------------------------------------------

    def _head_ready(self) -> bool:
        return bool(self._fifo) and (self._fifo[0].batch is None or self._fifo[0].batch.done)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._head_ready():
                    if self._stopping and not self._fifo:
                        return
                    batch = self._open
                    if batch is not None:
                        due = batch.opened + self._delay - time.monotonic()
                        if due <= 0 or self._stopping:
                            self._send_locked()
                            continue
                        self._cond.wait(due)
                    else:
                        self._cond.wait()
                ready: list[_Pending] = []
                while self._head_ready():
                    ready.append(self._fifo.popleft())
                self._releasing = len(ready)
                self._cond.notify_all()  # room in the FIFO for on_end
            try:
                for pending in ready:
                    batch = pending.batch
                    if batch is not None and pending.index == 0:  # once per batch
                        if batch.fallback == "worker_failed":
                            self._recover(batch.generation)
                        if batch.result is not None:
                            self._account(batch.result)
            except Exception:  # the spans are still released below
                _log.exception("security detector pool bookkeeping failed")
            for pending in ready:
                self._release(pending)
            with self._cond:
                self._releasing = 0
                self._cond.notify_all()

    def _account(self, result: BatchResult) -> None:
        for detector, seconds in result.timings:
            self.processor.record_duration(detector, seconds)
        for stage, reason in result.drops:
            self._on_drop(stage, reason)

    def _recover(self, generation: int) -> None:
        pool = self.pool
        if pool is None or generation != pool.generation:
            return  # already restarted since that batch was sent
        if self._restarts_left <= 0:
            _log.error("security detector pool failed too often; scanning in-process from now")
            self.pool = None
            pool.shutdown(wait=False)
            return
        self._restarts_left -= 1
        try:
            pool.restart()
        except Exception:
            _log.exception("could not restart the security detector pool; scanning in-process")
            self.pool = None

    def _release(self, pending: _Pending) -> None:
        span = pending.span
        batch = pending.batch
        try:
            if batch is not None:
                enrichment = self._enrichment(pending)
            else:  # nothing was sent for it: a span without content, or not a GenAI one
                enrichment = (self.processor.nothing_to_analyse() if self.applies_to(span)
                              else None)
        except Exception:  # telemetry never breaks the caller
            _log.exception("span processor %s failed; span passed on unenriched", self.stage)
            self._on_drop(self.stage, "processor_error")
            enrichment = None
        if enrichment:
            span = copy_span(span, enrichment)
        if self._next is not None:
            try:
                self._next.on_end(span)
            except Exception:
                _log.exception("span pipeline failed after the security stage")
                self._on_drop(self.stage, "processor_error")

    def _enrichment(self, pending: _Pending) -> Enrichment | None:
        batch = pending.batch
        assert batch is not None
        if batch.result is None:  # the worker failed, or the pool is gone: scan here
            self._fallbacks.add(1, {"reason": batch.fallback or "worker_failed"})
            return self.processor.enrich(pending.span)
        located: list[LocatedFinding] | None = batch.result.located[pending.index]
        if located is None:
            return self.processor.nothing_to_analyse()
        return self.processor.enrichment(pending.span, located)

    # -- flush and shutdown ---------------------------------------------------------------

    def _wait_idle(self, timeout_s: float) -> bool:
        with self._cond:
            if self._open is not None:
                self._open.opened = 0.0  # due now
                self._cond.notify_all()
            return self._cond.wait_for(
                lambda: not self._fifo and not self._releasing and self._open is None,
                timeout=timeout_s)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        idle = self._wait_idle(timeout_millis / 1000)
        return super().force_flush(timeout_millis) and idle

    def shutdown(self) -> None:
        if self._stopping:
            return
        self._wait_idle(30.0)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(30.0)
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        super().shutdown()

    @property
    def pending(self) -> int:
        """Spans taken and not yet handed on."""
        return len(self._fifo) + self._releasing

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        """In-process, synchronous (the chain uses :meth:`on_end`)."""
        return self.processor.enrich(span)
