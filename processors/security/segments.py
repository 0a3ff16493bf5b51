"""The texts of a GenAI span, each with where it came from: what detectors scan.

Reads the semconv content attributes (JSON, as ``llmtrace_otel/telemetry/content.py`` and
other instrumentations write them) and the legacy forms:

=============================================  ======  =====================================
attribute                                      side    source
=============================================  ======  =====================================
``gen_ai.system_instructions``                 input   system
``gen_ai.input.messages`` text parts           input   by role: user, system, assistant, tool
``gen_ai.input.messages`` tool_call_response   input   tool (a tool result the model reads)
``gen_ai.input.messages`` tool_call arguments  input   assistant (an earlier call, history)
``gen_ai.tool.definitions`` descriptions       input   tool (tool poisoning lives here)
``gen_ai.output.messages`` text/reasoning      output  assistant
``gen_ai.output.messages`` tool_call args      output  tool_call
``gen_ai.tool.call.arguments``                 output  tool_call (execute_tool spans)
``gen_ai.tool.call.result``                    input   tool
``gen_ai.prompt`` / ``gen_ai.prompt.N.*``      input   by role (user when unknown)
``gen_ai.completion`` / ``gen_ai.completion.*`` output  assistant
=============================================  ======  =====================================

Malformed JSON is read as plain text of the attribute, never raised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_COMPLETION,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROMPT,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_DEFINITIONS,
)
from opentelemetry.util.types import AttributeValue

from llmtrace_processors.json_text import loads
from llmtrace_processors.security.findings import Side

__all__ = ["Segment", "Source", "segments_from_attributes", "system_prompt_of"]


class Source:
    """Where a text came from, which decides how its evidence is read."""

    USER = "user"
    SYSTEM = "system"
    TOOL = "tool"  # tool results and definitions: data the model reads
    DOCUMENT = "document"  # retrieved or pasted documents
    ASSISTANT = "assistant"  # model output (and earlier model turns)
    TOOL_CALL = "tool_call"  # arguments the model produced for a tool


@dataclass(frozen=True, slots=True)
class Segment:
    """One text of a span: ``location`` names the attribute (and message/part index).

    ``offset`` is where ``text`` starts in the span's *side text*: the side's system
    instruction and message parts joined with ``\n`` (a tool call shown as
    ``name(arguments)``), the text the trace viewer highlights findings in. None for
    texts outside it (tool definitions, execute_tool attributes, legacy attributes).
    """

    text: str
    side: str
    source: str
    location: str
    offset: int | None = None


_ROLE_SOURCE = {
    "user": Source.USER,
    "human": Source.USER,
    "system": Source.SYSTEM,
    "developer": Source.SYSTEM,
    "assistant": Source.ASSISTANT,
    "model": Source.ASSISTANT,
    "ai": Source.ASSISTANT,
    "tool": Source.TOOL,
    "function": Source.TOOL,
    "ipython": Source.TOOL,
}
_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(content|role)$")


def _text(value: Any) -> str:
    """A JSON value as text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _loads(raw: AttributeValue) -> Any:
    if not isinstance(raw, str):
        return None
    try:
        return loads(raw)
    except ValueError:
        return None


class _SideText:
    """Running length of each side's text, as the viewer joins it."""

    __slots__ = ("length",)

    def __init__(self) -> None:
        self.length = {Side.INPUT: 0, Side.OUTPUT: 0}

    def place(self, side: str, shown: str, lead: int = 0) -> int:
        """Add a block of text ``shown``; return where its segment (``lead`` chars into the
        block) starts."""
        start = self.length[side]
        self.length[side] = start + len(shown) + 1
        return start + lead


def _part_segments(
    part: Any, side: str, source: str, location: str, sides: _SideText | None
) -> Iterator[Segment]:
    if isinstance(part, str):
        offset = sides.place(side, part) if sides is not None else None
        yield Segment(part, side, source, location, offset)
        return
    if not isinstance(part, Mapping):
        return
    kind = part.get("type")
    content = part.get("content")
    if isinstance(content, str):
        offset = sides.place(side, content) if sides is not None else None
        if kind in ("text", "reasoning", None):
            yield Segment(content, side, source, location, offset)
    elif kind == "tool_call_response":
        text = _text(part.get("response"))
        offset = sides.place(side, text) if sides is not None else None
        yield Segment(text, side, Source.TOOL, location, offset)
    elif kind == "tool_call":
        arguments = part.get("arguments")
        text = _text(arguments)
        name = str(part.get("name") or "tool")
        offset = (sides.place(side, f"{name}({text})", len(name) + 1)
                  if sides is not None else None)
        if arguments is not None:
            call_source = Source.TOOL_CALL if side == Side.OUTPUT else Source.ASSISTANT
            yield Segment(text, side, call_source, location, offset)


