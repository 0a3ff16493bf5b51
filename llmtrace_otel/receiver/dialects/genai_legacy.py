"""Older GenAI semantic conventions -> the latest.

Covers what instrumentations written against semconv 1.26-1.36 emit, among them the
official ``opentelemetry-instrumentation-openai-v2`` without the latest-experimental opt-in,
the Azure AI Inference SDK and Semantic Kernel:

* ``gen_ai.system`` -> ``gen_ai.provider.name`` (values mapped: ``az.ai.openai`` ->
  ``azure.ai.openai``, ``vertex_ai`` -> ``gcp.vertex_ai``, ...);
* ``gen_ai.usage.prompt_tokens`` / ``completion_tokens`` -> ``input_tokens`` / ``output_tokens``;
* ``gen_ai.openai.request.seed`` / ``response_format`` / ``service_tier``,
  ``gen_ai.openai.response.service_tier`` / ``system_fingerprint`` -> their replacements;
* ``gen_ai.prompt`` / ``gen_ai.completion`` (attributes, or the ``gen_ai.content.prompt`` /
  ``gen_ai.content.completion`` span events carrying them) and the per-message span events
  (``gen_ai.system.message``, ``gen_ai.user.message``, ``gen_ai.assistant.message``,
  ``gen_ai.tool.message``, ``gen_ai.choice``, with the body either in
  ``gen_ai.event.content`` as JSON or spread over the event's attributes) ->
  ``gen_ai.input.messages`` / ``gen_ai.output.messages`` / ``gen_ai.system_instructions``;
* the ``gen_ai.client.inference.operation.details`` event and structured (non-string)
  content attributes -> content attributes as JSON strings, which is what analysis reads.

Translated events are removed from the span, like translated attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import Event
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_COMPLETION,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPENAI_REQUEST_RESPONSE_FORMAT,
    GEN_AI_OPENAI_REQUEST_SEED,
    GEN_AI_OPENAI_REQUEST_SERVICE_TIER,
    GEN_AI_OPENAI_RESPONSE_SERVICE_TIER,
    GEN_AI_OPENAI_RESPONSE_SYSTEM_FINGERPRINT,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_OUTPUT_TYPE,
    GEN_AI_PROMPT,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_SEED,
    GEN_AI_SYSTEM,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_TOOL_DEFINITIONS,
    GEN_AI_USAGE_COMPLETION_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_PROMPT_TOKENS,
    GenAiOutputTypeValues,
)
from opentelemetry.semconv._incubating.attributes.openai_attributes import (
    OPENAI_REQUEST_SERVICE_TIER,
    OPENAI_RESPONSE_SERVICE_TIER,
    OPENAI_RESPONSE_SYSTEM_FINGERPRINT,
)

from llmtrace_otel.receiver.dialects._draft import Draft
from llmtrace_otel.receiver.dialects._messages import as_json_text, loads
from llmtrace_otel.receiver.dialects._providers import provider_name

__all__ = [
    "CONTENT_KEYS",
    "DIALECT",
    "EVENT_NAMES",
    "TRIGGER_KEYS",
    "apply",
    "structured_content",
    "translate_events",
]

DIALECT = "genai_legacy"

# Span events of semconv <= 1.36 (message events were span events in some SDKs, logs in
# others) and of the current conventions.
_ROLE_EVENTS: dict[str, str] = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_CHOICE_EVENT = "gen_ai.choice"
_PROMPT_EVENT = "gen_ai.content.prompt"
_COMPLETION_EVENT = "gen_ai.content.completion"
_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
#: The JSON body of a message event, as the Azure AI Inference SDK writes it.
_EVENT_CONTENT = "gen_ai.event.content"
EVENT_NAMES: frozenset[str] = frozenset(
    {*_ROLE_EVENTS, _CHOICE_EVENT, _PROMPT_EVENT, _COMPLETION_EVENT, _DETAILS_EVENT}
)
_INPUT_EVENTS = frozenset({*_ROLE_EVENTS, _PROMPT_EVENT})
_OUTPUT_EVENTS = frozenset({_CHOICE_EVENT, _COMPLETION_EVENT})

_RENAMES: dict[str, str] = {
    GEN_AI_USAGE_PROMPT_TOKENS: GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_COMPLETION_TOKENS: GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_OPENAI_REQUEST_SEED: GEN_AI_REQUEST_SEED,
    GEN_AI_OPENAI_REQUEST_SERVICE_TIER: OPENAI_REQUEST_SERVICE_TIER,
    GEN_AI_OPENAI_RESPONSE_SERVICE_TIER: OPENAI_RESPONSE_SERVICE_TIER,
    GEN_AI_OPENAI_RESPONSE_SYSTEM_FINGERPRINT: OPENAI_RESPONSE_SYSTEM_FINGERPRINT,
}
CONTENT_KEYS = (GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES, GEN_AI_SYSTEM_INSTRUCTIONS,
                 GEN_AI_TOOL_DEFINITIONS)
#: Any of these on a span means this module has work to do.
TRIGGER_KEYS: frozenset[str] = frozenset(
    {*_RENAMES, GEN_AI_SYSTEM, GEN_AI_OPENAI_REQUEST_RESPONSE_FORMAT, GEN_AI_PROMPT,
     GEN_AI_COMPLETION}
)


def _output_type(value: Any) -> Any:
    if value in ("json_object", "json_schema"):
        return GenAiOutputTypeValues.JSON.value
    return value


def _prompt(draft: Draft, value: Any) -> None:
    """``gen_ai.prompt``: JSON messages (or one message), else the prompt text itself."""
    value = loads(value)
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        if isinstance(item, Mapping):
            draft.conversation.add_message(item)
        elif isinstance(item, str) and item:
            draft.conversation.add_message({"role": "user", "content": item})


def _completion(draft: Draft, value: Any) -> None:
    value = loads(value)
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        if isinstance(item, Mapping):
            draft.conversation.add_choice(item)
        elif isinstance(item, str) and item:
            draft.conversation.add_choice({"content": item})


def _body(event: Event) -> dict[str, Any]:
    """A message event's body: the JSON in gen_ai.event.content, else its own attributes."""
    attributes = dict(event.attributes or {})
    body = loads(attributes.get(_EVENT_CONTENT))
    if isinstance(body, Mapping):
        return dict(body)
    attributes.pop(GEN_AI_SYSTEM, None)
    attributes.pop(GEN_AI_PROVIDER_NAME, None)
    return {key: loads(value) for key, value in attributes.items()}


