"""OpenAI chat completions: ``POST /v1/chat/completions`` (and every compatible server)."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
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
    str_tuple,
)
from llmtrace_otel.providers._openai_wire import (
    data_url_mime_type,
    error_type,
    image_part,
    openai_usage,
    with_stream_usage,
)
from llmtrace_otel.providers.base import ParseError
from llmtrace_otel.providers.json_events import NOT_A_CHUNK, JsonEventAccumulator
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

__all__ = ["OpenAIChatAdapter", "OpenAIChunkAccumulator"]

_SYSTEM_ROLES = frozenset({"system", "developer"})
_CHUNK = StreamSignal()
_USAGE_ONLY = StreamSignal(counts_as_chunk=False, usage_only=True)
_DONE = StreamSignal(counts_as_chunk=False, terminal=True)


# --------------------------------------------------------------------------- content


def _content_parts(content: Any, where: str) -> list[Part]:
    """Message ``content``: a string, an array of typed parts, or null.

    Unknown part types are skipped (new API features must not fail the parse).
    """
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
        kind = item.get("type")
        at += "."
        if kind == "text" or kind == "refusal":
            text = opt_str(item, kind, at)
            if text:
                parts.append(TextPart(text))
        elif kind == "image_url":
            image = item.get("image_url")
            url = image if isinstance(image, str) else opt_str(
                opt_object(item, "image_url", at) or {}, "url", at + "image_url.")
            parts.append(image_part(url))
        elif kind == "input_audio":
            audio = opt_object(item, "input_audio", at) or {}
            fmt = opt_str(audio, "format", at + "input_audio.")
            parts.append(MediaPart("audio", None, f"audio/{fmt}" if fmt else None))
        elif kind == "file":
            file = opt_object(item, "file", at) or {}
            data = opt_str(file, "file_data", at + "file.")
            mime = data_url_mime_type(data) if data and data.startswith("data:") else None
            parts.append(MediaPart("file", None, mime))
    return parts


def _content_text(content: Any, where: str) -> str:
    """The text of a content that must be text only (tool results): string or text parts."""
    return "".join(p.content for p in _content_parts(content, where) if isinstance(p, TextPart))


def _tool_call(raw: Any, where: str) -> ToolCallPart:
    call = require_object(raw, where)
    at = where + "."
    if call.get("type") == "custom":
        custom = opt_object(call, "custom", at) or {}
        return ToolCallPart(opt_str(custom, "name", at + "custom.") or "", opt_str(call, "id", at),
                            opt_str(custom, "input", at + "custom."))
    function = opt_object(call, "function", at) or {}
    fat = at + "function."
    return ToolCallPart(opt_str(function, "name", fat) or "", opt_str(call, "id", at),
                        opt_str(function, "arguments", fat))


def _assistant_calls(message: dict[str, Any], where: str) -> list[Part]:
    parts: list[Part] = [
        _tool_call(call, f"{where}tool_calls[{i}]")
        for i, call in enumerate(opt_list(message, "tool_calls", where) or ())
    ]
    legacy = opt_object(message, "function_call", where)
    if legacy is not None:
        at = where + "function_call."
        parts.append(ToolCallPart(opt_str(legacy, "name", at) or "", None,
                                  opt_str(legacy, "arguments", at)))
    return parts


def _input_messages(messages: list[Any]) -> tuple[tuple[Part, ...], tuple[ChatMessage, ...]]:
    system: list[Part] = []
    out: list[ChatMessage] = []
    for i, raw in enumerate(messages):
        where = f"messages[{i}]"
        message = require_object(raw, where)
        at = where + "."
        role = opt_str(message, "role", at)
        if not role:
            raise ParseError(f"{at}role is missing")
        content = message.get("content")
        if role in _SYSTEM_ROLES:
            system.extend(_content_parts(content, at + "content"))
            continue
        parts: list[Part]
        if role == "tool" or role == "function":
            call_id = opt_str(message, "tool_call_id", at) if role == "tool" else None
            parts = [ToolCallResponsePart(_content_text(content, at + "content"), call_id)]
        else:
            parts = _content_parts(content, at + "content")
            if role == "assistant":
                parts.extend(_assistant_calls(message, at))
        out.append(ChatMessage(role, tuple(parts), opt_str(message, "name", at)))
    return tuple(system), tuple(out)


def _tool_definitions(body: dict[str, Any]) -> tuple[ToolDefinition, ...]:
    tools: list[ToolDefinition] = []
    for i, raw in enumerate(opt_list(body, "tools") or ()):
        where = f"tools[{i}]"
        tool = require_object(raw, where)
        kind = opt_str(tool, "type", where + ".") or "function"
        spec = opt_object(tool, kind, where + ".") or tool  # {"type": "function", "function": …}
        tools.append(_tool_definition(spec, kind, f"{where}.{kind}."))
    for i, raw in enumerate(opt_list(body, "functions") or ()):  # legacy
        where = f"functions[{i}]"
        tools.append(_tool_definition(require_object(raw, where), "function", where + "."))
    return tuple(tools)


def _tool_definition(spec: dict[str, Any], kind: str, where: str) -> ToolDefinition:
    schema = spec.get("parameters") if kind == "function" else spec.get("format")
    return ToolDefinition(
        name=opt_str(spec, "name", where) or "",
        description=opt_str(spec, "description", where),
        type=kind,
        parameters=None if schema is None else dumps_compact(schema),
    )


# --------------------------------------------------------------------------- response


def _output_parts(message: dict[str, Any], where: str) -> list[Part]:
    parts: list[Part] = []
    for key in ("reasoning_content", "reasoning"):  # DeepSeek, vLLM, OpenRouter
        reasoning = message.get(key)
        if isinstance(reasoning, str) and reasoning:
            parts.append(ReasoningPart(reasoning))
            break
    parts.extend(_content_parts(message.get("content"), where + "content"))
    refusal = opt_str(message, "refusal", where)
    if refusal:
        parts.append(TextPart(refusal))
    parts.extend(_assistant_calls(message, where))
    return parts


def _response(body: dict[str, Any]) -> LLMResponse:
    failure = error_type(body)
    if failure is not None:
        return LLMResponse(id=opt_str(body, "id"), model=opt_str(body, "model"),
                           error_type=failure, error_message=error_message(body))
    messages: list[ChatMessage] = []
    finishes: list[str] = []
    for i, raw in enumerate(opt_list(body, "choices") or ()):
        where = f"choices[{i}]."
        choice = require_object(raw, where[:-1])
        message = opt_object(choice, "message", where) or {}
        finish = opt_str(choice, "finish_reason", where)
        if finish:
            finishes.append(finish)
        mat = where + "message."
        messages.append(ChatMessage(opt_str(message, "role", mat) or "assistant",
                                    tuple(_output_parts(message, mat)), finish_reason=finish))
    return LLMResponse(
        id=opt_str(body, "id"),
        model=opt_str(body, "model"),
        finish_reasons=tuple(finishes),
        usage=openai_usage(opt_object(body, "usage")),
        output_messages=tuple(messages),
        service_tier=opt_str(body, "service_tier"),
        system_fingerprint=opt_str(body, "system_fingerprint"),
    )


# --------------------------------------------------------------------------- stream


class _ToolCallState:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name = ""
        self.arguments: list[str] = []


class _ChoiceState:
    __slots__ = ("finish_reason", "reasoning", "refusal", "role", "text", "tools")

    def __init__(self) -> None:
        self.role = "assistant"
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.reasoning: list[str] = []
        self.tools: dict[int, _ToolCallState] = {}
        self.finish_reason: str | None = None

    def apply(self, choice: dict[str, Any], where: str) -> None:
        text = choice.get("text")  # legacy completions chunks
        if isinstance(text, str) and text:
            self.text.append(text)
        delta = opt_object(choice, "delta", where)
        if delta:
            self._apply_delta(delta, where + "delta.")
        finish = opt_str(choice, "finish_reason", where)
        if finish:
            self.finish_reason = finish

    def _apply_delta(self, delta: dict[str, Any], where: str) -> None:
        role = opt_str(delta, "role", where)
        if role:
            self.role = role
        for key, pieces in (("content", self.text), ("refusal", self.refusal),
                            ("reasoning_content", self.reasoning), ("reasoning", self.reasoning)):
            piece = delta.get(key)
            if isinstance(piece, str) and piece:
                pieces.append(piece)
        for j, raw in enumerate(opt_list(delta, "tool_calls", where) or ()):
            at = f"{where}tool_calls[{j}]"
            call = require_object(raw, at)
            at += "."
            index = opt_int(call, "index", at)
            self._merge_call(index if index is not None else j, opt_str(call, "id", at),
                             opt_object(call, "function", at) or {}, at + "function.")
        legacy = opt_object(delta, "function_call", where)
        if legacy is not None:
            self._merge_call(0, None, legacy, where + "function_call.")

    def _merge_call(self, index: int, call_id: str | None, function: dict[str, Any],
                    where: str) -> None:
        state = self.tools.get(index)
        if state is None:
            state = self.tools[index] = _ToolCallState()
        if call_id and state.id is None:
            state.id = call_id
        name = opt_str(function, "name", where)
        if name and not state.name:
            state.name = name
        arguments = opt_str(function, "arguments", where)
        if arguments:
            state.arguments.append(arguments)

    def message(self) -> ChatMessage:
        parts: list[Part] = []
        if self.reasoning:
            parts.append(ReasoningPart("".join(self.reasoning)))
        if self.text:
            parts.append(TextPart("".join(self.text)))
        if self.refusal:
            parts.append(TextPart("".join(self.refusal)))
        for index in sorted(self.tools):
            call = self.tools[index]
            parts.append(ToolCallPart(call.name, call.id, "".join(call.arguments)))
        return ChatMessage(self.role, tuple(parts), finish_reason=self.finish_reason)


class OpenAIChunkAccumulator(JsonEventAccumulator):
    """Builds the response from ``chat.completion.chunk`` events (and the legacy
    ``text_completion`` chunks, whose choices carry ``text`` instead of ``delta``).

    Not counted as chunks: ``[DONE]`` (terminal), the usage chunk (``choices: []``,
    ``usage_only``), Azure's ``prompt_filter_results`` chunk, error chunks, and events
    that could not be parsed (noted in :attr:`problems`).
    """

    __slots__ = ("_choices", "_error", "_error_message", "_fingerprint", "_id", "_model",
                 "_tier", "_usage")

    def __init__(self) -> None:
        super().__init__()
        self._choices: dict[int, _ChoiceState] = {}
        self._id: str | None = None
        self._model: str | None = None
        self._tier: str | None = None
        self._fingerprint: str | None = None
        self._usage: Usage | None = None
        self._error: str | None = None
        self._error_message: str | None = None

    def _plain(self, data: str) -> StreamSignal | None:
        return _DONE if data == "[DONE]" or data.strip() == "[DONE]" else None

    def _apply(self, chunk: dict[str, Any], name: str | None = None) -> StreamSignal:
        failure = error_type(chunk)
        if failure is not None:
            self._error, self._error_message = failure, error_message(chunk)
            return NOT_A_CHUNK
        self._id = opt_str(chunk, "id") or self._id
        self._model = opt_str(chunk, "model") or self._model
        self._tier = opt_str(chunk, "service_tier") or self._tier
        self._fingerprint = opt_str(chunk, "system_fingerprint") or self._fingerprint
        usage = opt_object(chunk, "usage")
        if usage is not None:
            self._usage = openai_usage(usage)
        choices = opt_list(chunk, "choices")
        if not choices:  # the usage chunk, or Azure's prompt_filter_results chunk
            return _USAGE_ONLY if usage is not None and choices is not None else NOT_A_CHUNK
        for i, raw in enumerate(choices):
            where = f"choices[{i}]"
            choice = require_object(raw, where)
            index = opt_int(choice, "index", where + ".")
            key = i if index is None else index
            state = self._choices.get(key)
            if state is None:
                state = self._choices[key] = _ChoiceState()
            state.apply(choice, where + ".")
        return _CHUNK

    def text_pieces(self) -> Iterator[tuple[Hashable, list[str]]]:
        """(key, pieces so far) of every output text being streamed: each choice's text,
        refusal and reasoning, and each tool call's arguments. The lists grow as events
        are fed (incremental scanning, ``llmtrace_otel/proxy/stream_guard.py``)."""
        for index, state in self._choices.items():
            yield (index, "text"), state.text
            if state.refusal:
                yield (index, "refusal"), state.refusal
            if state.reasoning:
                yield (index, "reasoning"), state.reasoning
            for call_index, call in state.tools.items():
                yield (index, "tool", call_index), call.arguments

    def result(self) -> LLMResponse:
        states = [self._choices[k] for k in sorted(self._choices)]
        return LLMResponse(
            id=self._id,
            model=self._model,
            finish_reasons=tuple(s.finish_reason for s in states if s.finish_reason),
            usage=self._usage,
            output_messages=tuple(s.message() for s in states),
            service_tier=self._tier,
            system_fingerprint=self._fingerprint,
            error_type=self._error,
            error_message=self._error_message,
        )


# --------------------------------------------------------------------------- adapter


class OpenAIChatAdapter:
    """``POST /v1/chat/completions``. Stateless; one instance serves every call."""

    __slots__ = ()
    default_provider = "openai"
    api = "openai.chat_completions"

    def parse_request(self, body: bytes) -> LLMRequest:
        obj = loads_object(body, "request body")
        system, messages = _input_messages(opt_list(obj, "messages") or [])
        max_tokens = opt_int(obj, "max_completion_tokens")
        if max_tokens is None:
            max_tokens = opt_int(obj, "max_tokens")
        options = opt_object(obj, "stream_options") or {}
        return LLMRequest(
            operation=Operation.CHAT,
            model=opt_str(obj, "model"),
            stream=opt_bool(obj, "stream") or False,
            temperature=opt_float(obj, "temperature"),
            top_p=opt_float(obj, "top_p"),
            max_tokens=max_tokens,
            stop_sequences=str_tuple(obj, "stop"),
            seed=opt_int(obj, "seed"),
            frequency_penalty=opt_float(obj, "frequency_penalty"),
            presence_penalty=opt_float(obj, "presence_penalty"),
            choice_count=opt_int(obj, "n"),
            system_instructions=system,
            input_messages=messages,
            tool_definitions=_tool_definitions(obj),
            stream_usage_requested=opt_bool(options, "include_usage", "stream_options.") is True,
        )

    def parse_response(self, body: bytes) -> LLMResponse:
        return _response(loads_object(body, "response body"))

    def new_stream_accumulator(self) -> OpenAIChunkAccumulator:
        return OpenAIChunkAccumulator()

    def request_with_stream_usage(self, body: bytes) -> bytes | None:
        return with_stream_usage(body)
