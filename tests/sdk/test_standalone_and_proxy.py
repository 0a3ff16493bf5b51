"""Without application providers (our own pipeline), and through a running proxy."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

from llmtrace_otel.config import load_settings
from llmtrace_otel.exporters.sqlite import SpanStore
from llmtrace_otel.sdk import LLMTraceInstrumentor, Mode
from llmtrace_otel.telemetry.metric_sources import LocalHistograms
from tests.sdk.harness import AppTelemetry, instrumented, openai_sync
from tests.support.expectations import assert_genai_span, metric_value
from tests.support.fake_upstream import REPLY_TEXT, FakeUpstream, usage_for
from tests.support.proxy_harness import running_proxy

MESSAGES = [{"role": "user", "content": "Hi"}]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_without_application_providers_the_defaults_apply(upstream: FakeUpstream,
                                                          tmp_path: Path) -> None:
    db = tmp_path / "standalone.db"
    port = _free_port()
    settings = load_settings(env={}, overrides={"sqlite_path": str(db),
                                                "sdk_prometheus_port": port})
    instrumentor = LLMTraceInstrumentor()
    instrumentor.instrument(settings=settings)  # no providers given, none set globally
    try:
        telemetry = instrumentor.telemetry
        assert telemetry is not None
        assert (telemetry.tracing, telemetry.metering) == (Mode.STANDALONE, Mode.STANDALONE)
        # our own meter provider and readers: the histograms are pre-aggregated
        assert isinstance(telemetry.telemetry.histograms, LocalHistograms)
        client = openai_sync(upstream)
        assert client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES).choices[0].message.content == REPLY_TEXT
        assert list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                   stream=True))
        telemetry.force_flush()  # the cost processor runs behind the analysis queue
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        assert metric_value(text, "gen_ai_client_token_usage_sum", gen_ai_token_type="input") \
            == 2 * usage_for("openai", "ok").input_tokens
        assert metric_value(text, "llmtrace_cost_usd_total", model="gpt-4o-mini") > 0
    finally:
        instrumentor.uninstrument()  # flushes the SQLite exporter, stops the endpoint
    calls = SpanStore(db).recent_calls()
    assert len(calls) == 2
    assert {c.name for c in calls} == {"chat gpt-4o-mini"}
    assert {c.stream for c in calls} == {True, False}
    assert all(c.input_tokens == usage_for("openai", "ok").input_tokens for c in calls)
    assert all(c.cost_usd and c.cost_usd > 0 for c in calls)
    assert all(c.service_name == "llmtrace-otel" for c in calls)
    streamed = next(c for c in calls if c.stream)
    assert streamed.ttft_ms is not None and streamed.ttft_ms > 0


def test_with_the_applications_meter_provider_the_histograms_are_the_sdks(
        app: AppTelemetry, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The application's readers are not ours to merge into: the SDK's own histograms,
    which its readers see as they see any other."""
    with instrumented(app, tmp_path) as instrumentor:
        assert instrumentor.telemetry is not None
        assert instrumentor.telemetry.metering is Mode.ATTACHED
        assert instrumentor.telemetry.telemetry.histograms is None
        openai_sync(upstream).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        text = app.metrics_text()
    assert metric_value(text, "gen_ai_client_operation_duration_seconds_count",
                        gen_ai_request_model="gpt-4o-mini") == 1
    assert metric_value(text, "llmtrace_request_duration_seconds_count", provider="openai",
                        model="gpt-4o-mini", status_code="200") == 1


def test_own_exporters_can_be_turned_off(upstream: FakeUpstream, tmp_path: Path) -> None:
    db = tmp_path / "off.db"
    settings = load_settings(env={}, overrides={"sqlite_path": str(db), "sdk_exporters": "off"})
    instrumentor = LLMTraceInstrumentor()
    instrumentor.instrument(settings=settings)
    try:
        openai_sync(upstream).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    assert not db.exists()


def test_own_exporters_beside_the_applications(app: AppTelemetry, upstream: FakeUpstream,
                                               tmp_path: Path) -> None:
    db = tmp_path / "both.db"
    with instrumented(app, tmp_path, sqlite_path=str(db), sdk_exporters="on"):
        openai_sync(upstream).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    [span] = app.genai_spans()
    [row] = SpanStore(db).recent_calls()
    assert row.span_id == format(span.context.span_id, "016x")  # the same span, twice


def test_through_a_proxy_one_trace_and_no_duplicate(app: AppTelemetry, upstream: FakeUpstream,
                                                    tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path) as proxy, \
            instrumented(app, tmp_path, sdk_proxy_urls=proxy.url):
        tracer = app.tracer_provider.get_tracer("app")
        with tracer.start_as_current_span("handle request") as parent:
            client = openai_sync(upstream)
            client = client.with_options(base_url=f"{proxy.url}/v1")
            assert client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES).choices[0].message.content == REPLY_TEXT
        proxied = proxy.only_span()
    assert app.genai_spans() == []  # the proxy records the call; the SDK does not repeat it
    assert_genai_span(proxied, operation="chat", provider="openai", model="gpt-4o-mini")
    context = parent.get_span_context()
    assert proxied.context.trace_id == context.trace_id
    assert proxied.parent is not None and proxied.parent.span_id == context.span_id


def test_through_an_unconfigured_proxy_the_spans_nest(app: AppTelemetry,
                                                      upstream: FakeUpstream,
                                                      tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path) as proxy, instrumented(app, tmp_path):
        client = openai_sync(upstream).with_options(base_url=f"{proxy.url}/v1")
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        proxied = proxy.only_span()
    [ours] = app.genai_spans()
    # Without sdk.proxy_urls both sides record the call, in one trace: proxy span inside.
    assert proxied.context.trace_id == ours.context.trace_id
    assert proxied.parent is not None and proxied.parent.span_id == ours.context.span_id
