"""The real openai SDK (sync and async), instrumented in-process, against the fake upstream.

The spans are held to the same expectations as the proxy's (tests/support/expectations.py).
"""

from __future__ import annotations

import json
import socket
from typing import Any

import openai
import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai
from opentelemetry.trace import SpanKind

from llmtrace_processors.attributes import LLMTRACE_API, LLMTRACE_COST_USD, LLMTRACE_STREAM_CHUNKS
from tests.sdk.harness import API_KEY, AppTelemetry, openai_async, openai_sync, run
from tests.support.expectations import assert_genai_span, expected_usage, metric_value
from tests.support.fake_upstream import (
    EMBEDDING_DIMENSIONS,
    REPLY_CHUNKS,
    REPLY_TEXT,
    TOOL_ARGUMENTS,
    FakeUpstream,
    usage_for,
)

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]
OK_USAGE = expected_usage("openai", usage_for("openai", "ok"))


def chat(flavour: str, upstream: FakeUpstream, scenario: str = "ok", **params: Any) -> Any:
    """One chat call in the given flavour; a stream is read to the end."""
    params.setdefault("model", "gpt-4o-mini")
    params.setdefault("messages", MESSAGES)
    if flavour == "sync":
        result = openai_sync(upstream, scenario).chat.completions.create(**params)
        return list(result) if params.get("stream") else result

    async def call() -> Any:
        client = openai_async(upstream, scenario)
        result = await client.chat.completions.create(**params)
        if params.get("stream"):
            return [chunk async for chunk in result]
        return result

    return run(call())


def test_chat_becomes_one_genai_span(sdk: AppTelemetry, upstream: FakeUpstream,
                                     flavour: str) -> None:
    reply = chat(flavour, upstream, temperature=0.2, max_tokens=50, seed=7)
    assert reply.choices[0].message.content == REPLY_TEXT
    span = sdk.only_genai_span()
    assert_genai_span(span, operation="chat", provider="openai", model="gpt-4o-mini",
                      stream=False, usage=OK_USAGE, finish_reasons=["stop"])
    attrs = span.attributes or {}
    assert attrs[genai.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert attrs[genai.GEN_AI_REQUEST_MAX_TOKENS] == 50
    assert attrs[LLMTRACE_API] == "openai.chat_completions"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == upstream.port
    assert attrs["http.response.status_code"] == 200
    # The processor chain ran before the application's exporter saw the span.
    assert attrs[LLMTRACE_COST_USD] > 0
    # The upstream got our trace context; the credential is on no attribute.
    received = upstream.requests[-1]
    assert received.headers["traceparent"].split("-")[2] == format(span.context.span_id, "016x")
    assert API_KEY not in json.dumps({k: str(v) for k, v in attrs.items()})
    assert genai.GEN_AI_INPUT_MESSAGES not in attrs
    # The application's resource and instrumentation scope.
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "llmtrace_otel.sdk"
    assert span.resource == sdk.tracer_provider.resource

    text = sdk.metrics_text()
    usage = usage_for("openai", "ok")
    assert metric_value(text, "gen_ai_client_token_usage_sum", gen_ai_token_type="input",
                        gen_ai_operation_name="chat", gen_ai_provider_name="openai") == \
        usage.input_tokens
    assert metric_value(text, "gen_ai_client_token_usage_sum",
                        gen_ai_token_type="output") == usage.output_tokens
    assert metric_value(text, "gen_ai_client_operation_duration_seconds_count",
                        gen_ai_request_model="gpt-4o-mini") == 1
    assert metric_value(text, "llmtrace_requests_total", provider="openai",
                        model="gpt-4o-mini", status_code="200") == 1
    assert metric_value(text, "llmtrace_cost_usd_total", model="gpt-4o-mini") > 0


def test_stream_read_to_the_end(sdk: AppTelemetry, upstream: FakeUpstream,
                                flavour: str) -> None:
    chunks = chat(flavour, upstream, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY_TEXT
    # The client did not ask for usage and sees none; the span has it (as with the proxy).
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert upstream.requests[-1].json()["stream_options"] == {"include_usage": True}
    span = sdk.only_genai_span()
    assert_genai_span(span, operation="chat", provider="openai", model="gpt-4o-mini",
                      stream=True, usage=OK_USAGE, finish_reasons=["stop"])
    assert (span.attributes or {})[LLMTRACE_STREAM_CHUNKS] >= len(REPLY_CHUNKS)
    text = sdk.metrics_text()
    assert metric_value(text, "gen_ai_client_operation_time_to_first_chunk_seconds_count") == 1
    assert metric_value(text, "gen_ai_client_operation_time_per_output_chunk_seconds_count") \
        >= len(REPLY_CHUNKS)


def test_stream_closed_early(sdk: AppTelemetry, upstream: FakeUpstream, flavour: str) -> None:
    if flavour == "sync":
        stream = openai_sync(upstream, "slow-stream").chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True)
        first = next(iter(stream))
        stream.close()
    else:
        async def call() -> Any:
            stream = await openai_async(upstream, "slow-stream").chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True)
            chunk = await stream.__aiter__().__anext__()
            await stream.close()
            return chunk

        first = run(call())
    assert first.choices
    span = sdk.only_genai_span()
    # What the proxy records when its client hangs up before the end.
    assert_genai_span(span, operation="chat", provider="openai", model="gpt-4o-mini",
                      stream=True, error_type="client_disconnected")
    assert (span.attributes or {})[genai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


def test_stream_dropped_unread_still_ends_its_span(sdk: AppTelemetry,
                                                   upstream: FakeUpstream) -> None:
    import gc

    stream = openai_sync(upstream).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True)
    del stream
    gc.collect()
    span = sdk.only_genai_span()
    assert_genai_span(span, operation="chat", provider="openai", model="gpt-4o-mini",
                      error_type="client_disconnected")
    attrs = span.attributes or {}
    assert attrs[genai.GEN_AI_REQUEST_STREAM] is True
    assert genai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in attrs  # nothing was read


