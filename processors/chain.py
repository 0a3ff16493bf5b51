"""The enrichment chain: SpanProcessors that add to a *copy* of a finished span.

In the OTel SDK a span's attributes are frozen before any processor's ``on_end`` runs,
so a processor cannot annotate the span it is handed. An :class:`EnrichingSpanProcessor`
therefore builds a new ``ReadableSpan`` (old attributes + added, old events + added,
everything else copied) and hands it to the next processor. A chain ends in one
``BatchSpanProcessor`` per exporter behind a :class:`FanOutSpanProcessor`, so a slow or
broken exporter never delays the others.

``on_end`` runs on the thread that ends the span (in the proxy: the event loop).
:class:`BackgroundSpanProcessor` moves everything after it onto a worker thread through
a bounded queue; when the queue is full the span is dropped and the drop counted.

Usage with your own TracerProvider::

    head = build_chain([CostProcessor()], [BatchSpanProcessor(OTLPSpanExporter())])
    tracer_provider.add_span_processor(head)
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TypeVar

from llmtrace_processors.attributes import LLMTRACE_ANALYSIS_SKIPPED, LLMTRACE_CALL_DUPLICATE_OF
from llmtrace_processors.breaker import CircuitBreaker
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_SYSTEM,
    GenAiOperationNameValues,
)
from opentelemetry.util.types import AttributeValue

__all__ = [
    "CALL_OPERATIONS",
    "BackgroundSpanProcessor",
    "DropCounter",
    "EnrichingSpanProcessor",
    "Enrichment",
    "FanOutSpanProcessor",
    "build_chain",
    "copy_span",
    "is_call",
    "is_genai_span",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Called with (stage, reason) each time a span is dropped or a stage fails.
DropCounter = Callable[[str, str], None]


def _ignore_drop(stage: str, reason: str) -> None:
    return None


#: Operations that are one call to a model API: what is counted, priced and listed as a call.
CALL_OPERATIONS: frozenset[str] = frozenset({
    GenAiOperationNameValues.CHAT.value, GenAiOperationNameValues.TEXT_COMPLETION.value,
    GenAiOperationNameValues.EMBEDDINGS.value, GenAiOperationNameValues.GENERATE_CONTENT.value,
})


def is_call(attributes: Mapping[str, object]) -> bool:
    """A span's attributes describe one model call, counted on this span: a call operation,
    and not the second span of a call (``llmtrace.call.duplicate_of``). Application spans,
    HTTP client spans, agents, tools and workflows are not calls."""
    return (attributes.get(GEN_AI_OPERATION_NAME) in CALL_OPERATIONS
            and LLMTRACE_CALL_DUPLICATE_OF not in attributes)


def is_genai_span(span: ReadableSpan) -> bool:
    """True for spans that describe a GenAI operation, whatever produced them."""
    attributes = span.attributes or {}
    return (
        GEN_AI_OPERATION_NAME in attributes
        or GEN_AI_PROVIDER_NAME in attributes
        or GEN_AI_SYSTEM in attributes
    )


@dataclass(frozen=True, slots=True)
class Enrichment:
    """What a processor adds to (or removes from) a span."""

    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    events: Sequence[Event] = ()
    remove: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.attributes or self.events or self.remove)


def _sequence(items: Sequence[_T], dropped: int) -> Sequence[_T]:
    """``items`` as a ReadableSpan keeps them: a tuple, or a BoundedList when the SDK
    dropped some at its limits (only a BoundedList can carry that count)."""
    if not dropped:
        return tuple(items)
    bounded = BoundedList.from_seq(None, items)
    bounded.dropped = dropped
    return bounded


_SCALARS = frozenset({str, int, float, bool})


def _plain(attributes: Mapping[str, AttributeValue]) -> bool:
    """Every key a non-empty str, every value a str/int/float/bool or a tuple of them."""
    scalars = _SCALARS
    for key, value in attributes.items():
        if type(key) is not str or not key:
            return False
        kind = type(value)
        if kind not in scalars and not (
                kind is tuple and all(type(item) in scalars for item in value)):  # type: ignore[union-attr]
            return False
    return True


def copy_span(span: ReadableSpan, enrichment: Enrichment) -> ReadableSpan:
    """A new ReadableSpan equal to ``span`` with ``enrichment`` applied.

    The counts of attributes, events and links the SDK dropped at its limits are kept,
    so exporters still report them (OTLP ``dropped_*_count``).
    """
    source = span.attributes
    # ``attributes`` of a ReadableSpan is a read-only proxy whose copy() is a C-level dict
    # copy; the values in it were validated when the span recorded them.
    merged: dict[str, AttributeValue] = source.copy() if source else {}  # type: ignore[attr-defined]
    for key in enrichment.remove:
        merged.pop(key, None)
    added = enrichment.attributes
    if added:
        # Only the new values need the SDK's validation (and conversion of lists to tuples);
        # plain scalars and tuples of them (what our processors add) are valid as they are.
        if _plain(added):
            merged.update(added)
        else:
            merged.update(BoundedAttributes(maxlen=None, attributes=added))
    dropped = span.dropped_attributes
    attributes: Mapping[str, AttributeValue] = merged
    if dropped:  # only a BoundedAttributes can carry the count the SDK dropped at its limits
        bounded = BoundedAttributes(maxlen=None, attributes=merged, immutable=True)
        bounded.dropped = dropped
        attributes = bounded
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=_sequence((*span.events, *enrichment.events), span.dropped_events),
        links=_sequence(span.links, span.dropped_links),
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class EnrichingSpanProcessor(SpanProcessor):
    """Base class: compute an :class:`Enrichment` for GenAI spans and pass a copy on.

    Subclasses implement :meth:`enrich`. Non-GenAI spans (and the duplicate span of a call)
    pass through untouched, and an
    exception in :meth:`enrich` is logged and counted, never raised: the span goes on
    unenriched.

    With a :class:`~processors.breaker.CircuitBreaker` (:meth:`set_breaker`), a processor
    that keeps raising or is too slow is bypassed while the breaker is open: the span goes
    on unenriched, marked with ``llmtrace.analysis.skipped``, and the skip is counted
    (``reason="circuit_open"``).
    """

    #: Name used in logs and drop/failure counters.
    stage = "enrich"

    def __init__(
        self,
        next_processor: SpanProcessor | None = None,
        *,
        on_drop: DropCounter | None = None,
    ) -> None:
        self._next = next_processor
        self._on_drop = on_drop or _ignore_drop
        self._breaker: CircuitBreaker | None = None
        # Threads (idents) inside enrich now, and those of them a stalled worker left there.
        self._calls_lock = threading.Lock()
        self._entered: set[int] = set()
        self._stuck: set[int] = set()

    def set_next(self, next_processor: SpanProcessor) -> None:
        self._next = next_processor

    def set_drop_counter(self, on_drop: DropCounter) -> None:
        self._on_drop = on_drop

    def set_breaker(self, breaker: CircuitBreaker | None) -> None:
        """Guard :meth:`enrich` with ``breaker`` (failures and slow calls open it)."""
        self._breaker = breaker

    def enrich(self, span: ReadableSpan) -> Enrichment | None:  # pragma: no cover
        raise NotImplementedError

    def applies_to(self, span: ReadableSpan) -> bool:
        """GenAI spans, except the second span of a call (``llmtrace.call.duplicate_of``):
        the call is priced, analysed and counted on its other span."""
        return is_genai_span(span) and LLMTRACE_CALL_DUPLICATE_OF not in (span.attributes or {})

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self._next is not None:
            self._next.on_start(span, parent_context)

    def mark_stuck(self, thread: threading.Thread) -> bool:
        """``thread`` is stuck in :meth:`enrich` (a stalled worker, abandoned): skip this
        stage until that call returns, so no other thread gets stuck in it too. False (and
        nothing marked) if the thread is not inside this stage's ``enrich`` (any more)."""
        with self._calls_lock:
            if thread.ident not in self._entered:
                return False
            self._stuck.add(thread.ident)
            return True

    def _enrich_tracked(self, span: ReadableSpan) -> Enrichment | None:
        """:meth:`enrich`, with the calling thread known to be inside it meanwhile."""
        ident = threading.get_ident()
        with self._calls_lock:
            self._entered.add(ident)
        try:
            return self.enrich(span)
        finally:
            with self._calls_lock:
                self._entered.discard(ident)
                returned = ident in self._stuck
                self._stuck.discard(ident)
            if returned and self._breaker is not None:  # the stalled call is back at last
                self._breaker.release()

    def on_end(self, span: ReadableSpan) -> None:
        if self.applies_to(span):
            enrichment: Enrichment | None
            if self._stuck:  # a call that stalled the worker has not returned yet
                enrichment = self._skipped(span, "stage_stuck")
            elif self._breaker is not None:
                enrichment = self._guarded_enrich(span, self._breaker)
            else:
                try:
                    enrichment = self._enrich_tracked(span)
                except Exception:  # telemetry never breaks the caller
                    _log.exception("span processor %s failed; span passed on unenriched",
                                   self.stage)
                    self._on_drop(self.stage, "processor_error")
                    enrichment = None
            if enrichment:
                span = copy_span(span, enrichment)
        if self._next is not None:
            self._next.on_end(span)

    def _skipped(self, span: ReadableSpan, reason: str) -> Enrichment:
        """Bypassed: counted, and the span says so."""
        self._on_drop(self.stage, reason)
        skipped = (span.attributes or {}).get(LLMTRACE_ANALYSIS_SKIPPED, ())
        return Enrichment(attributes={
            LLMTRACE_ANALYSIS_SKIPPED: (*skipped, self.stage)})  # type: ignore[misc]

    def _guarded_enrich(self, span: ReadableSpan, breaker: CircuitBreaker) -> Enrichment | None:
        permit = breaker.acquire()
        if permit is None:  # open: bypassed
            return self._skipped(span, "circuit_open")
        started = time.perf_counter()
        try:
            enrichment = self._enrich_tracked(span)
        except Exception as exc:  # telemetry never breaks the caller
            _log.exception("span processor %s failed; span passed on unenriched", self.stage)
            self._on_drop(self.stage, "processor_error")
            breaker.record(permit, False, reason=f"raised {type(exc).__name__}")
            return None
        breaker.record(permit, True, time.perf_counter() - started)
        return enrichment

    def shutdown(self) -> None:
        if self._next is not None:
            self._next.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True if self._next is None else self._next.force_flush(timeout_millis)


