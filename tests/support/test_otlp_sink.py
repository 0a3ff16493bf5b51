"""OTLPSink against the real OTel SDK exporters (gRPC and HTTP/protobuf), plus raw HTTP."""

from __future__ import annotations

import gzip
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence

import grpc
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_STOP_SEQUENCES,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_TOKEN_TYPE,
    GEN_AI_USAGE_INPUT_TOKENS,
)
from opentelemetry.semconv._incubating.metrics.gen_ai_metrics import GEN_AI_CLIENT_TOKEN_USAGE
from opentelemetry.trace import SpanKind, StatusCode

from tests.support.otlp_sink import OTLPSink, Transport

TRANSPORTS: tuple[Transport, ...] = ("grpc", "http")
REQUESTS_COUNTER = "llmtrace.requests"
FINDING_EVENT = "llmtrace.security.finding"


@pytest.fixture
def sink() -> Iterator[OTLPSink]:
    with OTLPSink() as running:
        yield running


def _span_exporter(sink: OTLPSink, transport: Transport) -> SpanExporter:
    if transport == "grpc":
        return GrpcSpanExporter(endpoint=sink.grpc_endpoint, insecure=True, timeout=5)
    return HttpSpanExporter(
        endpoint=f"{sink.http_endpoint}/v1/traces", timeout=5, compression=HttpCompression.Gzip
    )


def _metric_exporter(sink: OTLPSink, transport: Transport) -> MetricExporter:
    if transport == "grpc":
        return GrpcMetricExporter(endpoint=sink.grpc_endpoint, insecure=True, timeout=5)
    return HttpMetricExporter(endpoint=f"{sink.http_endpoint}/v1/metrics", timeout=5)


