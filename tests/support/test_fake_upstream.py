"""The fake upstream speaks the real APIs: the real openai/anthropic SDKs talk to it directly."""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.support.fake_upstream import (
    EMBEDDING_DIMENSIONS,
    REPLY_TEXT,
    SCENARIO_HEADER,
    TOOL_ARGUMENTS,
    FakeUpstream,
    usage_for,
)

MESSAGES: list[Any] = [{"role": "user", "content": "Say hello"}]
OPENAI_TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "lookup_weather", "parameters": {"type": "object", "properties": {}}}}]
ANTHROPIC_TOOLS: list[Any] = [{"name": "lookup_weather",
                               "input_schema": {"type": "object", "properties": {}}}]


def scenario(name: str, **extra: str) -> dict[str, str]:
    return {SCENARIO_HEADER: name, **extra}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture()
def oai(upstream: FakeUpstream) -> openai.OpenAI:
    upstream.clear()
    return openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0,
                         timeout=10)


@pytest.fixture()
def claude(upstream: FakeUpstream) -> anthropic.Anthropic:
    upstream.clear()
    return anthropic.Anthropic(base_url=upstream.anthropic_base_url, api_key="sk-ant-test",
                               max_retries=0, timeout=10)


# --------------------------------------------------------------------------- OpenAI


def test_chat_plain(oai: openai.OpenAI, upstream: FakeUpstream) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["x-fake-received-authorization"] == "yes"
    assert raw.headers["x-request-id"].startswith("req_")
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.choices[0].message.content == REPLY_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 6)
    assert completion.usage.total_tokens == 18
    recorded = upstream.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.headers["authorization"] == "Bearer sk-test"
    assert recorded.json()["model"] == "gpt-4o-mini"


def test_chat_stream_without_usage(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                              stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == REPLY_TEXT
    assert len([c for c in chunks if c.choices[0].delta.content]) >= 3
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_stream_without_usage_has_no_usage_key(upstream: FakeUpstream) -> None:
    body = json.dumps({"model": "m", "messages": MESSAGES, "stream": True}).encode()
    raw = _post(upstream.url + "/v1/chat/completions", body).decode()
    assert "usage" not in raw
    assert raw.endswith("data: [DONE]\n\n")


def test_chat_stream_with_usage(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True,
        stream_options={"include_usage": True}))
    *content, last = chunks
    assert all(chunk.usage is None for chunk in content)
    assert last.choices == []
    assert last.usage is not None and last.usage.total_tokens == 18
    assert last.model == "gpt-4o-mini-2024-07-18"


def test_chat_tools_plain_and_stream(oai: openai.OpenAI) -> None:
    headers = scenario("tools")
    completion = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                             tools=OPENAI_TOOLS, extra_headers=headers)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "lookup_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]

    chunks = list(oai.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                              tools=OPENAI_TOOLS, stream=True,
                                              extra_headers=headers))
    pieces = [tc.function.arguments for c in chunks for tc in c.choices[0].delta.tool_calls or []
              if tc.function and tc.function.arguments]
    assert len(pieces) > 1 and "".join(pieces) == TOOL_ARGUMENTS
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_chat_cache_and_reasoning_usage(oai: openai.OpenAI) -> None:
    cached = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                         extra_headers=scenario("cache")).usage
    assert cached is not None and cached.prompt_tokens == 2006
    assert cached.prompt_tokens_details is not None
    assert cached.prompt_tokens_details.cached_tokens == 1024
    reasoning = oai.chat.completions.create(model="o3-mini", messages=MESSAGES,
                                            extra_headers=scenario("reasoning")).usage
    assert reasoning is not None and reasoning.completion_tokens_details is not None
    assert reasoning.completion_tokens_details.reasoning_tokens == 64


def test_legacy_completions(oai: openai.OpenAI) -> None:
    completion = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello")
    assert completion.object == "text_completion"
    assert completion.choices[0].text == REPLY_TEXT
    assert completion.usage is not None and completion.usage.total_tokens == 18
    chunks = list(oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello",
                                         stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == REPLY_TEXT
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 12


def test_embeddings_float_and_base64(oai: openai.OpenAI) -> None:
    floats = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"],
                                   encoding_format="float")
    assert [item.index for item in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) == EMBEDDING_DIMENSIONS
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 12
    assert floats.model == "text-embedding-3-small"

    encoded = oai.embeddings.create(model="text-embedding-3-small", input="a",
                                    encoding_format="base64")
    raw = encoded.data[0].embedding
    assert isinstance(raw, str)
    decoded = list(struct.unpack(f"<{EMBEDDING_DIMENSIONS}f", base64.b64decode(raw)))
    assert decoded == floats.data[0].embedding

    # Without encoding_format the SDK asks for base64 and decodes it itself.
    default = oai.embeddings.create(model="text-embedding-3-small", input="a")
    assert list(default.data[0].embedding) == floats.data[0].embedding