class FanOutSpanProcessor(SpanProcessor):
    """Hands every span to each processor; one failing never affects the others."""

    def __init__(self, processors: Iterable[SpanProcessor], on_drop: DropCounter | None = None):
        self._processors = tuple(processors)
        self._on_drop = on_drop or _ignore_drop

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self._processors:
            try:
                processor.on_start(span, parent_context)
            except Exception:
                _log.exception("span processor %r failed in on_start", processor)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._processors:
            try:
                processor.on_end(span)
            except Exception:
                _log.exception("span processor %r failed; other sinks unaffected", processor)
                self._on_drop("export", "processor_error")

    def shutdown(self) -> None:
        for processor in self._processors:
            try:
                processor.shutdown()
            except Exception:
                _log.exception("span processor %r failed to shut down", processor)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        ok = True
        for processor in self._processors:
            try:
                ok = processor.force_flush(timeout_millis) and ok
            except Exception:
                _log.exception("span processor %r failed to flush", processor)
                ok = False
        return ok


class BackgroundSpanProcessor(SpanProcessor):
    """Moves ``on_end`` of everything after it to a worker thread (bounded queue).

    ``on_end`` only appends to a deque: O(1), no analysis on the caller's thread. When
    ``max_queue_size`` spans are waiting, the new span is dropped and counted with
    stage ``analysis`` and reason ``queue_full``.

    The worker wakes when ``batch_size`` spans are waiting or ``max_delay_s`` has passed,
    not for every span: waking a thread per span costs the caller's thread a GIL hand-off
    each time, which measurably slowed the proxy (docs/performance.md).

    **Stalls.** A processor that never returns (a deadlock, a hung network call inside an
    analysis step) would hold the worker for good, and every span after it would be shed.
    With ``stall_timeout_s``, a watchdog thread notices a span that has been in the chain
    that long: it logs where the worker is stuck (its stack), counts the span as
    ``("analysis", "stalled")``, and starts a new worker on the rest of the queue. The
    enriching stage it is stuck in is skipped (spans marked ``llmtrace.analysis.skipped``,
    counted as ``(stage, "stage_stuck")``) until the stuck call returns, and its circuit
    breaker, if it has one, is held open until then: a stage that hangs on every span costs
    one thread, not one per span. A Python thread cannot be stopped: the stuck one is abandoned, and
    exits if its call ever returns (the span it held may then still be exported, late).
    A worker stuck outside any stage (in a sink) is replaced too, at most ``max_stalls``
    times; after that the queue sheds as before.
    """

    def __init__(
        self,
        next_processor: SpanProcessor,
        *,
        max_queue_size: int = 8192,
        batch_size: int = 256,
        max_delay_s: float = 0.05,
        on_drop: DropCounter | None = None,
        thread_name: str = "llmtrace-analysis",
        stall_timeout_s: float | None = None,
        max_stalls: int = 3,
    ) -> None:
        if max_queue_size < 1:
            raise ValueError(f"max_queue_size must be >= 1, got {max_queue_size}")
        if max_delay_s <= 0:
            raise ValueError(f"max_delay_s must be > 0, got {max_delay_s}")
        if stall_timeout_s is not None and not stall_timeout_s > 0:
            raise ValueError(f"stall_timeout_s must be > 0 seconds, got {stall_timeout_s}")
        self._next = next_processor
        self._max = max_queue_size
        self._batch = max(1, min(batch_size, max_queue_size))
        self._delay = max_delay_s
        self._on_drop = on_drop or _ignore_drop
        self._queue: deque[ReadableSpan] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._flushing = 0
        self._stopped = False
        self._thread_name = thread_name
        # The worker's current batch and when it handed its current span on; a stalled
        # worker's batch is given back to the queue and the worker's generation retired.
        self._held: deque[ReadableSpan] = deque()
        self._busy_since: float | None = None
        self._generation = 0
        self._stalls_left = max_stalls
        self.stalls = 0
        self._worker = self._new_worker()
        self._worker.start()
        self._watchdog: threading.Thread | None = None
        self._watch_stop = threading.Event()
        if stall_timeout_s is not None:
            self._watchdog = threading.Thread(
                target=self._watch, args=(stall_timeout_s,), name=f"{thread_name}-watchdog",
                daemon=True)
            self._watchdog.start()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def capacity(self) -> int:
        return self._max

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        # on_start must stay synchronous: the span is still live.
        self._next.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        reason = None
        with self._cond:  # _stopped is read under the lock: no span slips past shutdown
            if self._stopped:
                reason = "shutdown"
            elif len(self._queue) >= self._max:
                reason = "queue_full"
            else:
                self._queue.append(span)
                if len(self._queue) == self._batch:
                    self._cond.notify_all()
        if reason is not None:
            self._on_drop("analysis", reason)

    def _new_worker(self) -> threading.Thread:
        """A worker for the current generation (not started)."""
        return threading.Thread(target=self._run, args=(self._generation,),
                                name=self._thread_name, daemon=True)

    def _run(self, generation: int) -> None:
        cond = self._cond
        while True:
            with cond:
                cond.wait_for(self._ready, timeout=self._delay)
                if generation != self._generation:
                    return
                if not self._queue:
                    if self._stopped:
                        return
                    continue
                self._held = held = deque(self._queue)
                self._queue.clear()
                self._in_flight = len(held)
            while True:
                with cond:
                    if generation != self._generation:
                        return  # replaced while stuck: the new worker has the rest
                    if not held:
                        self._busy_since = None
                        self._in_flight = 0
                        cond.notify_all()
                        break
                    span = held.popleft()
                    self._busy_since = time.monotonic()
                try:
                    self._next.on_end(span)
                except Exception:
                    _log.exception("span pipeline failed; span dropped")
                    self._on_drop("analysis", "processor_error")

    def _ready(self) -> bool:
        return len(self._queue) >= self._batch or self._stopped or (
            self._flushing > 0 and bool(self._queue))

    def _watch(self, timeout_s: float) -> None:
        interval = min(1.0, max(0.01, timeout_s / 4))
        while not self._watch_stop.wait(interval):
            with self._cond:
                if self._stopped:
                    return
                since, worker = self._busy_since, self._worker
                if since is None or time.monotonic() - since <= timeout_s:
                    continue
                if self._stalls_left <= 0:
                    self._busy_since = None  # reported once; the queue sheds from here
                    _log.error("span analysis worker stuck for over %.1f s and %d "
                               "replacement(s) used up: not replacing it again; spans are "
                               "dropped (counted) once the queue is full", timeout_s,
                               self.stalls)
                    continue
            self._replace(worker, since, timeout_s)

    def _replace(self, worker: threading.Thread, since: float, timeout_s: float) -> None:
        """Bypass the stage ``worker`` is stuck in, then hand the queue to a new worker."""
        frame = sys._current_frames().get(worker.ident) if worker.ident is not None else None
        stage = _enricher_in(frame)
        where = "".join(traceback.format_stack(frame)) if frame is not None else "(unknown)\n"
        del frame
        if stage is not None:  # before the new worker starts
            breaker = stage._breaker
            if breaker is not None:  # open (for /health) until the stuck call returns
                breaker.trip(f"stalled: a call over {timeout_s:.1f} s has not returned",
                             hold=True)
            if not stage.mark_stuck(worker):  # it has left that stage since the stack was read
                if breaker is not None:
                    breaker.release()
                stage = None
        with self._cond:
            if self._worker is not worker or self._busy_since != since:
                return  # it moved on meanwhile
            self._stalls_left -= 1
            self._generation += 1
            self._queue.extendleft(reversed(self._held))
            self._held = deque()
            self._busy_since = None
            self._in_flight = 0
            self.stalls += 1
            self._worker = successor = self._new_worker()
        _log.error("span analysis stuck in %s for over %.1f s; the span is dropped "
                   "(counted), a new worker takes the queue, the stuck thread is abandoned. "
                   "It is here:\n%s", stage.stage if stage is not None else "the chain",
                   timeout_s, where)
        self._on_drop("analysis", "stalled")
        successor.start()  # after the report: whoever sees its work sees the stall counted

    def _wait_idle(self, timeout_s: float) -> bool:
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(
                    lambda: not self._queue and self._in_flight == 0, timeout=timeout_s
                )
            finally:
                self._flushing -= 1

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        idle = self._wait_idle(timeout_millis / 1000)
        return self._next.force_flush(timeout_millis) and idle

    def shutdown(self) -> None:
        if self._stopped:
            return
        self._wait_idle(30.0)
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            worker = self._worker
        if worker.ident is not None:  # a successor the watchdog has not started yet: none
            worker.join(timeout=30.0)
        self._watch_stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5.0)
        self._next.shutdown()


