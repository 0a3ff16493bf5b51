"""The operational metrics (issue 10), read from the real /metrics text after real traffic.

Provider health, the OTel HTTP server metrics, process metrics, prompt-cache accounting,
storage and export pipeline metrics, and the bound on model-name label cardinality.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmtrace_otel.telemetry.merging_reader import MergingInMemoryMetricReader
from llmtrace_otel.telemetry.metric_sources import LocalHistograms
from llmtrace_otel.telemetry.process import PROMETHEUS_DUPLICATES
from tests.support.expectations import metric_samples, metric_value
from tests.support.fake_upstream import SCENARIO_HEADER, FakeUpstream, usage_for
from tests.support.proxy_harness import RunningProxy, running_proxy

MESSAGES = [{"role": "user", "content": "Hi"}]


def _client(url: str, scenario: str = "ok") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-x", max_retries=0, timeout=10,
                         default_headers={SCENARIO_HEADER: scenario})


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _health(url: str) -> dict:
    status, body = _get(f"{url}/health")
    assert status == 200
    return json.loads(body)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- provider health ----------------------------------------------------------------------


def test_provider_turns_unavailable_after_consecutive_failures_and_recovers(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    with running_proxy(upstream.url, tmp_path, provider_health_consecutive_failures=3) as proxy:
        _client(proxy.url).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        proxy.spans(1)
        assert metric_value(proxy.metrics_text(), "llmtrace_provider_available",
                            provider="openai") == 1
        for _ in range(3):
            with pytest.raises(openai.InternalServerError):
                _client(proxy.url, "error-500").chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES)
        proxy.spans(4)
        assert metric_value(proxy.metrics_text(), "llmtrace_provider_available",
                            provider="openai") == 0
        health = _health(proxy.url)
        assert health["status"] == "degraded"
        assert health["providers"]["openai"]["available"] is False
        assert health["providers"]["openai"]["consecutive_failures"] == 3
        # A 429 or a 400 is the provider answering: not a failure, and it ends the streak.
        with pytest.raises(openai.RateLimitError):
            _client(proxy.url, "error-429").chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES)
        proxy.spans(5)
        assert _health(proxy.url)["providers"]["openai"]["consecutive_failures"] == 0
        # 3 failures out of 5 calls in the window is still over the 0.5 failure ratio.
        assert _health(proxy.url)["providers"]["openai"]["available"] is False
        for _ in range(2):
            _client(proxy.url).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        proxy.spans(7)
        assert metric_value(proxy.metrics_text(), "llmtrace_provider_available",
                            provider="openai") == 1  # 3/7 failed: under the ratio again
        assert _health(proxy.url)["status"] == "healthy"


def test_unreachable_upstream_marks_the_provider_unavailable(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    with running_proxy(dead, tmp_path) as proxy:
        client = anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0)
        for _ in range(5):
            with pytest.raises(anthropic.APIStatusError):
                client.messages.create(model="claude-3-5-haiku-latest", max_tokens=5,
                                       messages=MESSAGES)
        proxy.spans(5)
        text = proxy.metrics_text()
        assert metric_value(text, "llmtrace_provider_available", provider="anthropic") == 0
        assert _health(proxy.url)["providers"]["anthropic"]["failures_in_window"] == 5


# -- HTTP server metrics ------------------------------------------------------------------


def test_http_server_metrics_cover_proxied_and_api_routes_not_excluded_ones(
    proxy: RunningProxy,
) -> None:
    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}).encode()
    request = urllib.request.Request(f"{proxy.url}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = response.read()
    assert _get(f"{proxy.url}/api/v1/traces")[0] == 200
    assert _get(f"{proxy.url}/api/v1/spans/0123456789abcdef")[0] == 404
    _health(proxy.url)
    proxy.spans(1)
    text = proxy.metrics_text()
    chat = {"http_route": "/v1/chat/completions", "http_request_method": "POST",
            "http_response_status_code": "200", "url_scheme": "http"}
    assert metric_value(text, "http_server_request_duration_seconds_count", **chat) == 1
    assert metric_value(text, "http_server_request_body_size_bytes_sum", **chat) == len(body)
    assert metric_value(text, "http_server_response_body_size_bytes_sum", **chat) == len(answer)
    assert metric_value(text, "http_server_request_duration_seconds_count",
                        http_route="/api/v1/traces", http_response_status_code="200") == 1
    assert metric_value(text, "http_server_request_duration_seconds_count",
                        http_route="/api/v1/spans/{param}",
                        http_response_status_code="404") == 1
    routes = {labels.get("http_route") for name, labels, _ in metric_samples(text)
              if name.startswith("http_server_")}
    assert not {"/health", "/metrics"} & routes  # excluded by default
    assert metric_value(text, "http_server_active_requests",
                        http_request_method="POST") == 0


def test_http_server_metrics_can_be_switched_off(upstream: FakeUpstream, tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, metrics_http_server=False) as proxy:
        _client(proxy.url).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        proxy.spans(1)
        text = proxy.metrics_text()
    assert not [n for n, _, _ in metric_samples(text) if n.startswith("http_server_")]


# -- pre-aggregated histograms ---------------------------------------------------------------


def _histogram_points(reader: MergingInMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    return {metric.name: list(metric.data.data_points)
            for resource in data.resource_metrics for scope in resource.scope_metrics
            for metric in scope.metrics if type(metric.data).__name__ == "Histogram"}


def test_histograms_are_pre_aggregated_and_every_reader_gets_them(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    """Known traffic through the real proxy: /metrics and the OTLP reader report it, from
    the proxy's own pre-aggregated histograms (not the SDK's)."""
    otlp = MergingInMemoryMetricReader()
    with running_proxy(upstream.url, tmp_path, metric_readers=[otlp]) as proxy:
        assert isinstance(proxy.telemetry.histograms, LocalHistograms)
        client = _client(proxy.url)
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                stream=True):
            pass
        with pytest.raises(openai.InternalServerError):
            _client(proxy.url, "error-500").chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES)
        proxy.spans(5)
        text = proxy.metrics_text()
        points = _histogram_points(otlp)
    usage = usage_for("openai", "ok")
    ok = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai",
          "gen_ai_request_model": "gpt-4o-mini"}
    assert metric_value(text, "gen_ai_client_token_usage_sum", gen_ai_token_type="input",
                        **ok) == 4 * usage.input_tokens
    assert metric_value(text, "gen_ai_client_token_usage_count", gen_ai_token_type="output",
                        **ok) == 4
    assert metric_value(text, "gen_ai_client_operation_time_to_first_chunk_seconds_count",
                        **ok) == 1
    assert metric_value(text, "llmtrace_request_duration_seconds_count", provider="openai",
                        model="gpt-4o-mini", status_code="500") == 1
    assert metric_value(text, "llmtrace_request_duration_seconds_count", provider="openai",
                        model="gpt-4o-mini", status_code="200") == 4
    # the OTLP reader: the same histograms, the same counts
    declared = proxy.telemetry.histograms.declared_bounds()
    assert {"gen_ai.client.operation.duration", "gen_ai.client.token.usage",
            "llmtrace.request.duration", "http.server.request.duration"} <= set(points)
    for name, histogram_points in points.items():
        if name in declared:
            assert all(tuple(p.explicit_bounds) == tuple(declared[name])
                       for p in histogram_points)
    assert sum(p.count for p in points["gen_ai.client.operation.duration"]) == 5
    assert sum(p.count for p in points["http.server.request.duration"]) == 5


# -- process metrics ----------------------------------------------------------------------


def test_process_metrics_once_each_in_the_convention_of_the_reader(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    otlp = MergingInMemoryMetricReader()  # what an OTLP reader receives
    with running_proxy(upstream.url, tmp_path, metric_readers=[otlp]) as proxy:
        text = proxy.metrics_text()
        pushed = {metric.name: metric for resource in otlp.get_metrics_data().resource_metrics
                  for scope in resource.scope_metrics for metric in scope.metrics}
    # /metrics: Prometheus' classic families, what Prometheus users chart and alert on ...
    assert metric_value(text, "process_resident_memory_bytes") > 10_000_000
    assert metric_value(text, "process_cpu_seconds_total") > 0
    assert metric_value(text, "process_open_fds") >= 3
    assert abs(metric_value(text, "process_start_time_seconds") - time.time()) < 3600
    assert metric_value(text, "python_gc_collections_total", generation="0") >= 0
    assert metric_value(text, "process_thread_count") >= 2  # no classic twin: kept
    # ... and not their OTel twins a second time.
    families = {family.name for family in text_string_to_metric_families(text)}
    assert not PROMETHEUS_DUPLICATES & families
    assert not {name for name in families if name.startswith("cpython_gc")}
    # OTLP: the semconv names.
    for name in ("process.cpu.time", "process.memory.usage", "process.unix.file_descriptor.count",
                 "process.thread.count", "process.uptime", "cpython.gc.collections"):
        assert name in pushed, name
    cpu = {point.attributes["cpu.mode"]: point.value
           for point in pushed["process.cpu.time"].data.data_points}
    assert cpu["user"] > 0


# -- size and encoding of /metrics ----------------------------------------------------------


def _scrape(url: str, encoding: str | None) -> tuple[bytes, dict[str, str]]:
    headers = {"Accept-Encoding": encoding} if encoding else {}
    request = urllib.request.Request(url + "/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read(), {k.lower(): v for k, v in response.headers.items()}


def test_metrics_carry_no_empty_or_scope_labels_and_are_gzipped_when_asked(
        proxy: RunningProxy) -> None:
    client = _client(proxy.url)
    for model in ("gpt-4o-mini", "gpt-4.1", "gpt-4o-mini"):
        client.chat.completions.create(model=model, messages=MESSAGES)
    with contextlib.suppress(openai.InternalServerError):
        _client(proxy.url, "error-500").chat.completions.create(model="gpt-4o-mini",
                                                                messages=MESSAGES)
    proxy.spans(4)
    plain, headers = _scrape(proxy.url, None)
    assert "content-encoding" not in headers
    text = plain.decode()
    samples = metric_samples(text)
    # An empty label is an absent label to Prometheus: it costs bytes and says nothing. Nor
    # do otel_scope_* labels (the metric name and target_info say it).
    assert not [(name, labels) for name, labels, _ in samples if "" in labels.values()]
    assert not [name for name, labels, _ in samples if any(k.startswith("otel_scope")
                                                           for k in labels)]
    # The error series still has its error_type; the successes simply have none.
    assert metric_value(text, "http_server_request_duration_seconds_count",
                        error_type="500") == 1
    packed, headers = _scrape(proxy.url, "deflate, gzip;q=0.9")
    assert headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
    def series(body: bytes) -> list[str]:  # the values (process memory ...) move on
        return [line.rsplit(" ", 1)[0] for line in body.decode().splitlines()]

    assert series(gzip.decompress(packed)) == series(plain)
    assert len(packed) * 10 < len(plain), (len(packed), len(plain))


# -- prompt cache -------------------------------------------------------------------------


def test_prompt_cache_reads_and_writes_are_counted(proxy: RunningProxy) -> None:
    _client(proxy.url, "cache").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    claude = anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0,
                                 default_headers={SCENARIO_HEADER: "cache"})
    claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=5, messages=MESSAGES)
    proxy.spans(2)
    text = proxy.metrics_text()
    openai_usage, anthropic_usage = usage_for("openai", "cache"), usage_for("anthropic", "cache")
    assert metric_value(text, "llmtrace_prompt_cache_tokens_total", provider="openai",
                        model="gpt-4o-mini", operation="read") == openai_usage.cached_tokens
    assert metric_value(text, "llmtrace_prompt_cache_tokens_total", provider="anthropic",
                        operation="read") == anthropic_usage.cached_tokens
    assert metric_value(text, "llmtrace_prompt_cache_tokens_total", provider="anthropic",
                        operation="write") == anthropic_usage.cache_creation_tokens
    # The hit ratio a dashboard plots: cache reads over input tokens (cache included).
    reads = metric_value(text, "llmtrace_prompt_cache_tokens_total", provider="openai",
                         operation="read")
    inputs = metric_value(text, "llmtrace_tokens_total", provider="openai", direction="input")
    assert reads / inputs == pytest.approx(1024 / 2006)


# -- storage and export pipeline ----------------------------------------------------------


def test_storage_operations_and_export_metrics(proxy: RunningProxy) -> None:
    _client(proxy.url).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    proxy.spans(1)
    assert _get(f"{proxy.url}/api/v1/traces")[0] == 200
    text = proxy.metrics_text()
    assert metric_value(text, "llmtrace_storage_operations_total", operation="open",
                        status="ok") == 1
    assert metric_value(text, "llmtrace_storage_operations_total", operation="write",
                        status="ok") >= 1
    assert metric_value(text, "llmtrace_storage_operations_total", operation="read",
                        status="ok") >= 1
    assert metric_value(text, "llmtrace_export_duration_seconds_count", exporter="sqlite",
                        outcome="ok") >= 1
    assert metric_value(text, "llmtrace_export_queue_depth", exporter="sqlite") == 0
    assert metric_value(text, "llmtrace_export_queue_capacity", exporter="sqlite") == 8192


def test_failed_storage_writes_are_counted(upstream: FakeUpstream, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the database's directory should be")
    # A key secret of its own: the one kept beside the store could not be created either.
    with running_proxy(upstream.url, tmp_path, sqlite_path=str(blocked / "spans.db"),
                       tenant_key_secret="k" * 32) as proxy:
        _client(proxy.url).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        proxy.spans(1)
        text = proxy.metrics_text()
    assert metric_value(text, "llmtrace_storage_operations_total", operation="open",
                        status="error") >= 1
    assert metric_value(text, "llmtrace_export_duration_seconds_count", exporter="sqlite",
                        outcome="failed") >= 1
    assert metric_value(text, "llmtrace_telemetry_dropped_total", stage="export.sqlite",
                        reason="export_failed") == 1


# -- cardinality --------------------------------------------------------------------------


def test_a_thousand_model_names_keep_metric_series_bounded(upstream: FakeUpstream,
                                                         tmp_path: Path) -> None:
    cap = 50
    with running_proxy(upstream.url, tmp_path, metrics_max_models=cap) as proxy:
        client = _client(proxy.url)
        for i in range(1000):
            with contextlib.suppress(openai.APIError):
                client.chat.completions.create(model=f"model-{i:04d}", messages=MESSAGES)
        spans = proxy.spans(1000, timeout=60)
        text = proxy.metrics_text()
    assert len(spans) == 1000
    assert {s.attributes["gen_ai.request.model"] for s in spans} == {  # type: ignore[index]
        f"model-{i:04d}" for i in range(1000)}  # spans keep every real name
    for name, label in (("llmtrace_requests_total", "model"),
                        ("llmtrace_tokens_total", "model"),
                        ("llmtrace_request_duration_seconds_count", "model"),
                        ("gen_ai_client_operation_duration_seconds_count",
                         "gen_ai_request_model"),
                        ("gen_ai_client_token_usage_count", "gen_ai_request_model")):
        models = {labels[label] for sample, labels, _ in metric_samples(text)
                  if sample == name}
        assert len(models) <= cap + 1, (name, len(models))
        assert "_other" in models
    total = metric_value(text, "llmtrace_requests_total")
    assert total == 1000  # nothing lost, only folded into _other


def test_flushing_telemetry_never_duplicates_prometheus_samples(proxy: RunningProxy) -> None:
    _client(proxy.url).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    proxy.spans(1)
    assert proxy.telemetry.force_flush()
    samples = [(name, tuple(sorted(labels.items())))
               for name, labels, _ in metric_samples(proxy.metrics_text())]
    duplicates = {sample for sample in samples if samples.count(sample) > 1}
    assert not duplicates
