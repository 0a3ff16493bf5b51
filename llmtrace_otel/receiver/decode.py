"""OTLP trace requests -> SDK ``ReadableSpan``s, with everything the sender sent kept.

Trace and span ids, parent (and whether it was remote), trace flags (sampled set) and state,
start and end times, kind, status, resource (with its schema URL), instrumentation scope
(name, version, schema URL, attributes), events and links (with their attributes) and the
``dropped_*_count`` fields all survive, so a span exported after our processors is the
sender's span plus our enrichment. Attribute values keep their OTLP type, including the
ones the tracing API cannot produce (bytes, maps, mixed arrays, empty values): the SDK's
attribute containers and the OTLP encoder accept them (``AnyValue``).

:func:`screen` runs first, on the receiving thread: it removes spans whose ids are
malformed, so the sender gets a partial-success answer naming them, and counts the rest.
:func:`decode_spans` runs later, on the receiver's worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as SDKScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

__all__ = [
    "Joiner",
    "Normaliser",
    "Screened",
    "any_value",
    "attributes_of",
    "decode_spans",
    "scope_of",
    "screen",
]

class Normaliser(Protocol):
    """Rewrites (attributes, events) of one span before it is built, or returns None to
    keep them; ``start_ns`` is the span's start time (times of events are relative to it)."""

    def __call__(self, attributes: dict[str, Any], events: list[Event], *, start_ns: int
                 ) -> tuple[dict[str, Any], list[Event]] | None: ...


