from __future__ import annotations

import json

import pytest

from llmtrace_otel.providers.base import ParseError
from llmtrace_otel.providers.openai_chat import OpenAIChatAdapter
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

ADAPTER = OpenAIChatAdapter()
WEATHER_ARGS = '{"city":"Paris","unit":"celsius"}'


# --------------------------------------------------------------------------- request


def test_request_parameters() -> None:
    request = ADAPTER.parse_request(payload("openai_chat_request.json"))
    assert request.operation is Operation.CHAT
    assert request.model == "gpt-4o-2024-08-06"
    assert request.stream is True
    assert request.stream_usage_requested is True
    assert request.temperature == 0.2
    assert request.top_p == 0.9
    assert request.max_tokens == 256
    assert request.choice_count == 2
    assert request.stop_sequences == ("\n\nUser:", "END")
    assert request.seed == 42
    assert request.frequency_penalty == 0.5
    assert request.presence_penalty == -0.25
    assert request.top_k is None
    assert request.encoding_formats == ()


def test_request_system_and_developer_messages_are_instructions_only() -> None:
    request = ADAPTER.parse_request(payload("openai_chat_request.json"))
    assert request.system_instructions == (
        TextPart("You are a weather assistant."), TextPart("Answer in metric units."))
    assert [m.role for m in request.input_messages] == [
        "user", "assistant", "tool", "tool", "assistant", "user"]


def test_request_content_parts() -> None:
    user = ADAPTER.parse_request(payload("openai_chat_request.json")).input_messages[0]
    assert user.name == "alice"
    assert user.parts == (
        TextPart("What's the weather in Paris? Here is a photo and a chart."),
        MediaPart("image", "https://example.com/paris.jpg"),
        MediaPart("image", None, "image/png"),  # data: URL, the bytes are not kept
        MediaPart("audio", None, "audio/wav"),
    )


def test_request_tool_calls_with_null_content_and_tool_results() -> None:
    messages = ADAPTER.parse_request(payload("openai_chat_request.json")).input_messages
    assert messages[1] == ChatMessage("assistant", (
        ToolCallPart("get_weather", "call_Kx7mQ2aB", WEATHER_ARGS),
        ToolCallPart("get_time", "call_Vb3nP8cD", '{"tz":"Europe/Paris"}'),
    ))
    assert messages[2].parts == (
        ToolCallResponsePart('{"temp":18,"sky":"cloudy"}', "call_Kx7mQ2aB"),)
    assert messages[3].parts == (ToolCallResponsePart("14:05 CEST", "call_Vb3nP8cD"),)
    assert messages[4].parts == (TextPart("It is 18°C and cloudy in Paris at 14:05."),)
    assert messages[5].parts == (TextPart("Thanks! And tomorrow?"),)


def test_request_tool_definitions() -> None:
    tools = ADAPTER.parse_request(payload("openai_chat_request.json")).tool_definitions
    body = payload_json("openai_chat_request.json")
    assert tools[0] == ToolDefinition(
        "get_weather", "Current weather for a city.", "function",
        json.dumps(body["tools"][0]["function"]["parameters"], separators=(",", ":")))
    assert tools[1].name == "get_time" and tools[1].description is None
    assert tools[1].parameters is not None and " " not in tools[1].parameters


def test_request_minimal_and_defaults() -> None:
    request = ADAPTER.parse_request(b'{"model":"gpt-4o-mini","messages":[]}')
    assert request.stream is False
    assert request.stream_usage_requested is False
    assert request.max_tokens is None
    assert request.stop_sequences == ()
    assert request.input_messages == () and request.system_instructions == ()


def test_request_max_tokens_legacy_and_stop_string() -> None:
    request = ADAPTER.parse_request(as_body(
        {"model": "m", "messages": [], "max_tokens": 100, "stop": "###", "temperature": 1}))
    assert request.max_tokens == 100
    assert request.stop_sequences == ("###",)
    assert request.temperature == 1.0


def test_request_nulls_read_as_absent() -> None:
    request = ADAPTER.parse_request(as_body({
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": None,
        "stop": None, "stream": None, "stream_options": None, "tools": None}))
    assert request.temperature is None and request.stop_sequences == ()
    assert request.stream is False and request.tool_definitions == ()


