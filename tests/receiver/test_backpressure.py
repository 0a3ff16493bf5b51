"""A full queue makes senders retry (RESOURCE_EXHAUSTED / 429 + retry hints), then recovers.

Analysis is made slow for real: a gate enricher in the chain blocks until released, the
way a slow detector would. With ``telemetry.analysis_queue_size = 1`` and
``receiver.queue_size = 4`` the state is exact: one span held by the gate, one waiting
in the analysis queue, four in the receiver queue, and the next request is refused.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GRPCSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HTTPSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmtrace_processors.chain import EnrichingSpanProcessor, Enrichment
from tests.receiver.harness import RunningCollector, running_collector
from tests.receiver.helpers import PROTOBUF, metric_value, post

RETRY_AFTER_S = 0.5
_ids = itertools.count(1)


class Gate(EnrichingSpanProcessor):
    """Holds every span in analysis until ``release`` is set."""

    stage = "gate"

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def applies_to(self, span: ReadableSpan) -> bool:
        return True

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        self.entered.set()
        self.release.wait(30)
        return None


def request(spans: int = 2) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    scope = message.resource_spans.add().scope_spans.add()
    for _ in range(spans):
        n = next(_ids)
        scope.spans.add(trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"),
                        name=f"span-{n}", start_time_unix_nano=1, end_time_unix_nano=2)
    return message


def wait_until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.release.set()


@pytest.fixture
def collector(tmp_path: Path, gate: Gate) -> Iterator[RunningCollector]:
    with running_collector(tmp_path, extra_enrichers=[gate], analysis_queue_size=1,
                           receiver_queue_size=4, receiver_retry_after_s=RETRY_AFTER_S,
                           sqlite_enabled=False) as running:
        yield running


def fill(collector: RunningCollector, gate: Gate, send) -> int:  # type: ignore[no-untyped-def]
    """Bring the pipeline to its full state; returns the number of spans accepted."""
    send(request())
    assert gate.entered.wait(10)
    head = collector.telemetry.head
    intake = collector.server.receiver.intake
    wait_until(lambda: head.queue_depth == 1 and intake.depth == 0)  # type: ignore[union-attr]
    send(request())
    send(request())
    assert intake.depth == 4
    return 6


def test_grpc_full_queue_answers_resource_exhausted_with_retry_info(
    collector: RunningCollector, gate: Gate
) -> None:
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        stub = TraceServiceStub(channel)
        accepted = fill(collector, gate, lambda r: stub.Export(r, timeout=10))
        refused = request()
        with pytest.raises(grpc.RpcError) as caught:
            stub.Export(refused, timeout=10)
        error = caught.value
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        assert "receiver queue is full" in error.details()  # type: ignore[attr-defined]
        trailers = dict(error.trailing_metadata())  # type: ignore[attr-defined]
        info = RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
        assert info.retry_delay.ToNanoseconds() == int(RETRY_AFTER_S * 1e9)
        status = Status.FromString(trailers["grpc-status-details-bin"])
        assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        detail = RetryInfo()
        assert status.details[0].Unpack(detail) and detail == info

        health = json.loads(urllib.request.urlopen(f"{collector.ops_url}/health").read())
        assert health["status"] == "degraded"
        assert health["components"]["receiver_queue"] == {
            "state": "saturated", "depth": 4, "capacity": 4}

        gate.release.set()  # analysis catches up; the sender's retry gets in
        retries = 0
        deadline = time.monotonic() + 10
        while True:
            try:
                stub.Export(refused, timeout=10)
                break
            except grpc.RpcError as again:
                assert again.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
                assert time.monotonic() < deadline, "still refused 10 s after draining"
                retries += 1
                time.sleep(0.02)
    spans = collector.spans(accepted + 2)
    assert len(spans) == accepted + 2
    text = collector.metrics_text()
    refusals = 1 + retries
    assert metric_value(text, "llmtrace_telemetry_dropped_total", stage="receiver",
                        reason="queue_full") == 2 * refusals
    assert metric_value(text, "llmtrace_receiver_requests_total", transport="grpc",
                        outcome="busy") == refusals
    assert metric_value(text, "llmtrace_receiver_requests_total", transport="grpc",
                        outcome="ok") == 4
    assert metric_value(text, "llmtrace_telemetry_dropped_total", stage="analysis") == 0


def test_http_full_queue_answers_429_with_retry_after(
    collector: RunningCollector, gate: Gate
) -> None:
    url = f"{collector.http_url}/v1/traces"

    def send(message: ExportTraceServiceRequest) -> None:
        status, _, body = post(url, message.SerializeToString())
        assert status == 200, body

    accepted = fill(collector, gate, send)
    refused = request().SerializeToString()
    status, headers, body = post(url, refused)
    assert status == 429
    assert headers["retry-after"] == "1"  # whole seconds, rounded up from 0.5
    assert headers["content-type"] == PROTOBUF
    assert "receiver queue is full" in Status.FromString(body).message
    gate.release.set()
    deadline = time.monotonic() + 10  # the queue drains once the gate is open
    while True:
        status, headers, _ = post(url, refused)
        if status == 200:
            break
        assert status == 429
        assert time.monotonic() < deadline, "the receiver still refuses 10 s after draining"
        time.sleep(0.02)
    assert len(collector.spans(accepted + 2)) == accepted + 2


def _export_in_thread(exporter: SpanExporter) -> tuple[threading.Thread, list[object]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("sdk-retry").start_as_current_span("retried span"):
        pass
    [span] = memory.get_finished_spans()
    results: list[object] = [span]
    thread = threading.Thread(target=lambda: results.append(exporter.export([span])))
    thread.start()
    return thread, results


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_exporter_retries_on_the_hint_and_gets_through(
    collector: RunningCollector, gate: Gate, transport: str
) -> None:
    """Nothing is dropped silently: the real exporter backs off and succeeds later."""
    url = f"{collector.http_url}/v1/traces"
    fill(collector, gate, lambda r: post(url, r.SerializeToString()))
    exporter: SpanExporter = (
        GRPCSpanExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=30)
        if transport == "grpc" else HTTPSpanExporter(endpoint=url, timeout=30))
    thread, results = _export_in_thread(exporter)
    wait_until(lambda: metric_value(collector.metrics_text(), "llmtrace_receiver_requests_total",
                                    transport=transport, outcome="busy") >= 1)
    gate.release.set()
    thread.join(30)
    span = results[0]
    assert results[1] is SpanExportResult.SUCCESS
    assert collector.spans_with_ids({span.context.span_id})  # type: ignore[attr-defined]
    exporter.shutdown()
