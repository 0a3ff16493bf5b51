"""Both transports: bearer auth, gzip, OTLP/JSON, partial success, bad input, limits."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator

import grpc
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GRPCSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HTTPSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.receiver.harness import RunningCollector, running_collector
from tests.receiver.helpers import JSON, PROTOBUF, metric_value, payload, post, post_json

TOKEN = "s3cret-token-0123456789"


def one_span_request(name: str = "op", span_id: int = 1) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    message.resource_spans.add().scope_spans.add().spans.add(
        trace_id=(0xABC).to_bytes(16, "big"), span_id=span_id.to_bytes(8, "big"), name=name)
    return message


def sdk_spans():  # type: ignore[no-untyped-def]
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("authed"):
        pass
    return memory.get_finished_spans()


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    with running_collector(tmp_path_factory.mktemp("transports"), sqlite_enabled=False,
                           max_body_bytes=64 * 1024) as running:
        yield running


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    with running_collector(tmp_path_factory.mktemp("auth"), sqlite_enabled=False,
                           receiver_auth_token=TOKEN) as running:
        yield running


# -- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic czNjcmV0", f"bearer {TOKEN}x"])
def test_http_rejects_missing_or_wrong_token(authed: RunningCollector, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    status, response_headers, body = post(f"{authed.http_url}/v1/traces",
                                          one_span_request().SerializeToString(), PROTOBUF,
                                          headers)
    assert status == 401
    assert response_headers["www-authenticate"] == "Bearer"
    assert Status.FromString(body).code == grpc.StatusCode.UNAUTHENTICATED.value[0]


def test_grpc_rejects_missing_or_wrong_token(authed: RunningCollector) -> None:
    with grpc.insecure_channel(authed.grpc_endpoint) as channel:
        stub = TraceServiceStub(channel)
        for metadata in ((), (("authorization", "Bearer nope"),)):
            with pytest.raises(grpc.RpcError) as caught:
                stub.Export(one_span_request(), metadata=metadata, timeout=10)
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        stub.Export(one_span_request(span_id=7), metadata=(("authorization",
                                                             f"Bearer {TOKEN}"),), timeout=10)
    assert metric_value(authed.metrics_text(), "llmtrace_receiver_requests_total",
                        transport="grpc", outcome="unauthenticated") == 2


def test_sdk_exporters_with_the_token_get_in(authed: RunningCollector) -> None:
    headers = {"authorization": f"Bearer {TOKEN}"}
    spans = sdk_spans()
    grpc_exporter = GRPCSpanExporter(endpoint=authed.grpc_endpoint, insecure=True,
                                     headers=headers)
    http_exporter = HTTPSpanExporter(endpoint=f"{authed.http_url}/v1/traces", headers=headers)
    assert grpc_exporter.export(spans) is SpanExportResult.SUCCESS
    assert http_exporter.export(spans) is SpanExportResult.SUCCESS
    assert len(authed.spans(2)) >= 2


# -- encodings ----------------------------------------------------------------------------


def test_gzip_and_deflate_bodies(collector: RunningCollector) -> None:
    raw = one_span_request("zipped", 11).SerializeToString()
    for encoding, body in (("gzip", gzip.compress(raw)), ("deflate", zlib.compress(raw))):
        status, _, _ = post(f"{collector.http_url}/v1/traces", body, PROTOBUF,
                            {"Content-Encoding": encoding})
        assert status == 200, encoding
    status, _, body = post(f"{collector.http_url}/v1/traces", raw, PROTOBUF,
                           {"Content-Encoding": "br"})
    assert status == 415 and "unsupported Content-Encoding" in Status.FromString(body).message
    status, _, body = post(f"{collector.http_url}/v1/traces", b"not gzip", PROTOBUF,
                           {"Content-Encoding": "gzip"})
    assert status == 400


def test_a_small_gzip_body_cannot_inflate_past_the_limit(collector: RunningCollector) -> None:
    bomb = gzip.compress(b"\x00" * (1024 * 1024))  # 1 MiB of zeros, ~1 KiB compressed
    assert len(bomb) < 64 * 1024
    status, _, body = post(f"{collector.http_url}/v1/traces", bomb, PROTOBUF,
                           {"Content-Encoding": "gzip"})
    assert status == 413
    assert "decompressed body exceeds 65536 bytes" in Status.FromString(body).message


def test_json_request_gets_json_response_and_json_errors(collector: RunningCollector) -> None:
    status, headers, body = post_json(f"{collector.http_url}/v1/traces",
                                      payload("genai_legacy.json"))
    assert (status, headers["content-type"], body) == (200, JSON, {})
    status, headers, raw = post(f"{collector.http_url}/v1/traces", b"{nope", JSON)
    assert status == 400 and headers["content-type"] == JSON
    error = json.loads(raw)
    assert error["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "body is not JSON" in error["message"]


def test_unknown_json_fields_are_ignored(collector: RunningCollector) -> None:
    data = payload("genai_legacy.json")
    data["resourceSpans"][0]["futureField"] = {"x": 1}
    data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["anotherNewField"] = 3
    status, _, body = post_json(f"{collector.http_url}/v1/traces", data)
    assert (status, body) == (200, {})


def test_unsupported_content_type_and_garbage(collector: RunningCollector) -> None:
    status, _, _ = post(f"{collector.http_url}/v1/traces", b"x", "text/plain")
    assert status == 415
    status, _, body = post(f"{collector.http_url}/v1/traces", b"\xff\xff\xff", PROTOBUF)
    assert status == 400 and "cannot decode the traces request" in Status.FromString(body).message


def test_body_over_the_limit_is_413(collector: RunningCollector) -> None:
    status, _, _ = post(f"{collector.http_url}/v1/traces", b"\x00" * (64 * 1024 + 1), PROTOBUF)
    assert status == 413


# -- partial success ----------------------------------------------------------------------


def test_partial_success_over_json_with_malformed_hex_ids(collector: RunningCollector) -> None:
    data = payload("openai_v2.json")
    spans = data["resourceSpans"][0]["scopeSpans"][1]["spans"]
    spans[0]["spanId"] = "not-hex!"
    spans[1]["traceId"] = "abcd"
    before = metric_value(collector.metrics_text(), "llmtrace_telemetry_dropped_total",
                          stage="receiver", reason="invalid_span")
    status, _, body = post_json(f"{collector.http_url}/v1/traces", data)
    assert status == 200
    partial = body["partialSuccess"]
    assert partial["rejectedSpans"] == "2"  # int64 in proto3 JSON
    assert "2 span(s) rejected" in partial["errorMessage"]
    assert "span_id must be 8 bytes" in partial["errorMessage"]
    assert "trace_id must be 16 bytes" in partial["errorMessage"]
    wanted = {int("eee19b7ec3c1b174", 16), int("a1b2c3d4e5f6071a", 16)}
    assert set(collector.spans_with_ids(wanted)) == wanted  # waits: intake is asynchronous
    after = metric_value(collector.metrics_text(), "llmtrace_telemetry_dropped_total",
                         stage="receiver", reason="invalid_span")
    assert after - before == 2


def test_partial_success_over_grpc_and_protobuf_http(collector: RunningCollector) -> None:
    message = one_span_request("good", 21)
    message.resource_spans[0].scope_spans[0].spans.add(trace_id=b"\x01" * 16, span_id=b"",
                                                       name="no span id")
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        response = TraceServiceStub(channel).Export(message, timeout=10)
    assert response.partial_success.rejected_spans == 1
    assert "'no span id'" in response.partial_success.error_message
    status, _, body = post(f"{collector.http_url}/v1/traces", message.SerializeToString())
    assert status == 200
    parsed = ExportTraceServiceResponse.FromString(body)
    assert parsed.partial_success.rejected_spans == 1
    text = collector.metrics_text()
    assert metric_value(text, "llmtrace_receiver_requests_total", outcome="partial") >= 2


def test_empty_request_is_a_success(collector: RunningCollector) -> None:
    status, _, body = post(f"{collector.http_url}/v1/traces", b"")
    assert status == 200 and ExportTraceServiceResponse.FromString(body) == (
        ExportTraceServiceResponse())


def test_wrong_method_and_path(collector: RunningCollector) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{collector.http_url}/v1/traces", timeout=10)
    assert caught.value.code == 405
    status, _, _ = post(f"{collector.http_url}/v1/profiles", b"")
    assert status == 404

