"""OpenLLMetry (Traceloop) spans -> the latest GenAI semantic conventions.

OpenLLMetry writes ``gen_ai.system`` and the semconv request/response keys (handled by
:mod:`genai_legacy`), plus its own:

* content as indexed attributes: ``gen_ai.prompt.N.role`` / ``.content`` /
  ``.tool_call_id`` / ``.tool_calls.M.{id,name,arguments}`` and ``gen_ai.completion.N.role``
  / ``.content`` / ``.finish_reason`` / ``.refusal`` / ``.tool_calls.M.*`` (``.user`` for
  the completions API); content that is a JSON list of OpenAI parts is understood;
* tools as ``llm.request.functions.N.{name,description,parameters}``;
* ``llm.request.type`` (chat, completion, embedding) -> ``gen_ai.operation.name``;
* ``llm.is_streaming``, ``llm.frequency_penalty``, ``llm.presence_penalty``, ``llm.top_k``,
  ``llm.chat.stop_sequences``, ``llm.response.finish_reason`` and the pre-semconv spellings
  ``gen_ai.usage.cache_read_input_tokens``, ``gen_ai.usage.cache_creation_input_tokens``,
  ``gen_ai.openai.system_fingerprint``;
* ``gen_ai.openai.api_base`` gives ``server.address`` / ``server.port`` when those are absent
  (the base URL itself is kept: its path is not represented elsewhere);
* the newer spellings ``gen_ai.is_streaming`` and ``gen_ai.usage.reasoning_tokens`` (0.5x-0.6x);
* the chunk events of a stream (``llm.content.completion.chunk``, later
  ``gen_ai.content.completion.chunk``): the first one's time from the span's start is
  ``gen_ai.response.time_to_first_chunk``; the events are removed;
* ``llm.request.type=completion`` on a span whose prompts have roles (0.45's Anthropic
  Messages spans) is a chat: the API shape wins over the legacy type.

:data:`CONTENT_KEYS` / :data:`CONTENT_PREFIXES`: the keys that carry content, Traceloop's
workflow and task input/output (``traceloop.entity.input`` / ``output``) included.

Span names (``openai.chat``) are kept: renaming would break the sender's own queries.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_COMPLETION,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROMPT,
    GEN_AI_REQUEST_FREQUENCY_PENALTY,
    GEN_AI_REQUEST_PRESENCE_PENALTY,
    GEN_AI_REQUEST_STOP_SEQUENCES,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TOP_K,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    GenAiOperationNameValues,
)
from opentelemetry.semconv._incubating.attributes.openai_attributes import (
    OPENAI_RESPONSE_SYSTEM_FINGERPRINT,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT

from llmtrace_otel.receiver.dialects._draft import Draft, as_list, indexed, ordered
from llmtrace_otel.receiver.dialects._messages import tool_definition_of

__all__ = ["CONTENT_KEYS", "CONTENT_PREFIXES", "DIALECT", "EVENT_NAMES", "PREFIXES",
           "TRIGGER_KEYS", "apply"]

DIALECT = "openllmetry"

# OpenLLMetry's own keys (opentelemetry-semantic-conventions-ai), spelled once here.
LLM_REQUEST_TYPE = "llm.request.type"
LLM_REQUEST_FUNCTIONS = "llm.request.functions"
LLM_RESPONSE_FINISH_REASON = "llm.response.finish_reason"
LLM_OPENAI_API_BASE = "gen_ai.openai.api_base"

_PROMPT_PREFIX = GEN_AI_PROMPT + "."
_COMPLETION_PREFIX = GEN_AI_COMPLETION + "."
_FUNCTIONS_PREFIX = LLM_REQUEST_FUNCTIONS + "."
_ENTITY_PREFIX = "traceloop.entity."
PREFIXES = (_PROMPT_PREFIX, _COMPLETION_PREFIX, _FUNCTIONS_PREFIX, _ENTITY_PREFIX)
#: A stream's chunk events (0.4x, then 0.5x on).
EVENT_NAMES: frozenset[str] = frozenset(
    {"llm.content.completion.chunk", "gen_ai.content.completion.chunk"})
CONTENT_KEYS: frozenset[str] = frozenset(
    {_ENTITY_PREFIX + "input", _ENTITY_PREFIX + "output"})
CONTENT_PREFIXES: tuple[str, ...] = (_PROMPT_PREFIX, _COMPLETION_PREFIX, _FUNCTIONS_PREFIX)

_RENAMES: dict[str, str] = {
    "llm.is_streaming": GEN_AI_REQUEST_STREAM,
    "gen_ai.is_streaming": GEN_AI_REQUEST_STREAM,
    "gen_ai.usage.reasoning_tokens": GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    "llm.frequency_penalty": GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "llm.presence_penalty": GEN_AI_REQUEST_PRESENCE_PENALTY,
    "llm.top_k": GEN_AI_REQUEST_TOP_K,
    "llm.chat.stop_sequences": GEN_AI_REQUEST_STOP_SEQUENCES,
    "gen_ai.usage.cache_read_input_tokens": GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "gen_ai.usage.cache_creation_input_tokens": GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    "gen_ai.openai.system_fingerprint": OPENAI_RESPONSE_SYSTEM_FINGERPRINT,
}
_OPERATIONS: dict[str, str] = {
    "chat": GenAiOperationNameValues.CHAT.value,
    "completion": GenAiOperationNameValues.TEXT_COMPLETION.value,
    "embedding": GenAiOperationNameValues.EMBEDDINGS.value,
}
TRIGGER_KEYS: frozenset[str] = frozenset(
    {*_RENAMES, LLM_REQUEST_TYPE, LLM_RESPONSE_FINISH_REASON, LLM_OPENAI_API_BASE}
)


def _tool_calls(node: Any) -> list[dict[str, Any]]:
    calls = []
    for call in ordered(node):
        if isinstance(call, dict):
            calls.append({"id": call.get("id"),
                          "function": {"name": call.get("name"),
                                       "arguments": call.get("arguments")}})
    return calls


def _prompts(draft: Draft, keys: list[str]) -> None:
    for entry in indexed(draft, _PROMPT_PREFIX, keys):
        role = entry.get("role") or "user"
        content = entry.get("content", entry.get("user"))  # .user: the completions API
        draft.conversation.add_message({
            "role": role,
            "content": content,
            "tool_call_id": entry.get("tool_call_id"),
            "tool_calls": _tool_calls(entry.get("tool_calls")),
        })


def _completions(draft: Draft, keys: list[str]) -> None:
    for entry in indexed(draft, _COMPLETION_PREFIX, keys):
        content = entry.get("content")
        if content is None:
            content = entry.get("refusal")
        draft.conversation.add_choice({
            "finish_reason": entry.get("finish_reason"),
            "message": {"role": entry.get("role") or "assistant", "content": content,
                        "tool_calls": _tool_calls(entry.get("tool_calls"))},
        })


def _functions(draft: Draft, keys: list[str]) -> None:
    for entry in indexed(draft, _FUNCTIONS_PREFIX, keys):
        tool = tool_definition_of(entry)
        if tool is not None:
            draft.conversation.tools.append(tool)


def _server(draft: Draft) -> None:
    base = draft.attributes.get(LLM_OPENAI_API_BASE)
    if not isinstance(base, str) or SERVER_ADDRESS in draft.attributes:
        return
    parts = urlsplit(base)
    if parts.hostname:
        draft.default(SERVER_ADDRESS, parts.hostname)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
        draft.default(SERVER_PORT, port)


def _operation(draft: Draft) -> None:
    request_type = draft.attributes.get(LLM_REQUEST_TYPE)
    if not isinstance(request_type, str) or request_type not in _OPERATIONS:
        return
    draft.take(LLM_REQUEST_TYPE)
    operation = _OPERATIONS[request_type]
    if request_type == "completion" and any(
            key.startswith(_PROMPT_PREFIX) and key.endswith(".role") for key in draft.attributes):
        operation = GenAiOperationNameValues.CHAT.value  # messages with roles: a chat API
    draft.default(GEN_AI_OPERATION_NAME, operation)


def _chunks(draft: Draft) -> None:
    ttfc = draft.first_chunk_after(draft.take_events(EVENT_NAMES))
    if ttfc is not None:
        draft.default(GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, ttfc)


def apply(draft: Draft) -> None:
    _operation(draft)
    _chunks(draft)
    for old, new in _RENAMES.items():
        draft.rename(old, new)
    draft.rename(LLM_RESPONSE_FINISH_REASON, GEN_AI_RESPONSE_FINISH_REASONS,
                 lambda value: tuple(str(v) for v in as_list(value)))
    _server(draft)
    keys = [key for key in draft.attributes if key.startswith(PREFIXES)]
    if keys:
        _prompts(draft, keys)
        _completions(draft, keys)
        _functions(draft, keys)
