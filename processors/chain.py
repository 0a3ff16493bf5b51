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
from typing import TypeVar

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

from llmtrace_processors.attributes import LLMTRACE_ANALYSIS_SKIPPED, LLMTRACE_CALL_DUPLICATE_OF
from llmtrace_processors.breaker import CircuitBreaker

__all__ = [
    "CALL_OPERATIONS",
    "BackgroundSpanProcessor",
    "DropCounter",
    "EnrichingSpanProcessor",
    "Enrichment",
    "FanOutSpanProcessor",
    "StageTracker",
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


class StageTracker:
    """Which enriching stage each thread is inside now (its ``enrich`` call).

    Every stage of a chain records itself here around its ``enrich``: one dict store on
    the way in and one on the way out, the way the SDK's span processors record nothing
    more than a loop variable. The stall watchdog of :class:`BackgroundSpanProcessor` reads
    it to learn where a stuck worker is, without walking its stack.
    """

    __slots__ = ("_inside",)

    def __init__(self) -> None:
        self._inside: dict[int, EnrichingSpanProcessor] = {}

    def enter(self, ident: int, stage: EnrichingSpanProcessor) -> None:
        self._inside[ident] = stage

    def leave(self, ident: int) -> None:
        self._inside.pop(ident, None)

    def stage_of(self, ident: int) -> EnrichingSpanProcessor | None:
        return self._inside.get(ident)

    def mark_stuck(self, ident: int, why: str) -> EnrichingSpanProcessor | None:
        """Thread ``ident`` is stuck: mark the stage it is in (see
        :meth:`EnrichingSpanProcessor.hold_stuck`); None when it is in no stage now."""
        stage = self._inside.get(ident)
        if stage is None or not stage.hold_stuck(
                ident, why, lambda: self._inside.get(ident) is stage):
            return None
        return stage


class EnrichingSpanProcessor(SpanProcessor):
    """Base class: compute an :class:`Enrichment` for GenAI spans and pass a copy on.

    Subclasses implement :meth:`enrich`. Non-GenAI spans (and the duplicate span of a call)
    pass through untouched, and an
    exception in :meth:`enrich` is logged and counted, never raised: the span goes on
    unenriched.

    With a :class:`~llmtrace_processors.breaker.CircuitBreaker` (:meth:`set_breaker`), a
    processor that keeps raising or is too slow is bypassed while the breaker is open: the
    span goes on unenriched, marked with ``llmtrace.analysis.skipped``, and the skip is
    counted (``reason="circuit_open"``).

    A stage whose work must never be skipped (``bypassable = False``: the content policy,
    redaction, budget spend) gets no breaker; if it is ever stuck (a stalled worker left
    inside it), the spans that would have passed it are dropped and counted instead of
    going on without it.
    """

    #: Name used in logs and drop/failure counters.
    stage = "enrich"
    #: False for a stage that must never be skipped (see the class docstring).
    bypassable = True

    def __init__(
        self,
        next_processor: SpanProcessor | None = None,
        *,
        on_drop: DropCounter | None = None,
    ) -> None:
        self._next = next_processor
        self._on_drop = on_drop or _ignore_drop
        self._breaker: CircuitBreaker | None = None
        self._stage_tracker = StageTracker()
        # Threads a stalled worker left inside this stage's enrich (rare: guarded by a lock).
        self._stuck_lock = threading.Lock()
        self._stuck: set[int] = set()

    def set_next(self, next_processor: SpanProcessor) -> None:
        self._next = next_processor

    def set_drop_counter(self, on_drop: DropCounter) -> None:
        self._on_drop = on_drop

    def set_tracker(self, tracker: StageTracker) -> None:
        """Record this stage's ``enrich`` calls in ``tracker`` (shared by a chain)."""
        self._stage_tracker = tracker

    def set_breaker(self, breaker: CircuitBreaker | None) -> None:
        """Guard :meth:`enrich` with ``breaker`` (failures and slow calls open it)."""
        if breaker is not None and not self.bypassable:
            raise ValueError(f"stage {self.stage!r} must never be bypassed: no breaker")
        self._breaker = breaker

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self._breaker

    def enrich(self, span: ReadableSpan) -> Enrichment | None:  # pragma: no cover
        raise NotImplementedError

    def applies_to(self, span: ReadableSpan) -> bool:
        """GenAI spans, except the second span of a call (``llmtrace.call.duplicate_of``):
        the call is priced, analysed and counted on its other span."""
        return is_genai_span(span) and LLMTRACE_CALL_DUPLICATE_OF not in (span.attributes or {})

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self._next is not None:
            self._next.on_start(span, parent_context)

    def hold_stuck(self, ident: int, why: str, still_inside: Callable[[], bool]) -> bool:
        """Thread ``ident`` is stuck in :meth:`enrich` (a stalled worker, abandoned): skip
        this stage until that call returns, so no other thread gets stuck in it too, and
        hold its breaker open meanwhile (``/health`` shows it). False, and nothing held,
        when the thread has left the stage by the time it is marked (``still_inside``)."""
        breaker = self._breaker
        if breaker is not None:
            breaker.trip(why, hold=True)
        with self._stuck_lock:
            self._stuck.add(ident)
            if still_inside():
                return True
            self._stuck.discard(ident)
        if breaker is not None:
            breaker.release()
        return False

    def _enrich_tracked(self, span: ReadableSpan) -> Enrichment | None:
        """:meth:`enrich`, with the calling thread recorded as inside this stage."""
        ident = threading.get_ident()
        tracker = self._stage_tracker
        tracker.enter(ident, self)
        try:
            return self.enrich(span)
        finally:
            tracker.leave(ident)  # before looking at _stuck: see hold_stuck
            if self._stuck:
                self._returned(ident)

    def _returned(self, ident: int) -> None:
        with self._stuck_lock:
            if ident not in self._stuck:
                return
            self._stuck.discard(ident)
        if self._breaker is not None:  # the stalled call is back at last
            self._breaker.release()

    def on_end(self, span: ReadableSpan) -> None:
        if self.applies_to(span):
            enrichment: Enrichment | None
            if self._stuck:  # a call that stalled the worker has not returned yet
                if not self.bypassable:
                    self._on_drop(self.stage, "stage_stuck")  # never passed on without it
                    return
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
                    if not self.bypassable:
                        return  # dropped (counted) rather than passed on without it
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
        stages: StageTracker | None = None,
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
        self._stages = stages
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
        where = _stack_of(worker)
        stage = None
        if self._stages is not None and worker.ident is not None:  # before the successor starts
            stage = self._stages.mark_stuck(
                worker.ident, f"stalled: a call over {timeout_s:.1f} s has not returned")
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


def _stack_of(thread: threading.Thread) -> str:
    """Where ``thread`` is now, as a formatted stack, for the stall report in the log.

    ``sys._current_frames`` is CPython's documented way to read another thread's stack
    ("for internal and specialized purposes": a stuck thread is one). It only feeds the log
    message; the stage a worker is stuck in comes from :class:`StageTracker`.
    """
    frame = sys._current_frames().get(thread.ident) if thread.ident is not None else None
    try:
        return "".join(traceback.format_stack(frame)) if frame is not None else "(unknown)\n"
    finally:
        del frame


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
    stages = StageTracker()
    for enricher in reversed(enrichers):
        enricher.set_next(tail)
        enricher.set_tracker(stages)
        if on_drop is not None:
            enricher.set_drop_counter(on_drop)
        tail = enricher
    if background:
        return BackgroundSpanProcessor(tail, max_queue_size=max_queue_size, on_drop=on_drop,
                                       stall_timeout_s=stall_timeout_s, stages=stages)
    return tail
