"""Message content found in older dialects -> the typed messages the proxy produces.

Every dialect carries, one way or another, OpenAI-like messages: a role, a content that is
a string or a list of typed parts, tool calls, a tool-call id. :class:`Conversation`
collects them and :meth:`Conversation.attributes` serialises them with the very function
the proxy uses (``telemetry.content.message_attributes``), so a received span's
``gen_ai.input.messages`` has exactly the shape of a proxied one: system/developer messages
go to ``gen_ai.system_instructions``, the others to ``gen_ai.input.messages``, the model's
choices to ``gen_ai.output.messages``, tools to ``gen_ai.tool.definitions``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmtrace_otel.providers.types import (
    ChatMessage,
    MediaPart,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolCallResponsePart,
    ToolDefinition,
)
from llmtrace_otel.telemetry.content import message_attributes
from llmtrace_processors import json_text

__all__ = [
    "Conversation",
    "as_json_text",
    "loads",
    "parts_of",
    "tool_calls_of",
    "tool_definition_of",
]

_SYSTEM_ROLES = frozenset({"system", "developer"})


def loads(value: Any) -> Any:
    """``value`` parsed as JSON when it is JSON text; the value itself otherwise."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json_text.loads(value)
        except ValueError:
            return value
    return value


def as_json_text(value: Any) -> str | None:
    """Arguments/schemas as JSON text (the typed parts keep raw JSON text)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False)


def _plain(value: Any) -> Any:
    """Tuples (how OTLP arrays decode) as lists, for json.dumps."""
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return None
    return value


def _media(kind: str, url: str | None) -> MediaPart:
    if url and url.startswith("data:"):
        mime = url[5:].split(";", 1)[0].split(",", 1)[0] or None
        return MediaPart(kind, None, mime)  # inline data is never kept
    return MediaPart(kind, url or None, None)


def _part(item: Any) -> Part | None:
    if isinstance(item, str):
        return TextPart(item)
    if not isinstance(item, Mapping):
        return None
    kind = str(item.get("type") or "text")
    if kind in ("text", "input_text", "output_text"):
        text = item.get("text", item.get("content"))
        return TextPart(str(text)) if text is not None else None
    if kind in ("reasoning", "thinking"):
        return ReasoningPart(str(item.get("text") or item.get("content") or ""))
    if kind in ("image_url", "image", "input_image"):
        image = item.get("image_url", item.get("image"))
        url = image.get("url") if isinstance(image, Mapping) else image
        return _media("image", str(url) if url else None)
    if kind in ("input_audio", "audio"):
        return MediaPart("audio")
    return None


def _is_part_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(item, Mapping) and "type" in item for item in value)


def parts_of(content: Any) -> list[Part]:
    """Parts of a message content: text, an OpenAI part list, or JSON text of one.

    Text that merely looks like JSON (a model answering in JSON) stays text.
    """
    if content is None:
        return []
    if isinstance(content, str):
        parsed = loads(content) if content.startswith("[") else None
        if not _is_part_list(parsed):
            return [TextPart(content)] if content else []
        content = parsed
    items = content if isinstance(content, Sequence) else [content]
    return [part for part in (_part(item) for item in items) if part is not None]


def tool_calls_of(calls: Any) -> list[Part]:
    """OpenAI ``tool_calls`` (``{id, function: {name, arguments}}``) as tool-call parts."""
    calls = loads(calls)
    if not isinstance(calls, Sequence) or isinstance(calls, str):
        return []
    parts: list[Part] = []
    for call in calls:
        if not isinstance(call, Mapping):
            continue
        function = call.get("function")
        function = function if isinstance(function, Mapping) else call
        name = function.get("name")
        if not name:
            continue
        call_id = call.get("id")
        parts.append(ToolCallPart(str(name), str(call_id) if call_id else None,
                                  as_json_text(function.get("arguments"))))
    return parts


def tool_definition_of(tool: Any) -> ToolDefinition | None:
    """An OpenAI tool (``{type, function: {name, description, parameters}}``) or function."""
    tool = loads(tool)
    if not isinstance(tool, Mapping):
        return None
    function = tool.get("function")
    function = function if isinstance(function, Mapping) else tool
    name = function.get("name")
    if not name:
        return None
    description = function.get("description")
    return ToolDefinition(str(name), str(description) if description else None,
                          str(tool.get("type") or "function"),
                          as_json_text(function.get("parameters")))


@dataclass(slots=True)
class Conversation:
    """The messages of one span, gathered from whatever the dialect spread them over."""

    system: list[Part] = field(default_factory=list)
    inputs: list[ChatMessage] = field(default_factory=list)
    outputs: list[ChatMessage] = field(default_factory=list)
    tools: list[ToolDefinition] = field(default_factory=list)
    #: False when nothing will read content: the dialect's content is then only removed.
    enabled: bool = True

    def __bool__(self) -> bool:
        return self.enabled and bool(self.system or self.inputs or self.outputs or self.tools)

    def add_input(self, role: str, parts: Sequence[Part], name: str | None = None) -> None:
        if not self.enabled:
            return
        if role in _SYSTEM_ROLES:
            self.system.extend(parts)
        elif parts:
            self.inputs.append(ChatMessage(role, tuple(parts), name))

    def add_output(self, parts: Sequence[Part], finish_reason: str | None = None,
                   role: str = "assistant") -> None:
        if self.enabled:
            self.outputs.append(ChatMessage(role, tuple(parts), None, finish_reason))

    def add_message(self, message: Mapping[str, Any], default_role: str = "user") -> None:
        """An OpenAI-style input message: role, content, tool_calls, tool_call_id, name."""
        if not self.enabled:
            return
        role = str(message.get("role") or default_role)
        parts = parts_of(message.get("content"))
        if role == "tool":
            call_id = message.get("tool_call_id", message.get("id"))
            text = " ".join(p.content for p in parts if isinstance(p, TextPart))
            parts = [ToolCallResponsePart(text, str(call_id) if call_id else None)]
        parts.extend(tool_calls_of(message.get("tool_calls")))
        name = message.get("name")
        self.add_input(role, parts, str(name) if name else None)

    def add_choice(self, choice: Mapping[str, Any]) -> None:
        """An OpenAI-style choice: ``{index, finish_reason, message: {...}}`` or a message."""
        if not self.enabled:
            return
        message = loads(choice.get("message"))
        message = message if isinstance(message, Mapping) else choice
        parts = parts_of(message.get("content", message.get("text")))
        parts.extend(tool_calls_of(message.get("tool_calls")))
        finish = choice.get("finish_reason")
        self.add_output(parts, str(finish) if finish else None,
                        str(message.get("role") or "assistant"))

    def attributes(self) -> dict[str, str]:
        """The semconv content attributes (JSON strings) for what was gathered."""
        return message_attributes(self.system, self.inputs, self.tools, self.outputs)
