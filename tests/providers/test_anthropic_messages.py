from __future__ import annotations

import json

import pytest

from llmtrace_otel.providers.anthropic_messages import AnthropicMessagesAdapter
from llmtrace_otel.providers.base import ParseError
from llmtrace_otel.providers.types import (
    ChatMessage,
    MediaPart,
    Operation,
    ReasoningPart,
    StreamSignal,
    TextPart,
    ToolCallPart,
    ToolCallResponsePart,
    ToolDefinition,
    Usage,
)
from tests.providers.recorded import as_body, event, payload, payload_json, replay

ADAPTER = AnthropicMessagesAdapter()
PARIS_ARGS = '{"city":"Paris","unit":"celsius"}'
# 472 uncached + 2048 read from the cache + 512 written to it
CACHED_USAGE = Usage(input_tokens=3032, output_tokens=89, cache_read_input_tokens=2048,
                     cache_creation_input_tokens=512)


# --------------------------------------------------------------------------- request


def test_request_parameters() -> None:
    request = ADAPTER.parse_request(payload("anthropic_request.json"))
    assert ADAPTER.default_provider == "anthropic"
    assert request.operation is Operation.CHAT
    assert request.model == "claude-sonnet-4-20250514"
    assert request.max_tokens == 1024
    assert request.temperature == 0.5 and request.top_p == 0.9 and request.top_k == 40
    assert request.stop_sequences == ("\n\nHuman:",)
    assert request.stream is True
    assert request.stream_usage_requested is False


def test_request_system_blocks() -> None:
    request = ADAPTER.parse_request(payload("anthropic_request.json"))
    assert request.system_instructions == (
        TextPart("You are a weather assistant."), TextPart("Answer in metric units."))
    plain = ADAPTER.parse_request(b'{"model": "m", "system": "Be terse.", "messages": []}')
    assert plain.system_instructions == (TextPart("Be terse."),)


def test_request_messages_and_blocks() -> None:
    messages = ADAPTER.parse_request(payload("anthropic_request.json")).input_messages
    assert messages == (
        ChatMessage("user", (TextPart("Hi!"),)),
        ChatMessage("assistant", (TextPart("Hello! How can I help?"),)),
        ChatMessage("user", (
            TextPart("Weather in Paris? Photo and forecast attached."),
            MediaPart("image", None, "image/png"),  # base64 data is never kept
            MediaPart("image", "https://example.com/paris.jpg"),
            MediaPart("file", None, "application/pdf"),
        )),
        ChatMessage("assistant", (
            ReasoningPart("I should call get_weather for Paris."),
            TextPart("Let me check."),
            ToolCallPart("get_weather", "toolu_01A09q90qw90lq917835lq9", PARIS_ARGS),
        )),
        ChatMessage("user", (
            ToolCallResponsePart('{"temp":18,"sky":"cloudy"}', "toolu_01A09q90qw90lq917835lq9"),
            ToolCallResponsePart("timeout after 5s", "toolu_01B7x2"),
            TextPart("And tomorrow?"),
        )),
    )


def test_request_tools() -> None:
    request = ADAPTER.parse_request(payload("anthropic_request.json"))
    schema = payload_json("anthropic_request.json")["tools"][0]["input_schema"]
    assert request.tool_definitions == (
        ToolDefinition("get_weather", "Current weather for a city.", "function",
                       json.dumps(schema, separators=(",", ":"))),
        ToolDefinition("web_search", None, "web_search_20250305", None),
    )


