"""The normalisation rules, one by one, on plain attribute dicts and SDK events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.sdk.trace import Event

from llmtrace_otel.receiver.dialects import normalise
from llmtrace_otel.receiver.dialects._providers import openinference_provider, provider_name


def run(attributes: dict[str, Any], events: list[Event] | None = None
        ) -> tuple[dict[str, Any], list[Event]]:
    result = normalise(attributes, events or [])
    assert result is not None, "expected a rewrite"
    return result


def test_spans_without_a_dialect_are_left_alone() -> None:
    assert normalise({"http.request.method": "GET", "url.path": "/"}, []) is None
    latest = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
              "gen_ai.usage.input_tokens": 3, "gen_ai.input.messages": "[]"}
    assert normalise(latest, [Event("exception", {})]) is None


def test_input_is_not_modified() -> None:
    original = {"gen_ai.system": "openai", "gen_ai.usage.prompt_tokens": 5}
    snapshot = dict(original)
    out, _ = run(original)
    assert original == snapshot
    assert out == {"gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 5,
                   "llmtrace.receiver.dialects": ("genai_legacy",)}


@pytest.mark.parametrize(("system", "provider"), [
    ("az.ai.openai", "azure.ai.openai"),
    ("az.ai.inference", "azure.ai.inference"),
    ("vertex_ai", "gcp.vertex_ai"),
    ("gemini", "gcp.gemini"),
    ("xai", "x_ai"),
    ("OpenAI", "openai"),
    ("Anthropic", "anthropic"),
    ("Azure", "azure.ai.openai"),
    ("AWS", "aws.bedrock"),
    ("mistralai", "mistral_ai"),
    ("cohere", "cohere"),
    ("some.new.vendor", "some.new.vendor"),
])
def test_gen_ai_system_values_map_to_provider_names(system: str, provider: str) -> None:
    assert provider_name(system) == provider
    out, _ = run({"gen_ai.system": system})
    assert out["gen_ai.provider.name"] == provider and "gen_ai.system" not in out


def test_openinference_provider_combines_provider_and_system() -> None:
    assert openinference_provider("azure", "openai") == "azure.ai.openai"
    assert openinference_provider("azure", "mistralai") == "azure.ai.inference"
    assert openinference_provider("google", "vertexai") == "gcp.vertex_ai"
    assert openinference_provider("google", None) == "gcp.gen_ai"
    assert openinference_provider(None, "mistralai") == "mistral_ai"
    assert openinference_provider("aws", "anthropic") == "aws.bedrock"
    assert openinference_provider(None, None) is None


def test_the_semconv_key_wins_and_the_old_key_goes() -> None:
    out, _ = run({"gen_ai.system": "az.ai.openai", "gen_ai.provider.name": "openai",
                  "gen_ai.usage.completion_tokens": 9, "gen_ai.usage.output_tokens": 7})
    assert out["gen_ai.provider.name"] == "openai"
    assert out["gen_ai.usage.output_tokens"] == 7
    assert "gen_ai.system" not in out and "gen_ai.usage.completion_tokens" not in out


def test_plain_text_prompt_and_completion_attributes() -> None:
    out, _ = run({"gen_ai.operation.name": "chat", "gen_ai.prompt": "Hi there",
                  "gen_ai.completion": "Hello!"})
    assert json.loads(out["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hi there"}]}]
    assert json.loads(out["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello!"}]}]
    assert "gen_ai.prompt" not in out and "gen_ai.completion" not in out


def test_a_prompt_nested_too_deep_to_parse_stays_text() -> None:
    # "[[[[..." 50,000 deep looks like JSON; parsing it raised RecursionError, which the
    # normaliser's ValueError handling let through: the span failed to normalise.
    deep = "[" * 50_000
    out, _ = run({"gen_ai.operation.name": "chat", "gen_ai.prompt": deep})
    assert json.loads(out["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": deep}]}]


def test_structured_content_becomes_json_text() -> None:
    messages = ({"role": "user", "parts": ({"type": "text", "content": "hi"},)},)
    out, _ = run({"gen_ai.operation.name": "chat", "gen_ai.input.messages": messages})
    assert json.loads(out["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    assert "llmtrace.receiver.dialects" not in out  # already the latest semconv


def test_inference_details_event_is_lifted_onto_the_span() -> None:
    details = Event("gen_ai.client.inference.operation.details", {
        "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"q"}]}]',
        "gen_ai.output.messages": ({"role": "assistant",
                                    "parts": ({"type": "text", "content": "a"},),
                                    "finish_reason": "stop"},),
    }, 10)
    keep = Event("exception", {"exception.type": "X"}, 11)
    out, events = run({"gen_ai.system": "openai"}, [details, keep])
    assert events == [keep]
    assert json.loads(out["gen_ai.output.messages"])[0]["finish_reason"] == "stop"
    assert json.loads(out["gen_ai.input.messages"])[0]["parts"][0]["content"] == "q"


def test_unknown_events_and_keys_stay() -> None:
    custom = Event("retry", {"attempt": 2}, 1)
    out, events = run({"gen_ai.system": "openai", "my.key": "v"}, [custom])
    assert events == [custom] and out["my.key"] == "v"


def test_message_events_in_order_with_roles_from_event_names() -> None:
    events = [
        Event("gen_ai.system.message", {"content": "rules"}, 1),
        Event("gen_ai.user.message", {"content": "q1"}, 2),
        Event("gen_ai.assistant.message", {"content": "a1"}, 3),
        Event("gen_ai.user.message", {"content": "q2"}, 4),
        Event("gen_ai.choice", {"index": 0, "finish_reason": "length",
                                "message": '{"role": "assistant", "content": "a2"}'}, 5),
    ]
    out, rest = run({"gen_ai.operation.name": "chat"}, events)
    assert rest == []
    assert [m["role"] for m in json.loads(out["gen_ai.input.messages"])] == [
        "user", "assistant", "user"]
    assert json.loads(out["gen_ai.system_instructions"]) == [{"type": "text", "content": "rules"}]
    assert json.loads(out["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "a2"}],
         "finish_reason": "length"}]


def test_inline_media_data_is_never_kept() -> None:
    out, _ = run({"gen_ai.system": "openai", "gen_ai.prompt.0.role": "user",
                  "gen_ai.prompt.0.content": json.dumps([
                      {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
                      {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
                  ])})
    assert "AAAA" not in out["gen_ai.input.messages"] and "UklGR" not in out[
        "gen_ai.input.messages"]
    assert json.loads(out["gen_ai.input.messages"])[0]["parts"] == [
        {"type": "blob", "modality": "image", "mime_type": "image/jpeg"},
        {"type": "blob", "modality": "audio"},
    ]


def test_openllmetry_leaves_unindexed_prompt_keys() -> None:
    out, _ = run({"gen_ai.system": "openai", "gen_ai.prompt.prompt_filter_results": "[]",
                  "gen_ai.prompt.0.content": "hi"})
    assert out["gen_ai.prompt.prompt_filter_results"] == "[]"
    assert "gen_ai.prompt.0.content" not in out


def test_openinference_chain_span_is_not_made_genai() -> None:
    assert normalise({"openinference.span.kind": "RETRIEVER", "input.value": "q"}, []) is None


def test_openinference_agent_and_completions_prompts() -> None:
    out, _ = run({"openinference.span.kind": "AGENT", "agent.name": "planner"})
    assert out["gen_ai.operation.name"] == "invoke_agent"
    assert out["gen_ai.agent.name"] == "planner"
    out, _ = run({"openinference.span.kind": "LLM", "llm.model_name": "gpt-3.5-turbo-instruct",
                  "llm.prompts.0.prompt.text": "Once upon",
                  "llm.choices.0.completion.text": " a time"})
    assert out["gen_ai.operation.name"] == "text_completion"
    assert json.loads(out["gen_ai.input.messages"])[0]["parts"][0]["content"] == "Once upon"
    assert json.loads(out["gen_ai.output.messages"])[0]["parts"][0]["content"] == " a time"
