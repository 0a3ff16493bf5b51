"""Metrics read from the real /metrics text after real traffic; /health JSON."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import urllib.request

import openai

from tests.support.expectations import metric_value as value
from tests.support.fake_upstream import SCENARIO_HEADER, usage_for
from tests.support.proxy_harness import RunningProxy

MESSAGES = [{"role": "user", "content": "Hi"}]


def client(proxy: RunningProxy, scenario: str = "ok") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0,
                         default_headers={SCENARIO_HEADER: scenario})


def test_genai_and_operational_metrics_after_traffic(proxy: RunningProxy) -> None:
    client(proxy).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    list(client(proxy).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                               stream=True))
    with contextlib.suppress(openai.InternalServerError):
        client(proxy, "error-500").chat.completions.create(model="gpt-4o-mini",
                                                           messages=MESSAGES)
    proxy.spans(3)  # all three calls finished (metrics are recorded when the span ends)
    text = proxy.metrics_text()
    usage = usage_for("openai", "ok")
    # GenAI semconv histograms, with semconv attributes.
    assert value(text, "gen_ai_client_token_usage_sum", gen_ai_token_type="input",
                 gen_ai_operation_name="chat") == 2 * usage.input_tokens
    assert value(text, "gen_ai_client_token_usage_sum", gen_ai_token_type="output") == \
        2 * usage.output_tokens
    assert value(text, "gen_ai_client_operation_duration_seconds_count",
                 gen_ai_provider_name="openai") == 3
    assert value(text, "gen_ai_client_operation_duration_seconds_count",
                 error_type="server_error") == 1
    assert value(text, "gen_ai_client_operation_time_to_first_chunk_seconds_count") == 1
    assert value(text, "gen_ai_client_operation_time_per_output_chunk_seconds_count") >= 3
    # Semconv bucket boundaries are in use (first duration bucket is 10 ms).
    assert 'gen_ai_client_operation_duration_seconds_bucket{' in text
    assert re.search(r'gen_ai_client_operation_duration_seconds_bucket\{[^}]*le="0\.01"', text)
    assert re.search(r'gen_ai_client_token_usage_bucket\{[^}]*le="67108864"', text)
    # The operational family.
    assert value(text, "llmtrace_requests_total", provider="openai", model="gpt-4o-mini",
                 status_code="200") == 2
    assert value(text, "llmtrace_requests_total", status_code="500") == 1
    assert value(text, "llmtrace_request_duration_seconds_count") == 3
    assert value(text, "llmtrace_tokens_total", direction="input", provider="openai",
                 model="gpt-4o-mini") == 2 * usage.input_tokens
    assert value(text, "llmtrace_upstream_errors_total", error_type="http_500") == 1
    assert value(text, "llmtrace_active_connections") == 0
    # Cost, from the processor chain.
    assert value(text, "llmtrace_cost_usd_total", model="gpt-4o-mini") > 0


def test_active_connections_counts_calls_in_flight(proxy: RunningProxy) -> None:
    slow = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0,
                         default_headers={SCENARIO_HEADER: "slow", "x-fake-delay": "1.0"})
    thread = threading.Thread(target=lambda: slow.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES))
    thread.start()
    deadline = time.monotonic() + 5
    seen = 0.0
    while time.monotonic() < deadline and seen < 1:
        seen = value(proxy.metrics_text(), "llmtrace_active_connections")
        time.sleep(0.05)
    thread.join(10)
    assert seen == 1


def test_health_reports_components(proxy: RunningProxy) -> None:
    client(proxy).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    proxy.spans(1)
    proxy.telemetry.force_flush()
    with urllib.request.urlopen(f"{proxy.url}/health", timeout=5) as response:
        assert response.status == 200
        report = json.loads(response.read())
    assert report["status"] == "healthy"
    assert report["components"]["exporter.sqlite"]["state"] == "ok"
    assert report["components"]["analysis_queue"]["capacity"] > 0
    assert report["uptime_s"] >= 0


def test_health_is_degraded_when_sqlite_fails(upstream, tmp_path) -> None:
    from tests.support.proxy_harness import running_proxy

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the database directory should be")
    # A key secret of its own: the one kept beside the store could not be created either.
    with running_proxy(upstream.url, tmp_path, sqlite_path=str(blocker / "spans.db"),
                       tenant_key_secret="k" * 32) as proxy:
        reply = client(proxy).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert reply.choices  # traffic is unaffected
        proxy.spans(1)
        proxy.telemetry.force_flush()
        with urllib.request.urlopen(f"{proxy.url}/health", timeout=5) as response:
            report = json.loads(response.read())
        assert report["status"] == "degraded"
        assert report["components"]["exporter.sqlite"]["state"] == "failing"
        assert value(proxy.metrics_text(), "llmtrace_telemetry_dropped_total",
                     stage="export.sqlite", reason="export_failed") >= 1
