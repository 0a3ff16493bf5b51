"""GenAI call spans joined with what describes the same call: its log events, its twin span.

Two things arrive apart from a call's span and must meet it before analysis:

* **Log events.** Content sent as OTLP log records (``receiver/logs.py``) names its span.
  Records that come first wait here (``PENDING_TTL_S``) and are put on the span as it is
  decoded, before normalisation. A call span that has no content yet, from a service that
  sends GenAI events, waits (``wait_s``) for records that come after it.
* **Its twin.** The ``anthropic`` SDK emits its own span for every call
  (``anthropic.messages.create``, scope ``com.anthropic.sdk.python``) whenever a tracer
  provider is set, so an application instrumented with OpenInference or OpenLLMetry sends two
  GenAI spans for one call: OpenInference's is the SDK span's parent, OpenLLMetry's its
  sibling, with the same ``gen_ai.response.id``. Two call spans are twins when they share
  trace and response id, or are parent and child with the same provider and request model
  (and the same input tokens when both have them). One is counted and priced: the library's
  span (it carries the content), given what only the other had (usage, time to first chunk,
  stream flag, response id and model); the other is kept, marked
  ``llmtrace.call.duplicate_of`` = the counted span's id, and no processor prices, scans or
  counts it. SDK spans wait (``wait_s``) for a twin; one that comes after its twin was passed
  on is marked at once.

Nothing is dropped here: every span comes out, joined or not, at its deadline at the latest,
and at shutdown (:meth:`CallJoin.drain`). Everything runs on the receiver's one worker thread.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_INPUT_TOKENS,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.service_attributes import SERVICE_NAME

from llmtrace_otel.receiver.dialects import join_events
from llmtrace_otel.receiver.dialects.genai_legacy import CONTENT_KEYS
from llmtrace_otel.receiver.logs import LogEvent
from llmtrace_processors.attributes import LLMTRACE_CALL_DUPLICATE_OF, SELF_TRACING_SDK_SCOPES
from llmtrace_processors.chain import Enrichment, copy_span, is_call

__all__ = ["PENDING_TTL_S", "SETTLE_S", "CallJoin"]

#: How long log records wait for their span.
PENDING_TTL_S = 30.0
#: Once a held span got a log event, how long it waits for the rest of its call's events.
SETTLE_S = 0.2
_MAX_PENDING = 16_384
_MAX_SEEN = 16_384
_MAX_SERVICES = 1_024
_CONTENT = frozenset(CONTENT_KEYS)
#: What the counted span takes from its twin when it lacks it.
_MERGED = (GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, GEN_AI_REQUEST_STREAM, GEN_AI_RESPONSE_ID,
           GEN_AI_RESPONSE_MODEL, SERVER_ADDRESS, SERVER_PORT)
_USAGE = "gen_ai.usage."

_Key = tuple[int, int]


@dataclass(slots=True)
class _Held:
    span: ReadableSpan
    deadline: float
    arrived: int
    #: Log events that came for it while it waited (put on it when it goes on).
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Seen:
    """A call span already passed on (for twins that come late)."""

    span_id: int
    parent_id: int | None
    provider: Any
    model: Any
    input_tokens: Any
    response_id: Any


def _key(span: ReadableSpan) -> _Key:
    return span.context.trace_id, span.context.span_id


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _service(span: ReadableSpan) -> str | None:
    service = span.resource.attributes.get(SERVICE_NAME) if span.resource else None
    return service if isinstance(service, str) else None


def _is_sdk(span: ReadableSpan) -> bool:
    scope = span.instrumentation_scope
    return scope is not None and scope.name in SELF_TRACING_SDK_SCOPES


def _related(one: ReadableSpan, other: _Seen | ReadableSpan) -> bool:
    """Parent and child describing the same call: same provider and model (and the same
    input tokens and response id where both have them)."""
    attributes = one.attributes or {}
    if isinstance(other, ReadableSpan):
        other = _seen(other)
    if not (_parent(one) == other.span_id or other.parent_id == one.context.span_id):
        return False
    mine = attributes.get(GEN_AI_USAGE_INPUT_TOKENS)
    response_id = attributes.get(GEN_AI_RESPONSE_ID)
    return (attributes.get(GEN_AI_PROVIDER_NAME) == other.provider
            and attributes.get(GEN_AI_REQUEST_MODEL) == other.model
            and (mine is None or other.input_tokens is None or mine == other.input_tokens)
            and (response_id is None or other.response_id is None
                 or response_id == other.response_id))


def _seen(span: ReadableSpan) -> _Seen:
    attributes = span.attributes or {}
    return _Seen(span.context.span_id, _parent(span), attributes.get(GEN_AI_PROVIDER_NAME),
                 attributes.get(GEN_AI_REQUEST_MODEL), attributes.get(GEN_AI_USAGE_INPUT_TOKENS),
                 attributes.get(GEN_AI_RESPONSE_ID))


def _rank(span: ReadableSpan) -> tuple[bool, bool, bool]:
    attributes = span.attributes or {}
    return (not _is_sdk(span), not _CONTENT.isdisjoint(attributes),
            GEN_AI_USAGE_INPUT_TOKENS in attributes)


def _mark(duplicate: ReadableSpan, primary_id: int) -> ReadableSpan:
    return copy_span(duplicate, Enrichment(attributes={
        LLMTRACE_CALL_DUPLICATE_OF: format(primary_id, "016x")}))


def _merge(primary: ReadableSpan, twin: ReadableSpan) -> ReadableSpan:
    mine, theirs = primary.attributes or {}, twin.attributes or {}
    added = {key: value for key, value in theirs.items()
             if key not in mine and (key.startswith(_USAGE) or key in _MERGED)}
    if GEN_AI_USAGE_INPUT_TOKENS in mine:  # usage is taken whole or not at all
        added = {key: value for key, value in added.items() if not key.startswith(_USAGE)}
    return copy_span(primary, Enrichment(attributes=added)) if added else primary


class CallJoin:
    """Call spans held for their log events or twin; log events held for their span."""

    def __init__(self, *, wait_s: float, content: bool,
                 on_records: Callable[[str, int], None] = lambda outcome, n: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._wait_s = wait_s
        self._content = content
        self._on_records = on_records
        self._clock = clock
        self._arrivals = 0
        self._held: dict[_Key, _Held] = {}
        #: The held spans of each trace (twins and events are looked up within a trace).
        self._held_traces: dict[int, set[_Key]] = {}
        #: (deadline, arrival, key) of held spans; entries of spans gone on are skipped.
        self._deadlines: list[tuple[float, int, _Key]] = []
        self._pending: OrderedDict[_Key, tuple[float, list[LogEvent]]] = OrderedDict()
        self._pending_by_response: dict[tuple[int, str], _Key] = {}
        self._seen: OrderedDict[_Key, _Seen] = OrderedDict()
        self._seen_by_response: OrderedDict[tuple[int, str], int] = OrderedDict()
        #: (trace, parent span id) -> the passed-on call span that is its child.
        self._seen_children: OrderedDict[_Key, int] = OrderedDict()
        self._services: OrderedDict[str, None] = OrderedDict()

    @property
    def held(self) -> int:
        return len(self._held)

    # -- log events ------------------------------------------------------------------------

    def add_events(self, events: list[LogEvent]) -> None:
        """Take log events: onto their held span, or waiting for their span."""
        now = self._clock()
        for item in events:
            if item.service is not None:
                self._services[item.service] = None
                self._services.move_to_end(item.service)
                if len(self._services) > _MAX_SERVICES:
                    self._services.popitem(last=False)
            key = self._held_key(item)
            if key is not None:
                # A call's events come together, or within moments of each other: the span
                # waits a little more for the rest, not its whole wait.
                held = self._held[key]
                held.events.append(item.event)
                if now + SETTLE_S < held.deadline:
                    held.deadline = now + SETTLE_S
                    heapq.heappush(self._deadlines, (held.deadline, held.arrived, key))
                self._on_records("joined", 1)
                continue
            span_key = (item.trace_id, item.span_id)
            if span_key in self._seen:  # its call went on without it: too late
                self._on_records("unjoined", 1)
                continue
            _, waiting = self._pending.setdefault(span_key, (now, []))
            waiting.append(item)
            if item.response_id:
                self._pending_by_response[(item.trace_id, item.response_id)] = span_key
        self._expire_pending(now)

    def _held_key(self, item: LogEvent) -> _Key | None:
        key = (item.trace_id, item.span_id)
        if key in self._held:
            return key
        if item.response_id:
            for held_key in self._held_traces.get(item.trace_id, ()):
                if (self._held[held_key].span.attributes or {}).get(
                        GEN_AI_RESPONSE_ID) == item.response_id:
                    return held_key
        return None

    def _expire_pending(self, now: float) -> None:
        while self._pending:
            key, (arrived, items) = next(iter(self._pending.items()))
            if now - arrived < PENDING_TTL_S and len(self._pending) <= _MAX_PENDING:
                break
            self._pending.popitem(last=False)
            self._forget_responses(items)
            self._on_records("unjoined", len(items))

    def _forget_responses(self, items: list[LogEvent]) -> None:
        for item in items:
            if item.response_id:
                self._pending_by_response.pop((item.trace_id, item.response_id), None)

    def events_for(self, trace_id: int, span_id: int, attributes: Mapping[str, Any]
                   ) -> list[Event]:
        """The waiting log events of the span being decoded (before normalisation).

        An event that names a response id goes only to the span with that response id:
        OpenLIT attaches a stream's events to the span that was current when the stream
        ended (the application's), not to the call's.
        """
        if not self._pending:
            return []
        response_id = attributes.get(GEN_AI_RESPONSE_ID)
        keys = [(trace_id, span_id)]
        if isinstance(response_id, str):
            by_response = self._pending_by_response.get((trace_id, response_id))
            if by_response is not None and by_response not in keys:
                keys.append(by_response)
        found: list[Event] = []
        for key in keys:
            entry = self._pending.get(key)
            if entry is None:
                continue
            taken = [item for item in entry[1]
                     if item.response_id is None or item.response_id == response_id]
            if not taken:
                continue
            rest = [item for item in entry[1] if item not in taken]
            if rest:
                self._pending[key] = (entry[0], rest)
            else:
                del self._pending[key]
            self._forget_responses(taken)
            found.extend(item.event for item in taken)
        if found:
            self._on_records("joined", len(found))
        return found

    def _joined_held(self, held: _Held) -> ReadableSpan:
        return self._joined(held.span, held.events) if held.events else held.span

    def _joined(self, span: ReadableSpan, events: list[Event]) -> ReadableSpan:
        attributes = dict(span.attributes or {})
        rewritten = join_events(attributes, [*span.events, *events], content=self._content)
        if rewritten is None:
            return span
        new_attributes, new_events = rewritten
        # A new span as the decoder builds them: the translated events are gone from it,
        # as in the normalisation.
        return ReadableSpan(
            name=span.name, context=span.context, parent=span.parent, resource=span.resource,
            attributes=new_attributes, events=tuple(new_events), links=span.links,
            kind=span.kind, status=span.status, start_time=span.start_time,
            end_time=span.end_time, instrumentation_scope=span.instrumentation_scope)

    # -- spans -----------------------------------------------------------------------------

    def admit(self, span: ReadableSpan) -> list[ReadableSpan]:
        """A decoded, normalised span in; the spans ready to go on now (maybe none)."""
        attributes = span.attributes or {}
        if not is_call(attributes):
            return [span]
        twin_key = self._held_twin(span)
        if twin_key is not None:
            twin = self._joined_held(self._unhold(twin_key))
            first, second = sorted((span, twin), key=_rank, reverse=True)
            return [self._release(_merge(first, second)),
                    self._release(_mark(second, first.context.span_id))]
        late = self._seen_twin(span)
        if late is not None:
            return [_mark(span, late.span_id)]
        if self._wait_s > 0 and self._waits(span):
            self._hold(span)
            return []
        return [self._release(span)]

    def _hold(self, span: ReadableSpan) -> None:
        self._arrivals += 1
        key = _key(span)
        held = _Held(span, self._clock() + self._wait_s, self._arrivals)
        self._held[key] = held
        self._held_traces.setdefault(key[0], set()).add(key)
        heapq.heappush(self._deadlines, (held.deadline, held.arrived, key))

    def _unhold(self, key: _Key) -> _Held:
        held = self._held.pop(key)
        keys = self._held_traces[key[0]]
        keys.discard(key)
        if not keys:
            del self._held_traces[key[0]]
        return held

    def _waits(self, span: ReadableSpan) -> bool:
        if _is_sdk(span):
            return True  # for its twin, which may come after it
        attributes = span.attributes or {}
        service = _service(span)
        return (self._content and _CONTENT.isdisjoint(attributes) and service is not None
                and service in self._services)

    def _held_twin(self, span: ReadableSpan) -> _Key | None:
        keys = self._held_traces.get(span.context.trace_id)
        if not keys:
            return None
        response_id = (span.attributes or {}).get(GEN_AI_RESPONSE_ID)
        for key in keys:
            held = self._held[key]
            theirs = (held.span.attributes or {}).get(GEN_AI_RESPONSE_ID)
            if (response_id is not None and response_id == theirs) or _related(span, held.span):
                return key
        return None

    def _seen_twin(self, span: ReadableSpan) -> _Seen | None:
        trace_id = span.context.trace_id
        response_id = (span.attributes or {}).get(GEN_AI_RESPONSE_ID)
        if isinstance(response_id, str):
            twin_id = self._seen_by_response.get((trace_id, response_id))
            if twin_id is not None and twin_id != span.context.span_id:
                return self._seen[(trace_id, twin_id)]
        parent = _parent(span)
        if parent is not None:
            seen = self._seen.get((trace_id, parent))
            if seen is not None and _related(span, seen):
                return seen
        child = self._seen_children.get((trace_id, span.context.span_id))
        if child is not None:  # a child that came first
            seen = self._seen.get((trace_id, child))
            if seen is not None and _related(span, seen):
                return seen
        return None

    def _release(self, span: ReadableSpan) -> ReadableSpan:
        attributes = span.attributes or {}
        if not is_call(attributes):
            return span
        key = _key(span)
        seen = self._seen[key] = _seen(span)
        response_id = attributes.get(GEN_AI_RESPONSE_ID)
        if isinstance(response_id, str):
            self._seen_by_response[(key[0], response_id)] = key[1]
        if seen.parent_id is not None:
            self._seen_children[(key[0], seen.parent_id)] = key[1]
        for index in (self._seen, self._seen_by_response, self._seen_children):
            while len(index) > _MAX_SEEN:
                index.popitem(last=False)
        return span

    # -- time ------------------------------------------------------------------------------

    def _current_deadlines(self) -> list[tuple[float, int, _Key]]:
        """The heap, its top entry current (stale ones, of spans gone on, popped)."""
        heap = self._deadlines
        while heap:
            deadline, _, key = heap[0]
            held = self._held.get(key)
            if held is not None and held.deadline == deadline:
                break
            heapq.heappop(heap)
        return heap

    def next_deadline(self) -> float | None:
        heap = self._current_deadlines()
        return heap[0][0] if heap else None

    def due(self) -> list[ReadableSpan]:
        """Held spans whose wait is over, in deadline order."""
        now = self._clock()
        over: list[_Held] = []
        heap = self._current_deadlines()
        while heap and heap[0][0] <= now:
            over.append(self._unhold(heapq.heappop(heap)[2]))
            heap = self._current_deadlines()
        if self._pending:
            self._expire_pending(now)
        return [self._release(self._joined_held(held)) for held in over]

    def drain(self) -> list[ReadableSpan]:
        """Every held span, now (shutdown)."""
        held = [self._unhold(key) for key in sorted(
            self._held, key=lambda key: self._held[key].arrived)]
        self._deadlines.clear()
        return [self._release(self._joined_held(item)) for item in held]
