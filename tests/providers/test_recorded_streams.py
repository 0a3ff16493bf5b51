"""Every recorded stream gives the same result however the network splits it."""

from __future__ import annotations

import pytest

from llmtrace_otel.providers.anthropic_messages import AnthropicMessagesAdapter
from llmtrace_otel.providers.base import APIAdapter
from llmtrace_otel.providers.openai_chat import OpenAIChatAdapter
from llmtrace_otel.providers.openai_completions import OpenAICompletionsAdapter
from llmtrace_otel.providers.openai_responses import OpenAIResponsesAdapter
from tests.providers.recorded import fixed_chunks, payload, random_chunks, replay

STREAMS: list[tuple[str, APIAdapter]] = [
    ("openai_chat_stream.txt", OpenAIChatAdapter()),
    ("openai_chat_stream_no_usage.txt", OpenAIChatAdapter()),
    ("openai_chat_stream_tool_calls.txt", OpenAIChatAdapter()),
    ("openai_chat_stream_n2.txt", OpenAIChatAdapter()),
    ("azure_openai_chat_stream.txt", OpenAIChatAdapter()),
    ("openai_completions_stream.txt", OpenAICompletionsAdapter()),
    ("openai_responses_stream.txt", OpenAIResponsesAdapter()),
    ("openai_responses_stream_function_call.txt", OpenAIResponsesAdapter()),
    ("openai_responses_stream_failed.txt", OpenAIResponsesAdapter()),
    ("anthropic_stream.txt", AnthropicMessagesAdapter()),
    ("anthropic_stream_delta_usage.txt", AnthropicMessagesAdapter()),
    ("anthropic_stream_error.txt", AnthropicMessagesAdapter()),
]


@pytest.mark.parametrize(("name", "adapter"), STREAMS, ids=[name for name, _ in STREAMS])
def test_split_at_any_byte_boundary(name: str, adapter: APIAdapter) -> None:
    data = payload(name)
    expected = replay(adapter, [data])
    assert expected[2] == [], expected[2]
    assert expected[0].output_messages or expected[0].error_type
    assert replay(adapter, fixed_chunks(data, 1)) == expected
    for seed in range(5):
        assert replay(adapter, random_chunks(data, seed)) == expected, seed
    assert replay(adapter, [data.replace(b"\n", b"\r\n")]) == expected


@pytest.mark.parametrize(("name", "adapter"), STREAMS, ids=[name for name, _ in STREAMS])
def test_stream_without_final_separator_is_completed_by_flush(name: str,
                                                              adapter: APIAdapter) -> None:
    data = payload(name)
    assert replay(adapter, [data.rstrip(b"\n")]) == replay(adapter, [data])
