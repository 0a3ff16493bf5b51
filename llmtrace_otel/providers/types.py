"""Typed values produced by the provider adapters.

Everything past an adapter speaks these frozen dataclasses, never raw JSON dicts.
Message and part shapes follow the GenAI semantic conventions' JSON schema for
``gen_ai.input.messages`` / ``gen_ai.output.messages`` / ``gen_ai.system_instructions``
so the telemetry layer can serialise them without knowing which API produced them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Operation(StrEnum):
    """``gen_ai.operation.name`` values the proxy recognises."""

    CHAT = "chat"
    TEXT_COMPLETION = "text_completion"
    EMBEDDINGS = "embeddings"


@dataclass(frozen=True, slots=True)
class TextPart:
    content: str


@dataclass(frozen=True, slots=True)
class ReasoningPart:
    content: str


@dataclass(frozen=True, slots=True)
class ToolCallPart:
    """A tool/function call requested by the model (assistant side)."""

    name: str
    id: str | None = None
    arguments: str | None = None  # raw JSON text as the API gave it


@dataclass(frozen=True, slots=True)
class ToolCallResponsePart:
    """The result of a tool call sent back to the model (tool/user side)."""

    response: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class MediaPart:
    """An image/audio/file part. Inline data is never kept, only a URI or its type."""

    modality: str  # "image" | "audio" | "video" | "file"
    uri: str | None = None
    mime_type: str | None = None


Part = TextPart | ReasoningPart | ToolCallPart | ToolCallResponsePart | MediaPart


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str
    parts: tuple[Part, ...]
    name: str | None = None
    finish_reason: str | None = None  # output messages only


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    name: str
    description: str | None = None
    type: str = "function"
    parameters: str | None = None  # JSON schema as compact JSON text


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage as reported by the provider. ``None`` means "not reported".

    ``input_tokens`` is the *total* input, including cached tokens, for every provider
    (Anthropic reports cache tokens separately, and the adapter adds them in) so that
    ``gen_ai.usage.input_tokens`` means the same thing everywhere, as semconv requires.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """What the client asked for, parsed from the request body."""

    operation: Operation
    model: str | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    max_tokens: int | None = None
    stop_sequences: tuple[str, ...] = ()
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    choice_count: int | None = None
    encoding_formats: tuple[str, ...] = ()
    system_instructions: tuple[Part, ...] = ()
    input_messages: tuple[ChatMessage, ...] = ()
    tool_definitions: tuple[ToolDefinition, ...] = ()
    # OpenAI streams only: did the client itself ask for the final usage chunk?
    stream_usage_requested: bool = False


@dataclass(frozen=True, slots=True)
class LLMResponse:
    """What the model answered, from a JSON body or an accumulated stream."""

    id: str | None = None
    model: str | None = None
    finish_reasons: tuple[str, ...] = ()
    usage: Usage | None = None
    output_messages: tuple[ChatMessage, ...] = ()
    embedding_dimensions: int | None = None
    service_tier: str | None = None
    system_fingerprint: str | None = None
    # Provider error class from an error body or an error event (e.g. "rate_limit_error").
    error_type: str | None = None
    # The provider's own words for the error ("Rate limit reached for ..."), unbounded and
    # unscrubbed: the recorder bounds it and removes secrets before it goes on the span.
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class StreamSignal:
    """What the relay needs to know about one SSE event, decided by the accumulator."""

    counts_as_chunk: bool = True  # a chunk for time-to-first-chunk / per-chunk timing
    terminal: bool = False  # ``[DONE]`` or ``message_stop``: the call is complete
    usage_only: bool = False  # an OpenAI usage-only chunk (choices == [])


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One server-sent event. ``raw`` is the exact bytes received, separator included."""

    raw: bytes
    event: str | None = None
    data: str = ""
