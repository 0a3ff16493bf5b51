"""Anthropic Messages API: ``POST /v1/messages``.

Anthropic reports ``input_tokens`` *without* the cached tokens
(``cache_read_input_tokens``, ``cache_creation_input_tokens``); :class:`Usage` wants the
total input, so the adapter adds them up. Inline media (base64 images and documents) is
never kept: only a URL or the media type.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
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
    str_tuple,
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

__all__ = ["AnthropicMessagesAdapter", "AnthropicStreamAccumulator"]

_CALL_BLOCKS = frozenset({"tool_use", "server_tool_use"})
_CUSTOM_TOOL_TYPES = frozenset({"custom"})
_CHUNK = StreamSignal()
_TERMINAL = StreamSignal(terminal=True)
_STOP = StreamSignal(counts_as_chunk=False, terminal=True)
_DELTA_KEYS = MappingProxyType({"text_delta": "text", "input_json_delta": "partial_json",
               "thinking_delta": "thinking"})


# --------------------------------------------------------------------------- content


def _source_part(block: dict[str, Any], modality: str, where: str) -> MediaPart:
    source = opt_object(block, "source", where) or {}
    at = where + "source."
    kind = source.get("type")
    if kind == "url":
        return MediaPart(modality, opt_str(source, "url", at), None)
    if kind == "text":
        return MediaPart(modality, None, opt_str(source, "media_type", at) or "text/plain")
    return MediaPart(modality, None, opt_str(source, "media_type", at))  # base64, file, ...


def _blocks(content: Any, where: str) -> list[Part]:
    """``content``: a string or an array of content blocks. Unknown blocks are skipped."""
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    if not isinstance(content, list):
        raise ParseError(
            f"{where} must be a string or an array of blocks (got {json_type(content)})")
    parts: list[Part] = []
    for i, raw in enumerate(content):
        at = f"{where}[{i}]"
        block = require_object(raw, at)
        at += "."
        kind = block.get("type")
        if kind == "text":
            text = opt_str(block, "text", at)
            if text:
                parts.append(TextPart(text))
        elif kind == "thinking":
            thinking = opt_str(block, "thinking", at)
            if thinking:
                parts.append(ReasoningPart(thinking))
        elif kind in _CALL_BLOCKS:
            value = block.get("input")
            parts.append(ToolCallPart(opt_str(block, "name", at) or "", opt_str(block, "id", at),
                                      None if value is None else dumps_compact(value)))
        elif kind == "tool_result":
            text = "".join(p.content for p in _blocks(block.get("content"), at + "content")
                           if isinstance(p, TextPart))
            parts.append(ToolCallResponsePart(text, opt_str(block, "tool_use_id", at)))
        elif kind == "image":
            parts.append(_source_part(block, "image", at))
        elif kind == "document":
            parts.append(_source_part(block, "file", at))
    return parts


def _messages(raw_messages: list[Any]) -> tuple[ChatMessage, ...]:
    out: list[ChatMessage] = []
    for i, raw in enumerate(raw_messages):
        where = f"messages[{i}]"
        message = require_object(raw, where)
        role = opt_str(message, "role", where + ".")
        if not role:
            raise ParseError(f"{where}.role is missing")
        out.append(ChatMessage(role, tuple(_blocks(message.get("content"), where + ".content"))))
    return tuple(out)


def _tools(body: dict[str, Any]) -> tuple[ToolDefinition, ...]:
    tools: list[ToolDefinition] = []
    for i, raw in enumerate(opt_list(body, "tools") or ()):
        where = f"tools[{i}]."
        tool = require_object(raw, where[:-1])
        kind = opt_str(tool, "type", where)
        schema = tool.get("input_schema")
        tools.append(ToolDefinition(
            name=opt_str(tool, "name", where) or kind or "",
            description=opt_str(tool, "description", where),
            type="function" if kind is None or kind in _CUSTOM_TOOL_TYPES else kind,
            parameters=None if schema is None else dumps_compact(schema),
        ))
    return tuple(tools)


# --------------------------------------------------------------------------- usage


class _Tokens:
    """Usage counters as Anthropic reports them (input excludes the cache)."""

    __slots__ = ("cache_creation", "cache_read", "input", "output", "thinking")

    def __init__(self) -> None:
        self.input: int | None = None
        self.cache_read: int | None = None
        self.cache_creation: int | None = None
        self.output: int | None = None
        self.thinking: int | None = None

    def update(self, usage: dict[str, Any], where: str) -> None:
        """Take every count present (``message_delta`` counts are cumulative)."""
        for attr, key in (("input", "input_tokens"), ("output", "output_tokens"),
                          ("cache_read", "cache_read_input_tokens"),
                          ("cache_creation", "cache_creation_input_tokens")):
            value = opt_int(usage, key, where)
            if value is not None:
                setattr(self, attr, value)
        details = opt_object(usage, "output_tokens_details", where)
        if details is not None:
            thinking = opt_int(details, "thinking_tokens", where + "output_tokens_details.")
            if thinking is not None:
                self.thinking = thinking

    def usage(self) -> Usage | None:
        if self.input is None and self.cache_read is None and self.cache_creation is None \
                and self.output is None:
            return None
        total = None
        if self.input is not None or self.cache_read is not None \
                or self.cache_creation is not None:
            total = (self.input or 0) + (self.cache_read or 0) + (self.cache_creation or 0)
        # Reported zeros for the cache/thinking details read as "not reported" (as for OpenAI).
        return Usage(total, self.output, self.cache_read or None, self.cache_creation or None,
                     self.thinking or None)


def _error_type(body: dict[str, Any]) -> str | None:
    error = body.get("error")
    if isinstance(error, dict):
        return opt_str(error, "type", "error.") or "error"
    return "error" if body.get("type") == "error" else None


# --------------------------------------------------------------------------- stream


class _Block:
    __slots__ = ("fallback", "id", "kind", "name", "pieces")

    def __init__(self, block: dict[str, Any], where: str) -> None:
        kind = block.get("type")
        self.kind = kind if isinstance(kind, str) else "text"
        self.name = opt_str(block, "name", where) or ""
        self.id = opt_str(block, "id", where)
        self.pieces: list[str] = []
        self.fallback: str | None = None  # tool input given whole in content_block_start
        if self.kind in _CALL_BLOCKS:
            value = block.get("input")
            self.fallback = None if value is None else dumps_compact(value)
        else:
            text = block.get("text", block.get("thinking"))
            if isinstance(text, str) and text:
                self.pieces.append(text)

    def part(self) -> Part | None:
        text = "".join(self.pieces)
        if self.kind in _CALL_BLOCKS:
            return ToolCallPart(self.name, self.id, text or self.fallback)
        if not text:
            return None
        if self.kind == "thinking":
            return ReasoningPart(text)
        return TextPart(text) if self.kind == "text" else None


class AnthropicStreamAccumulator(JsonEventAccumulator):
    """``message_start`` / ``content_block_*`` / ``message_delta`` / ``message_stop``.

    ``ping`` and ``message_stop`` are not chunks; ``message_stop`` and ``error`` are
    terminal. ``message_delta`` usage is cumulative and replaces what came before.
    """

    __slots__ = ("_blocks", "_error", "_error_message", "_id", "_model", "_role", "_stop_reason",
                 "_tokens")

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict[int, _Block] = {}
        self._tokens = _Tokens()
        self._id: str | None = None
        self._model: str | None = None
        self._role = "assistant"
        self._stop_reason: str | None = None
        self._error: str | None = None
        self._error_message: str | None = None

    def _apply(self, payload: dict[str, Any], name: str | None) -> StreamSignal:
        kind = opt_str(payload, "type") or name
        if kind == "content_block_delta":
            delta = opt_object(payload, "delta") or {}
            key = _DELTA_KEYS.get(str(delta.get("type")))
            if key is not None:
                piece = opt_str(delta, key, "delta.")
                if piece:
                    self._block(opt_int(payload, "index")).pieces.append(piece)
        elif kind == "content_block_start":
            index = opt_int(payload, "index")
            block = opt_object(payload, "content_block") or {}
            self._blocks[index if index is not None else len(self._blocks)] = _Block(
                block, "content_block.")
        elif kind == "message_start":
            message = opt_object(payload, "message") or {}
            self._id = opt_str(message, "id", "message.")
            self._model = opt_str(message, "model", "message.")
            self._role = opt_str(message, "role", "message.") or self._role
            usage = opt_object(message, "usage", "message.")
            if usage is not None:
                self._tokens.update(usage, "message.usage.")
        elif kind == "message_delta":
            delta = opt_object(payload, "delta") or {}
            self._stop_reason = opt_str(delta, "stop_reason", "delta.") or self._stop_reason
            usage = opt_object(payload, "usage")
            if usage is not None:
                self._tokens.update(usage, "usage.")
        elif kind == "message_stop":
            return _STOP
        elif kind == "ping":
            return NOT_A_CHUNK
        elif kind == "error":
            self._error = _error_type(payload) or "error"
            self._error_message = error_message(payload)
            return _TERMINAL
        return _CHUNK

    def _block(self, index: int | None) -> _Block:
        key = index if index is not None else max(self._blocks, default=0)
        block = self._blocks.get(key)
        if block is None:  # a delta without its start: assume text
            block = self._blocks[key] = _Block({}, "")
        return block

    def text_pieces(self) -> Iterator[tuple[Hashable, list[str]]]:
        """(block index, pieces so far) of every content block being streamed (text,
        thinking, tool input JSON); the lists grow as events are fed (incremental
        scanning, ``llmtrace_otel/proxy/stream_guard.py``)."""
        for index, block in self._blocks.items():
            yield index, block.pieces

    def result(self) -> LLMResponse:
        parts = [p for k in sorted(self._blocks) if (p := self._blocks[k].part()) is not None]
        message = ChatMessage(self._role, tuple(parts), finish_reason=self._stop_reason)
        return LLMResponse(
            id=self._id,
            model=self._model,
            finish_reasons=(self._stop_reason,) if self._stop_reason else (),
            usage=self._tokens.usage(),
            output_messages=(message,) if parts or self._stop_reason else (),
            error_type=self._error,
            error_message=self._error_message,
        )


# --------------------------------------------------------------------------- adapter


class AnthropicMessagesAdapter:
    """``POST /v1/messages``. Stateless; one instance serves every call."""

    __slots__ = ()
    default_provider = "anthropic"
    api = "anthropic.messages"

    def parse_request(self, body: bytes) -> LLMRequest:
        obj = loads_object(body, "request body")
        return LLMRequest(
            operation=Operation.CHAT,
            model=opt_str(obj, "model"),
            stream=opt_bool(obj, "stream") or False,
            temperature=opt_float(obj, "temperature"),
            top_p=opt_float(obj, "top_p"),
            top_k=opt_float(obj, "top_k"),
            max_tokens=opt_int(obj, "max_tokens"),
            stop_sequences=str_tuple(obj, "stop_sequences"),
            system_instructions=tuple(_blocks(obj.get("system"), "system")),
            input_messages=_messages(opt_list(obj, "messages") or []),
            tool_definitions=_tools(obj),
        )

    def parse_response(self, body: bytes) -> LLMResponse:
        obj = loads_object(body, "response body")
        failure = _error_type(obj)
        if failure is not None:
            return LLMResponse(error_type=failure, error_message=error_message(obj))
        tokens = _Tokens()
        usage = opt_object(obj, "usage")
        if usage is not None:
            tokens.update(usage, "usage.")
        stop = opt_str(obj, "stop_reason")
        parts = _blocks(obj.get("content"), "content")
        return LLMResponse(
            id=opt_str(obj, "id"),
            model=opt_str(obj, "model"),
            finish_reasons=(stop,) if stop else (),
            usage=tokens.usage(),
            output_messages=(ChatMessage(opt_str(obj, "role") or "assistant", tuple(parts),
                                         finish_reason=stop),),
        )

    def new_stream_accumulator(self) -> AnthropicStreamAccumulator:
        return AnthropicStreamAccumulator()

    def request_with_stream_usage(self, body: bytes) -> bytes | None:
        return None  # message_start and message_delta always carry usage
