"""OpenAI embeddings: ``POST /v1/embeddings``.

The inputs are not turned into messages: the GenAI conventions define no content
attributes for embeddings, and inputs are often large documents.
"""

from __future__ import annotations

from llmtrace_otel.providers._json import (
    error_message,
    json_type,
    loads_object,
    opt_int,
    opt_list,
    opt_object,
    opt_str,
    require_object,
)
from llmtrace_otel.providers._openai_wire import error_type
from llmtrace_otel.providers.base import ParseError
from llmtrace_otel.providers.types import (
    LLMRequest,
    LLMResponse,
    Operation,
    SSEEvent,
    StreamSignal,
    Usage,
)

__all__ = ["EmbeddingsStreamAccumulator", "OpenAIEmbeddingsAdapter"]

_NOT_A_CHUNK = StreamSignal(counts_as_chunk=False)


class EmbeddingsStreamAccumulator:
    """The embeddings API never streams; an event stream is noted once and ignored."""

    __slots__ = ("_problems",)

    def __init__(self) -> None:
        self._problems: list[str] = []

    @property
    def problems(self) -> list[str]:
        return self._problems

    def feed(self, event: SSEEvent) -> StreamSignal:
        if not self._problems:
            self._problems.append("the embeddings API does not stream; events were ignored")
        return _NOT_A_CHUNK

    def result(self) -> LLMResponse:
        return LLMResponse()


def _base64_float32_count(text: str) -> int | None:
    """How many little-endian float32 values a base64 embedding holds, without decoding.

    The OpenAI SDKs ask for ``encoding_format: "base64"`` by default, so this is the
    common case, not an edge case.
    """
    length = len(text)
    if length % 4:
        return None
    size = length // 4 * 3 - (2 if text.endswith("==") else 1 if text.endswith("=") else 0)
    return size // 4 if size % 4 == 0 else None


def _check_input(value: object) -> None:
    if value is None or isinstance(value, str):
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str | int | list) or isinstance(item, bool):
                raise ParseError(
                    f"input[{i}] must be a string or tokens (got {json_type(item)})")
        return
    raise ParseError(f"input must be a string or an array (got {json_type(value)})")


class OpenAIEmbeddingsAdapter:
    """``POST /v1/embeddings``. Stateless; one instance serves every call."""

    __slots__ = ()
    default_provider = "openai"
    api = "openai.embeddings"

    def parse_request(self, body: bytes) -> LLMRequest:
        obj = loads_object(body, "request body")
        _check_input(obj.get("input"))
        opt_int(obj, "dimensions")  # validated only: no request attribute carries it
        encoding = opt_str(obj, "encoding_format")
        return LLMRequest(
            operation=Operation.EMBEDDINGS,
            model=opt_str(obj, "model"),
            encoding_formats=(encoding,) if encoding else (),
        )

    def parse_response(self, body: bytes) -> LLMResponse:
        obj = loads_object(body, "response body")
        failure = error_type(obj)
        if failure is not None:
            return LLMResponse(model=opt_str(obj, "model"), error_type=failure,
                               error_message=error_message(obj))
        dimensions: int | None = None
        data = opt_list(obj, "data")
        if data:
            first = require_object(data[0], "data[0]")
            vector = first.get("embedding")
            if isinstance(vector, list):
                dimensions = len(vector)
            elif isinstance(vector, str):
                dimensions = _base64_float32_count(vector)
            elif vector is not None:
                raise ParseError(
                    f"data[0].embedding must be an array or a base64 string "
                    f"(got {json_type(vector)})")
        usage = opt_object(obj, "usage")
        return LLMResponse(
            id=opt_str(obj, "id"),
            model=opt_str(obj, "model"),
            usage=None if usage is None else Usage(
                input_tokens=opt_int(usage, "prompt_tokens", "usage.")),
            embedding_dimensions=dimensions,
        )

    def new_stream_accumulator(self) -> EmbeddingsStreamAccumulator:
        return EmbeddingsStreamAccumulator()

    def request_with_stream_usage(self, body: bytes) -> bytes | None:
        return None