def test_stream_with_usage_requested_is_passed_unchanged(sdk: AppTelemetry,
                                                         upstream: FakeUpstream) -> None:
    chunks = chat("sync", upstream, stream=True, stream_options={"include_usage": True})
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert upstream.requests[-1].json()["stream_options"] == {"include_usage": True}
    assert_genai_span(sdk.only_genai_span(), operation="chat", provider="openai",
                      model="gpt-4o-mini", stream=True, usage=OK_USAGE)


def test_stream_usage_injection_can_be_turned_off(app: AppTelemetry, upstream: FakeUpstream,
                                                  tmp_path) -> None:
    from tests.sdk.harness import instrumented

    with instrumented(app, tmp_path, stream_include_usage=False):
        chat("sync", upstream, stream=True)
    assert "stream_options" not in upstream.requests[-1].json()
    attrs = app.only_genai_span().attributes or {}
    assert genai.GEN_AI_USAGE_INPUT_TOKENS not in attrs  # not reported: not invented


def test_streamed_tool_calls(sdk: AppTelemetry, upstream: FakeUpstream, flavour: str) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}}}}}]
    chunks = chat(flavour, upstream, "tools", tools=tools, stream=True)
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks if c.choices and c.choices[0].delta.tool_calls)
    assert arguments == TOOL_ARGUMENTS
    assert_genai_span(sdk.only_genai_span(), operation="chat", provider="openai",
                      model="gpt-4o-mini", stream=True, finish_reasons=["tool_calls"],
                      usage=expected_usage("openai", usage_for("openai", "tools")))


def test_cached_and_reasoning_tokens(sdk: AppTelemetry, upstream: FakeUpstream) -> None:
    chat("sync", upstream, "cache", model="gpt-4o")
    chat("sync", upstream, "reasoning", model="o3-mini")
    cache, reasoning = sdk.genai_spans()
    assert_genai_span(cache, operation="chat", provider="openai", model="gpt-4o",
                      usage=expected_usage("openai", usage_for("openai", "cache")))
    assert_genai_span(reasoning, operation="chat", provider="openai", model="o3-mini",
                      usage=expected_usage("openai", usage_for("openai", "reasoning")))