# proto SpanKind (UNSPECIFIED=0, INTERNAL=1, SERVER, CLIENT, PRODUCER, CONSUMER) -> SDK.
_KINDS: dict[int, SpanKind] = {
    0: SpanKind.INTERNAL,
    1: SpanKind.INTERNAL,
    2: SpanKind.SERVER,
    3: SpanKind.CLIENT,
    4: SpanKind.PRODUCER,
    5: SpanKind.CONSUMER,
}
_STATUS: dict[int, StatusCode] = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}
# SpanFlags: the low byte is the W3C trace flags; bit 8 says bit 9 ("is remote") is known.
# A span that was exported was recorded, so it is marked sampled whatever the low byte says
# (several SDKs, the Python one included, do not send trace flags; the SDK's span
# processors skip unsampled spans).
_SAMPLED = TraceFlags.SAMPLED
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value", "bytes_value"})
_STATUS_OK = Status(StatusCode.OK)
_STATUS_UNSET = Status(StatusCode.UNSET)
#: At most this many reasons go into a partial-success error_message.
_MAX_PROBLEMS = 5


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as a Python attribute value (arrays as tuples, kvlists as dicts)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(any_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_of(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:  # scalars inline: this loop runs for every attribute received
        value = pair.value
        kind = value.WhichOneof("value")
        if kind in _SCALARS:
            out[pair.key] = getattr(value, kind)
        else:
            out[pair.key] = any_value(value)
    return out


def _attributes(values: dict[str, Any], dropped: int) -> Any:
    """A plain dict is enough unless the sender reported drops, which must be kept."""
    if not dropped:
        return values
    bounded = BoundedAttributes(maxlen=None, attributes=values, immutable=True)
    bounded.dropped = dropped
    return bounded


def _bounded(items: Sequence[Any], dropped: int) -> Sequence[Any]:
    """A tuple is enough unless the sender reported drops (a BoundedList carries them)."""
    if not dropped:
        return tuple(items)
    bounded = BoundedList.from_seq(None, items)
    bounded.dropped = dropped
    return bounded


def _id_problem(span: trace_pb2.Span) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return f"trace_id must be 16 bytes and not all zero, got {len(span.trace_id)} bytes"
    if len(span.span_id) != 8 or not any(span.span_id):
        return f"span_id must be 8 bytes and not all zero, got {len(span.span_id)} bytes"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"parent_span_id must be empty or 8 bytes, got {len(span.parent_span_id)} bytes"
    for link in span.links:
        if len(link.trace_id) != 16 or len(link.span_id) != 8:
            return "a link's trace_id/span_id must be 16/8 bytes"
    return None


@dataclass(frozen=True, slots=True)
class Screened:
    """What :func:`screen` found in one request."""

    accepted: int
    rejected: int
    problems: tuple[str, ...] = ()

    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = self.rejected - len(self.problems)
        tail = f"; and {more} more" if more > 0 else ""
        return f"{self.rejected} span(s) rejected: " + "; ".join(self.problems) + tail


def screen(request: ExportTraceServiceRequest) -> Screened:
    """Count the spans of ``request`` and remove, in place, those with malformed ids."""
    accepted = rejected = 0
    problems: list[str] = []
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            spans = scope_spans.spans
            bad: list[int] = []
            for index, span in enumerate(spans):
                problem = _id_problem(span)
                if problem is None:
                    continue
                bad.append(index)
                if len(problems) < _MAX_PROBLEMS:
                    problems.append(f"span {span.name!r}: {problem}")
            for index in reversed(bad):
                del spans[index]
            accepted += len(spans)
            rejected += len(bad)
    return Screened(accepted, rejected, tuple(problems))


def _trace_state(text: str) -> TraceState | None:
    return TraceState.from_header([text]) if text else None


def _remote(flags: int) -> bool:
    return bool(flags & _HAS_IS_REMOTE and flags & _IS_REMOTE)


def _link(link: trace_pb2.Span.Link) -> Link:
    context = SpanContext(
        int.from_bytes(link.trace_id, "big"),
        int.from_bytes(link.span_id, "big"),
        is_remote=_remote(link.flags),
        trace_flags=TraceFlags(link.flags & 0xFF),
        trace_state=_trace_state(link.trace_state),
    )
    return Link(context, _attributes(attributes_of(link.attributes),
                                     link.dropped_attributes_count))


def _event(event: trace_pb2.Span.Event) -> Event:
    return Event(
        event.name,
        _attributes(attributes_of(event.attributes), event.dropped_attributes_count),
        event.time_unix_nano,
    )


def scope_of(scope: InstrumentationScope, schema_url: str) -> SDKScope:
    """An OTLP instrumentation scope as the SDK's (empty version and schema URL: None)."""
    return SDKScope(
        scope.name,
        scope.version or None,
        schema_url or None,
        attributes_of(scope.attributes) if scope.attributes else None,
    )


#: The log events (as span events) waiting for a span: (trace id, span id, its attributes).
Joiner = Callable[[int, int, Mapping[str, Any]], list[Event]]


def _span(
    span: trace_pb2.Span, resource: Resource, scope: SDKScope, normalise: Normaliser | None,
    join: Joiner | None = None,
) -> ReadableSpan:
    trace_id = int.from_bytes(span.trace_id, "big")
    flags = TraceFlags((span.flags & 0xFF) | _SAMPLED)
    trace_state = _trace_state(span.trace_state)
    context = SpanContext(trace_id, int.from_bytes(span.span_id, "big"), is_remote=False,
                          trace_flags=flags, trace_state=trace_state)
    parent = None
    if span.parent_span_id:
        parent = SpanContext(trace_id, int.from_bytes(span.parent_span_id, "big"),
                             is_remote=_remote(span.flags), trace_flags=flags,
                             trace_state=trace_state)
    attributes = attributes_of(span.attributes)
    events = [_event(event) for event in span.events] if span.events else []
    if join is not None:
        joined = join(trace_id, context.span_id, attributes)
        if joined:
            events.extend(joined)
    if normalise is not None:
        rewritten = normalise(attributes, events, start_ns=span.start_time_unix_nano)
        if rewritten is not None:
            attributes, events = rewritten
    status = span.status
    code = _STATUS.get(status.code, StatusCode.UNSET)
    if code is StatusCode.ERROR:  # the SDK keeps a description only with ERROR
        sdk_status = Status(code, status.message or None)
    else:
        sdk_status = _STATUS_OK if code is StatusCode.OK else _STATUS_UNSET
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=_attributes(attributes, span.dropped_attributes_count),
        events=_bounded(events, span.dropped_events_count),
        links=_bounded([_link(link) for link in span.links] if span.links else (),
                       span.dropped_links_count),
        kind=_KINDS.get(span.kind, SpanKind.INTERNAL),
        status=sdk_status,
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano,
        instrumentation_scope=scope,
    )


def decode_spans(
    request: ExportTraceServiceRequest, normalise: Normaliser | None = None,
    join: Joiner | None = None,
) -> list[ReadableSpan]:
    """Every span of a screened request as a ReadableSpan (one Resource/scope per group).

    ``join`` gives the events that arrived apart (OTLP log records) for each span; they are
    added before ``normalise`` reads the span.
    """
    out: list[ReadableSpan] = []
    for resource_spans in request.resource_spans:
        resource = Resource(attributes_of(resource_spans.resource.attributes),
                            resource_spans.schema_url or None)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_of(scope_spans.scope, scope_spans.schema_url)
            out.extend(_span(span, resource, scope, normalise, join)
                       for span in scope_spans.spans)
    return out
