"""One call, one count, when the ``anthropic`` SDK's own tracing is on.

The real ``anthropic`` SDK emits ``anthropic.messages.create`` (scope
``com.anthropic.sdk.python``) around every call when it has a tracer provider; our span is
its child. Ours carries usage, cost and findings; the SDK's is marked as its duplicate, so a
``collect`` (or any backend) receiving both counts the call once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.receiver.compat import get_json
from tests.receiver.harness import running_collector
from tests.sdk.harness import API_KEY, AppTelemetry, instrumented
from tests.support.fake_upstream import SCENARIO_HEADER, FakeUpstream

DUPLICATE_OF = "llmtrace.call.duplicate_of"
SDK_SCOPE = "com.anthropic.sdk.python"


def client(upstream: FakeUpstream, app: AppTelemetry, traces: bool) -> anthropic.Anthropic:
    options: Any = {"tracer_provider": app.tracer_provider, "traces": traces}
    return anthropic.Anthropic(base_url=upstream.anthropic_base_url, api_key=API_KEY,
                               max_retries=0, default_headers={SCENARIO_HEADER: "cache"},
                               open_telemetry=options)


def call(upstream: FakeUpstream, app: AppTelemetry, traces: bool, stream: bool) -> None:
    params: Any = {"model": "claude-haiku-4-5", "max_tokens": 50,
                   "messages": [{"role": "user", "content": "Hi"}]}
    if stream:
        for _ in client(upstream, app, traces).messages.create(**params, stream=True):
            pass
    else:
        client(upstream, app, traces).messages.create(**params)


@pytest.mark.parametrize("stream", [False, True])
def test_the_sdks_own_span_is_marked_as_the_duplicate_of_ours(
        sdk: AppTelemetry, upstream: FakeUpstream, stream: bool) -> None:
    call(upstream, sdk, traces=True, stream=stream)
    genai = sdk.genai_spans()
    [theirs] = [span for span in genai if span.instrumentation_scope.name == SDK_SCOPE]
    [ours] = [span for span in genai if span is not theirs]
    assert ours.parent is not None and ours.parent.span_id == theirs.context.span_id
    assert (theirs.attributes or {})[DUPLICATE_OF] == format(ours.context.span_id, "016x")
    assert DUPLICATE_OF not in (ours.attributes or {})
    assert (ours.attributes or {})["llmtrace.cost.usd"] > 0  # ours is priced
    # both saw the same call
    assert (theirs.attributes or {})["gen_ai.usage.output_tokens"] == \
        (ours.attributes or {})["gen_ai.usage.output_tokens"]


def test_without_the_sdks_tracing_nothing_is_marked(sdk: AppTelemetry,
                                                     upstream: FakeUpstream) -> None:
    call(upstream, sdk, traces=False, stream=False)
    [ours] = sdk.genai_spans()
    assert DUPLICATE_OF not in (ours.attributes or {})


def test_collect_counts_the_call_once(app: AppTelemetry, upstream: FakeUpstream,
                                      tmp_path: Path) -> None:
    """The application exports both spans to ``collect``: one call, priced once."""
    with running_collector(tmp_path / "collect", receiver_join_wait_s=0.2) as collector:
        app.tracer_provider.add_span_processor(SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True)))
        with instrumented(app, tmp_path):
            call(upstream, app, traces=True, stream=False)
            call(upstream, app, traces=True, stream=True)
        app.tracer_provider.force_flush(10_000)
        collector.spans(4)
        collector.telemetry.force_flush(10_000)
        stats = get_json(collector.ops_url + "/api/v1/stats")["totals"]
        ours = [span for span in app.genai_spans()
                if span.instrumentation_scope.name != SDK_SCOPE]
        assert stats["calls"] == 2
        assert stats["cost_usd"] == pytest.approx(
            sum((span.attributes or {})["llmtrace.cost.usd"] for span in ours))
