from __future__ import annotations

import json

import pytest

from llmtrace_otel.providers.base import ParseError
from llmtrace_otel.providers.openai_responses import OpenAIResponsesAdapter
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

ADAPTER = OpenAIResponsesAdapter()
RESPONSE_ID = "resp_68af1b2c3d4e5f60718293a4b5c6d7e8"
LYON_ARGS = '{"city":"Lyon","unit":"celsius"}'


# --------------------------------------------------------------------------- request


def test_request_parameters() -> None:
    request = ADAPTER.parse_request(payload("openai_responses_request.json"))
    assert request.operation is Operation.CHAT
    assert request.model == "gpt-4.1-2025-04-14"
    assert request.max_tokens == 512
    assert request.temperature == 0.3 and request.top_p == 0.95
    assert request.stream is False
    assert request.stream_usage_requested is False


def test_request_instructions_and_developer_items_are_system_instructions() -> None:
    request = ADAPTER.parse_request(payload("openai_responses_request.json"))
    assert request.system_instructions == (
        TextPart("You are a weather assistant."), TextPart("Answer in metric units."))


def test_request_input_items() -> None:
    messages = ADAPTER.parse_request(payload("openai_responses_request.json")).input_messages
    assert messages == (
        ChatMessage("user", (
            TextPart("Weather in Paris? See the photo."),
            MediaPart("image", "https://example.com/paris.jpg"),
            MediaPart("image", None, "image/png"),
            MediaPart("file", None, "application/pdf"),
        )),
        # reasoning + function_call + (after the tool output) the assistant message
        ChatMessage("assistant", (
            ReasoningPart("The user wants the weather; call get_weather."),
            ToolCallPart("get_weather", "call_Kx7mQ2aB", '{"city":"Paris","unit":"celsius"}'),
        )),
        ChatMessage("tool", (ToolCallResponsePart('{"temp":18,"sky":"cloudy"}', "call_Kx7mQ2aB"),)),
        ChatMessage("assistant", (TextPart("18°C and cloudy."),)),
        ChatMessage("user", (TextPart("And tomorrow?"),)),
    )


def test_request_tools_including_built_ins() -> None:
    request = ADAPTER.parse_request(payload("openai_responses_request.json"))
    schema = payload_json("openai_responses_request.json")["tools"][0]["parameters"]
    assert request.tool_definitions == (
        ToolDefinition("get_weather", "Current weather for a city.", "function",
                       json.dumps(schema, separators=(",", ":"))),
        ToolDefinition("web_search_preview", None, "web_search_preview", None),
    )


def test_request_string_input() -> None:
    request = ADAPTER.parse_request(
        b'{"model": "gpt-4o-mini", "input": "Say hello", "instructions": "Be nice", '
        b'"stream": true}')
    assert request.input_messages == (ChatMessage("user", (TextPart("Say hello"),)),)
    assert request.system_instructions == (TextPart("Be nice"),)
    assert request.stream is True


