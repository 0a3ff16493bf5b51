"""The proxy's histograms, pre-aggregated, say exactly what the SDK's histograms said.

Two pipelines are built by the assembly (``build_pipeline``) from the same settings: one as
the proxy now runs (every reader merges pre-aggregated histograms), one the way it ran before
(an extra reader that cannot merge makes every histogram the SDK's). The same calls are
recorded into both: ``ProxyInstruments.record`` with a fixed set of outcomes of every kind,
and ``HttpServerMetrics`` fed by a real Tornado server answering real requests (each finished
request is reported to both). Then the /metrics scrape of each, line by line, and what an
OTLP reader receives, series by series, must be the same.
"""

from __future__ import annotations

import asyncio
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry.sdk.metrics import Histogram
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogram,
    InMemoryMetricReader,
    MetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation
from prometheus_client import generate_latest
from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPServerRequest
from tornado.netutil import bind_sockets
from tornado.web import RequestHandler

from llmtrace_otel.config import load_settings
from llmtrace_otel.proxy.http_metrics import HttpServerMetrics, MeteredApplication
from llmtrace_otel.telemetry.merging_reader import MergingInMemoryMetricReader
from llmtrace_otel.telemetry.metric_sources import LocalHistograms
from llmtrace_otel.telemetry.pipeline import Telemetry
from llmtrace_otel.wiring import Extras, build_pipeline
from tests.telemetry.test_metrics_merge import _outcomes

LATEST = "gen_ai_latest_experimental"
TRACE_ROUTE = r"/api/v1/traces/([^/]+)"


def _pipeline(reader: MetricReader, opt_in: str) -> Telemetry:
    settings = load_settings(env={}, overrides={
        "sqlite_enabled": False, "metrics_process": False, "semconv_stability_opt_in": opt_in})
    return build_pipeline(settings, env={}, extras=Extras(metric_readers=[reader]))


class _Both:
    """Reports every request the server sees to both pipelines' HTTP server metrics."""

    def __init__(self, *metrics: HttpServerMetrics) -> None:
        self._metrics = metrics

    def started(self, request: HTTPServerRequest) -> None:
        for metrics in self._metrics:
            metrics.started(request)

    def finished(self, handler: RequestHandler) -> None:
        # An error page is logged before Tornado notes its end: its request_time() is read
        # from the clock; both pipelines must see the same one.
        duration = handler.request.request_time()
        handler.request.request_time = lambda: duration  # type: ignore[method-assign]
        for metrics in self._metrics:
            metrics.finished(handler)


class _Answer(RequestHandler):
    def post(self, *args: str) -> None:
        self.write({"received": len(self.request.body)})

    def get(self, *args: str) -> None:
        if self.request.path.endswith("/broken"):
            self.set_status(503)
        self.write("x" * (len(self.request.path) * 40))


@contextmanager
def _server(both: _Both) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        app = MeteredApplication([(TRACE_ROUTE, _Answer), (r"/.*", _Answer)],
                                 http_metrics=both)  # type: ignore[arg-type]
        sockets = bind_sockets(0, "127.0.0.1")
        holder["port"] = sockets[0].getsockname()[1]
        holder["server"] = server = HTTPServer(app)
        server.add_sockets(sockets)
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{holder['port']}"
    finally:
        loop.call_soon_threadsafe(holder["server"].stop)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _traffic(url: str) -> None:
    requests = [("POST", "/v1/chat/completions", b'{"model": "m"}' * 20),
                ("POST", "/v1/embeddings", b"{}"), ("GET", "/api/v1/traces/abc", None),
                ("GET", "/v1/broken", None), ("GET", "/metrics", None),
                ("DELETE", "/v1/files/1", None)] * 3
    for method, path, body in requests:
        try:
            with urllib.request.urlopen(urllib.request.Request(url + path, data=body,
                                                               method=method), timeout=10):
                pass
        except urllib.error.HTTPError as error:
            assert error.code in (405, 503)  # DELETE: not allowed; /broken: 503


def _scrape(telemetry: Telemetry) -> list[str]:
    assert telemetry.prometheus_registry is not None
    text = generate_latest(telemetry.prometheus_registry).decode()
    return sorted(re.sub(r'service_instance_id="[^"]*"', "", line)
                  for line in text.splitlines())


