"""Finished spans as bytes between our own processes: a relay worker to the telemetry process.

A span travels as a tuple of plain values (ids, times, name, kind, status, attributes,
events, links), a batch of them pickled at once with the distinct instrumentation scopes and
resources of the batch beside them: ``pickle`` of builtins is C code on both ends, several
times cheaper than OTLP protobuf built from Python objects. Only builtin types are ever
sent, and :func:`decode_batch` refuses anything else (its unpickler resolves no global), so
the channel cannot carry code even if something else wrote to it.

Resources: the spans a worker made itself (its tracer provider's, ``local``) travel without
theirs and take the receiving side's, which is the same service (the process that exports
them); spans a worker only relays (the collector's receivers) keep the resource their
sender gave them, as in one process.

Span attributes that are not plain values (the SDK keeps them validated, so they are str,
bool, int, float or tuples of those; the receiver adds bytes and mappings) travel as they
are; the counts the SDK dropped at its limits (of the span, and of each event and link)
travel too.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

__all__ = ["SpanWireError", "decode_batch", "encode_batch", "span_record"]

_PROTOCOL = 5
_KINDS = tuple(SpanKind)
_CODES = tuple(StatusCode)
#: A span as it travels (see :func:`span_record`).
SpanRecord = tuple[Any, ...]


class SpanWireError(ValueError):
    """Bytes that are not a batch of spans as :func:`encode_batch` writes them."""


def _context(context: SpanContext | None) -> tuple[int, int, int, bool, str] | None:
    if context is None:
        return None
    return (
        context.trace_id,
        context.span_id,
        int(context.trace_flags),
        context.is_remote,
        context.trace_state.to_header() if context.trace_state else "",
    )


def span_record(span: ReadableSpan, scope: int | None, resource: int | None) -> SpanRecord:
    """The plain-value form of one finished span; ``scope`` and ``resource`` index the
    batch's tables (None: no scope; the receiver's resource)."""
    return (
        span.name,
        _context(span.context),
        _context(span.parent),
        _KINDS.index(span.kind),
        span.start_time,
        span.end_time,
        _CODES.index(span.status.status_code),
        span.status.description,
        dict(span.attributes or {}),
        [(event.name, dict(event.attributes or {}), event.timestamp, event.dropped_attributes)
         for event in span.events],
        [(_context(link.context), dict(link.attributes or {}), link.dropped_attributes)
         for link in span.links],
        scope,
        resource,
        (span.dropped_attributes, span.dropped_events, span.dropped_links),
    )


class _Table:
    """The distinct SDK objects (scopes, resources) of one batch, each sent once as a row;
    spans name theirs by index."""

    def __init__(self, row: Callable[[Any], tuple[Any, ...]]) -> None:
        self._row = row
        self._indexes: dict[int, int] = {}  # id() of the object: it lives as long as the batch
        self.rows: list[tuple[Any, ...]] = []

    def index(self, item: Any) -> int:
        found = self._indexes.get(id(item))
        if found is None:
            found = self._indexes[id(item)] = len(self.rows)
            self.rows.append(self._row(item))
        return found


def _scope_row(scope: InstrumentationScope) -> tuple[Any, ...]:
    return scope.name, scope.version, scope.schema_url, dict(scope.attributes or {})


def _resource_row(resource: Resource) -> tuple[Any, ...]:
    return dict(resource.attributes), resource.schema_url


def encode_batch(spans: Iterable[ReadableSpan], *, local: Resource | None = None) -> bytes:
    """``spans`` as one batch. Those whose resource is ``local`` (the sending process's
    own) take the receiver's; the others carry theirs."""
    scopes, resources = _Table(_scope_row), _Table(_resource_row)
    records = [
        span_record(
            span,
            None if span.instrumentation_scope is None else scopes.index(
                span.instrumentation_scope),
            None if span.resource is local else resources.index(span.resource),
        )
        for span in spans
    ]
    return pickle.dumps((scopes.rows, resources.rows, records), protocol=_PROTOCOL)


class _PlainUnpickler(pickle.Unpickler):
    """Builtin values only: any reference to a class or function is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise SpanWireError(f"a span batch may hold plain values only, not {module}.{name}")


def _span_context(values: Sequence[Any] | None) -> SpanContext | None:
    if values is None:
        return None
    trace_id, span_id, flags, remote, state = values
    return SpanContext(
        trace_id,
        span_id,
        is_remote=remote,
        trace_flags=TraceFlags(flags),
        trace_state=TraceState.from_header([state]) if state else None,
    )


def _attributes(values: dict[str, Any], dropped: int = 0) -> Any:
    if not dropped:
        return values
    bounded = BoundedAttributes(maxlen=None, attributes=values, immutable=True)
    bounded.dropped = dropped
    return bounded


def _sequence(items: tuple[Any, ...], dropped: int) -> Any:
    if not dropped:
        return items
    bounded = BoundedList.from_seq(None, items)
    bounded.dropped = dropped
    return bounded


def decode_batch(data: bytes, resource: Resource) -> list[ReadableSpan]:
    """The spans of one batch; those their sender made take ``resource``. Raises
    :class:`SpanWireError`."""
    try:
        scope_table, resource_table, records = _PlainUnpickler(io.BytesIO(data)).load()
    except SpanWireError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed batch is one kind of error
        raise SpanWireError(f"not a span batch: {exc}") from None
    spans = []
    try:
        scopes = [InstrumentationScope(name, version, schema_url, attributes or None)
                  for name, version, schema_url, attributes in scope_table]
        resources = [Resource(attributes, schema_url) for attributes, schema_url in resource_table]
        for (
            name,
            context,
            parent,
            kind,
            start,
            end,
            code,
            description,
            attributes,
            events,
            links,
            scope,
            carried,
            (dropped_attributes, dropped_events, dropped_links),
        ) in records:
            spans.append(
                ReadableSpan(
                    name=name,
                    context=_span_context(context),
                    parent=_span_context(parent),
                    resource=resource if carried is None else resources[carried],
                    attributes=_attributes(attributes, dropped_attributes),
                    events=_sequence(
                        tuple(Event(n, _attributes(a, d), t) for n, a, t, d in events),
                        dropped_events,
                    ),
                    links=_sequence(
                        tuple(
                            Link(_span_context(c), _attributes(a, d))  # type: ignore[arg-type]
                            for c, a, d in links
                        ),
                        dropped_links,
                    ),
                    kind=_KINDS[kind],
                    status=Status(_CODES[code], description),
                    start_time=start,
                    end_time=end,
                    instrumentation_scope=None if scope is None else scopes[scope],
                )
            )
    except (TypeError, ValueError, IndexError, AttributeError) as exc:
        raise SpanWireError(f"not a span batch: {exc}") from None
    return spans
