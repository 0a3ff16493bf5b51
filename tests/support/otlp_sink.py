"""A real OTLP receiver for tests: gRPC and HTTP/protobuf on unused loopback ports.

``OTLPSink`` plays the part of an OpenTelemetry Collector. It runs

* a real ``grpcio`` server implementing the OTLP ``TraceService``, ``LogsService`` and
  ``MetricsService``, and
* a real HTTP server answering ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs`` with
  ``application/x-protobuf`` bodies (``Content-Encoding: gzip`` and ``deflate`` accepted),

so the real OTel SDK exporters can be pointed at it::

    with OTLPSink() as sink:
        exporter = OTLPSpanExporter(endpoint=sink.grpc_endpoint, insecure=True)
        ...
        [span] = sink.wait_for_spans(1)
        assert span.attributes["gen_ai.request.model"] == "gpt-4o"

Received data is decoded into small frozen dataclasses (``ReceivedSpan``, ``ReceivedMetric``)
so tests compare plain Python values, never protobuf messages.

``fail_next(n, code)`` makes the next ``n`` export calls fail with a gRPC status code or an HTTP
status (each is translated for the other transport, following the OTLP spec's mapping), with an
optional server-suggested retry delay (gRPC ``RetryInfo`` / HTTP ``Retry-After``) so retry tests
do not sit through the exporters' exponential backoff.

Why ``http.server`` and not Tornado for the HTTP side: the handler is a few synchronous lines
(read body, decode, answer), ``ThreadingHTTPServer`` needs no event loop to own, start or tear
down, and it keeps the sink fully independent of the Tornado code under test, so a blocked or
misconfigured IOLoop in the product can never hide or fake an export. Export traffic in tests is
tiny, so a thread per connection costs nothing.

All state lives on the instance and is guarded by one ``threading.Condition``; every public
method is thread-safe.
"""

from __future__ import annotations

import gzip
import http
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError, Message
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = [
    "ExportCall",
    "OTLPSink",
    "ReceivedDataPoint",
    "ReceivedMetric",
    "ReceivedSpan",
    "Signal",
    "Transport",
]

Signal = Literal["traces", "metrics", "logs"]
Transport = Literal["grpc", "http"]

_Point = (
    metrics_pb2.NumberDataPoint
    | metrics_pb2.HistogramDataPoint
    | metrics_pb2.ExponentialHistogramDataPoint
    | metrics_pb2.SummaryDataPoint
)

_HOST = "127.0.0.1"
_PROTOBUF = "application/x-protobuf"
_HTTP_PATHS: dict[str, Signal] = {"/v1/traces": "traces", "/v1/metrics": "metrics",
                                   "/v1/logs": "logs"}
_RETRY_INFO_KEY = "google.rpc.retryinfo-bin"

# OTLP spec (otlp.md, "Failures"): gRPC status <-> HTTP status for the codes that matter.
_GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNIMPLEMENTED: 404,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_HTTP_TO_GRPC: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived, decoded. ``kind``/``status_code`` are the proto enum names
    without prefix ("CLIENT", "ERROR", ...); ids are lowercase hex ("" for no parent)."""

    name: str
    trace_id_hex: str
    span_id_hex: str
    parent_span_id_hex: str
    kind: str
    attributes: dict[str, object]
    events: tuple[tuple[str, dict[str, object]], ...]
    resource: dict[str, object]
    scope_name: str
    status_code: str
    transport: Transport
    status_message: str = ""
    start_time_unix_nano: int = 0
    end_time_unix_nano: int = 0
    #: (trace_id_hex, span_id_hex, attributes) per link.
    links: tuple[tuple[str, str, dict[str, object]], ...] = ()
    #: Event timestamps, in the order of ``events``.
    event_times_unix_nano: tuple[int, ...] = ()


@dataclass(frozen=True)
class ReceivedDataPoint:
    """A number point has ``value``; a histogram point has ``count``/``sum``/buckets."""

    attributes: dict[str, object]
    value: int | float | None = None
    count: int | None = None
    sum: float | None = None
    bucket_counts: tuple[int, ...] = ()
    explicit_bounds: tuple[float, ...] = ()


@dataclass(frozen=True)
class ReceivedMetric:
    name: str
    description: str
    unit: str
    data_type: str  # "gauge" | "sum" | "histogram" | "exponential_histogram" | "summary"
    data_points: tuple[ReceivedDataPoint, ...]
    resource: dict[str, object]
    scope_name: str
    transport: Transport


@dataclass(frozen=True)
class ExportCall:
    """One export request as seen by the sink, accepted or failed on purpose."""

    signal: Signal
    transport: Transport
    item_count: int
    accepted: bool


@dataclass(frozen=True)
class _Failure:
    grpc_code: grpc.StatusCode
    http_status: int
    retry_after: float | None
    message: str


@dataclass
class _FailurePlan:
    remaining: int
    failure: _Failure
    signal: Signal | None


def _decode_value(value: AnyValue) -> object:
    """str / bool / int / float / bytes as is; arrays as lists, kvlists as dicts; unset: None."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_decode_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _decode_attributes(value.kvlist_value.values)
    if kind is None:
        return None
    decoded: object = getattr(value, kind)
    return decoded


