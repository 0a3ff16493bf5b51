"""A real OTel SDK application exporting to the running receiver over gRPC and HTTP.

The application keeps its own copy of every span (an InMemorySpanExporter next to the OTLP
exporter), so each span that reaches our exporters is compared with what the sender had.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GRPCSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HTTPCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HTTPSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.span import TraceState
from opentelemetry.trace.status import Status, StatusCode

from tests.receiver.harness import RunningCollector, running_collector
from tests.receiver.helpers import expected_cost, metric_value

SENDERS = ("grpc", "grpc+gzip", "http", "http+gzip")


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    with running_collector(tmp_path_factory.mktemp("sdk")) as running:
        yield running


def exporter_for(sender: str, collector: RunningCollector) -> SpanExporter:
    import grpc

    if sender.startswith("grpc"):
        compression = grpc.Compression.Gzip if sender.endswith("gzip") else None
        return GRPCSpanExporter(endpoint=collector.grpc_endpoint, insecure=True,
                                compression=compression)
    compression_http = HTTPCompression.Gzip if sender.endswith("gzip") else None
    return HTTPSpanExporter(endpoint=f"{collector.http_url}/v1/traces",
                            compression=compression_http)


def run_app(exporter: SpanExporter, sender: str) -> list[ReadableSpan]:
    """An app with an old-semconv GenAI call under a remote parent; returns what it sent."""
    local = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"app-{sender}",
                                                        "team": "payments"}))
    provider.add_span_processor(SimpleSpanProcessor(local))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("my.genai.lib", "3.1.4",
                                 schema_url="https://opentelemetry.io/schemas/1.27.0")
    remote = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED),
                         trace_state=TraceState([("vendor", "x")]))
    other = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=False)
    with tracer.start_as_current_span("handle", context=trace.set_span_in_context(
            NonRecordingSpan(remote)), kind=SpanKind.SERVER) as root:
        root.set_attribute("http.route", "/pay")
        with tracer.start_as_current_span(
            "chat gpt-4o-mini", kind=SpanKind.CLIENT,
            links=[Link(other, {"link.kind": "follows"})],
            attributes={"gen_ai.system": "openai", "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "gpt-4o-mini",
                        "gen_ai.usage.prompt_tokens": 1000,
                        "gen_ai.usage.completion_tokens": 200},
        ) as chat:
            chat.add_event("gen_ai.user.message", {"content": "charge 12 EUR"})
            chat.add_event("cache.miss", {"key": "k1"})
            chat.set_status(Status(StatusCode.ERROR, "upstream said no"))
    provider.shutdown()
    return list(local.get_finished_spans())


@pytest.mark.parametrize("sender", SENDERS)
def test_spans_arrive_with_identity_preserved_and_enriched(
    collector: RunningCollector, sender: str
) -> None:
    sent = run_app(exporter_for(sender, collector), sender)
    arrived = collector.spans_with_ids({span.context.span_id for span in sent})
    assert len(arrived) == len(sent) == 2
    for original in sent:
        got = arrived[original.context.span_id]
        assert got.name == original.name
        assert got.context.trace_id == original.context.trace_id
        assert got.kind is original.kind
        assert (got.start_time, got.end_time) == (original.start_time, original.end_time)
        assert got.status.status_code is original.status.status_code
        assert got.status.description == original.status.description
        assert got.parent is not None and original.parent is not None
        assert got.parent.span_id == original.parent.span_id
        assert got.parent.is_remote == original.parent.is_remote
        assert got.context.trace_state.to_header() == original.context.trace_state.to_header()
        assert dict(got.resource.attributes) == dict(original.resource.attributes)
        assert got.instrumentation_scope == original.instrumentation_scope
        assert [(link.context.trace_id, link.context.span_id, dict(link.attributes or {}))
                for link in got.links] == [
            (link.context.trace_id, link.context.span_id, dict(link.attributes or {}))
            for link in original.links]
    root = arrived[next(s for s in sent if s.name == "handle").context.span_id]
    assert root.parent is not None and root.parent.is_remote
    assert dict(root.attributes or {}) == {"http.route": "/pay"}
    chat_sent = next(s for s in sent if s.name.startswith("chat"))
    chat = arrived[chat_sent.context.span_id]
    a: dict[str, Any] = dict(chat.attributes or {})
    assert a["gen_ai.provider.name"] == "openai" and "gen_ai.system" not in a
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (1000, 200)
    assert a["llmtrace.cost.usd"] == pytest.approx(
        expected_cost("gpt-4o-mini", "openai", 1000, 200))
    # The message event was translated (and its content stripped: capture is off); the
    # custom event is the sender's, untouched, with its timestamp.
    assert [(e.name, dict(e.attributes or {}), e.timestamp) for e in chat.events] == [
        (e.name, dict(e.attributes or {}), e.timestamp) for e in chat_sent.events
        if e.name == "cache.miss"]
    assert "gen_ai.input.messages" not in a
    transport = sender.split("+")[0]
    assert metric_value(collector.metrics_text(), "llmtrace_receiver_spans_total",
                        transport=transport) >= 2