def test_responses_plain(oai: openai.OpenAI) -> None:
    response = oai.responses.create(model="gpt-4o-mini", input="Say hello",
                                    extra_headers=scenario("cache"))
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == REPLY_TEXT
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 1024
    reasoning = oai.responses.create(model="o3", input="x", extra_headers=scenario("reasoning"))
    assert reasoning.usage is not None
    assert reasoning.usage.output_tokens_details.reasoning_tokens == 64


def test_responses_stream(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model="gpt-4o-mini", input="Say hello", stream=True))
    types = [event.type for event in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    for name in ("response.output_item.added", "response.content_part.added",
                 "response.output_text.done"):
        assert name in types
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == REPLY_TEXT
    final = events[-1].response  # type: ignore[union-attr]
    assert final.usage is not None and final.usage.total_tokens == 18

    with oai.responses.stream(model="gpt-4o-mini", input="Say hello") as stream:
        assert stream.get_final_response().output_text == REPLY_TEXT


def test_responses_tools(oai: openai.OpenAI) -> None:
    response = oai.responses.create(model="gpt-4o", input="weather?", extra_headers=
                                    scenario("tools"), tools=[{
                                        "type": "function", "name": "lookup_weather",
                                        "parameters": {"type": "object", "properties": {}},
                                        "strict": False}])
    call = response.output[0]
    assert call.type == "function_call"
    assert (call.name, call.arguments) == ("lookup_weather", TOOL_ARGUMENTS)


def test_models_list(oai: openai.OpenAI) -> None:
    models = [model.id for model in oai.models.list()]
    assert "gpt-4o-mini" in models
    assert oai.models.retrieve("gpt-4o").id == "gpt-4o"


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_plain(claude: anthropic.Anthropic, upstream: FakeUpstream) -> None:
    raw = claude.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)
    assert raw.headers["x-fake-received-authorization"] == "yes"
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.model == "claude-haiku-4-5"
    assert message.content[0].type == "text" and message.content[0].text == REPLY_TEXT
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 6)
    assert message.usage.cache_read_input_tokens == 0
    sent = upstream.requests[-1].headers
    assert "sk-ant-test" in (sent.get("x-api-key", "") + sent.get("authorization", ""))


def test_anthropic_stream_with_cache_usage(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES,
                                extra_headers=scenario("cache")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == REPLY_TEXT
    assert final.stop_reason == "end_turn"
    expected = usage_for("anthropic", "cache")
    assert final.usage.cache_read_input_tokens == 1024 == expected.cached_tokens
    assert final.usage.cache_creation_input_tokens == 512
    assert final.usage.output_tokens == expected.output_tokens

    events = list(claude.messages.create(model="claude-haiku-4-5", max_tokens=64,
                                         messages=MESSAGES, stream=True))
    types = [event.type for event in events]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert types.count("content_block_delta") > 1
    assert events[0].message.usage.output_tokens == 1  # type: ignore[union-attr]


def test_anthropic_tools(claude: anthropic.Anthropic) -> None:
    headers = scenario("tools")
    message = claude.messages.create(model="claude-haiku-4-5", max_tokens=64,
                                     messages=MESSAGES, tools=ANTHROPIC_TOOLS,
                                     extra_headers=headers)
    assert message.stop_reason == "tool_use"
    tool_use = message.content[-1]
    assert tool_use.type == "tool_use"
    assert (tool_use.name, tool_use.input) == ("lookup_weather", {"city": "Paris"})

    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES,
                                tools=ANTHROPIC_TOOLS, extra_headers=headers) as stream:
        final = stream.get_final_message()
    streamed = final.content[-1]
    assert streamed.type == "tool_use" and streamed.input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("name", "error_class", "error_type"), [
    ("error-400", openai.BadRequestError, "invalid_request_error"),
    ("error-429", openai.RateLimitError, "requests"),
    ("error-500", openai.InternalServerError, "server_error"),
    ("error-503", openai.InternalServerError, "server_error"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_openai_errors(oai: openai.OpenAI, name: str, error_class: type[openai.APIStatusError],
                       error_type: str, stream: bool) -> None:
    with pytest.raises(error_class) as caught:
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=stream,
                                    extra_headers=scenario(name))
    error = caught.value
    assert error.status_code == int(name.removeprefix("error-"))
    assert isinstance(error.body, dict) and error.body["type"] == error_type
    assert set(error.body) == {"message", "type", "param", "code"}
    if name == "error-429":
        assert error.response.headers["retry-after"] == "2"


@pytest.mark.parametrize(("name", "error_class", "error_type"), [
    ("error-400", anthropic.BadRequestError, "invalid_request_error"),
    ("error-429", anthropic.RateLimitError, "rate_limit_error"),
    ("error-500", anthropic.InternalServerError, "api_error"),
    ("error-503", anthropic.InternalServerError, "overloaded_error"),
    ("error-529", anthropic.InternalServerError, "overloaded_error"),
])
def test_anthropic_errors(claude: anthropic.Anthropic, name: str,
                          error_class: type[anthropic.APIStatusError], error_type: str) -> None:
    with pytest.raises(error_class) as caught:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=MESSAGES,
                               extra_headers=scenario(name))
    error = caught.value
    assert error.status_code == int(name.removeprefix("error-"))
    assert isinstance(error.body, dict) and error.body["type"] == "error"
    assert error.body["error"]["type"] == error_type
    assert error.request_id is not None and error.request_id.startswith("req_")


