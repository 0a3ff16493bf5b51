"""OpenAI Responses API: ``POST /v1/responses``.

Input and output are lists of typed items (messages, function calls, their outputs,
reasoning). Consecutive assistant-side items (reasoning, text, calls) form one assistant
message, the way one model turn reads in chat completions. The response ``status`` is
mapped to a chat-style finish reason: ``completed`` -> ``stop`` (``tool_calls`` when the
output calls a function), ``incomplete`` -> ``length`` for ``max_output_tokens`` (else the
reason given), ``failed`` -> ``error``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from llmtrace_otel.providers._json import (
    dumps_compact,
    error_message,
    json_type,
    loads_object,
    opt_bool,
    opt_float,
    opt_int,
    opt_list,
    opt_object,
    opt_str,
    require_object,
)
from llmtrace_otel.providers._openai_wire import (
    data_url_mime_type,
    detail_count,
    error_type,
    image_part,
)
from llmtrace_otel.providers.base import ParseError
from llmtrace_otel.providers.json_events import JsonEventAccumulator
from llmtrace_otel.providers.types import (
    ChatMessage,
    LLMRequest,
    LLMResponse,
    MediaPart,
    Operation,
    Part,
    ReasoningPart,
    StreamSignal,
    TextPart,
    ToolCallPart,
    ToolCallResponsePart,
    ToolDefinition,
    Usage,
)

__all__ = ["OpenAIResponsesAdapter", "ResponsesStreamAccumulator"]

_SYSTEM_ROLES = frozenset({"system", "developer"})
_TEXT_KEYS = MappingProxyType({"input_text": "text", "output_text": "text", "refusal": "refusal"})
_CALL_KEYS = MappingProxyType({"function_call": "arguments", "custom_tool_call": "input"})
_OUTPUT_ITEMS = frozenset({"function_call_output", "custom_tool_call_output"})
_REASONING_TEXT = frozenset({"summary_text", "reasoning_text"})
_INCOMPLETE = MappingProxyType({"max_output_tokens": "length"})
_TERMINAL_EVENTS = frozenset({"response.completed", "response.failed", "response.incomplete"})
_START_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})
_TEXT_DELTAS = frozenset({"response.output_text.delta", "response.refusal.delta"})
_ARGUMENT_DELTAS = frozenset(
    {"response.function_call_arguments.delta", "response.custom_tool_call_input.delta"})
_REASONING_DELTAS = frozenset(
    {"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})
_CHUNK = StreamSignal()
_TERMINAL = StreamSignal(terminal=True)


# --------------------------------------------------------------------------- items


def _content(content: Any, where: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    if not isinstance(content, list):
        raise ParseError(
            f"{where} must be a string, an array of parts or null (got {json_type(content)})")
    parts: list[Part] = []
    for i, raw in enumerate(content):
        at = f"{where}[{i}]"
        item = require_object(raw, at)
        at += "."
        kind = item.get("type")
        if isinstance(kind, str) and kind in _TEXT_KEYS:
            text = opt_str(item, _TEXT_KEYS[kind], at)
            if text:
                parts.append(TextPart(text))
        elif kind == "input_image":
            parts.append(image_part(opt_str(item, "image_url", at)))
        elif kind == "input_file":
            data = opt_str(item, "file_data", at)
            mime = data_url_mime_type(data) if data and data.startswith("data:") else None
            parts.append(MediaPart("file", opt_str(item, "file_url", at), mime))
        elif kind == "input_audio":
            audio = opt_object(item, "input_audio", at) or {}
            fmt = opt_str(audio, "format", at + "input_audio.")
            parts.append(MediaPart("audio", None, f"audio/{fmt}" if fmt else None))
    return parts


def _reasoning(item: dict[str, Any], where: str) -> list[Part]:
    texts: list[str] = []
    for key in ("summary", "content"):
        for i, raw in enumerate(opt_list(item, key, where) or ()):
            at = f"{where}{key}[{i}]"
            piece = require_object(raw, at)
            if piece.get("type") in _REASONING_TEXT:
                text = opt_str(piece, "text", at + ".")
                if text:
                    texts.append(text)
    return [ReasoningPart("\n".join(texts))] if texts else []


def _call(item: dict[str, Any], kind: str, where: str) -> ToolCallPart:
    return ToolCallPart(opt_str(item, "name", where) or "", opt_str(item, "call_id", where),
                        opt_str(item, _CALL_KEYS[kind], where))


def _item_parts(item: dict[str, Any], where: str) -> tuple[str | None, list[Part]]:
    """(role, parts) of one input or output item; role None for items we skip."""
    kind = item.get("type")
    if kind is None or kind == "message":  # EasyInputMessage has no "type"
        role = opt_str(item, "role", where)
        if not role:
            raise ParseError(f"{where}role is missing")
        return role, _content(item.get("content"), where + "content")
    if isinstance(kind, str) and kind in _CALL_KEYS:
        return "assistant", [_call(item, kind, where)]
    if kind in _OUTPUT_ITEMS:
        output = item.get("output")
        text = output if isinstance(output, str) else "".join(
            p.content for p in _content(output, where + "output") if isinstance(p, TextPart))
        return "tool", [ToolCallResponsePart(text, opt_str(item, "call_id", where))]
    if kind == "reasoning":
        return "assistant", _reasoning(item, where)
    return None, []  # built-in tool calls, item references, ...


def _input(value: Any) -> tuple[list[Part], list[ChatMessage]]:
    system: list[Part] = []
    turns: list[tuple[str, list[Part]]] = []
    if isinstance(value, str):
        turns.append(("user", [TextPart(value)]))
    elif isinstance(value, list):
        for i, raw in enumerate(value):
            where = f"input[{i}]"
            role, parts = _item_parts(require_object(raw, where), where + ".")
            if role is None:
                continue
            if role in _SYSTEM_ROLES:
                system.extend(parts)
            elif role == "assistant" and turns and turns[-1][0] == "assistant":
                turns[-1][1].extend(parts)
            else:
                turns.append((role, parts))
    elif value is not None:
        raise ParseError(f"input must be a string or an array of items (got {json_type(value)})")
    return system, [ChatMessage(role, tuple(parts)) for role, parts in turns]


def _tools(body: dict[str, Any]) -> tuple[ToolDefinition, ...]:
    tools: list[ToolDefinition] = []
    for i, raw in enumerate(opt_list(body, "tools") or ()):
        where = f"tools[{i}]."
        tool = require_object(raw, where[:-1])
        kind = opt_str(tool, "type", where) or "function"
        name = tool.get("name")
        schema = tool.get("parameters") if kind == "function" else tool.get("format")
        tools.append(ToolDefinition(
            name=name if isinstance(name, str) else kind,  # built-ins: "web_search", ...
            description=opt_str(tool, "description", where),
            type=kind,
            parameters=None if schema is None else dumps_compact(schema),
        ))
    return tuple(tools)


# --------------------------------------------------------------------------- response


def _usage(usage: dict[str, Any] | None) -> Usage | None:
    if usage is None:
        return None
    inputs = opt_object(usage, "input_tokens_details", "usage.")
    outputs = opt_object(usage, "output_tokens_details", "usage.")
    return Usage(
        input_tokens=opt_int(usage, "input_tokens", "usage."),
        output_tokens=opt_int(usage, "output_tokens", "usage."),
        cache_read_input_tokens=detail_count(
            inputs, "cached_tokens", "usage.input_tokens_details."),
        reasoning_output_tokens=detail_count(
            outputs, "reasoning_tokens", "usage.output_tokens_details."),
    )


def _finish_reason(body: dict[str, Any], parts: list[Part]) -> str | None:
    status = opt_str(body, "status")
    if status == "completed":
        return "tool_calls" if any(isinstance(p, ToolCallPart) for p in parts) else "stop"
    if status == "incomplete":
        details = opt_object(body, "incomplete_details") or {}
        reason = opt_str(details, "reason", "incomplete_details.")
        return _INCOMPLETE.get(reason or "", reason or "incomplete")
    if status == "failed":
        return "error"
    return status if status == "cancelled" else None


def _response(body: dict[str, Any]) -> LLMResponse:
    failure = error_type(body)  # an HTTP error body, or a response whose status is failed
    if failure is None and body.get("status") == "failed":
        failure = "failed"
    parts: list[Part] = []
    for i, raw in enumerate(opt_list(body, "output") or ()):
        where = f"output[{i}]"
        parts.extend(_item_parts(require_object(raw, where), where + ".")[1])
    finish = _finish_reason(body, parts)
    messages = (ChatMessage("assistant", tuple(parts), finish_reason=finish),) \
        if parts or finish else ()
    return LLMResponse(
        id=opt_str(body, "id"),
        model=opt_str(body, "model"),
        finish_reasons=(finish,) if finish else (),
        usage=_usage(opt_object(body, "usage")),
        output_messages=messages,
        service_tier=opt_str(body, "service_tier"),
        error_type=failure,
        error_message=error_message(body) if failure is not None else None,
    )


# --------------------------------------------------------------------------- stream


class _ItemState:
    """An output item being streamed: deltas so far, or its parts once it is done."""

    __slots__ = ("call_id", "done", "kind", "name", "pieces")

    def __init__(self, item: dict[str, Any] | None) -> None:
        item = item or {}
        kind, name, call_id = item.get("type"), item.get("name"), item.get("call_id")
        self.kind = kind if isinstance(kind, str) else "message"
        self.name = name if isinstance(name, str) else ""
        self.call_id = call_id if isinstance(call_id, str) else None
        self.pieces: list[str] = []
        self.done: list[Part] | None = None

    def parts(self) -> list[Part]:
        if self.done is not None:
            return self.done
        text = "".join(self.pieces)
        if self.kind in _CALL_KEYS:
            return [ToolCallPart(self.name, self.call_id, text)]
        if not text:
            return []
        return [ReasoningPart(text) if self.kind == "reasoning" else TextPart(text)]


class ResponsesStreamAccumulator(JsonEventAccumulator):
    """Typed ``response.*`` events; the terminal event carries the whole response.

    Terminal: ``response.completed`` / ``failed`` / ``incomplete`` and ``error`` (the
    stream ends after it). Deltas are kept so that a stream cut short still has output.
    """

    __slots__ = ("_error", "_error_message", "_final", "_id", "_items", "_model", "_tier")

    def __init__(self) -> None:
        super().__init__()
        self._final: LLMResponse | None = None
        self._items: dict[int, _ItemState] = {}
        self._id: str | None = None
        self._model: str | None = None
        self._tier: str | None = None
        self._error: str | None = None
        self._error_message: str | None = None

    def _apply(self, payload: dict[str, Any], name: str | None) -> StreamSignal:
        kind = opt_str(payload, "type") or name
        if kind in _START_EVENTS or kind in _TERMINAL_EVENTS:
            response = opt_object(payload, "response") or {}
            self._id = opt_str(response, "id", "response.") or self._id
            self._model = opt_str(response, "model", "response.") or self._model
            self._tier = opt_str(response, "service_tier", "response.") or self._tier
            if kind in _START_EVENTS:
                return _CHUNK
            self._final = _response(response)
            return _TERMINAL
        if kind == "error":
            code = payload.get("code")
            self._error = code if isinstance(code, str) and code else "error"
            message = payload.get("message")
            self._error_message = message if isinstance(message, str) and message else None
            return _TERMINAL
        if kind in _TEXT_DELTAS or kind in _ARGUMENT_DELTAS or kind in _REASONING_DELTAS:
            delta = opt_str(payload, "delta")
            if delta:
                self._item(opt_int(payload, "output_index"), None).pieces.append(delta)
        elif kind == "response.output_item.added":
            self._item(opt_int(payload, "output_index"), opt_object(payload, "item"))
        elif kind == "response.output_item.done":
            item = opt_object(payload, "item")
            if item is not None:
                state = self._item(opt_int(payload, "output_index"), item)
                state.done = _item_parts(item, "item.")[1]
        return _CHUNK

    def _item(self, index: int | None, item: dict[str, Any] | None) -> _ItemState:
        key = index if index is not None else max(self._items, default=0)
        state = self._items.get(key)
        if state is None:
            state = self._items[key] = _ItemState(item)
        return state

    def text_pieces(self) -> Iterator[tuple[Hashable, list[str]]]:
        """(output index, pieces so far) of every output item being streamed (message text,
        reasoning, function-call arguments); the lists grow as events are fed (incremental
        scanning, ``llmtrace_otel/proxy/stream_guard.py``)."""
        for index, item in self._items.items():
            yield index, item.pieces

    def result(self) -> LLMResponse:
        if self._final is not None:
            final = self._final
            if self._error is not None and final.error_type is None:
                return replace(final, error_type=self._error, error_message=self._error_message)
            return final
        parts = [p for k in sorted(self._items) for p in self._items[k].parts()]
        return LLMResponse(
            id=self._id,
            model=self._model,
            output_messages=(ChatMessage("assistant", tuple(parts)),) if parts else (),
            service_tier=self._tier,
            error_type=self._error,
            error_message=self._error_message,
        )


# --------------------------------------------------------------------------- adapter


class OpenAIResponsesAdapter:
    """``POST /v1/responses``. Stateless; one instance serves every call."""

    __slots__ = ()
    default_provider = "openai"
    api = "openai.responses"

    def parse_request(self, body: bytes) -> LLMRequest:
        obj = loads_object(body, "request body")
        system, messages = _input(obj.get("input"))
        instructions = opt_str(obj, "instructions")
        if instructions:
            system.insert(0, TextPart(instructions))
        return LLMRequest(
            operation=Operation.CHAT,
            model=opt_str(obj, "model"),
            stream=opt_bool(obj, "stream") or False,
            temperature=opt_float(obj, "temperature"),
            top_p=opt_float(obj, "top_p"),
            max_tokens=opt_int(obj, "max_output_tokens"),
            system_instructions=tuple(system),
            input_messages=tuple(messages),
            tool_definitions=_tools(obj),
        )

    def parse_response(self, body: bytes) -> LLMResponse:
        return _response(loads_object(body, "response body"))

    def new_stream_accumulator(self) -> ResponsesStreamAccumulator:
        return ResponsesStreamAccumulator()

    def request_with_stream_usage(self, body: bytes) -> bytes | None:
        return None  # response.completed always carries usage
