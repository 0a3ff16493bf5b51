"""OpenAI legacy text completions: ``POST /v1/completions``."""

from __future__ import annotations

from typing import Any

from llmtrace_otel.providers._json import (
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
from llmtrace_otel.providers._openai_wire import error_type, openai_usage, with_stream_usage
from llmtrace_otel.providers.base import ParseError
from llmtrace_otel.providers.openai_chat import OpenAIChunkAccumulator
from llmtrace_otel.providers.types import (
    ChatMessage,
    LLMRequest,
    LLMResponse,
    Operation,
    TextPart,
)

__all__ = ["OpenAICompletionsAdapter"]


def _prompt_messages(prompt: Any) -> tuple[ChatMessage, ...]:
    """``prompt``: a string, an array of strings, or token arrays (which carry no text).

    Each text prompt becomes one user message.
    """
    if prompt is None:
        return ()
    if isinstance(prompt, str):
        return (ChatMessage("user", (TextPart(prompt),)),)
    if not isinstance(prompt, list):
        raise ParseError(
            "prompt must be a string, an array of strings or an array of token arrays "
            f"(got {json_type(prompt)})")
    messages: list[ChatMessage] = []
    for i, item in enumerate(prompt):
        if isinstance(item, str):
            messages.append(ChatMessage("user", (TextPart(item),)))
        elif not isinstance(item, int | list) or isinstance(item, bool):
            raise ParseError(f"prompt[{i}] must be a string or tokens (got {json_type(item)})")
    return tuple(messages)


class OpenAICompletionsAdapter:
    """``POST /v1/completions``. Stateless; one instance serves every call."""

    __slots__ = ()
    default_provider = "openai"
    api = "openai.completions"

    def parse_request(self, body: bytes) -> LLMRequest:
        obj = loads_object(body, "request body")
        options = opt_object(obj, "stream_options") or {}
        return LLMRequest(
            operation=Operation.TEXT_COMPLETION,
            model=opt_str(obj, "model"),
            stream=opt_bool(obj, "stream") or False,
            temperature=opt_float(obj, "temperature"),
            top_p=opt_float(obj, "top_p"),
            max_tokens=opt_int(obj, "max_tokens"),
            stop_sequences=str_tuple(obj, "stop"),
            seed=opt_int(obj, "seed"),
            frequency_penalty=opt_float(obj, "frequency_penalty"),
            presence_penalty=opt_float(obj, "presence_penalty"),
            choice_count=opt_int(obj, "n"),
            input_messages=_prompt_messages(obj.get("prompt")),
            stream_usage_requested=opt_bool(options, "include_usage", "stream_options.") is True,
        )

    def parse_response(self, body: bytes) -> LLMResponse:
        obj = loads_object(body, "response body")
        failure = error_type(obj)
        if failure is not None:
            return LLMResponse(id=opt_str(obj, "id"), model=opt_str(obj, "model"),
                               error_type=failure, error_message=error_message(obj))
        indexed: list[tuple[int, ChatMessage]] = []
        for i, raw in enumerate(opt_list(obj, "choices") or ()):
            where = f"choices[{i}]"
            choice = require_object(raw, where)
            where += "."
            text = opt_str(choice, "text", where)
            index = opt_int(choice, "index", where)
            indexed.append((i if index is None else index, ChatMessage(
                "assistant", (TextPart(text),) if text else (),
                finish_reason=opt_str(choice, "finish_reason", where))))
        indexed.sort(key=lambda pair: pair[0])  # n * best_of choices may come out of order
        messages = tuple(message for _, message in indexed)
        return LLMResponse(
            id=opt_str(obj, "id"),
            model=opt_str(obj, "model"),
            finish_reasons=tuple(m.finish_reason for m in messages if m.finish_reason),
            usage=openai_usage(opt_object(obj, "usage")),
            output_messages=messages,
            system_fingerprint=opt_str(obj, "system_fingerprint"),
        )

    def new_stream_accumulator(self) -> OpenAIChunkAccumulator:
        return OpenAIChunkAccumulator()

    def request_with_stream_usage(self, body: bytes) -> bytes | None:
        return with_stream_usage(body)
