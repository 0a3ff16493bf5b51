"""The recorded payloads have the real APIs' shapes: the official SDKs' types accept them
and declare every key they hold (save the few real fields an SDK does not model, listed by
name in UNMODELLED).

This guards the fixtures, not the adapters: a hand-edited payload that drifts from what
the API sends (a misspelled or invented key, a wrong type) fails here first. Validation
alone would not see a misspelled key: the SDKs' models keep unknown keys as extras and
pydantic drops a TypedDict's unknown keys silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import UnionType
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,
    Required,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

import pytest

from tests.providers.recorded import decode, payload, payload_json

pytest.importorskip("openai")
pytest.importorskip("anthropic")

import anthropic.types as anthropic_types  # noqa: E402
from anthropic.types import message_create_params  # noqa: E402
from openai.types import (  # noqa: E402
    CreateEmbeddingResponse,
    completion_create_params,
    embedding_create_params,
)
from openai.types.chat import ChatCompletion, ChatCompletionChunk  # noqa: E402
from openai.types.chat import completion_create_params as chat_params  # noqa: E402
from openai.types.responses import (  # noqa: E402
    Response,
    ResponseStreamEvent,
    response_create_params,
)
from pydantic import BaseModel, TypeAdapter  # noqa: E402

REQUESTS: list[tuple[str, Any]] = [
    ("openai_chat_request.json", chat_params.CompletionCreateParamsStreaming),
    ("openai_completions_request.json",
     completion_create_params.CompletionCreateParamsNonStreaming),
    ("openai_embeddings_request.json", embedding_create_params.EmbeddingCreateParams),
    ("openai_responses_request.json", response_create_params.ResponseCreateParamsNonStreaming),
    ("anthropic_request.json", message_create_params.MessageCreateParamsStreaming),
]
RESPONSES: list[tuple[str, Any]] = [
    ("openai_chat_response.json", ChatCompletion),
    ("openai_chat_response_tool_calls.json", ChatCompletion),
    ("openai_chat_response_reasoning.json", ChatCompletion),
    ("openai_chat_response_refusal.json", ChatCompletion),
    ("openai_embeddings_response.json", CreateEmbeddingResponse),
    # (openai_embeddings_response_base64.json: the SDK's model holds the decoded list)
    ("openai_responses_response.json", Response),
    ("openai_responses_response_function_call.json", Response),
    ("openai_responses_response_incomplete.json", Response),
    ("anthropic_response.json", anthropic_types.Message),
    ("anthropic_response_tool_use.json", anthropic_types.Message),
]
STREAMS: list[tuple[str, Any]] = [
    ("openai_chat_stream.txt", ChatCompletionChunk),
    ("openai_chat_stream_tool_calls.txt", ChatCompletionChunk),
    ("openai_chat_stream_n2.txt", ChatCompletionChunk),
    ("openai_chat_stream_no_usage.txt", ChatCompletionChunk),
    ("openai_responses_stream.txt", ResponseStreamEvent),
    ("openai_responses_stream_function_call.txt", ResponseStreamEvent),
    ("openai_responses_stream_failed.txt", ResponseStreamEvent),
    ("anthropic_stream.txt", anthropic_types.RawMessageStreamEvent),
    ("anthropic_stream_delta_usage.txt", anthropic_types.RawMessageStreamEvent),
]


#: Keys the recorded payloads hold that the installed SDKs do not model (paths without list
#: indices), each a real field of the API; any other key unknown to the SDK fails the test.
UNMODELLED: dict[str, set[str]] = {
    # Sampling parameters of the Messages API that anthropic 2.x no longer types (they are
    # sent through extra_body); the adapter still reads them into gen_ai.request.*.
    "anthropic_request.json": {"$.temperature", "$.top_p", "$.top_k"},
    # The Responses API echoes `store`; streamed events carry `obfuscation` padding. The
    # openai SDK models neither on these types.
    "openai_responses_response.json": {"$.store"},
    "openai_responses_response_function_call.json": {"$.store"},
    "openai_responses_response_incomplete.json": {"$.store"},
    "openai_responses_stream.txt": {"$.response.store", "$.obfuscation"},
    "openai_responses_stream_function_call.txt": {"$.response.store", "$.obfuscation"},
    "openai_responses_stream_failed.txt": {"$.response.store"},
}
#: Streams whose SSE events are named after their JSON ``type`` (the others are unnamed).
NAMED_EVENTS = ("openai_responses_", "anthropic_")


def _bare(annotation: Any) -> Any:
    """``annotation`` without its Annotated/Required/NotRequired wrappers."""
    while get_origin(annotation) in (Annotated, Required, NotRequired):
        annotation = get_args(annotation)[0]
    return annotation


def _is_typeddict(annotation: Any) -> bool:
    # typing.is_typeddict misses typing_extensions' TypedDicts, which the SDKs use.
    return isinstance(annotation, type) and hasattr(annotation, "__required_keys__")


def _fits(value: Any, annotation: Any) -> bool:
    """Whether ``value`` may be of ``annotation``: a dict fits a TypedDict whose literal
    keys (``role``, ``type``) it matches, a list an iterable type, a str ``str``..."""
    origin = get_origin(annotation)
    if _is_typeddict(annotation):
        if not isinstance(value, dict):
            return False
        hints = get_type_hints(annotation, include_extras=True)
        return not any(get_origin(hint := _bare(h)) is Literal and key in value
                       and value[key] not in get_args(hint) for key, h in hints.items())
    if origin is Literal:
        return value in get_args(annotation)
    if origin in (Union, UnionType):
        return any(_fits(value, _bare(a)) for a in get_args(annotation))
    if origin is not None:  # list[...], Iterable[...], Dict[...], ...
        wants_mapping = isinstance(origin, type) and issubclass(origin, Mapping)
        return isinstance(value, dict) if wants_mapping else isinstance(value, list)
    if isinstance(annotation, type) and annotation is not object:
        return isinstance(value, annotation) or (annotation is float
                                                 and isinstance(value, int))
    return True  # Any, a TypeVar, ...


def unknown_keys(value: Any, annotation: Any, path: str = "$") -> set[str]:
    """Keys of ``value`` that the SDK's request TypedDict ``annotation`` does not declare.

    (Validation cannot tell: pydantic drops undeclared keys of a TypedDict silently, and
    its lazily validated iterables cannot be read back.) In a union, the variant that
    ``value`` fits with the fewest unknown keys is the one it is taken for."""
    annotation = _bare(annotation)
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        options = [a for a in get_args(annotation) if _fits(value, _bare(a))]
        if not options:
            return {f"{path}: no variant fits"}
        return min((unknown_keys(value, option, path) for option in options), key=len)
    if _is_typeddict(annotation) and isinstance(value, dict):
        hints = get_type_hints(annotation, include_extras=True)
        out = {f"{path}.{key}" for key in value if key not in hints}
        for key in value.keys() & hints.keys():
            out |= unknown_keys(value[key], hints[key], f"{path}.{key}")
        return out
    if isinstance(value, list) and origin is not None and get_args(annotation):
        item = get_args(annotation)[0]
        return set().union(*(unknown_keys(v, item, path) for v in value))
    return set()


def extra_keys(model: Any, path: str = "$") -> set[str]:
    """Keys that a parsed SDK model kept as extras: keys its class does not declare."""
    if isinstance(model, BaseModel):
        out = {f"{path}.{key}" for key in model.model_extra or {}}
        for name in type(model).model_fields:
            out |= extra_keys(getattr(model, name), f"{path}.{name}")
        return out
    if isinstance(model, list | tuple):
        return set().union(*(extra_keys(item, path) for item in model))
    if isinstance(model, dict):
        return set().union(*(extra_keys(item, f"{path}.{key}") for key, item in model.items()))
    return set()


def test_the_key_checks_see_a_misspelled_key() -> None:
    """The checks below would pass a payload with a typo if these did not hold."""
    typo = payload_json("openai_chat_request.json") | {"max_tokenz": 5}
    typo["messages"][1]["contnet"] = "x"
    assert unknown_keys(typo, chat_params.CompletionCreateParamsStreaming) == {
        "$.max_tokenz", "$.messages.contnet"}
    response = payload_json("openai_chat_response.json")
    response["choices"][0]["message"]["contnet"] = "x"
    assert extra_keys(ChatCompletion.model_validate(response)) == {
        "$.choices.message.contnet"}


@pytest.mark.parametrize(("name", "schema"), REQUESTS, ids=[n for n, _ in REQUESTS])
def test_request_payloads(name: str, schema: Any) -> None:
    sent = payload_json(name)
    TypeAdapter(schema).validate_python(sent)  # required keys and value types
    assert unknown_keys(sent, schema) == UNMODELLED.get(name, set())


@pytest.mark.parametrize(("name", "schema"), RESPONSES, ids=[n for n, _ in RESPONSES])
def test_response_payloads(name: str, schema: Any) -> None:
    parsed = TypeAdapter(schema).validate_python(payload_json(name))
    assert extra_keys(parsed) == UNMODELLED.get(name, set())


@pytest.mark.parametrize(("name", "schema"), STREAMS, ids=[n for n, _ in STREAMS])
def test_stream_payloads(name: str, schema: Any) -> None:
    adapter = TypeAdapter(schema)
    named = name.startswith(NAMED_EVENTS)
    extras: set[str] = set()
    parsed_events = 0
    for event in decode([payload(name)]):
        if event.data == "[DONE]" or event.event == "ping":
            continue
        parsed = adapter.validate_python(json.loads(event.data))
        parsed_events += 1
        extras |= extra_keys(parsed)
        # Typed streams name each event after its type; chat completion chunks are unnamed.
        assert event.event == (parsed.type if named else None)
        if not named:
            assert parsed.object == "chat.completion.chunk"
    assert parsed_events >= 2
    assert extras == UNMODELLED.get(name, set())
