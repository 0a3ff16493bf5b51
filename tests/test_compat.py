"""The private internals of tornado, the OTel SDK and httpx that llmtrace_otel.compat uses.

Each test exercises one function of compat against the real library and checks the effect
the product relies on, so a release that renames or changes the internal fails here, by
name, instead of degrading the proxy or the SDK instrumentation quietly.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx2 as httpx
from opentelemetry.sdk.metrics import Counter, Histogram
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import (
    DefaultAggregation,
    ExponentialBucketHistogramAggregation,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPHeaders
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from llmtrace_otel.compat import (
    header_value_lists,
    histogram_preferences,
    mark_response_abandoned,
    preloaded_content,
    put_span_processor_first,
    remove_span_processor,
    replace_content,
    span_limits_of,
    span_processor_of,
)


def test_header_value_lists_are_tornados_own_lists() -> None:
    headers = HTTPHeaders()
    headers.add("Accept", "a")
    headers.add("Accept", "b")
    headers.add("X-One", "1")
    lists = header_value_lists(headers)
    assert lists == {"Accept": ["a", "b"], "X-One": ["1"]}, \
        "tornado.httputil.HTTPHeaders._as_list changed: the header-size check falls back"


class _Abandoning(RequestHandler):
    async def get(self) -> None:
        self.write(b"partial body")
        await self.flush()
        mark_response_abandoned(self)
        assert self.request.connection is not None
        self.request.connection.stream.close()  # type: ignore[attr-defined]


def test_an_abandoned_response_is_not_finished_by_tornado() -> None:
    """Without the mark, Tornado finishes the response after the handler returns: it is
    logged (and measured) as a complete 200 although the client got a broken one."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    ports: list[int] = []
    finished: list[int] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(Application(
            [("/", _Abandoning)],
            log_function=lambda handler: finished.append(handler.get_status())))
        server.add_sockets(sockets)
        ports.append(sockets[0].getsockname()[1])
        ready.set()
        loop.run_forever()
        server.stop()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        with socket.create_connection(("127.0.0.1", ports[0]), timeout=5) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while chunk := client.recv(65536):
                received += chunk
        # the handler returns after closing: let the loop run what follows its return
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), loop).result(5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    assert b"partial body" in received
    assert not received.endswith(b"0\r\n\r\n"), "tornado finished an abandoned response"
    assert finished == [], "RequestHandler._finished changed: tornado finished it after all"


class _Recorder(SpanProcessor):
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def on_end(self, span: ReadableSpan) -> None:
        self.calls.append(self.name)


def test_a_span_processor_can_be_put_first_and_removed() -> None:
    calls: list[str] = []
    provider = TracerProvider(span_limits=SpanLimits(max_attributes=7))
    provider.add_span_processor(_Recorder("application", calls))
    first = _Recorder("ours", calls)
    put_span_processor_first(provider, first)
    provider.get_tracer("t").start_span("one").end()
    assert calls == ["ours", "application"], "TracerProvider._active_span_processor changed"
    remove_span_processor(provider, first)
    provider.get_tracer("t").start_span("two").end()
    assert calls == ["ours", "application", "application"]
    assert span_limits_of(provider).max_attributes == 7  # type: ignore[union-attr]
    calls.clear()
    span_processor_of(provider).on_end(None)  # type: ignore[arg-type]
    assert calls == ["application"]


def test_httpx_preloaded_content_and_its_replacement() -> None:
    response = httpx.Response(200, content=b"original")
    assert preloaded_content(response) == b"original"
    replace_content(response, b"edited")
    assert response.content == b"edited", "httpx Response._content changed"
    request = httpx.Request("POST", "http://x/", content=b"body")
    replace_content(request, b"new body")
    assert request.content == b"new body", "httpx Request._content changed"
    streamed = httpx.Response(200, stream=httpx.ByteStream(b"later"))
    assert preloaded_content(streamed) is None


def test_histogram_preferences_are_what_the_reader_was_given() -> None:
    temporality, aggregation = histogram_preferences(InMemoryMetricReader())
    assert temporality is AggregationTemporality.CUMULATIVE
    assert isinstance(aggregation, DefaultAggregation)
    exponential = ExponentialBucketHistogramAggregation()
    reader = InMemoryMetricReader(
        preferred_temporality={Histogram: AggregationTemporality.DELTA,
                               Counter: AggregationTemporality.CUMULATIVE},
        preferred_aggregation={Histogram: exponential})
    assert histogram_preferences(reader) == (AggregationTemporality.DELTA, exponential), \
        "MetricReader._instrument_class_temporality/_aggregation changed: pre-aggregated " \
        "histograms cannot tell what a reader wants"