def test_request_function_call_output_as_parts_and_unknown_items() -> None:
    request = ADAPTER.parse_request(as_body({"model": "m", "input": [
        {"type": "function_call_output", "call_id": "c1",
         "output": [{"type": "input_text", "text": "done"}]},
        {"type": "item_reference", "id": "msg_123"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
    ]}))
    assert request.input_messages == (ChatMessage("tool", (ToolCallResponsePart("done", "c1"),)),)


@pytest.mark.parametrize(("body", "message"), [
    (b"nope", "request body is not JSON"),
    (b'"x"', "request body is not a JSON object (got string)"),
    (b'{"input": 3}', "input must be a string or an array of items (got number)"),
    (b'{"input": [3]}', "input[0] must be an object (got number)"),
    (b'{"input": [{"content": "hi"}]}', "input[0].role is missing"),
    (b'{"input": [{"role": "user", "content": {"text": "hi"}}]}',
     "input[0].content must be a string, an array of parts or null (got object)"),
    (b'{"input": "x", "instructions": ["a"]}', "instructions must be a string (got array)"),
    (b'{"input": "x", "max_output_tokens": "9"}',
     "max_output_tokens must be an integer (got string)"),
    (b'{"input": [{"type": "function_call", "name": "f", "call_id": 1}]}',
     "input[0].call_id must be a string (got number)"),
])
def test_malformed_requests(body: bytes, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        ADAPTER.parse_request(body)
    assert str(caught.value).startswith(message), str(caught.value)


# --------------------------------------------------------------------------- response


def test_response_reasoning_and_message() -> None:
    response = ADAPTER.parse_response(payload("openai_responses_response.json"))
    assert response.id == RESPONSE_ID
    assert response.model == "gpt-4.1-2025-04-14"
    assert response.finish_reasons == ("stop",)
    assert response.output_messages == (ChatMessage("assistant", (
        ReasoningPart("Use the forecast from the tool output."),
        TextPart("Tomorrow: 21°C and sunny."),
    ), finish_reason="stop"),)
    assert response.usage == Usage(input_tokens=1328, output_tokens=214,
                                   cache_read_input_tokens=1152, reasoning_output_tokens=192)
    assert response.service_tier == "default"
    assert response.error_type is None


def test_response_function_call() -> None:
    response = ADAPTER.parse_response(payload("openai_responses_response_function_call.json"))
    assert response.finish_reasons == ("tool_calls",)
    assert response.output_messages[0].parts == (
        ToolCallPart("get_weather", "call_Qw8eR4tY", LYON_ARGS),)
    assert response.usage == Usage(291, 23)


def test_response_incomplete_is_length() -> None:
    response = ADAPTER.parse_response(payload("openai_responses_response_incomplete.json"))
    assert response.finish_reasons == ("length",)
    assert response.output_messages[0].parts == (TextPart("Tomorrow: 21"),)


def test_response_failed_status_is_an_error() -> None:
    body = payload_json("openai_responses_response.json")
    body.update(status="failed", output=[], usage=None,
                error={"code": "rate_limit_exceeded", "message": "Slow down."})
    response = ADAPTER.parse_response(as_body(body))
    assert response.error_type == "rate_limit_exceeded"
    assert response.finish_reasons == ("error",)
    assert response.usage is None


def test_error_body() -> None:
    assert ADAPTER.parse_response(payload("openai_error_429.json")).error_type == "requests"


@pytest.mark.parametrize(("body", "message"), [
    (b"", "response body is not JSON"),
    (b'{"output": {}}', "output must be an array (got object)"),
    (b'{"output": [{"type": "message", "role": "assistant", "content": [{"type": '
     b'"output_text", "text": 5}]}]}', "output[0].content[0].text must be a string (got number)"),
    (b'{"output": [], "usage": {"input_tokens_details": {"cached_tokens": "1"}}}',
     "usage.input_tokens_details.cached_tokens must be an integer (got string)"),
])
def test_malformed_responses(body: bytes, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        ADAPTER.parse_response(body)
    assert str(caught.value).startswith(message), str(caught.value)


# --------------------------------------------------------------------------- stream


def test_stream_text_completed() -> None:
    response, signals, problems = replay(ADAPTER, [payload("openai_responses_stream.txt")])
    assert problems == []
    assert response.id == RESPONSE_ID
    assert response.finish_reasons == ("stop",)
    assert response.output_messages[0].parts == (TextPart("Tomorrow: 21°C and sunny."),)
    assert response.usage == Usage(1328, 9, cache_read_input_tokens=1152)
    assert signals[-1] == StreamSignal(terminal=True)
    assert not any(s.terminal for s in signals[:-1])
    assert all(s.counts_as_chunk for s in signals)


def test_stream_function_call_completed() -> None:
    response, _, problems = replay(ADAPTER, [payload("openai_responses_stream_function_call.txt")])
    assert problems == []
    assert response.finish_reasons == ("tool_calls",)
    assert response.output_messages[0].parts == (
        ToolCallPart("get_weather", "call_Qw8eR4tY", LYON_ARGS),)


def test_stream_cut_before_completion_keeps_the_deltas() -> None:
    data = payload("openai_responses_stream_function_call.txt")
    cut = data[:data.index(b"event: response.function_call_arguments.done")]
    response, signals, problems = replay(ADAPTER, [cut])
    assert problems == []
    assert response.id == RESPONSE_ID and response.model == "gpt-4.1-2025-04-14"
    assert response.output_messages == (ChatMessage("assistant", (
        ToolCallPart("get_weather", "call_Qw8eR4tY", LYON_ARGS),)),)
    assert response.usage is None and response.finish_reasons == ()
    text = payload("openai_responses_stream.txt")
    partial, _, _ = replay(ADAPTER, [text[:text.index(b"event: response.output_text.done")]])
    assert partial.output_messages[0].parts == (TextPart("Tomorrow: 21°C and sunny."),)


def test_stream_failed() -> None:
    response, signals, problems = replay(ADAPTER, [payload("openai_responses_stream_failed.txt")])
    assert problems == []
    assert response.error_type == "server_error"
    assert response.finish_reasons == ("error",)
    assert signals[-1].terminal


def test_stream_incomplete_is_terminal() -> None:
    body = payload_json("openai_responses_response_incomplete.json")
    accumulator = ADAPTER.new_stream_accumulator()
    signal = accumulator.feed(event(json.dumps(
        {"type": "response.incomplete", "sequence_number": 9, "response": body}),
        "response.incomplete"))
    assert signal.terminal
    assert accumulator.result().finish_reasons == ("length",)


def test_stream_error_event() -> None:
    accumulator = ADAPTER.new_stream_accumulator()
    accumulator.feed(event(json.dumps({"type": "response.created", "sequence_number": 0,
                                       "response": {"id": "resp_1", "model": "gpt-4o"}})))
    signal = accumulator.feed(event(json.dumps({
        "type": "error", "code": "rate_limit_exceeded", "message": "Slow down.", "param": None,
        "sequence_number": 1}), "error"))
    assert signal.terminal
    result = accumulator.result()
    assert result.error_type == "rate_limit_exceeded" and result.id == "resp_1"


def test_stream_malformed_events_are_problems() -> None:
    accumulator = ADAPTER.new_stream_accumulator()
    accumulator.feed(event("not json", "response.output_text.delta"))
    accumulator.feed(event('{"type": "response.output_text.delta", "output_index": "0", '
                           '"delta": "x"}'))
    accumulator.feed(event('{"type": "response.completed", "response": []}'))
    assert accumulator.problems == [
        "event 1 is not JSON (Expecting value: line 1 column 1 (char 0))",
        "event 2: output_index must be an integer (got string)",
        "event 3: response must be an object (got array)",
    ]
    assert accumulator.result().output_messages == ()


def test_no_stream_usage_rewrite() -> None:
    assert ADAPTER.request_with_stream_usage(b'{"model": "m", "input": "x", "stream": true}') \
        is None