def _finished_spans(count: int = 1) -> Sequence[ReadableSpan]:
    """ReadableSpans made by a real TracerProvider, to hand to an exporter directly."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("otlp-sink-test")
    for index in range(count):
        with tracer.start_as_current_span(f"chat model-{index}", kind=SpanKind.CLIENT):
            pass
    provider.shutdown()
    return memory.get_finished_spans()


def _accepted_pattern(sink: OTLPSink) -> list[bool]:
    return [call.accepted for call in sink.export_calls()]


# -- spans -------------------------------------------------------------------------------------


@pytest.mark.parametrize("processor", ["simple", "batch"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_genai_span_arrives_decoded(sink: OTLPSink, transport: Transport, processor: str) -> None:
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "llmtrace-test"}))
    exporter = _span_exporter(sink, transport)
    span_processor = (
        SimpleSpanProcessor(exporter)
        if processor == "simple"
        else BatchSpanProcessor(exporter, schedule_delay_millis=50)
    )
    provider.add_span_processor(span_processor)
    tracer = provider.get_tracer("llmtrace.proxy")
    try:
        with (
            tracer.start_as_current_span("proxy request") as parent,
            tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span,
        ):
            span.set_attribute(GEN_AI_OPERATION_NAME, "chat")
            span.set_attribute(GEN_AI_PROVIDER_NAME, "openai")
            span.set_attribute(GEN_AI_REQUEST_MODEL, "gpt-4o")
            span.set_attribute(GEN_AI_USAGE_INPUT_TOKENS, 12)
            span.set_attribute(GEN_AI_REQUEST_TEMPERATURE, 0.25)
            span.set_attribute(GEN_AI_REQUEST_STREAM, True)
            span.set_attribute(GEN_AI_REQUEST_STOP_SEQUENCES, ("\n\n", "END"))
            span.add_event(FINDING_EVENT, {"llmtrace.finding.score": 0.9, "rule": "pii"})
            span.set_status(StatusCode.ERROR, "upstream 500")
        provider.force_flush()
        spans = sink.wait_for_spans(2)
    finally:
        provider.shutdown()

    by_name = {span.name: span for span in spans}
    assert set(by_name) == {"proxy request", "chat gpt-4o"}
    chat = by_name["chat gpt-4o"]
    assert chat.kind == "CLIENT"
    assert chat.transport == transport
    assert chat.attributes == {
        GEN_AI_OPERATION_NAME: "chat",
        GEN_AI_PROVIDER_NAME: "openai",
        GEN_AI_REQUEST_MODEL: "gpt-4o",
        GEN_AI_USAGE_INPUT_TOKENS: 12,
        GEN_AI_REQUEST_TEMPERATURE: 0.25,
        GEN_AI_REQUEST_STREAM: True,
        GEN_AI_REQUEST_STOP_SEQUENCES: ["\n\n", "END"],
    }
    assert isinstance(chat.attributes[GEN_AI_USAGE_INPUT_TOKENS], int)
    assert chat.events == ((FINDING_EVENT, {"llmtrace.finding.score": 0.9, "rule": "pii"}),)
    assert (chat.status_code, chat.status_message) == ("ERROR", "upstream 500")
    assert chat.scope_name == "llmtrace.proxy"
    assert chat.resource[SERVICE_NAME] == "llmtrace-test"
    assert chat.trace_id_hex == f"{parent.get_span_context().trace_id:032x}"
    assert chat.span_id_hex == f"{span.get_span_context().span_id:016x}"
    assert chat.parent_span_id_hex == f"{parent.get_span_context().span_id:016x}"
    assert by_name["proxy request"].parent_span_id_hex == ""
    assert by_name["proxy request"].kind == "INTERNAL"
    assert 0 < chat.start_time_unix_nano <= chat.end_time_unix_nano


def test_both_transports_feed_one_sink(sink: OTLPSink) -> None:
    for transport in TRANSPORTS:
        exporter = _span_exporter(sink, transport)
        assert exporter.export(_finished_spans(2)) is SpanExportResult.SUCCESS
        exporter.shutdown()
    spans = sink.wait_for_spans(4)
    assert sorted(span.transport for span in spans) == ["grpc", "grpc", "http", "http"]
    assert [(call.transport, call.item_count) for call in sink.export_calls()] == [
        ("grpc", 2),
        ("http", 2),
    ]


def test_concurrent_exports_are_all_recorded(sink: OTLPSink) -> None:
    spans = _finished_spans(1)
    errors: list[BaseException] = []

    def export_many(transport: Transport) -> None:
        exporter = _span_exporter(sink, transport)
        try:
            for _ in range(10):
                assert exporter.export(spans) is SpanExportResult.SUCCESS
        except BaseException as error:  # surfaced in the main thread below
            errors.append(error)
        finally:
            exporter.shutdown()

    threads = [
        threading.Thread(target=export_many, args=(TRANSPORTS[index % 2],)) for index in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(sink.wait_for_spans(60)) == 60
    assert len(sink.export_calls()) == 60


# -- metrics -----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metrics_arrive(sink: OTLPSink, transport: Transport) -> None:
    reader = PeriodicExportingMetricReader(
        _metric_exporter(sink, transport), export_interval_millis=60_000
    )
    provider = MeterProvider(
        metric_readers=[reader], resource=Resource.create({SERVICE_NAME: "llmtrace-test"})
    )
    meter = provider.get_meter("llmtrace.proxy")
    usage = meter.create_histogram(GEN_AI_CLIENT_TOKEN_USAGE, unit="{token}")
    requests = meter.create_counter(REQUESTS_COUNTER)
    try:
        usage.record(12, {GEN_AI_TOKEN_TYPE: "input", GEN_AI_REQUEST_MODEL: "gpt-4o"})
        usage.record(30, {GEN_AI_TOKEN_TYPE: "input", GEN_AI_REQUEST_MODEL: "gpt-4o"})
        requests.add(3, {GEN_AI_REQUEST_MODEL: "gpt-4o"})
        assert provider.force_flush(timeout_millis=5_000)
        names = sink.wait_for_metric_names({GEN_AI_CLIENT_TOKEN_USAGE, REQUESTS_COUNTER})
    finally:
        provider.shutdown()

    assert {GEN_AI_CLIENT_TOKEN_USAGE, REQUESTS_COUNTER} <= names
    by_name = {metric.name: metric for metric in sink.metrics()}
    usage_metric = by_name[GEN_AI_CLIENT_TOKEN_USAGE]
    assert (usage_metric.data_type, usage_metric.unit) == ("histogram", "{token}")
    assert usage_metric.transport == transport
    assert usage_metric.resource[SERVICE_NAME] == "llmtrace-test"
    assert usage_metric.scope_name == "llmtrace.proxy"
    [point] = usage_metric.data_points
    assert point.attributes == {GEN_AI_TOKEN_TYPE: "input", GEN_AI_REQUEST_MODEL: "gpt-4o"}
    assert (point.count, point.sum) == (2, 42)
    assert sum(point.bucket_counts) == 2
    assert len(point.bucket_counts) == len(point.explicit_bounds) + 1
    counter = by_name[REQUESTS_COUNTER]
    assert counter.data_type == "sum"
    assert [p.value for p in counter.data_points] == [3]


# -- failure injection -------------------------------------------------------------------------


@pytest.mark.parametrize("code", [grpc.StatusCode.INVALID_ARGUMENT, 400])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fail_next_non_retryable_makes_export_fail(
    sink: OTLPSink, transport: Transport, code: grpc.StatusCode | int
) -> None:
    exporter = _span_exporter(sink, transport)
    spans = _finished_spans(1)
    sink.fail_next(1, code)
    try:
        started = time.monotonic()
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert time.monotonic() - started < 2, "a non-retryable code must not be retried"
        assert sink.spans() == []
        assert exporter.export(spans) is SpanExportResult.SUCCESS  # the plan is used up
    finally:
        exporter.shutdown()
    assert _accepted_pattern(sink) == [False, True]
    assert len(sink.spans()) == 1


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, 503, 429])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fail_next_retryable_is_retried(
    sink: OTLPSink, transport: Transport, code: grpc.StatusCode | int
) -> None:
    exporter = _span_exporter(sink, transport)
    sink.fail_next(2, code, retry_after=0.01)
    try:
        started = time.monotonic()
        assert exporter.export(_finished_spans(1)) is SpanExportResult.SUCCESS
        assert time.monotonic() - started < 2, "the exporter should honour the short retry delay"
    finally:
        exporter.shutdown()
    assert _accepted_pattern(sink) == [False, False, True]
    assert len(sink.spans()) == 1


def test_fail_next_can_target_one_signal(sink: OTLPSink) -> None:
    sink.fail_next(1, grpc.StatusCode.INVALID_ARGUMENT, signal="metrics")
    exporter = _span_exporter(sink, "grpc")
    try:
        assert exporter.export(_finished_spans(1)) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    reader = PeriodicExportingMetricReader(
        _metric_exporter(sink, "grpc"), export_interval_millis=60_000
    )
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("test").create_counter(REQUESTS_COUNTER).add(1)
    try:
        provider.force_flush(timeout_millis=5_000)  # rejected by the plan
        provider.force_flush(timeout_millis=5_000)  # accepted
        sink.wait_for_metric_names({REQUESTS_COUNTER})
    finally:
        provider.shutdown()
    calls = sink.export_calls()
    assert [(c.signal, c.accepted) for c in calls[:3]] == [
        ("traces", True),
        ("metrics", False),
        ("metrics", True),
    ]


@pytest.mark.parametrize(
    ("n", "code"),
    [(0, 400), (1, grpc.StatusCode.OK), (1, 200), (1, 302), (1, 600)],
)
def test_fail_next_rejects_nonsense(sink: OTLPSink, n: int, code: grpc.StatusCode | int) -> None:
    with pytest.raises(ValueError, match="fail_next"):
        sink.fail_next(n, code)


# -- waiting and lifecycle ---------------------------------------------------------------------


def test_wait_for_spans_times_out_with_a_clear_message(sink: OTLPSink) -> None:
    exporter = _span_exporter(sink, "grpc")
    try:
        exporter.export(_finished_spans(1))
    finally:
        exporter.shutdown()
    with pytest.raises(AssertionError, match=r"expected at least 3 span\(s\).*but 1 arrived"):
        sink.wait_for_spans(3, timeout=0.1)
    with pytest.raises(AssertionError, match=r"still missing \['nope'\]"):
        sink.wait_for_metric_names({"nope"}, timeout=0.1)


def test_lifecycle() -> None:
    sink = OTLPSink()
    with pytest.raises(RuntimeError, match="not running"):
        _ = sink.grpc_endpoint
    with sink:
        assert sink.grpc_endpoint.startswith("127.0.0.1:")
        assert sink.http_endpoint.startswith("http://127.0.0.1:")
        exporter = _span_exporter(sink, "http")
        exporter.export(_finished_spans(1))
        exporter.shutdown()
    sink.stop()  # idempotent
    assert len(sink.spans()) == 1  # data outlives the servers
    with pytest.raises(RuntimeError, match="not running"):
        _ = sink.http_endpoint
    sink.clear()
    assert sink.spans() == [] and sink.export_calls() == []


# -- raw OTLP/HTTP -----------------------------------------------------------------------------


def _post(
    url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _trace_request_bytes() -> bytes:
    body: bytes = encode_spans(_finished_spans(1)).SerializeToString()
    return body


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("", lambda body: body)],
)
def test_http_accepts_compressed_protobuf(
    sink: OTLPSink, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    if encoding:
        headers["Content-Encoding"] = encoding
    status, response_headers, body = _post(
        f"{sink.http_endpoint}/v1/traces", compress(_trace_request_bytes()), headers
    )
    assert status == 200
    assert response_headers["Content-Type"] == "application/x-protobuf"
    trace_service_pb2.ExportTraceServiceResponse.FromString(body)  # a valid, empty response
    assert [span.transport for span in sink.wait_for_spans(1)] == ["http"]


@pytest.mark.parametrize(
    ("path", "content_type", "body", "status"),
    [
        ("/v1/profiles", "application/x-protobuf", b"", 404),
        ("/v1/traces", "application/json", b"{}", 415),
        ("/v1/traces", "application/x-protobuf", b"\xff\xff\xff not protobuf", 400),
    ],
)
def test_http_rejects_bad_requests_with_a_status_body(
    sink: OTLPSink, path: str, content_type: str, body: bytes, status: int
) -> None:
    got, _, response = _post(f"{sink.http_endpoint}{path}", body, {"Content-Type": content_type})
    assert got == status
    assert Status.FromString(response).message  # google.rpc.Status, as the OTLP spec says
    assert sink.export_calls() == []


def test_http_failure_carries_status_and_retry_after(sink: OTLPSink) -> None:
    sink.fail_next(1, grpc.StatusCode.UNAVAILABLE, retry_after=0.5)
    status, headers, body = _post(
        f"{sink.http_endpoint}/v1/traces",
        _trace_request_bytes(),
        {"Content-Type": "application/x-protobuf"},
    )
    assert status == 503
    assert headers["Retry-After"] == "0.5"
    assert Status.FromString(body).code == grpc.StatusCode.UNAVAILABLE.value[0]
