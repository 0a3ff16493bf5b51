"""The recorded payloads have the real APIs' shapes: the official SDKs' models accept them.

This guards the fixtures, not the adapters: a hand-edited payload that drifts from what
the API sends fails here first.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.providers.recorded import decode, payload, payload_json

pytest.importorskip("openai")
pytest.importorskip("anthropic")

import anthropic.types as anthropic_types  # noqa: E402
from anthropic.types import message_create_params  # noqa: E402
from openai.types import (  # noqa: E402
    CreateEmbeddingResponse,
    completion_create_params,
    embedding_create_params,
)
from openai.types.chat import ChatCompletion, ChatCompletionChunk  # noqa: E402
from openai.types.chat import completion_create_params as chat_params  # noqa: E402
from openai.types.responses import (  # noqa: E402
    Response,
    ResponseStreamEvent,
    response_create_params,
)
from pydantic import TypeAdapter  # noqa: E402

REQUESTS: list[tuple[str, Any]] = [
    ("openai_chat_request.json", chat_params.CompletionCreateParamsStreaming),
    ("openai_completions_request.json",
     completion_create_params.CompletionCreateParamsNonStreaming),
    ("openai_embeddings_request.json", embedding_create_params.EmbeddingCreateParams),
    ("openai_responses_request.json", response_create_params.ResponseCreateParamsNonStreaming),
    ("anthropic_request.json", message_create_params.MessageCreateParamsStreaming),
]
RESPONSES: list[tuple[str, Any]] = [
    ("openai_chat_response.json", ChatCompletion),
    ("openai_chat_response_tool_calls.json", ChatCompletion),
    ("openai_chat_response_reasoning.json", ChatCompletion),
    ("openai_chat_response_refusal.json", ChatCompletion),
    ("openai_embeddings_response.json", CreateEmbeddingResponse),
    # (openai_embeddings_response_base64.json: the SDK's model holds the decoded list)
    ("openai_responses_response.json", Response),
    ("openai_responses_response_function_call.json", Response),
    ("openai_responses_response_incomplete.json", Response),
    ("anthropic_response.json", anthropic_types.Message),
    ("anthropic_response_tool_use.json", anthropic_types.Message),
]
STREAMS: list[tuple[str, Any]] = [
    ("openai_chat_stream.txt", ChatCompletionChunk),
    ("openai_chat_stream_tool_calls.txt", ChatCompletionChunk),
    ("openai_chat_stream_n2.txt", ChatCompletionChunk),
    ("openai_chat_stream_no_usage.txt", ChatCompletionChunk),
    ("openai_responses_stream.txt", ResponseStreamEvent),
    ("openai_responses_stream_function_call.txt", ResponseStreamEvent),
    ("openai_responses_stream_failed.txt", ResponseStreamEvent),
    ("anthropic_stream.txt", anthropic_types.RawMessageStreamEvent),
    ("anthropic_stream_delta_usage.txt", anthropic_types.RawMessageStreamEvent),
]


@pytest.mark.parametrize(("name", "schema"), REQUESTS, ids=[n for n, _ in REQUESTS])
def test_request_payloads(name: str, schema: Any) -> None:
    TypeAdapter(schema).validate_python(payload_json(name))


@pytest.mark.parametrize(("name", "schema"), RESPONSES, ids=[n for n, _ in RESPONSES])
def test_response_payloads(name: str, schema: Any) -> None:
    TypeAdapter(schema).validate_python(payload_json(name))


@pytest.mark.parametrize(("name", "schema"), STREAMS, ids=[n for n, _ in STREAMS])
def test_stream_payloads(name: str, schema: Any) -> None:
    adapter = TypeAdapter(schema)
    for event in decode([payload(name)]):
        if event.data == "[DONE]" or event.event == "ping":
            continue
        parsed = adapter.validate_python(json.loads(event.data))
        if event.event is not None:  # typed streams name each event after its type
            assert parsed.type == event.event