@pytest.mark.parametrize(("body", "message"), [
    (b"{", "request body is not JSON"),
    (b"[]", "request body is not a JSON object (got array)"),
    (b'{"messages": [{"role": "user", "content": 7}]}',
     "messages[0].content must be a string or an array of blocks (got number)"),
    (b'{"messages": [{"content": "hi"}]}', "messages[0].role is missing"),
    (b'{"messages": [], "system": {"text": "x"}}',
     "system must be a string or an array of blocks (got object)"),
    (b'{"messages": [], "top_k": "40"}', "top_k must be a number (got string)"),
    (b'{"messages": [], "stop_sequences": [1, 2]}',
     "stop_sequences must be a string or an array of strings (got array)"),
    (b'{"messages": [{"role": "user", "content": [{"type": "image", "source": '
     b'{"type": "url", "url": 5}}]}]}', "messages[0].content[0].source.url must be a string"),
    (b'{"messages": [], "tools": [{"name": "t", "description": 1}]}',
     "tools[0].description must be a string (got number)"),
])
def test_malformed_requests(body: bytes, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        ADAPTER.parse_request(body)
    assert str(caught.value).startswith(message), str(caught.value)


# --------------------------------------------------------------------------- response


def test_response_text_and_cache_usage_total() -> None:
    response = ADAPTER.parse_response(payload("anthropic_response.json"))
    assert response.id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert response.model == "claude-sonnet-4-20250514"
    assert response.finish_reasons == ("end_turn",)
    assert response.output_messages == (ChatMessage(
        "assistant", (TextPart("Tomorrow: 21°C and sunny in Paris."),), finish_reason="end_turn"),)
    assert response.usage == CACHED_USAGE
    assert response.service_tier is None  # the OpenAI attribute is not Anthropic's


def test_response_thinking_and_tool_use() -> None:
    response = ADAPTER.parse_response(payload("anthropic_response_tool_use.json"))
    assert response.finish_reasons == ("tool_use",)
    assert response.output_messages[0].parts == (
        ReasoningPart("The user wants tomorrow's forecast; use the tool."),
        TextPart("Let me check the forecast."),
        ToolCallPart("get_weather", "toolu_01T1x1fJ34qAmk2tNTrN7Up6", PARIS_ARGS),
    )
    # reported cache counts of 0 read as not reported, like OpenAI's
    assert response.usage == Usage(input_tokens=639, output_tokens=112)


def test_response_thinking_tokens_when_reported() -> None:
    body = payload_json("anthropic_response.json")
    body["usage"]["output_tokens_details"] = {"thinking_tokens": 64}
    assert ADAPTER.parse_response(as_body(body)).usage == Usage(
        3032, 89, 2048, 512, reasoning_output_tokens=64)


def test_response_without_usage() -> None:
    body = payload_json("anthropic_response.json")
    del body["usage"]
    assert ADAPTER.parse_response(as_body(body)).usage is None


def test_error_body() -> None:
    response = ADAPTER.parse_response(payload("anthropic_error_429.json"))
    assert response.error_type == "rate_limit_error"
    assert response.output_messages == () and response.usage is None


@pytest.mark.parametrize(("body", "message"), [
    (b"upstream connect error", "response body is not JSON"),
    (b"[]", "response body is not a JSON object (got array)"),
    (b'{"type": "message", "content": [], "usage": {"input_tokens": "5"}}',
     "usage.input_tokens must be an integer (got string)"),
    (b'{"type": "message", "content": [{"type": "tool_use", "id": 3}]}',
     "content[0].id must be a string (got number)"),
])
def test_malformed_responses(body: bytes, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        ADAPTER.parse_response(body)
    assert str(caught.value).startswith(message), str(caught.value)


# --------------------------------------------------------------------------- stream


def test_stream_thinking_text_and_tool_use() -> None:
    response, signals, problems = replay(ADAPTER, [payload("anthropic_stream.txt")])
    assert problems == []
    assert response.id == "msg_014p7gG3wDgGV9EUtLvnow3U"
    assert response.model == "claude-sonnet-4-20250514"
    assert response.output_messages == (ChatMessage("assistant", (
        ReasoningPart("The user wants tomorrow's forecast; call get_weather."),
        TextPart("Let me check the forecast."),
        ToolCallPart("get_weather", "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                     '{"city": "Paris", "unit": "celsius"}'),  # as streamed, not re-encoded
    ), finish_reason="tool_use"),)
    assert response.finish_reasons == ("tool_use",)
    # input and cache tokens from message_start; output tokens from message_delta
    assert response.usage == CACHED_USAGE
    assert response.error_type is None
    assert signals[2] == StreamSignal(counts_as_chunk=False)  # ping
    assert signals[-1] == StreamSignal(counts_as_chunk=False, terminal=True)  # message_stop
    assert not any(s.terminal for s in signals[:-1])


def test_stream_message_delta_may_repeat_input_and_cache_tokens() -> None:
    response, _, problems = replay(ADAPTER, [payload("anthropic_stream_delta_usage.txt")])
    assert problems == []
    assert response.usage == Usage(3032, 15, 2048, 512)
    assert response.finish_reasons == ("end_turn",)


def test_stream_error_event() -> None:
    response, signals, problems = replay(ADAPTER, [payload("anthropic_stream_error.txt")])
    assert problems == []
    assert response.error_type == "overloaded_error"
    assert signals[-1].terminal
    assert response.output_messages[0].parts == (TextPart("Tomorrow"),)
    assert response.usage == Usage(25, 1)


def test_stream_tool_use_without_deltas_uses_the_start_input() -> None:
    accumulator = ADAPTER.new_stream_accumulator()
    accumulator.feed(event(json.dumps({"type": "content_block_start", "index": 0, "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}}), "content_block_start"))
    accumulator.feed(event(json.dumps({"type": "content_block_delta", "index": 0, "delta": {
        "type": "input_json_delta", "partial_json": ""}}), "content_block_delta"))
    assert accumulator.result().output_messages[0].parts == (ToolCallPart("now", "toolu_1", "{}"),)


def test_stream_malformed_events_are_problems() -> None:
    accumulator = ADAPTER.new_stream_accumulator()
    for data in (
        '{"type":"message_start","message":{"id":"msg_1","model":"claude","usage":'
        '{"input_tokens":5,"output_tokens":1}}}',
        '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
        '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}',
        "{oops",
        '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":7}}',
        '{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":"3"}}',
        '{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}',
        '{"type":"some_future_event","x":1}',
    ):
        accumulator.feed(event(data))
    assert accumulator.problems == [
        "event 4 is not JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1))",
        "event 5: delta.text must be a string (got number)",
        "event 6: usage.output_tokens must be an integer (got string)",
    ]
    result = accumulator.result()
    assert result.output_messages[0].parts == (TextPart("Hi"),)
    assert result.usage == Usage(5, 3)


def test_no_stream_usage_rewrite() -> None:
    assert ADAPTER.request_with_stream_usage(b'{"model": "m", "messages": [], "stream": true}') \
        is None