def _enricher_in(frame: FrameType | None) -> EnrichingSpanProcessor | None:
    """The stage whose ``enrich`` a (stuck) thread is inside, from its innermost frame out.

    Stages call the next one from their ``on_end``, so every earlier stage is on the stack
    too; only the one in its ``enrich`` call is where the thread waits. ``None`` when it is
    stuck elsewhere (in a sink)."""
    while frame is not None:
        if frame.f_code.co_name == "enrich":
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, EnrichingSpanProcessor):
                return candidate
        frame = frame.f_back
    return None


def build_chain(
    enrichers: Sequence[EnrichingSpanProcessor],
    sinks: Sequence[SpanProcessor],
    *,
    background: bool = True,
    max_queue_size: int = 8192,
    on_drop: DropCounter | None = None,
    stall_timeout_s: float | None = None,
) -> SpanProcessor:
    """Wire ``enrichers`` in order, ending in a fan-out to ``sinks``.

    Each sink is typically a ``BatchSpanProcessor(exporter)``. With ``background`` the
    whole chain runs on one worker thread behind a bounded queue, replaced when one span
    has been in the chain for ``stall_timeout_s`` (see :class:`BackgroundSpanProcessor`).
    """
    tail: SpanProcessor = FanOutSpanProcessor(sinks, on_drop=on_drop)
    for enricher in reversed(enrichers):
        enricher.set_next(tail)
        if on_drop is not None:
            enricher.set_drop_counter(on_drop)
        tail = enricher
    if background:
        return BackgroundSpanProcessor(tail, max_queue_size=max_queue_size, on_drop=on_drop,
                                       stall_timeout_s=stall_timeout_s)
    return tail
