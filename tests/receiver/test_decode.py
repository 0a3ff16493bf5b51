"""decode: OTLP protobuf -> ReadableSpan keeps everything; screen: malformed ids rejected.

The strongest check is a round trip through the SDK's own OTLP encoder: decoding a request
and encoding the result again gives back the request, field for field.
"""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.trace import SpanKind

from llmtrace_otel.receiver.decode import decode_spans, screen

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
HAS_IS_REMOTE, IS_REMOTE = 0x100, 0x200


def kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def s(text: str) -> AnyValue:
    return AnyValue(string_value=text)


def rich_request() -> ExportTraceServiceRequest:
    """Every field the receiver must keep, including AnyValue kinds the API cannot make."""
    attributes = [
        kv("gen_ai.operation.name", s("chat")),
        kv("gen_ai.provider.name", s("openai")),
        kv("count", AnyValue(int_value=-7)),
        kv("ratio", AnyValue(double_value=0.25)),
        kv("ok", AnyValue(bool_value=True)),
        kv("raw", AnyValue(bytes_value=b"\x00\xff")),
        kv("nothing", AnyValue()),
        kv("mixed", AnyValue(array_value=ArrayValue(values=[s("a"), AnyValue(int_value=1)]))),
        kv("nested", AnyValue(kvlist_value=KeyValueList(values=[
            kv("inner", AnyValue(array_value=ArrayValue(values=[s("x")])))]))),
    ]
    parent = trace_pb2.Span(
        trace_id=TRACE, span_id=bytes.fromhex("b7ad6b7169203331"), name="parent",
        kind=trace_pb2.Span.SPAN_KIND_SERVER, start_time_unix_nano=1, end_time_unix_nano=9,
        flags=HAS_IS_REMOTE, status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_OK),
    )
    child = trace_pb2.Span(
        trace_id=TRACE, span_id=bytes.fromhex("00f067aa0ba902b7"),
        parent_span_id=bytes.fromhex("b7ad6b7169203331"), trace_state="rojo=00f067aa0ba902b7",
        name="chat gpt-4o", kind=trace_pb2.Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1752573600000000001, end_time_unix_nano=1752573600000000002,
        flags=HAS_IS_REMOTE | IS_REMOTE, attributes=attributes, dropped_attributes_count=3,
        events=[trace_pb2.Span.Event(time_unix_nano=5, name="exception",
                                     attributes=[kv("exception.type", s("E"))],
                                     dropped_attributes_count=1)],
        dropped_events_count=2,
        links=[trace_pb2.Span.Link(trace_id=bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736"),
                                   span_id=bytes.fromhex("00f067aa0ba902b8"),
                                   trace_state="congo=t61rcWkgMzE",
                                   attributes=[kv("why", s("batch"))],
                                   dropped_attributes_count=4, flags=HAS_IS_REMOTE | IS_REMOTE)],
        dropped_links_count=5,
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="boom"),
    )
    return ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
        resource=Resource(attributes=[kv("service.name", s("app"))]),
        schema_url="https://opentelemetry.io/schemas/1.26.0",
        scope_spans=[trace_pb2.ScopeSpans(
            scope=InstrumentationScope(name="my.lib", version="1.2.3",
                                       attributes=[kv("scope.attr", s("v"))]),
            schema_url="https://opentelemetry.io/schemas/1.27.0",
            spans=[parent, child],
        )],
    )])


def test_round_trip_through_the_sdk_encoder_is_lossless() -> None:
    request = rich_request()
    spans = decode_spans(request)
    assert spans[1].links[0].context.trace_state.to_header() == "congo=t61rcWkgMzE"
    again = encode_spans(spans)
    # The one field the SDK's encoder (1.45) does not write: a link's trace_state.
    request.resource_spans[0].scope_spans[0].spans[1].links[0].ClearField("trace_state")
    assert again == request


def test_decoded_span_fields() -> None:
    parent, child = decode_spans(rich_request())
    assert child.kind is SpanKind.CLIENT and parent.kind is SpanKind.SERVER
    assert child.parent is not None and child.parent.is_remote
    assert child.context.trace_flags.sampled  # exported spans count as sampled
    assert child.context.trace_state.to_header() == "rojo=00f067aa0ba902b7"
    assert (child.dropped_attributes, child.dropped_events, child.dropped_links) == (3, 2, 5)
    assert child.events[0].dropped_attributes == 1
    assert child.links[0].dropped_attributes == 4 and child.links[0].context.is_remote
    assert child.status.description == "boom"
    a = dict(child.attributes or {})
    assert a["raw"] == b"\x00\xff" and a["nothing"] is None
    assert a["mixed"] == ("a", 1) and a["nested"] == {"inner": ("x",)}
    assert child.resource is parent.resource  # one Resource per ResourceSpans
    assert child.instrumentation_scope is parent.instrumentation_scope


def test_normaliser_rewrites_before_the_span_is_built() -> None:
    seen = []

    def normalise(attributes: dict, events: list, *, start_ns: int) -> tuple[dict, list] | None:
        seen.append(dict(attributes))
        assert start_ns > 0  # the span's start, for times carried by events
        if "gen_ai.operation.name" not in attributes:
            return None
        return {**attributes, "added": 1}, []

    parent, child = decode_spans(rich_request(), normalise)
    assert len(seen) == 2
    assert dict(child.attributes or {})["added"] == 1 and list(child.events) == []
    assert "added" not in dict(parent.attributes or {})
    assert child.dropped_attributes == 3  # the sender's drop counts stay


def test_screen_removes_malformed_spans_and_explains() -> None:
    request = rich_request()
    spans = request.resource_spans[0].scope_spans[0].spans
    spans.add(trace_id=b"\x00" * 16, span_id=b"\x01" * 8, name="zero trace")
    spans.add(trace_id=TRACE, span_id=b"\x01" * 4, name="short span id")
    spans.add(trace_id=TRACE, span_id=b"\x01" * 8, parent_span_id=b"\x02", name="bad parent")
    bad_link = spans.add(trace_id=TRACE, span_id=b"\x03" * 8, name="bad link")
    bad_link.links.add(trace_id=b"\x01", span_id=b"\x02" * 8)
    screened = screen(request)
    assert (screened.accepted, screened.rejected) == (2, 4)
    assert [span.name for span in spans] == ["parent", "chat gpt-4o"]
    message = screened.error_message()
    assert message.startswith("4 span(s) rejected: ")
    for name in ("zero trace", "short span id", "bad parent", "bad link"):
        assert repr(name) in message
    assert "trace_id must be 16 bytes and not all zero" in message


def test_screen_caps_the_message() -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for index in range(8):
        spans.add(trace_id=b"", span_id=b"", name=f"s{index}")
    screened = screen(request)
    assert screened.rejected == 8 and screened.accepted == 0
    assert screened.error_message().endswith("; and 3 more")
