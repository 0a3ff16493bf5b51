"""Instrument, uninstrument, twice; other httpx calls; HTTP spans; failures inside us."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx2
import pytest
from opentelemetry.context import Context
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from llmtrace_otel.sdk import LLMTraceInstrumentor
from tests.sdk.harness import AppTelemetry, instrumented, openai_async, openai_sync, run
from tests.support.expectations import metric_value
from tests.support.fake_upstream import REPLY_TEXT, FakeUpstream

MESSAGES = [{"role": "user", "content": "Hi"}]


def chat(upstream: FakeUpstream) -> str:
    reply = openai_sync(upstream).chat.completions.create(model="gpt-4o-mini",
                                                          messages=MESSAGES)
    return str(reply.choices[0].message.content)


def test_uninstrument_restores_the_original_methods(app: AppTelemetry, upstream: FakeUpstream,
                                                    tmp_path: Path) -> None:
    originals = (httpx2.Client.__dict__["send"], httpx2.AsyncClient.__dict__["send"])
    processors_before = app.tracer_provider._active_span_processor._span_processors
    with instrumented(app, tmp_path):
        assert httpx2.Client.__dict__["send"] is not originals[0]
        assert chat(upstream) == REPLY_TEXT
        assert len(app.genai_spans()) == 1
    assert (httpx2.Client.__dict__["send"], httpx2.AsyncClient.__dict__["send"]) == originals
    # Nothing of ours is left in the application's provider, which keeps working.
    assert app.tracer_provider._active_span_processor._span_processors == processors_before
    app.clear()
    assert chat(upstream) == REPLY_TEXT
    assert run(openai_async(upstream).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES)).choices
    assert app.genai_spans() == []
    with app.tracer_provider.get_tracer("app").start_as_current_span("still-works"):
        pass
    assert [s.name for s in app.spans()] == ["still-works"]
    # And it can be turned on again.
    with instrumented(app, tmp_path):
        chat(upstream)
        assert len(app.genai_spans()) == 1


def test_instrumenting_twice_is_harmless(app: AppTelemetry, upstream: FakeUpstream,
                                         tmp_path: Path, caplog: pytest.LogCaptureFixture
                                         ) -> None:
    import llmtrace_otel

    with instrumented(app, tmp_path) as instrumentor:
        wrapped = httpx2.Client.__dict__["send"]
        with caplog.at_level(logging.WARNING):
            instrumentor.instrument(tracer_provider=app.tracer_provider)
        again = llmtrace_otel.instrument()  # the module-level helper: a no-op too
        assert again is instrumentor
        assert httpx2.Client.__dict__["send"] is wrapped  # not wrapped a second time
        assert "already instrumented" in caplog.text
        chat(upstream)
        assert len(app.genai_spans()) == 1  # one span per call, not two
    assert not LLMTraceInstrumentor().is_instrumented_by_opentelemetry
    llmtrace_otel.uninstrument()  # uninstrumenting when off is harmless as well


def test_other_httpx_calls_are_left_alone(sdk: AppTelemetry, upstream: FakeUpstream) -> None:
    with httpx2.Client() as client:
        assert client.get(f"{upstream.url}/v1/models").status_code == 200
        # A POST that is not an API shape, and an API path whose body is not JSON.
        client.post(f"{upstream.url}/v1/files", content=b"x")
        client.post(f"{upstream.url}/v1/chat/completions", content=b"not json",
                    headers={"x-fake-scenario": "ok"})
    assert openai_sync(upstream).models.list().data
    assert sdk.spans() == []
    assert "traceparent" not in upstream.requests[0].headers  # untouched


def test_http_spans_nest_under_the_genai_span(app: AppTelemetry, upstream: FakeUpstream,
                                              tmp_path: Path) -> None:
    upstream.clear()
    with instrumented(app, tmp_path, http_spans=True):
        assert HTTPX2ClientInstrumentor().is_instrumented_by_opentelemetry
        chat(upstream)
        openai_sync(upstream).models.list()
        chunks = list(openai_sync(upstream).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True))
        assert chunks
    assert not HTTPX2ClientInstrumentor().is_instrumented_by_opentelemetry  # ours, undone
    spans = app.spans()
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    genai_spans = by_name["chat gpt-4o-mini"]
    posts, gets = by_name["POST"], by_name["GET"]
    assert len(genai_spans) == 2 and len(posts) == 2 and len(gets) == 1
    # Each HTTP attempt is a child of its GenAI span; the upstream saw the HTTP span.
    for call, http in zip(genai_spans, sorted(posts, key=lambda s: s.start_time), strict=True):
        assert http.parent is not None and http.parent.span_id == call.context.span_id
        assert http.context.trace_id == call.context.trace_id
        assert http.kind is SpanKind.CLIENT
        # The HTTP span ends when the headers arrive; the GenAI span owns the body.
        assert call.end_time >= http.end_time
    traceparents = [r.headers["traceparent"] for r in upstream.requests
                    if r.path == "/v1/chat/completions"]
    assert traceparents[0].split("-")[2] == format(posts[0].context.span_id, "016x")
    # The non-LLM call is a plain HTTP span of the HTTP instrumentation only.
    assert genai.GEN_AI_OPERATION_NAME not in (gets[0].attributes or {})
    assert gets[0].parent is None


def test_spans_join_the_applications_trace(sdk: AppTelemetry, upstream: FakeUpstream) -> None:
    tracer = sdk.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle request") as parent:
        chat(upstream)
    span = sdk.only_genai_span()
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert span.context.trace_id == parent.get_span_context().trace_id


def test_suppressed_instrumentation_is_respected(sdk: AppTelemetry,
                                                 upstream: FakeUpstream) -> None:
    with suppress_instrumentation():
        chat(upstream)
    assert sdk.genai_spans() == []


def test_hosts_setting_limits_recognition(app: AppTelemetry, upstream: FakeUpstream,
                                          tmp_path: Path) -> None:
    with instrumented(app, tmp_path, sdk_hosts="api.openai.com, *.openai.azure.com"):
        chat(upstream)  # 127.0.0.1 is not among them
        assert app.genai_spans() == []
    with instrumented(app, tmp_path, sdk_hosts="127.0.0.1"):
        chat(upstream)
        assert len(app.genai_spans()) == 1


@pytest.mark.parametrize("capture", [True, False])
def test_content_only_with_the_opt_in(app: AppTelemetry, upstream: FakeUpstream,
                                      tmp_path: Path, capture: bool) -> None:
    with instrumented(app, tmp_path, capture_content=capture):
        chat(upstream)
    attrs = app.only_genai_span().attributes or {}
    if capture:
        assert json.loads(str(attrs[genai.GEN_AI_INPUT_MESSAGES])) == [
            {"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]
        assert json.loads(str(attrs[genai.GEN_AI_OUTPUT_MESSAGES]))[0]["parts"] == [
            {"type": "text", "content": REPLY_TEXT}]
    else:
        assert genai.GEN_AI_INPUT_MESSAGES not in attrs
        assert genai.GEN_AI_OUTPUT_MESSAGES not in attrs


class _BrokenSampler(Sampler):
    """A sampler that raises: a failure inside the span machinery, not in the app."""

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state: Any = None
                      ) -> SamplingResult:
        raise RuntimeError("sampler exploded")

    def get_description(self) -> str:
        return "broken"


def test_a_failure_inside_the_instrumentation_never_breaks_the_call(
    upstream: FakeUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = AppTelemetry.create(sampler=_BrokenSampler())
    try:
        with instrumented(app, tmp_path), caplog.at_level(logging.WARNING):
            assert chat(upstream) == REPLY_TEXT
            chunks = list(openai_sync(upstream).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True))
            assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY_TEXT
        assert "instrumentation failed" in caplog.text
        assert metric_value(app.metrics_text(), "llmtrace_telemetry_dropped_total",
                            stage="sdk", reason="instrumentation_error") == 2
        # Nothing was half-done: the stream was not edited for a span that never existed.
        assert "stream_options" not in upstream.requests[-1].json()
    finally:
        app.shutdown()


def test_uninstrument_with_a_stream_in_flight(app: AppTelemetry, upstream: FakeUpstream,
                                              tmp_path: Path) -> None:
    with instrumented(app, tmp_path):
        stream = openai_sync(upstream).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True)
    # Reading it after uninstrument works; its span ends into a stopped pipeline.
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY_TEXT


def test_application_shutdown_delivers_what_is_still_queued(upstream: FakeUpstream,
                                                            tmp_path: Path) -> None:
    app = AppTelemetry.create()
    with instrumented(app, tmp_path):
        for _ in range(3):
            chat(upstream)
        # No flush: a short script just shuts its provider down. Our queue drains first.
        app.tracer_provider.shutdown()
        assert len([s for s in app.memory.get_finished_spans()
                    if s.name == "chat gpt-4o-mini"]) == 3
    app.meter_provider.shutdown()


def test_a_bad_setting_is_a_clear_error_at_instrument(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmtrace_otel
    from llmtrace_otel.config import ConfigError

    monkeypatch.setenv("LLMTRACE_SDK_PROMETHEUS_PORT", "ninety")
    with pytest.raises(ConfigError, match="sdk.prometheus_port"):
        llmtrace_otel.instrument()
    assert not LLMTraceInstrumentor().is_instrumented_by_opentelemetry
    assert httpx2.Client.__dict__["send"].__class__.__name__ == "function"
