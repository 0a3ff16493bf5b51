"""The real openai SDK, through the real proxy, to a fake upstream that speaks the API."""

from __future__ import annotations

import json

import openai
import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai

from tests.support.expectations import assert_genai_span, expected_usage
from tests.support.fake_upstream import (
    EMBEDDING_DIMENSIONS,
    REPLY_TEXT,
    SCENARIO_HEADER,
    TOOL_ARGUMENTS,
    FakeUpstream,
    usage_for,
)
from tests.support.proxy_harness import RunningProxy

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]


def client(proxy: RunningProxy, scenario: str = "ok") -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{proxy.url}/v1",
        api_key="sk-test-secret-key-123",
        max_retries=0,
        default_headers={SCENARIO_HEADER: scenario},
    )


def test_chat_is_relayed_unchanged_and_becomes_one_span(proxy: RunningProxy,
                                                        upstream: FakeUpstream) -> None:
    reply = client(proxy).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, temperature=0.2, max_tokens=50, seed=7,
        top_p=0.9, stop=["\n\n"], frequency_penalty=0.1, presence_penalty=0.2,
    )
    assert reply.choices[0].message.content == REPLY_TEXT
    assert reply.usage is not None and reply.usage.prompt_tokens == 12
    # The upstream saw the client's request and credential, and our trace context.
    received = upstream.requests[-1]
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == "Bearer sk-test-secret-key-123"
    assert "traceparent" in received.headers
    span = proxy.only_span()
    assert_genai_span(
        span, operation="chat", provider="openai", model="gpt-4o-mini", stream=False,
        usage=expected_usage("openai", usage_for("openai", "ok")), finish_reasons=["stop"],
    )
    attrs = span.attributes or {}
    assert attrs[genai.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert attrs[genai.GEN_AI_REQUEST_MAX_TOKENS] == 50
    assert attrs[genai.GEN_AI_REQUEST_SEED] == 7
    assert attrs[genai.GEN_AI_REQUEST_TOP_P] == 0.9
    assert tuple(attrs[genai.GEN_AI_REQUEST_STOP_SEQUENCES]) == ("\n\n",)
    assert attrs[genai.GEN_AI_REQUEST_FREQUENCY_PENALTY] == 0.1
    assert attrs[genai.GEN_AI_REQUEST_PRESENCE_PENALTY] == 0.2
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == int(upstream.url.rsplit(":", 1)[1])
    # The upstream's traceparent names the proxy span as parent.
    assert received.headers["traceparent"].split("-")[2] == format(span.context.span_id, "016x")
    # The credential is never recorded anywhere on the span.
    dump = json.dumps({k: str(v) for k, v in attrs.items()})
    assert "sk-test-secret-key-123" not in dump
    # Content is not exported unless opted in.
    assert genai.GEN_AI_INPUT_MESSAGES not in attrs
    assert genai.GEN_AI_OUTPUT_MESSAGES not in attrs


@pytest.mark.parametrize("scenario", ["ok", "burst", "split-events"])
def test_stream_without_usage_request_gets_usage_on_span_but_not_in_stream(
    proxy: RunningProxy, upstream: FakeUpstream, scenario: str
) -> None:
    # "burst": the whole stream, usage chunk included, arrives in one network read.
    stream = client(proxy, scenario).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY_TEXT
    # The client did not ask for usage: it sees no usage chunk and no usage fields.
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert all("usage" not in (c.model_extra or {}) for c in chunks)
    # ...but the proxy asked upstream for it, and the span has it.
    assert upstream.requests[-1].json()["stream_options"] == {"include_usage": True}
    span = proxy.only_span()
    assert_genai_span(
        span, operation="chat", provider="openai", model="gpt-4o-mini", stream=True,
        usage=expected_usage("openai", usage_for("openai", "ok")), finish_reasons=["stop"],
    )


def test_stream_relays_raw_usage_null_free_bytes(proxy: RunningProxy) -> None:
    import urllib.request

    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}).encode()
    request = urllib.request.Request(
        f"{proxy.url}/v1/chat/completions", data=body,
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-x"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    assert b'"usage"' not in raw
    assert raw.rstrip().endswith(b"data: [DONE]")


def test_stream_with_usage_requested_passes_usage_chunk(proxy: RunningProxy,
                                                         upstream: FakeUpstream) -> None:
    stream = client(proxy).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == usage_for("openai", "ok").total_tokens
    span = proxy.only_span()
    assert_genai_span(span, operation="chat", provider="openai", model="gpt-4o-mini",
                      stream=True, usage=expected_usage("openai", usage_for("openai", "ok")))


def test_stream_usage_injection_can_be_turned_off(upstream: FakeUpstream, tmp_path) -> None:
    from tests.support.proxy_harness import running_proxy

    with running_proxy(upstream.url, tmp_path, stream_include_usage=False) as proxy:
        list(client(proxy).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True))
        assert "stream_options" not in upstream.requests[-1].json()
        attrs = proxy.only_span().attributes or {}
        # Semconv: usage that could not be obtained is not reported.
        assert genai.GEN_AI_USAGE_INPUT_TOKENS not in attrs


