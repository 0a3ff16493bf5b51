"""The contract every API shape implements (one adapter per API shape).

Adapters are pure: bytes in, typed values out, no I/O, no telemetry. Both front doors
(the proxy and the SDK instrumentation) use the same adapters.
"""

from __future__ import annotations

from typing import Protocol

from llmtrace_otel.providers.types import LLMRequest, LLMResponse, SSEEvent, StreamSignal

__all__ = ["APIAdapter", "ParseError", "StreamAccumulator"]


class ParseError(ValueError):
    """A body that is not JSON or not the shape the API documents.

    The proxy never fails a call because of it: the call is forwarded unchanged and the
    message is recorded on the span.
    """


class StreamAccumulator(Protocol):
    """Consumes a response stream event by event and builds the final response."""

    def feed(self, event: SSEEvent) -> StreamSignal:
        """Account for one event. Must not raise on odd events; note them instead."""
        ...

    def result(self) -> LLMResponse:
        """The response assembled so far (complete once a terminal event was fed)."""
        ...

    @property
    def problems(self) -> list[str]:
        """Events that could not be understood (malformed JSON, unknown shapes)."""
        ...


class APIAdapter(Protocol):
    """One API shape, e.g. OpenAI chat completions or Anthropic messages."""

    #: ``gen_ai.provider.name`` to use when nothing more specific is known.
    default_provider: str
    #: Stable identifier of the API shape, e.g. ``"openai.chat_completions"``.
    api: str

    def parse_request(self, body: bytes) -> LLMRequest:
        """Parse a request body. Raises :class:`ParseError` on malformed input."""
        ...

    def parse_response(self, body: bytes) -> LLMResponse:
        """Parse a non-streaming response body (success or error). Raises ParseError."""
        ...

    def new_stream_accumulator(self) -> StreamAccumulator:
        """A fresh accumulator for one streamed response."""
        ...

    def request_with_stream_usage(self, body: bytes) -> bytes | None:
        """For APIs that only report streamed usage on request (OpenAI
        ``stream_options.include_usage``), the body with that option added; ``None``
        when the API needs no change or the body cannot be rewritten safely."""
        ...
