"""The real anthropic SDK, through the real proxy."""

from __future__ import annotations

import anthropic
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai

from tests.support.expectations import assert_genai_span, expected_usage
from tests.support.fake_upstream import (
    REPLY_TEXT,
    SCENARIO_HEADER,
    TOOL_ARGUMENTS,
    FakeUpstream,
    usage_for,
)
from tests.support.proxy_harness import RunningProxy

MODEL = "claude-haiku-4-5"


def client(proxy: RunningProxy, scenario: str = "ok") -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=proxy.url, api_key="sk-ant-test-key", max_retries=0,
        default_headers={SCENARIO_HEADER: scenario},
    )


def test_message_with_cache_tokens(proxy: RunningProxy, upstream: FakeUpstream) -> None:
    message = client(proxy, "cache").messages.create(
        model=MODEL, max_tokens=100, system="Be brief.", extra_body={"top_k": 5},
        messages=[{"role": "user", "content": "Hi"}],
    )
    assert message.content[0].text == REPLY_TEXT
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-ant-test-key"
    span = proxy.only_span()
    assert_genai_span(
        span, operation="chat", provider="anthropic", model=MODEL, stream=False,
        usage=expected_usage("anthropic", usage_for("anthropic", "cache")),
        finish_reasons=["end_turn"], response_model=MODEL,
    )
    attrs = span.attributes or {}
    assert attrs[genai.GEN_AI_REQUEST_TOP_K] == 5
    assert attrs[genai.GEN_AI_REQUEST_MAX_TOKENS] == 100


def test_streamed_message_usage_from_start_and_delta(proxy: RunningProxy) -> None:
    with client(proxy, "cache").messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == REPLY_TEXT
    assert final.usage.cache_read_input_tokens == usage_for("anthropic", "cache").cached_tokens
    span = proxy.only_span()
    assert_genai_span(
        span, operation="chat", provider="anthropic", model=MODEL, stream=True,
        usage=expected_usage("anthropic", usage_for("anthropic", "cache")),
        finish_reasons=["end_turn"], response_model=MODEL,
    )


def test_streamed_tool_use(proxy: RunningProxy) -> None:
    tools = [{"name": "get_weather", "description": "Weather",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    with client(proxy, "tools").messages.stream(
        model=MODEL, max_tokens=100, tools=tools,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        final = stream.get_final_message()
    tool_use = [b for b in final.content if b.type == "tool_use"][0]
    assert tool_use.input == __import__("json").loads(TOOL_ARGUMENTS)
    span = proxy.only_span()
    assert_genai_span(span, operation="chat", provider="anthropic", model=MODEL, stream=True,
                      finish_reasons=["tool_use"], response_model=MODEL,
                      usage=expected_usage("anthropic", usage_for("anthropic", "tools")))


def test_anthropic_error_passes_through_unchanged(proxy: RunningProxy) -> None:
    try:
        client(proxy, "error-529").messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    except anthropic.APIStatusError as exc:
        assert exc.status_code == 529
        assert exc.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    else:
        raise AssertionError("expected the upstream's 529")
    span = proxy.only_span()
    assert_genai_span(span, operation="chat", provider="anthropic", model=MODEL,
                      error_type="overloaded_error")
