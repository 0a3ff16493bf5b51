"""OTel HTTP server metrics for every route of the proxy's port.

``http.server.request.duration``, ``http.server.request.body.size``,
``http.server.response.body.size`` (histograms) and ``http.server.active_requests``
(read at collection time), with the semconv attributes ``http.request.method``,
``http.route``, ``http.response.status_code``, ``url.scheme``,
``network.protocol.version`` and ``error.type`` (5xx). Paths in ``exclude_paths``
(``/health`` and ``/metrics`` by default) are left out entirely.

``http.route`` is a low-cardinality template: the Tornado route pattern of the API, viewer
and ops handlers (``/api/v1/traces/{id}``), the canonical path of a proxied LLM API call
(``/v1/chat/completions``; other prefixes keep the API's suffix, ``/*/chat/completions``),
and ``/*`` for everything else relayed.

Requests in flight are tracked in a ``WeakSet`` of request objects: a request that never
finishes (its client vanished mid-handler) leaves the set when it is garbage collected, so
the gauge cannot drift upwards.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Sequence

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.metrics.http_metrics import (
    HTTP_SERVER_ACTIVE_REQUESTS,
    HTTP_SERVER_REQUEST_BODY_SIZE,
    HTTP_SERVER_RESPONSE_BODY_SIZE,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.network_attributes import NETWORK_PROTOCOL_VERSION
from opentelemetry.semconv.attributes.url_attributes import URL_SCHEME
from opentelemetry.semconv.metrics.http_metrics import HTTP_SERVER_REQUEST_DURATION
from tornado.httputil import HTTPServerRequest
from tornado.web import Application, RequestHandler

from llmtrace_otel.telemetry.histograms import HistogramFactory, SdkHistograms

__all__ = ["DURATION_BUCKETS", "SIZE_BUCKETS", "HttpServerMetrics", "MeteredApplication"]

#: Semconv-recommended boundaries for http.server.request.duration.
DURATION_BUCKETS: Sequence[float] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
)
#: Body sizes from 100 B to 10 MB.
SIZE_BUCKETS: Sequence[float] = (
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
)
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
                            "TRACE", "PATCH"})
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)|\([^)]*\)")
_CATCH_ALL = "/*"
#: The attributes of the three histograms, in the order of the values recorded.
_LABELS = (HTTP_REQUEST_METHOD, HTTP_ROUTE, HTTP_RESPONSE_STATUS_CODE, URL_SCHEME,
           NETWORK_PROTOCOL_VERSION, ERROR_TYPE)
_OPTIONAL = frozenset({ERROR_TYPE})  # 5xx only


def _method(request: HTTPServerRequest) -> str:
    method = request.method or "GET"
    return method if method in _KNOWN_METHODS else "_OTHER"


def _template(pattern: str) -> str:
    """``/api/v1/traces/([^/]+)`` -> ``/api/v1/traces/{param}``; ``(/.*)?`` -> ``/*``."""
    text = pattern.rstrip("$")
    if text.endswith("(/.*)?"):
        return text[: -len("(/.*)?")] + _CATCH_ALL
    return _GROUP.sub(lambda m: "{" + (m.group(1) or "param") + "}", text)


class HttpServerMetrics:
    """The instruments, and what to record for one finished request.

    The histograms come from ``histograms`` (pre-aggregated ones when the pipeline's readers
    merge them, :mod:`llmtrace_otel.telemetry.metric_sources`), else the SDK's on ``meter``.
    """

    def __init__(self, meter: Meter, *, exclude_paths: Iterable[str] = (),
                 routes: Sequence[str] = (), histograms: HistogramFactory | None = None) -> None:
        self._exclude = frozenset(exclude_paths)
        self._routes = tuple((re.compile(pattern + "$"), _template(pattern))
                             for pattern in routes if pattern not in (r"/.*", ".*"))
        self._active: weakref.WeakSet[HTTPServerRequest] = weakref.WeakSet()
        self._seen: set[tuple[str, str]] = set()  # (method, scheme) series reported so far
        histograms = histograms if histograms is not None else SdkHistograms(meter)
        self._duration = histograms.histogram(
            HTTP_SERVER_REQUEST_DURATION, unit="s",
            description="Duration of HTTP server requests.", bounds=DURATION_BUCKETS,
            labels=_LABELS, optional=_OPTIONAL)
        self._request_size = histograms.histogram(
            HTTP_SERVER_REQUEST_BODY_SIZE, unit="By",
            description="Size of HTTP server request bodies.", bounds=SIZE_BUCKETS,
            labels=_LABELS, optional=_OPTIONAL)
        self._response_size = histograms.histogram(
            HTTP_SERVER_RESPONSE_BODY_SIZE, unit="By",
            description="Size of HTTP server response bodies.", bounds=SIZE_BUCKETS,
            labels=_LABELS, optional=_OPTIONAL)
        meter.create_observable_up_down_counter(
            HTTP_SERVER_ACTIVE_REQUESTS, [self._observe_active], unit="{request}",
            description="HTTP server requests in flight.")

    def started(self, request: HTTPServerRequest) -> None:
        if request.path not in self._exclude:
            self._active.add(request)
            self._seen.add((_method(request), request.protocol))

    def route_of(self, handler: RequestHandler) -> str:
        route = getattr(handler, "http_route", None)
        if route is not None:
            return str(route)
        path = handler.request.path
        for regex, template in self._routes:
            if regex.match(path):
                return template
        return _CATCH_ALL

    def finished(self, handler: RequestHandler) -> None:
        request = handler.request
        self._active.discard(request)
        if request.path in self._exclude:
            return
        status = handler.get_status()
        attributes = (_method(request), self.route_of(handler), status, request.protocol, "1.1",
                      str(status) if status >= 500 else "")
        self._duration.record(request.request_time(), attributes)
        received = getattr(handler, "request_body_size", None)
        self._request_size.record(
            received if received is not None else len(request.body or b""), attributes)
        sent = getattr(handler, "response_body_size", None)
        if sent is None:
            length = handler._headers.get("Content-Length")  # set by finish() when known
            sent = int(length) if length and length.isdigit() else 0
        self._response_size.record(sent, attributes)

    def _observe_active(self, options: CallbackOptions) -> Iterable[Observation]:
        counts: dict[tuple[str, str], int] = {}
        for request in list(self._active):
            key = (_method(request), request.protocol)
            counts[key] = counts.get(key, 0) + 1
        for method, scheme in sorted(self._seen):  # a series once seen reports 0 when idle
            yield Observation(counts.get((method, scheme), 0),
                              {HTTP_REQUEST_METHOD: method, URL_SCHEME: scheme})


class MeteredApplication(Application):
    """A Tornado Application that reports every request to :class:`HttpServerMetrics`."""

    def __init__(self, *args: object, http_metrics: HttpServerMetrics | None = None,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.http_metrics = http_metrics

    def find_handler(self, request: HTTPServerRequest, **kwargs: object):  # type: ignore[no-untyped-def]
        if self.http_metrics is not None:
            self.http_metrics.started(request)
        return super().find_handler(request, **kwargs)

    def log_request(self, handler: RequestHandler) -> None:
        if self.http_metrics is not None:
            self.http_metrics.finished(handler)
        super().log_request(handler)
