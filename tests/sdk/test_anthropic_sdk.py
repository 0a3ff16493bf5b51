"""The real anthropic SDK (sync and async), instrumented in-process, against the fake upstream."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai

from tests.sdk.harness import AppTelemetry, anthropic_async, anthropic_sync, run
from tests.support.expectations import assert_genai_span, expected_usage, metric_value
from tests.support.fake_upstream import REPLY_TEXT, TOOL_ARGUMENTS, FakeUpstream, usage_for

MODEL = "claude-haiku-4-5"
HI = [{"role": "user", "content": "Hi"}]


def test_message_with_cache_tokens(sdk: AppTelemetry, upstream: FakeUpstream,
                                   flavour: str) -> None:
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 100, "system": "Be brief.",
                              "messages": HI, "extra_body": {"top_k": 5}}
    if flavour == "sync":
        message = anthropic_sync(upstream, "cache").messages.create(**params)
    else:
        message = run(anthropic_async(upstream, "cache").messages.create(**params))
    assert message.content[0].text == REPLY_TEXT
    span = sdk.only_genai_span()
    assert_genai_span(span, operation="chat", provider="anthropic", model=MODEL, stream=False,
                      usage=expected_usage("anthropic", usage_for("anthropic", "cache")),
                      finish_reasons=["end_turn"], response_model=MODEL)
    attrs = span.attributes or {}
    assert attrs[genai.GEN_AI_REQUEST_TOP_K] == 5
    assert attrs["llmtrace.api"] == "anthropic.messages"
    usage = usage_for("anthropic", "cache")
    assert metric_value(sdk.metrics_text(), "gen_ai_client_token_usage_sum",
                        gen_ai_token_type="input", gen_ai_provider_name="anthropic") == \
        usage.input_tokens + usage.cached_tokens + usage.cache_creation_tokens


def test_streamed_message(sdk: AppTelemetry, upstream: FakeUpstream, flavour: str) -> None:
    if flavour == "sync":
        with anthropic_sync(upstream, "cache").messages.stream(
                model=MODEL, max_tokens=100, messages=HI) as stream:
            text = "".join(stream.text_stream)
    else:
        async def call() -> str:
            async with anthropic_async(upstream, "cache").messages.stream(
                    model=MODEL, max_tokens=100, messages=HI) as stream:
                return "".join([piece async for piece in stream.text_stream])

        text = run(call())
    assert text == REPLY_TEXT
    assert_genai_span(sdk.only_genai_span(), operation="chat", provider="anthropic",
                      model=MODEL, stream=True, finish_reasons=["end_turn"],
                      response_model=MODEL,
                      usage=expected_usage("anthropic", usage_for("anthropic", "cache")))
    assert metric_value(sdk.metrics_text(),
                        "gen_ai_client_operation_time_to_first_chunk_seconds_count",
                        gen_ai_provider_name="anthropic") == 1


def test_streamed_tool_use(sdk: AppTelemetry, upstream: FakeUpstream) -> None:
    tools = [{"name": "get_weather", "description": "Weather",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    with anthropic_sync(upstream, "tools").messages.stream(
            model=MODEL, max_tokens=100, tools=tools, messages=HI) as stream:
        final = stream.get_final_message()
    tool_use = [block for block in final.content if block.type == "tool_use"][0]
    assert tool_use.input == json.loads(TOOL_ARGUMENTS)
    assert_genai_span(sdk.only_genai_span(), operation="chat", provider="anthropic",
                      model=MODEL, stream=True, finish_reasons=["tool_use"],
                      response_model=MODEL,
                      usage=expected_usage("anthropic", usage_for("anthropic", "tools")))


def test_stream_closed_early(sdk: AppTelemetry, upstream: FakeUpstream) -> None:
    with anthropic_sync(upstream, "slow-stream").messages.stream(
            model=MODEL, max_tokens=100, messages=HI) as stream:
        next(iter(stream.text_stream))
    assert_genai_span(sdk.only_genai_span(), operation="chat", provider="anthropic",
                      model=MODEL, stream=True, error_type="client_disconnected")


def test_error_is_raised_unchanged_and_recorded(sdk: AppTelemetry, upstream: FakeUpstream,
                                                flavour: str) -> None:
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 10, "messages": HI}
    with pytest.raises(anthropic.APIStatusError) as caught:
        if flavour == "sync":
            anthropic_sync(upstream, "error-529").messages.create(**params)
        else:
            run(anthropic_async(upstream, "error-529").messages.create(**params))
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert_genai_span(sdk.only_genai_span(), operation="chat", provider="anthropic",
                      model=MODEL, error_type="overloaded_error")


def test_models_list_is_not_an_llm_call(sdk: AppTelemetry, upstream: FakeUpstream) -> None:
    assert anthropic_sync(upstream).models.list().data
    assert sdk.genai_spans() == []