def _collection(data: MetricsData | None) -> dict[Any, Any]:
    """Everything an OTLP exporter would send but the times and the instance id."""
    assert data is not None
    out: dict[Any, Any] = {}
    for resource_metrics in data.resource_metrics:
        resource = {key: value for key, value in resource_metrics.resource.attributes.items()
                    if key != "service.instance.id"}
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            for metric in scope_metrics.metrics:
                kind = (type(metric.data).__name__,
                        getattr(metric.data, "aggregation_temporality", None),
                        getattr(metric.data, "is_monotonic", None))
                for point in metric.data.data_points:
                    fields = {key: value for key, value in vars(point).items()
                              if key not in ("start_time_unix_nano", "time_unix_nano")}
                    fields["attributes"] = dict(point.attributes)
                    key = (repr(sorted(resource.items())), scope.name, scope.version,
                           scope.schema_url, repr(dict(scope.attributes or {})), metric.name,
                           metric.unit, metric.description, kind,
                           repr(sorted(point.attributes.items())))
                    assert key not in out
                    out[key] = repr(fields)
    return out


@pytest.mark.parametrize("opt_in", ["", LATEST], ids=["genai-default", "genai-latest"])
def test_scrape_and_otlp_are_what_the_sdk_histograms_gave(opt_in: str) -> None:
    before_reader, after_reader = InMemoryMetricReader(), MergingInMemoryMetricReader()
    before, after = _pipeline(before_reader, opt_in), _pipeline(after_reader, opt_in)
    assert before.histograms is None  # a reader that cannot merge: the SDK's histograms
    assert isinstance(after.histograms, LocalHistograms)  # the proxy as it runs
    http = [HttpServerMetrics(telemetry.meter, histograms=telemetry.histograms,
                              exclude_paths=("/metrics",), routes=[TRACE_ROUTE, r"/.*"])
            for telemetry in (before, after)]
    try:
        for outcome in _outcomes():
            before.instruments.record(outcome)
            after.instruments.record(outcome)
        with _server(_Both(*http)) as url:
            _traffic(url)

        scraped = _scrape(after)
        assert scraped == _scrape(before)
        assert _collection(after_reader.get_metrics_data()) == _collection(
            before_reader.get_metrics_data())
        # not vacuous: the histograms are there, and were recorded by ours
        histograms = {line.split("{")[0] for line in scraped if "_bucket{" in line}
        expected = {"llmtrace_request_duration_seconds_bucket",
                    "http_server_request_duration_seconds_bucket",
                    "http_server_request_body_size_bytes_bucket",
                    "http_server_response_body_size_bytes_bucket"}
        expected |= ({"gen_ai_client_inference_duration_seconds_bucket",
                      "gen_ai_client_operation_duration_seconds_bucket",  # other operations
                      "gen_ai_client_embeddings_duration_seconds_bucket",
                      "gen_ai_client_inference_time_to_first_chunk_seconds_bucket",
                      "gen_ai_client_inference_time_per_output_chunk_seconds_bucket",
                      "gen_ai_client_inference_operation_input_tokens_bucket",
                      "gen_ai_client_inference_operation_output_tokens_bucket",
                      "gen_ai_client_embeddings_operation_input_tokens_bucket"} if opt_in else
                     {"gen_ai_client_operation_duration_seconds_bucket",
                      "gen_ai_client_token_usage_bucket",
                      "gen_ai_client_operation_time_to_first_chunk_seconds_bucket",
                      "gen_ai_client_operation_time_per_output_chunk_seconds_bucket"})
        assert histograms == expected
        assert len(after.histograms.declared_bounds()) == len(expected)  # every one is ours
    finally:
        before.shutdown()
        after.shutdown()


def test_a_reader_wanting_exponential_histograms_gets_the_sdks() -> None:
    """A reader that asked for base-2 exponential histograms (what
    OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION does to the OTLP reader) cannot
    take explicit-bucket ones: every histogram is then the SDK's, and it gets what it asked."""
    reader = MergingInMemoryMetricReader(
        preferred_aggregation={Histogram: ExponentialBucketHistogramAggregation()})
    telemetry = _pipeline(reader, "")
    try:
        assert telemetry.histograms is None
        telemetry.instruments.record(_outcomes()[1])
        data = reader.get_metrics_data()
        assert data is not None
        kinds = {metric.name: type(metric.data) for rm in data.resource_metrics
                 for sm in rm.scope_metrics for metric in sm.metrics}
        assert kinds["gen_ai.client.operation.duration"] is ExponentialHistogram
        assert kinds["llmtrace.request.duration"] is ExponentialHistogram
    finally:
        telemetry.shutdown()