def test_completions_embeddings_and_responses(sdk: AppTelemetry, upstream: FakeUpstream,
                                              flavour: str) -> None:
    if flavour == "sync":
        c = openai_sync(upstream)
        assert c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hi").choices
        embedding = c.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
        response = c.responses.create(model="gpt-4o-mini", input="Say hello")
        streamed = list(c.responses.create(model="gpt-4o-mini", input="Hi", stream=True))
    else:
        async def calls() -> tuple[Any, Any, list[Any]]:
            c = openai_async(upstream)
            assert (await c.completions.create(model="gpt-3.5-turbo-instruct",
                                               prompt="Hi")).choices
            embedding = await c.embeddings.create(model="text-embedding-3-small",
                                                  input=["a", "b"])
            response = await c.responses.create(model="gpt-4o-mini", input="Say hello")
            stream = await c.responses.create(model="gpt-4o-mini", input="Hi", stream=True)
            return embedding, response, [event async for event in stream]

        embedding, response, streamed = run(calls())
    assert len(embedding.data[0].embedding) == EMBEDDING_DIMENSIONS
    assert response.output_text == REPLY_TEXT
    assert streamed[-1].type == "response.completed"
    spans = sdk.genai_spans()
    assert [s.name for s in spans] == [
        "text_completion gpt-3.5-turbo-instruct", "embeddings text-embedding-3-small",
        "chat gpt-4o-mini", "chat gpt-4o-mini"]
    assert_genai_span(spans[0], operation="text_completion", provider="openai",
                      model="gpt-3.5-turbo-instruct")
    emb = spans[1].attributes or {}
    assert emb[genai.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == EMBEDDING_DIMENSIONS
    assert emb[genai.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert_genai_span(spans[2], operation="chat", provider="openai", model="gpt-4o-mini",
                      stream=False)
    assert_genai_span(spans[3], operation="chat", provider="openai", model="gpt-4o-mini",
                      stream=True)
    for span in spans[2:]:
        assert (span.attributes or {})[genai.GEN_AI_USAGE_OUTPUT_TOKENS] > 0


@pytest.mark.parametrize(("scenario", "error", "error_type"), [
    ("error-429", openai.RateLimitError, "requests"),
    ("error-500", openai.InternalServerError, "server_error"),
])
def test_error_status_is_raised_unchanged_and_recorded(
    sdk: AppTelemetry, upstream: FakeUpstream, flavour: str, scenario: str,
    error: type[Exception], error_type: str,
) -> None:
    with pytest.raises(error) as caught:
        chat(flavour, upstream, scenario)
    status = int(scenario.rsplit("-", 1)[1])
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    span = sdk.only_genai_span()
    assert_genai_span(span, operation="chat", provider="openai", model="gpt-4o-mini",
                      error_type=error_type)
    assert (span.attributes or {})["http.response.status_code"] == status
    text = sdk.metrics_text()
    assert metric_value(text, "llmtrace_upstream_errors_total",
                        error_type=f"http_{status}") == 1
    assert metric_value(text, "gen_ai_client_operation_duration_seconds_count",
                        error_type=error_type) == 1


def test_error_status_of_a_stream_request(sdk: AppTelemetry, upstream: FakeUpstream,
                                          flavour: str) -> None:
    with pytest.raises(openai.RateLimitError):
        chat(flavour, upstream, "error-429", stream=True)
    span = sdk.only_genai_span()
    # The error body is JSON, read by the SDK through the stream wrapper, and parsed.
    assert_genai_span(span, operation="chat", provider="openai", model="gpt-4o-mini",
                      error_type="requests")
    assert (span.attributes or {})[genai.GEN_AI_REQUEST_STREAM] is True


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_failure_is_raised_unchanged_and_recorded(sdk: AppTelemetry,
                                                             flavour: str) -> None:
    url = f"http://127.0.0.1:{_dead_port()}/v1"
    with pytest.raises(openai.APIConnectionError):
        if flavour == "sync":
            openai.OpenAI(base_url=url, api_key="k", max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES)
        else:
            run(openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=0)
                .chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))
    span = sdk.only_genai_span()
    assert_genai_span(span, operation="chat", provider="openai", model="gpt-4o-mini",
                      error_type="ConnectError")
    assert span.kind is SpanKind.CLIENT
    assert "http.response.status_code" not in (span.attributes or {})


def test_stream_broken_midway(sdk: AppTelemetry, upstream: FakeUpstream, flavour: str) -> None:
    with pytest.raises(openai.APIError):
        chat(flavour, upstream, "reset-midstream", stream=True)
    span = sdk.only_genai_span()
    assert span.status.status_code.name == "ERROR"
    attrs = span.attributes or {}
    assert attrs["error.type"] == "RemoteProtocolError", attrs["error.type"]
    assert attrs[genai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0  # chunks did arrive


def test_retries_are_one_span_per_attempt(sdk: AppTelemetry, upstream: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=upstream.openai_base_url, api_key="k", max_retries=1,
                           default_headers={"x-fake-scenario": "error-503"})
    with pytest.raises(openai.APIStatusError):
        client.with_options(timeout=10).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES)
    spans = sdk.genai_spans()
    assert len(upstream.requests) == 2
    assert [(s.attributes or {})["http.response.status_code"] for s in spans] == [503, 503]
