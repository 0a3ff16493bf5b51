from __future__ import annotations

import json

import pytest

from llmtrace_otel.providers.base import ParseError
from llmtrace_otel.providers.openai_completions import OpenAICompletionsAdapter
from llmtrace_otel.providers.types import ChatMessage, Operation, StreamSignal, TextPart, Usage
from tests.providers.recorded import as_body, payload, replay

ADAPTER = OpenAICompletionsAdapter()


def test_request_parameters_and_prompts() -> None:
    request = ADAPTER.parse_request(payload("openai_completions_request.json"))
    assert request.operation is Operation.TEXT_COMPLETION
    assert request.model == "gpt-3.5-turbo-instruct"
    assert request.max_tokens == 7
    assert request.temperature == 0.0 and request.top_p == 1.0
    assert request.choice_count == 1
    assert request.stop_sequences == ("\n",)
    assert request.seed == 7
    assert request.frequency_penalty == 0.1 and request.presence_penalty == 0.2
    assert request.stream is False
    assert request.input_messages == (
        ChatMessage("user", (TextPart("Say this is a test."),)),
        ChatMessage("user", (TextPart("Say hello."),)),
    )


def test_request_prompt_string_and_token_arrays() -> None:
    single = ADAPTER.parse_request(b'{"model": "m", "prompt": "Once upon"}')
    assert single.input_messages == (ChatMessage("user", (TextPart("Once upon"),)),)
    tokens = ADAPTER.parse_request(b'{"model": "m", "prompt": [[1212, 318], [257, 1332]]}')
    assert tokens.input_messages == ()  # token ids carry no text
    flat = ADAPTER.parse_request(b'{"model": "m", "prompt": [1212, 318, 257]}')
    assert flat.input_messages == ()


def test_request_stream_usage() -> None:
    request = ADAPTER.parse_request(
        b'{"model": "m", "prompt": "x", "stream": true, "stream_options": {"include_usage": true}}')
    assert request.stream and request.stream_usage_requested
    rewritten = ADAPTER.request_with_stream_usage(b'{"model": "m", "prompt": "x", "stream": true}')
    assert rewritten is not None
    assert json.loads(rewritten)["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(("body", "message"), [
    (b"nope", "request body is not JSON"),
    (b"[1]", "request body is not a JSON object (got array)"),
    (b'{"prompt": 3}',
     "prompt must be a string, an array of strings or an array of token arrays (got number)"),
    (b'{"prompt": ["a", {"b": 1}]}', "prompt[1] must be a string or tokens (got object)"),
    (b'{"prompt": "a", "best_of": 1, "max_tokens": "7"}',
     "max_tokens must be an integer (got string)"),
])
def test_malformed_requests(body: bytes, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        ADAPTER.parse_request(body)
    assert str(caught.value).startswith(message), str(caught.value)


def test_response_choices_and_usage() -> None:
    response = ADAPTER.parse_response(payload("openai_completions_response.json"))
    assert response.id == "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7"
    assert response.model == "gpt-3.5-turbo-instruct"
    assert response.finish_reasons == ("length", "stop")
    assert response.output_messages == (
        ChatMessage("assistant", (TextPart("\n\nThis is indeed a test"),), finish_reason="length"),
        ChatMessage("assistant", (TextPart("\n\nHello!"),), finish_reason="stop"),
    )
    assert response.usage == Usage(10, 10)
    assert response.system_fingerprint == "fp_44709d6fcb"


def test_response_choices_out_of_order_are_sorted_by_index() -> None:
    body = json.loads(payload("openai_completions_response.json"))
    body["choices"].reverse()
    response = ADAPTER.parse_response(as_body(body))
    assert response.finish_reasons == ("length", "stop")


def test_error_body() -> None:
    assert ADAPTER.parse_response(payload("openai_error_429.json")).error_type == "requests"


def test_malformed_response() -> None:
    with pytest.raises(ParseError, match=r"^choices\[0\]\.text must be a string \(got number\)"):
        ADAPTER.parse_response(b'{"choices": [{"text": 1}]}')


def test_stream_text_and_usage_chunk() -> None:
    response, signals, problems = replay(ADAPTER, [payload("openai_completions_stream.txt")])
    assert problems == []
    assert response.id == "cmpl-7iA7iJjj8V2zOkCGvWF2hAkDWBQZe"
    assert response.output_messages == (
        ChatMessage("assistant", (TextPart("\n\nThis is a test"),), finish_reason="stop"),)
    assert response.usage == Usage(5, 6)
    assert signals[-2] == StreamSignal(counts_as_chunk=False, usage_only=True)
    assert signals[-1].terminal