def test_request_legacy_functions_and_function_call() -> None:
    request = ADAPTER.parse_request(as_body({
        "model": "gpt-3.5-turbo-0613",
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None,
             "function_call": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            {"role": "function", "name": "get_weather", "content": "cold"},
        ],
        "functions": [{"name": "get_weather", "parameters": {"type": "object"}}],
    }))
    assert request.input_messages[1].parts == (
        ToolCallPart("get_weather", None, '{"city":"Oslo"}'),)
    assert request.input_messages[2] == ChatMessage(
        "function", (ToolCallResponsePart("cold"),), name="get_weather")
    assert request.tool_definitions == (
        ToolDefinition("get_weather", None, "function", '{"type":"object"}'),)


def test_request_unknown_part_types_are_skipped() -> None:
    request = ADAPTER.parse_request(as_body({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "hologram"}]}]}))
    assert request.input_messages[0].parts == (TextPart("a"),)


def test_stream_usage_requested_only_when_true() -> None:
    for options, expected in (({"include_usage": True}, True), ({"include_usage": False}, False),
                              ({}, False)):
        request = ADAPTER.parse_request(as_body(
            {"model": "m", "messages": [], "stream": True, "stream_options": options}))
        assert request.stream_usage_requested is expected


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "request body is not JSON"),
    (b"", "request body is not JSON"),
    (b"\xff\xfe", "request body is not JSON"),
    (b'[{"model": "m"}]', "request body is not a JSON object (got array)"),
    (b'"hello"', "request body is not a JSON object (got string)"),
    (b'{"model": 4, "messages": []}', "model must be a string (got number)"),
    (b'{"model": "m", "messages": {}}', "messages must be an array (got object)"),
    (b'{"model": "m", "messages": ["hi"]}', "messages[0] must be an object (got string)"),
    (b'{"model": "m", "messages": [{"content": "hi"}]}', "messages[0].role is missing"),
    (b'{"model": "m", "messages": [{"role": "user", "content": 5}]}',
     "messages[0].content must be a string, an array of parts or null (got number)"),
    (b'{"model": "m", "messages": [], "temperature": "hot"}',
     "temperature must be a number (got string)"),
    (b'{"model": "m", "messages": [], "max_tokens": 1.5}',
     "max_tokens must be an integer (got number)"),
    (b'{"model": "m", "messages": [], "n": true}', "n must be an integer (got boolean)"),
    (b'{"model": "m", "messages": [], "stream": "yes"}', "stream must be a boolean (got string)"),
    (b'{"model": "m", "messages": [], "stop": [1]}',
     "stop must be a string or an array of strings (got array)"),
    (b'{"model": "m", "messages": [], "tools": [{"type": "function", "function": []}]}',
     "tools[0].function must be an object (got array)"),
    (b'{"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": '
     b'{"name": 1}}]}]}', "messages[0].tool_calls[0].function.name must be a string (got number)"),
    (b"[" * 100_000, "request body is not JSON"),
])
def test_malformed_requests_raise_parse_error_naming_the_field(body: bytes, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        ADAPTER.parse_request(body)
    assert str(caught.value).startswith(message), str(caught.value)


# --------------------------------------------------------------------------- response


def test_response_text_with_cached_usage() -> None:
    response = ADAPTER.parse_response(payload("openai_chat_response.json"))
    assert response.id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert response.model == "gpt-4o-2024-08-06"
    assert response.finish_reasons == ("stop",)
    assert response.output_messages == (ChatMessage(
        "assistant", (TextPart("Tomorrow: 21°C and sunny in Paris."),), finish_reason="stop"),)
    # reasoning_tokens: 0 is reported on every call and reads as "not reported"
    assert response.usage == Usage(input_tokens=2006, output_tokens=11,
                                   cache_read_input_tokens=1920)
    assert response.service_tier == "default"
    assert response.system_fingerprint == "fp_eb9dce56a8"
    assert response.error_type is None


def test_response_tool_calls() -> None:
    response = ADAPTER.parse_response(payload("openai_chat_response_tool_calls.json"))
    assert response.finish_reasons == ("tool_calls",)
    assert response.output_messages[0].parts == (
        ToolCallPart("get_weather", "call_Kx7mQ2aB", WEATHER_ARGS),
        ToolCallPart("get_time", "call_Vb3nP8cD", '{"tz":"Europe/Paris"}'),
    )
    assert response.usage == Usage(input_tokens=152, output_tokens=48)


def test_response_reasoning_tokens() -> None:
    response = ADAPTER.parse_response(payload("openai_chat_response_reasoning.json"))
    assert response.usage == Usage(input_tokens=25, output_tokens=210,
                                   reasoning_output_tokens=192)


def test_response_reasoning_content_and_refusal() -> None:
    deepseek = ADAPTER.parse_response(payload("deepseek_chat_response.json"))
    assert deepseek.output_messages[0].parts == (
        ReasoningPart("Compare the decimals: 0.11 < 0.8."), TextPart("9.11 is smaller than 9.8."))
    assert deepseek.usage == Usage(17, 130, reasoning_output_tokens=118)
    refusal = ADAPTER.parse_response(payload("openai_chat_response_refusal.json"))
    assert refusal.output_messages[0].parts == (TextPart("I'm sorry, I can't help with that."),)
    assert refusal.usage == Usage(30, 9)  # no details at all: None, not 0


def test_response_without_usage_has_usage_none() -> None:
    body = payload_json("openai_chat_response.json")
    del body["usage"]
    assert ADAPTER.parse_response(as_body(body)).usage is None


def test_response_several_choices() -> None:
    body = payload_json("openai_chat_response.json")
    second = {**body["choices"][0], "index": 1, "finish_reason": "length",
              "message": {"role": "assistant", "content": "Sunny."}}
    body["choices"].append(second)
    response = ADAPTER.parse_response(as_body(body))
    assert response.finish_reasons == ("stop", "length")
    assert response.output_messages[1].parts == (TextPart("Sunny."),)


def test_error_bodies() -> None:
    error = ADAPTER.parse_response(payload("openai_error_429.json"))
    assert error.error_type == "requests"
    assert error.usage is None and error.output_messages == ()
    azure = ADAPTER.parse_response(payload("azure_openai_error_content_filter.json"))
    assert azure.error_type == "content_filter"  # type is null: the code is used
    vllm = ADAPTER.parse_response(as_body({
        "object": "error", "message": "max_tokens too large", "type": "BadRequestError",
        "param": None, "code": 400}))
    assert vllm.error_type == "BadRequestError"


@pytest.mark.parametrize(("body", "message"), [
    (b"<html>502 Bad Gateway</html>", "response body is not JSON"),
    (b"[]", "response body is not a JSON object (got array)"),
    (b'{"choices": {}}', "choices must be an array (got object)"),
    (b'{"choices": [{"message": {"content": 3}}]}',
     "choices[0].message.content must be a string, an array of parts or null (got number)"),
    (b'{"choices": [], "usage": {"prompt_tokens": "12"}}',
     "usage.prompt_tokens must be an integer (got string)"),
    (b'{"choices": [], "usage": {"prompt_tokens_details": {"cached_tokens": []}}}',
     "usage.prompt_tokens_details.cached_tokens must be an integer (got array)"),
])
def test_malformed_responses_raise_parse_error(body: bytes, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        ADAPTER.parse_response(body)
    assert str(caught.value).startswith(message), str(caught.value)


# --------------------------------------------------------------------------- stream


def test_stream_text_with_final_usage_chunk() -> None:
    response, signals, problems = replay(ADAPTER, [payload("openai_chat_stream.txt")])
    assert problems == []
    assert response.id == "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert response.model == "gpt-4o-2024-08-06"
    assert response.output_messages == (ChatMessage(
        "assistant", (TextPart("Tomorrow: 21°C and sunny in Paris."),), finish_reason="stop"),)
    assert response.finish_reasons == ("stop",)
    assert response.usage == Usage(2006, 11, cache_read_input_tokens=1920)
    assert response.service_tier == "default"
    assert response.system_fingerprint == "fp_eb9dce56a8"
    assert signals[:-2] == [StreamSignal()] * 11
    assert signals[-2] == StreamSignal(counts_as_chunk=False, usage_only=True)
    assert signals[-1] == StreamSignal(counts_as_chunk=False, terminal=True)


def test_stream_without_usage_chunk_has_usage_none() -> None:
    response, signals, problems = replay(ADAPTER, [payload("openai_chat_stream_no_usage.txt")])
    assert problems == []
    assert response.usage is None
    assert response.finish_reasons == ("length",)
    assert response.output_messages[0].parts == (TextPart("Tomorrow: 21"),)
    assert not any(s.usage_only for s in signals)


def test_stream_tool_call_arguments_are_reassembled() -> None:
    response, _, problems = replay(ADAPTER, [payload("openai_chat_stream_tool_calls.txt")])
    assert problems == []
    assert response.output_messages == (ChatMessage("assistant", (
        ToolCallPart("get_weather", "call_Kx7mQ2aB", WEATHER_ARGS),
        ToolCallPart("get_time", "call_Vb3nP8cD", '{"tz":"Europe/Paris"}'),
    ), finish_reason="tool_calls"),)
    assert response.usage == Usage(152, 48)


def test_stream_several_choices_accumulate_per_index() -> None:
    response, _, problems = replay(ADAPTER, [payload("openai_chat_stream_n2.txt")])
    assert problems == []
    assert response.finish_reasons == ("stop", "length")
    assert [m.parts for m in response.output_messages] == [
        (TextPart("Sunny skies."),), (TextPart("Rain showers, then"),)]


def test_azure_prompt_filter_chunk_is_not_a_chunk() -> None:
    response, signals, problems = replay(ADAPTER, [payload("azure_openai_chat_stream.txt")])
    assert problems == []
    assert signals[0] == StreamSignal(counts_as_chunk=False)
    assert response.id == "chatcmpl-BAZURE0001"
    assert response.model == "gpt-4o-2024-11-20"
    assert response.output_messages[0].parts == (TextPart("Bonjour"),)


def test_stream_reasoning_and_refusal_deltas() -> None:
    accumulator = ADAPTER.new_stream_accumulator()
    for delta in ({"role": "assistant", "reasoning_content": "Think"},
                  {"reasoning_content": "ing."}, {"content": "Answer."}, {"refusal": "No."}):
        accumulator.feed(event(json.dumps({"id": "x", "choices": [{"index": 0, "delta": delta}]})))
    assert accumulator.result().output_messages[0].parts == (
        ReasoningPart("Thinking."), TextPart("Answer."), TextPart("No."))


def test_stream_error_chunk_sets_error_type() -> None:
    accumulator = ADAPTER.new_stream_accumulator()
    accumulator.feed(event('{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}]}'))
    signal = accumulator.feed(event(
        '{"error":{"message":"The server had an error","type":"server_error","code":null}}'))
    assert signal.counts_as_chunk is False
    result = accumulator.result()
    assert result.error_type == "server_error"
    assert result.output_messages[0].parts == (TextPart("Hi"),)


def test_malformed_events_are_problems_not_exceptions() -> None:
    accumulator = ADAPTER.new_stream_accumulator()
    signals = [accumulator.feed(event(data)) for data in (
        '{"id":"c","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"He"}}]}',
        "{truncated",
        "[1, 2]",
        '{"choices": {"0": "x"}}',
        '{"choices": [{"index": 0, "delta": {"tool_calls": [{"index": "0"}]}}]}',
        '{"choices":[{"index":0,"delta":{"content":"llo"},"finish_reason":"stop"}]}',
        "",
        "[DONE]",
    )]
    assert accumulator.problems == [
        "event 2 is not JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1))",
        "event 3 is not a JSON object (got array)",
        "event 4: choices must be an array (got object)",
        "event 5: choices[0].delta.tool_calls[0].index must be an integer (got string)",
    ]
    assert [s.counts_as_chunk for s in signals] == [True, False, False, False, False, True,
                                                    False, False]
    assert signals[-1].terminal
    result = accumulator.result()
    assert result.output_messages[0].parts == (TextPart("Hello"),)
    assert result.finish_reasons == ("stop",)


def test_stream_result_before_any_event_is_empty() -> None:
    result = ADAPTER.new_stream_accumulator().result()
    assert result.output_messages == () and result.usage is None and result.id is None


# --------------------------------------------------------------------------- stream usage


def test_request_with_stream_usage_adds_include_usage() -> None:
    body = as_body({"model": "m", "messages": [], "stream": True})
    rewritten = ADAPTER.request_with_stream_usage(body)
    assert rewritten is not None
    assert json.loads(rewritten) == {"model": "m", "messages": [], "stream": True,
                                     "stream_options": {"include_usage": True}}


def test_request_with_stream_usage_keeps_other_stream_options() -> None:
    body = as_body({"model": "m", "messages": [{"role": "user", "content": "é"}], "stream": True,
                    "stream_options": {"include_obfuscation": False, "include_usage": False}})
    rewritten = ADAPTER.request_with_stream_usage(body)
    assert rewritten is not None
    parsed = json.loads(rewritten)
    assert parsed["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert parsed["messages"][0]["content"] == "é"


@pytest.mark.parametrize("body", [
    {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}},
    {"model": "m", "messages": []},
    {"model": "m", "messages": [], "stream": False},
    {"model": "m", "messages": [], "stream": True, "stream_options": "bad"},
])
def test_request_with_stream_usage_leaves_other_bodies_alone(body: object) -> None:
    assert ADAPTER.request_with_stream_usage(as_body(body)) is None


def test_request_with_stream_usage_of_garbage_is_none() -> None:
    assert ADAPTER.request_with_stream_usage(b"{nope") is None
    assert ADAPTER.request_with_stream_usage(b"[]") is None