def _decode_attributes(pairs: Iterable[KeyValue]) -> dict[str, object]:
    return {pair.key: _decode_value(pair.value) for pair in pairs}


def _enum_name(name: str, prefix: str) -> str:
    return name.removeprefix(prefix)


def _decode_spans(
    request: trace_service_pb2.ExportTraceServiceRequest, transport: Transport
) -> list[ReceivedSpan]:
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = _decode_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id_hex=span.trace_id.hex(),
                        span_id_hex=span.span_id.hex(),
                        parent_span_id_hex=span.parent_span_id.hex(),
                        kind=_enum_name(trace_pb2.Span.SpanKind.Name(span.kind), "SPAN_KIND_"),
                        attributes=_decode_attributes(span.attributes),
                        events=tuple(
                            (event.name, _decode_attributes(event.attributes))
                            for event in span.events
                        ),
                        resource=resource,
                        scope_name=scope_spans.scope.name,
                        status_code=_enum_name(
                            trace_pb2.Status.StatusCode.Name(span.status.code), "STATUS_CODE_"
                        ),
                        transport=transport,
                        status_message=span.status.message,
                        start_time_unix_nano=span.start_time_unix_nano,
                        end_time_unix_nano=span.end_time_unix_nano,
                        links=tuple(
                            (link.trace_id.hex(), link.span_id.hex(),
                             _decode_attributes(link.attributes))
                            for link in span.links
                        ),
                        event_times_unix_nano=tuple(event.time_unix_nano for event in span.events),
                    )
                )
    return spans


def _decode_point(point: _Point) -> ReceivedDataPoint:
    attributes = _decode_attributes(point.attributes)
    if isinstance(point, metrics_pb2.NumberDataPoint):
        kind = point.WhichOneof("value")
        return ReceivedDataPoint(attributes, value=getattr(point, kind) if kind else None)
    if isinstance(point, metrics_pb2.HistogramDataPoint):
        return ReceivedDataPoint(
            attributes,
            count=point.count,
            sum=point.sum if point.HasField("sum") else None,
            bucket_counts=tuple(point.bucket_counts),
            explicit_bounds=tuple(point.explicit_bounds),
        )
    # Exponential histogram and summary: count and sum are enough for the tests we write.
    return ReceivedDataPoint(attributes, count=point.count, sum=point.sum)


def _decode_metrics(
    request: metrics_service_pb2.ExportMetricsServiceRequest, transport: Transport
) -> list[ReceivedMetric]:
    metrics: list[ReceivedMetric] = []
    for resource_metrics in request.resource_metrics:
        resource = _decode_attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                data_type = metric.WhichOneof("data") or ""
                points = getattr(metric, data_type).data_points if data_type else ()
                metrics.append(
                    ReceivedMetric(
                        name=metric.name,
                        description=metric.description,
                        unit=metric.unit,
                        data_type=data_type,
                        data_points=tuple(_decode_point(point) for point in points),
                        resource=resource,
                        scope_name=scope_metrics.scope.name,
                        transport=transport,
                    )
                )
    return metrics


