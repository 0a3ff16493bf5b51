"""OpenInference (Arize Phoenix) spans -> the latest GenAI semantic conventions.

``openinference.span.kind`` decides the operation: ``LLM`` -> ``chat`` (``text_completion``
when the span carries ``llm.prompts``), ``EMBEDDING`` -> ``embeddings``, ``TOOL`` ->
``execute_tool``, ``AGENT`` -> ``invoke_agent``. Spans of the other kinds (``CHAIN``,
``RETRIEVER``, ``RERANKER``, ...) have no GenAI semconv operation and are left as they are.

Translated (and removed): ``llm.model_name`` (-> request and response model; the request
model comes from ``llm.invocation_parameters.model`` when present), ``llm.provider`` +
``llm.system`` -> ``gen_ai.provider.name``, ``llm.token_count.prompt`` / ``completion`` /
``prompt_details.cache_read`` / ``prompt_details.cache_write`` /
``completion_details.reasoning``, ``llm.input_messages.N.message.*`` and
``llm.output_messages.N.message.*`` (role, content, contents.M.message_content.*,
tool_calls.K.tool_call.*, tool_call_id, name), ``llm.prompts`` / ``llm.choices``,
``llm.tools.N.tool.json_schema``, ``llm.finish_reason``, ``embedding.model_name``,
``tool.name`` / ``tool.description`` / ``tool.id``, ``agent.name``, and on LLM and TOOL
spans ``input.value`` / ``output.value`` with their mime types (the same content again).
The newer ``llm.request.model_name`` / ``llm.response.model_name`` (anthropic 3.x) give the
request and response model. EMBEDDING spans: ``embedding.embeddings.N.embedding.text`` become
the input messages (the texts that were embedded, analysed like a prompt) and
``input.value`` / ``output.value`` (request and response JSON: the same texts and the
vectors) are removed. The "First Token Stream Event" of a stream gives
``gen_ai.response.time_to_first_chunk`` (its time from the span's start).
``llm.invocation_parameters`` is read for request parameters but kept: it may carry more.

:data:`CONTENT_KEYS` / :data:`CONTENT_PREFIXES`: every key that carries content on any
OpenInference span kind (CHAIN and RETRIEVER spans included), removed by the normalisation
when content is not exported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_AGENT_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_CHOICE_COUNT,
    GEN_AI_REQUEST_FREQUENCY_PENALTY,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_PRESENCE_PENALTY,
    GEN_AI_REQUEST_SEED,
    GEN_AI_REQUEST_STOP_SEQUENCES,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_K,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_ID,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_DESCRIPTION,
    GEN_AI_TOOL_NAME,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    GenAiOperationNameValues,
)

from llmtrace_otel.receiver.dialects._draft import Draft, as_list, indexed, ordered
from llmtrace_otel.receiver.dialects._messages import loads, tool_definition_of
from llmtrace_otel.receiver.dialects._providers import openinference_provider

__all__ = ["CONTENT_KEYS", "CONTENT_PREFIXES", "DIALECT", "TRIGGER_KEYS", "apply"]

DIALECT = "openinference"

# OpenInference keys (openinference-semantic-conventions), spelled once here.
SPAN_KIND = "openinference.span.kind"
LLM_MODEL_NAME = "llm.model_name"
LLM_REQUEST_MODEL_NAME = "llm.request.model_name"
LLM_RESPONSE_MODEL_NAME = "llm.response.model_name"
LLM_PROVIDER = "llm.provider"
LLM_SYSTEM = "llm.system"
LLM_INVOCATION_PARAMETERS = "llm.invocation_parameters"
LLM_FINISH_REASON = "llm.finish_reason"
LLM_PROMPTS = "llm.prompts"
LLM_CHOICES = "llm.choices"
EMBEDDING_MODEL_NAME = "embedding.model_name"
INPUT_VALUE = "input.value"
INPUT_MIME_TYPE = "input.mime_type"
OUTPUT_VALUE = "output.value"
OUTPUT_MIME_TYPE = "output.mime_type"
TOOL_NAME = "tool.name"
TOOL_DESCRIPTION = "tool.description"
TOOL_ID = "tool.id"
AGENT_NAME = "agent.name"
_INPUT_MESSAGES = "llm.input_messages."
_OUTPUT_MESSAGES = "llm.output_messages."
_TOOLS = "llm.tools."
_EMBEDDINGS = "embedding.embeddings."
#: The event OpenInference records at a stream's first chunk.
FIRST_TOKEN_EVENT = "First Token Stream Event"

#: Content on any span kind (documents of RETRIEVER/RERANKER spans, prompt templates, the
#: raw input/output of CHAIN spans, the embedded texts and their vectors).
CONTENT_KEYS: frozenset[str] = frozenset(
    {INPUT_VALUE, OUTPUT_VALUE, LLM_PROMPTS, "reranker.query"})
CONTENT_PREFIXES: tuple[str, ...] = (
    _INPUT_MESSAGES, _OUTPUT_MESSAGES, LLM_PROMPTS + ".", LLM_CHOICES + ".", _EMBEDDINGS,
    "retrieval.documents.", "reranker.input_documents.", "reranker.output_documents.",
    "llm.prompt_template.")

_TOKENS: dict[str, str] = {
    "llm.token_count.prompt": GEN_AI_USAGE_INPUT_TOKENS,
    "llm.token_count.completion": GEN_AI_USAGE_OUTPUT_TOKENS,
    "llm.token_count.prompt_details.cache_read": GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "llm.token_count.prompt_details.cache_write": GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    "llm.token_count.completion_details.reasoning": GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
}
# llm.invocation_parameters (OpenAI-style request JSON) -> request attributes.
_PARAMETERS: dict[str, str] = {
    "temperature": GEN_AI_REQUEST_TEMPERATURE,
    "top_p": GEN_AI_REQUEST_TOP_P,
    "top_k": GEN_AI_REQUEST_TOP_K,
    "max_tokens": GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": GEN_AI_REQUEST_MAX_TOKENS,
    "max_output_tokens": GEN_AI_REQUEST_MAX_TOKENS,
    "frequency_penalty": GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": GEN_AI_REQUEST_PRESENCE_PENALTY,
    "seed": GEN_AI_REQUEST_SEED,
    "n": GEN_AI_REQUEST_CHOICE_COUNT,
    "stream": GEN_AI_REQUEST_STREAM,
}
_FIRST_TOKEN_EVENTS = frozenset({FIRST_TOKEN_EVENT})
_OPERATIONS: dict[str, str] = {
    "LLM": GenAiOperationNameValues.CHAT.value,
    "EMBEDDING": GenAiOperationNameValues.EMBEDDINGS.value,
    "TOOL": GenAiOperationNameValues.EXECUTE_TOOL.value,
    "AGENT": GenAiOperationNameValues.INVOKE_AGENT.value,
}
TRIGGER_KEYS: frozenset[str] = frozenset(
    {SPAN_KIND, LLM_MODEL_NAME, LLM_REQUEST_MODEL_NAME, EMBEDDING_MODEL_NAME})


def _parameters(draft: Draft) -> str | None:
    """Request attributes from llm.invocation_parameters; returns its model, if any."""
    parameters = loads(draft.attributes.get(LLM_INVOCATION_PARAMETERS))
    if not isinstance(parameters, Mapping):
        return None
    for name, key in _PARAMETERS.items():
        value = parameters.get(name)
        wanted = bool if key == GEN_AI_REQUEST_STREAM else int | float
        if isinstance(value, wanted) and (wanted is bool or not isinstance(value, bool)):
            draft.default(key, value)
    stop = parameters.get("stop")
    if stop:
        draft.default(GEN_AI_REQUEST_STOP_SEQUENCES, tuple(str(s) for s in as_list(stop)))
    model = parameters.get("model")
    return str(model) if model else None


def _message(entry: Any) -> dict[str, Any]:
    """``{"message": {role, content, contents, tool_calls, ...}}`` -> an OpenAI message."""
    message = entry.get("message", {}) if isinstance(entry, dict) else {}
    if not isinstance(message, dict):
        return {}
    content: Any = message.get("content")
    contents = ordered(message.get("contents"))
    if contents:
        content = []
        for item in contents:
            part = item.get("message_content", {}) if isinstance(item, dict) else {}
            if not isinstance(part, dict):
                continue
            image = part.get("image", {})
            url = image.get("image", {}).get("url") if isinstance(image, dict) else None
            content.append({"type": part.get("type", "text"), "text": part.get("text"),
                            "image_url": {"url": url}})
    calls = []
    for call in ordered(message.get("tool_calls")):
        tool_call = call.get("tool_call", {}) if isinstance(call, dict) else {}
        if isinstance(tool_call, dict):
            function = tool_call.get("function", {})
            calls.append({"id": tool_call.get("id"),
                          "function": function if isinstance(function, dict) else {}})
    return {"role": message.get("role"), "content": content, "tool_calls": calls,
            "tool_call_id": message.get("tool_call_id"), "name": message.get("name")}


def _messages(draft: Draft, keys: list[str]) -> bool:
    found = False
    for entry in indexed(draft, _INPUT_MESSAGES, keys):
        draft.conversation.add_message(_message(entry))
        found = True
    for entry in indexed(draft, _OUTPUT_MESSAGES, keys):
        draft.conversation.add_choice({"message": _message(entry)})
        found = True
    for entry in indexed(draft, LLM_PROMPTS + ".", keys):
        text = entry.get("prompt", {}).get("text") if isinstance(entry, dict) else None
        draft.conversation.add_message({"role": "user", "content": text})
        found = True
    for entry in indexed(draft, LLM_CHOICES + ".", keys):
        text = entry.get("completion", {}).get("text") if isinstance(entry, dict) else None
        draft.conversation.add_choice({"content": text})
        found = True
    prompts = draft.take(LLM_PROMPTS)  # the older form: a list of strings
    for prompt in as_list(prompts):
        draft.conversation.add_message({"role": "user", "content": str(prompt)})
        found = True
    for entry in indexed(draft, _TOOLS, keys):
        schema = entry.get("tool", {}).get("json_schema") if isinstance(entry, dict) else None
        tool = tool_definition_of(schema)
        if tool is not None:
            draft.conversation.tools.append(tool)
    return found


def _embedded_texts(draft: Draft) -> None:
    """The texts an EMBEDDING span embedded -> input messages; its raw request/response go."""
    for entry in indexed(draft, _EMBEDDINGS):
        embedding = entry.get("embedding", {}) if isinstance(entry, dict) else {}
        text = embedding.get("text") if isinstance(embedding, dict) else None
        if isinstance(text, str) and text:
            draft.conversation.add_message({"role": "user", "content": text})
    for key in (INPUT_VALUE, INPUT_MIME_TYPE, OUTPUT_VALUE, OUTPUT_MIME_TYPE):
        draft.take(key)  # the request (the same texts) and the response (the vectors)


def _first_token(draft: Draft) -> None:
    ttfc = draft.first_chunk_after(draft.take_events(_FIRST_TOKEN_EVENTS))
    if ttfc is not None:
        draft.default(GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, ttfc)


def _llm(draft: Draft, kind: str) -> None:
    keys = [key for key in draft.attributes if key.startswith("llm.")]
    request_model = _parameters(draft)
    model = draft.take(LLM_MODEL_NAME)
    request_model = draft.take(LLM_REQUEST_MODEL_NAME) or request_model
    response_model = draft.take(LLM_RESPONSE_MODEL_NAME)
    if kind == "EMBEDDING":
        model = model or draft.take(EMBEDDING_MODEL_NAME)
    draft.default(GEN_AI_REQUEST_MODEL, request_model or model)
    if kind == "LLM":
        draft.default(GEN_AI_RESPONSE_MODEL, response_model or model)
        _first_token(draft)
    else:
        _embedded_texts(draft)
    provider = openinference_provider(draft.take(LLM_PROVIDER), draft.take(LLM_SYSTEM))
    draft.default(GEN_AI_PROVIDER_NAME, provider)
    for old, new in _TOKENS.items():
        draft.rename(old, new)
    draft.rename(LLM_FINISH_REASON, GEN_AI_RESPONSE_FINISH_REASONS,
                 lambda value: tuple(str(v) for v in as_list(value)))
    if _messages(draft, keys) and kind == "LLM":
        for key in (INPUT_VALUE, INPUT_MIME_TYPE, OUTPUT_VALUE, OUTPUT_MIME_TYPE):
            draft.take(key)  # the raw request/response: the same content again


def _tool(draft: Draft) -> None:
    draft.rename(TOOL_NAME, GEN_AI_TOOL_NAME)
    draft.rename(TOOL_DESCRIPTION, GEN_AI_TOOL_DESCRIPTION)
    draft.rename(TOOL_ID, GEN_AI_TOOL_CALL_ID)
    draft.rename(INPUT_VALUE, GEN_AI_TOOL_CALL_ARGUMENTS)
    draft.rename(OUTPUT_VALUE, GEN_AI_TOOL_CALL_RESULT)
    draft.take(INPUT_MIME_TYPE)
    draft.take(OUTPUT_MIME_TYPE)


def apply(draft: Draft) -> None:
    kind = draft.attributes.get(SPAN_KIND)
    kind = kind.upper() if isinstance(kind, str) else (
        "EMBEDDING" if EMBEDDING_MODEL_NAME in draft.attributes else "LLM")
    operation = _OPERATIONS.get(kind)
    if operation is None:
        return  # CHAIN, RETRIEVER, ...: not a GenAI operation in semconv terms
    if kind == "LLM" and any(key.startswith(LLM_PROMPTS) for key in draft.attributes):
        operation = GenAiOperationNameValues.TEXT_COMPLETION.value
    draft.default(GEN_AI_OPERATION_NAME, operation)
    if kind in ("LLM", "EMBEDDING"):
        _llm(draft, kind)
    elif kind == "TOOL":
        _tool(draft)
    else:
        draft.rename(AGENT_NAME, GEN_AI_AGENT_NAME)
