"""Spans as bytes between a relay worker and the telemetry process (``span_wire``).

Decoded spans are compared with the originals through the OTLP encoder an exporter uses
(``encode_spans``), so every field an exporter reads is checked without re-reading our own
code; what OTLP does not carry (trace flags, trace states of parents and links) is compared
on the SDK objects themselves.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from llmtrace_otel.receiver.decode import decode_spans
from llmtrace_otel.supervisor.span_wire import SpanWireError, decode_batch, encode_batch

REMOTE_PARENT = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331,
                            is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED),
                            trace_state=TraceState([("vendor", "parent-state")]))
LINKED = SpanContext(0x5B8EFFF798038103D269B633813FC60C, 0xEEE19B7EC3C1B174, is_remote=True,
                     trace_flags=TraceFlags(0), trace_state=TraceState([("other", "link")]))


def _provider(resource: Resource) -> tuple[TracerProvider, InMemorySpanExporter]:
    # small limits: the SDK drops attributes, events, links and their attributes for real
    limits = SpanLimits(max_span_attributes=4, max_events=2, max_links=1,
                        max_event_attributes=1, max_link_attributes=1)
    provider = TracerProvider(resource=resource, span_limits=limits)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def _finished_spans() -> tuple[Resource, list[ReadableSpan]]:
    resource = Resource.create({"service.name": "relay-worker"}, "https://schema/worker")
    provider, memory = _provider(resource)
    tracer = provider.get_tracer("llmtrace.test", "1.2.3", "https://opentelemetry.io/s/1.27",
                                 attributes={"scope.attr": "kept", "scope.n": 3})
    parent = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE_PARENT))
    with tracer.start_as_current_span(
        "chat gpt-4o-mini", context=parent, kind=SpanKind.CLIENT, start_time=1_000,
        links=[Link(REMOTE_PARENT, {"dropped": "the SDK keeps the latest link"}),
               Link(LINKED, {"link.dropped": 1, "link.kept": 2})],
        attributes={"gen_ai.request.model": "gpt-4o-mini", "stops": ("a", "b"),
                    "ratios": (0.5, 1.5), "flags": (True, False), "n": 7},
        end_on_exit=False,
    ) as span:
        span.set_attribute("over.limit.1", "x")
        span.set_attribute("over.limit.2", "y")
        span.add_event("first, dropped: the SDK keeps the latest", timestamp=1_400)
        span.add_event("second", {"k": (1, 2)}, timestamp=1_500)
        span.add_event("gen_ai.content.prompt", {"dropped": 1, "gen_ai.prompt": "hi"},
                       timestamp=1_600)
        span.set_status(Status(StatusCode.ERROR, "upstream said 500"))
        with tracer.start_as_current_span("child", kind=SpanKind.INTERNAL) as child:
            child.set_status(Status(StatusCode.OK))
        span.end(end_time=2_000)
    return resource, list(memory.get_finished_spans())


def _otlp(spans: list[ReadableSpan]) -> dict[str, Any]:
    return MessageToDict(encode_spans(spans))


def test_the_spans_under_test_have_every_field_set() -> None:
    """The round-trip tests below only prove something if the originals carry it all."""
    _, (child, span) = _finished_spans()
    assert (span.dropped_attributes, span.dropped_events, span.dropped_links) == (3, 1, 1)
    assert span.events[1].dropped_attributes == 1
    assert span.links[0].dropped_attributes == 1
    assert span.instrumentation_scope is not None
    assert dict(span.instrumentation_scope.attributes or {}) == {"scope.attr": "kept",
                                                                 "scope.n": 3}
    assert span.parent == REMOTE_PARENT and child.parent is not None
    assert span.context.trace_flags.sampled and not child.parent.is_remote


def test_round_trip_keeps_every_field_the_otlp_encoder_reads() -> None:
    resource, spans = _finished_spans()
    decoded = decode_batch(encode_batch(spans, local=resource), resource)
    assert _otlp(decoded) == _otlp(spans)


def test_round_trip_keeps_trace_flags_and_trace_states() -> None:
    resource, spans = _finished_spans()
    decoded = decode_batch(encode_batch(spans, local=resource), resource)
    for original, copy in zip(spans, decoded, strict=True):
        # SpanContext equality: ids, is_remote, trace flags and trace state
        assert copy.context == original.context
        assert copy.parent == original.parent
        assert [link.context for link in copy.links] == [
            link.context for link in original.links]
    assert decoded[1].links[0].context.trace_state == TraceState([("other", "link")])


def test_own_spans_take_the_receivers_resource() -> None:
    resource, spans = _finished_spans()
    telemetry = Resource.create({"service.name": "llmtrace-otel"})
    decoded = decode_batch(encode_batch(spans, local=resource), telemetry)
    assert all(span.resource is telemetry for span in decoded)


def test_relayed_spans_keep_their_senders_resource() -> None:
    """The collector's workers relay spans from many services: each keeps its own."""
    own, spans = _finished_spans()
    other_resource = Resource({"service.name": "batch-app", "k": "v"}, "https://schema/app")
    other, memory = _provider(other_resource)
    with other.get_tracer("app").start_as_current_span("relayed"):
        pass
    relayed = list(memory.get_finished_spans())
    telemetry = Resource.create({"service.name": "llmtrace-otel"})
    decoded = decode_batch(encode_batch([*spans, *relayed], local=own), telemetry)
    assert [span.resource for span in decoded[:2]] == [telemetry, telemetry]
    assert decoded[2].resource.attributes == other_resource.attributes
    assert decoded[2].resource.schema_url == "https://schema/app"
    assert _otlp(decoded[2:]) == _otlp(relayed)
    # without a local resource every span travels with its own
    everything = decode_batch(encode_batch([*spans, *relayed]), telemetry)
    assert _otlp(everything) == _otlp([*spans, *relayed])