def _failure_for(code: grpc.StatusCode | int, retry_after: float | None) -> _Failure:
    if isinstance(code, grpc.StatusCode):
        if code is grpc.StatusCode.OK:
            raise ValueError("fail_next needs a failing status, not grpc.StatusCode.OK")
        grpc_code, http_status = code, _GRPC_TO_HTTP.get(code, 500)
    elif isinstance(code, int) and 400 <= code <= 599:
        grpc_code, http_status = _HTTP_TO_GRPC.get(code, grpc.StatusCode.UNKNOWN), code
    else:
        raise ValueError(
            f"fail_next needs a grpc.StatusCode or an HTTP status 4xx/5xx, got {code!r}"
        )
    if retry_after is not None and retry_after < 0:
        raise ValueError(f"retry_after must be >= 0 seconds, got {retry_after!r}")
    message = f"OTLPSink: failure injected by fail_next ({grpc_code.name} / HTTP {http_status})"
    return _Failure(grpc_code, http_status, retry_after, message)


class OTLPSink:
    """OTLP gRPC + HTTP receiver on 127.0.0.1; see the module docstring."""

    def __init__(self, *, grpc_workers: int = 4, grpc_port: int = 0) -> None:
        """``grpc_port`` (0: any free port) lets a sink come back on the port a previous
        one used: an OTLP endpoint that goes down and comes back."""
        self._cond = threading.Condition()
        self._fixed_grpc_port = grpc_port
        self._lifecycle = threading.Lock()  # serialises start()/stop()
        self._spans: list[ReceivedSpan] = []
        self._metrics: list[ReceivedMetric] = []
        #: Log export requests as received (the receiver forwards logs).
        self._logs: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self._calls: list[ExportCall] = []
        self._failures: deque[_FailurePlan] = deque()
        self._grpc_workers = grpc_workers
        self._grpc_server: grpc.Server | None = None
        self._grpc_port: int | None = None
        self._http_server: _SinkHTTPServer | None = None
        self._http_thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> OTLPSink:
        with self._lifecycle:
            self._start()
        return self

    def _start(self) -> None:
        if self._grpc_server is not None:
            raise RuntimeError("OTLPSink is already running")
        server = grpc.server(ThreadPoolExecutor(max_workers=self._grpc_workers))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceServicer(self), server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsServicer(self), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _MetricsServicer(self), server
        )
        port = server.add_insecure_port(f"{_HOST}:{self._fixed_grpc_port}")
        if port == 0:
            raise RuntimeError(f"OTLPSink could not bind a gRPC port on {_HOST}")
        server.start()
        self._grpc_server, self._grpc_port = server, port
        try:
            http_server = _SinkHTTPServer((_HOST, 0), _OTLPHTTPHandler, self)
        except BaseException:
            self._stop()
            raise
        thread = threading.Thread(
            target=http_server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"otlp-sink-http-{http_server.server_port}",
            daemon=True,
        )
        thread.start()
        self._http_server, self._http_thread = http_server, thread

    def stop(self) -> None:
        """Stop both servers. Idempotent; received data stays readable."""
        with self._lifecycle:
            self._stop()

    def _stop(self) -> None:
        grpc_server, self._grpc_server = self._grpc_server, None
        http_server, self._http_server = self._http_server, None
        thread, self._http_thread = self._http_thread, None
        if http_server is not None:
            http_server.shutdown()
            http_server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        if grpc_server is not None:
            grpc_server.stop(grace=None).wait(timeout=5)

    def __enter__(self) -> OTLPSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- endpoints -------------------------------------------------------------------------

    @property
    def grpc_endpoint(self) -> str:
        """``127.0.0.1:PORT``, for the gRPC exporters (with ``insecure=True``)."""
        if self._grpc_server is None or self._grpc_port is None:
            raise RuntimeError("OTLPSink is not running: use `with OTLPSink() as sink:`")
        return f"{_HOST}:{self._grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` (append ``/v1/traces`` or ``/v1/metrics``)."""
        if self._http_server is None:
            raise RuntimeError("OTLPSink is not running: use `with OTLPSink() as sink:`")
        return f"http://{_HOST}:{self._http_server.server_port}"

    # -- received data ---------------------------------------------------------------------

    def spans(self) -> list[ReceivedSpan]:
        with self._cond:
            return list(self._spans)

    def metrics(self) -> list[ReceivedMetric]:
        with self._cond:
            return list(self._metrics)

    def logs(self) -> list[logs_service_pb2.ExportLogsServiceRequest]:
        with self._cond:
            return list(self._logs)

    def wait_for_logs(self, n: int, timeout: float = 10.0
                      ) -> list[logs_service_pb2.ExportLogsServiceRequest]:
        self._wait(lambda: len(self._logs) >= n, timeout,
                   lambda: f"{len(self._logs)} log requests, wanted {n}")
        return self.logs()

    def metric_names(self) -> set[str]:
        with self._cond:
            return {metric.name for metric in self._metrics}

    def export_calls(self) -> list[ExportCall]:
        """Every export request received, in arrival order, including injected failures."""
        with self._cond:
            return list(self._calls)

    def take_spans(self) -> list[ReceivedSpan]:
        """The spans received so far, forgotten in the same step (long runs stay small)."""
        with self._cond:
            spans, self._spans = self._spans, []
            return spans

    def clear(self) -> None:
        """Forget received data and export calls (pending ``fail_next`` plans are kept)."""
        with self._cond:
            self._spans.clear()
            self._metrics.clear()
            self._logs.clear()
            self._calls.clear()

    # -- waiting ---------------------------------------------------------------------------

    def wait_for_spans(self, n: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Block until at least ``n`` spans arrived; return all of them."""
        self._wait(
            lambda: len(self._spans) >= n,
            timeout,
            lambda: f"expected at least {n} span(s) within {timeout}s, "
            f"but {len(self._spans)} arrived: {[span.name for span in self._spans]}",
        )
        return self.spans()

    def wait_for_metric_names(self, names: Iterable[str], timeout: float = 10.0) -> set[str]:
        """Block until every metric name in ``names`` arrived; return all names received."""
        wanted = set(names)
        self._wait(
            lambda: wanted <= {metric.name for metric in self._metrics},
            timeout,
            lambda: f"expected metrics {sorted(wanted)} within {timeout}s; still missing "
            f"{sorted(wanted - {metric.name for metric in self._metrics})}, "
            f"received {sorted({metric.name for metric in self._metrics})}",
        )
        return self.metric_names()

    def wait_for_export_calls(self, n: int, timeout: float = 10.0) -> list[ExportCall]:
        """Block until at least ``n`` export requests arrived (accepted or failed)."""
        self._wait(
            lambda: len(self._calls) >= n,
            timeout,
            lambda: f"expected at least {n} export call(s) within {timeout}s, "
            f"but {len(self._calls)} arrived",
        )
        return self.export_calls()

    def _wait(self, ready: Callable[[], bool], timeout: float, explain: Callable[[], str]) -> None:
        with self._cond:
            if not self._cond.wait_for(ready, timeout=timeout):
                calls = len(self._calls)
                failed = sum(not call.accepted for call in self._calls)
                raise AssertionError(
                    f"OTLPSink: {explain()} ({calls} export call(s), {failed} failed on purpose)"
                )

    # -- failure injection -----------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        code: grpc.StatusCode | int,
        *,
        retry_after: float | None = None,
        signal: Signal | None = None,
    ) -> None:
        """Make the next ``n`` export calls (of ``signal``, or any) fail with ``code``.

        ``code`` is a ``grpc.StatusCode`` or an HTTP status (4xx/5xx); the other transport gets
        the OTLP-spec equivalent (UNAVAILABLE <-> 503, INVALID_ARGUMENT <-> 400, ...).
        ``retry_after`` (seconds) is sent as gRPC ``RetryInfo`` / HTTP ``Retry-After``, which
        the OTel exporters honour instead of their 1s, 2s, 4s ... backoff; it only matters for
        retryable codes (UNAVAILABLE/RESOURCE_EXHAUSTED/..., 429/502/503/504).
        """
        if n < 1:
            raise ValueError(f"fail_next needs n >= 1, got {n}")
        failure = _failure_for(code, retry_after)
        with self._cond:
            self._failures.append(_FailurePlan(n, failure, signal))

    def _take_failure(self, signal: Signal) -> _Failure | None:
        for plan in self._failures:
            if plan.signal in (None, signal):
                plan.remaining -= 1
                if plan.remaining == 0:
                    self._failures.remove(plan)
                return plan.failure
        return None

    # -- called by the transports ----------------------------------------------------------

    def _accept(self, signal: Signal, transport: Transport, request: Message) -> _Failure | None:
        """Record one export; returns the failure to answer with, or None when accepted."""
        spans: list[ReceivedSpan] = []
        metrics: list[ReceivedMetric] = []
        logs = [request] if isinstance(
            request, logs_service_pb2.ExportLogsServiceRequest) else []
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            spans = _decode_spans(request, transport)
        elif isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
            metrics = _decode_metrics(request, transport)
        with self._cond:
            failure = self._take_failure(signal)
            count = len(spans) + sum(len(metric.data_points) for metric in metrics)
            self._calls.append(ExportCall(signal, transport, count, accepted=failure is None))
            if failure is None:
                self._spans.extend(spans)
                self._metrics.extend(metrics)
                self._logs.extend(logs)
            self._cond.notify_all()
        return failure


# -- gRPC --------------------------------------------------------------------------------------


def _abort(context: grpc.ServicerContext, failure: _Failure) -> None:
    if failure.retry_after is not None:
        delay = Duration()
        delay.FromNanoseconds(int(failure.retry_after * 1e9))
        info = RetryInfo(retry_delay=delay).SerializeToString()
        context.set_trailing_metadata(((_RETRY_INFO_KEY, info),))
    context.abort(failure.grpc_code, failure.message)


class _TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: OTLPSink) -> None:
        self._sink = sink

    def Export(  # noqa: N802 - name fixed by the generated servicer
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        failure = self._sink._accept("traces", "grpc", request)
        if failure is not None:
            _abort(context, failure)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, sink: OTLPSink) -> None:
        self._sink = sink

    def Export(  # noqa: N802 - name fixed by the generated servicer
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        context: grpc.ServicerContext,
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        failure = self._sink._accept("metrics", "grpc", request)
        if failure is not None:
            _abort(context, failure)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _LogsServicer(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, sink: OTLPSink) -> None:
        self._sink = sink

    def Export(  # noqa: N802 - name fixed by the generated servicer
        self,
        request: logs_service_pb2.ExportLogsServiceRequest,
        context: grpc.ServicerContext,
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        failure = self._sink._accept("logs", "grpc", request)
        if failure is not None:
            _abort(context, failure)
        return logs_service_pb2.ExportLogsServiceResponse()


# -- HTTP --------------------------------------------------------------------------------------

_REQUEST_TYPES: dict[Signal, type[Message]] = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}
_RESPONSE_TYPES: dict[Signal, type[Message]] = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}
_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda body: body,
    "identity": lambda body: body,
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
}


class _SinkHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        sink: OTLPSink,
    ) -> None:
        self.sink = sink
        super().__init__(address, handler)


class _OTLPHTTPHandler(BaseHTTPRequestHandler):
    """OTLP/HTTP binary protobuf; errors answer with a ``google.rpc.Status`` body (OTLP spec)."""

    server: _SinkHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the exporters' sessions expect
    timeout = 5  # idle keep-alive connections are closed, so stop() never waits on them

    def do_POST(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        signal = _HTTP_PATHS.get(urlsplit(self.path).path)
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self._reply_error(http.HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
            return
        body = self.rfile.read(int(length_header))
        if signal is None:
            self._reply_error(http.HTTPStatus.NOT_FOUND, f"no OTLP endpoint at {self.path}")
            return
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != _PROTOBUF:
            self._reply_error(
                http.HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"OTLPSink accepts only {_PROTOBUF}, got {content_type or 'no Content-Type'!r}",
            )
            return
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        decompress = _DECOMPRESS.get(encoding)
        if decompress is None:
            self._reply_error(
                http.HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"unsupported Content-Encoding {encoding!r}"
            )
            return
        request = _REQUEST_TYPES[signal]()
        try:
            request.ParseFromString(decompress(body))
        except (DecodeError, OSError, zlib.error) as error:
            self._reply_error(http.HTTPStatus.BAD_REQUEST, f"cannot decode {signal} body: {error}")
            return
        failure = self.server.sink._accept(signal, "http", request)
        if failure is not None:
            retry_after = failure.retry_after
            headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            self._reply_error(failure.http_status, failure.message, failure.grpc_code, headers)
            return
        self._reply(http.HTTPStatus.OK, _RESPONSE_TYPES[signal]().SerializeToString())

    def _reply_error(
        self,
        status: int,
        message: str,
        grpc_code: grpc.StatusCode | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        code = (grpc_code or _HTTP_TO_GRPC.get(status, grpc.StatusCode.UNKNOWN)).value[0]
        body = Status(code=code, message=message).SerializeToString()
        self._reply(status, body, headers)

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", _PROTOBUF)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        """Silence the per-request stderr lines of BaseHTTPRequestHandler."""
