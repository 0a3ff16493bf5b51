"""Recorded payloads in each dialect, posted as OTLP/JSON to the running receiver.

The spans are checked where the exporters see them (an InMemorySpanExporter after the
chain) and where a downstream Collector sees them (the real OTLP sink, fed by the
pipeline's own OTLP exporter): normalised to the latest semconv, priced by the cost
processor, and otherwise exactly the sender's spans.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from tests.receiver.harness import RunningCollector, running_collector
from tests.receiver.helpers import (
    by_span_id,
    content,
    expected_cost,
    hex_id,
    payload,
    post_json,
    span_ids,
)
from tests.support.otlp_sink import OTLPSink

DIALECTS = "llmtrace.receiver.dialects"
COST = "llmtrace.cost.usd"
PAYLOADS = ("openai_v2.json", "genai_legacy.json", "openllmetry.json", "openinference.json")


@pytest.fixture(scope="module")
def sink() -> Iterator[OTLPSink]:
    with OTLPSink() as running:
        yield running


@pytest.fixture(scope="module")
def received(sink: OTLPSink, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[RunningCollector, dict[str, ReadableSpan]]]:
    """Every recorded payload sent once; spans by span id as the exporters saw them."""
    tmp = tmp_path_factory.mktemp("dialects")
    with running_collector(tmp, capture_content=True,
                           otlp_endpoint=f"http://{sink.grpc_endpoint}",
                           otlp_protocol="grpc") as collector:
        total = 0
        for name in PAYLOADS:
            data = payload(name)
            total += len(span_ids(data))
            status, _, body = post_json(f"{collector.http_url}/v1/traces", data)
            assert status == 200, body
            assert body == {}, f"{name}: expected a full success, got {body}"
        spans = collector.spans(total)
        assert len(spans) == total
        yield collector, by_span_id(spans)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def text(content_: str) -> dict[str, str]:
    return {"type": "text", "content": content_}


# -- official openai-v2 instrumentation ----------------------------------------------------


def test_openai_v2_chat_is_normalised_and_priced(received: Any) -> None:
    _, spans = received
    span = spans["a1b2c3d4e5f60718"]
    a = attrs(span)
    assert a["gen_ai.provider.name"] == "openai"
    for gone in ("gen_ai.system", "gen_ai.openai.request.seed",
                 "gen_ai.openai.request.response_format", "gen_ai.openai.request.service_tier",
                 "gen_ai.openai.response.service_tier",
                 "gen_ai.openai.response.system_fingerprint"):
        assert gone not in a, gone
    assert a["gen_ai.request.seed"] == 42
    assert a["gen_ai.output.type"] == "json"
    assert a["openai.request.service_tier"] == "default"
    assert a["openai.response.service_tier"] == "default"
    assert a["openai.response.system_fingerprint"] == "fp_34a54ae93c"
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.max_tokens"] == 256
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a[DIALECTS] == ("genai_legacy",)
    assert a[COST] == pytest.approx(expected_cost("gpt-4o-mini-2024-07-18", "openai", 52, 18))
    assert a[COST] > 0
    assert content(span, "gen_ai.system_instructions") == [
        text("You are a support assistant. Answer in JSON.")]
    assert content(span, "gen_ai.input.messages") == [
        {"role": "user", "parts": [text("How do I reset my password?")]}]
    assert content(span, "gen_ai.output.messages") == [
        {"role": "assistant", "finish_reason": "stop",
         "parts": [text('{"steps": ["Open Settings", "Choose Reset password"]}')]}]
    assert list(span.events) == [], "translated message events are removed"


def test_openai_v2_span_keeps_identity_links_and_status(received: Any) -> None:
    _, spans = received
    span = spans["a1b2c3d4e5f60718"]
    assert hex_id(span.context.trace_id, 32) == "5b8efff798038103d269b633813fc60c"
    assert span.parent is not None and hex_id(span.parent.span_id, 16) == "eee19b7ec3c1b174"
    assert span.parent.is_remote is False  # flags 257 = HAS_IS_REMOTE, not remote
    assert span.kind is SpanKind.CLIENT
    assert (span.start_time, span.end_time) == (1752573600105000000, 1752573600987000000)
    assert span.status.status_code is StatusCode.OK
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "opentelemetry.instrumentation.openai_v2"
    assert span.instrumentation_scope.version == "2.1b0"
    assert span.instrumentation_scope.schema_url == "https://opentelemetry.io/schemas/1.28.0"
    assert span.resource.attributes["service.name"] == "support-bot"
    assert span.resource.attributes["deployment.environment.name"] == "staging"
    [link] = span.links
    assert hex_id(link.context.trace_id, 32) == "0af7651916cd43dd8448eb211c80319c"
    assert hex_id(link.context.span_id, 16) == "b7ad6b7169203331"
    assert link.context.trace_state.to_header() == "vendor=abc"
    assert dict(link.attributes or {}) == {"link.reason": "retry-of"}


def test_openai_v2_tool_round_trip_messages(received: Any) -> None:
    _, spans = received
    span = spans["a1b2c3d4e5f60719"]
    assert content(span, "gen_ai.input.messages") == [
        {"role": "user", "parts": [text("And what is the weather in Paris?")]},
        {"role": "assistant", "parts": [
            {"type": "tool_call", "id": "call_VSPygqKTWdrhaFErNvMV18Yl", "name": "get_weather",
             "arguments": {"city": "Paris"}}]},
        {"role": "tool", "parts": [
            {"type": "tool_call_response", "id": "call_VSPygqKTWdrhaFErNvMV18Yl",
             "response": "rainy, 57F"}]},
    ]
    assert content(span, "gen_ai.output.messages") == [
        {"role": "assistant", "finish_reason": "tool_calls", "parts": [
            {"type": "tool_call", "id": "call_Z3kVfS9QnPmVbA2XyT1hJc0R", "name": "get_forecast",
             "arguments": {"city": "Paris", "days": 3}}]}]


def test_openai_v2_error_span_keeps_exception_event(received: Any) -> None:
    _, spans = received
    span = spans["a1b2c3d4e5f6071a"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "Error code: 429 - Rate limit reached for gpt-4o-mini"
    assert [event.name for event in span.events] == ["exception"]
    assert span.events[0].timestamp == 1752573601910000000
    assert attrs(span)["error.type"] == "RateLimitError"
    assert COST not in attrs(span)  # no usage: no cost (not a cost of 0)


def test_non_genai_spans_are_forwarded_untouched(received: Any) -> None:
    _, spans = received
    server = spans["eee19b7ec3c1b174"]
    assert attrs(server) == {"http.request.method": "POST", "url.path": "/support/ask",
                             "http.response.status_code": 200, "http.route": "/support/ask"}
    assert server.kind is SpanKind.SERVER and server.parent is None
    workflow = spans["27ae41e4649b934c"]
    assert attrs(workflow) == {"traceloop.span.kind": "workflow",
                               "traceloop.workflow.name": "plan_trip",
                               "traceloop.entity.name": "plan_trip"}
    chain = spans["1f2e3d4c5b6a7988"]
    assert attrs(chain) == {
        "openinference.span.kind": "CHAIN",
        "input.value": '{"question": "What does the cat sit on?"}',
        "input.mime_type": "application/json",
        "output.value": "The cat sits on the mat.",
        "session.id": "sess-7f1c",
    }


# -- older semconv: Azure AI Inference, OpenLIT ------------------------------------------


def test_azure_ai_inference_event_content(received: Any) -> None:
    _, spans = received
    span = spans["00f067aa0ba902b7"]
    a = attrs(span)
    assert a["gen_ai.provider.name"] == "azure.ai.inference"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (310, 64)
    assert "gen_ai.usage.prompt_tokens" not in a and "gen_ai.usage.completion_tokens" not in a
    assert span.kind is SpanKind.CLIENT  # the JSON said "SPAN_KIND_CLIENT"
    assert span.start_time == 1752573700000000000  # int64 as a JSON number
    assert content(span, "gen_ai.system_instructions") == [text("Classify the claim.")]
    assert content(span, "gen_ai.input.messages") == [
        {"role": "user", "parts": [text("My windshield cracked on the highway.")]}]
    assert content(span, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [text("category: auto-glass")], "finish_reason": "stop"}]
    assert a[COST] == pytest.approx(expected_cost("gpt-4o", "azure.ai.inference", 310, 64))


def test_semconv_key_wins_over_legacy_and_content_events(received: Any) -> None:
    _, spans = received
    span = spans["00f067aa0ba902b8"]
    a = attrs(span)
    assert a["gen_ai.usage.input_tokens"] == 1200
    assert a["gen_ai.usage.output_tokens"] == 80
    assert "gen_ai.usage.prompt_tokens" not in a
    assert content(span, "gen_ai.input.messages") == [
        {"role": "user", "parts": [text("Summarise the claim history.")]}]
    assert content(span, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [text("Two prior claims, both settled.")]}]
    assert list(span.events) == []
    assert a[COST] == pytest.approx(
        expected_cost("claude-3-5-sonnet-20241022", "anthropic", 1200, 80))


# -- OpenLLMetry ----------------------------------------------------------------------------


def test_openllmetry_chat_with_tools_and_image(received: Any) -> None:
    _, spans = received
    span = spans["27ae41e4649b934d"]
    a = attrs(span)
    assert not [key for key in a if key.startswith(("gen_ai.prompt", "gen_ai.completion",
                                                    "llm.request."))]
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"  # "OpenAI"
    assert a["gen_ai.request.stream"] is False
    assert (a["server.address"], a["server.port"]) == ("api.openai.com", 443)
    assert a["gen_ai.openai.api_base"] == "https://api.openai.com/v1/"  # not translated: kept
    assert a["llm.usage.total_tokens"] == 412 and a["llm.headers"] == "None"
    assert a["openai.response.system_fingerprint"] == "fp_a7d06e42a7"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"],
            a["gen_ai.usage.cache_read.input_tokens"]) == (375, 37, 256)
    assert a[DIALECTS] == ("openllmetry", "genai_legacy")
    assert a[COST] == pytest.approx(
        expected_cost("gpt-4o-2024-08-06", "openai", 375, 37, cache_read=256))
    assert content(span, "gen_ai.system_instructions") == [text("You plan trips.")]
    assert content(span, "gen_ai.input.messages") == [
        {"role": "user", "parts": [text("Plan 2 days in Lisbon"),
                                   {"type": "blob", "modality": "image",
                                    "mime_type": "image/png"}]}]
    assert content(span, "gen_ai.tool.definitions") == [
        {"type": "function", "name": "search_hotels", "description": "Find hotels in a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    assert content(span, "gen_ai.output.messages") == [
        {"role": "assistant", "finish_reason": "tool_calls", "parts": [
            {"type": "tool_call", "id": "call_9mQk1xR2", "name": "search_hotels",
             "arguments": {"city": "Lisbon"}}]}]


def test_openllmetry_tool_result_and_anthropic_completion(received: Any) -> None:
    _, spans = received
    chat = spans["27ae41e4649b934e"]
    assert content(chat, "gen_ai.input.messages") == [
        {"role": "user", "parts": [text("Plan 2 days in Lisbon")]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_9mQk1xR2",
                                         "name": "search_hotels",
                                         "arguments": {"city": "Lisbon"}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_9mQk1xR2",
                                    "response": "Hotel Avenida, Casa do Largo"}]},
    ]
    anthropic = spans["27ae41e4649b934f"]
    a = attrs(anthropic)
    assert a["gen_ai.operation.name"] == "text_completion"
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 0
    assert content(anthropic, "gen_ai.input.messages") == [
        {"role": "user", "parts": [text("Translate 'good morning' to Portuguese.")]}]
    assert content(anthropic, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [text("Bom dia.")], "finish_reason": "end_turn"}]
    assert a[COST] == pytest.approx(
        expected_cost("claude-3-5-sonnet-20241022", "anthropic", 14, 5))


# -- OpenInference --------------------------------------------------------------------------


def test_openinference_llm_span(received: Any) -> None:
    _, spans = received
    span = spans["1f2e3d4c5b6a7989"]
    a = attrs(span)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"  # from llm.invocation_parameters
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert (a["gen_ai.request.temperature"], a["gen_ai.request.max_tokens"],
            a["gen_ai.request.stream"]) == (0.1, 300, False)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"],
            a["gen_ai.usage.cache_read.input_tokens"]) == (1210, 42, 1024)
    for gone in ("llm.model_name", "llm.provider", "llm.system", "llm.token_count.prompt",
                 "input.value", "output.value", "input.mime_type", "output.mime_type"):
        assert gone not in a, gone
    assert not [key for key in a if key.startswith(("llm.input_messages", "llm.output_messages"))]
    for kept in ("openinference.span.kind", "llm.invocation_parameters", "llm.token_count.total",
                 "session.id"):
        assert kept in a, kept
    assert a[DIALECTS] == ("openinference",)
    assert a[COST] == pytest.approx(
        expected_cost("gpt-4o-mini-2024-07-18", "openai", 1210, 42, cache_read=1024))
    assert content(span, "gen_ai.system_instructions") == [text("Answer from the context.")]
    assert content(span, "gen_ai.input.messages") == [
        {"role": "user", "parts": [text("What does the cat sit on?"),
                                   {"type": "uri", "modality": "image",
                                    "uri": "https://example.com/cat.png"}]}]
    assert content(span, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [text("The cat sits on the mat.")]}]


def test_openinference_tool_call_embedding_and_tool_spans(received: Any) -> None:
    _, spans = received
    llm = spans["1f2e3d4c5b6a798a"]
    assert attrs(llm)["gen_ai.provider.name"] == "azure.ai.openai"
    assert content(llm, "gen_ai.tool.definitions") == [
        {"type": "function", "name": "lookup_order", "description": "Look an order up",
         "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}]
    assert content(llm, "gen_ai.output.messages") == [
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_Qx81",
                                         "name": "lookup_order",
                                         "arguments": {"order_id": "8812"}}]}]
    embedding = attrs(spans["1f2e3d4c5b6a798b"])
    assert embedding["gen_ai.operation.name"] == "embeddings"
    assert embedding["gen_ai.request.model"] == "text-embedding-3-small"
    assert embedding["gen_ai.usage.input_tokens"] == 8
    assert embedding[COST] == pytest.approx(
        expected_cost("text-embedding-3-small", "openai", 8, 0))
    tool = attrs(spans["1f2e3d4c5b6a798c"])
    assert tool["gen_ai.operation.name"] == "execute_tool"
    assert (tool["gen_ai.tool.name"], tool["gen_ai.tool.description"]) == (
        "lookup_order", "Look an order up")
    assert tool["gen_ai.tool.call.arguments"] == '{"order_id": "8812"}'
    assert tool["gen_ai.tool.call.result"] == "shipped"
    assert "tool.name" not in tool and "input.value" not in tool


# -- downstream --------------------------------------------------------------------------


def test_enriched_spans_reach_the_downstream_collector_intact(
    received: Any, sink: OTLPSink
) -> None:
    _, spans = received
    arrived = {span.span_id_hex: span for span in sink.wait_for_spans(len(spans))}
    assert set(arrived) == set(spans)
    for span_id, span in spans.items():
        remote = arrived[span_id]
        assert remote.transport == "grpc"
        assert remote.trace_id_hex == hex_id(span.context.trace_id, 32)
        parent = hex_id(span.parent.span_id, 16) if span.parent else ""
        assert remote.parent_span_id_hex == parent
        assert remote.name == span.name
        assert (remote.start_time_unix_nano, remote.end_time_unix_nano) == (
            span.start_time, span.end_time)
        assert remote.attributes == {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in (span.attributes or {}).items()
        }
        assert [name for name, _ in remote.events] == [event.name for event in span.events]
        assert remote.event_times_unix_nano == tuple(event.timestamp for event in span.events)
        assert remote.resource["service.name"] == span.resource.attributes["service.name"]
        assert remote.scope_name == span.instrumentation_scope.name  # type: ignore[union-attr]
    chat = arrived["a1b2c3d4e5f60718"]
    assert chat.links == (("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331",
                           {"link.reason": "retry-of"}),)
    assert chat.attributes[COST] > 0
    assert chat.status_code == "OK"


def test_cost_metric_counts_received_spans(received: Any) -> None:
    collector, _ = received
    text_ = collector.metrics_text()
    assert 'llmtrace_cost_usd_total{' in text_
    assert 'tenant="acme"' in text_  # llmtrace.tenant.id of the resource, from the sender


def test_content_is_stripped_without_capture(tmp_path: Path) -> None:
    """Content from any dialect falls under the content policy like proxied content."""
    with running_collector(tmp_path) as collector:
        data = payload("openllmetry.json")
        status, _, _ = post_json(f"{collector.http_url}/v1/traces", data)
        assert status == 200
        spans = by_span_id(collector.spans(len(span_ids(data))))
    a = attrs(spans["27ae41e4649b934d"])
    assert not {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
                "gen_ai.tool.definitions"} & a.keys()
    assert not [key for key in a if key.startswith(("gen_ai.prompt", "gen_ai.completion"))]
    assert a["gen_ai.usage.input_tokens"] == 375 and a[COST] > 0