def _messages(
    raw: AttributeValue, key: str, side: str, sides: _SideText | None = None
) -> Iterator[Segment]:
    data = _loads(raw)
    if not isinstance(data, list):
        if isinstance(raw, str) and raw:
            yield Segment(raw, side, Source.USER if side == Side.INPUT else Source.ASSISTANT, key)
        return
    default = Source.USER if side == Side.INPUT else Source.ASSISTANT
    for i, message in enumerate(data):
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role") or "").lower()
        source = _ROLE_SOURCE.get(role, default) if side == Side.INPUT else Source.ASSISTANT
        parts = message.get("parts")
        if parts is None and "content" in message:  # {"role", "content"} (legacy shape)
            parts = [message.get("content")]
            sides = None  # not a shape the viewer shows
        if isinstance(parts, str):
            parts = [parts]
        if not isinstance(parts, list):
            continue
        for j, part in enumerate(parts):
            yield from _part_segments(part, side, source, f"{key}[{i}].parts[{j}]", sides)


def _system(raw: AttributeValue, sides: _SideText) -> Iterator[Segment]:
    data = _loads(raw)
    if isinstance(data, list):
        for j, part in enumerate(data):
            yield from _part_segments(part, Side.INPUT, Source.SYSTEM,
                                      f"{GEN_AI_SYSTEM_INSTRUCTIONS}[{j}]", sides)
    elif isinstance(raw, str) and raw:
        yield Segment(raw, Side.INPUT, Source.SYSTEM, GEN_AI_SYSTEM_INSTRUCTIONS)


def _tool_definitions(raw: AttributeValue) -> Iterator[Segment]:
    data = _loads(raw)
    if not isinstance(data, list):
        return
    for i, tool in enumerate(data):
        if isinstance(tool, Mapping):
            text = _text(tool.get("description"))
            parameters = tool.get("parameters")
            if parameters is not None:  # parameter descriptions can carry instructions too
                text = f"{text}\n{_text(parameters)}" if text else _text(parameters)
            if text:
                yield Segment(text, Side.INPUT, Source.TOOL, f"{GEN_AI_TOOL_DEFINITIONS}[{i}]")


def _indexed(attributes: Mapping[str, AttributeValue]) -> Iterator[Segment]:
    """OpenLLMetry-style ``gen_ai.prompt.0.content`` / ``gen_ai.prompt.0.role``."""
    found: dict[tuple[str, int], dict[str, str]] = {}
    for key, value in attributes.items():
        match = _INDEXED.match(key)
        if match is not None and isinstance(value, str):
            found.setdefault((match.group(1), int(match.group(2))), {})[match.group(3)] = value
    for (kind, index), fields in sorted(found.items()):
        content = fields.get("content")
        if not content:
            continue
        if kind == "prompt":
            source = _ROLE_SOURCE.get(fields.get("role", "user").lower(), Source.USER)
            yield Segment(content, Side.INPUT, source, f"{GEN_AI_PROMPT}.{index}.content")
        else:
            yield Segment(content, Side.OUTPUT, Source.ASSISTANT,
                          f"{GEN_AI_COMPLETION}.{index}.content")


def segments_from_attributes(attributes: Mapping[str, AttributeValue]) -> list[Segment]:
    """Every non-empty text of a span, in a stable order (input first)."""
    out: list[Segment] = []
    sides = _SideText()
    raw = attributes.get(GEN_AI_SYSTEM_INSTRUCTIONS)
    if raw is not None:
        out.extend(_system(raw, sides))
    raw = attributes.get(GEN_AI_INPUT_MESSAGES)
    if raw is not None:
        out.extend(_messages(raw, GEN_AI_INPUT_MESSAGES, Side.INPUT, sides))
    raw = attributes.get(GEN_AI_PROMPT)
    if raw is not None:
        out.extend(_messages(raw, GEN_AI_PROMPT, Side.INPUT))
    raw = attributes.get(GEN_AI_TOOL_DEFINITIONS)
    if raw is not None:
        out.extend(_tool_definitions(raw))
    raw = attributes.get(GEN_AI_TOOL_CALL_RESULT)
    if isinstance(raw, str) and raw:
        out.append(Segment(raw, Side.INPUT, Source.TOOL, GEN_AI_TOOL_CALL_RESULT))
    raw = attributes.get(GEN_AI_OUTPUT_MESSAGES)
    if raw is not None:
        out.extend(_messages(raw, GEN_AI_OUTPUT_MESSAGES, Side.OUTPUT, sides))
    raw = attributes.get(GEN_AI_COMPLETION)
    if raw is not None:
        out.extend(_messages(raw, GEN_AI_COMPLETION, Side.OUTPUT))
    raw = attributes.get(GEN_AI_TOOL_CALL_ARGUMENTS)
    if isinstance(raw, str) and raw:
        out.append(Segment(raw, Side.OUTPUT, Source.TOOL_CALL, GEN_AI_TOOL_CALL_ARGUMENTS))
    if any(key.startswith(("gen_ai.prompt.", "gen_ai.completion.")) for key in attributes):
        out.extend(_indexed(attributes))
    return [segment for segment in out if segment.text.strip()]


def system_prompt_of(segments: list[Segment]) -> str | None:
    """The system instructions of a span (all system-source input texts, joined)."""
    texts = [s.text for s in segments if s.source == Source.SYSTEM and s.side == Side.INPUT]
    return "\n".join(texts) if texts else None