def test_unknown_scenario_is_a_400(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="x-fake-scenario"):
        oai.chat.completions.create(model="m", messages=MESSAGES,
                                    extra_headers=scenario("no-such-thing"))


def test_unknown_path_is_404_and_recorded(upstream: FakeUpstream) -> None:
    upstream.clear()
    with pytest.raises(urllib.error.HTTPError) as caught:
        _post(upstream.url + "/v2/nothing", b"{}")
    assert caught.value.code == 404
    assert upstream.requests[-1].path == "/v2/nothing"


def test_authorization_presence_only(upstream: FakeUpstream) -> None:
    request = urllib.request.Request(upstream.url + "/v1/models")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["x-fake-received-authorization"] == "no"


# --------------------------------------------------------------------------- transport faults


def test_reset_midstream_raises(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    headers = scenario("reset-midstream")
    stream = oai.chat.completions.create(model="m", messages=MESSAGES, stream=True,
                                         extra_headers=headers)
    with pytest.raises(openai.APIConnectionError):
        list(stream)
    # The Anthropic stream helper lets the transport error through unwrapped.
    with pytest.raises((anthropic.APIConnectionError, httpx2.HTTPError)), claude.messages.stream(
            model="c", max_tokens=8, messages=MESSAGES, extra_headers=headers) as events:
        list(events)
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="m", messages=MESSAGES, extra_headers=headers)


def test_split_events_still_parse(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    headers = scenario("split-events")
    chunks = list(oai.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True},
        extra_headers=headers))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY_TEXT
    assert chunks[-1].usage is not None
    with claude.messages.stream(model="c", max_tokens=8, messages=MESSAGES,
                                extra_headers=headers) as stream:
        assert stream.get_final_message().content[0].text == REPLY_TEXT  # type: ignore[union-attr]
    events = list(oai.responses.create(model="m", input="x", stream=True,
                                       extra_headers=headers))
    assert events[-1].type == "response.completed"
    plain = oai.chat.completions.create(model="m", messages=MESSAGES, extra_headers=headers)
    assert plain.choices[0].message.content == REPLY_TEXT


def test_malformed_sse_breaks_the_sdk_parser(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model="m", messages=MESSAGES, stream=True,
                                         extra_headers=scenario("malformed-sse"))
    with pytest.raises(json.JSONDecodeError):
        list(stream)


def test_slow_and_slow_stream(oai: openai.OpenAI) -> None:
    started = time.perf_counter()
    oai.chat.completions.create(model="m", messages=MESSAGES,
                                extra_headers=scenario("slow", **{"x-fake-delay": "0.3"}))
    assert time.perf_counter() - started >= 0.3
    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.2).chat.completions.create(
            model="m", messages=MESSAGES, extra_headers=scenario("slow"))

    started = time.perf_counter()
    stamps = [time.perf_counter() - started for _ in oai.chat.completions.create(
        model="m", messages=MESSAGES, stream=True,
        extra_headers=scenario("slow-stream", **{"x-fake-delay": "0.05"}))]
    assert stamps[-1] - stamps[0] >= 0.05 * (len(stamps) - 2)


def test_hang_times_out_and_does_not_block_stop() -> None:
    with FakeUpstream() as up:
        client = openai.OpenAI(base_url=up.openai_base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.APITimeoutError):
            client.with_options(timeout=0.3).chat.completions.create(
                model="m", messages=MESSAGES, extra_headers=scenario("hang"))

    up = FakeUpstream().start()
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client = openai.OpenAI(base_url=up.openai_base_url, api_key="k", max_retries=0)
            client.chat.completions.create(model="m", messages=MESSAGES,
                                           extra_headers=scenario("hang"))
        except BaseException as error:  # noqa: BLE001 - recorded for the assertion
            outcome.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    up.wait_for_requests(1)
    started = time.perf_counter()
    up.stop()
    caller.join(timeout=5)
    assert time.perf_counter() - started < 3
    assert outcome and isinstance(outcome[0], openai.APIConnectionError)


def test_requests_are_recorded_and_cleared(oai: openai.OpenAI, upstream: FakeUpstream) -> None:
    oai.embeddings.create(model="e", input="x", extra_query={"trace": "1"})
    recorded = upstream.requests
    assert len(recorded) == 1 and recorded[0].query == "trace=1"
    assert all(name == name.lower() for name in recorded[0].headers)
    upstream.clear()
    assert upstream.requests == []


def _post(url: str, body: bytes) -> bytes:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return bytes(response.read())