def _lift_details(draft: Draft, event: Event) -> None:
    for key in CONTENT_KEYS:
        value = (event.attributes or {}).get(key)
        if value is not None:
            draft.default(key, as_json_text(value))


def translate_events(draft: Draft) -> None:
    """Message events -> the conversation, unless the span's attributes already gave that
    side: OpenLIT 1.34 sends every prompt both as ``gen_ai.prompt`` and as a
    ``gen_ai.content.prompt`` event, and each message must count once."""
    conversation = draft.conversation
    has_input = bool(conversation.inputs or conversation.system)
    has_output = bool(conversation.outputs)
    kept: list[Event] = []
    for event in draft.events:
        name = event.name
        if name in _INPUT_EVENTS and has_input or name in _OUTPUT_EVENTS and has_output:
            continue  # the same content again: removed, not translated twice
        if name in _ROLE_EVENTS:
            body = _body(event)
            body.setdefault("role", _ROLE_EVENTS[name])
            draft.conversation.add_message(body)
        elif name == _CHOICE_EVENT:
            draft.conversation.add_choice(_body(event))
        elif name == _PROMPT_EVENT:
            _prompt(draft, (event.attributes or {}).get(GEN_AI_PROMPT))
        elif name == _COMPLETION_EVENT:
            _completion(draft, (event.attributes or {}).get(GEN_AI_COMPLETION))
        elif name == _DETAILS_EVENT:
            _lift_details(draft, event)
        else:
            kept.append(event)
    if len(kept) != len(draft.events):
        draft.events = kept
        draft.changed = True


def structured_content(draft: Draft) -> None:
    """Content attributes sent as OTLP arrays/maps become the JSON strings analysis reads."""
    for key in CONTENT_KEYS:
        value = draft.attributes.get(key)
        if value is not None and not isinstance(value, str):
            draft.attributes[key] = as_json_text(value)
            draft.changed = True


def apply(draft: Draft) -> None:
    system = draft.take(GEN_AI_SYSTEM)
    if isinstance(system, str):
        draft.default(GEN_AI_PROVIDER_NAME, provider_name(system))
    for old, new in _RENAMES.items():
        draft.rename(old, new)
    draft.rename(GEN_AI_OPENAI_REQUEST_RESPONSE_FORMAT, GEN_AI_OUTPUT_TYPE, _output_type)
    if GEN_AI_PROMPT in draft.attributes:
        _prompt(draft, draft.take(GEN_AI_PROMPT))
    if GEN_AI_COMPLETION in draft.attributes:
        _completion(draft, draft.take(GEN_AI_COMPLETION))
    translate_events(draft)