def test_spans_the_collector_received_survive_the_wire() -> None:
    """OTLP in (receiver decode: values the tracing API cannot make), wire, OTLP out."""
    _, spans = _finished_spans()
    request = encode_spans(spans)
    attributes = request.resource_spans[0].scope_spans[0].spans[0].attributes
    attributes.append(KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\xff")))
    attributes.append(KeyValue(key="map", value=AnyValue(kvlist_value=KeyValueList(
        values=[KeyValue(key="inner", value=AnyValue(int_value=1))]))))
    received = decode_spans(request)
    decoded = decode_batch(encode_batch(received), Resource.create({}))
    assert _otlp(decoded) == _otlp(received)
    assert decoded[0].attributes is not None and decoded[0].attributes["raw"] == b"\x00\xff"


class _Harmless:
    def __init__(self, value: int) -> None:
        self.value = value


class _RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def test_a_batch_naming_a_function_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    crafted = pickle.dumps([_RunsACommand(marker)], protocol=5)
    with pytest.raises(SpanWireError, match=r"plain values only, not (posix|os)\.system"):
        decode_batch(crafted, Resource.create({}))
    assert not marker.exists()
    pickle.loads(crafted)  # the same bytes do run a command when unpickled without care
    assert marker.exists()


def test_a_batch_naming_a_harmless_class_is_refused_too() -> None:
    crafted = pickle.dumps([_Harmless(1)], protocol=5)
    with pytest.raises(SpanWireError, match="_Harmless"):
        decode_batch(crafted, Resource.create({}))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x05garbage that is no pickle", "not a span batch"),
        (b"", "not a span batch"),
        (pickle.dumps(42, protocol=5), "not a span batch"),
        (pickle.dumps([("a record",)], protocol=5), "not a span batch"),
    ],
    ids=["garbage", "empty", "a number", "no tables"],
)
def test_bytes_that_are_no_batch_are_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(SpanWireError, match=message):
        decode_batch(data, Resource.create({}))


def test_a_truncated_batch_is_a_clear_error() -> None:
    resource, spans = _finished_spans()
    data = encode_batch(spans, local=resource)
    for cut in (1, len(data) // 2, len(data) - 1):
        with pytest.raises(SpanWireError, match="not a span batch"):
            decode_batch(data[:cut], resource)


def test_a_batch_of_the_wrong_shape_is_a_clear_error() -> None:
    resource, spans = _finished_spans()
    scopes, resources, records = pickle.loads(encode_batch(spans))  # builtins only
    wrong = [
        ([], resources, records),  # records name a scope the batch does not hold
        (scopes, [], records),  # ... and a resource
        (scopes, resources, [records[0][:-1]]),  # a record one value short
        (scopes, resources, [(*records[0][:3], 99, *records[0][4:])]),  # no such span kind
        (scopes, resources, [records[0], "not a record"]),
    ]
    for batch in wrong:
        with pytest.raises(SpanWireError, match="not a span batch"):
            decode_batch(pickle.dumps(batch, protocol=5), resource)