def test_tool_calls_streamed_and_parsed(proxy: RunningProxy) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    messages = [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    stream = client(proxy, "tools").chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=tools, stream=True)
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in stream if c.choices and c.choices[0].delta.tool_calls
    )
    assert arguments == TOOL_ARGUMENTS
    span = proxy.only_span()
    assert_genai_span(span, operation="chat", provider="openai", model="gpt-4o-mini",
                      stream=True, finish_reasons=["tool_calls"],
                      usage=expected_usage("openai", usage_for("openai", "tools")))


def test_cached_and_reasoning_tokens(proxy: RunningProxy) -> None:
    client(proxy, "cache").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    client(proxy, "reasoning").chat.completions.create(model="o3-mini", messages=MESSAGES)
    cache_span, reasoning_span = proxy.spans(2)
    assert_genai_span(cache_span, operation="chat", provider="openai", model="gpt-4o",
                      usage=expected_usage("openai", usage_for("openai", "cache")))
    assert_genai_span(reasoning_span, operation="chat", provider="openai", model="o3-mini",
                      usage=expected_usage("openai", usage_for("openai", "reasoning")))


def test_completions_embeddings_and_responses(proxy: RunningProxy) -> None:
    c = client(proxy)
    completion = c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi",
                                      max_tokens=5)
    assert completion.choices[0].text
    embedding = c.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(embedding.data[0].embedding) == EMBEDDING_DIMENSIONS
    response = c.responses.create(model="gpt-4o-mini", input="Say hello", instructions="Be nice")
    assert response.output_text == REPLY_TEXT
    streamed = list(c.responses.create(model="gpt-4o-mini", input="Say hello", stream=True))
    assert streamed[-1].type == "response.completed"
    spans = proxy.spans(4)
    assert [s.name for s in spans] == [
        "text_completion gpt-3.5-turbo-instruct",
        "embeddings text-embedding-3-small",
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
    ]
    assert_genai_span(spans[0], operation="text_completion", provider="openai",
                      model="gpt-3.5-turbo-instruct")
    emb = spans[1].attributes or {}
    assert emb[genai.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == EMBEDDING_DIMENSIONS
    assert emb[genai.GEN_AI_USAGE_INPUT_TOKENS] > 0
    for span in spans[2:]:
        assert_genai_span(span, operation="chat", provider="openai", model="gpt-4o-mini")
        assert (span.attributes or {})[genai.GEN_AI_USAGE_OUTPUT_TOKENS] > 0


def test_models_list_is_a_plain_http_span(proxy: RunningProxy) -> None:
    models = client(proxy).models.list()
    assert len(models.data) > 0
    span = proxy.only_span()
    assert span.name == "GET"
    attrs = span.attributes or {}
    assert genai.GEN_AI_OPERATION_NAME not in attrs
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.full"].endswith("/v1/models")


@pytest.mark.parametrize("capture", [True, False])
def test_content_capture_opt_in(upstream: FakeUpstream, tmp_path, capture: bool) -> None:
    from tests.support.proxy_harness import running_proxy

    with running_proxy(upstream.url, tmp_path, capture_content=capture) as proxy:
        client(proxy).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        attrs = proxy.only_span().attributes or {}
    if not capture:
        assert not any(k in attrs for k in (genai.GEN_AI_INPUT_MESSAGES,
                                            genai.GEN_AI_OUTPUT_MESSAGES,
                                            genai.GEN_AI_SYSTEM_INSTRUCTIONS))
        return
    assert json.loads(attrs[genai.GEN_AI_SYSTEM_INSTRUCTIONS]) == [
        {"type": "text", "content": "You are terse."}]
    assert json.loads(attrs[genai.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hello."}]}]
    assert json.loads(attrs[genai.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": REPLY_TEXT}],
         "finish_reason": "stop"}]


def test_tool_arguments_nested_too_deep_to_parse_are_kept_as_text(
        upstream: FakeUpstream, tmp_path) -> None:
    # Arguments are JSON text; recorded parsed when they parse. Text nested deeper than the
    # interpreter's recursion limit once raised RecursionError while the span was recorded,
    # and the call left no span at all.
    from tests.support.proxy_harness import running_proxy

    deep = "[" * 50_000
    messages = [
        {"role": "user", "content": "Call f."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": deep}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
    ]
    with running_proxy(upstream.url, tmp_path, capture_content=True) as proxy:
        reply = client(proxy).chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert reply.choices[0].message.content == REPLY_TEXT
        attrs = proxy.only_span().attributes or {}
    recorded = json.loads(attrs[genai.GEN_AI_INPUT_MESSAGES])
    assert recorded[1]["parts"] == [
        {"type": "tool_call", "id": "call_1", "name": "f", "arguments": deep}]
