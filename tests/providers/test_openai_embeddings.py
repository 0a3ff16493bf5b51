from __future__ import annotations

import json

import pytest

from llmtrace_otel.providers.base import ParseError
from llmtrace_otel.providers.openai_embeddings import OpenAIEmbeddingsAdapter
from llmtrace_otel.providers.types import LLMResponse, Operation, StreamSignal, Usage
from tests.providers.recorded import as_body, event, payload

ADAPTER = OpenAIEmbeddingsAdapter()


def test_request() -> None:
    request = ADAPTER.parse_request(payload("openai_embeddings_request.json"))
    assert request.operation is Operation.EMBEDDINGS
    assert request.model == "text-embedding-3-small"
    assert request.encoding_formats == ("float",)
    assert request.stream is False
    assert request.input_messages == ()  # semconv has no content attributes for embeddings


@pytest.mark.parametrize("value", ["one text", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_request_input_shapes(value: object) -> None:
    request = ADAPTER.parse_request(as_body({"model": "m", "input": value}))
    assert request.encoding_formats == ()


@pytest.mark.parametrize(("body", "message"), [
    (b'{"model": "m", "input": 3}', r"input must be a string or an array \(got number\)"),
    (b'{"model": "m", "input": [null]}', r"input\[0\] must be a string or tokens \(got null\)"),
    (b'{"model": "m", "input": "x", "encoding_format": 1}',
     r"encoding_format must be a string \(got number\)"),
    (b'{"model": "m", "input": "x", "dimensions": "8"}',
     r"dimensions must be an integer \(got string\)"),
    (b"[]", r"request body is not a JSON object \(got array\)"),
])
def test_malformed_requests(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match="^" + message):
        ADAPTER.parse_request(body)


def test_response_float_vectors() -> None:
    response = ADAPTER.parse_response(payload("openai_embeddings_response.json"))
    assert response.model == "text-embedding-3-small"
    assert response.embedding_dimensions == 8
    assert response.usage == Usage(input_tokens=11)  # output tokens: not reported, None
    assert response.output_messages == ()


def test_response_base64_vectors_count_float32_values() -> None:
    # The OpenAI SDKs ask for base64 unless told otherwise.
    response = ADAPTER.parse_response(payload("openai_embeddings_response_base64.json"))
    assert response.embedding_dimensions == 8


@pytest.mark.parametrize(("encoded", "dimensions"), [
    ("AAAAAA==", 1), ("AAAAAAAAAAA=", 2), ("AAAAAAAAAAAAAAAA", 3), ("AAA=", None), ("AAAAA", None),
])
def test_base64_dimension_arithmetic(encoded: str, dimensions: int | None) -> None:
    body = as_body({"object": "list", "data": [{"object": "embedding", "index": 0,
                                                "embedding": encoded}], "model": "m"})
    assert ADAPTER.parse_response(body).embedding_dimensions == dimensions


def test_response_without_data_or_usage() -> None:
    response = ADAPTER.parse_response(b'{"object": "list", "data": [], "model": "m"}')
    assert response.embedding_dimensions is None and response.usage is None


def test_error_body() -> None:
    assert ADAPTER.parse_response(payload("openai_error_429.json")).error_type == "requests"


def test_malformed_response() -> None:
    with pytest.raises(ParseError, match=r"^data\[0\]\.embedding must be an array or a base64"):
        ADAPTER.parse_response(as_body({"data": [{"embedding": {"x": 1}}]}))


def test_no_streaming_and_no_rewrite() -> None:
    accumulator = ADAPTER.new_stream_accumulator()
    assert accumulator.feed(event('{"x": 1}')) == StreamSignal(counts_as_chunk=False)
    accumulator.feed(event('{"x": 2}'))
    assert accumulator.problems == ["the embeddings API does not stream; events were ignored"]
    assert accumulator.result() == LLMResponse()
    body = json.dumps({"model": "m", "input": "x", "stream": True}).encode()
    assert ADAPTER.request_with_stream_usage(body) is None
