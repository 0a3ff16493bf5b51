"""Message content as the GenAI semantic conventions serialise it.

``gen_ai.input.messages``, ``gen_ai.output.messages``, ``gen_ai.system_instructions`` and
``gen_ai.tool.definitions`` are JSON strings following the semconv JSON schemas (role +
typed ``parts``). Inline media data is never serialised: only a URI or the media type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_TOOL_DEFINITIONS,
)

from llmtrace_otel.providers.types import (
    ChatMessage,
    LLMRequest,
    LLMResponse,
    MediaPart,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolCallResponsePart,
    ToolDefinition,
)
from llmtrace_processors.json_text import loads

__all__ = ["content_attributes", "message_attributes", "part_to_json", "serialise"]

_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _maybe_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return loads(text)
    except ValueError:
        return text


def part_to_json(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "content": part.content}
    if isinstance(part, ToolCallPart):
        out: dict[str, Any] = {"type": "tool_call", "name": part.name}
        if part.id is not None:
            out["id"] = part.id
        if part.arguments is not None:
            out["arguments"] = _maybe_json(part.arguments)
        return out
    if isinstance(part, ToolCallResponsePart):
        out = {"type": "tool_call_response", "response": part.response}
        if part.id is not None:
            out["id"] = part.id
        return out
    if isinstance(part, ReasoningPart):
        return {"type": "reasoning", "content": part.content}
    if isinstance(part, MediaPart):
        if part.uri is not None:
            media: dict[str, Any] = {"type": "uri", "modality": part.modality, "uri": part.uri}
        else:  # inline data is not kept; say what was there
            media = {"type": "blob", "modality": part.modality}
        if part.mime_type is not None:
            media["mime_type"] = part.mime_type
        return media
    raise TypeError(f"unknown part type {type(part).__name__}")


def _message_to_json(message: ChatMessage, latest: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "parts": [part_to_json(p) for p in message.parts]}
    if message.name is not None:
        out["name"] = message.name
    # The latest conventions deprecate it (#363): gen_ai.response.finish_reasons says it.
    if message.finish_reason is not None and not latest:
        out["finish_reason"] = message.finish_reason
    return out


def _tool_to_json(tool: ToolDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {"type": tool.type, "name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    if tool.parameters is not None:
        out["parameters"] = _maybe_json(tool.parameters)
    return out


def serialise(items: Iterable[Any]) -> str:
    return _DUMPS(list(items))


def content_attributes(request: LLMRequest | None, response: LLMResponse | None, *,
                       latest: bool = False) -> dict[str, str]:
    """The opt-in content attributes for one call (only those with something in them)."""
    return message_attributes(
        request.system_instructions if request is not None else (),
        request.input_messages if request is not None else (),
        request.tool_definitions if request is not None else (),
        response.output_messages if response is not None else (),
        latest=latest,
    )


def message_attributes(
    system_instructions: Sequence[Part],
    input_messages: Sequence[ChatMessage],
    tool_definitions: Sequence[ToolDefinition],
    output_messages: Sequence[ChatMessage],
    *,
    latest: bool = False,
) -> dict[str, str]:
    """:func:`content_attributes` from the parts themselves (no request/response built:
    the collector's normalisation calls this for every translated span). ``latest``: the
    latest conventions' shape (no per-message ``finish_reason`` in the output messages)."""
    attributes: dict[str, str] = {}
    if system_instructions:
        attributes[GEN_AI_SYSTEM_INSTRUCTIONS] = serialise(
            part_to_json(p) for p in system_instructions
        )
    if input_messages:
        attributes[GEN_AI_INPUT_MESSAGES] = serialise(
            _message_to_json(m) for m in input_messages
        )
    if tool_definitions:
        attributes[GEN_AI_TOOL_DEFINITIONS] = serialise(
            _tool_to_json(t) for t in tool_definitions
        )
    if output_messages:
        attributes[GEN_AI_OUTPUT_MESSAGES] = serialise(
            _message_to_json(m, latest) for m in output_messages
        )
    return attributes
