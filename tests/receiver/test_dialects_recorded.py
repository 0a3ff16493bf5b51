"""Each normalisation rule on the spans the real libraries sent (``fixtures/``)."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest
from opentelemetry.sdk.trace import Event, ReadableSpan

from llmtrace_otel.receiver import otlp_json
from llmtrace_otel.receiver.decode import decode_spans
from llmtrace_otel.receiver.dialects import normalise
from tests.receiver.replay import fixture


def spans(name: str, **options: Any) -> list[ReadableSpan]:
    out: list[ReadableSpan] = []
    for export in fixture(name).exports:
        if export["signal"] == "traces":
            request = otlp_json.parse_traces(json.dumps(export["body"]).encode())
            out.extend(decode_spans(request, partial(normalise, **options)))
    return out


def by_scope(name: str, scope: str, **options: Any) -> list[dict[str, Any]]:
    return [dict(span.attributes or {}) for span in spans(name, **options)
            if span.instrumentation_scope is not None
            and span.instrumentation_scope.name == scope]


def messages(attributes: dict[str, Any], key: str) -> list[Any]:
    return list(json.loads(attributes[key]))


def test_openllmetry_045_anthropic_messages_are_chats_not_completions() -> None:
    for attributes in by_scope("openllmetry-0.45.6/default",
                               "opentelemetry.instrumentation.anthropic"):
        assert attributes["gen_ai.operation.name"] == "chat"
        assert "llm.request.type" not in attributes


def test_openllmetry_stream_chunk_events_give_time_to_first_chunk() -> None:
    for name in ("openllmetry-0.45.6/default", "openllmetry-0.62.4/default"):
        [stream] = [span for span in spans(name) if span.name == "openai.chat"
                    and (span.attributes or {}).get("gen_ai.request.stream")]
        attributes = stream.attributes or {}
        assert 0 < attributes["gen_ai.response.time_to_first_chunk"] < (
            (stream.end_time or 0) - (stream.start_time or 0)) / 1e9
        assert not [event for event in stream.events if "chunk" in event.name]


def test_openllmetry_062_spellings() -> None:
    attributes = by_scope("openllmetry-0.62.4/default",
                          "opentelemetry.instrumentation.openai.v1")[0]
    assert attributes["gen_ai.request.stream"] is False and "gen_ai.is_streaming" not in attributes
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 0


def test_openinference_first_token_event_gives_time_to_first_chunk() -> None:
    [stream] = [span for span in spans("openinference-0.1.66/default")
                if span.name == "ChatCompletion"
                and (span.attributes or {}).get("gen_ai.request.stream")]
    recorded = [event for scope, raw in fixture("openinference-0.1.66/default").spans()
                if raw["spanId"] == format(stream.context.span_id, "016x")
                for event in raw.get("events", [])]
    [first] = [event for event in recorded if event["name"] == "First Token Stream Event"]
    expected = (int(first["timeUnixNano"]) - (stream.start_time or 0)) / 1e9
    assert (stream.attributes or {})["gen_ai.response.time_to_first_chunk"] == expected
    assert not stream.events


def test_openinference_embeddings_are_analysed_and_their_raw_values_removed() -> None:
    [embedding] = [attributes for attributes in by_scope(
        "openinference-0.1.66/default", "openinference.instrumentation.openai")
        if attributes["gen_ai.operation.name"] == "embeddings"]
    text = "Embed this note from jane.doe@example.com about the Paris trip."
    assert messages(embedding, "gen_ai.input.messages") == [
        {"role": "user", "parts": [{"type": "text", "content": text}]}]
    # the request and response JSON (the same text, the vectors) and the texts are gone;
    # the invocation parameters stay, as on LLM spans
    assert not [key for key in embedding
                if key.startswith(("input.", "output.", "embedding.embeddings."))]
    assert "embedding.invocation_parameters" in embedding


def test_openinference_anthropic_3x_model_names() -> None:
    for attributes in by_scope("openinference-0.1.66/default",
                               "openinference.instrumentation.anthropic"):
        assert attributes["gen_ai.request.model"] == "claude-3-5-haiku-20241022"
        assert attributes["gen_ai.response.model"] == "claude-3-5-haiku-20241022"
        assert "llm.request.model_name" not in attributes


def test_openlit_134_content_counts_once() -> None:
    """The prompt comes as the gen_ai.prompt attribute *and* a gen_ai.content.prompt event."""
    for span in spans("openlit-1.34.43/default"):
        attributes = span.attributes or {}
        if attributes.get("gen_ai.operation.name") != "chat":
            continue
        assert len(messages(attributes, "gen_ai.input.messages")) == 1
        assert len(messages(attributes, "gen_ai.output.messages")) == 1
        assert not span.events


@pytest.mark.parametrize("name", ["openlit-1.34.43/default", "openlit-1.45.0/default"])
def test_openlit_stream_facts(name: str) -> None:
    chats = [dict(span.attributes or {}) for span in spans(name)
             if (span.attributes or {}).get("gen_ai.operation.name") == "chat"]
    streams = [attributes for attributes in chats if attributes["gen_ai.request.stream"]]
    assert len(streams) == 2 and len(chats) == 4
    for attributes in streams:
        assert attributes["gen_ai.response.time_to_first_chunk"] > 0
        assert "gen_ai.server.time_to_first_token" not in attributes
    for attributes in chats:
        assert "gen_ai.request.is_stream" not in attributes
        if not attributes["gen_ai.request.stream"]:  # the whole call's duration: left as sent
            assert "gen_ai.response.time_to_first_chunk" not in attributes
            assert attributes["gen_ai.server.time_to_first_token"] > 0


def test_openlit_145_anthropic_input_includes_the_cache() -> None:
    [cached] = [attributes for attributes in by_scope(
        "openlit-1.45.0/default", "openlit.instrumentation.anthropic")
        if attributes["gen_ai.usage.cache_read.input_tokens"]]
    assert cached["gen_ai.usage.input_tokens"] == 12 + 1024 + 512  # as the upstream counts


def test_anthropic_sdk_cache_write_is_read_as_cache_creation() -> None:
    [cached, _] = by_scope("anthropic-sdk-2.17.0/metadata_only", "com.anthropic.sdk.python")
    assert cached["gen_ai.usage.cache_creation.input_tokens"] == 512
    assert "gen_ai.usage.cache_write.input_tokens" not in cached
    assert cached["llmtrace.receiver.dialects"] == ("genai_latest",)


def test_foreign_content_is_removed_when_not_exported_as_received() -> None:
    """OpenInference input.value/output.value and Traceloop entity input/output, on spans of
    any kind, go when content is not exported as received; they stay when it is."""
    chain = {"openinference.span.kind": "CHAIN", "input.value": "my email is a@b.example",
             "output.value": "ok", "input.mime_type": "text/plain"}
    workflow = {"traceloop.span.kind": "workflow", "traceloop.entity.input": '{"q": "secret"}',
                "traceloop.entity.output": "done", "traceloop.entity.name": "answer"}
    retriever = {"openinference.span.kind": "RETRIEVER",
                 "retrieval.documents.0.document.content": "private notes"}
    for attributes in (chain, workflow, retriever):
        assert normalise(attributes, [], keep_foreign=True) is None  # exported as received
    out, _ = normalise(chain, [], keep_foreign=False) or ({}, [])
    assert out == {"openinference.span.kind": "CHAIN", "input.mime_type": "text/plain"}
    out, _ = normalise(workflow, [], keep_foreign=False) or ({}, [])
    assert out == {"traceloop.span.kind": "workflow", "traceloop.entity.name": "answer"}
    out, _ = normalise(retriever, [], keep_foreign=False) or ({}, [])
    assert out == {"openinference.span.kind": "RETRIEVER"}


def test_recorded_openinference_keeps_no_raw_content_when_capture_is_off() -> None:
    for span in spans("openinference-0.1.66/default", content=True, keep_foreign=False):
        leftover = [key for key in (span.attributes or {})
                    if key.startswith(("input.value", "output.value", "llm.input_messages",
                                       "llm.output_messages", "embedding.embeddings"))]
        assert leftover == [], span.name


def test_events_joined_late_translate_once() -> None:
    """A span already normalised, given its message events later (OTLP log records)."""
    from llmtrace_otel.receiver.dialects import join_events

    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                  "llmtrace.receiver.dialects": ("genai_legacy",)}
    events = [Event("gen_ai.user.message", {"content": "hi there"}),
              Event("gen_ai.choice", {"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": "hello"}})]
    out, left = join_events(attributes, events) or ({}, [])
    assert messages(out, "gen_ai.input.messages") == [
        {"role": "user", "parts": [{"type": "text", "content": "hi there"}]}]
    assert messages(out, "gen_ai.output.messages")[0]["parts"][0]["content"] == "hello"
    assert left == [] and out["llmtrace.receiver.dialects"] == ("genai_legacy",)
